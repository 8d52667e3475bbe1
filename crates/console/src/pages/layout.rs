//! The page frame (navigation, style, the logout form) and HTML escaping. Server-rendered HTML;
//! the only script is the Family page's recorder. Every page works offline and weighs a few KB.

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode a query parameter value.
pub fn url_param(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;background:#f6f6f3;color:#222}
header{background:#2d3b2f;color:#fff;padding:.6em 1em;display:flex;gap:1.2em;align-items:center;flex-wrap:wrap}
header a{color:#dfe9d8;text-decoration:none}header a.on{color:#fff;font-weight:600;border-bottom:2px solid #f0c040}
header form{margin-left:auto}main{padding:1em;max-width:70em}
table{border-collapse:collapse;width:100%;background:#fff;margin:.5em 0 1.2em}
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e3e3dd;vertical-align:top}
th{background:#ecece6;font-weight:600}
.ok{color:#1d6b2a;font-weight:600}.warn{color:#8a6100;font-weight:600}.bad{color:#a2231d;font-weight:600}
.msg{padding:.6em 1em;border-radius:4px;margin:.6em 0}.msg.err{background:#fbe3e1;color:#7d1a15}
.msg.info{background:#e3f0e1;color:#1d4d24}.small{font-size:.85em;color:#555}
.budget{display:inline-block;padding:.3em .8em;border-radius:4px;color:#fff}
.budget.green{background:#2e7d32}.budget.yellow{background:#b58900}.budget.red{background:#b3261e}
button{cursor:pointer}input,select,button{font:inherit;padding:.25em .5em}
details{margin:.2em 0}pre{white-space:pre-wrap;margin:0}
";

pub struct Frame<'a> {
    pub title: &'a str,
    /// The navigation entry to mark (`/`, `/memories`, ...).
    pub active: &'a str,
    /// The session's CSRF token for the logout form; `None` on the login page.
    pub csrf: Option<&'a str>,
    /// Reload the page after this many seconds.
    pub refresh: Option<u32>,
}

const NAV: [(&str, &str); 6] = [
    ("/", "Overview"),
    ("/voice", "Voice"),
    ("/family", "Family"),
    ("/memories", "Memories"),
    ("/cost", "Cost"),
    ("/backups", "Backups"),
];

pub fn page(f: &Frame<'_>, body: &str) -> String {
    let refresh = f
        .refresh
        // To the page itself, so a one-off message in the query is not shown again.
        .map(|s| {
            format!(
                "<meta http-equiv=\"refresh\" content=\"{s};url={}\">",
                esc(f.active)
            )
        })
        .unwrap_or_default();
    let nav = match f.csrf {
        Some(csrf) => {
            let links: String = NAV
                .iter()
                .map(|(href, label)| {
                    let on = if *href == f.active {
                        " class=\"on\""
                    } else {
                        ""
                    };
                    format!("<a href=\"{href}\"{on}>{label}</a>")
                })
                .collect();
            format!(
                "{links}<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button>Log out</button></form>",
                esc(csrf)
            )
        }
        None => String::new(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">{refresh}<title>{} · Barnabee</title><style>{STYLE}</style></head><body><header><strong>Barnabee</strong>{nav}</header><main><h1>{}</h1>{body}</main></body></html>",
        esc(f.title),
        esc(f.title)
    )
}

/// A message box: `error` red, otherwise green.
pub fn message(text: &str, error: bool) -> String {
    let class = if error { "err" } else { "info" };
    format!(
        "<p class=\"msg {class}\" role=\"{}\">{}</p>",
        if error { "alert" } else { "status" },
        esc(text)
    )
}

/// The one-off message a change left in the query (`?done=` or `?error=`), as message boxes.
pub fn flash(q: &std::collections::HashMap<String, String>) -> String {
    let mut out = String::new();
    if let Some(m) = q.get("done") {
        out.push_str(&message(m, false));
    }
    if let Some(m) = q.get("error") {
        out.push_str(&message(m, true));
    }
    out
}

/// Where a change goes afterwards: back to `page` with its outcome as the one-off message.
pub fn back_to(page: &str, outcome: Result<String, String>) -> axum::response::Response {
    let (key, text) = match &outcome {
        Ok(done) => ("done", done),
        Err(e) => ("error", e),
    };
    crate::web::redirect(&format!("{page}?{key}={}", url_param(text)))
}

/// The hidden CSRF field every changing form carries.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// Any JSON value as nested HTML (for answers whose shape the page does not assume).
pub fn json_html(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(m) if m.is_empty() => "<span class=\"small\">(none)</span>".into(),
        Value::Object(m) => {
            let rows: String = m
                .iter()
                .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), json_html(v)))
                .collect();
            format!("<table>{rows}</table>")
        }
        Value::Array(a) if a.is_empty() => "<span class=\"small\">(none)</span>".into(),
        Value::Array(a) => a.iter().map(json_html).collect::<Vec<_>>().join(""),
        Value::String(s) => esc(s),
        Value::Null => "<span class=\"small\">—</span>".into(),
        other => esc(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url_param("a b&c/é"), "a%20b%26c%2F%C3%A9");
        let h = json_html(&serde_json::json!({"<k>": ["<v>", null, 1]}));
        assert!(h.contains("&lt;k&gt;") && h.contains("&lt;v&gt;") && !h.contains("<v>"));
    }
}

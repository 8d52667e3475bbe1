//! Daemons that answer garbage (not JSON, a truncated answer, an HTML error page, a wrong
//! shape) or nothing at all: every page of the console still renders, says which daemon and
//! what was wrong, and is never a 500. Also `--check-config` naming a bad field.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server that answers every request with `response` (raw HTTP).
fn garbage_server(response: &'static str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 4096];
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = s.read(&mut buf);
            let _ = s.write_all(response.as_bytes());
        }
    });
    format!("http://{addr}")
}

struct Console(Child);

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn garbage_from_daemons_is_a_message_not_a_broken_page() {
    let dir = tempfile::tempdir().unwrap();
    let not_json = garbage_server(
        "HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot json!",
    );
    let html_error = garbage_server(
        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/html\r\ncontent-length: 20\r\nconnection: close\r\n\r\n<h1>Bad Gateway</h1>",
    );
    let truncated = garbage_server(
        "HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\n{\"status\":",
    );
    let wrong_shape = garbage_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n[]",
    );
    let dead = format!("http://127.0.0.1:{}", free_port());
    let port = free_port();
    let config = dir.path().join("console.toml");
    std::fs::write(
        &config,
        format!(
            r#"[service]
listen = "127.0.0.1:{port}"
[auth]
password_hash_file = "{}/hash"
generate_if_missing = true
[[daemon]]
role = "memory"
host = "beelink"
url = "{not_json}"
[[daemon]]
role = "agents"
host = "beelink"
url = "{html_error}"
[[daemon]]
role = "voice"
host = "beelink"
url = "{truncated}"
[[daemon]]
role = "inference"
host = "beast"
url = "{dead}"
[[daemon]]
role = "watchdog"
host = "beelink"
url = "{wrong_shape}"
"#,
            dir.path().display()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_barnabee-console");
    let _console = Console(
        Command::new(bin)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while rt
        .block_on(http.get(format!("{base}/health")).send())
        .is_err()
    {
        assert!(Instant::now() < deadline, "the console did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let password = std::fs::read_to_string(dir.path().join("initial-password")).unwrap();
    let cookie = rt.block_on(async {
        let r = http
            .post(format!("{base}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("password={}", password.trim()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303);
        let c = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
        c.split(';').next().unwrap().to_owned()
    });
    let page = |path: &str| -> (u16, String) {
        rt.block_on(async {
            let r = http
                .get(format!("{base}{path}"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let (code, overview) = page("/");
    assert_eq!(code, 200);
    for expected in [
        "not JSON: not json!",
        "HTTP 500, not JSON: &lt;h1&gt;Bad Gateway&lt;/h1&gt;",
        "the answer broke off",
        "unreachable",
        "not a health report: []",
        "The agents daemon did not answer",
        "incident list is not in the expected shape",
    ] {
        assert!(
            overview.contains(expected),
            "{expected:?} not in the overview:\n{overview}"
        );
    }
    assert!(
        !overview.contains("<h1>Bad Gateway"),
        "a daemon's HTML must be escaped"
    );
    for (path, expected) in [
        ("/memories", "not JSON: not json!"),
        ("/memories?q=keys", "not JSON: not json!"),
        ("/memories?q=keys&mode=lcoal", "Unknown search mode"),
        ("/cost", "HTTP 500, not JSON"),
        ("/backups", "not JSON: not json!"),
    ] {
        let (code, body) = page(path);
        assert_eq!(code, 200, "{path}");
        assert!(
            body.contains(expected),
            "{path}: {expected:?} not in\n{body}"
        );
    }
}

#[test]
fn check_config_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("console.toml");
    let bin = env!("CARGO_BIN_EXE_barnabee-console");
    let run = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let out = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .arg("--check-config")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let hash = dir.path().join("hash");
    let (ok, err) = run(&format!(
        "[auth]\npassword_hash_file = \"{}\"\n",
        hash.display()
    ));
    assert!(!ok && err.contains("hash-password"), "{err}");
    std::fs::write(&hash, "not a hash").unwrap();
    let (ok, err) = run(&format!(
        "[auth]\npassword_hash_file = \"{}\"\n",
        hash.display()
    ));
    assert!(!ok && err.contains("not an argon2"), "{err}");
    let out = Command::new(bin)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = out;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    std::fs::write(&hash, &out.stdout).unwrap();
    let (ok, err) = run(&format!(
        "[auth]\npassword_hash_file = \"{}\"\n",
        hash.display()
    ));
    assert!(ok, "{err}");
    let (ok, err) = run(&format!(
        "[auth]\npassword_hash_file = \"{}\"\n[[daemon]]\nrole = \"memroy\"\nhost = \"b\"\nurl = \"http://x\"\n",
        hash.display()
    ));
    assert!(!ok && err.contains("memroy"), "{err}");
}

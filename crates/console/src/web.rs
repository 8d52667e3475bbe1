//! Routes, the login gate and CSRF checks. Every page is server-rendered; every failure of a
//! daemon is a message inside the page; every change is a POST carrying the session's CSRF token.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::auth::{self, Session, Sessions};
use crate::config::Config;
use crate::pages::layout::{Frame, esc, message, page};
use crate::peers::Peers;

/// Forms are small; anything bigger is refused with a page saying so.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// Bodies up to this size are read so the page can say what was too large; beyond it the
/// connection gets the server's plain 413.
const MAX_BODY_READ: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    pub peers: Peers,
    pub sessions: Arc<Sessions>,
    pub verifier: Arc<auth::Verifier>,
}

pub type Params = Query<HashMap<String, String>>;

/// A logged-in request: the session's id and CSRF token.
pub struct LoggedIn {
    pub id: String,
    pub session: Session,
}

impl AppState {
    pub fn logged_in(&self, headers: &HeaderMap) -> Option<LoggedIn> {
        let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
        let id = auth::cookie_session(cookie)?;
        let session = self.sessions.get(id)?;
        Some(LoggedIn {
            id: id.to_owned(),
            session,
        })
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(crate::pages::overview::show))
        .route("/incidents/ack", post(crate::pages::overview::acknowledge))
        .route("/voice", get(crate::pages::voice::show))
        .route("/family", get(crate::pages::family::show))
        .route(
            "/family/enroll",
            // Recordings are bigger than forms: read up to twice the limit so the page can say
            // by how much a too-large one missed.
            post(crate::pages::family::enroll).layer(DefaultBodyLimit::max(
                2 * crate::pages::family::MAX_ENROLL_BYTES,
            )),
        )
        .route("/family/delete", post(crate::pages::family::delete))
        .route("/memories", get(crate::pages::memories::show))
        .route("/memories/delete", post(crate::pages::memories::delete))
        .route("/cost", get(crate::pages::cost::show))
        .route("/cost/mode", post(crate::pages::cost::set_mode))
        .route("/backups", get(crate::pages::backups::show))
        .route("/backups/verify", post(crate::pages::backups::verify))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        // Browsers ask for it on every first visit; there is none.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_READ))
        .with_state(state)
}

/// An HTML response with a status.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, Html(body)).into_response();
    // Pages hold family data: never cached, never framed by another site.
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

pub fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Not logged in: pages go to the login page (and come back after it).
pub fn to_login(path: &str) -> Response {
    redirect(&format!(
        "/login?next={}",
        crate::pages::layout::url_param(path)
    ))
}

/// A refused change, as a page.
pub fn refused(status: StatusCode, text: &str) -> Response {
    let body = format!(
        "{}<p><a href=\"/login\">Log in</a> or go back to the <a href=\"/\">overview</a>.</p>",
        message(text, true)
    );
    html(
        status,
        page(
            &Frame {
                title: "Not done",
                active: "",
                csrf: None,
                refresh: None,
            },
            &body,
        ),
    )
}

/// A refused request: what the page will say, and its status.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub text: String,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        refused(self.status, &self.text)
    }
}

fn refuse(status: StatusCode, text: impl Into<String>) -> Refused {
    Refused {
        status,
        text: text.into(),
    }
}

/// The fields of a form body, or what is wrong with it.
pub fn form(body: &Bytes) -> Result<HashMap<String, String>, Refused> {
    if body.len() > MAX_FORM_BYTES {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "The form is too large ({} KB; at most {} KB), so nothing was changed.",
                body.len() / 1024,
                MAX_FORM_BYTES / 1024
            ),
        ));
    }
    if std::str::from_utf8(body).is_err() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "The form could not be read (not UTF-8).",
        ));
    }
    Ok(form_urlencoded::parse(body).into_owned().collect())
}

/// The checks every changing request passes: logged in, and the form's CSRF token is this
/// session's. Returns the session and the form's fields.
pub fn change(
    s: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(LoggedIn, HashMap<String, String>), Refused> {
    let Some(who) = s.logged_in(headers) else {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "You are not logged in (or your session has ended), so nothing was changed.",
        ));
    };
    let f = form(body)?;
    let token = f.get("csrf").map(String::as_str).unwrap_or("");
    if !auth::same(token, &who.session.csrf) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "This form is out of date (its security token does not belong to your session), so nothing was changed. Reload the page and try again.",
        ));
    }
    Ok((who, f))
}

async fn not_found(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if s.logged_in(&headers).is_none() {
        return to_login("/");
    }
    refused(StatusCode::NOT_FOUND, "There is no such page.")
}

fn login_form(next: &str, msg: Option<(&str, bool)>) -> String {
    let m = msg.map(|(t, e)| message(t, e)).unwrap_or_default();
    page(
        &Frame {
            title: "Log in",
            active: "",
            csrf: None,
            refresh: None,
        },
        &format!(
            "{m}<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"{}\"><label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" autofocus required></label> <button>Log in</button></form><p class=\"small\">The password is set on the appliance (<code>barnabee-console hash-password</code>; the first one is in the console's state directory, <code>initial-password</code>).</p>",
            esc(next)
        ),
    )
}

async fn login_page(Query(q): Params) -> Response {
    let next = q.get("next").map(String::as_str).unwrap_or("/");
    html(StatusCode::OK, login_form(next, None))
}

/// Only local paths are followed after login (never another site).
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

async fn login(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let f = match form(&body) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let next = safe_next(f.get("next").map(String::as_str).unwrap_or("/")).to_owned();
    if let Some(wait) = s.sessions.blocked(peer.ip()) {
        log::warn!(event = "console_login_limited", client = peer.ip().to_string(); "too many failed console logins from {}", peer.ip());
        return html(
            StatusCode::TOO_MANY_REQUESTS,
            login_form(
                &next,
                Some((
                    &format!("Too many wrong passwords from this device. Try again in {wait} s."),
                    true,
                )),
            ),
        );
    }
    let password = f.get("password").cloned().unwrap_or_default();
    // argon2 takes tens of milliseconds of CPU: on its own thread, off the async ones.
    let ok = s.verifier.check(password).await;
    if !ok {
        s.sessions.failed(peer.ip());
        log::warn!(event = "console_login_failed", client = peer.ip().to_string(); "wrong console password from {}", peer.ip());
        return html(
            StatusCode::UNAUTHORIZED,
            login_form(&next, Some(("Wrong password.", true))),
        );
    }
    let (id, _) = match s.sessions.create() {
        Ok(x) => x,
        Err(e) => {
            log::error!("cannot create a console session: {e}");
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "The console cannot start a session right now (see its journal).",
            );
        }
    };
    log::info!(event = "console_login", client = peer.ip().to_string(); "console login from {}", peer.ip());
    let mut r = redirect(&next);
    let cookie = format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        auth::COOKIE,
        s.sessions.ttl().as_secs()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (who, _) = match change(&s, &headers, &body) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    s.sessions.end(&who.id);
    let mut r = redirect("/login");
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        auth::COOKIE
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_after_login() {
        assert_eq!(safe_next("/memories?q=x"), "/memories?q=x");
        assert_eq!(safe_next("//evil.example/"), "/");
        assert_eq!(safe_next("https://evil.example/"), "/");
        assert_eq!(safe_next("/\\evil"), "/");
    }
}

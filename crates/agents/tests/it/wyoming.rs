//! The Wyoming conversation service (`[wyoming]`) over a real TCP connection, framed by the
//! workspace's protocol crate as Home Assistant's Python client frames it: `describe` lists an
//! installed `handle` program, `transcript` is answered with `handled`, and bad input (no text,
//! too long, a language not served, an unknown event) is a named `error` after which the same
//! connection keeps working. A malformed frame gets an `error` and the connection is closed.
//! The same service against the real Home Assistant 2026 is in crates/cli/tests/assist.rs.
#![allow(clippy::unwrap_used)]

use barnabee_wyoming::{Event, Limits, read_event, write_event};
use serde_json::json;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::common::*;

const L: Limits = Limits {
    header: 1 << 20,
    data: 1 << 20,
    payload: 1 << 20,
};

fn start(dir: &std::path::Path) -> (Daemon, String) {
    let d = Daemon::start(
        dir,
        &format!(
            "[memory]\nurl = \"http://127.0.0.1:{}\"\n[http]\nmax_text_chars = 300\n[wyoming]\nlisten = \"127.0.0.1:0\"\nlanguages = [\"en\", \"nl\"]\n",
            closed_port()
        ),
    );
    let (_, h) = d.health();
    let addr = h["checks"]["wyoming"]["detail"]
        .as_str()
        .and_then(|s| s.strip_prefix("tcp://"))
        .unwrap_or_else(|| panic!("no wyoming check in /health: {h}"))
        .to_owned();
    (d, addr)
}

struct Conn {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Conn {
    async fn open(addr: &str) -> Conn {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        Conn {
            r: BufReader::new(r),
            w,
        }
    }

    async fn ask(&mut self, ev: Event) -> Event {
        write_event(&mut self.w, &ev).await.unwrap();
        self.w.flush().await.unwrap();
        self.next()
            .await
            .expect("the service closed the connection")
    }

    async fn next(&mut self) -> Option<Event> {
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            read_event(&mut self.r, L),
        )
        .await
        .unwrap()
        .unwrap()
    }
}

fn transcript(data: serde_json::Value) -> Event {
    Event::new("transcript", data)
}

#[test]
fn home_assistant_conversation_service_answers_and_survives_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (d, addr) = start(dir.path());
    // reqwest's blocking client (the daemon helpers) must not run inside the runtime.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(conversation(&addr));
    assert_eq!(d.health().0, 200, "the daemon's HTTP API is unaffected");
}

async fn conversation(addr: &str) {
    let mut c = Conn::open(addr).await;

    let info = c.ask(Event::new("describe", json!({}))).await;
    assert_eq!(info.kind, "info");
    let handle = &info.data["handle"][0];
    assert_eq!(handle["installed"], true, "{info:?}");
    assert_eq!(
        handle["models"][0]["languages"],
        json!(["en", "nl"]),
        "{info:?}"
    );
    for k in ["asr", "tts", "wake", "intent"] {
        assert_eq!(info.data[k], json!([]), "{k} is not served here");
    }

    // HA 2026.2.3 sends exactly this: text and the conversation id in `context`.
    let ctx = json!({"conversation_id": "01JTESTCONVERSATION"});
    let h = c
        .ask(transcript(
            json!({"text": "What time is it?", "context": ctx}),
        ))
        .await;
    assert_eq!(h.kind, "handled", "{h:?}");
    assert!(h.str("text").unwrap().starts_with("It's "), "{h:?}");
    assert_eq!(
        h.data["context"], ctx,
        "the context comes back as HA sent it"
    );

    // Bad input: a named error each time, and the connection still answers afterwards.
    let cases = [
        (transcript(json!({"context": ctx})), "bad-input"),
        (transcript(json!({"text": "   "})), "bad-input"),
        (
            transcript(json!({"text": "turn on ".repeat(100)})),
            "transcript-too-long",
        ),
        (
            transcript(json!({"text": "Wie spät ist es?", "language": "de"})),
            "unsupported-language",
        ),
        (
            Event::new("synthesize", json!({"text": "hi"})),
            "unknown-event",
        ),
        (Event::new("run-satellite", json!({})), "unknown-event"),
    ];
    for (ev, code) in cases {
        let kind = ev.kind.clone();
        let e = c.ask(ev).await;
        assert_eq!(e.kind, "error", "{kind} -> {e:?}");
        assert_eq!(e.str("code"), Some(code), "{kind} -> {e:?}");
        assert!(!e.str("text").unwrap_or_default().is_empty(), "{e:?}");
        let pong = c
            .ask(Event::new("ping", json!({"text": "still there?"})))
            .await;
        assert_eq!(pong.kind, "pong", "after {kind}: {pong:?}");
    }
    // A served language in its regional form, and no conversation id: still handled.
    let h = c
        .ask(transcript(
            json!({"text": "what time is it", "language": "en-GB"}),
        ))
        .await;
    assert_eq!(h.kind, "handled", "{h:?}");

    // A malformed frame: an error naming it, then the connection is closed.
    c.w.write_all(b"{not json\n").await.unwrap();
    let e = c.next().await.unwrap();
    assert_eq!(e.str("code"), Some("malformed-frame"), "{e:?}");
    assert!(c.next().await.is_none(), "closed after a malformed frame");

    // The service still serves new connections.
    let mut c2 = Conn::open(addr).await;
    assert_eq!(c2.ask(Event::new("describe", json!({}))).await.kind, "info");
}

#[test]
fn a_busy_wyoming_port_degrades_instead_of_failing_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "[memory]\nurl = \"http://127.0.0.1:{}\"\n[wyoming]\nlisten = \"{}\"\n",
            closed_port(),
            busy.local_addr().unwrap()
        ),
    );
    let (status, h) = d.health();
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["checks"]["wyoming"]["ok"], false, "{h}");
    assert!(
        h["checks"]["wyoming"]["detail"]
            .as_str()
            .unwrap()
            .contains("cannot listen"),
        "{h}"
    );
}

#[test]
fn check_config_refuses_an_empty_language_list() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[wyoming]\nlisten = \"127.0.0.1:0\"\nlanguages = []\n",
    );
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wyoming.languages"), "{err}");
}

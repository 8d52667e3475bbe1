//! The runtime playing against a fake systemd: notify order, watchdog withheld while the main
//! loop or a worker is stalled, SIGTERM drain, journald fields, `/health` status codes.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use barnabee_service::config::{LogConfig, LogTarget, ServiceConfig};
use barnabee_service::notify::Notifier;
use barnabee_service::testing::{
    CHILD_TEST_ENV, JournalCapture, NotifyCapture, child_test_command, is_child,
    journal_namespace_command,
};
use barnabee_service::{Check, Runtime};

fn config() -> ServiceConfig {
    ServiceConfig {
        drain_timeout: Duration::from_secs(3),
        ..ServiceConfig::default()
    }
}

/// A plain HTTP/1.1 GET with std only, so the client never shares the server's runtime.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get_with(addr, path, &[])
}

fn http_get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

fn watchdog_pings(msgs: &[(Instant, String)]) -> Vec<Instant> {
    msgs.iter()
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn notify_order_and_watchdog_follow_the_main_loop() {
    let dir = tempfile::tempdir().unwrap();
    let capture = NotifyCapture::bind(dir.path());
    let notifier = Notifier::to_socket(capture.path(), Some(Duration::from_millis(200)));
    let rt = Runtime::new("test", &config()).with_notifier(notifier);
    let worker = rt.heartbeat("worker", Duration::from_millis(300));
    let shutdown = rt.shutdown();

    // The worker beats while `beating` is set.
    let beating = Arc::new(AtomicBool::new(true));
    let done = Arc::new(AtomicBool::new(false));
    let beater = {
        let beating = beating.clone();
        let done = done.clone();
        let worker = worker.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if beating.load(Ordering::SeqCst) {
                    worker.beat();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    // One thread, one runtime: a blocking handler stalls the main loop too.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let tokio_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio_rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let routes = Router::new().route(
                "/stall",
                get(|| async {
                    std::thread::sleep(Duration::from_millis(1000));
                    "stalled"
                }),
            );
            rt.serve_on(listener, routes).await
        })
    });
    let addr = addr_rx.recv().unwrap();

    // READY comes first, with a STATUS line, then pings at about half the watchdog interval.
    let first = capture.recv(Duration::from_secs(5)).unwrap();
    assert!(
        first.starts_with("READY=1\nSTATUS=serving on http://127.0.0.1:"),
        "{first}"
    );
    let pings = watchdog_pings(&capture.collect_for(Duration::from_millis(650)));
    assert!(
        pings.len() >= 4,
        "expected ~6 pings in 650 ms at 100 ms, got {}",
        pings.len()
    );

    // A silent worker withholds the pings and says why in STATUS.
    beating.store(false, Ordering::SeqCst);
    capture.expect("STATUS=worker worker stalled", Duration::from_secs(2));
    let during = capture.collect_for(Duration::from_millis(600));
    assert!(
        watchdog_pings(&during).is_empty(),
        "pinged while the worker was stalled: {during:?}"
    );

    // It beats again: pings resume.
    beating.store(true, Ordering::SeqCst);
    capture.expect("WATCHDOG=1", Duration::from_secs(2));

    // A blocked main loop (the runtime is stuck in a handler) sends nothing for that long.
    // Collect from before the stall so the pings on both sides of the gap are seen.
    let client = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        http_get(addr, "/stall")
    });
    let msgs = capture.collect_for(Duration::from_millis(1800));
    let pings = watchdog_pings(&msgs);
    let longest_gap = pings
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(Duration::ZERO);
    assert!(
        longest_gap >= Duration::from_millis(800),
        "pings continued while the main loop was blocked (longest gap {longest_gap:?})"
    );
    assert_eq!(client.join().unwrap().0, 200);

    // Shutdown: STOPPING=1, and serve returns Ok.
    shutdown.trigger();
    capture.expect("STOPPING=1", Duration::from_secs(3));
    server.join().unwrap().unwrap();
    done.store(true, Ordering::SeqCst);
    beater.join().unwrap();
}

#[test]
fn health_flips_to_503_when_a_critical_check_fails() {
    let tokio_rt = tokio::runtime::Runtime::new().unwrap();
    tokio_rt.block_on(async {
        let rt = Runtime::new("test", &config()).with_notifier(Notifier::disabled());
        let db = rt.health().component("database", Check::ok("open"));
        rt.health()
            .component("embeddings", Check::fail("not configured").non_critical());
        let shutdown = rt.shutdown();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(rt.serve_on(listener, Router::new()));

        let get = |path: &'static str| tokio::task::spawn_blocking(move || http_get(addr, path));
        let (code, body) = get("/health").await.unwrap();
        assert_eq!(code, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "degraded");
        assert_eq!(json["checks"]["embeddings"]["ok"], false);

        db.fail("disk I/O error");
        let (code, body) = get("/health").await.unwrap();
        assert_eq!(code, 503, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "unhealthy");
        assert_eq!(json["checks"]["database"]["detail"], "disk I/O error");

        let (code, body) = get("/metrics").await.unwrap();
        assert_eq!(code, 200);
        assert!(
            body.contains("barnabee_build_info{daemon=\"test\""),
            "{body}"
        );

        shutdown.trigger();
        server.await.unwrap().unwrap();
    });
}

/// Child half of `sigterm_stops_accepting_drains_and_exits_zero`.
#[test]
fn child_serve_until_signalled() {
    if !is_child("child_serve_until_signalled") {
        return;
    }
    let tokio_rt = tokio::runtime::Runtime::new().unwrap();
    let result = tokio_rt.block_on(async {
        let rt = Runtime::new("child", &config());
        let routes = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(700)).await;
                "done"
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("LISTEN {}", listener.local_addr().unwrap());
        rt.serve_on(listener, routes).await
    });
    result.unwrap();
    std::process::exit(0);
}

#[test]
fn sigterm_stops_accepting_drains_and_exits_zero() {
    if std::env::var_os(CHILD_TEST_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let capture = NotifyCapture::bind(dir.path());
    let (exe, args) = child_test_command("child_serve_until_signalled");
    let mut child = Command::new(exe)
        .args(args)
        .env(CHILD_TEST_ENV, "child_serve_until_signalled")
        .env("NOTIFY_SOCKET", capture.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    capture.expect("READY=1", Duration::from_secs(10));
    let mut stdout = child.stdout.take().unwrap();
    let mut out = String::new();
    let addr: SocketAddr = loop {
        let mut buf = [0u8; 256];
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "child exited before printing its address: {out}");
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
        // libtest prints "test <name> ... " before the child's own output on the same line.
        if let Some((_, rest)) = out.split_once("LISTEN ")
            && let Some((addr, _)) = rest.split_once('\n')
        {
            break addr.trim().parse().unwrap();
        }
    };

    // A request in flight when SIGTERM arrives still completes.
    let slow = std::thread::spawn(move || http_get(addr, "/slow"));
    std::thread::sleep(Duration::from_millis(200));
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid has no memory-safety concerns.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    capture.expect("STOPPING=1", Duration::from_secs(3));
    let (code, body) = slow.join().unwrap();
    assert_eq!((code, body.as_str()), (200, "done"));
    // New connections are refused once draining has finished.
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "child exit status {status:?}");
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after exit"
    );
}

/// Child half of `journald_receives_structured_fields`.
#[test]
fn child_log_to_journal() {
    if !is_child("child_log_to_journal") {
        return;
    }
    let log_config = LogConfig {
        level: "info".into(),
        target: LogTarget::Auto,
    };
    barnabee_service::logging::init("barnabee-test", &log_config).unwrap();
    log::info!(request_id = "r-42", latency_ms = 17; "served memory search");
    // One request through the real HTTP stack: the middleware logs it with its fields.
    let tokio_rt = tokio::runtime::Runtime::new().unwrap();
    tokio_rt.block_on(async {
        let rt = Runtime::new("test", &config()).with_notifier(Notifier::disabled());
        let shutdown = rt.shutdown();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let routes = Router::new().route("/v1/things", get(|| async { "ok" }));
        let server = tokio::spawn(rt.serve_on(listener, routes));
        let (code, _) = tokio::task::spawn_blocking(move || {
            http_get_with(addr, "/v1/things", &[("X-Request-Id", "voice-7")])
        })
        .await
        .unwrap();
        assert_eq!(code, 200);
        shutdown.trigger();
        server.await.unwrap().unwrap();
    });
    log::debug!("not shown at info");
    log::warn!(event = "incident", severity = "P2", unit = "barnabee-memory.service"; "restarted after health failures");
    std::process::exit(0);
}

#[test]
fn journald_receives_structured_fields() {
    if std::env::var_os(CHILD_TEST_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let capture = JournalCapture::bind(&dir.path().join("journal"));
    let (exe, args) = child_test_command("child_log_to_journal");
    let output = journal_namespace_command(&capture, &exe)
        .args(args)
        .env(CHILD_TEST_ENV, "child_log_to_journal")
        .output()
        .expect("cannot run `unshare` (util-linux): dev/setup installs it");
    assert!(
        output.status.success(),
        "child under `unshare -rm` failed (this test needs user+mount namespaces): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let served = capture.expect_message("served memory search", Duration::from_secs(2));
    assert_eq!(served["SYSLOG_IDENTIFIER"], "barnabee-test");
    assert_eq!(served["REQUEST_ID"], "r-42");
    assert_eq!(served["LATENCY_MS"], "17");
    assert_eq!(
        served["PRIORITY"], "5",
        "log::Level::Info is journald notice"
    );
    let request = capture.expect_message("GET /v1/things 200", Duration::from_secs(2));
    assert_eq!(
        request["REQUEST_ID"], "voice-7",
        "the caller's X-Request-Id is kept"
    );
    assert_eq!(request["PATH"], "/v1/things");
    assert_eq!(request["STATUS"], "200");
    assert!(request["LATENCY_MS"].parse::<f64>().is_ok(), "{request:?}");
    let incident = capture.expect_message("restarted after", Duration::from_secs(2));
    assert_eq!(incident["EVENT"], "incident");
    assert_eq!(incident["SEVERITY"], "P2");
    assert_eq!(incident["UNIT"], "barnabee-memory.service");
    assert!(
        capture.recv(Duration::from_millis(200)).is_none(),
        "debug record leaked past the info filter"
    );
    // Nothing went to stderr: under systemd the journal is the one destination.
    assert!(!String::from_utf8_lossy(&output.stderr).contains("served memory search"));
}

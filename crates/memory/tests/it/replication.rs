//! Replication embedded: the real daemon with a file replica in a tempdir.
//! - memories written over HTTP reach the replica; wiping the state directory and starting
//!   again restores from the replica before serving;
//! - kill -9 during a write load, restart: nothing acknowledged is lost, and
//!   `barnabee-replicator restore` of the replica equals the database, row for row.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Daemon, client, small_dims, vector};

/// Config for a daemon whose database lives in `state/` and replicates to `replica/`.
fn setup(dir: &Path) -> (PathBuf, PathBuf, String) {
    let state = dir.join("state");
    let replica = dir.join("replica");
    std::fs::create_dir_all(&state).unwrap();
    let extra = format!(
        "{}[replication]\ntype = \"file\"\npath = \"{}\"\nsync_interval = 0.1\nshutdown_timeout = 5\n",
        small_dims(),
        replica.display()
    );
    (state, replica, extra)
}

/// `barnabee-replicator restore -o OUT file://REPLICA`: the CLI's own parser and code, run
/// in-process (the binary's `main` only adds logging), so this needs no other crate built.
async fn cli_restore(replica: &Path, out: &Path) {
    use barnabee_replicator::cli::{Cli, normalize_args, run};
    let args = [
        "barnabee-replicator".to_owned(),
        "restore".to_owned(),
        "-o".to_owned(),
        out.display().to_string(),
        format!("file://{}", replica.display()),
    ];
    let cli = Cli::try_parse_from(normalize_args(args)).unwrap();
    let code = run(cli).await.unwrap();
    assert_eq!(code, 0, "barnabee-replicator restore exited {code}");
}

/// Every row of every table, as text (comparable across two files).
pub(crate) fn dump(db: &Path) -> BTreeMap<String, Vec<String>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = BTreeMap::new();
    for t in tables {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY rowid"))
            .or_else(|_| conn.prepare(&format!("SELECT * FROM \"{t}\"")))
            .unwrap();
        let n = stmt.column_count();
        let rows: Vec<String> = stmt
            .query_map([], |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        out.insert(t, rows);
    }
    out
}

fn memories(db: &Path) -> usize {
    dump(db)["memories"].len()
}

async fn health(d: &Daemon) -> Value {
    client()
        .get(d.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub(crate) async fn post(d: &Daemon, summary: &str) -> i64 {
    let r = client()
        .post(d.url("/v1/memories"))
        .json(&json!({"summary": summary, "memory_type": "fact", "owner": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memories_reach_the_replica_and_a_wiped_state_dir_is_restored_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (state, replica, extra) = setup(dir.path());
    let mut d = Daemon::start(&state, &extra);
    let mut ids = HashMap::new();
    for i in 0..20 {
        let s = format!("memory {i}: the boiler is serviced in March");
        ids.insert(post(&d, &s).await, s);
    }
    // /health: the replication check reports the shipped TXID, non-critical.
    let deadline = Instant::now() + Duration::from_secs(10);
    let h = loop {
        let h = health(&d).await;
        let detail = h["checks"]["replication"]["detail"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if h["checks"]["replication"]["ok"] == true && !detail.contains("TXID 0,") {
            break h;
        }
        assert!(Instant::now() < deadline, "replication never shipped: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let check = &h["checks"]["replication"];
    assert_eq!(check["critical"], false, "{h}");
    let detail = check["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("replica file://{}", replica.display()))
            && detail.contains("last shipped TXID")
            && detail.contains("lag"),
        "{detail}"
    );
    let metrics = client()
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("barnabee_replication_"),
        "no replication metrics:\n{metrics}"
    );

    // The replica already holds every acknowledged memory while the daemon runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    for attempt in 0.. {
        let out = dir.path().join(format!("probe-{attempt}.db"));
        cli_restore(&replica, &out).await;
        if memories(&out) == 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never held 20 memories"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Stop, wipe the state directory, start again: restored before serving.
    d.stop();
    std::fs::remove_dir_all(&state).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    // Listen as systemd would: the restore must extend the start timeout before READY=1.
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let config = crate::common::write_config(&state, &extra);
    let d = Daemon::start_with_env(config, &[("NOTIFY_SOCKET", sock_path.as_path())]);
    let mut notes = Vec::new();
    let mut buf = [0u8; 4096];
    while !notes.iter().any(|n: &String| n.contains("replicating to")) {
        let n = sock.recv(&mut buf).expect("no STATUS naming the replica");
        notes.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let pos = |needle: &str| {
        notes
            .iter()
            .position(|n| n.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {notes:?}"))
    };
    let restoring = pos("STATUS=restoring ");
    assert!(
        notes[restoring].contains("memory.db from replica file://"),
        "{notes:?}"
    );
    assert!(restoring < pos("READY=1"));
    // 15 minutes for the restore (opening adds its own 5 minutes later).
    assert!(
        pos("EXTEND_TIMEOUT_USEC=900000000") < pos("READY=1"),
        "{notes:?}"
    );
    assert!(
        notes[pos("replicating to")]
            .contains(&format!("; replicating to file://{}", replica.display())),
        "{notes:?}"
    );
    let log = d.log();
    let restored = log.find("restored ").expect("no restore logged");
    let serving = log.find("serving on").unwrap();
    assert!(restored < serving, "restored after serving:\n{log}");
    let c = client();
    for (id, summary) in &ids {
        let r = c
            .get(d.url(&format!("/v1/memories/{id}?requester=a")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "memory {id} not restored\n{log}"
        );
        assert_eq!(&r.json::<Value>().await.unwrap()["summary"], summary);
    }
    // And it keeps replicating after the restore.
    let id = post(&d, "written after the restore").await;
    drop(d);
    let out = dir.path().join("after.db");
    cli_restore(&replica, &out).await;
    let rows = dump(&out);
    assert!(
        rows["memories"]
            .iter()
            .any(|r| r.starts_with(&format!("Integer({id})|"))),
        "the memory written after the restore is not on the replica"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_writes_with_replication_loses_nothing_and_restore_equals_database() {
    let dir = tempfile::tempdir().unwrap();
    let (state, replica, extra) = setup(dir.path());
    let mut d = Daemon::start(&state, &extra);
    let acked: Arc<Mutex<HashMap<i64, String>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4 {
        let url = d.url("/v1/memories");
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            let c = client();
            for i in 0.. {
                let summary = format!("writer {w} memory {i} about the garden");
                let body = json!({"summary": summary, "memory_type": "fact", "owner": "a", "embedding": vector(w, 7, 0.01 * (i % 50) as f32)});
                match c.post(&url).json(&body).send().await {
                    Ok(r) if r.status() == StatusCode::CREATED => {
                        let Ok(v) = r.json::<Value>().await else {
                            return;
                        };
                        acked.lock().unwrap().insert(v["id"].as_i64().unwrap(), summary);
                    }
                    _ => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    d.kill9();
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 10, "only {} writes acknowledged", acked.len());

    // Restart on the same state: the database is there (no restore), nothing acked is lost.
    let mut d = Daemon::start(&state, &extra);
    assert!(
        !d.log().contains("restored "),
        "restored although the database exists"
    );
    let c = client();
    for (id, summary) in &acked {
        let r = c
            .get(d.url(&format!("/v1/memories/{id}?requester=a")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "acknowledged memory {id} lost");
        assert_eq!(&r.json::<Value>().await.unwrap()["summary"], summary);
    }
    post(&d, "one more after the crash").await;
    // A clean stop ships what is committed; then the replica equals the database.
    d.stop();
    let out = dir.path().join("restored.db");
    cli_restore(&replica, &out).await;
    let db = state.join("memory.db");
    let (ours, theirs) = (dump(&db), dump(&out));
    assert!(ours["memories"].len() > acked.len());
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (table, rows) in &ours {
        assert!(
            rows == &theirs[table],
            "table {table}: database has {} rows, restore {}",
            rows.len(),
            theirs[table].len()
        );
    }
    let ok: String = rusqlite::Connection::open(&out)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");

    // A clean stop leaves the WAL in place (the daemon never checkpoints, not even on close),
    // so the next start resumes incrementally: no full snapshot is shipped.
    let mut d = Daemon::start(&state, &extra);
    post(&d, "after a clean restart").await;
    d.stop();
    let log = d.log();
    assert!(log.contains("shipped"), "nothing shipped:\n{log}");
    assert!(
        !log.contains("snapshot=true"),
        "a full snapshot after a clean restart:\n{log}"
    );
}

pub(crate) const S3_KEY: &str = "GK0123456789abcdef01234567";
pub(crate) const S3_SECRET: &str =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// s3s-fs 0.14.1 (checks signatures) on a free loopback port; killed on drop.
pub(crate) struct S3s {
    child: std::process::Child,
    bin: PathBuf,
    args: Vec<String>,
    pub(crate) port: u16,
    _dir: tempfile::TempDir,
}

impl S3s {
    pub(crate) fn start(bucket: &str) -> S3s {
        let bin = std::env::var_os("S3S_FS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let cache = std::env::var_os("BARNABEE_CACHE")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| {
                        std::env::var_os("XDG_CACHE_HOME")
                            .map(PathBuf::from)
                            .unwrap_or_else(|| {
                                PathBuf::from(std::env::var("HOME").unwrap_or_default())
                                    .join(".cache")
                            })
                            .join("barnabee")
                    });
                cache.join("tools/s3s-fs-0.14.1/bin/s3s-fs")
            });
        assert!(
            bin.exists(),
            "{} missing: run dev/setup (dev/setup.d/30-litestream.sh builds s3s-fs 0.14.1) or set S3S_FS",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(bucket)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let args: Vec<String> = [
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            S3_KEY,
            "--secret-key",
            S3_SECRET,
            &dir.path().display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let child = Self::spawn(&bin, &args, port);
        S3s {
            child,
            bin,
            args,
            port,
            _dir: dir,
        }
    }

    fn spawn(bin: &Path, args: &[String], port: u16) -> std::process::Child {
        let child = std::process::Command::new(bin)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "s3s-fs did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn start_again(&mut self) {
        self.child = Self::spawn(&self.bin, &self.args, self.port);
    }

    /// SIGSTOP: the server keeps its connections but answers nothing (a hung S3).
    pub(crate) fn pause(&self) {
        signal(self.child.id(), "-STOP");
    }

    /// SIGCONT after [`Self::pause`].
    pub(crate) fn resume(&self) {
        signal(self.child.id(), "-CONT");
    }
}

impl Drop for S3s {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn wait_replication_ok(d: &Daemon, want: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = health(d).await;
        if h["checks"]["replication"]["ok"] == want {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "replication ok never became {want}: {h}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_replica_with_credential_file_ships_degrades_when_down_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = S3s::start("barnabee");
    let creds = dir.path().join("creds");
    std::fs::create_dir_all(&creds).unwrap();
    let secret = creds.join("s3-secret");
    std::fs::write(&secret, format!("{S3_SECRET}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let extra = format!(
        "{}[replication]\ntype = \"s3\"\nbucket = \"barnabee\"\npath = \"memory\"\nendpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\nforce_path_style = true\naccess_key_id = \"{S3_KEY}\"\nsecret_access_key_file = \"s3-secret\"\nsync_interval = 0.1\nfail_after_errors = 2\n",
        small_dims(),
        s3.port
    );
    let config = crate::common::write_config(&state, &extra);
    let env = [("CREDENTIALS_DIRECTORY", creds.as_path())];
    let mut d = Daemon::start_with_env(config, &env);
    let mut ids = HashMap::new();
    for i in 0..5 {
        let s = format!("s3 memory {i}");
        ids.insert(post(&d, &s).await, s);
    }
    let h = wait_replication_ok(&d, true).await;
    assert!(
        h["checks"]["replication"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("replica s3://barnabee/memory: last shipped TXID"),
        "{h}"
    );

    // Backup verification against S3 (crate::verify): it restores and matches.
    let verify = |d: &Daemon| {
        let url = d.url("/v1/backup/verify");
        async move {
            let r = client().post(url).send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let (code, v) = verify(&d).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["replica"], "s3://barnabee/memory", "{v}");

    // The replica goes away: writes still succeed, /health degrades (200), never unhealthy.
    s3.stop();
    // A verification now fails clearly, in bounded time, and writes are not stalled for long.
    let started = Instant::now();
    let (code, v) = verify(&d).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    assert!(started.elapsed() < Duration::from_secs(60), "{v}");
    let s = "written while the replica was down".to_owned();
    ids.insert(post(&d, &s).await, s);
    let h = wait_replication_ok(&d, false).await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(
        h["checks"]["replication"]["detail"]
            .as_str()
            .unwrap()
            .contains("consecutive errors"),
        "{h}"
    );
    // It comes back: shipping resumes and the check recovers.
    s3.start_again();
    wait_replication_ok(&d, true).await;
    let (code, v) = verify(&d).await;
    assert_eq!(code, StatusCode::OK, "{v}");

    d.stop();
    std::fs::remove_dir_all(&state).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let config = crate::common::write_config(&state, &extra);
    let d = Daemon::start_with_env(config, &env);
    let log = d.log();
    assert!(log.contains("restored "), "no restore:\n{log}");
    let c = client();
    for (id, summary) in &ids {
        let r = c
            .get(d.url(&format!("/v1/memories/{id}?requester=a")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "memory {id} not restored\n{log}"
        );
        assert_eq!(&r.json::<Value>().await.unwrap()["summary"], summary);
    }

    // The replica is unreachable at start (the database exists, so no restore is needed):
    // the daemon serves anyway, /health degrades, and replication starts once S3 is back.
    let mut d = d;
    d.stop();
    s3.stop();
    let config = crate::common::write_config(&state, &extra);
    let mut d = Daemon::start_with_env(config, &env);
    let h = wait_replication_ok(&d, false).await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(
        h["checks"]["replication"]["detail"]
            .as_str()
            .unwrap()
            .contains("not started"),
        "{h}"
    );
    let late = post(&d, "written before replication could start").await;
    s3.start_again();
    wait_replication_ok(&d, true).await;
    d.stop();
    std::fs::remove_dir_all(&state).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let config = crate::common::write_config(&state, &extra);
    let d = Daemon::start_with_env(config, &env);
    let r = client()
        .get(d.url(&format!("/v1/memories/{late}?requester=a")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "memory {late} not on the replica"
    );
}

/// An S3 `[replication]` section whose secret is the credential `s3-secret-access-key`.
pub(crate) fn s3_extra(port: u16) -> String {
    format!(
        "{}[replication]\ntype = \"s3\"\nbucket = \"barnabee\"\npath = \"memory\"\nendpoint = \"http://127.0.0.1:{port}\"\nregion = \"us-east-1\"\nforce_path_style = true\naccess_key_id = \"{S3_KEY}\"\nsecret_access_key_file = \"s3-secret-access-key\"\nsync_interval = 0.1\n",
        small_dims(),
    )
}

/// `$CREDENTIALS_DIRECTORY/s3-secret-access-key` as systemd leaves it: mode 0400, `value`
/// (empty: the `SetCredential=` default while sops-nix cannot decrypt).
pub(crate) fn credential(creds: &Path, value: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(creds).unwrap();
    let p = creds.join("s3-secret-access-key");
    if p.exists() {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(&p, value).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
}

fn replication_detail(h: &Value) -> &str {
    h["checks"]["replication"]["detail"].as_str().unwrap()
}

/// First boot: the S3 secret is an empty credential. The daemon starts (READY=1) on a new
/// database, serves reads and writes, and `/health` is degraded (200) with the replication
/// check saying "not provisioned"; `--check-config` passes. No S3 server is needed: nothing
/// may be sent to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_secret_not_provisioned_serves_without_replication_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    credential(&creds, "");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = crate::common::write_config(&state, &s3_extra(closed));

    let (code, _, err) =
        crate::common::run_cli(&["--config", config.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 0, "--check-config refused: {err}");

    let notify = barnabee_service::testing::NotifyCapture::bind(dir.path());
    let env = [
        ("CREDENTIALS_DIRECTORY", creds.as_path()),
        ("NOTIFY_SOCKET", notify.path()),
    ];
    let mut d = Daemon::start_with_env(config.clone(), &env);
    notify.expect("READY=1", Duration::from_secs(10));
    notify.expect(
        "NOT replicating to s3://barnabee/memory",
        Duration::from_secs(10),
    );

    let h = health(&d).await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["checks"]["database"]["ok"], true, "{h}");
    assert_eq!(h["checks"]["replication"]["ok"], false, "{h}");
    assert_eq!(h["checks"]["replication"]["critical"], false, "{h}");
    let detail = replication_detail(&h);
    assert!(
        detail.starts_with("replica s3://barnabee/memory: not replicating: secret `replication.secret_access_key_file`: ")
            && detail.contains(&format!(
                "{} is empty: not provisioned yet (the secret was not decrypted; see docs/nixos.md \"First boot\")",
                creds.join("s3-secret-access-key").display()
            ))
            && detail.contains("was created without restoring from the replica"),
        "{h}"
    );
    let r = client().get(d.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let id = post(&d, "written before the secret was provisioned").await;
    let r = client()
        .get(d.url(&format!("/v1/memories/{id}?requester=a")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let m = client()
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("barnabee_memory_memories"), "{m}");
    assert!(!m.contains("barnabee_replication_"), "{m}");

    // Nothing to verify yet: a requested verification says so (503), and it is not a backup
    // failure: backup_verify stays ok, no failure is counted, nothing is notified.
    let r = client()
        .post(d.url("/v1/backup/verify"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("replication is not provisioned yet, nothing to verify"),
        "{v}"
    );
    let h = health(&d).await;
    assert_eq!(h["checks"]["backup_verify"]["ok"], true, "{h}");
    let m = client()
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !m.lines()
            .any(|l| l.starts_with("barnabee_backup_verify_failures_total{") && !l.ends_with(" 0")),
        "{m}"
    );

    let log = d.log();
    for event in [
        "event=restore_not_provisioned",
        "event=replication_not_provisioned",
    ] {
        assert!(log.contains(event), "{event} missing:\n{log}");
    }
    assert!(log.contains("was NOT consulted"), "{log}");
    assert!(state.join("memory.db.not-restored").exists());

    // A restart with the database present: the same, and the write is still there.
    d.stop();
    let mut d = Daemon::start_with_env(config, &env);
    let h = health(&d).await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(
        replication_detail(&h).contains("not provisioned yet"),
        "{h}"
    );
    d.stop();
    assert_eq!(memories(&state.join("memory.db")), 1);
}

/// The secret arrives after first boot, and the replica holds the family's memories (a
/// replacement appliance): the first-boot database is never shipped over them. Replication is
/// held, `/health` says how to choose; moving the database aside as it says restores them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_secret_provisioned_later_never_buries_the_replica() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3s::start("barnabee");
    let extra = s3_extra(s3.port);
    let creds = dir.path().join("creds");
    let env = [("CREDENTIALS_DIRECTORY", creds.as_path())];

    // The old appliance ships the family's memories.
    credential(&creds, &format!("{S3_SECRET}\n"));
    let old = dir.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    let mut d = Daemon::start_with_env(crate::common::write_config(&old, &extra), &env);
    let family = post(&d, "the family's memory").await;
    wait_replication_ok(&d, true).await;
    d.stop();

    // The new one boots without its secret: a new database, marked.
    credential(&creds, "");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let config = crate::common::write_config(&state, &extra);
    let mut d = Daemon::start_with_env(config.clone(), &env);
    post(&d, "said on first boot").await;
    d.stop();

    // Provisioned: the replica holds data, so replication is held (degraded, 200).
    credential(&creds, &format!("{S3_SECRET}\n"));
    let mut d = Daemon::start_with_env(config.clone(), &env);
    let h = wait_replication_ok(&d, false).await;
    assert_eq!(h["status"], "degraded", "{h}");
    let detail = replication_detail(&h);
    assert!(
        detail.starts_with("replica s3://barnabee/memory: not replicating: it holds data, but ")
            && detail.contains("move ")
            && detail.contains("memory.db.not-restored"),
        "{h}"
    );
    assert!(d.log().contains("event=replication_held"), "{}", d.log());
    post(&d, "said while held").await;
    d.stop();

    // As /health says: move the database aside and start: the family's memories come back.
    let aside = dir.path().join("aside");
    std::fs::create_dir_all(&aside).unwrap();
    for e in std::fs::read_dir(&state).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with("memory.db") {
            std::fs::rename(e.path(), aside.join(e.file_name())).unwrap();
        }
    }
    let d = Daemon::start_with_env(config, &env);
    assert!(d.log().contains("restored "), "no restore:\n{}", d.log());
    let r = client()
        .get(d.url(&format!("/v1/memories/{family}?requester=a")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", d.log());
    assert_eq!(
        r.json::<Value>().await.unwrap()["summary"],
        "the family's memory"
    );
    wait_replication_ok(&d, true).await;
    assert_eq!(memories(&aside.join("memory.db")), 2);
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid} failed");
}

#![allow(clippy::unwrap_used, clippy::type_complexity)]
//! The `wal-scenario` reference replica: our WAL reader reproduces the upstream sync steps and
//! every replica copy (S3 layout, file layout, legacy frame encoding) restores byte-identical.

mod common;

use std::path::Path;

use barnabee_replicator::client::{FileClient, MemoryClient, ReplicaClient};
use barnabee_replicator::ltx;
use barnabee_replicator::restore::{self, RestoreError, Target};
use barnabee_replicator::wal;

/// Load an S3-layout directory (`<dir>/<prefix>/<LLLL>/<name>`) into a memory replica.
fn load_s3_layout(dir: &Path) -> MemoryClient {
    let c = MemoryClient::new();
    for lvl in std::fs::read_dir(dir).unwrap() {
        let lvl = lvl.unwrap();
        let level = u8::from_str_radix(lvl.file_name().to_str().unwrap(), 16).unwrap();
        for f in std::fs::read_dir(lvl.path()).unwrap() {
            let f = f.unwrap();
            let (min, max) = ltx::parse_filename(f.file_name().to_str().unwrap()).unwrap();
            let data = std::fs::read(f.path()).unwrap();
            let ts = ltx::decode_header(&data).unwrap().timestamp;
            c.insert(level, min, max, data, ts);
        }
    }
    c
}

/// Copy the file-layout replica and set mtimes to header timestamps (git drops mtimes).
fn copy_file_layout(src: &Path, dst: &Path) {
    for lvl in std::fs::read_dir(src.join("ltx")).unwrap() {
        let lvl = lvl.unwrap();
        let d = dst.join("ltx").join(lvl.file_name());
        std::fs::create_dir_all(&d).unwrap();
        for f in std::fs::read_dir(lvl.path()).unwrap() {
            let f = f.unwrap();
            let data = std::fs::read(f.path()).unwrap();
            let ts = ltx::decode_header(&data).unwrap().timestamp;
            let p = d.join(f.file_name());
            std::fs::write(&p, &data).unwrap();
            let file = std::fs::File::options().write(true).open(&p).unwrap();
            file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ts as u64))
                .unwrap();
        }
    }
}

async fn check_restores<C: ReplicaClient>(c: &C, dir: &Path, what: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let ts = |s: &str| barnabee_replicator::time::parse_rfc3339(s).unwrap();
    let cases: Vec<(Target, u64, Vec<(u8, u64, u64)>)> = vec![
        (Target::Latest, 3, vec![(9, 1, 3)]),
        (Target::Txid(1), 1, vec![(0, 1, 1)]),
        (Target::Txid(2), 2, vec![(0, 1, 1), (0, 2, 2)]),
        (Target::Txid(3), 3, vec![(9, 1, 3)]),
        (
            Target::Timestamp(ts("2026-01-01T00:01:30Z")),
            2,
            vec![(0, 1, 1), (0, 2, 2)],
        ),
    ];
    for (i, (target, txid, want_plan)) in cases.into_iter().enumerate() {
        let plan = restore::plan(c, target).await.unwrap();
        let got: Vec<_> = plan
            .iter()
            .map(|f| (f.level, f.min_txid, f.max_txid))
            .collect();
        assert_eq!(got, want_plan, "{what} {target:?}");
        let out = tmp.path().join(format!("out-{i}.db"));
        let r = restore::apply(c, &plan, &out, |_, _| {}).await.unwrap();
        assert_eq!(r.txid, txid);
        let want =
            std::fs::read(dir.join(format!("wal-scenario/expected/txid-{txid}.db"))).unwrap();
        assert!(
            std::fs::read(&out).unwrap() == want,
            "{what} {target:?}: restored image differs"
        );
        assert!(!tmp.path().join(format!("out-{i}.db.tmp")).exists());
    }
    let e = restore::plan(c, Target::Timestamp(ts("2026-01-01T00:00:00Z")))
        .await
        .unwrap_err();
    assert!(matches!(e, RestoreError::NotAvailable(_)), "{e}");
    // Output must not exist.
    let out = tmp.path().join("out-0.db");
    assert!(matches!(
        restore::restore(c, &out, Target::Latest).await,
        Err(RestoreError::Exists(_))
    ));
}

#[tokio::test]
async fn wal_scenario_replicas_restore_byte_identical() {
    let Some(dir) = common::shared_ltx("wal_scenario_replicas_restore_byte_identical") else {
        return;
    };
    let s3 = load_s3_layout(&dir.join("wal-scenario/replica-s3/db"));
    check_restores(&s3, &dir, "replica-s3").await;
    let legacy = load_s3_layout(&dir.join("wal-scenario/replica-s3-legacy/db"));
    check_restores(&legacy, &dir, "replica-s3-legacy").await;
    let tmp = tempfile::tempdir().unwrap();
    copy_file_layout(&dir.join("wal-scenario/replica-file"), tmp.path());
    check_restores(&FileClient::new(tmp.path()), &dir, "replica-file").await;
}

#[test]
fn wal_reader_reproduces_upstream_sync_steps() {
    let Some(dir) = common::shared_ltx("wal_reader_reproduces_upstream_sync_steps") else {
        return;
    };
    let steps: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.join("wal-scenario/sync-steps.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let mut prev_commit = 0u32;
    for (i, s) in steps.iter().enumerate() {
        let n = i + 1;
        let walb = std::fs::read(dir.join(format!("wal-scenario/step{n}.db-wal"))).unwrap();
        let start = s["wal_offset"].as_u64().unwrap();
        let (hdr, r) = wal::read_committed(&walb, start).unwrap();
        assert_eq!(format!("{:08x}", hdr.salt1), s["salt1"].as_str().unwrap());
        assert_eq!(format!("{:08x}", hdr.salt2), s["salt2"].as_str().unwrap());
        assert_eq!(r.end, s["next_offset"].as_u64().unwrap(), "step {n}");
        assert_eq!(r.end - start, s["wal_size"].as_u64().unwrap(), "step {n}");
        let commit = r.commit.unwrap();
        assert_eq!(u64::from(commit), s["commit"].as_u64().unwrap(), "step {n}");
        // WAL pages plus growth pages from the database file = the reference L0 file's pages.
        let db = std::fs::read(dir.join(format!("wal-scenario/step{n}.db"))).unwrap();
        let mut pages = r.pages.clone();
        if n == 1 {
            for p in 1..=commit {
                pages
                    .entry(p)
                    .or_insert_with(|| db[(p as usize - 1) * 4096..p as usize * 4096].to_vec());
            }
        } else {
            for p in prev_commit + 1..=commit {
                pages
                    .entry(p)
                    .or_insert_with(|| db[(p as usize - 1) * 4096..p as usize * 4096].to_vec());
            }
        }
        let reference = ltx::decode(
            &std::fs::read(dir.join(format!(
                "wal-scenario/replica-s3/db/0000/{n:016x}-{n:016x}.ltx"
            )))
            .unwrap(),
        )
        .unwrap();
        let ours: Vec<(u32, Vec<u8>)> = pages.into_iter().collect();
        assert_eq!(ours.len() as u64, s["pages"].as_u64().unwrap(), "step {n}");
        assert!(
            ours == reference.pages,
            "step {n}: pages differ from the reference L0 file"
        );
        prev_commit = commit;
    }
    // Torn tail: a WAL cut in the middle of the last transaction yields only earlier commits.
    let walb = std::fs::read(dir.join("wal-scenario/step3.db-wal")).unwrap();
    let (_, r) = wal::read_committed(&walb[..135992 - 100], 94792).unwrap();
    assert_eq!(r.end, 94792);
    assert!(r.commit.is_none() && r.pages.is_empty());
    // A flipped byte in a frame stops reading there (checksum chain).
    let mut bad = walb.clone();
    bad[94792 + 24 + 10] ^= 1;
    let (_, r) = wal::read_committed(&bad, 32).unwrap();
    assert_eq!(r.end, 94792);
    // Not a frame boundary.
    assert!(wal::read_committed(&walb, 33).is_err());
}

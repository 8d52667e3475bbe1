//! What point-in-time restore costs in replica storage: a typical family database replicated
//! for a simulated month, with the replicator's real level-0 files (built from the WAL of a
//! real barnabee-memory database by `barnabee_replicator::db::Db`), its real compaction
//! (L1 30 s, L2 5 min, L3 1 h), level-9 snapshots and retention (`compactor::*`), run on a
//! simulated clock: every object gets the simulated time as its creation time, which is all
//! compaction, snapshots and retention look at. Nothing is extrapolated; the LTX bytes are
//! the ones a real replica would hold (file replica layout: one object per file).
//!
//! ```text
//! cargo bench -p barnabee-memory --bench retention -- [--memories 5000] [--turns 20000]
//!     [--days 36] [--writes 40] [--snapshot-hours 24] [--retention-days 31]
//! ```
//!
//! A day's writes: `--writes` transactions at random times, a quarter new memories (with a
//! 384-dimension embedding), the rest conversation turns; plus `PRAGMA optimize` every 6 h as
//! the maintenance worker runs it. At the end the newest state and a point in time
//! `retention - 1` days back are restored from the replica and checked, and a point beyond the
//! retention is shown to be gone.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use barnabee_memory::config::Synchronous;
use barnabee_memory::migrations;
use barnabee_memory::model::{MemoryType, NewConversation, NewTurn, Visibility, f32_to_blob};
use barnabee_memory::schema::OpenOptions;
use barnabee_memory::store::Store;
use barnabee_replicator::client::{ClientError, FileInfo, MemoryClient, Payload, ReplicaClient};
use barnabee_replicator::compactor;
use barnabee_replicator::db::Db;
use barnabee_replicator::ltx::PageEncoding;
use barnabee_replicator::restore::{self, RestoreError, Target};
use rusqlite::params;

mod common;

use common::{DIMS, Rng, sentence};
const DAY_MS: i64 = 86_400_000;

/// Pronounceable words, Zipf-distributed in sentences (text compresses like text).
fn vocabulary() -> Vec<String> {
    let syll = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "fi", "go", "ha", "ju", "pe",
        "zo",
    ];
    let mut words = Vec::new();
    for a in syll {
        for b in syll {
            for c in syll {
                words.push(format!("{a}{b}{c}"));
            }
        }
    }
    words
}

/// A memory replica whose objects are created at the simulated time `now`, whatever
/// timestamp the caller passes (compaction passes the newest input's header time, which is
/// wall-clock time in this simulation).
struct SimClient {
    inner: MemoryClient,
    now: AtomicI64,
}

impl ReplicaClient for SimClient {
    fn describe(&self) -> String {
        "sim://replica".into()
    }
    fn object_name(&self, level: u8, min: u64, max: u64) -> String {
        self.inner.object_name(level, min, max)
    }
    async fn list(&self, level: u8, precise: bool) -> Result<Vec<FileInfo>, ClientError> {
        self.inner.list(level, precise).await
    }
    async fn get(&self, level: u8, min: u64, max: u64) -> Result<Vec<u8>, ClientError> {
        self.inner.get(level, min, max).await
    }
    async fn put(
        &self,
        level: u8,
        min: u64,
        max: u64,
        data: Payload,
        _ts: i64,
    ) -> Result<(), ClientError> {
        let data = data.to_vec().map_err(|source| ClientError::Io {
            object: self.object_name(level, min, max),
            source,
        })?;
        self.inner
            .insert(level, min, max, data, self.now.load(Ordering::Relaxed));
        Ok(())
    }
    async fn delete(&self, files: &[FileInfo]) -> Result<(), ClientError> {
        self.inner.delete(files).await
    }
    async fn delete_all(&self) -> Result<(), ClientError> {
        self.inner.delete_all().await
    }
}

/// Objects and bytes per level.
async fn usage(c: &SimClient) -> BTreeMap<u8, (usize, u64)> {
    let mut out = BTreeMap::new();
    for level in barnabee_replicator::client::LEVELS {
        let files = c.list(level, false).await.unwrap();
        if !files.is_empty() {
            out.insert(level, (files.len(), files.iter().map(|f| f.size).sum()));
        }
    }
    out
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().unwrap())
    };
    let n_memories = arg("--memories", 5000);
    let n_turns = arg("--turns", 20_000);
    let days = arg("--days", 36) as i64;
    let writes_per_day = arg("--writes", 40);
    let snapshot_ms = arg("--snapshot-hours", 24) as i64 * 3_600_000;
    let retention_ms = arg("--retention-days", 31) as i64 * DAY_MS;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("memory.db");
    let vocab = vocabulary();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let owners = ["mum", "dad", "emma", "leo", "grandma"];

    // 1. The family's database as it is after a year or two.
    let started = Instant::now();
    let mut opts = OpenOptions::for_db(&db);
    opts.synchronous = Synchronous::Normal;
    opts.replication_owns_checkpoints = true;
    let store = Store::open(&db, migrations::all(), &opts, 1, DIMS).unwrap();
    let memory_row = |rng: &mut Rng, t: i64| {
        (
            sentence(rng, &vocab, 6, 8),
            sentence(rng, &vocab, 15, 40),
            format!(
                "[\"{}\",\"{}\"]",
                vocab[rng.zipf(vocab.len())],
                vocab[rng.zipf(vocab.len())]
            ),
            MemoryType::ALL[rng.below(8)].as_str(),
            owners[rng.below(owners.len())],
            if rng.below(3) == 0 {
                Visibility::Private
            } else {
                Visibility::Family
            }
            .as_str(),
            t,
            f32_to_blob(&rng.vector()),
        )
    };
    let insert_memory =
        |tx: &rusqlite::Transaction<'_>,
         m: &(String, String, String, &str, &str, &str, i64, Vec<u8>)| {
            tx.prepare_cached("INSERT INTO memories (summary, content, keywords, memory_type, owner, visibility, created_at, updated_at, embedding, embedding_model) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, 'all-MiniLM-L6-v2')")
            .unwrap()
            .execute(params![m.0, m.1, m.2, m.3, m.4, m.5, m.6, m.7])
            .unwrap();
        };
    let t0: i64 = 1_767_225_600_000; // 2026-01-01
    for chunk in 0..n_memories.div_ceil(1000) {
        let rows: Vec<_> = (0..1000.min(n_memories - chunk * 1000))
            .map(|_| {
                let t = t0 - rng.below(400) as i64 * DAY_MS;
                memory_row(&mut rng, t)
            })
            .collect();
        store
            .with_write_tx(|tx| {
                for m in &rows {
                    insert_memory(tx, m);
                }
                Ok(())
            })
            .unwrap();
    }
    let turns_per_conversation = 8;
    let mut conversation = 0;
    for i in 0..n_turns {
        if i % turns_per_conversation == 0 {
            conversation = store
                .create_conversation(NewConversation {
                    speaker: Some(owners[rng.below(owners.len())].into()),
                    mode: Some("voice".into()),
                    started_at: Some(t0 - rng.below(400) as i64 * DAY_MS),
                    ended_at: None,
                    summary: None,
                    topic_tags: vec![],
                    external_id: None,
                })
                .unwrap()
                .id;
        }
        store
            .append_turn(
                conversation,
                NewTurn {
                    role: "user".into(),
                    utterance: sentence(&mut rng, &vocab, 4, 8),
                    response: Some(sentence(&mut rng, &vocab, 8, 24)),
                    route: Some("interaction".into()),
                    latency_ms: Some(400),
                    created_at: Some(t0),
                },
            )
            .unwrap();
    }
    // As after the replicator's first checkpoint: the WAL folded into the file.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let db_bytes = std::fs::metadata(&db).unwrap().len();
    println!(
        "database: {n_memories} memories (384-dim embeddings), {n_turns} turns: {:.1} MB (built in {:.0} s)",
        mb(db_bytes),
        started.elapsed().as_secs_f64()
    );

    // 2. Replicate it for `days` simulated days.
    let client = SimClient {
        inner: MemoryClient::new(),
        now: AtomicI64::new(t0),
    };
    let enc = PageEncoding::Frame;
    let mut repl = Db::open(&db, 0, enc, Duration::from_secs(1)).unwrap();
    let ship = |repl: &mut Db, client: &SimClient| {
        while let Some(p) = repl.sync().unwrap() {
            let now = client.now.load(Ordering::Relaxed);
            rt.block_on(client.put(0, p.txid, p.txid, p.data.clone(), now))
                .unwrap();
            repl.mark_shipped(&p);
        }
    };
    ship(&mut repl, &client);
    let levels: [(u8, i64); 3] = [(1, 30_000), (2, 300_000), (3, 3_600_000)];
    let step = 30_000i64;
    let mut write_times: Vec<i64> = Vec::new();
    println!(
        "simulating {days} days, {writes_per_day} writes a day, snapshots every {} h kept {} days",
        snapshot_ms / 3_600_000,
        retention_ms / DAY_MS
    );
    println!(
        "{:>4} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "day", "objects", "L0 MB", "L1 MB", "L2 MB", "L3 MB", "L9 MB", "total MB"
    );
    let sim_started = Instant::now();
    let mut printed = Vec::new();
    for day in 0..days {
        let start = t0 + day * DAY_MS;
        write_times.clear();
        write_times.extend((0..writes_per_day).map(|_| start + rng.below(DAY_MS as usize) as i64));
        write_times.sort();
        let mut next_write = 0;
        let mut t = start;
        while t < start + DAY_MS {
            client.now.store(t, Ordering::Relaxed);
            while next_write < write_times.len() && write_times[next_write] <= t {
                next_write += 1;
                if rng.below(4) == 0 {
                    let m = memory_row(&mut rng, t);
                    store
                        .with_write_tx(|tx| {
                            insert_memory(tx, &m);
                            Ok(())
                        })
                        .unwrap();
                } else {
                    if rng.below(4) == 0 {
                        conversation = store
                            .create_conversation(NewConversation {
                                speaker: Some(owners[rng.below(owners.len())].into()),
                                mode: Some("voice".into()),
                                started_at: Some(t),
                                ended_at: None,
                                summary: None,
                                topic_tags: vec![],
                                external_id: None,
                            })
                            .unwrap()
                            .id;
                    }
                    store
                        .append_turn(
                            conversation,
                            NewTurn {
                                role: "user".into(),
                                utterance: sentence(&mut rng, &vocab, 4, 8),
                                response: Some(sentence(&mut rng, &vocab, 8, 24)),
                                route: Some("interaction".into()),
                                latency_ms: Some(400),
                                created_at: Some(t),
                            },
                        )
                        .unwrap();
                }
                ship(&mut repl, &client);
            }
            if (t - start) % (6 * 3_600_000) == 0 {
                store.optimize().unwrap();
                ship(&mut repl, &client);
            }
            rt.block_on(async {
                for (level, iv) in levels {
                    compactor::compact_level(&client, level, iv, t, enc)
                        .await
                        .unwrap();
                }
                compactor::snapshot(&client, snapshot_ms, t, enc)
                    .await
                    .unwrap();
                compactor::enforce_retention(&client, 300_000, retention_ms, t)
                    .await
                    .unwrap();
            });
            t += step;
        }
        let u = rt.block_on(usage(&client));
        let lvl = |l: u8| mb(u.get(&l).map_or(0, |x| x.1));
        let objects: usize = u.values().map(|x| x.0).sum();
        let total: u64 = u.values().map(|x| x.1).sum();
        println!(
            "{:>4} {:>8} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            day + 1,
            objects,
            lvl(0),
            lvl(1),
            lvl(2),
            lvl(3),
            lvl(9),
            mb(total)
        );
        printed.push(total);
    }
    let end = client.now.load(Ordering::Relaxed);
    let final_db = std::fs::metadata(&db).unwrap().len();
    let total = *printed.last().unwrap();
    println!(
        "after {days} days: replica {:.1} MB for a {:.1} MB database ({:.1}x); simulated in {:.0} s",
        mb(total),
        mb(final_db),
        total as f64 / final_db as f64,
        sim_started.elapsed().as_secs_f64()
    );

    // 3. What the replica can restore: the newest state, and a point retention - 1 days back.
    let out = tmp.path().join("latest.db");
    let r = rt
        .block_on(restore::restore(&client, &out, Target::Latest))
        .unwrap();
    let count = |p: &std::path::Path, table: &str| -> i64 {
        rusqlite::Connection::open(p)
            .unwrap()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(&out, "memories"), count(&db, "memories"));
    assert_eq!(count(&out, "turns"), count(&db, "turns"));
    println!(
        "restore latest: TXID {}, {} memories, {} turns: equal to the database",
        r.txid,
        count(&out, "memories"),
        count(&out, "turns")
    );
    let back = retention_ms / DAY_MS - 1;
    let out = tmp.path().join("back.db");
    match rt.block_on(restore::restore(
        &client,
        &out,
        Target::Timestamp(end - back * DAY_MS),
    )) {
        Ok(r) => println!(
            "restore {back} days back: TXID {}, {} memories, {} turns",
            r.txid,
            count(&out, "memories"),
            count(&out, "turns")
        ),
        Err(e) => println!("restore {back} days back: FAILED: {e}"),
    }
    let beyond = retention_ms / DAY_MS + 2;
    let out = tmp.path().join("beyond.db");
    match rt.block_on(restore::restore(
        &client,
        &out,
        Target::Timestamp(end - beyond * DAY_MS),
    )) {
        Err(RestoreError::NotAvailable(why)) => {
            println!("restore {beyond} days back: not available ({why})")
        }
        Ok(r) => println!(
            "restore {beyond} days back: still possible (TXID {})",
            r.txid
        ),
        Err(e) => println!("restore {beyond} days back: {e}"),
    }
}

//! Search latency (FTS, vector, hybrid: p50/p99) and insert throughput at N memories with
//! 384-dimension embeddings, on this machine.
//!
//! `cargo bench -p barnabee-memory --bench search -- [--n 100000] [--queries 300] [--dir DIR]`
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use barnabee_memory::config::{SearchConfig, Synchronous};
use barnabee_memory::model::{MemoryType, NewMemory, SearchMode, SearchRequest, f32_to_blob};
use barnabee_memory::schema::OpenOptions;
use barnabee_memory::store::Store;
use barnabee_memory::{migrations, search};
use rusqlite::params;

mod common;

use common::{DIMS, Rng, sentence};

fn vocabulary(size: usize) -> Vec<String> {
    let syll = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "fi", "go", "ha", "ju", "pe",
        "zo",
    ];
    let mut words = Vec::new();
    for a in syll {
        for b in syll {
            for c in syll {
                for d in syll {
                    words.push(format!("{a}{b}{c}{d}"));
                }
            }
        }
    }
    // Shuffle deterministically so frequent words are not all alike.
    let mut rng = Rng(7);
    for i in (1..words.len()).rev() {
        words.swap(i, rng.below(i + 1));
    }
    words.truncate(size);
    words
}

/// CPU time of the whole process (all threads), from /proc/self/stat, in seconds.
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    (f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0)) as f64 / 100.0
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().unwrap())
    };
    let n = arg("--n", 100_000);
    let queries = arg("--queries", 300);
    // Distinct words; frequencies follow Zipf's law (p(rank r) ~ 1/r), as in natural text.
    let vocab_size = arg("--vocab", 30_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = args
        .iter()
        .position(|a| a == "--dir")
        .and_then(|i| args.get(i + 1))
        .map_or(tmp.path().to_owned(), std::path::PathBuf::from);
    let db = dir.join("bench.db");
    let _ = std::fs::remove_file(&db);
    let vocab = vocabulary(vocab_size);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let owners = ["mum", "dad", "emma", "leo", "grandma"];
    let mut opts = OpenOptions::for_db(&db);
    opts.synchronous = Synchronous::Full;
    let new_memory = |rng: &mut Rng| NewMemory {
        summary: sentence(rng, &vocab, 6, 8),
        content: sentence(rng, &vocab, 15, 40),
        keywords: (0..3)
            .map(|_| vocab[rng.zipf(vocab.len())].clone())
            .collect(),
        memory_type: MemoryType::ALL[rng.below(8)],
        owner: owners[rng.below(owners.len())].into(),
        visibility: if rng.below(3) == 0 {
            barnabee_memory::model::Visibility::Private
        } else {
            barnabee_memory::model::Visibility::Family
        },
        source: None,
        created_at: Some(1_700_000_000_000 + rng.below(100_000_000) as i64),
        expires_at: None,
        embedding: Some(rng.vector()),
        embedding_model: Some("bench".into()),
        external_id: None,
    };

    // Insert throughput through the API path (one transaction per memory, with audit row).
    let mut insert_rate = Vec::new();
    for sync in [Synchronous::Full, Synchronous::Normal] {
        let _ = std::fs::remove_file(&db);
        let _ = std::fs::remove_file(dir.join("bench.db-wal"));
        let mut o = opts.clone();
        o.synchronous = sync;
        let store = Store::open(&db, migrations::all(), &o, 1, DIMS).unwrap();
        let k = 2000;
        let start = Instant::now();
        for _ in 0..k {
            store.create_memory(new_memory(&mut rng)).unwrap();
        }
        let rate = k as f64 / start.elapsed().as_secs_f64();
        insert_rate.push((sync, rate));
    }

    // Bulk load the rest in batches (as an import would), then reopen (loads the vectors).
    let store = Store::open(&db, migrations::all(), &opts, 4, DIMS).unwrap();
    let start = Instant::now();
    let mut done = 4000usize;
    while done < n {
        let batch = (n - done).min(5000);
        let rows: Vec<NewMemory> = (0..batch).map(|_| new_memory(&mut rng)).collect();
        store
            .with_write_tx(|tx| {
                let mut stmt = tx
                    .prepare_cached("INSERT INTO memories (summary, content, keywords, memory_type, owner, visibility, created_at, updated_at, embedding, embedding_model) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, 'bench')")
                    .unwrap();
                for m in &rows {
                    stmt.execute(params![
                        m.summary,
                        m.content,
                        serde_json::to_string(&m.keywords).unwrap(),
                        m.memory_type.as_str(),
                        m.owner,
                        m.visibility.as_str(),
                        m.created_at,
                        f32_to_blob(m.embedding.as_deref().unwrap())
                    ])
                    .unwrap();
                }
                Ok(())
            })
            .unwrap();
        done += batch;
    }
    let bulk = start.elapsed();
    drop(store);
    let start = Instant::now();
    let store = Store::open(&db, migrations::all(), &opts, 4, DIMS).unwrap();
    let reopen = start.elapsed();
    store.optimize().unwrap();

    let cfg = SearchConfig::default();
    let mut fts = Vec::new();
    let mut vec = Vec::new();
    let mut hyb = Vec::new();
    let mut cpu = [0.0f64; 3];
    let mut hits = 0usize;
    let reqs: Vec<(String, Vec<f32>, String)> = (0..queries)
        .map(|i| {
            let q = sentence(&mut rng, &vocab, 2, 3);
            (q, rng.vector(), owners[i % owners.len()].to_owned())
        })
        .collect();
    // One mode at a time, so the process CPU time per mode can be measured too.
    for (m, (mode, out)) in [
        (SearchMode::Fts, &mut fts),
        (SearchMode::Vector, &mut vec),
        (SearchMode::Hybrid, &mut hyb),
    ]
    .into_iter()
    .enumerate()
    {
        let c0 = process_cpu_s();
        for (q, e, requester) in &reqs {
            let req = SearchRequest {
                requester: requester.clone(),
                query: Some(q.clone()),
                embedding: Some(e.clone()),
                mode,
                owner: None,
                visibility: None,
                memory_types: None,
                since: None,
                until: None,
                limit: Some(10),
            };
            let start = Instant::now();
            let r = search::search(&store, &req, &cfg).unwrap();
            out.push(start.elapsed());
            hits += r.results.len();
        }
        cpu[m] = (process_cpu_s() - c0) * 1000.0 / queries as f64;
    }
    println!(
        "barnabee-memory bench: n={n} memories, {DIMS}-dim embeddings, vocabulary {vocab_size} words (Zipf), {queries} queries x 3 modes, limit 10 (full search path incl. filter + hydrate), {} cores",
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    for (sync, rate) in &insert_rate {
        println!(
            "insert via Store::create_memory (txn per memory, synchronous={}): {rate:.0}/s",
            sync.pragma()
        );
    }
    println!(
        "bulk load {} memories in 5000-row transactions: {:.1} s ({:.0}/s); reopen incl. vector load: {:.2} s; db {:.0} MB",
        n.saturating_sub(4000),
        bulk.as_secs_f64(),
        n.saturating_sub(4000) as f64 / bulk.as_secs_f64(),
        reopen.as_secs_f64(),
        store.db_bytes() as f64 / 1e6
    );
    for (name, v) in [
        ("fts", &mut fts),
        ("vector", &mut vec),
        ("hybrid", &mut hyb),
    ] {
        println!(
            "{name:>6}: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            pct(v, 0.5),
            pct(v, 0.99),
            pct(v, 1.0)
        );
    }
    println!("mean CPU time per query, all threads (10 ms tick resolution over the whole run):");
    for (name, c) in ["fts", "vector", "hybrid"].iter().zip(cpu) {
        println!("{name:>6}: {c:.2} ms");
    }
    println!(
        "(results returned: {hits}; load average at end: {})",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}

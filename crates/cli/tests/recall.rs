//! Recall by meaning (issue #21 item 2) with the real daemons and the real model:
//! `barnabee up --only memory,inference` (memory's `[embeddings]` wired to inference's
//! all-MiniLM-L6-v2 from the set-up cache). The 45 question/memory pairs of
//! crates/memory/testdata/recall.tsv are written through memory's API with no vectors; memory
//! embeds them in the background; each question is then searched by words only (`fts`) and by
//! words and meaning (`hybrid`, the query's vector computed by memory): hit@3 of both is
//! printed, hybrid must beat full text. Also printed: write latency (unchanged: embedding is
//! off the write's path), the time until the batch is embedded, and each search's latency.
//! An edit clears a memory's vector and it is embedded again. Through the agents, "what is Leo
//! allergic to?" routes to memory and, with no LLM, reads back what was remembered.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::demo_home::*;
use serde_json::json;

fn pairs() -> Vec<(String, String)> {
    include_str!("../../memory/testdata/recall.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (m, q) = l.split_once('\t').unwrap();
            (m.to_owned(), q.to_owned())
        })
        .collect()
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

#[test]
fn hybrid_recall_beats_full_text_on_paraphrases() {
    let pairs = pairs();
    assert!(pairs.len() >= 40, "{} pairs", pairs.len());
    let data = tempfile::tempdir().unwrap();
    let offset = free_port_offset();
    let memory = format!("http://127.0.0.1:{}", 7701 + offset);
    let http = Http::new();
    let agents = format!("http://127.0.0.1:{}", 7702 + offset);
    let mut up = Up::start_with(data.path(), offset, "memory,agents,inference", false);
    up.wait_for("the local appliance is up", Duration::from_secs(300));

    // Written without vectors: each write returns before anything is embedded.
    let mut ids = Vec::new();
    let mut write_ms = Vec::new();
    let t0 = Instant::now();
    for (m, _) in &pairs {
        let t = Instant::now();
        let (code, v) = http.post(
            &format!("{memory}/v1/memories"),
            None,
            &json!({"summary": m, "memory_type": "fact", "owner": "family", "visibility": "family"}),
        );
        write_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(code, 201, "{v}");
        ids.push(v["id"].as_i64().unwrap());
    }
    // Embedded in the background: every memory has its vector (a vector-only search finds it).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, h) = http.get(&format!("{memory}/health"), None);
        let detail = h["checks"]["embeddings"]["detail"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let done: usize = detail
            .split("; ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if done >= pairs.len() {
            break;
        }
        assert!(Instant::now() < deadline, "not all embedded: {h}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let embedded_after = t0.elapsed();

    let search = |mode: &str, q: &str| -> (Vec<i64>, String, f64) {
        let t = Instant::now();
        let (code, v) = http.post(
            &format!("{memory}/v1/search"),
            None,
            &json!({"requester": "anna", "query": q, "mode": mode, "limit": 3}),
        );
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(code, 200, "{q}: {v}");
        let hits = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["memory"]["id"].as_i64().unwrap())
            .collect();
        (hits, v["mode"].as_str().unwrap_or("").to_owned(), ms)
    };
    let (mut fts_hits, mut hybrid_hits) = (0, 0);
    let (mut fts_ms, mut hybrid_ms) = (Vec::new(), Vec::new());
    for ((_, q), id) in pairs.iter().zip(&ids) {
        let (f, _, ms) = search("fts", q);
        fts_ms.push(ms);
        fts_hits += usize::from(f.contains(id));
        let (h, mode, ms) = search("hybrid", q);
        assert_eq!(mode, "hybrid", "{q}: the query was not embedded");
        hybrid_ms.push(ms);
        hybrid_hits += usize::from(h.contains(id));
    }
    let n = pairs.len() as f64;
    eprintln!(
        "recall hit@3 on {} paraphrases (all-MiniLM-L6-v2): full text {:.1}% ({fts_hits}), hybrid {:.1}% ({hybrid_hits})",
        pairs.len(),
        100.0 * fts_hits as f64 / n,
        100.0 * hybrid_hits as f64 / n
    );
    eprintln!(
        "write p50 {:.1} ms p99 {:.1} ms (embedding off the write's path); {} memories embedded {:.1} s after the first write; search p50/p99: fts {:.1}/{:.1} ms, hybrid {:.1}/{:.1} ms (query embedded by memory)",
        pct(&mut write_ms, 0.5),
        pct(&mut write_ms, 0.99),
        pairs.len(),
        embedded_after.as_secs_f64(),
        pct(&mut fts_ms, 0.5),
        pct(&mut fts_ms, 0.99),
        pct(&mut hybrid_ms, 0.5),
        pct(&mut hybrid_ms, 0.99)
    );
    assert!(
        hybrid_hits > fts_hits,
        "hybrid {hybrid_hits} vs full text {fts_hits}"
    );

    // An edit: the old vector no longer describes it; it is cleared and embedded again.
    let id = ids[0];
    let (code, v) = http.patch(
        &format!("{memory}/v1/memories/{id}?requester=family"),
        &json!({"summary": "Leo can't eat sesame"}),
    );
    assert_eq!(code, 200, "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // By meaning alone (no shared words): only the new vector can find it first.
        let (h, _, _) = search("vector", "the boy must not have any sesame seeds");
        if h.first() == Some(&id) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edited memory was not embedded again: {h:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Through the agents, as the family says it (no LLM configured: the best memory is read back).
    let ask = |text: &str| {
        let (code, v) = http.post(
            &format!("{agents}/v1/process"),
            None,
            &json!({"text": text, "session_id": "recall", "speaker": "anna"}),
        );
        assert_eq!(code, 200, "{v}");
        eprintln!("agents: {text:?} -> {}", v["text"]);
        v
    };
    let v = ask("remember that Leo is allergic to peanuts");
    assert_eq!(v["route"], "memory", "{v}");
    std::thread::sleep(Duration::from_millis(1500)); // embedded within the worker's second
    let v = ask("what is Leo allergic to?");
    assert_eq!(v["route"], "memory", "{v}");
    assert!(v["text"].as_str().unwrap().contains("peanuts"), "{v}");
    up.stop();
}

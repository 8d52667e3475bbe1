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
//!
//! Conversation turns the same way (schema 2): the 13 pairs of crates/memory/testdata/
//! turn_recall.tsv are written as one speaker's turns, embedded in the background, and searched
//! by words and by words and meaning; through the agents, "what did I ask you about the weather
//! forecast?" reads back an earlier "is it going to rain tomorrow". Printed too: the cosine similarity of
//! the right memory against the best hit of off-topic questions, which is where the agents'
//! relevance bar (`SIMILARITY` in crates/agents/src/agent/memory.rs) comes from.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

mod common;

use std::time::{Duration, Instant};

use common::demo_home::*;
use serde_json::json;

/// The agents' relevance bar for a hit found by meaning alone (`SIMILARITY` in
/// crates/agents/src/agent/memory.rs).
const AGENTS_SIMILARITY: f64 = 0.3;

/// Questions about nothing the family ever told it.
const OFF_TOPIC: [&str; 6] = [
    "what is the capital of France",
    "how do airplanes stay in the air",
    "who won the world cup in 1998",
    "what is the square root of two",
    "how far away is the moon",
    "which planet has rings",
];

fn pairs() -> Vec<(String, String)> {
    tsv(include_str!("../../memory/testdata/recall.tsv"))
}

fn tsv(text: &str) -> Vec<(String, String)> {
    text.lines()
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
    // Embedded in the background: every memory has its vector.
    wait_embedded(
        &http,
        &memory,
        "memories",
        "memories_with_embedding",
        pairs.len() as u64,
    );
    let embedded_after = t0.elapsed();

    let search_hits = |mode: &str, q: &str| -> (Vec<serde_json::Value>, String, f64) {
        let t = Instant::now();
        let (code, v) = http.post(
            &format!("{memory}/v1/search"),
            None,
            &json!({"requester": "anna", "query": q, "mode": mode, "limit": 3}),
        );
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(code, 200, "{q}: {v}");
        let hits = v["results"].as_array().unwrap().clone();
        (hits, v["mode"].as_str().unwrap_or("").to_owned(), ms)
    };
    let search = |mode: &str, q: &str| -> (Vec<i64>, String, f64) {
        let (hits, mode, ms) = search_hits(mode, q);
        let ids = hits
            .iter()
            .map(|h| h["memory"]["id"].as_i64().unwrap())
            .collect();
        (ids, mode, ms)
    };
    let (mut fts_hits, mut hybrid_hits) = (0, 0);
    let (mut fts_ms, mut hybrid_ms) = (Vec::new(), Vec::new());
    let mut right_similarity = Vec::new();
    for ((_, q), id) in pairs.iter().zip(&ids) {
        let (f, _, ms) = search("fts", q);
        fts_ms.push(ms);
        fts_hits += usize::from(f.contains(id));
        let (h, mode, ms) = search_hits("hybrid", q);
        assert_eq!(mode, "hybrid", "{q}: the query was not embedded");
        hybrid_ms.push(ms);
        if let Some(hit) = h.iter().find(|h| h["memory"]["id"].as_i64() == Some(*id)) {
            hybrid_hits += 1;
            right_similarity.push(hit["similarity"].as_f64().unwrap());
        }
    }
    // Off-topic questions: their best hit by meaning is the nearest of unrelated memories.
    let off_topic_best = OFF_TOPIC
        .iter()
        .map(|q| {
            let (h, _, _) = search_hits("vector", q);
            h[0]["similarity"].as_f64().unwrap()
        })
        .fold(f64::MIN, f64::max);
    let below = right_similarity
        .iter()
        .filter(|s| **s < AGENTS_SIMILARITY)
        .count();
    eprintln!(
        "cosine of the right memory (hybrid top 3): min {:.2} p10 {:.2} median {:.2}; best hit of {} off-topic questions: max {off_topic_best:.2}; the agents' bar {AGENTS_SIMILARITY} drops {below} of {} right memories found by meaning",
        pct(&mut right_similarity, 0.0),
        pct(&mut right_similarity, 0.1),
        pct(&mut right_similarity, 0.5),
        OFF_TOPIC.len(),
        right_similarity.len(),
    );
    assert!(
        off_topic_best < AGENTS_SIMILARITY,
        "an off-topic question comes within the agents' relevance bar: {off_topic_best:.2}"
    );
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
    // Nothing the family said is about this: no unrelated fact is read back.
    let v = ask("do you remember the capital of France?");
    assert_eq!(v["route"], "memory", "{v}");
    assert!(
        v["text"].as_str().unwrap().starts_with("I don't remember"),
        "{v}"
    );

    turn_recall(&http, &memory, &agents);
    up.stop();
}

/// Wait until `/v1/stats` counts at least `min` `of` and as many `with_embedding` (the
/// background embedder's progress: every memory or every turn has its vector).
fn wait_embedded(http: &Http, memory: &str, of: &str, with_embedding: &str, min: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, stats) = http.get(&format!("{memory}/v1/stats"), None);
        let total = stats[of].as_u64().unwrap_or(0);
        if total >= min && stats[with_embedding].as_u64().unwrap_or(0) >= total {
            return;
        }
        assert!(Instant::now() < deadline, "not all embedded: {stats}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Turns by meaning: the memory API's hit@3 for full text vs hybrid, then through the agents.
fn turn_recall(http: &Http, memory: &str, agents: &str) {
    let pairs = tsv(include_str!("../../memory/testdata/turn_recall.tsv"));
    assert!(pairs.len() >= 12, "{} turn pairs", pairs.len());
    let (code, c) = http.post(
        &format!("{memory}/v1/conversations"),
        None,
        &json!({"speaker": "ben", "mode": "voice"}),
    );
    assert_eq!(code, 201, "{c}");
    let conversation = c["id"].as_i64().unwrap();
    let mut ids = Vec::new();
    for (said, _) in &pairs {
        let (code, t) = http.post(
            &format!("{memory}/v1/conversations/{conversation}/turns"),
            None,
            &json!({"utterance": said, "response": "Okay.", "route": "action"}),
        );
        assert_eq!(code, 201, "{t}");
        ids.push(t["id"].as_i64().unwrap());
    }
    wait_embedded(http, memory, "turns", "turns_with_embedding", 0);
    let search = |mode: &str, q: &str| -> Vec<i64> {
        let url = reqwest::Url::parse_with_params(
            &format!("{memory}/v1/turns/search"),
            [
                ("query", q),
                ("speaker", "ben"),
                ("mode", mode),
                ("limit", "3"),
            ],
        )
        .unwrap();
        let (code, v) = http.get(url.as_str(), None);
        assert_eq!(code, 200, "{q}: {v}");
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };
    let (mut fts, mut hybrid) = (0, 0);
    for ((_, q), id) in pairs.iter().zip(&ids) {
        fts += usize::from(search("fts", q).contains(id));
        hybrid += usize::from(search("hybrid", q).contains(id));
    }
    let n = pairs.len() as f64;
    eprintln!(
        "turn recall hit@3 on {} paraphrases (all-MiniLM-L6-v2): full text {:.1}% ({fts}), hybrid {:.1}% ({hybrid})",
        pairs.len(),
        100.0 * fts as f64 / n,
        100.0 * hybrid as f64 / n
    );
    assert!(hybrid > fts, "turns: hybrid {hybrid} vs full text {fts}");

    // Through the agents: a turn they stored themselves, found later by what it was about.
    let ask = |text: &str| {
        let (code, v) = http.post(
            &format!("{agents}/v1/process"),
            None,
            // Another speaker than the turns above: only what the agents stored can answer.
            &json!({"text": text, "session_id": "hall", "speaker": "cara"}),
        );
        assert_eq!(code, 200, "{v}");
        eprintln!("agents: {text:?} -> {}", v["text"]);
        v
    };
    let (_, stats) = http.get(&format!("{memory}/v1/stats"), None);
    let turns = stats["turns"].as_u64().unwrap();
    let v = ask("is it going to rain tomorrow");
    assert_ne!(v["route"], "memory", "{v}");
    // The agents store the turn after answering.
    wait_embedded(http, memory, "turns", "turns_with_embedding", turns + 1);
    // No word in common with what was said: found by meaning.
    let v = ask("what did I ask you about the weather forecast?");
    assert_eq!(v["route"], "memory", "{v}");
    let text = v["text"].as_str().unwrap();
    assert!(
        text.starts_with("Today you said: is it going to rain tomorrow"),
        "{v}"
    );
}

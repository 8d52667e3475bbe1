//! API round trips, validation, ranking on fixtures with a known answer, isolation, health.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Daemon, client, small_dims, vector};

async fn post(c: &reqwest::Client, url: String, body: Value) -> (StatusCode, Value) {
    let r = c.post(url).json(&body).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(c: &reqwest::Client, url: String) -> (StatusCode, Value) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn remember(d: &Daemon, c: &reqwest::Client, body: Value) -> i64 {
    let (s, v) = post(c, d.url("/v1/memories"), body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_i64().unwrap()
}

fn ids(v: &Value) -> Vec<i64> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["memory"]["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn memory_crud_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &small_dims());
    let c = client();
    let (s, created) = post(
        &c,
        d.url("/v1/memories"),
        json!({"summary": "Alice prefers oat milk", "content": "in coffee, not tea", "keywords": ["milk", "coffee"],
               "memory_type": "preference", "owner": "alice", "visibility": "family", "source": "conversation:1",
               "embedding": vector(0, 1, 0.1), "embedding_model": "mini"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["memory_type"], "preference");
    assert_eq!(created["has_embedding"], true);
    assert_eq!(created["keywords"], json!(["milk", "coffee"]));

    let (s, got) = get(&c, d.url(&format!("/v1/memories/{id}?requester=bob"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, created);

    let r = c
        .patch(d.url(&format!("/v1/memories/{id}?requester=alice")))
        .json(
            &json!({"summary": "Alice prefers soy milk", "expires_at": null, "keywords": ["soy"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let patched: Value = r.json().await.unwrap();
    assert_eq!(patched["summary"], "Alice prefers soy milk");
    assert_eq!(patched["content"], "in coffee, not tea");
    assert!(patched["updated_at"].as_i64() >= created["updated_at"].as_i64());

    // The FTS index follows the update (trigger): old word gone, new word found.
    let (_, v) = post(
        &c,
        d.url("/v1/search"),
        json!({"requester": "alice", "query": "oat", "mode": "fts"}),
    )
    .await;
    assert!(ids(&v).is_empty(), "{v}");
    let (_, v) = post(
        &c,
        d.url("/v1/search"),
        json!({"requester": "alice", "query": "soy", "mode": "fts"}),
    )
    .await;
    assert_eq!(ids(&v), vec![id]);

    let (s, list) = get(
        &c,
        d.url("/v1/memories?requester=alice&memory_type=preference"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);

    let r = c
        .delete(d.url(&format!("/v1/memories/{id}?requester=alice")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (s, _) = get(&c, d.url(&format!("/v1/memories/{id}?requester=alice"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = post(
        &c,
        d.url("/v1/search"),
        json!({"requester": "alice", "query": "soy"}),
    )
    .await;
    assert!(
        ids(&v).is_empty(),
        "deleted memory leaves the FTS index: {v}"
    );
    let (_, v) = post(
        &c,
        d.url("/v1/search"),
        json!({"requester": "alice", "embedding": vector(0, 1, 0.1)}),
    )
    .await;
    assert!(
        ids(&v).is_empty(),
        "deleted memory leaves the vector index: {v}"
    );

    let (s, stats) = get(&c, d.url("/v1/stats")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(stats["memories"], 0);
    assert!(stats["db_bytes"].as_u64().unwrap() > 0);
    assert_eq!(stats["schema_version"], stats["code_version"]);
}

#[tokio::test]
async fn validation_errors_are_400_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!("{}[http]\nmax_body_bytes = 4096\n", small_dims()),
    );
    let c = client();
    let cases = [
        (json!({"summary": "x", "owner": "a"}), "memory_type"),
        (
            json!({"summary": "x", "owner": "a", "memory_type": "gossip"}),
            "memory_type",
        ),
        (
            json!({"summary": "  ", "owner": "a", "memory_type": "fact"}),
            "summary",
        ),
        (
            json!({"summary": "x", "owner": "", "memory_type": "fact"}),
            "owner",
        ),
        (
            json!({"summary": "x", "owner": "a", "memory_type": "fact", "embedding": [1.0, 2.0]}),
            "embedding",
        ),
        (
            json!({"summary": "x", "owner": "a", "memory_type": "fact", "keywords": ["ok", ""]}),
            "keywords[1]",
        ),
        (
            json!({"summary": "x", "owner": "a", "memory_type": "fact", "visibility": "world"}),
            "visibility",
        ),
        (
            json!({"summary": "x", "owner": "a", "memory_type": "fact", "colour": "red"}),
            "colour",
        ),
        (json!("just text"), "body"),
    ];
    for (body, field) in cases {
        let (s, v) = post(&c, d.url("/v1/memories"), body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} -> {v}");
        assert_eq!(v["field"], field, "{body} -> {v}");
    }
    let r = c
        .post(d.url("/v1/memories"))
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .post(d.url("/v1/memories"))
        .body(format!("{{\"summary\": \"{}\"}}", "x".repeat(8000)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let searches = [
        (json!({"query": "x"}), "requester"),
        (json!({"requester": "a"}), "query"),
        (json!({"requester": "a", "query": "x", "limit": 0}), "limit"),
        (
            json!({"requester": "a", "query": "x", "limit": 100000}),
            "limit",
        ),
        (
            json!({"requester": "a", "mode": "vector", "query": "x"}),
            "embedding",
        ),
        (
            json!({"requester": "a", "embedding": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]}),
            "embedding",
        ),
        (
            json!({"requester": "a", "query": "x", "since": 10, "until": 5}),
            "until",
        ),
        (
            json!({"requester": "a", "query": "x", "memory_types": ["fact", "rumour"]}),
            "memory_types[1]",
        ),
    ];
    for (body, field) in searches {
        let (s, v) = post(&c, d.url("/v1/search"), body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} -> {v}");
        assert_eq!(v["field"], field, "{body} -> {v}");
    }
    let (s, v) = get(&c, d.url("/v1/memories/abc?requester=a")).await;
    assert_eq!(
        (s, v["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("id"))
    );
    let (s, v) = get(&c, d.url("/v1/memories/1")).await;
    assert_eq!(
        (s, v["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("requester"))
    );
    let (s, v) = get(&c, d.url("/v1/memories?requester=a&limit=x")).await;
    assert_eq!(
        (s, v["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("limit"))
    );
    let (s, _) = get(&c, d.url("/v1/memories/999?requester=a")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(&c, d.url("/v1/nothing")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // 409: duplicate external id.
    let body =
        json!({"summary": "x", "owner": "a", "memory_type": "fact", "external_id": "v1:memory:7"});
    let (s, _) = post(&c, d.url("/v1/memories"), body.clone()).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = post(&c, d.url("/v1/memories"), body).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
}

#[tokio::test]
async fn fts_and_hybrid_rank_the_known_answer_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &small_dims());
    let c = client();
    let fam = |summary: &str, content: &str, t: &str| json!({"summary": summary, "content": content, "memory_type": t, "owner": "alice", "visibility": "family"});
    // Full-text: the dentist question has exactly one right answer among near misses.
    let right = remember(
        &d,
        &c,
        fam(
            "Emma's dentist appointment is Tuesday at 3pm",
            "Dr. Patel, bring the insurance card",
            "event",
        ),
    )
    .await;
    for (s, b) in [
        (
            "Leo's dentist is Dr. Smith",
            "teeth cleaning every six months",
        ),
        ("Emma likes pancakes on Sunday", "with blueberries"),
        (
            "The car appointment at the garage",
            "Tuesday morning, winter tyres",
        ),
        ("Grandma's birthday", "Emma will bake a cake"),
    ] {
        remember(&d, &c, fam(s, b, "fact")).await;
    }
    let (s, v) = post(
        &c,
        d.url("/v1/search"),
        json!({"requester": "bob", "query": "When is Emma's dentist appointment?", "mode": "fts"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(ids(&v)[0], right, "{v}");
    assert_eq!(v["mode"], "fts");
    // Type filter.
    let (_, v) = post(
        &c,
        d.url("/v1/search"),
        json!({"requester": "bob", "query": "dentist", "memory_types": ["fact"]}),
    )
    .await;
    assert!(!ids(&v).contains(&right), "{v}");

    // Hybrid: full text alone prefers X (the words repeated), vectors alone prefer Y (no
    // words in common); R is second in both lists and must win the fusion.
    let q = vector(2, 3, 0.0);
    let x = remember(
        &d,
        &c,
        fam(
            "swimming lesson swimming lesson saturday saturday",
            "swimming lesson",
            "fact",
        ),
    )
    .await;
    let r = remember(&d, &c, json!({"summary": "Emma's swimming lesson moved to Saturday", "memory_type": "event", "owner": "alice", "visibility": "family", "embedding": vector(2, 3, 0.3)})).await;
    let y = remember(&d, &c, json!({"summary": "Grandpa's favourite armchair", "memory_type": "fact", "owner": "alice", "visibility": "family", "embedding": q.clone()})).await;
    remember(&d, &c, json!({"summary": "Unrelated note about bins", "memory_type": "fact", "owner": "alice", "visibility": "family", "embedding": vector(5, 6, 0.2)})).await;
    let body = |mode: &str| json!({"requester": "alice", "query": "swimming lesson saturday", "embedding": q, "mode": mode});
    let (_, v) = post(&c, d.url("/v1/search"), body("fts")).await;
    assert_eq!(ids(&v)[..2], [x, r], "{v}");
    let (_, v) = post(&c, d.url("/v1/search"), body("vector")).await;
    assert_eq!(ids(&v)[..2], [y, r], "{v}");
    let (_, v) = post(&c, d.url("/v1/search"), body("hybrid")).await;
    assert_eq!(ids(&v)[0], r, "{v}");
    assert_eq!(v["results"][0]["fts_rank"], 2);
    assert_eq!(v["results"][0]["vector_rank"], 2);

    let metrics = c
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("barnabee_memory_retrieval_latency_ms_count"),
        "{metrics}"
    );
    assert!(
        metrics.contains("barnabee_memory_sqlite_query_latency_ms_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("barnabee_memory_db_size_bytes"),
        "{metrics}"
    );
}

#[tokio::test]
async fn another_owners_private_memory_is_never_returned() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &small_dims());
    let c = client();
    let secret = remember(&d, &c, json!({"summary": "Surprise party for Alice on Friday", "memory_type": "event", "owner": "bob", "visibility": "private", "embedding": vector(0, 1, 0.0)})).await;
    let shared = remember(&d, &c, json!({"summary": "Family party at the lake", "memory_type": "event", "owner": "bob", "visibility": "family"})).await;
    let mine = remember(&d, &c, json!({"summary": "Alice's party dress size", "memory_type": "fact", "owner": "alice", "embedding": vector(0, 1, 0.1)})).await;

    for mode in ["fts", "vector", "hybrid"] {
        let (s, v) = post(&c, d.url("/v1/search"), json!({"requester": "alice", "query": "surprise party Friday", "embedding": vector(0, 1, 0.0), "mode": mode})).await;
        assert_eq!(s, StatusCode::OK);
        let found = ids(&v);
        assert!(!found.contains(&secret), "{mode}: {v}");
        assert!(found.contains(&mine), "{mode}: {v}");
    }
    let (_, v) = post(
        &c,
        d.url("/v1/search"),
        json!({"requester": "alice", "query": "surprise", "owner": "bob"}),
    )
    .await;
    assert!(ids(&v).is_empty(), "{v}");
    let (_, v) = post(
        &c,
        d.url("/v1/search"),
        json!({"requester": "bob", "query": "surprise party"}),
    )
    .await;
    assert_eq!(ids(&v)[0], secret);
    let (_, v) = post(
        &c,
        d.url("/v1/search"),
        json!({"requester": "alice", "query": "party", "visibility": "family"}),
    )
    .await;
    assert_eq!(ids(&v), vec![shared]);

    let (s, _) = get(&c, d.url(&format!("/v1/memories/{secret}?requester=alice"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let r = c
        .patch(d.url(&format!("/v1/memories/{secret}?requester=alice")))
        .json(&json!({"visibility": "family"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c
        .delete(d.url(&format!("/v1/memories/{secret}?requester=alice")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (_, list) = get(&c, d.url("/v1/memories?requester=alice")).await;
    let listed: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, vec![mine, shared]);
    let (s, _) = get(&c, d.url(&format!("/v1/memories/{secret}?requester=bob"))).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn conversations_turns_speakers_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &small_dims());
    let c = client();
    let (s, conv) = post(
        &c,
        d.url("/v1/conversations"),
        json!({"speaker": "emma", "mode": "voice", "topic_tags": ["school"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{conv}");
    let id = conv["id"].as_i64().unwrap();
    for (u, r) in [
        ("what's for dinner", "lasagne"),
        ("and dessert", "ice cream"),
    ] {
        let (s, t) = post(
            &c,
            d.url(&format!("/v1/conversations/{id}/turns")),
            json!({"utterance": u, "response": r, "route": "memory", "latency_ms": 120}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
    }
    let (_, full) = get(&c, d.url(&format!("/v1/conversations/{id}"))).await;
    assert_eq!(full["turn_count"], 2);
    assert_eq!(full["turns"][1]["number"], 2);
    assert_eq!(full["turns"][1]["response"], "ice cream");
    let (_, recent) = get(&c, d.url("/v1/conversations/recent?speaker=emma&limit=1")).await;
    assert_eq!(recent[0]["utterance"], "and dessert");
    let (_, found) = get(&c, d.url("/v1/turns/search?query=lasagne")).await;
    assert_eq!(found[0]["utterance"], "what's for dinner");
    let (_, list) = get(&c, d.url("/v1/conversations?speaker=emma")).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let r = c
        .patch(d.url(&format!("/v1/conversations/{id}")))
        .json(&json!({"ended_at": 1, "summary": "dinner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, _) = post(
        &c,
        d.url(&format!("/v1/conversations/{id}/turns")),
        json!({"utterance": "late"}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = post(
        &c,
        d.url("/v1/conversations/999/turns"),
        json!({"utterance": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = post(
        &c,
        d.url(&format!("/v1/conversations/{id}/turns")),
        json!({"response": "x"}),
    )
    .await;
    assert_eq!(
        (s, v["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("utterance"))
    );

    let r = c.put(d.url("/v1/speakers/emma")).json(&json!({"embedding_model_hash": "sha256:ab", "centroid": [0.5, 0.25], "sample_count": 3})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, sp) = get(&c, d.url("/v1/speakers/emma")).await;
    assert_eq!(sp["centroid"], json!([0.5, 0.25]));
    assert_eq!(sp["sample_count"], 3);
    let (_, all) = get(&c, d.url("/v1/speakers")).await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    let r = c
        .put(d.url("/v1/speakers/emma"))
        .json(&json!({"embedding_model_hash": "h", "centroid": [], "sample_count": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c.delete(d.url("/v1/speakers/emma")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (s, _) = get(&c, d.url("/v1/speakers/emma")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, h) = get(&c, d.url("/health")).await;
    assert_eq!(s, StatusCode::OK, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(
        h["checks"]["embeddings"]["detail"],
        "not configured (FTS only)"
    );
    assert_eq!(h["checks"]["embeddings"]["critical"], false);
    assert_eq!(h["checks"]["database"]["ok"], true);
    assert_eq!(h["checks"]["replication"]["detail"], "not configured");
    let (s, h) = get(&c, d.url("/health/detailed")).await;
    assert_eq!(s, StatusCode::OK, "{h}");
    assert_eq!(h["integrity_check"]["ok"], true, "{h}");
    assert_eq!(h["database"]["min_reader_version"], 1);
}

#[tokio::test]
async fn expired_memories_are_hidden_then_deleted_by_maintenance() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "{}[maintenance]\ntick = 0.2\nretention_interval = 0.2\n",
            small_dims()
        ),
    );
    let c = client();
    let past = barnabee_memory::time::now_ms() - 1000;
    let gone = remember(&d, &c, json!({"summary": "old parking spot level 3", "memory_type": "fact", "owner": "a", "expires_at": past})).await;
    let kept = remember(
        &d,
        &c,
        json!({"summary": "parking permit renewal", "memory_type": "fact", "owner": "a"}),
    )
    .await;
    let (_, v) = post(
        &c,
        d.url("/v1/search"),
        json!({"requester": "a", "query": "parking"}),
    )
    .await;
    assert_eq!(
        ids(&v),
        vec![kept],
        "expired memories are not returned: {v}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, stats) = get(&c, d.url("/v1/stats")).await;
        if stats["memories"] == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention did not delete memory {gone}: {stats}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

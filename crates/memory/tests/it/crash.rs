//! kill -9 while writing, restart: every acknowledged memory is there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Daemon, client, small_dims, vector};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_writes_loses_no_acknowledged_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), &small_dims());
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
                        let v: Value = match r.json().await {
                            Ok(v) => v,
                            Err(_) => return,
                        };
                        acked.lock().unwrap().insert(v["id"].as_i64().unwrap(), summary);
                    }
                    _ => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    d.kill9();
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "only {} writes acknowledged before the kill",
        acked.len()
    );

    let d = Daemon::start(dir.path(), &small_dims());
    let c = client();
    for (id, summary) in &acked {
        let r = c
            .get(d.url(&format!("/v1/memories/{id}?requester=a")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "acknowledged memory {id} lost");
        let v: Value = r.json().await.unwrap();
        assert_eq!(&v["summary"], summary);
    }
    let h: Value = c
        .get(d.url("/health/detailed"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["integrity_check"]["ok"], true, "{h}");
    // The vector index was rebuilt from the database.
    let v: Value = c
        .post(d.url("/v1/search"))
        .json(&json!({"requester": "a", "embedding": vector(0, 7, 0.0), "limit": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 1, "{v}");
}

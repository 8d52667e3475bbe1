//! `barnabee-memory import DIR` on the V1 export fixtures in testdata/import/.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Daemon, client, run_cli, small_dims, testdata};

#[tokio::test]
async fn v1_exports_import_with_every_rejection_reported() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    let src = testdata("import/v1-basic");
    let args = [
        "import",
        src.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ];
    let (code, out, err) = run_cli(&args);
    assert_eq!(code, 2, "rejections make exit 2:\n{out}{err}");
    assert!(
        out.contains(
            "imported: 5 memories, 3 conversations, 6 turns; 0 already imported; 4 rejected"
        ),
        "{out}"
    );
    assert!(
        out.contains("rejected memories.json[5] (id m6): unknown type/category \"gossip\""),
        "{out}"
    );
    assert!(
        out.contains("rejected memories.json[6]: no summary/title and no content/text"),
        "{out}"
    );
    assert!(
        out.contains(
            "rejected memories.json[7] (id m8): created_at: cannot parse time \"last tuesday\""
        ),
        "{out}"
    );
    assert!(
        out.contains("rejected conversations.json[2] (id c3): no turns/messages"),
        "{out}"
    );

    // Idempotent: a second run takes nothing twice.
    let (code, out, _) = run_cli(&args);
    assert_eq!(code, 2);
    assert!(
        out.contains(
            "imported: 0 memories, 0 conversations, 0 turns; 8 already imported; 4 rejected"
        ),
        "{out}"
    );

    let d = Daemon::start(dir.path(), &small_dims());
    let c = client();
    let v: Value = c
        .post(d.url("/v1/search"))
        .json(&json!({"requester": "dad", "query": "allergic peanuts"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let top = &v["results"][0]["memory"];
    assert_eq!(top["summary"], "Leo is allergic to peanuts", "{v}");
    assert_eq!(top["memory_type"], "person");
    assert_eq!(top["keywords"], json!(["health", "food"]));
    assert_eq!(top["created_at"], 1_709_296_200_000i64);
    assert_eq!(top["external_id"], "v1:memory:m1");
    // mum's private preference stays private.
    let v: Value = c
        .post(d.url("/v1/search"))
        .json(&json!({"requester": "dad", "query": "earl grey tea"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["results"].as_array().unwrap().is_empty(), "{v}");
    let r = c
        .get(d.url("/v1/conversations?speaker=emma"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let convs: Value = r.json().await.unwrap();
    assert_eq!(convs.as_array().unwrap().len(), 2, "{convs}");
    let r: Value = c
        .get(d.url("/v1/turns/search?query=homework"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r[0]["response"], "Maths first, then reading.", "{r}");
}

#[test]
fn broken_file_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    let src = testdata("import/broken-file");
    let (code, out, err) = run_cli(&[
        "import",
        src.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("rejected memories_broken.json: not JSON"),
        "{out}"
    );
    assert!(out.contains("imported: 1 memories"), "{out}");
    let (code, _, err) = run_cli(&[
        "import",
        dir.path().to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no memories*.json"), "{err}");
}

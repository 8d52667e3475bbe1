//! The WebSocket worker: authenticates, loads states and the area/device/entity registries
//! (aliases through `config/entity_registry/get_entries`), subscribes to `state_changed` and
//! registry updates, and keeps the index current. Reconnects with backoff; its state is the
//! non-critical `home_assistant` health check.

use std::collections::HashMap;
use std::time::Duration;

use barnabee_service::Shutdown;
use barnabee_service::health::Component;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{HaClient, HaError};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Pending {
    States,
    Areas,
    Devices,
    Entities,
    Aliases,
    Subscribe,
}

pub async fn run(client: HaClient, health: Component, shutdown: Shutdown) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let result = tokio::select! {
            r = session(&client, &health) => r,
            _ = shutdown.wait() => return,
        };
        let why = match result {
            Ok(()) => "Home Assistant closed the WebSocket".to_owned(),
            Err(e) => e.to_string(),
        };
        health.fail(format!("disconnected: {why}"));
        log::warn!(event = "ha_disconnected"; "Home Assistant WebSocket: {why}; retrying in {backoff:?}");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

fn ws_url(base: &str) -> String {
    let rest = base
        .strip_prefix("https://")
        .map(|r| format!("wss://{r}"))
        .or_else(|| base.strip_prefix("http://").map(|r| format!("ws://{r}")))
        .unwrap_or_else(|| base.to_owned());
    format!("{rest}/api/websocket")
}

fn proto(message: impl Into<String>) -> HaError {
    HaError::Protocol {
        what: "WebSocket".into(),
        message: message.into(),
    }
}

async fn recv_json(ws: &mut Ws) -> Result<Option<Value>, HaError> {
    loop {
        match ws.next().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(proto(e.to_string())),
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str())
                    .map(Some)
                    .map_err(|e| proto(format!("bad JSON: {e}")));
            }
            Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(_)) => continue,
        }
    }
}

async fn send(ws: &mut Ws, v: Value) -> Result<(), HaError> {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .map_err(|e| proto(e.to_string()))
}

async fn session(client: &HaClient, health: &Component) -> Result<(), HaError> {
    let url = ws_url(&client.base);
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url.as_str()),
    )
    .await
    .map_err(|_| HaError::Unreachable {
        url: url.clone(),
        message: "connect timed out".into(),
    })?
    .map_err(|e| HaError::Unreachable {
        url: url.clone(),
        message: e.to_string(),
    })?;
    let first = recv_json(&mut ws)
        .await?
        .ok_or_else(|| proto("closed before auth"))?;
    if first["type"] != "auth_required" {
        return Err(proto(format!("expected auth_required, got {first}")));
    }
    send(
        &mut ws,
        json!({"type": "auth", "access_token": client.token()}),
    )
    .await?;
    let auth = recv_json(&mut ws)
        .await?
        .ok_or_else(|| proto("closed during auth"))?;
    match auth["type"].as_str() {
        Some("auth_ok") => {}
        Some("auth_invalid") => return Err(HaError::Unauthorized),
        _ => return Err(proto(format!("unexpected auth answer {auth}"))),
    }

    let mut next_id = 0u64;
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut request = |kind: Pending, mut msg: Value, pending: &mut HashMap<u64, Pending>| {
        next_id += 1;
        msg["id"] = json!(next_id);
        pending.insert(next_id, kind);
        msg
    };
    let mut load = Vec::new();
    for (kind, ty) in [
        (Pending::States, "get_states"),
        (Pending::Areas, "config/area_registry/list"),
        (Pending::Devices, "config/device_registry/list"),
        (Pending::Entities, "config/entity_registry/list"),
    ] {
        load.push(request(kind, json!({"type": ty}), &mut pending));
    }
    for event in [
        "state_changed",
        "entity_registry_updated",
        "area_registry_updated",
        "device_registry_updated",
    ] {
        load.push(request(
            Pending::Subscribe,
            json!({"type": "subscribe_events", "event_type": event}),
            &mut pending,
        ));
    }
    for msg in load {
        send(&mut ws, msg).await?;
    }

    let mut loaded = 0;
    while let Some(msg) = recv_json(&mut ws).await? {
        match msg["type"].as_str() {
            Some("result") => {
                let id = msg["id"].as_u64().unwrap_or(0);
                let Some(kind) = pending.remove(&id) else {
                    continue;
                };
                if msg["success"] != true {
                    return Err(proto(format!("{kind:?} failed: {}", msg["error"])));
                }
                let result = &msg["result"];
                let list = result.as_array().map(Vec::as_slice).unwrap_or(&[]);
                let mut ask_aliases = None;
                {
                    let mut index = client.index.write().unwrap_or_else(|e| e.into_inner());
                    match kind {
                        Pending::States => index.set_states(list),
                        Pending::Areas => index.set_areas(list),
                        Pending::Devices => index.set_devices(list),
                        Pending::Entities => {
                            index.set_registry_entries(list.iter());
                            let ids: Vec<&str> = list
                                .iter()
                                .filter_map(|e| e["entity_id"].as_str())
                                .collect();
                            ask_aliases = Some(json!({
                                "type": "config/entity_registry/get_entries",
                                "entity_ids": ids,
                            }));
                        }
                        Pending::Aliases => {
                            // {entity_id: entry | null}
                            if let Some(map) = result.as_object() {
                                index.set_registry_entries(map.values().filter(|v| v.is_object()));
                            }
                        }
                        Pending::Subscribe => {}
                    }
                    if matches!(kind, Pending::States | Pending::Aliases) {
                        loaded += 1;
                    }
                    if loaded >= 2 {
                        health.ok(format!(
                            "connected to {}; {} entities, {} areas",
                            client.base,
                            index.entities.len(),
                            index.areas.len()
                        ));
                    }
                }
                if let Some(m) = ask_aliases {
                    let m = request(Pending::Aliases, m, &mut pending);
                    send(&mut ws, m).await?;
                }
            }
            Some("event") => {
                let event = &msg["event"];
                match event["event_type"].as_str() {
                    Some("state_changed") => {
                        let data = &event["data"];
                        if let Some(id) = data["entity_id"].as_str() {
                            client
                                .index
                                .write()
                                .unwrap_or_else(|e| e.into_inner())
                                .apply_state(id, &data["new_state"]);
                        }
                    }
                    Some(_) => {
                        // A registry changed (area assigned, alias added): reload them.
                        for (kind, ty) in [
                            (Pending::Areas, "config/area_registry/list"),
                            (Pending::Devices, "config/device_registry/list"),
                            (Pending::Entities, "config/entity_registry/list"),
                        ] {
                            let m = request(kind, json!({"type": ty}), &mut pending);
                            send(&mut ws, m).await?;
                        }
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_url() {
        assert_eq!(
            ws_url("http://127.0.0.1:8123"),
            "ws://127.0.0.1:8123/api/websocket"
        );
        assert_eq!(
            ws_url("https://ha.example"),
            "wss://ha.example/api/websocket"
        );
    }
}

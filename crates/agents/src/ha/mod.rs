//! Home Assistant: REST calls (services, states) and the WebSocket-fed entity index.

pub mod index;
pub mod ws;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use barnabee_service::secret::Secret;
use serde_json::Value;

pub use index::{Entity, Index, Resolution};

#[derive(Debug, thiserror::Error)]
pub enum HaError {
    #[error("cannot reach Home Assistant at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("Home Assistant rejected the token (HTTP 401); check home_assistant.token_file")]
    Unauthorized,
    #[error("Home Assistant answered HTTP {status} to {what}")]
    Status { status: u16, what: String },
    #[error("Home Assistant sent an unexpected answer to {what}: {message}")]
    Protocol { what: String, message: String },
}

#[derive(Clone)]
pub struct HaClient {
    pub base: String,
    token: Arc<Secret>,
    http: reqwest::Client,
    pub index: Arc<RwLock<Index>>,
}

impl HaClient {
    pub fn new(base: &str, token: Secret, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = barnabee_service::http_client::build(|b| {
            b.timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(2)))
                .no_proxy()
        })?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token: Arc::new(token),
            http,
            index: Arc::new(RwLock::new(Index::default())),
        })
    }

    pub fn token(&self) -> &str {
        self.token.expose()
    }

    fn unreachable(&self, e: reqwest::Error) -> HaError {
        HaError::Unreachable {
            url: self.base.clone(),
            message: e.to_string(),
        }
    }

    /// `GET /api/states/<id>`; `None` for 404.
    pub async fn state(&self, entity_id: &str) -> Result<Option<Entity>, HaError> {
        let what = format!("GET /api/states/{entity_id}");
        let resp = self
            .http
            .get(format!("{}/api/states/{entity_id}", self.base))
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            401 => return Err(HaError::Unauthorized),
            status => return Err(HaError::Status { status, what }),
        }
        let v: Value = resp.json().await.map_err(|e| HaError::Protocol {
            what: what.clone(),
            message: e.to_string(),
        })?;
        Ok(index::entity_from_state(&v))
    }

    /// `GET /api/states`: used to fill the index when the WebSocket is not up yet.
    pub async fn states(&self) -> Result<Vec<Value>, HaError> {
        let what = "GET /api/states".to_owned();
        let resp = self
            .http
            .get(format!("{}/api/states", self.base))
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        match resp.status().as_u16() {
            200 => {}
            401 => return Err(HaError::Unauthorized),
            status => return Err(HaError::Status { status, what }),
        }
        resp.json().await.map_err(|e| HaError::Protocol {
            what,
            message: e.to_string(),
        })
    }

    /// `POST /api/conversation/process` (HA's own intent matching). Returns the `response`
    /// object; callers must check `response_type` (errors come back as HTTP 200 too).
    pub async fn conversation(&self, text: &str) -> Result<Value, HaError> {
        let what = "POST /api/conversation/process".to_owned();
        let resp = self
            .http
            .post(format!("{}/api/conversation/process", self.base))
            .bearer_auth(self.token.expose())
            .json(&serde_json::json!({"text": text, "language": "en"}))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        match resp.status().as_u16() {
            200 => {}
            401 => return Err(HaError::Unauthorized),
            status => return Err(HaError::Status { status, what }),
        }
        let v: Value = resp.json().await.map_err(|e| HaError::Protocol {
            what: what.clone(),
            message: e.to_string(),
        })?;
        Ok(v["response"].clone())
    }

    /// `POST /api/services/<domain>/<service>`. HA answers 200 `[]` even for unknown entities,
    /// so success here proves nothing; callers confirm the state themselves.
    pub async fn call_service(
        &self,
        domain: &str,
        service: &str,
        data: &Value,
    ) -> Result<(), HaError> {
        let what = format!("{domain}.{service}");
        let resp = self
            .http
            .post(format!("{}/api/services/{domain}/{service}", self.base))
            .bearer_auth(self.token.expose())
            .json(data)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        match resp.status().as_u16() {
            200 | 201 => Ok(()),
            401 => Err(HaError::Unauthorized),
            status => Err(HaError::Status { status, what }),
        }
    }
}

//! The Wyoming protocol (what Home Assistant speaks to STT/TTS/wake and conversation services).
//!
//! One implementation for the workspace: inference's Wyoming server (STT, TTS, wake, VAD), the
//! voice daemon's client of it, and the agents' conversation (`handle`) service all frame events
//! with this crate. Event names and their fields are in `../shared/docs/voice.md` §1.2.
//!
//! Framing: a JSON header line (`type`, optional `data`, `data_length`, `payload_length`,
//! `version`), then `data_length` bytes of JSON merged over `data`, then `payload_length`
//! bytes of payload. We accept `data` inline, in the segment, both or neither, and write like
//! the Python library (data in the segment, `version` in the header). Header, data and payload
//! sizes are bounded; a malformed frame gets an `error` event and the connection is closed.

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Written into every header, like the Python library writes its own version.
pub const VERSION: &str = "1.10.2";

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: String,
    pub data: Map<String, Value>,
    pub payload: Vec<u8>,
}

impl Event {
    pub fn new(kind: &str, data: Value) -> Event {
        Event {
            kind: kind.to_owned(),
            data: match data {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            payload: Vec::new(),
        }
    }

    /// An application error (`error {text, code}`): the connection stays usable after it.
    pub fn error(text: &str, code: &str) -> Event {
        Event::new("error", json!({"text": text, "code": code}))
    }

    pub fn with_payload(mut self, payload: Vec<u8>) -> Event {
        self.payload = payload;
        self
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }

    pub fn u64(&self, key: &str) -> Option<u64> {
        self.data.get(key).and_then(Value::as_u64)
    }

    pub fn f64(&self, key: &str) -> Option<f64> {
        self.data.get(key).and_then(Value::as_f64)
    }

    /// The frame the Python library would write: header line (with `version`), the data as a
    /// segment, the payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut header = Map::new();
        header.insert("type".into(), Value::String(self.kind.clone()));
        header.insert("version".into(), Value::String(VERSION.into()));
        // A Map<String, Value> always serialises; the fallback is never taken.
        let data = if self.data.is_empty() {
            Vec::new()
        } else {
            serde_json::to_vec(&self.data).unwrap_or_default()
        };
        if !data.is_empty() {
            header.insert("data_length".into(), json!(data.len()));
        }
        if !self.payload.is_empty() {
            header.insert("payload_length".into(), json!(self.payload.len()));
        }
        let mut buf = serde_json::to_vec(&header).unwrap_or_default();
        buf.push(b'\n');
        buf.extend_from_slice(&data);
        buf.extend_from_slice(&self.payload);
        buf
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("header line longer than {0} bytes")]
    HeaderTooLong(usize),
    #[error("header is not a JSON object: {0}")]
    BadHeader(String),
    #[error("header has no string `type`")]
    NoType,
    #[error("`{field}` must be a non-negative integer at most {max}")]
    BadLength { field: &'static str, max: usize },
    #[error("data segment is not a JSON object: {0}")]
    BadData(String),
    #[error("connection closed in the middle of an event")]
    Truncated,
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Bounds on one incoming event, each part on its own: the header line, the data segment
/// (`data_length`) and the payload (`payload_length`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header: usize,
    pub data: usize,
    pub payload: usize,
}

/// Read one event; `Ok(None)` on a clean end of stream.
pub async fn read_event<R: AsyncBufRead + Unpin>(
    r: &mut R,
    limits: Limits,
) -> Result<Option<Event>, FrameError> {
    let mut line = Vec::new();
    let n = (&mut *r)
        .take(limits.header as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        if line.len() > limits.header {
            return Err(FrameError::HeaderTooLong(limits.header));
        }
        return Err(FrameError::Truncated);
    }
    let header: Value =
        serde_json::from_slice(&line).map_err(|e| FrameError::BadHeader(e.to_string()))?;
    let Value::Object(mut header) = header else {
        return Err(FrameError::BadHeader("not an object".into()));
    };
    let kind = match header.remove("type") {
        Some(Value::String(s)) => s,
        _ => return Err(FrameError::NoType),
    };
    let mut data = match header.remove("data") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(FrameError::BadData("inline `data` is not an object".into())),
    };
    let len = |v: Option<&Value>, field: &'static str, max: usize| -> Result<usize, FrameError> {
        match v {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n <= max)
                .ok_or(FrameError::BadLength { field, max }),
        }
    };
    let data_len = len(header.get("data_length"), "data_length", limits.data)?;
    let payload_len = len(
        header.get("payload_length"),
        "payload_length",
        limits.payload,
    )?;
    if data_len > 0 {
        let mut buf = vec![0u8; data_len];
        r.read_exact(&mut buf)
            .await
            .map_err(|_| FrameError::Truncated)?;
        match serde_json::from_slice(&buf) {
            Ok(Value::Object(extra)) => data.extend(extra),
            Ok(_) => return Err(FrameError::BadData("not an object".into())),
            Err(e) => return Err(FrameError::BadData(e.to_string())),
        }
    }
    let mut payload = vec![0u8; payload_len];
    if payload_len > 0 {
        r.read_exact(&mut payload)
            .await
            .map_err(|_| FrameError::Truncated)?;
    }
    Ok(Some(Event {
        kind,
        data,
        payload,
    }))
}

/// Write one event the way the Python library does.
pub async fn write_event<W: AsyncWrite + Unpin>(w: &mut W, ev: &Event) -> std::io::Result<()> {
    w.write_all(&ev.encode()).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const L: Limits = Limits {
        header: 1024,
        data: 1024,
        payload: 4096,
    };

    async fn parse(bytes: &[u8]) -> Result<Option<Event>, FrameError> {
        let mut r = tokio::io::BufReader::new(bytes);
        read_event(&mut r, L).await
    }

    #[tokio::test]
    async fn inline_segment_and_merged_data() {
        let e = parse(b"{\"type\":\"describe\"}\n").await.unwrap().unwrap();
        assert_eq!(e.kind, "describe");
        assert!(e.data.is_empty());
        let e = parse(b"{\"type\":\"transcribe\",\"data\":{\"language\":\"en\",\"name\":\"a\"},\"data_length\":12}\n{\"name\":\"b\"}")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.str("language"), Some("en"));
        assert_eq!(e.str("name"), Some("b"), "segment wins");
        let e = parse(b"{\"type\":\"audio-chunk\",\"data\":{\"rate\":16000},\"payload_length\":4}\n\x01\x02\x03\x04")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.payload, vec![1, 2, 3, 4]);
        assert!(parse(b"").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn malformed_frames_are_named() {
        assert!(matches!(
            parse(b"not json\n").await,
            Err(FrameError::BadHeader(_))
        ));
        assert!(matches!(
            parse(b"{\"data\":{}}\n").await,
            Err(FrameError::NoType)
        ));
        assert!(matches!(
            parse(b"{\"type\":\"x\",\"payload_length\":99999}\n").await,
            Err(FrameError::BadLength {
                field: "payload_length",
                ..
            })
        ));
        assert!(matches!(
            parse(b"{\"type\":\"x\",\"payload_length\":10}\nabc").await,
            Err(FrameError::Truncated)
        ));
        let long = vec![b'a'; 2000];
        assert!(matches!(
            parse(&long).await,
            Err(FrameError::HeaderTooLong(1024))
        ));
    }

    #[tokio::test]
    async fn write_then_read_round_trip() {
        let ev = Event::new(
            "audio-chunk",
            json!({"rate": 16000, "width": 2, "channels": 1}),
        )
        .with_payload(vec![0, 1, 2, 3]);
        let mut buf = Vec::new();
        write_event(&mut buf, &ev).await.unwrap();
        let header: Value =
            serde_json::from_slice(buf.split(|b| *b == b'\n').next().unwrap()).unwrap();
        assert!(header.get("data").is_none(), "data goes in the segment");
        assert_eq!(header["payload_length"], 4);
        assert_eq!(parse(&buf).await.unwrap().unwrap(), ev);
    }
}

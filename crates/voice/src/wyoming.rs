//! A Wyoming client: one JSON header line (`type`, optional inline `data`, `data_length`,
//! `payload_length`), then `data_length` bytes of JSON merged over `data`, then the payload.
//! Reads accept inline data, segment data, both, or neither; lengths are bounded.

use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const MAX_HEADER: usize = 64 * 1024;
const MAX_DATA: usize = 1024 * 1024;
const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WyomingError {
    #[error("cannot connect to Wyoming server {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("Wyoming server {addr}: {reason}")]
    Io { addr: String, reason: String },
    #[error("Wyoming server {addr} sent a malformed frame: {reason}")]
    Malformed { addr: String, reason: String },
    #[error("Wyoming server {addr} closed the connection {during}")]
    Closed { addr: String, during: String },
    #[error("Wyoming server {addr} did not answer within {ms} ms {during}")]
    Timeout {
        addr: String,
        ms: u64,
        during: String,
    },
    #[error("Wyoming server {addr} reported an error ({code}): {text}")]
    Remote {
        addr: String,
        code: String,
        text: String,
    },
}

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
    pub fn with_payload(mut self, p: Vec<u8>) -> Event {
        self.payload = p;
        self
    }
    pub fn str(&self, k: &str) -> Option<&str> {
        self.data.get(k).and_then(Value::as_str)
    }
    pub fn u64(&self, k: &str) -> Option<u64> {
        self.data.get(k).and_then(Value::as_u64)
    }
    pub fn f64(&self, k: &str) -> Option<f64> {
        self.data.get(k).and_then(Value::as_f64)
    }
    /// Encode: header line, data segment (as the Python library does), payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut header = Map::new();
        header.insert("type".into(), json!(self.kind));
        header.insert("version".into(), json!("1.5.4"));
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
        let mut out = serde_json::to_vec(&Value::Object(header)).unwrap_or_default();
        out.push(b'\n');
        out.extend(data);
        out.extend_from_slice(&self.payload);
        out
    }
}

/// Parse one event from a reader; `Ok(None)` at a clean end of stream.
pub async fn read_event<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> Result<Option<Event>, String> {
    let mut line = Vec::new();
    let n = (&mut *r)
        .take(MAX_HEADER as u64 + 1)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(if line.len() > MAX_HEADER {
            format!("header longer than {MAX_HEADER} bytes")
        } else {
            "truncated header".into()
        });
    }
    let h: Value = serde_json::from_slice(&line).map_err(|e| format!("header is not JSON: {e}"))?;
    let kind = h
        .get("type")
        .and_then(Value::as_str)
        .ok_or("header has no \"type\"")?
        .to_owned();
    let mut data = match h.get("data") {
        Some(Value::Object(m)) => m.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err("\"data\" is not an object".into()),
    };
    let len = |k: &str, max: usize| -> Result<usize, String> {
        match h.get(k) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => {
                let n = v.as_u64().ok_or(format!("{k} is not a number"))? as usize;
                if n > max {
                    Err(format!("{k} {n} exceeds the limit {max}"))
                } else {
                    Ok(n)
                }
            }
        }
    };
    let dl = len("data_length", MAX_DATA)?;
    let pl = len("payload_length", MAX_PAYLOAD)?;
    if dl > 0 {
        let mut b = vec![0; dl];
        r.read_exact(&mut b)
            .await
            .map_err(|e| format!("data segment: {e}"))?;
        match serde_json::from_slice(&b).map_err(|e| format!("data segment is not JSON: {e}"))? {
            Value::Object(m) => data.extend(m),
            _ => return Err("data segment is not an object".into()),
        }
    }
    let mut payload = vec![0; pl];
    if pl > 0 {
        r.read_exact(&mut payload)
            .await
            .map_err(|e| format!("payload: {e}"))?;
    }
    Ok(Some(Event {
        kind,
        data,
        payload,
    }))
}

/// One TCP connection to a Wyoming server.
pub struct Client {
    pub addr: String,
    r: BufReader<OwnedReadHalf>,
    w: BufWriter<OwnedWriteHalf>,
    timeout: Duration,
    ping_seq: u64,
}

impl Client {
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Client, WyomingError> {
        let sock = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| WyomingError::Connect {
                addr: addr.into(),
                reason: format!("timed out after {} ms", timeout.as_millis()),
            })?
            .map_err(|e| WyomingError::Connect {
                addr: addr.into(),
                reason: e.to_string(),
            })?;
        let _ = sock.set_nodelay(true);
        let (r, w) = sock.into_split();
        Ok(Client {
            addr: addr.into(),
            r: BufReader::new(r),
            w: BufWriter::new(w),
            timeout,
            ping_seq: 0,
        })
    }

    pub async fn send(&mut self, ev: &Event) -> Result<(), WyomingError> {
        let io = |e: std::io::Error| WyomingError::Io {
            addr: self.addr.clone(),
            reason: e.to_string(),
        };
        self.w.write_all(&ev.encode()).await.map_err(io)?;
        self.w.flush().await.map_err(io)
    }

    /// The next event (an `error` event becomes [`WyomingError::Remote`]).
    pub async fn recv(&mut self, during: &str) -> Result<Event, WyomingError> {
        let ev = tokio::time::timeout(self.timeout, read_event(&mut self.r))
            .await
            .map_err(|_| WyomingError::Timeout {
                addr: self.addr.clone(),
                ms: self.timeout.as_millis() as u64,
                during: during.into(),
            })?
            .map_err(|reason| WyomingError::Malformed {
                addr: self.addr.clone(),
                reason,
            })?
            .ok_or_else(|| WyomingError::Closed {
                addr: self.addr.clone(),
                during: during.into(),
            })?;
        if ev.kind == "error" {
            return Err(WyomingError::Remote {
                addr: self.addr.clone(),
                code: ev.str("code").unwrap_or("").into(),
                text: ev.str("text").unwrap_or("").into(),
            });
        }
        Ok(ev)
    }

    /// Send an audio chunk and a `ping`, and return every event the server sent before the
    /// `pong`: the server handles events in order, so this is exactly its reaction to the
    /// chunk (lock-step keeps wake and VAD decisions tied to the frame that caused them).
    pub async fn chunk_lockstep(
        &mut self,
        pcm: &[i16],
        during: &str,
    ) -> Result<Vec<Event>, WyomingError> {
        self.send(&audio_chunk(pcm)).await?;
        self.ping_seq += 1;
        let tag = format!("lockstep-{}", self.ping_seq);
        self.send(&Event::new("ping", json!({"text": tag}))).await?;
        let mut out = Vec::new();
        loop {
            let ev = self.recv(during).await?;
            if ev.kind == "pong" && ev.str("text") == Some(tag.as_str()) {
                return Ok(out);
            }
            out.push(ev);
        }
    }
}

pub fn audio_format() -> Value {
    json!({"rate": crate::audio::RATE, "width": 2, "channels": 1})
}

pub fn audio_chunk(pcm: &[i16]) -> Event {
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    Event::new("audio-chunk", audio_format()).with_payload(bytes)
}

pub fn pcm_from_le(b: &[u8]) -> Vec<i16> {
    b.chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn parse(b: &[u8]) -> Result<Option<Event>, String> {
        read_event(&mut BufReader::new(b)).await
    }

    #[tokio::test]
    async fn round_trip_with_data_segment_and_payload() {
        let ev = Event::new("audio-chunk", json!({"rate": 16000})).with_payload(vec![1, 2, 3, 4]);
        let b = ev.encode();
        let line = b.split(|c| *c == b'\n').next().unwrap();
        let h: Value = serde_json::from_slice(line).unwrap();
        assert!(h.get("data").is_none(), "data goes into the segment");
        assert_eq!(parse(&b).await.unwrap().unwrap(), ev);
    }

    #[tokio::test]
    async fn inline_and_segment_data_merge_segment_wins() {
        let seg = br#"{"b":2,"a":9}"#;
        let mut b = format!(
            "{{\"type\":\"x\",\"data\":{{\"a\":1,\"c\":3}},\"data_length\":{}}}\n",
            seg.len()
        )
        .into_bytes();
        b.extend_from_slice(seg);
        let ev = parse(&b).await.unwrap().unwrap();
        assert_eq!(ev.u64("a"), Some(9));
        assert_eq!(ev.u64("b"), Some(2));
        assert_eq!(ev.u64("c"), Some(3));
        assert_eq!(
            parse(b"{\"type\":\"describe\"}\n")
                .await
                .unwrap()
                .unwrap()
                .kind,
            "describe"
        );
    }

    #[tokio::test]
    async fn malformed_frames_are_errors_not_panics() {
        assert!(parse(b"").await.unwrap().is_none());
        assert!(parse(b"not json\n").await.unwrap_err().contains("JSON"));
        assert!(parse(b"{\"x\":1}\n").await.unwrap_err().contains("type"));
        assert!(
            parse(b"{\"type\":\"a\"")
                .await
                .unwrap_err()
                .contains("truncated")
        );
        assert!(
            parse(b"{\"type\":\"a\",\"payload_length\":99999999999}\n")
                .await
                .unwrap_err()
                .contains("limit")
        );
        assert!(
            parse(b"{\"type\":\"a\",\"payload_length\":10}\nabc")
                .await
                .unwrap_err()
                .contains("payload")
        );
    }
}

//! A Wyoming client for the beast's inference daemon (wake, VAD, STT, TTS). The framing (events,
//! reading with bounds, writing like the Python library) is the `barnabee-wyoming` crate, the
//! same code inference's server speaks: one implementation of the protocol in the workspace.

use std::time::Duration;

use barnabee_wyoming::{Limits, read_event};
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

pub use barnabee_wyoming::Event;

/// Bounds on what a server may send: a 64 KiB header line, a 1 MiB data segment (far above a
/// transcript or a `describe` answer), 16 MiB of payload (minutes of TTS audio).
const LIMITS: Limits = Limits {
    header: 64 * 1024,
    data: 1024 * 1024,
    payload: 16 * 1024 * 1024,
};

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
        let ev = tokio::time::timeout(self.timeout, read_event(&mut self.r, LIMITS))
            .await
            .map_err(|_| WyomingError::Timeout {
                addr: self.addr.clone(),
                ms: self.timeout.as_millis() as u64,
                during: during.into(),
            })?
            .map_err(|e| WyomingError::Malformed {
                addr: self.addr.clone(),
                reason: e.to_string(),
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

    /// A server that answers any connection with `reply` and keeps it open.
    async fn server(reply: &'static [u8]) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(reply).await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        addr
    }

    async fn recv_from(reply: &'static [u8]) -> Result<Event, WyomingError> {
        let addr = server(reply).await;
        let mut c = Client::connect(&addr, Duration::from_millis(500))
            .await
            .unwrap();
        c.recv("in the test").await
    }

    #[tokio::test]
    async fn events_errors_and_malformed_frames_from_a_server() {
        let ev = recv_from(b"{\"type\":\"transcript\",\"data_length\":15}\n{\"text\":\"hi\"}  ")
            .await
            .unwrap();
        assert_eq!(
            (ev.kind.as_str(), ev.str("text")),
            ("transcript", Some("hi"))
        );
        let e = recv_from(
            b"{\"type\":\"error\",\"data\":{\"code\":\"no-model\",\"text\":\"no STT\"}}\n",
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&e, WyomingError::Remote { code, text, .. } if code == "no-model" && text == "no STT"),
            "{e}"
        );
        let e = recv_from(b"not json\n").await.unwrap_err();
        assert!(
            matches!(&e, WyomingError::Malformed { reason, .. } if reason.contains("JSON")),
            "{e}"
        );
        let e = recv_from(b"{\"type\":\"a\",\"payload_length\":99999999999}\n")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("payload_length"), "{e}");
        let e = recv_from(b"").await.unwrap_err();
        assert!(matches!(e, WyomingError::Timeout { .. }), "{e}");
    }

    #[test]
    fn audio_chunks_round_trip_as_little_endian_pcm() {
        let ev = audio_chunk(&[1, -2, 300]);
        assert_eq!(ev.kind, "audio-chunk");
        assert_eq!(ev.u64("rate"), Some(u64::from(crate::audio::RATE)));
        assert_eq!(pcm_from_le(&ev.payload), vec![1, -2, 300]);
    }
}

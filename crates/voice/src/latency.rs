//! Per-request stage timings: kept (last N) for `GET /v1/latency`, logged with kv fields,
//! observed into the metrics.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use serde::Serialize;

/// One request, wake word to the end of the answer. Stage times in milliseconds; `None` when
/// the request never reached that stage.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Breakdown {
    pub request_id: u64,
    pub device_id: String,
    /// `answered`, `no_request` (wake word, then nothing), `stt_failed`, `tts_failed`,
    /// `empty_transcript`.
    pub outcome: String,
    pub wake_word: Option<String>,
    pub transcript: Option<String>,
    /// True when a test replaced the STT model's transcript (the STT round trip still ran).
    pub transcript_injected: bool,
    pub reply: Option<String>,
    pub route: Option<String>,
    /// Identified speaker ("guest" below the threshold/margin); `None` when disabled.
    pub speaker: Option<String>,
    pub speaker_confidence: Option<f64>,
    /// The capture was cut at `max_utterance_ms`.
    pub truncated: bool,
    /// Wake word detected → end of speech (audio time).
    pub wake_to_speech_end_ms: Option<f64>,
    /// End of speech → endpoint decision (audio time: VAD hangover + `end_silence_ms`).
    pub endpoint_ms: Option<f64>,
    /// `audio-stop` sent → transcript received.
    pub stt_ms: Option<f64>,
    /// `POST /v1/process` round trip.
    pub agents_ms: Option<f64>,
    /// `synthesize` sent → first audio chunk received (and queued on the sink).
    pub tts_first_audio_ms: Option<f64>,
    /// End of speech → first audio: endpoint + STT + agents + TTS first audio (the 1 s target).
    pub total_ms: Option<f64>,
    /// Wake word → first audio.
    pub wake_to_first_audio_ms: Option<f64>,
    pub error: Option<String>,
}

#[derive(Clone)]
pub struct VoiceMetrics {
    pub stt_latency: Histogram,
    pub tts_latency: Histogram,
    pub total_latency: Histogram,
    /// `barnabee_voice_stt_requests_total{outcome}`: the alert rules take windowed error
    /// rates from it (a ratio since start would hide a fresh outage behind weeks of successes).
    stt_requests: Family<Vec<(String, String)>, Counter>,
    pub requests: Family<Vec<(String, String)>, Counter>,
    pub barge_ins: Counter,
    announcements: Family<Vec<(String, String)>, Counter>,
    /// Every identification's best score, so a windowed mean is `rate(_sum) / rate(_count)`.
    speaker_confidence: Histogram,
}

fn buckets() -> impl Iterator<Item = f64> {
    [
        25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0, 600.0, 800.0, 1000.0, 1500.0, 2000.0,
        5000.0,
    ]
    .into_iter()
}

fn confidence_buckets() -> impl Iterator<Item = f64> {
    [
        0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0,
    ]
    .into_iter()
}

impl VoiceMetrics {
    pub fn new(m: &barnabee_service::metrics::Metrics) -> VoiceMetrics {
        use barnabee_service::catalog;
        let v = VoiceMetrics {
            stt_latency: Histogram::new(buckets()),
            tts_latency: Histogram::new(buckets()),
            total_latency: Histogram::new(buckets()),
            stt_requests: Family::default(),
            requests: Family::default(),
            barge_ins: Counter::default(),
            announcements: Family::default(),
            speaker_confidence: Histogram::new(confidence_buckets()),
        };
        // Present at 0 from the start, so rate() has a series before the first failure.
        for outcome in ["ok", "error"] {
            let _ = v
                .stt_requests
                .get_or_create(&vec![("outcome".into(), outcome.into())]);
        }
        m.register_def(&catalog::VOICE_STT_LATENCY, v.stt_latency.clone());
        m.register_def(&catalog::VOICE_TTS_LATENCY, v.tts_latency.clone());
        m.register_def(&catalog::VOICE_TOTAL_LATENCY, v.total_latency.clone());
        m.register_def(&catalog::VOICE_STT_REQUESTS, v.stt_requests.clone());
        m.register_def(&catalog::VOICE_REQUESTS, v.requests.clone());
        m.register_def(&catalog::VOICE_BARGE_INS, v.barge_ins.clone());
        m.register_def(&catalog::VOICE_ANNOUNCEMENTS, v.announcements.clone());
        m.register_def(
            &catalog::VOICE_SPEAKER_CONFIDENCE,
            v.speaker_confidence.clone(),
        );
        v
    }

    /// One announcement's outcome: `played`, `failed` (TTS) or `refused` (queue full, no
    /// pipeline).
    pub fn announcement(&self, outcome: &str) {
        self.announcements
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
    }

    pub fn stt_outcome(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.stt_requests
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
    }

    pub fn speaker_confidence(&self, score: f64) {
        self.speaker_confidence.observe(score);
    }

    pub fn record(&self, b: &Breakdown) {
        if let Some(x) = b.stt_ms {
            self.stt_latency.observe(x);
        }
        if let Some(x) = b.tts_first_audio_ms {
            self.tts_latency.observe(x);
        }
        if let Some(x) = b.total_ms {
            self.total_latency.observe(x);
        }
        self.requests
            .get_or_create(&vec![("outcome".into(), b.outcome.clone())])
            .inc();
    }
}

/// The last N breakdowns.
#[derive(Clone, Default)]
pub struct Breakdowns {
    inner: Arc<Mutex<(usize, VecDeque<Breakdown>)>>,
}

impl Breakdowns {
    pub fn new(keep: usize) -> Breakdowns {
        Breakdowns {
            inner: Arc::new(Mutex::new((keep.max(1), VecDeque::new()))),
        }
    }
    pub fn push(&self, b: Breakdown) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let keep = g.0;
        g.1.push_back(b);
        while g.1.len() > keep {
            g.1.pop_front();
        }
    }
    /// Newest first.
    pub fn last(&self, n: usize) -> Vec<Breakdown> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.1.iter().rev().take(n).cloned().collect()
    }
}

/// Log one breakdown with kv fields (journald: REQUEST_ID=, STT_MS=, …).
pub fn log(b: &Breakdown) {
    let f = |x: Option<f64>| x.map(|v| v.round() as i64).unwrap_or(-1);
    log::info!(
        request_id = b.request_id,
        device_id = b.device_id.as_str(),
        outcome = b.outcome.as_str(),
        route = b.route.as_deref().unwrap_or(""),
        wake_to_speech_end_ms = f(b.wake_to_speech_end_ms),
        endpoint_ms = f(b.endpoint_ms),
        stt_ms = f(b.stt_ms),
        agents_ms = f(b.agents_ms),
        tts_first_audio_ms = f(b.tts_first_audio_ms),
        total_ms = f(b.total_ms),
        transcript_injected = b.transcript_injected;
        "voice request {} {}: speech end → first audio {} ms (stt {} ms, agents {} ms, tts {} ms)",
        b.request_id, b.outcome, f(b.total_ms), f(b.stt_ms), f(b.agents_ms), f(b.tts_first_audio_ms)
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keeps_the_last_n_newest_first() {
        let b = Breakdowns::new(3);
        for i in 0..5 {
            b.push(Breakdown {
                request_id: i,
                ..Default::default()
            });
        }
        let ids: Vec<u64> = b.last(10).iter().map(|x| x.request_id).collect();
        assert_eq!(ids, vec![4, 3, 2]);
        assert_eq!(b.last(1).len(), 1);
    }

    #[test]
    fn metrics_are_exported_with_stt_outcomes_counted() {
        let m = barnabee_service::metrics::Metrics::new();
        let v = VoiceMetrics::new(&m);
        v.stt_outcome(true);
        v.stt_outcome(false);
        v.stt_outcome(true);
        v.stt_outcome(true);
        v.speaker_confidence(0.82);
        v.record(&Breakdown {
            outcome: "answered".into(),
            stt_ms: Some(120.0),
            tts_first_audio_ms: Some(80.0),
            total_ms: Some(450.0),
            ..Default::default()
        });
        let text = m.encode();
        for name in [
            "barnabee_voice_stt_latency_ms_bucket",
            "barnabee_voice_tts_latency_ms_bucket",
            "barnabee_voice_total_latency_ms_bucket{le=\"500.0\"} 1",
            "barnabee_voice_stt_requests_total{outcome=\"ok\"} 3",
            "barnabee_voice_stt_requests_total{outcome=\"error\"} 1",
            "barnabee_voice_speaker_confidence_ratio_count 1",
            "barnabee_voice_requests_total{outcome=\"answered\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}

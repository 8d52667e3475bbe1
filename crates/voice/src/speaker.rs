//! Speaker identification (personalisation only, never authentication): the captured
//! utterance → barnabee-inference `POST /v1/embed/speaker` → cosine against each enrolled
//! member's centroid from barnabee-memory `GET /v1/speakers` → the best match if its score is
//! at least the threshold and beats the runner-up by `margin`, else "guest".
//!
//! The threshold belongs to the embedding model, not to this daemon: cosines of different
//! model families live on different scales (GE2E scores unrelated voices up to 0.71 and needs
//! 0.8; WeSpeaker needs 0.6). So unless the operator sets `[speaker] threshold`, the threshold
//! is the one barnabee-inference reports for the model that made the embedding
//! (`GET /v1/models`, `details.threshold`), looked up by the model name in the embedding's
//! answer and cached like the profiles.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::SpeakerConfig;

pub const GUEST: &str = "guest";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The member's name, or "guest".
    pub speaker: String,
    /// Cosine similarity of the best match (0 when nobody is enrolled).
    pub confidence: f64,
    /// Best score minus the runner-up's.
    pub margin: f64,
    /// The threshold the best score was held to.
    pub threshold: f64,
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut d, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        d += *x as f64 * *y as f64;
        na += *x as f64 * *x as f64;
        nb += *y as f64 * *y as f64;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        d / (na.sqrt() * nb.sqrt())
    }
}

/// Decide among enrolled centroids (profiles of another dimension are skipped).
pub fn identify(embedding: &[f32], profiles: &[Profile], threshold: f64, margin: f64) -> Decision {
    let mut scores: Vec<(f64, &str)> = profiles
        .iter()
        .filter(|p| p.centroid.len() == embedding.len())
        .map(|p| (cosine(embedding, &p.centroid), p.name.as_str()))
        .collect();
    scores.sort_by(|a, b| b.0.total_cmp(&a.0));
    let Some(&(best, name)) = scores.first() else {
        return Decision {
            speaker: GUEST.into(),
            confidence: 0.0,
            margin: 0.0,
            threshold,
        };
    };
    let second = scores.get(1).map(|s| s.0).unwrap_or(-1.0);
    let m = best - second;
    Decision {
        speaker: if best >= threshold && m >= margin {
            name.to_owned()
        } else {
            GUEST.into()
        },
        confidence: best,
        margin: m,
        threshold,
    }
}

/// barnabee-memory's speaker profile (the fields we use).
#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    pub name: String,
    pub centroid: Vec<f32>,
    /// The embedding model the centroid was made with (we store the inference model's name);
    /// profiles of another model are skipped (a model change means re-enrolment).
    #[serde(default)]
    pub embedding_model_hash: String,
}

/// Talks to the inference and memory daemons; caches the profiles for `refresh`.
pub struct SpeakerId {
    cfg: SpeakerConfig,
    /// Built once; an error (no TLS library) fails each identification, naming it.
    http: Result<reqwest::Client, String>,
    cache: Option<(Instant, Vec<Profile>)>,
    /// The model's own threshold: (fetched at, model name, value), when not configured.
    model_threshold: Option<(Instant, String, f64)>,
}

impl SpeakerId {
    pub fn new(cfg: SpeakerConfig) -> SpeakerId {
        SpeakerId {
            http: barnabee_service::http_client::build(|b| b.timeout(Duration::from_secs(5)))
                .map_err(|e| {
                    format!(
                        "cannot build an HTTP client: {}",
                        barnabee_service::error_chain(&e)
                    )
                }),
            cfg,
            cache: None,
            model_threshold: None,
        }
    }

    /// `[speaker] threshold` when set, else the threshold barnabee-inference reports for
    /// `model` (re-read after `refresh`, and at once when the model's name changes).
    async fn threshold(&mut self, model: &str) -> Result<f64, String> {
        if let Some(t) = self.cfg.threshold {
            return Ok(t);
        }
        if let Some((at, m, t)) = &self.model_threshold
            && m == model
            && at.elapsed() < self.cfg.refresh
        {
            return Ok(*t);
        }
        let url = format!("{}/v1/models", self.cfg.inference_url.trim_end_matches('/'));
        let v: serde_json::Value = self.get_json(&url).await?;
        let t = reported_threshold(&v, model).map_err(|e| format!("{url}: {e}"))?;
        self.model_threshold = Some((Instant::now(), model.to_owned(), t));
        Ok(t)
    }

    async fn profiles(&mut self) -> Result<Vec<Profile>, String> {
        if let Some((at, p)) = &self.cache
            && at.elapsed() < self.cfg.refresh
        {
            return Ok(p.clone());
        }
        let url = format!("{}/v1/speakers", self.cfg.memory_url.trim_end_matches('/'));
        let p: Vec<Profile> = self.get_json(&url).await?;
        self.cache = Some((Instant::now(), p.clone()));
        Ok(p)
    }

    /// GET `url` and decode its JSON; errors name the URL.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let r = self
            .http
            .as_ref()
            .map_err(Clone::clone)?
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("{url}: HTTP {}", r.status()));
        }
        r.json().await.map_err(|e| format!("{url}: {e}"))
    }

    /// Identify the speaker of 16 kHz mono PCM.
    pub async fn identify(&mut self, pcm: &[i16]) -> Result<Decision, String> {
        let http = self.http.as_ref().map_err(Clone::clone)?;
        let (model, emb) = embed(http, &self.cfg.inference_url, pcm).await?;
        let threshold = self.threshold(&model).await?;
        let profiles: Vec<Profile> = self
            .profiles()
            .await?
            .into_iter()
            .filter(|p| {
                p.embedding_model_hash.is_empty()
                    || model.is_empty()
                    || p.embedding_model_hash == model
            })
            .collect();
        Ok(identify(&emb, &profiles, threshold, self.cfg.margin))
    }
}

/// The threshold barnabee-inference's `GET /v1/models` answer reports for the speaker model
/// named `model` (`details.threshold`). An error says what is missing and that
/// `[speaker] threshold` can stand in for it.
pub fn reported_threshold(models: &serde_json::Value, model: &str) -> Result<f64, String> {
    if model.is_empty() {
        return Err(
            "the embedding answer names no model, so its threshold cannot be looked up; \
             set [speaker] threshold"
                .into(),
        );
    }
    let list = models["models"]
        .as_array()
        .ok_or_else(|| format!("no `models` list in {models}"))?;
    let m = list
        .iter()
        .find(|m| m["name"] == model && m["kind"] == "speaker")
        .ok_or_else(|| format!("no speaker model named `{model}` is listed"))?;
    m["details"]["threshold"].as_f64().ok_or_else(|| {
        format!(
            "speaker model `{model}` reports no details.threshold (a barnabee-inference older \
             than the speaker families?); set [speaker] threshold"
        )
    })
}

/// The embedding of one utterance: (model name, vector).
pub async fn embed(
    http: &reqwest::Client,
    inference_url: &str,
    pcm: &[i16],
) -> Result<(String, Vec<f32>), String> {
    let url = format!("{}/v1/embed/speaker", inference_url.trim_end_matches('/'));
    let r = http
        .post(&url)
        .header("content-type", "audio/wav")
        .body(wav_bytes(pcm))
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let st = r.status();
    let v: serde_json::Value = r.json().await.map_err(|e| format!("{url}: {e}"))?;
    if !st.is_success() {
        return Err(format!("{url}: HTTP {st}: {v}"));
    }
    let emb = v["embedding"]
        .as_array()
        .ok_or_else(|| format!("{url}: no embedding in {v}"))?
        .iter()
        .filter_map(|x| x.as_f64().map(|f| f as f32))
        .collect();
    Ok((v["model"].as_str().unwrap_or("").to_owned(), emb))
}

/// The centroid of several embeddings: the mean of the L2-normalised vectors, re-normalised.
/// The centroid of an old profile of `old_n` samples and `new_n` new ones: the normalised sum
/// of both centroids weighted by their sample counts (what [`centroid`] of all the samples
/// would give if every sample's direction were the profile's; the stored profile keeps no
/// samples, so this is as close as adding can get).
pub fn merge(old: &[f32], old_n: i64, new: &[f32], new_n: usize) -> Option<Vec<f32>> {
    if old.len() != new.len() || old.is_empty() {
        return None;
    }
    let sum: Vec<f64> = old
        .iter()
        .zip(new)
        .map(|(a, b)| *a as f64 * old_n as f64 + *b as f64 * new_n as f64)
        .collect();
    let n = sum.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    Some(sum.iter().map(|x| (x / n) as f32).collect())
}

pub fn centroid(embeddings: &[Vec<f32>]) -> Option<Vec<f32>> {
    let dim = embeddings.first()?.len();
    if dim == 0 || embeddings.iter().any(|e| e.len() != dim) {
        return None;
    }
    let mut c = vec![0f64; dim];
    for e in embeddings {
        let n = e
            .iter()
            .map(|x| (*x as f64).powi(2))
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        for (a, x) in c.iter_mut().zip(e) {
            *a += *x as f64 / n;
        }
    }
    let n = c.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    Some(c.into_iter().map(|x| (x / n) as f32).collect())
}

/// Enrol `name` from 16 kHz mono utterances (for `barnabee voice enroll NAME WAV...`): embed
/// each with barnabee-inference, store the centroid in barnabee-memory
/// (`PUT /v1/speakers/{name}`). Returns the number of utterances used.
pub async fn enroll(
    inference_url: &str,
    memory_url: &str,
    name: &str,
    utterances: &[Vec<i16>],
    add: bool,
) -> Result<usize, String> {
    if utterances.is_empty() {
        return Err("enrolment needs at least one utterance".into());
    }
    let http = barnabee_service::http_client::build(|b| b.timeout(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut model = String::new();
    let mut embs = Vec::new();
    for (i, u) in utterances.iter().enumerate() {
        let (m, e) = embed(&http, inference_url, u)
            .await
            .map_err(|e| format!("utterance {}: {e}", i + 1))?;
        model = m;
        embs.push(e);
    }
    let mut c = centroid(&embs).ok_or("the embeddings have different dimensions")?;
    let url = format!("{}/v1/speakers/{name}", memory_url.trim_end_matches('/'));
    let mut samples = embs.len() as i64;
    if add {
        let r = http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        match r.status().as_u16() {
            404 => {} // nothing to add to: a first enrolment
            200 => {
                let old: serde_json::Value = r.json().await.map_err(|e| format!("{url}: {e}"))?;
                let old_model = old["embedding_model_hash"].as_str().unwrap_or("");
                if old_model != model {
                    return Err(format!(
                        "{name}'s profile was made with the speaker model {old_model:?}, this one is {model:?}: re-enrol instead of adding samples"
                    ));
                }
                let old_c: Vec<f32> = serde_json::from_value(old["centroid"].clone())
                    .map_err(|e| format!("{url}: centroid: {e}"))?;
                let old_n = old["sample_count"].as_i64().unwrap_or(0).max(0);
                c = merge(&old_c, old_n, &c, embs.len())
                    .ok_or("the stored profile has other dimensions than the new samples")?;
                samples += old_n;
            }
            st => {
                return Err(format!(
                    "{url}: HTTP {st}: {}",
                    r.text().await.unwrap_or_default()
                ));
            }
        }
    }
    let r = http
        .put(&url)
        .json(&serde_json::json!({"embedding_model_hash": model, "centroid": c, "sample_count": samples}))
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !r.status().is_success() {
        let st = r.status();
        return Err(format!(
            "{url}: HTTP {st}: {}",
            r.text().await.unwrap_or_default()
        ));
    }
    Ok(embs.len())
}

/// 16 kHz mono 16-bit WAV bytes.
pub fn wav_bytes(pcm: &[i16]) -> Vec<u8> {
    let data_len = (pcm.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + pcm.len() * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&crate::audio::RATE.to_le_bytes());
    b.extend_from_slice(&(crate::audio::RATE * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in pcm {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(name: &str, c: &[f32]) -> Profile {
        Profile {
            name: name.into(),
            centroid: c.to_vec(),
            embedding_model_hash: String::new(),
        }
    }

    #[test]
    fn threshold_and_margin_else_guest() {
        let profiles = [p("alice", &[1.0, 0.0, 0.0]), p("bob", &[0.0, 1.0, 0.0])];
        let d = identify(&[0.9, 0.1, 0.0], &profiles, 0.7, 0.2);
        assert_eq!(d.speaker, "alice");
        assert!(d.confidence > 0.99 && d.margin > 0.8);
        // below the threshold
        assert_eq!(
            identify(&[0.5, 0.4, 0.77], &profiles, 0.7, 0.2).speaker,
            GUEST
        );
        // above the threshold but too close to the runner-up
        let close = [p("alice", &[1.0, 0.1]), p("bob", &[1.0, 0.0])];
        let d = identify(&[1.0, 0.05], &close, 0.7, 0.2);
        assert_eq!(d.speaker, GUEST);
        assert!(d.confidence > 0.99);
        // nobody enrolled, or another embedding dimension
        assert_eq!(identify(&[1.0], &[], 0.1, 0.0).speaker, GUEST);
        assert_eq!(
            identify(&[1.0, 0.0], &[p("x", &[1.0])], 0.1, 0.0).speaker,
            GUEST
        );
    }

    #[test]
    fn adding_samples_weights_the_old_profile_by_its_count() {
        // 3 old samples along x, 1 new along y: 3:1.
        let m = merge(&[1.0, 0.0], 3, &[0.0, 1.0], 1).unwrap();
        assert!((m[0] / m[1] - 3.0).abs() < 1e-5, "{m:?}");
        assert!(((m[0] * m[0] + m[1] * m[1]) - 1.0).abs() < 1e-5);
        assert!(merge(&[1.0], 1, &[1.0, 0.0], 1).is_none());
    }

    #[test]
    fn centroid_is_the_normalised_mean_of_normalised_vectors() {
        let c = centroid(&[vec![2.0, 0.0], vec![0.0, 5.0]]).unwrap();
        assert!((c[0] - c[1]).abs() < 1e-6 && (c[0] - 0.70710677).abs() < 1e-6);
        assert!(centroid(&[vec![1.0], vec![1.0, 2.0]]).is_none());
        assert!(centroid(&[]).is_none());
    }

    /// In-process stand-ins for the two peers: barnabee-inference answering every embedding
    /// with `embedding` from a GE2E model (`threshold` in `/v1/models`, omitted when `None`),
    /// barnabee-memory with one profile "rms" at [1, 0]. Counts `/v1/models` requests.
    async fn peers(
        embedding: [f32; 2],
        threshold: Option<f64>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use axum::routing::{get, post};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let asked = std::sync::Arc::new(AtomicUsize::new(0));
        let a2 = asked.clone();
        let details = match threshold {
            Some(t) => serde_json::json!({"family": "ge2e", "threshold": t}),
            None => serde_json::json!({"family": "ge2e"}),
        };
        let app = axum::Router::new()
            .route(
                "/v1/embed/speaker",
                post(move || async move {
                    axum::Json(serde_json::json!(
                        {"model": "ge2e-resemblyzer", "family": "ge2e", "embedding": embedding}
                    ))
                }),
            )
            .route(
                "/v1/models",
                get(move || {
                    a2.fetch_add(1, Ordering::SeqCst);
                    let details = details.clone();
                    async move {
                        axum::Json(serde_json::json!({"models": [
                            {"name": "silero", "kind": "vad", "details": {"threshold": 0.5}},
                            {"name": "ge2e-resemblyzer", "kind": "speaker", "details": details},
                        ]}))
                    }
                }),
            )
            .route(
                "/v1/speakers",
                get(|| async {
                    axum::Json(serde_json::json!([{"name": "rms", "centroid": [1.0, 0.0],
                        "embedding_model_hash": "ge2e-resemblyzer"}]))
                }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        (url, asked)
    }

    fn cfg(url: &str, threshold: Option<f64>) -> SpeakerConfig {
        SpeakerConfig {
            enabled: true,
            inference_url: url.into(),
            memory_url: url.into(),
            threshold,
            ..Default::default()
        }
    }

    /// The case that made the threshold the model's: with GE2E an unenrolled flite voice (awb)
    /// scored 0.717 against rms's centroid. Held to the model's 0.8 it is a guest; the old
    /// fixed 0.6 would have called it rms, and an operator's explicit 0.6 still does.
    #[tokio::test]
    async fn unset_threshold_is_the_models_own_a_set_one_overrides_it() {
        let near_miss = [0.717, (1.0f32 - 0.717 * 0.717).sqrt()];
        let (url, asked) = peers(near_miss, Some(0.8)).await;
        let pcm = vec![0i16; 16_000];
        let mut id = SpeakerId::new(cfg(&url, None));
        let d = id.identify(&pcm).await.unwrap();
        assert_eq!(d.speaker, GUEST, "{d:?}");
        assert!(
            (d.confidence - 0.717).abs() < 1e-3 && d.threshold == 0.8,
            "{d:?}"
        );
        // cached with the profiles: a second request asks inference for the embedding only
        id.identify(&pcm).await.unwrap();
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);

        let mut id = SpeakerId::new(cfg(&url, Some(0.6)));
        let d = id.identify(&pcm).await.unwrap();
        assert_eq!(d.speaker, "rms", "{d:?}");
        assert_eq!(d.threshold, 0.6);
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// A model that reports no threshold (an older barnabee-inference) and no override: the
    /// identification fails with an error saying what to set, rather than guessing a scale.
    #[tokio::test]
    async fn no_reported_threshold_and_none_set_is_an_error_naming_the_setting() {
        let (url, _) = peers([1.0, 0.0], None).await;
        let e = SpeakerId::new(cfg(&url, None))
            .identify(&[0i16; 16_000])
            .await
            .unwrap_err();
        assert!(
            e.contains("/v1/models")
                && e.contains("ge2e-resemblyzer")
                && e.contains("[speaker] threshold"),
            "{e}"
        );
        let models = serde_json::json!({"models": [{"name": "x", "kind": "speaker",
            "details": {"threshold": 0.6}}]});
        assert_eq!(reported_threshold(&models, "x"), Ok(0.6));
        assert!(
            reported_threshold(&models, "y")
                .unwrap_err()
                .contains("`y`")
        );
        assert!(
            reported_threshold(&models, "")
                .unwrap_err()
                .contains("names no model")
        );
    }

    #[test]
    fn cosine_is_scale_free_and_safe_on_zero() {
        assert!((cosine(&[2.0, 0.0], &[5.0, 0.0]) - 1.0).abs() < 1e-9);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[1.0, 0.0], &[-1.0, 0.0]) + 1.0).abs() < 1e-9);
    }
}

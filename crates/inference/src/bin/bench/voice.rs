//! The timing sections: STT (Barnabee's Whisper vs faster-whisper), TTS (Barnabee's Piper vs
//! piper-tts) and the voice pipeline per stage, for each thread count, in alternating rounds
//! (Barnabee, then the peers, `repeat` times); each clip's and sentence's best time is kept,
//! since the machine may be shared and the best run is the least disturbed one.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::clips::Clip;
use crate::peer;
use crate::report::{Table, mean};
use crate::worker::{self, ClipIn, ClipOut, Output, TtsOut};

/// Replies the assistant speaks (one to three sentences). The first is the pipeline's reply.
pub const REPLIES: [&str; 5] = [
    "Okay, turning on the kitchen lights.",
    "The living room is at twenty one degrees.",
    "Timer set for ten minutes. I will tell you when it is done.",
    "Tomorrow will be sunny in the morning, with rain after three in the afternoon.",
    "The front door is locked. The garage door is open. Should I close it?",
];

pub struct Ctx<'a> {
    pub cache: &'a Path,
    pub python: &'a Path,
    pub work: &'a Path,
    pub repeat: usize,
}

/// Run `bench --worker SPEC --threads N` (this executable) and parse its JSON.
pub fn run_worker(
    ctx: &Ctx,
    spec: &worker::Spec,
    threads: usize,
    tag: &str,
) -> anyhow::Result<Output> {
    let spec_path = ctx.work.join(format!("worker-{tag}.json"));
    std::fs::write(&spec_path, serde_json::to_vec(spec)?)?;
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let out = std::process::Command::new(exe)
        .arg("--worker")
        .arg(&spec_path)
        .arg("--threads")
        .arg(threads.to_string())
        .output()
        .context("running the bench worker")?;
    if !out.status.success() {
        bail!(
            "bench worker ({threads} threads) failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("bench worker output is not JSON")
}

/// Best-of figures for one thread count.
struct Best {
    ours: Vec<ClipOut>,
    peer_stt: Vec<f64>,
    peer_text: Vec<String>,
    tts: Vec<TtsOut>,
    tts_rate: u32,
    peer_tts: Vec<peer::TtsResult>,
    peer_rate: u32,
    versions: String,
}

pub fn run(ctx: &Ctx, clips: &[Clip], threads: &[usize]) -> anyhow::Result<()> {
    let cut_dir = ctx.work.join("cut-timing");
    std::fs::create_dir_all(&cut_dir)?;
    let spec = worker::Spec {
        cache: ctx.cache.to_owned(),
        clips: clips.iter().map(ClipIn::from).collect(),
        cut_dir,
        sentences: REPLIES.iter().map(|s| (*s).to_owned()).collect(),
    };
    let wheel = crate::models::ct2_wheel(ctx.cache)?;
    let piper = ctx
        .cache
        .join(crate::models::PIPER_DIR)
        .join(crate::models::PIPER_MODEL);
    let mut best: Vec<Option<Best>> = threads.iter().map(|_| None).collect();
    for round in 0..ctx.repeat.max(1) {
        for (ti, &t) in threads.iter().enumerate() {
            eprintln!(
                "voice timing: round {}/{}, {t} thread(s)",
                round + 1,
                ctx.repeat.max(1)
            );
            let ours = run_worker(ctx, &spec, t, &format!("timing-{t}"))?;
            let heard: Vec<PathBuf> = ours.clips.iter().filter_map(|c| c.cut.clone()).collect();
            if heard.len() != ours.clips.len() {
                bail!("the VAD heard no speech in one of the timing clips");
            }
            let refs: Vec<&Path> = heard.iter().map(PathBuf::as_path).collect();
            let fw = peer::stt(ctx.python, ctx.work, &wheel, &refs, t)?;
            let pt = peer::tts(ctx.python, ctx.work, &piper, &spec.sentences, t)?;
            let versions = format!(
                "libonnxruntime {}; faster-whisper {} (ctranslate2 {}); piper-tts {}",
                ours.onnxruntime, fw.faster_whisper, fw.ctranslate2, pt.piper_tts
            );
            let slot = &mut best[ti];
            match slot {
                None => {
                    *slot = Some(Best {
                        peer_stt: fw.results.iter().map(|r| r.ms).collect(),
                        peer_text: fw.results.iter().map(|r| r.text.clone()).collect(),
                        ours: ours.clips,
                        tts: ours.tts,
                        tts_rate: ours.tts_rate,
                        peer_tts: pt.results,
                        peer_rate: pt.rate,
                        versions,
                    })
                }
                Some(b) => {
                    for (o, n) in b.ours.iter_mut().zip(&ours.clips) {
                        if n.stt_ms < o.stt_ms {
                            // the split of the best run
                            o.stt_ms = n.stt_ms;
                            o.features_ms = n.features_ms;
                            o.encoder_ms = n.encoder_ms;
                            o.decoder_ms = n.decoder_ms;
                        }
                        o.endpoint_ms = o.endpoint_ms.min(n.endpoint_ms);
                    }
                    for (o, n) in b.peer_stt.iter_mut().zip(&fw.results) {
                        *o = o.min(n.ms);
                    }
                    for (o, n) in b.tts.iter_mut().zip(&ours.tts) {
                        o.first_ms = o.first_ms.min(n.first_ms);
                        o.total_ms = o.total_ms.min(n.total_ms);
                    }
                    for (o, n) in b.peer_tts.iter_mut().zip(&pt.results) {
                        o.first_ms = o.first_ms.min(n.first_ms);
                        o.total_ms = o.total_ms.min(n.total_ms);
                    }
                }
            }
        }
    }
    println!("\n(voice timing done at {})", crate::report::load());
    for (b, &t) in best.iter().zip(threads) {
        if let Some(b) = b {
            print_thread_count(clips, b, t, ctx.repeat.max(1));
        }
    }
    Ok(())
}

fn print_thread_count(clips: &[Clip], b: &Best, threads: usize, repeat: usize) {
    let audio_s: f64 = b.ours.iter().map(|c| c.audio_s).sum();
    let ours_ms: Vec<f64> = b.ours.iter().map(|c| c.stt_ms).collect();
    let speech: Vec<f64> = clips.iter().map(|c| c.speech_s).collect();
    println!(
        "\n## STT, {threads} thread(s): Whisper tiny.en, same weights, same VAD-cut clips ({} commands of {:.1}-{:.1} s speech, {:.1} s audio in all; {})",
        clips.len(),
        speech.iter().copied().fold(f64::INFINITY, f64::min),
        speech.iter().copied().fold(0.0, f64::max),
        audio_s,
        b.versions
    );
    let mut t = Table::new("barnabee", "faster-whisper", "peer/barnabee");
    t.time(
        "audio-stop -> transcript, ms (mean)",
        mean(&ours_ms),
        mean(&b.peer_stt),
    );
    let split = |f: fn(&ClipOut) -> f64| mean(&b.ours.iter().map(f).collect::<Vec<_>>());
    t.text(
        "  of which log-mel | encoder | decoder, ms",
        &format!(
            "{:.0} | {:.0} | {:.0} (Barnabee; the decoder has no KV cache)",
            split(|c| c.features_ms),
            split(|c| c.encoder_ms),
            split(|c| c.decoder_ms)
        ),
    );
    t.time(
        "audio-stop -> transcript, ms (worst clip)",
        ours_ms.iter().copied().fold(0.0, f64::max),
        b.peer_stt.iter().copied().fold(0.0, f64::max),
    );
    t.time(
        "real-time factor (STT time / audio)",
        ours_ms.iter().sum::<f64>() / 1e3 / audio_s,
        b.peer_stt.iter().sum::<f64>() / 1e3 / audio_s,
    );
    let same = b
        .ours
        .iter()
        .zip(&b.peer_text)
        .filter(|(o, p)| crate::wer::normalise(&o.text) == crate::wer::normalise(p))
        .count();
    t.text(
        "transcripts equal after normalisation",
        &format!("{same}/{}", b.ours.len()),
    );
    t.print();

    let tts_audio_s: f64 =
        b.tts.iter().map(|x| x.samples as f64).sum::<f64>() / f64::from(b.tts_rate.max(1));
    let peer_audio_s: f64 =
        b.peer_tts.iter().map(|x| x.samples as f64).sum::<f64>() / f64::from(b.peer_rate.max(1));
    println!(
        "\n## TTS, {threads} thread(s): Piper en_US-joe-medium, same voice file, {} replies of 1-3 sentences",
        b.tts.len()
    );
    let mut t = Table::new("barnabee", "piper-tts", "peer/barnabee");
    let first: Vec<f64> = b.tts.iter().map(|x| x.first_ms).collect();
    let pfirst: Vec<f64> = b.peer_tts.iter().map(|x| x.first_ms).collect();
    t.time(
        "text -> first audio, ms (mean)",
        mean(&first),
        mean(&pfirst),
    );
    t.time(
        "real-time factor (synthesis time / audio)",
        b.tts.iter().map(|x| x.total_ms).sum::<f64>() / 1e3 / tts_audio_s,
        b.peer_tts.iter().map(|x| x.total_ms).sum::<f64>() / 1e3 / peer_audio_s,
    );
    t.text(
        "audio produced, s",
        &format!("{tts_audio_s:.2} vs {peer_audio_s:.2}"),
    );
    t.print();

    // The pipeline: the voice daemon's latency::Breakdown stages, end of speech -> first audio.
    let endpoint: Vec<f64> = b.ours.iter().map(|c| c.endpoint_ms).collect();
    let (ep, stt, pstt) = (mean(&endpoint), mean(&ours_ms), mean(&b.peer_stt));
    let (tts, ptts) = (
        b.tts.first().map_or(f64::NAN, |x| x.first_ms),
        b.peer_tts.first().map_or(f64::NAN, |x| x.first_ms),
    );
    println!(
        "\n## Voice pipeline, {threads} thread(s), CPU: end of speech -> first audio by latency::Breakdown stage (means over the STT clips; reply {:?}; in process, no daemons)",
        REPLIES[0]
    );
    let mut t = Table::new("barnabee", "peer stack", "peer/barnabee");
    t.time("endpoint_ms (Silero VAD, same for both)", ep, ep);
    t.time("stt_ms (Whisper | faster-whisper)", stt, pstt);
    t.text("agents_ms", "not measured: needs agents + Home Assistant");
    t.time("tts_first_audio_ms (Piper | piper-tts)", tts, ptts);
    t.time(
        "total_ms without agents_ms",
        ep + stt + tts,
        ep + pstt + ptts,
    );
    t.print();
    println!(
        "(best of {repeat} alternating rounds per clip and sentence; peer/barnabee > 1: Barnabee is faster)"
    );
}

//! `barnabee say REQUEST.wav`: a WAV file as the microphone and a WAV file as the speaker,
//! for a machine with no sound card (a laptop running `barnabee up`, a CI runner). The file
//! is read here and posted to the voice daemon's `POST /v1/say`, which runs it through the
//! live pipeline's path (wake word, VAD, STT, agents, TTS); what was heard, the reply, its
//! route and the stage timings are printed and the spoken reply is written as a WAV file.
//! This crate never links the voice library (ort, cpal, ALSA).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use serde_json::Value;

use crate::daemons::DAEMONS;

#[derive(clap::Args)]
pub struct SayArgs {
    /// The request, spoken with the wake word first as in the kitchen ("hey jarvis, what time
    /// is it"): a PCM WAV at 16 kHz or more, any channel count, 0.5 to 30 s. Made with
    /// espeak-ng, slow it to `-s 150`: at its default speed openWakeWord misses "hey jarvis".
    #[arg(value_name = "REQUEST.wav")]
    request: PathBuf,
    /// Where to write the spoken reply (default: beside the request, REQUEST.reply.wav).
    #[arg(short, long, value_name = "REPLY.wav")]
    output: Option<PathBuf>,
    /// The voice daemon's base URL (default: the one a running `barnabee up` recorded, else
    /// `[service] listen` of /etc/barnabee/voice.toml, else http://127.0.0.1:7703).
    #[arg(long)]
    url: Option<String>,
    /// The data dir of a `barnabee up` (default: $XDG_DATA_HOME/barnabee).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// The daemon refuses bodies over 16 MiB (30 s of 48 kHz stereo float is 11.5 MB).
const MAX_WAV_BYTES: u64 = 16 << 20;
/// The daemon gives up after 300 s; wait a little longer so its own message arrives.
const TIMEOUT: Duration = Duration::from_secs(310);

/// Exit 0: answered (the reply is written). 1: the daemon refused or could not answer (no
/// wake word heard, bad WAV, busy, inference failed; its message is printed), or the agents
/// failed and the apology was spoken (written too). 2: the file could not be read or written,
/// or the daemon not reached.
pub fn run(args: SayArgs) -> anyhow::Result<ExitCode> {
    let meta = std::fs::metadata(&args.request)
        .with_context(|| format!("cannot read {}", args.request.display()))?;
    if meta.len() > MAX_WAV_BYTES {
        anyhow::bail!(
            "{} holds {} bytes; the voice daemon takes at most {MAX_WAV_BYTES} (a request is at most 30 s)",
            args.request.display(),
            meta.len()
        );
    }
    let wav = std::fs::read(&args.request)
        .with_context(|| format!("cannot read {}", args.request.display()))?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| reply_path(&args.request));
    let base = match args.url.clone() {
        Some(u) => u,
        None => voice_url(args.data_dir.as_deref())?,
    };
    let url = format!("{}/v1/say", base.trim_end_matches('/'));
    let (status, body, parsed) = crate::voice::post(&base, &url, TIMEOUT, |r| {
        r.header("content-type", "audio/wav").body(wav)
    })?;
    if !status.is_success() {
        let message = parsed["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| body.trim().to_owned());
        if let Some(t) = parsed["transcript"].as_str() {
            println!("heard: {t}");
        }
        eprintln!(
            "barnabee: {} not answered: HTTP {status}: {message}",
            args.request.display()
        );
        return Ok(ExitCode::from(1));
    }
    println!("heard: {}", parsed["transcript"].as_str().unwrap_or(""));
    println!("reply: {}", parsed["reply"].as_str().unwrap_or(""));
    println!("route: {}", parsed["route"].as_str().unwrap_or("-"));
    if let Some(s) = parsed["speaker"].as_str() {
        println!("speaker: {s}");
    }
    if let Some(c) = parsed["converted"].as_str() {
        println!("converted: {c}");
    }
    println!("timings:");
    print!("{}", timings(&parsed["timings"]));
    let reply = base64::engine::general_purpose::STANDARD
        .decode(parsed["reply_wav_base64"].as_str().unwrap_or(""))
        .context("the voice daemon's reply_wav_base64 is not base64")?;
    std::fs::write(&output, &reply)
        .with_context(|| format!("cannot write the reply to {}", output.display()))?;
    println!(
        "wrote {} ({:.2} s at {} Hz)",
        output.display(),
        parsed["reply_seconds"].as_f64().unwrap_or(0.0),
        parsed["reply_rate"]
    );
    if let Some(e) = parsed["error"].as_str() {
        eprintln!("barnabee: the apology was spoken: {e}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `dir/request.wav` → `dir/request.reply.wav`: beside the request, never over it.
fn reply_path(request: &Path) -> PathBuf {
    let stem = request
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "request".into());
    request.with_file_name(format!("{stem}.reply.wav"))
}

/// The voice daemon: the one a running `barnabee up` recorded, else the appliance's config,
/// else the default port.
fn voice_url(data_dir: Option<&Path>) -> anyhow::Result<String> {
    daemon_url("voice", data_dir)
}

/// A daemon's base URL: the one a running `barnabee up` recorded, else `[service] listen` of
/// /etc/barnabee/<role>.toml, else its default address.
pub(crate) fn daemon_url(role: &str, data_dir: Option<&Path>) -> anyhow::Result<String> {
    let found = crate::status::discover(&[], data_dir, Path::new("/etc/barnabee"))?;
    if let Some((_, url)) = found.into_iter().find(|(r, _)| r == role) {
        return Ok(url);
    }
    let daemon = DAEMONS.iter().find(|d| d.role == role);
    Ok(format!(
        "http://{}",
        daemon.map_or_else(
            || "127.0.0.1:7702".to_owned(),
            |d| d.default_addr().to_string()
        )
    ))
}

/// One line per stage, in the order the request went through them.
fn timings(t: &Value) -> String {
    [
        ("wake → end of speech", "wake_to_speech_end_ms"),
        ("endpoint", "endpoint_ms"),
        ("STT", "stt_ms"),
        ("agents", "agents_ms"),
        ("TTS first audio", "tts_first_audio_ms"),
        ("end of speech → audio", "total_ms"),
        ("wake → first audio", "wake_to_first_audio_ms"),
    ]
    .iter()
    .map(|(name, key)| match t[key].as_f64() {
        Some(v) => format!("  {name:<22} {v:>7.0} ms\n"),
        None => format!("  {name:<22}       - (not reached)\n"),
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_goes_beside_the_request() {
        assert_eq!(
            reply_path(Path::new("/tmp/x/ask.wav")),
            PathBuf::from("/tmp/x/ask.reply.wav")
        );
        assert_eq!(
            reply_path(Path::new("ask.wav")),
            PathBuf::from("ask.reply.wav")
        );
    }

    #[test]
    fn timings_name_every_stage() {
        let t = timings(&serde_json::json!({"stt_ms": 812.4, "agents_ms": 3.0}));
        assert!(t.contains("STT                        812 ms"), "{t}");
        assert!(
            t.contains("endpoint                     - (not reached)"),
            "{t}"
        );
        assert_eq!(t.lines().count(), 7);
    }
}

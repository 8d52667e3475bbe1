//! `barnabee voice enroll NAME WAV...`: store a family member's voice profile. The files are
//! read here (a missing or unreadable one is named before anything is sent) and posted to the
//! voice daemon's `POST /v1/speakers/{name}/enroll` as JSON with base64 WAVs; the daemon
//! checks the format, has each utterance embedded by barnabee-inference and stores the
//! centroid in barnabee-memory. This crate never links the voice library (ort, cpal, ALSA).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::daemons::DAEMONS;

#[derive(clap::Args)]
pub struct VoiceArgs {
    #[command(subcommand)]
    command: VoiceCommand,
}

#[derive(clap::Subcommand)]
enum VoiceCommand {
    /// Enrol NAME from WAV files (PCM at 16 kHz or more, converted to 16 kHz mono by the
    /// daemon; 0.5 to 30 s each; 3 to 5 short phrases in the person's normal voice work best).
    /// Enrolling again replaces the profile. Exit 1: the daemon refused (its message is
    /// printed); 2: a file could not be read or the daemon not reached.
    Enroll(EnrollArgs),
}

#[derive(clap::Args)]
pub struct EnrollArgs {
    /// The member's name (letters, digits, '-', '_', '.'; not "guest").
    name: String,
    /// The WAV files.
    #[arg(required = true, value_name = "WAV")]
    wavs: Vec<PathBuf>,
    /// The voice daemon's base URL (default: http://127.0.0.1:7703).
    #[arg(long)]
    url: Option<String>,
}

/// The daemon accepts request bodies up to 32 MiB; base64 makes 3 bytes 4.
const MAX_WAV_BYTES: u64 = 24 << 20;

pub fn run(args: VoiceArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        VoiceCommand::Enroll(a) => enroll(a),
    }
}

fn enroll(args: EnrollArgs) -> anyhow::Result<ExitCode> {
    let count = args.wavs.len();
    let mut utterances = Vec::with_capacity(count);
    let mut total = 0u64;
    for (i, path) in args.wavs.iter().enumerate() {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "cannot read WAV file {} of {count}: {}",
                i + 1,
                path.display()
            )
        })?;
        total += bytes.len() as u64;
        utterances.push(json!({
            "file": path.display().to_string(),
            "wav_base64": base64::engine::general_purpose::STANDARD.encode(&bytes),
        }));
    }
    if total > MAX_WAV_BYTES {
        anyhow::bail!(
            "the {count} files hold {total} bytes; one enrolment takes at most {MAX_WAV_BYTES} (short phrases are enough)"
        );
    }
    let base = args.url.unwrap_or_else(|| {
        let voice = DAEMONS.iter().find(|d| d.role == "voice");
        format!(
            "http://{}",
            voice.map_or_else(
                || "127.0.0.1:7703".to_owned(),
                |d| d.default_addr().to_string()
            )
        )
    });
    let url = format!(
        "{}/v1/speakers/{}/enroll",
        base.trim_end_matches('/'),
        // the daemon checks the name; percent-encode so any name reaches it as typed
        encode_segment(&args.name)
    );
    // Each utterance is embedded by the inference daemon: allow for a slow one.
    let (status, body, parsed) = post(&base, &url, Duration::from_secs(120), |r| {
        r.json(&json!({ "utterances": utterances }))
    })?;
    if !status.is_success() {
        let message = parsed["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| body.trim().to_owned());
        eprintln!(
            "barnabee: enrolment of {:?} refused: HTTP {status}: {message}",
            args.name
        );
        return Ok(ExitCode::from(1));
    }
    println!(
        "enrolled {} from {} utterance{}: {}-dimensional voice profile (model {}), stored in barnabee-memory",
        parsed["name"].as_str().unwrap_or(&args.name),
        parsed["utterances"],
        if parsed["utterances"] == 1 { "" } else { "s" },
        parsed["embedding_dim"],
        parsed["embedding_model"].as_str().unwrap_or("?"),
    );
    for c in parsed["converted"].as_array().into_iter().flatten() {
        println!("  converted {}", c.as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encode everything but unreserved characters (RFC 3986) for one path segment.
fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// POST to the voice daemon at `base` (`url` under it), built by `request`: (status, body, the
/// body as JSON or Null). An unreachable daemon is an error naming its address and `--url`.
pub(crate) fn post(
    base: &str,
    url: &str,
    timeout: Duration,
    request: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> anyhow::Result<(reqwest::StatusCode, String, Value)> {
    post_to("voice", base, url, timeout, request)
}

/// [`post`] to any daemon (`role` names it in the error).
pub(crate) fn post_to(
    role: &str,
    base: &str,
    url: &str,
    timeout: Duration,
    request: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> anyhow::Result<(reqwest::StatusCode, String, Value)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = barnabee_service::http_client::loopback(timeout)?;
    let (status, body) = runtime.block_on(async {
        let response = request(client.post(url)).send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the {role} daemon at {base}: {} (is barnabee-{role} running? --url sets its address)",
                crate::health::brief(e)
            )
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        anyhow::Ok((status, text))
    })?;
    let parsed = serde_json::from_str(&body).unwrap_or(Value::Null);
    Ok((status, body, parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_path_segment() {
        assert_eq!(encode_segment("alice"), "alice");
        assert_eq!(encode_segment("Zoë"), "Zo%C3%AB");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
    }
}

//! The accuracy section: every corpus command spoken by every voice of [`clips::VOICES`], each
//! clip through Barnabee's real path (Silero VAD end-point, then Whisper, in a worker process
//! as in the timing sections), and the same VAD-cut audio through faster-whisper. Word error
//! rate (`wer.rs`) overall and per voice, for both.

use std::path::{Path, PathBuf};

use crate::clips::{self, Clip};
use crate::peer;
use crate::report::Table;
use crate::voice::{Ctx, run_worker};
use crate::wer;
use crate::worker::{ClipIn, Spec};

/// One clip's outcome, for `--wer-log`.
struct Heard<'a> {
    clip: &'a Clip,
    ours: String,
    peer: String,
}

impl Heard<'_> {
    /// Barnabee's transcript (`ours`) or the peer's.
    fn text(&self, ours: bool) -> &str {
        if ours { &self.ours } else { &self.peer }
    }
}

pub fn run(ctx: &Ctx, clips: &[Clip], threads: usize, log: Option<&Path>) -> anyhow::Result<()> {
    let cut_dir = ctx.work.join("cut-wer");
    std::fs::create_dir_all(&cut_dir)?;
    let spec = Spec {
        cache: ctx.cache.to_owned(),
        clips: clips.iter().map(ClipIn::from).collect(),
        cut_dir,
        sentences: Vec::new(),
    };
    eprintln!("accuracy: {} clips through VAD + Whisper", clips.len());
    let ours = run_worker(ctx, &spec, threads, "wer")?;
    let heard: Vec<PathBuf> = ours.clips.iter().filter_map(|c| c.cut.clone()).collect();
    let refs: Vec<&Path> = heard.iter().map(PathBuf::as_path).collect();
    eprintln!("accuracy: {} clips through faster-whisper", refs.len());
    let wheel = crate::models::ct2_wheel(ctx.cache)?;
    let fw = peer::stt(ctx.python, ctx.work, &wheel, &refs, threads)?;
    let mut peer_texts = fw.results.into_iter().map(|r| r.text);
    let rows: Vec<Heard> = clips
        .iter()
        .zip(&ours.clips)
        .map(|(clip, o)| Heard {
            clip,
            ours: o.text.clone(),
            // a clip the VAD heard nothing in was not transcribed by either
            peer: if o.cut.is_some() {
                peer_texts.next().unwrap_or_default()
            } else {
                String::new()
            },
        })
        .collect();
    let missed = ours.clips.iter().filter(|c| c.cut.is_none()).count();

    println!(
        "\n## Accuracy: word error rate, Silero VAD + Whisper tiny.en, {} commands x {} voices = {} clips (corpus crates/inference/benches/corpus/commands.txt; normalisation in bench/wer.rs)",
        clips.len() / clips::VOICES.len().max(1),
        clips::VOICES.len(),
        clips.len()
    );
    let mut t = Table::new("barnabee WER", "faster-whisper", "");
    for v in clips::VOICES {
        let of: Vec<&Heard> = rows.iter().filter(|h| h.clip.voice == v).collect();
        let (a, b) = rates(&of);
        t.pair(&v.label(), &a, &b);
    }
    let all: Vec<&Heard> = rows.iter().collect();
    let (a, b) = rates(&all);
    t.pair("all voices", &a, &b);
    let exact = |ours: bool| {
        rows.iter()
            .filter(|h| wer::score(&h.clip.text, h.text(ours)).0 == 0)
            .count()
    };
    t.pair(
        "clips heard exactly",
        &format!("{}/{}", exact(true), rows.len()),
        &format!("{}/{}", exact(false), rows.len()),
    );
    let differ = rows
        .iter()
        .filter(|h| wer::normalise(&h.ours) != wer::normalise(&h.peer))
        .count();
    t.text(
        "clips the two transcribe differently",
        &format!("{differ}/{}", rows.len()),
    );
    t.print();
    println!(
        "(same VAD-cut audio for both; {missed} clip(s) where the VAD heard no speech count as empty transcripts for both)"
    );
    if let Some(p) = log {
        let mut s = String::from("voice\treference\tbarnabee\tfaster-whisper\n");
        for h in &rows {
            s.push_str(&format!(
                "{}\t{}\t{}\t{}\n",
                h.clip.voice.label(),
                h.clip.text,
                h.ours,
                h.peer
            ));
        }
        std::fs::write(p, s)?;
        println!("(every transcript: {})", p.display());
    }
    Ok(())
}

/// "WER % (errors/words)" for Barnabee and the peer.
fn rates(rows: &[&Heard]) -> (String, String) {
    let f = |ours: bool| {
        let (e, n) = rows.iter().fold((0, 0), |(e, n), h| {
            let (de, dn) = wer::score(&h.clip.text, h.text(ours));
            (e + de, n + dn)
        });
        format!("{:.1}% ({e}/{n})", 100.0 * e as f64 / n.max(1) as f64)
    };
    (f(true), f(false))
}

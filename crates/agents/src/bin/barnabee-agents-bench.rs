//! Router benchmark: decisions per second and latency percentiles over the corpus.
//!
//!     cargo run --release -p barnabee-agents --bin barnabee-agents-bench -- [--rounds N] [CORPUS.tsv]
//!
//! Default corpus: crates/agents/testdata/router/corpus.tsv (route TAB utterance).

use std::time::Instant;

use barnabee_agents::route::{Route, Router};

fn main() -> anyhow::Result<()> {
    let mut rounds = 20usize;
    let mut path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/router/corpus.tsv").to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--rounds needs a number"))?
                    .parse()?
            }
            other => path = other.to_owned(),
        }
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read corpus {path}: {e}"))?;
    let corpus: Vec<(Route, &str)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (r, u) = l.split_once('\t')?;
            Some((Route::parse(r)?, u))
        })
        .collect();
    let build = Instant::now();
    let router = Router::with_defaults()?;
    let build_ms = build.elapsed().as_secs_f64() * 1e3;

    // Warm up (lazy DFA caches), then time every decision.
    let mut correct = 0usize;
    for (want, u) in &corpus {
        correct += usize::from(router.decide(u).route == *want);
    }
    let mut lat = Vec::with_capacity(corpus.len() * rounds);
    let all = Instant::now();
    for _ in 0..rounds {
        for (_, u) in &corpus {
            let t = Instant::now();
            let d = router.decide(u);
            lat.push(t.elapsed().as_nanos() as u64);
            std::hint::black_box(d);
        }
    }
    let total = all.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1e3;
    println!(
        "corpus {} utterances x {rounds} rounds, {} rules; router built in {build_ms:.1} ms",
        corpus.len(),
        router.rules().len()
    );
    println!("accuracy {correct}/{} labelled routes", corpus.len());
    println!(
        "decisions/s {:.0}  p50 {:.1} us  p99 {:.1} us  p99.9 {:.1} us  max {:.1} us",
        lat.len() as f64 / total,
        pct(0.50),
        pct(0.99),
        pct(0.999),
        *lat.last().unwrap_or(&0) as f64 / 1e3
    );
    Ok(())
}

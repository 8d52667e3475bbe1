//! `barnabee metrics`: the metric contract (`barnabee_service::catalog`), for operators writing
//! their own rules and for `checks/monitoring`, which compares it with what the daemons export.

use std::process::ExitCode;

use barnabee_service::catalog;

#[derive(clap::Args)]
pub struct MetricsArgs {
    /// Print JSON (one object per metric: name, kind, unit, labels, help, exporter, samples).
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print docs/metrics.md.
    #[arg(long)]
    markdown: bool,
}

pub fn run(args: MetricsArgs) -> anyhow::Result<ExitCode> {
    if args.markdown {
        print!("{}", catalog::markdown());
    } else if args.json {
        let rows: Vec<serde_json::Value> = catalog::ALL
            .iter()
            .map(|d| {
                let mut v = serde_json::to_value(d).unwrap_or_default();
                v["samples"] = serde_json::json!(d.sample_names());
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for d in catalog::ALL {
            let exporter = serde_json::to_value(d.exporter)?;
            println!(
                "{:<50} {:<9} {:<10} {}",
                d.sample_names()[0].trim_end_matches("_bucket"),
                d.kind.as_str(),
                exporter.as_str().unwrap_or(""),
                d.help
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! The overview's host figures: free disk, available memory and load from each watchdog's
//! `/metrics`, the GPU (temperature, memory, utilisation) from each inference daemon's. The
//! metric names come from barnabee-service's catalog, where the exporters declare them.

use barnabee_service::catalog::{self, MetricDef};

use super::layout::{esc, message};
use crate::config::Role;
use crate::web::AppState;

/// Every sample of `def` in Prometheus text: (the label set as written, value).
pub fn samples(text: &str, def: &MetricDef) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(def.name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => {
                    let (labels, v) = r.split_once('}')?;
                    (labels.to_owned(), v)
                }
                None if rest.starts_with(' ') => (String::new(), rest),
                None => return None, // another metric whose name starts with this one
            };
            let v: f64 = value.split_whitespace().next()?.parse().ok()?;
            Some((labels, v))
        })
        .collect()
}

fn one(text: &str, def: &MetricDef) -> Option<f64> {
    samples(text, def).first().map(|s| s.1)
}

fn label<'a>(labels: &'a str, key: &str) -> &'a str {
    labels
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches('"'))
        .unwrap_or("")
}

fn gib(bytes: f64) -> String {
    format!("{:.1} GiB", bytes / 1_073_741_824.0)
}

pub async fn section(s: &AppState) -> String {
    let mut rows = String::new();
    let mut errors = String::new();
    for d in &s.cfg.daemons {
        match d.role {
            Role::Watchdog => {
                match s.peers.metrics(&d.url).await {
                    Err(e) => errors.push_str(&message(&e, true)),
                    Ok(t) => {
                        let disks: Vec<String> = samples(&t, &catalog::WATCHDOG_DISK_FREE)
                            .iter()
                            .map(|(l, v)| format!("{} {v:.0} % free", esc(label(l, "path"))))
                            .collect();
                        rows.push_str(&format!(
                        "<tr data-host=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(&d.host),
                        esc(&d.host),
                        if disks.is_empty() { "—".into() } else { disks.join(", ") },
                        one(&t, &catalog::WATCHDOG_MEMORY_AVAILABLE)
                            .map(|b| format!("{} available", gib(b)))
                            .unwrap_or_else(|| "—".into()),
                        one(&t, &catalog::WATCHDOG_LOAD1)
                            .map(|l| format!("load {l:.2}"))
                            .unwrap_or_else(|| "—".into()),
                    ));
                    }
                }
            }
            Role::Inference => match s.peers.metrics(&d.url).await {
                Err(e) => errors.push_str(&message(&e, true)),
                Ok(t) => {
                    let temps = samples(&t, &catalog::GPU_TEMPERATURE);
                    let gpu = if temps.is_empty() {
                        "no GPU figures (NVML not available on this host)".to_owned()
                    } else {
                        temps
                            .iter()
                            .map(|(l, temp)| {
                                let g = label(l, "gpu");
                                let of = |def: &MetricDef| {
                                    samples(&t, def)
                                        .into_iter()
                                        .find(|(l2, _)| label(l2, "gpu") == g)
                                        .map(|x| x.1)
                                };
                                format!(
                                    "GPU {g}: {temp:.0} °C, memory {} of {}, {:.0} % busy",
                                    of(&catalog::GPU_MEMORY_USED)
                                        .map(gib)
                                        .unwrap_or_else(|| "?".into()),
                                    of(&catalog::GPU_MEMORY_TOTAL)
                                        .map(gib)
                                        .unwrap_or_else(|| "?".into()),
                                    of(&catalog::GPU_UTILIZATION).unwrap_or(0.0)
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("; ")
                    };
                    rows.push_str(&format!(
                        "<tr data-host=\"{}\" data-gpu=\"1\"><td>{}</td><td colspan=\"3\">{}</td></tr>",
                        esc(&d.host),
                        esc(&d.host),
                        esc(&gpu)
                    ));
                }
            },
            _ => {}
        }
    }
    if rows.is_empty() && errors.is_empty() {
        return "<h2>Hosts</h2><p class=\"small\">No watchdog or inference daemon configured: no host figures.</p>".into();
    }
    format!(
        "<h2>Hosts</h2>{errors}<table id=\"hosts\"><tr><th>Host</th><th>Disk</th><th>Memory</th><th>Load / GPU</th></tr>{rows}</table>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_by_catalog_name() {
        let text = "# HELP x\nbarnabee_watchdog_disk_free_percent{path=\"/\"} 41.5\nbarnabee_watchdog_disk_free_percent{path=\"/var/lib\"} 12\nbarnabee_watchdog_load1 0.25\nbarnabee_watchdog_load15 9\n";
        let d = samples(text, &catalog::WATCHDOG_DISK_FREE);
        assert_eq!(d.len(), 2);
        assert_eq!(label(&d[1].0, "path"), "/var/lib");
        assert_eq!(d[0].1, 41.5);
        assert_eq!(one(text, &catalog::WATCHDOG_LOAD1), Some(0.25));
        assert_eq!(one(text, &catalog::WATCHDOG_MEMORY_AVAILABLE), None);
    }
}

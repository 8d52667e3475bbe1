//! The printed tables: a measure, Barnabee's figure, the peer's, and their ratio.

pub struct Table {
    head: [String; 3],
    rows: Vec<[String; 4]>,
}

impl Table {
    pub fn new(ours: &str, peer: &str, ratio: &str) -> Table {
        Table {
            head: [ours.into(), peer.into(), ratio.into()],
            rows: Vec::new(),
        }
    }

    /// A time or cost (lower is better): the ratio is peer / ours, > 1 when Barnabee is faster.
    pub fn time(&mut self, measure: &str, ours: f64, peer: f64) {
        self.rows.push([
            measure.into(),
            fmt(ours),
            fmt(peer),
            if ours > 0.0 && ours.is_finite() && peer.is_finite() {
                format!("{:.2}", peer / ours)
            } else {
                "-".into()
            },
        ]);
    }

    /// A figure that is not a ratio (a count, an error rate): ours and the peer's.
    pub fn pair(&mut self, measure: &str, ours: &str, peer: &str) {
        self.rows
            .push([measure.into(), ours.into(), peer.into(), String::new()]);
    }

    /// A row with one note across the figures.
    pub fn text(&mut self, measure: &str, note: &str) {
        self.rows
            .push([measure.into(), note.into(), String::new(), String::new()]);
    }

    pub fn print(&self) {
        let w = self
            .rows
            .iter()
            .map(|r| r[0].chars().count())
            .max()
            .unwrap_or(0)
            .max(7);
        println!(
            "{:<w$}  {:>16}  {:>16}  {:>14}",
            "measure", self.head[0], self.head[1], self.head[2]
        );
        for r in &self.rows {
            if r[2].is_empty() && r[3].is_empty() {
                println!("{:<w$}  {}", r[0], r[1]);
            } else {
                println!("{:<w$}  {:>16}  {:>16}  {:>14}", r[0], r[1], r[2], r[3]);
            }
        }
    }
}

fn fmt(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// Mean of the finite values (NaN when there are none).
pub fn mean(xs: &[f64]) -> f64 {
    let v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// "load average 1.23 (1 min)" from /proc/loadavg: how busy the shared machine was.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .map_or_else(
            || "load average unknown".into(),
            |l| format!("load average {l} (1 min)"),
        )
}

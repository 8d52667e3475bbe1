//! The monthly cost report (`GET /v1/cost/report?month=YYYY-MM`), from the ledger: requests,
//! tokens and cost in total, per provider and model with its tier (local or cloud), per route
//! and agent, per family member, and the top cost drivers (route, agent, speaker and model
//! together). Calls recorded before the ledger knew why (no route) count as `unknown`.

use serde::Serialize;

use crate::governor::{Ledger, LedgerError};

#[derive(Debug, Serialize, PartialEq)]
pub struct Line {
    /// What the line is about: {provider, model, tier}, {route, agent}, {speaker} or all four.
    #[serde(flatten)]
    pub key: serde_json::Map<String, serde_json::Value>,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Report {
    pub month: String,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    pub by_provider: Vec<Line>,
    pub by_route: Vec<Line>,
    pub by_speaker: Vec<Line>,
    /// The five most expensive (route, agent, speaker, model) combinations.
    pub top_drivers: Vec<Line>,
}

/// `YYYY-MM` with a month from 01 to 12, or what is wrong with it.
pub fn parse_month(s: &str) -> Result<String, String> {
    let ok = s.len() == 7
        && s.as_bytes()[4] == b'-'
        && s[..4].bytes().all(|b| b.is_ascii_digit())
        && s[5..].parse::<u32>().is_ok_and(|m| (1..=12).contains(&m));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?} is not a month like 2026-12"))
    }
}

impl Ledger {
    /// The report for `month`; `local(provider)` says which providers run on our hardware.
    pub fn report(&self, month: &str, local: &dyn Fn(&str) -> bool) -> Result<Report, LedgerError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let group = |cols: &[&str], limit: Option<usize>| -> Result<Vec<Line>, rusqlite::Error> {
            let select: Vec<String> = cols
                .iter()
                .map(|c| format!("COALESCE({c}, 'unknown')"))
                .collect();
            let sql = format!(
                "SELECT {sel}, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd)
                 FROM llm_spend WHERE month = ?1 GROUP BY {sel} ORDER BY SUM(cost_usd) DESC, COUNT(*) DESC{lim}",
                sel = select.join(", "),
                lim = limit.map_or(String::new(), |n| format!(" LIMIT {n}")),
            );
            let mut st = conn.prepare(&sql)?;
            let n = cols.len();
            let rows = st.query_map([month], |r| {
                let mut key = serde_json::Map::new();
                for (i, c) in cols.iter().enumerate() {
                    key.insert((*c).to_owned(), serde_json::Value::String(r.get(i)?));
                }
                Ok(Line {
                    key,
                    requests: r.get::<_, i64>(n)? as u64,
                    prompt_tokens: r.get::<_, i64>(n + 1)? as u64,
                    completion_tokens: r.get::<_, i64>(n + 2)? as u64,
                    cost_usd: r.get(n + 3)?,
                })
            })?;
            rows.collect()
        };
        let err = |e| self.err(e);
        let mut by_provider = group(&["provider", "model"], None).map_err(err)?;
        for l in &mut by_provider {
            let p = l.key["provider"].as_str().unwrap_or_default().to_owned();
            let tier = if local(&p) { "local" } else { "cloud" };
            l.key.insert("tier".into(), tier.into());
        }
        let by_route = group(&["route", "agent"], None).map_err(err)?;
        let by_speaker = group(&["speaker"], None).map_err(err)?;
        let top_drivers = group(&["route", "agent", "speaker", "model"], Some(5)).map_err(err)?;
        let sum = |f: fn(&Line) -> u64| by_provider.iter().map(f).sum::<u64>();
        Ok(Report {
            month: month.to_owned(),
            requests: sum(|l| l.requests),
            prompt_tokens: sum(|l| l.prompt_tokens),
            completion_tokens: sum(|l| l.completion_tokens),
            cost_usd: by_provider.iter().map(|l| l.cost_usd).sum(),
            by_provider,
            by_route,
            by_speaker,
            top_drivers,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::clock::ManualClock;
    use crate::governor::Why;
    use chrono::{FixedOffset, TimeZone};

    #[test]
    fn months_are_checked() {
        assert_eq!(parse_month("2026-12"), Ok("2026-12".into()));
        for bad in ["2026-13", "2026-00", "26-12", "2026/12", "2026-1", ""] {
            assert!(parse_month(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn groups_by_provider_route_speaker_and_driver() {
        let clock = ManualClock::new(
            FixedOffset::east_opt(0)
                .unwrap()
                .with_ymd_and_hms(2026, 12, 3, 10, 0, 0)
                .unwrap(),
        );
        let l = Ledger::open(None).unwrap();
        let why = |route, agent, speaker| Why {
            route,
            agent,
            speaker,
        };
        l.record(
            &clock,
            "cloud",
            "big",
            100,
            50,
            0.30,
            why("interaction", "interaction", Some("anna")),
        )
        .unwrap();
        l.record(
            &clock,
            "cloud",
            "big",
            100,
            50,
            0.30,
            why("interaction", "interaction", Some("anna")),
        )
        .unwrap();
        l.record(
            &clock,
            "beast",
            "small",
            10,
            5,
            0.0,
            why("router", "classifier", None),
        )
        .unwrap();
        l.record(
            &clock,
            "cloud",
            "big",
            10,
            5,
            0.05,
            why("memory", "memory", Some("ben")),
        )
        .unwrap();
        let r = l.report("2026-12", &|p| p == "beast").unwrap();
        assert_eq!(r.requests, 4);
        assert!((r.cost_usd - 0.65).abs() < 1e-9);
        assert_eq!(r.by_provider[0].key["tier"], "cloud");
        assert_eq!(r.by_provider[1].key["tier"], "local");
        assert_eq!(r.by_route[0].key["route"], "interaction");
        assert_eq!(r.by_speaker[0].key["speaker"], "anna");
        assert!(r.by_speaker.iter().any(|s| s.key["speaker"] == "unknown"));
        assert_eq!(r.top_drivers[0].requests, 2);
        assert_eq!(l.report("2026-11", &|_| false).unwrap().requests, 0);
    }
}

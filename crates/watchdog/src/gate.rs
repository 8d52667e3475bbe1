//! The health gate: after a boot or a switch, wait until every configured unit is active and
//! healthy; if that does not happen in time, record a P1 incident and run the rollback command
//! through the runner (`systemd-run ...`: a transient unit, so the switch it triggers does not
//! kill it).

use std::time::{Duration, Instant};

use crate::config::Config;
use crate::incident::{Incident, Incidents, Severity};
use crate::policy::Observation;
use crate::supervisor::observe;
use crate::systemd::SystemdApi;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateOutcome {
    /// Every unit was active and healthy after `elapsed`.
    Healthy { elapsed: Duration },
    /// Timed out; the rollback was started (or, with `--dry-run`, printed).
    RolledBack { failing: Vec<String>, dry_run: bool },
    /// Timed out, and the rollback command itself failed.
    RollbackFailed { failing: Vec<String>, error: String },
    /// The gate could not probe at all (no HTTP client); nothing was rolled back.
    CannotProbe { error: String },
}

impl GateOutcome {
    /// 0 healthy, 1 rolled back (or would have), 2 rollback failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            GateOutcome::Healthy { .. } => 0,
            GateOutcome::RolledBack { .. } => 1,
            GateOutcome::RollbackFailed { .. } | GateOutcome::CannotProbe { .. } => 2,
        }
    }
}

/// Why each unit is not (yet) good; empty when all are.
pub async fn failing_units<S: SystemdApi>(
    systemd: &S,
    cfg: &Config,
    http: &reqwest::Client,
) -> Vec<String> {
    let mut failing = Vec::new();
    for unit in &cfg.units {
        match systemd.unit_status(&unit.name).await {
            Err(err) => failing.push(format!("{}: {err}", unit.name)),
            Ok(status) => match observe(&status, unit, http, cfg.supervision.probe_timeout).await {
                Observation::Healthy => {}
                Observation::Transitioning => {
                    failing.push(format!("{}: still {}", unit.name, status.active_state))
                }
                Observation::Unhealthy(reason) => failing.push(format!("{}: {reason}", unit.name)),
            },
        }
    }
    failing
}

/// The rollback argv: runner, then command.
pub fn rollback_argv(cfg: &Config) -> Vec<String> {
    cfg.rollback
        .runner
        .iter()
        .chain(cfg.rollback.command.iter())
        .cloned()
        .collect()
}

/// Quote for display (and for pasting into a shell).
pub fn shell_quote(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Wait up to `timeout`, then roll back. `incidents` is `None` when there is no state directory
/// (the journal record is still written).
pub async fn run_gate<S: SystemdApi>(
    systemd: &S,
    cfg: &Config,
    incidents: Option<&Incidents>,
    timeout: Duration,
    dry_run: bool,
) -> GateOutcome {
    let http = match crate::probe::client() {
        Ok(http) => http,
        Err(err) => {
            let error = format!("cannot build the HTTP client for health probes: {err}");
            log::error!(event = "gate_error"; "{error}");
            return GateOutcome::CannotProbe { error };
        }
    };
    let start = Instant::now();
    let deadline = start + timeout;
    let failing = loop {
        let failing = failing_units(systemd, cfg, &http).await;
        if failing.is_empty() {
            let elapsed = start.elapsed();
            log::info!(event = "gate_passed", elapsed_ms = elapsed.as_millis() as u64; "all {} units active and healthy after {elapsed:.1?}", cfg.units.len());
            return GateOutcome::Healthy { elapsed };
        }
        let now = Instant::now();
        if now >= deadline {
            break failing;
        }
        log::info!("gate waiting: {}", failing.join("; "));
        tokio::time::sleep(cfg.gate.poll_interval.min(deadline - now)).await;
    };

    let argv = rollback_argv(cfg);
    let shown = shell_quote(&argv);
    let action = if dry_run {
        "rollback_dry_run"
    } else {
        "rollback"
    };
    let incident = Incident::new(
        Severity::P1,
        "system",
        "gate_timeout",
        action,
        format!(
            "units not healthy within {timeout:?}: {}; rolling back with: {shown}",
            failing.join("; ")
        ),
    );
    match incidents {
        Some(incidents) => incidents.raise(incident),
        None => incident.log(),
    }
    if dry_run {
        println!("gate failed after {timeout:?}:");
        for f in &failing {
            println!("  {f}");
        }
        println!("would record a P1 incident and run: {shown}");
        return GateOutcome::RolledBack {
            failing,
            dry_run: true,
        };
    }
    let error = match argv.split_first() {
        None => "empty rollback command".to_owned(),
        Some((program, args)) => match tokio::process::Command::new(program)
            .args(args)
            .status()
            .await
        {
            Ok(status) if status.success() => {
                log::warn!(event = "rollback_started"; "rollback started: {shown}");
                return GateOutcome::RolledBack {
                    failing,
                    dry_run: false,
                };
            }
            Ok(status) => format!("{shown} exited with {status}"),
            Err(err) => format!("cannot run {program}: {err}"),
        },
    };
    let incident = Incident::new(
        Severity::P1,
        "system",
        "rollback_failed",
        "none",
        format!("rollback failed: {error}"),
    );
    match incidents {
        Some(incidents) => incidents.raise(incident),
        None => incident.log(),
    }
    GateOutcome::RollbackFailed { failing, error }
}

/// `5m`, `300s`, `300`, `1h`, `1500ms`: barnabee-service's one duration grammar.
pub use barnabee_service::time::parse_duration;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use crate::systemd::{ListedUnit, SystemdError, UnitStatus};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A systemd whose units become active after `active_after` reads.
    struct Mock {
        reads: AtomicU32,
        active_after: u32,
    }

    impl SystemdApi for Mock {
        async fn list_units(&self, _: &[String]) -> Result<Vec<ListedUnit>, SystemdError> {
            Ok(Vec::new())
        }
        async fn unit_status(&self, name: &str) -> Result<UnitStatus, SystemdError> {
            let n = self.reads.fetch_add(1, Ordering::SeqCst);
            let state = if n >= self.active_after {
                "active"
            } else {
                "activating"
            };
            Ok(UnitStatus {
                name: name.to_owned(),
                active_state: state.into(),
                sub_state: "x".into(),
                invocation_id: String::new(),
                active_enter_timestamp_us: 0,
                n_restarts: Some(0),
                exec_main_status: Some(0),
            })
        }
        async fn restart_unit(&self, name: &str) -> Result<String, SystemdError> {
            panic!("the gate restarted {name}")
        }
        async fn start_unit(&self, name: &str) -> Result<String, SystemdError> {
            panic!("the gate started {name}")
        }
    }

    fn cfg() -> Config {
        Config::parse(
            std::path::Path::new("t.toml"),
            "[gate]\npoll_interval = 0.01\n[rollback]\nrunner = []\ncommand = [\"/bin/true\"]\n[[units]]\nname = \"a.service\"\n",
        )
        .unwrap()
    }

    #[tokio::test]
    async fn gate_waits_for_activation() {
        let mock = Mock {
            reads: AtomicU32::new(0),
            active_after: 3,
        };
        let out = run_gate(&mock, &cfg(), None, Duration::from_secs(10), false).await;
        assert!(matches!(out, GateOutcome::Healthy { .. }), "{out:?}");
        assert_eq!(out.exit_code(), 0);
        assert_eq!(mock.reads.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn gate_dry_run_names_the_failing_unit() {
        let mock = Mock {
            reads: AtomicU32::new(0),
            active_after: u32::MAX,
        };
        let out = run_gate(&mock, &cfg(), None, Duration::from_millis(50), true).await;
        match &out {
            GateOutcome::RolledBack {
                failing,
                dry_run: true,
            } => {
                assert_eq!(failing, &vec!["a.service: still activating".to_owned()]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out.exit_code(), 1);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn quoting() {
        let argv: Vec<String> = [
            "systemd-run",
            "--unit=x",
            "--",
            "/bin/sh",
            "-c",
            "a && b 'c'",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            shell_quote(&argv),
            "systemd-run --unit=x -- /bin/sh -c 'a && b '\\''c'\\'''"
        );
    }
}

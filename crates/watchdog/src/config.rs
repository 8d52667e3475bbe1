//! The watchdog's configuration (`/etc/barnabee/watchdog.toml`); every key is documented in
//! `watchdog.example.toml`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use barnabee_service::config::{ConfigError, ServiceConfig, seconds};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub service: ServiceConfig,
    /// Where the incident log lives; defaults to `$STATE_DIRECTORY` (systemd `StateDirectory=`).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// D-Bus address of the bus systemd is on; defaults to `$DBUS_SYSTEM_BUS_ADDRESS`, then the
    /// system bus socket.
    #[serde(default)]
    pub bus_address: Option<String>,
    /// Days of incidents the SQLite log keeps (pruned at start and daily).
    #[serde(default = "default_retention_days")]
    pub incident_retention_days: u32,
    #[serde(default)]
    pub supervision: Supervision,
    /// The units the watchdog supervises and the gate waits for.
    #[serde(default)]
    pub units: Vec<UnitConfig>,
    #[serde(default)]
    pub thresholds: Thresholds,
    #[serde(default)]
    pub gate: GateConfig,
    #[serde(default)]
    pub rollback: RollbackConfig,
    /// `[notify]`: where the family is told about alerts, incidents and rollbacks; absent =
    /// the notifier is off.
    #[serde(default)]
    pub notify: Option<crate::notify::NotifyConfig>,
    /// `[replication]`: the incident log's replica (memory's section without `verify`), so a
    /// replacement beelink keeps the household's incident history.
    #[serde(default)]
    pub replication: Option<barnabee_replicator::embed::Section>,
}

/// One `[[units]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitConfig {
    /// Full unit name, e.g. `barnabee-memory.service`.
    pub name: String,
    /// The daemon's `/health` URL; without one, "healthy" means `ActiveState=active`.
    #[serde(default)]
    pub health_url: Option<String>,
    /// Whether the watchdog may restart the unit (false: observe, report and gate only).
    #[serde(default = "yes")]
    pub restart: bool,
}

fn default_retention_days() -> u32 {
    180
}

fn yes() -> bool {
    true
}

/// `[supervision]`: probing and restart policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Supervision {
    #[serde(with = "seconds")]
    pub interval: Duration,
    #[serde(with = "seconds")]
    pub probe_timeout: Duration,
    pub unhealthy_after: u32,
    #[serde(with = "seconds")]
    pub backoff_initial: Duration,
    #[serde(with = "seconds")]
    pub backoff_max: Duration,
    pub max_restarts: u32,
    #[serde(with = "seconds")]
    pub window: Duration,
    #[serde(with = "seconds")]
    pub job_timeout: Duration,
    /// Unit-name globs whose `failed` state raises an incident (systemd restarts them itself).
    pub watch: Vec<String>,
}

impl Default for Supervision {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(3),
            unhealthy_after: 3,
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            max_restarts: 3,
            window: Duration::from_secs(900),
            job_timeout: Duration::from_secs(90),
            watch: vec!["barnabee-*.service".into()],
        }
    }
}

/// `[thresholds]`: host checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    #[serde(with = "seconds")]
    pub interval: Duration,
    pub disk_paths: Vec<PathBuf>,
    pub disk_warn_free_percent: f64,
    pub disk_critical_free_percent: f64,
    pub memory_warn_available_gb: f64,
    pub memory_critical_available_gb: f64,
    pub load_warn_per_cpu: f64,
    pub load_critical_per_cpu: f64,
    pub gpu_metrics_url: Option<String>,
    pub gpu_temperature_warn_celsius: f64,
    pub gpu_temperature_critical_celsius: f64,
    pub gpu_memory_warn_percent: f64,
    pub gpu_memory_critical_percent: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            disk_paths: vec![PathBuf::from("/")],
            disk_warn_free_percent: 20.0,
            disk_critical_free_percent: 10.0,
            memory_warn_available_gb: 4.0,
            memory_critical_available_gb: 2.0,
            load_warn_per_cpu: 2.0,
            load_critical_per_cpu: 4.0,
            gpu_metrics_url: None,
            gpu_temperature_warn_celsius: 85.0,
            gpu_temperature_critical_celsius: 92.0,
            gpu_memory_warn_percent: 95.0,
            gpu_memory_critical_percent: 99.0,
        }
    }
}

/// `[gate]`: the health gate after a boot or a switch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateConfig {
    #[serde(with = "seconds")]
    pub timeout: Duration,
    #[serde(with = "seconds")]
    pub poll_interval: Duration,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(300),
            poll_interval: Duration::from_secs(2),
        }
    }
}

/// `[rollback]`: what the gate runs when it fails.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollbackConfig {
    /// Prefix that runs the command outside the gate's own unit, so the switch it triggers
    /// cannot kill it.
    pub runner: Vec<String>,
    /// The rollback itself.
    pub command: Vec<String>,
}

/// NixOS: set the system profile back one generation, then activate that generation.
pub const NIXOS_ROLLBACK: &str = "/run/current-system/sw/bin/nix-env --profile /nix/var/nix/profiles/system --rollback && exec /nix/var/nix/profiles/system/bin/switch-to-configuration switch";

impl Default for RollbackConfig {
    fn default() -> Self {
        Self {
            runner: vec![
                "systemd-run".into(),
                "--unit=barnabee-rollback".into(),
                "--collect".into(),
                "--".into(),
            ],
            command: vec!["/bin/sh".into(), "-c".into(), NIXOS_ROLLBACK.into()],
        }
    }
}

impl Config {
    /// Parse and validate; errors name the file and the field.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let cfg: Config = barnabee_service::config::load(path)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = barnabee_service::config::parse(path, text)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let field = |field: &str, message: String| ConfigError::Field {
            path: path.to_owned(),
            field: field.to_owned(),
            message,
        };
        for (i, unit) in self.units.iter().enumerate() {
            if !unit.name.contains('.') || unit.name.contains('/') || unit.name.contains('*') {
                return Err(field(
                    &format!("units[{i}].name"),
                    format!(
                        "{:?} is not a full unit name such as \"barnabee-memory.service\"",
                        unit.name
                    ),
                ));
            }
            if let Some(url) = &unit.health_url
                && reqwest::Url::parse(url).is_err()
            {
                return Err(field(
                    &format!("units[{i}].health_url"),
                    format!("{url:?} is not a URL"),
                ));
            }
            if self.units[..i].iter().any(|u| u.name == unit.name) {
                return Err(field(
                    &format!("units[{i}].name"),
                    format!("{:?} is listed twice", unit.name),
                ));
            }
        }
        if let Some(r) = &self.replication {
            r.validate()
                .map_err(|e| field(&format!("replication.{}", e.field), e.message))?;
        }
        let s = &self.supervision;
        if s.unhealthy_after == 0 {
            return Err(field(
                "supervision.unhealthy_after",
                "must be at least 1".into(),
            ));
        }
        if s.interval.is_zero() {
            return Err(field(
                "supervision.interval",
                "must be more than 0 seconds".into(),
            ));
        }
        if s.backoff_max < s.backoff_initial {
            return Err(field(
                "supervision.backoff_max",
                "must be at least backoff_initial".into(),
            ));
        }
        let t = &self.thresholds;
        if t.disk_critical_free_percent > t.disk_warn_free_percent {
            return Err(field(
                "thresholds.disk_critical_free_percent",
                "must not exceed disk_warn_free_percent".into(),
            ));
        }
        if t.memory_critical_available_gb > t.memory_warn_available_gb {
            return Err(field(
                "thresholds.memory_critical_available_gb",
                "must not exceed memory_warn_available_gb".into(),
            ));
        }
        if let Some(url) = &t.gpu_metrics_url
            && reqwest::Url::parse(url).is_err()
        {
            return Err(field(
                "thresholds.gpu_metrics_url",
                format!("{url:?} is not a URL"),
            ));
        }
        if self.rollback.command.is_empty() {
            return Err(field("rollback.command", "must name a program".into()));
        }
        if self.gate.poll_interval.is_zero() {
            return Err(field(
                "gate.poll_interval",
                "must be more than 0 seconds".into(),
            ));
        }
        if let Some(notify) = &self.notify
            && let Err((key, message)) = notify.check()
        {
            return Err(field(&key, message));
        }
        Ok(())
    }

    /// The state directory: `state_dir`, else the first entry of `$STATE_DIRECTORY`.
    pub fn state_dir(&self) -> Option<PathBuf> {
        self.state_dir.clone().or_else(|| {
            std::env::var("STATE_DIRECTORY").ok().and_then(|v| {
                v.split(':')
                    .next()
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("watchdog.example.toml");
        let cfg = Config::load(&path).unwrap();
        assert!(!cfg.units.is_empty());
        assert_eq!(cfg.thresholds.disk_warn_free_percent, 20.0);
        let notify = cfg.notify.unwrap();
        assert!(notify.home_assistant.is_some() && notify.email.is_some());
        assert!(notify.webhook.is_some());
    }

    #[test]
    fn defaults_are_the_operators_thresholds() {
        let cfg = Config::parse(Path::new("w.toml"), "").unwrap();
        assert_eq!(cfg.thresholds.disk_critical_free_percent, 10.0);
        assert_eq!(cfg.thresholds.memory_warn_available_gb, 4.0);
        assert_eq!(cfg.thresholds.memory_critical_available_gb, 2.0);
        assert_eq!(cfg.rollback.runner[0], "systemd-run");
        assert!(cfg.rollback.command[2].contains("switch-to-configuration switch"));
    }

    #[test]
    fn bad_unit_name_is_named() {
        let err = Config::parse(
            Path::new("w.toml"),
            "[[units]]\nname = \"barnabee-memory\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("units[0].name"), "{err}");
    }

    #[test]
    fn notify_is_off_without_its_section_and_errors_name_the_key() {
        assert!(
            Config::parse(Path::new("w.toml"), "")
                .unwrap()
                .notify
                .is_none()
        );
        let err = Config::parse(
            Path::new("w.toml"),
            "[notify.email]\nhost = \"mail\"\nsecurity = \"startls\"\nfrom = \"a@b.org\"\nto = [\"c@d.org\"]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("notify.email.security"), "{err}");
        let err = Config::parse(
            Path::new("w.toml"),
            "[notify.email]\nhost = \"mail\"\nfrom = \"a@b.org\"\nto = [\"not an address\"]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("notify.email.to[0]"), "{err}");
        let err = Config::parse(Path::new("w.toml"), "[notify]\nmax_age = 60\n").unwrap_err();
        assert!(err.to_string().contains("no channel"), "{err}");
        let cfg = Config::parse(
            Path::new("w.toml"),
            "[notify.email]\nhost = \"mail\"\nsecurity = \"tls\"\nfrom = \"a@b.org\"\nto = [\"c@d.org\"]\n",
        )
        .unwrap();
        assert_eq!(cfg.notify.unwrap().email.unwrap().port(), 465);
    }

    #[test]
    fn unknown_key_is_rejected() {
        let err = Config::parse(Path::new("w.toml"), "[supervision]\nintervall = 3\n").unwrap_err();
        assert!(err.to_string().contains("intervall"), "{err}");
    }
}

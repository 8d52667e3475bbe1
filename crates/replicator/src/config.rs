//! `litestream.yml`-compatible configuration (the subset a home appliance needs).
//! Unknown keys are errors naming the key; durations use Go syntax (`1s`, `5m`, `24h`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::client::{Client, FileClient, S3Client, S3Options};
use crate::ltx::PageEncoding;
use crate::time::parse_duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A `*-file` key whose file cannot be used; the message names the key and the path.
    #[error(transparent)]
    Secret(#[from] barnabee_service::secret::SecretError),
}

fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// A duration written as a Go duration string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(GoDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// One replica destination (`replica:` or an item of `replicas:`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReplicaConfig {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub name: Option<String>,
    /// `file:///abs/dir`, `/abs/dir`, or `s3://bucket/path?endpoint=..&region=..&forcePathStyle=true`.
    pub url: Option<String>,
    pub bucket: Option<String>,
    pub path: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub force_path_style: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Barnabee extension: read the key from a file (systemd credential); see `barnabee_service::secret`.
    pub access_key_id_file: Option<PathBuf>,
    pub secret_access_key_file: Option<PathBuf>,
    pub sync_interval: Option<GoDuration>,
    pub skip_verify: Option<bool>,
    pub sign_payload: Option<bool>,
    pub require_content_md5: Option<bool>,
    pub part_size: Option<String>,
    pub concurrency: Option<u32>,
    pub storage_class: Option<String>,
    /// Further independent replicas written beside this one (the other entries of
    /// `replicas:`, a daemon's `[[replication.also]]`); see [`crate::client::multi`].
    #[serde(skip)]
    pub also: Vec<ReplicaConfig>,
}

impl ReplicaConfig {
    /// One configuration for a list of replicas: the first, with the others in `also`.
    /// `None` for an empty list.
    pub fn set(mut replicas: Vec<ReplicaConfig>) -> Option<ReplicaConfig> {
        if replicas.is_empty() {
            return None;
        }
        let mut first = replicas.remove(0);
        first.also.extend(replicas);
        Some(first)
    }

    /// This replica and those in `also`, each alone.
    pub fn each(&self) -> Vec<ReplicaConfig> {
        let mut first = self.clone();
        let also = std::mem::take(&mut first.also);
        std::iter::once(first)
            .chain(also.into_iter().flat_map(|a| a.each()))
            .collect()
    }

    /// A replica from a URL (`file:///dir`, `/dir`, `s3://bucket/path?...`).
    pub fn from_url(url: &str) -> Self {
        ReplicaConfig {
            url: Some(url.to_owned()),
            ..Default::default()
        }
    }

    /// Fill unset fields from the global defaults.
    fn inherit(&mut self, g: &Config) {
        macro_rules! inh {
            ($f:ident) => {
                if self.$f.is_none() {
                    self.$f = g.$f.clone();
                }
            };
        }
        inh!(bucket);
        inh!(endpoint);
        inh!(region);
        inh!(force_path_style);
        inh!(access_key_id);
        inh!(secret_access_key);
        inh!(sync_interval);
    }

    /// Build the client this configuration describes: one replica, or a
    /// [`Client::Multi`] when `also` names more.
    pub fn client(&self) -> Result<Client, ConfigError> {
        if self.also.is_empty() {
            return self.single_client();
        }
        let clients = self
            .each()
            .iter()
            .map(ReplicaConfig::single_client)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Client::Multi(crate::client::MultiClient::new(clients)))
    }

    fn single_client(&self) -> Result<Client, ConfigError> {
        let mut kind = self.kind.clone();
        let mut s3 = S3Options {
            bucket: self.bucket.clone().unwrap_or_default(),
            path: self.path.clone().unwrap_or_default(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            force_path_style: self.force_path_style,
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            part_size: self
                .part_size
                .as_deref()
                .map(|v| {
                    parse_size(v)
                        .filter(|&n| n >= crate::client::s3::MIN_PART_SIZE)
                        .ok_or_else(|| {
                            invalid(
                                "part-size",
                                format!("{v:?}: need a size of at least 5MiB (e.g. 5MiB, 64MiB, 104857600)"),
                            )
                        })
                })
                .transpose()?,
            concurrency: match self.concurrency {
                Some(0) => return Err(invalid("concurrency", "must be at least 1")),
                c => c.map(|c| c as usize),
            },
        };
        let mut file_path = self.path.clone();
        if let Some(url) = &self.url {
            if let Some(rest) = url.strip_prefix("s3://") {
                kind = Some("s3".into());
                let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
                let (bucket, path) = main.split_once('/').unwrap_or((main, ""));
                if bucket.is_empty() {
                    return Err(invalid("url", format!("{url}: no bucket")));
                }
                s3.bucket = bucket.to_owned();
                s3.path = path.trim_matches('/').to_owned();
                for kv in query.split('&').filter(|s| !s.is_empty()) {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    match k {
                        "endpoint" => s3.endpoint = Some(v.to_owned()),
                        "region" => s3.region = Some(v.to_owned()),
                        "forcePathStyle" | "force-path-style" => {
                            s3.force_path_style = Some(v == "true")
                        }
                        "skipVerify" | "sign-payload" | "signPayload" | "requireContentMD5" => {}
                        other => {
                            return Err(invalid(
                                "url",
                                format!("{url}: unknown query parameter {other:?}"),
                            ));
                        }
                    }
                }
            } else if let Some(rest) = url.strip_prefix("file://") {
                kind = Some("file".into());
                file_path = Some(rest.to_owned());
            } else if url.starts_with('/') {
                kind = Some("file".into());
                file_path = Some(url.clone());
            } else {
                return Err(invalid(
                    "url",
                    format!("{url}: unsupported URL (use file:///dir or s3://bucket/path)"),
                ));
            }
        }
        match kind.as_deref() {
            Some("file") => {
                let p = file_path
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| invalid("path", "file replica needs a path"))?;
                if !p.starts_with('/') {
                    return Err(invalid(
                        "path",
                        format!("{p}: file replica path must be absolute"),
                    ));
                }
                Ok(Client::File(FileClient::new(p)))
            }
            Some("s3") => {
                if s3.bucket.is_empty() {
                    return Err(invalid("bucket", "s3 replica needs a bucket"));
                }
                if s3.path.is_empty() {
                    return Err(invalid(
                        "path",
                        "s3 replica needs a non-empty path (key prefix)",
                    ));
                }
                if let Some(ep) = &s3.endpoint
                    && !(ep.starts_with("http://") || ep.starts_with("https://"))
                {
                    return Err(invalid(
                        "endpoint",
                        format!("{ep}: must start with http:// or https://"),
                    ));
                }
                if let Some(f) = &self.access_key_id_file {
                    s3.access_key_id = Some(read_secret("access-key-id-file", f)?);
                }
                if let Some(f) = &self.secret_access_key_file {
                    s3.secret_access_key = Some(read_secret("secret-access-key-file", f)?);
                }
                S3Client::new(&s3)
                    .map(Client::S3)
                    .map_err(|e| invalid("replica", e.to_string()))
            }
            Some(other) => Err(invalid(
                "type",
                format!("unsupported replica type {other:?} (file or s3)"),
            )),
            None => Err(invalid("type", "replica needs a type or a url")),
        }
    }
}

/// A byte size as Litestream's `part-size` takes it (go-humanize): `5242880`, `5MiB`, `64 MB`,
/// `1GiB` (KB/MB/GB decimal, KiB/MiB/GiB binary, case-insensitive).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    let v: f64 = num.parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let n = v * mult as f64;
    (n <= u64::MAX as f64).then_some(n as u64)
}

fn read_secret(field: &str, p: &Path) -> Result<String, ConfigError> {
    let s = barnabee_service::secret::read(field, p)?;
    Ok(s.expose().trim().to_owned())
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SnapshotConfig {
    pub interval: Option<GoDuration>,
    pub retention: Option<GoDuration>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LevelConfig {
    pub interval: GoDuration,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RetentionConfig {
    pub enabled: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DbConfig {
    pub path: PathBuf,
    pub monitor_interval: Option<GoDuration>,
    pub checkpoint_interval: Option<GoDuration>,
    pub min_checkpoint_page_count: Option<u64>,
    pub truncate_page_n: Option<u64>,
    pub busy_timeout: Option<GoDuration>,
    pub max_sync_wal_bytes: Option<u64>,
    pub replica: Option<ReplicaConfig>,
    pub replicas: Option<Vec<ReplicaConfig>>,
}

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    pub dbs: Vec<DbConfig>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub force_path_style: Option<bool>,
    pub sync_interval: Option<GoDuration>,
    pub snapshot: Option<SnapshotConfig>,
    pub levels: Option<Vec<LevelConfig>>,
    pub l0_retention: Option<GoDuration>,
    pub l0_retention_check_interval: Option<GoDuration>,
    pub retention: Option<RetentionConfig>,
    /// Barnabee extension: `frame` (default, every Litestream 0.5.x) or `block` (>= 0.5.16).
    pub page_encoding: Option<PageEncoding>,
    pub logging: Option<serde_yaml_ng::Value>,
    pub addr: Option<String>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&expand_env(&text)).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let c: Config = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        for (i, db) in c.dbs.iter().enumerate() {
            if db.truncate_page_n.is_some() {
                return Err(format!(
                    "dbs[{i}].truncate-page-n: not supported: barnabee-replicator has no TRUNCATE \
                     emergency checkpoint (its PASSIVE checkpoints restart the WAL as soon as every \
                     frame is shipped, see min-checkpoint-page-count); remove the key"
                ));
            }
        }
        Ok(c)
    }

    /// The replicas of one database, global defaults applied.
    pub fn replicas_of(&self, db: &DbConfig) -> Result<Vec<ReplicaConfig>, ConfigError> {
        let mut v: Vec<ReplicaConfig> = db.replica.iter().cloned().collect();
        v.extend(db.replicas.iter().flatten().cloned());
        if v.is_empty() {
            return Err(invalid(
                "dbs[].replica",
                format!("{}: no replica configured", db.path.display()),
            ));
        }
        for r in &mut v {
            r.inherit(self);
        }
        Ok(v)
    }

    /// The replicas of one database as one configuration (more than one: a replica set).
    pub fn replica_set_of(&self, db: &DbConfig) -> Result<ReplicaConfig, ConfigError> {
        let v = self.replicas_of(db)?;
        ReplicaConfig::set(v).ok_or_else(|| {
            invalid(
                "dbs[].replica",
                format!("{}: no replica configured", db.path.display()),
            )
        })
    }

    /// Replication options for one database.
    pub fn options_for(&self, db: &DbConfig, replica: &ReplicaConfig) -> crate::Options {
        let mut o = crate::Options::default();
        if let Some(d) = replica.sync_interval.or(self.sync_interval) {
            o.sync_interval = d.0;
        }
        if let Some(d) = db.monitor_interval {
            o.monitor_interval = d.0.min(o.monitor_interval);
        }
        if let Some(d) = db.checkpoint_interval {
            o.checkpoint_interval = d.0;
        }
        if let Some(n) = db.min_checkpoint_page_count {
            o.min_checkpoint_page_count = n;
        }
        if let Some(d) = db.busy_timeout {
            o.busy_timeout = d.0;
        }
        if let Some(n) = db.max_sync_wal_bytes {
            o.max_sync_wal_bytes = n;
        }
        if let Some(s) = &self.snapshot {
            if let Some(d) = s.interval {
                o.snapshot_interval = d.0;
            }
            if let Some(d) = s.retention {
                o.snapshot_retention = d.0;
            }
        }
        if let Some(l) = &self.levels {
            o.level_intervals = l.iter().map(|l| l.interval.0).collect();
        }
        if let Some(d) = self.l0_retention {
            o.l0_retention = d.0;
        }
        if let Some(d) = self.l0_retention_check_interval {
            o.l0_retention_check_interval = d.0;
        }
        if let Some(r) = &self.retention {
            o.retention_enabled = r.enabled.unwrap_or(true);
        }
        if let Some(e) = self.page_encoding {
            o.page_encoding = e;
        }
        o
    }
}

/// `$VAR` / `${VAR}` expansion like Litestream (unset variables expand to "").
fn expand_env(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let (name, next) = if b.get(i + 1) == Some(&b'{') {
                match s[i + 2..].find('}') {
                    Some(e) => (&s[i + 2..i + 2 + e], i + 3 + e),
                    None => ("", i),
                }
            } else {
                let e = s[i + 1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(s.len() - i - 1);
                (&s[i + 1..i + 1 + e], i + 1 + e)
            };
            if !name.is_empty() {
                out.push_str(&std::env::var(name).unwrap_or_default());
                i = next;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or('$');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_secret_file_names_key_and_path_once() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("s3-secret");
        let r = ReplicaConfig {
            kind: Some("s3".into()),
            bucket: Some("b".into()),
            path: Some("x".into()),
            endpoint: Some("http://127.0.0.1:9".into()),
            access_key_id: Some("GK1".into()),
            secret_access_key_file: Some(missing.clone()),
            ..Default::default()
        };
        let e = r.client().err().unwrap().to_string();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        assert_eq!(e.matches("secret-access-key-file").count(), 1, "{e}");
        assert!(
            e.starts_with("secret `secret-access-key-file`: cannot read "),
            "{e}"
        );
    }

    #[test]
    fn litestream_yaml_parses() {
        let c = Config::parse(
            r#"
snapshot:
  interval: 24h
  retention: 24h
levels:
  - interval: 30s
  - interval: 5m
l0-retention: 5m
l0-retention-check-interval: 30s
dbs:
  - path: /var/lib/x.db
    checkpoint-interval: 1m
    replica:
      type: s3
      bucket: b
      path: x.db
      endpoint: http://127.0.0.1:9000
      region: us-east-1
      force-path-style: true
      access-key-id: k
      secret-access-key: s
      sync-interval: 1s
"#,
        )
        .unwrap();
        let db = &c.dbs[0];
        let r = &c.replicas_of(db).unwrap()[0];
        assert_eq!(r.bucket.as_deref(), Some("b"));
        let o = c.options_for(db, r);
        assert_eq!(
            o.level_intervals,
            vec![Duration::from_secs(30), Duration::from_secs(300)]
        );
        assert_eq!(o.l0_retention_check_interval, Duration::from_secs(30));
        assert!(matches!(r.client().unwrap(), Client::S3(_)));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Config::parse(
            "dbs:\n  - path: /x\n    replica:\n      url: file:///r\n      colour: red\n",
        )
        .unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let e = Config::parse("dbs:\n  - path: /x\n    truncate-page-n: 121359\n").unwrap_err();
        assert!(e.contains("dbs[0].truncate-page-n: not supported"), "{e}");
        let e = Config::parse("dbz: []\n").unwrap_err();
        assert!(e.contains("dbz"), "{e}");
        let e = Config::parse("dbs: []\nsync-interval: fast\n").unwrap_err();
        assert!(e.contains("\"fast\" is not a duration"), "{e}");
    }

    #[test]
    fn bad_urls() {
        for (url, want) in [
            ("ftp://x/y", "unsupported URL"),
            ("s3:///path", "no bucket"),
            ("s3://bucket", "non-empty path"),
            (
                "s3://bucket/p?endpoint=127.0.0.1:9000",
                "must start with http",
            ),
            ("s3://bucket/p?bogus=1", "unknown query parameter"),
            ("file://relative", "must be absolute"),
        ] {
            let e = ReplicaConfig::from_url(url)
                .client()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(want), "{url}: {e}");
        }
        assert!(matches!(
            ReplicaConfig::from_url("file:///tmp/r").client().unwrap(),
            Client::File(_)
        ));
    }

    #[test]
    fn part_size_and_concurrency() {
        assert_eq!(parse_size("5MiB"), Some(5 << 20));
        assert_eq!(parse_size("64 mib"), Some(64 << 20));
        assert_eq!(parse_size("5MB"), Some(5_000_000));
        assert_eq!(parse_size("104857600"), Some(100 << 20));
        assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_size("5 parsecs"), None);
        assert_eq!(parse_size(""), None);
        let cfg = |part: &str, conc: u32| ReplicaConfig {
            part_size: Some(part.into()),
            concurrency: Some(conc),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            ..ReplicaConfig::from_url("s3://b/p?endpoint=http://127.0.0.1:9")
        };
        assert!(matches!(cfg("5MiB", 2).client(), Ok(Client::S3(_))));
        for (part, conc, field, want) in [
            ("5MB", 2, "part-size", "at least 5MiB"),
            ("lots", 2, "part-size", "at least 5MiB"),
            ("8MiB", 0, "concurrency", "at least 1"),
        ] {
            let e = cfg(part, conc).client().err().unwrap().to_string();
            assert!(e.contains(field) && e.contains(want), "{part} {conc}: {e}");
        }
        let c = Config::parse(
            "dbs:\n  - path: /x\n    replica:\n      url: s3://b/p\n      part-size: 16MiB\n      concurrency: 3\n",
        )
        .unwrap();
        let r = c.replicas_of(&c.dbs[0]).unwrap();
        assert_eq!(r[0].part_size.as_deref(), Some("16MiB"));
        assert_eq!(r[0].concurrency, Some(3));
    }

    #[test]
    fn env_expansion() {
        // SAFETY-free: a variable every test process has.
        let home = std::env::var("PATH").unwrap_or_default();
        assert_eq!(expand_env("a: $PATH"), format!("a: {home}"));
        assert_eq!(expand_env("a: ${PATH}x"), format!("a: {home}x"));
        assert_eq!(expand_env("cost: 5$"), "cost: 5$");
    }
}

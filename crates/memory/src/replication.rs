//! The replication seam: where the daemon will embed `barnabee-replicator`.
//!
//! The daemon calls [`Replication::start`] after the database is open and migrated, reports
//! [`Replication::check`] in `/health`, and calls [`Replication::shutdown`] after the HTTP
//! server has drained. In this build the replicator library is not wired in yet:
//! - no `[replication]` section: a documented no-op, `/health` says "not configured";
//! - a `[replication]` section: [`ReplicationError::NotBuilt`], and the daemon refuses to
//!   start rather than run without the backup the operator asked for.
//!
//! When replication is configured the database is opened with `wal_autocheckpoint=0`
//! (`Config::replication_owns_checkpoints`): the replicator must ship WAL frames before they
//! are checkpointed, so it owns checkpoints.

use std::path::Path;

use barnabee_service::Check;

use crate::config::ReplicationConfig;

#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error(
        "[replication] is configured but replication support not built yet in this barnabee-memory; remove the section or use a build with the replicator"
    )]
    NotBuilt,
}

/// The daemon's handle on replication.
#[derive(Debug)]
pub struct Replication {
    state: State,
}

#[derive(Debug)]
enum State {
    NotConfigured,
}

impl Replication {
    /// Start replicating `db` (already open and migrated) as `cfg` says.
    pub fn start(cfg: Option<&ReplicationConfig>, _db: &Path) -> Result<Self, ReplicationError> {
        match cfg {
            None => Ok(Self {
                state: State::NotConfigured,
            }),
            Some(_) => Err(ReplicationError::NotBuilt),
        }
    }

    /// The `/health` check: non-critical, since a family may run without an off-site copy.
    pub fn check(&self) -> Check {
        match self.state {
            State::NotConfigured => Check::ok("not configured").non_critical(),
        }
    }

    /// Flush what is pending and stop (after the HTTP server drained).
    pub async fn shutdown(self) {
        match self.state {
            State::NotConfigured => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn absent_is_a_no_op_present_is_refused() {
        let r = Replication::start(None, Path::new("/x.db")).unwrap();
        assert!(r.check().ok);
        assert_eq!(r.check().detail, "not configured");
        let cfg: ReplicationConfig =
            toml::from_str("type = \"file\"\npath = \"/backup\"\n").unwrap();
        let err = Replication::start(Some(&cfg), Path::new("/x.db")).unwrap_err();
        assert!(
            err.to_string()
                .contains("replication support not built yet")
        );
    }
}

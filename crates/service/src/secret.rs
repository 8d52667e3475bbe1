//! Secrets come from files, never from the config text or the Nix store.
//!
//! A config key ending in `_file` names the file. A relative name is resolved against
//! `$CREDENTIALS_DIRECTORY`, which systemd sets for `LoadCredential=`; so the NixOS module can
//! write `token_file = "ha-token"` and systemd hands the decrypted sops file to the daemon.
//! Like Garage, a secret file readable by group or others is refused: a leaked token is worse
//! than a refused start, and the error says how to fix it.
//!
//! An *empty* file is a secret that is not provisioned yet: on a freshly flashed appliance
//! sops-nix cannot decrypt anything until the host key is enrolled, and the NixOS module pairs
//! every `LoadCredential=` with an empty `SetCredential=` default so the unit still starts.
//! [`SecretError::is_not_provisioned`] lets a daemon serve without that dependency and report
//! it degraded in `/health`, instead of failing to start; every other error means "broken".

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "secret `{key}`: relative path {path:?} needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=), which is not set; give an absolute path"
    )]
    NoCredentialsDirectory { key: String, path: PathBuf },
    #[error("secret `{key}`: cannot read {path}: {source}")]
    Unreadable {
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "secret `{key}`: {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    TooOpen {
        key: String,
        path: PathBuf,
        mode: u32,
    },
    /// Not provisioned yet; see [`SecretError::is_not_provisioned`].
    #[error(
        "secret `{key}`: {path} is empty: not provisioned yet (the secret was not decrypted; see docs/nixos.md \"First boot\")"
    )]
    Empty { key: String, path: PathBuf },
    #[error("secret `{key}`: {path} is not valid UTF-8")]
    NotUtf8 { key: String, path: PathBuf },
}

impl SecretError {
    /// True when the file exists but is empty (a trailing newline aside): the secret is not
    /// provisioned yet (systemd's empty `SetCredential=` default stood in for it). A daemon
    /// may then run without the dependency it unlocks, reporting it degraded with this error's
    /// message. A missing, unreadable, too open or non-UTF-8 file is not this: it is broken.
    pub fn is_not_provisioned(&self) -> bool {
        matches!(self, SecretError::Empty { .. })
    }
}

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Resolve `path` as systemd credentials are resolved: absolute as is, relative against
/// `$CREDENTIALS_DIRECTORY`.
pub fn resolve(key: &str, path: &Path) -> Result<PathBuf, SecretError> {
    resolve_in(
        key,
        path,
        std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
    )
}

fn resolve_in(key: &str, path: &Path, creds: Option<PathBuf>) -> Result<PathBuf, SecretError> {
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    match creds {
        Some(dir) => Ok(dir.join(path)),
        None => Err(SecretError::NoCredentialsDirectory {
            key: key.to_owned(),
            path: path.to_owned(),
        }),
    }
}

/// Read the secret named by config key `key` (for errors) from `path`.
/// The trailing newline editors add is trimmed.
pub fn read(key: &str, path: &Path) -> Result<Secret, SecretError> {
    read_resolved(key, &resolve(key, path)?)
}

fn read_resolved(key: &str, path: &Path) -> Result<Secret, SecretError> {
    let unreadable = |source| SecretError::Unreadable {
        key: key.to_owned(),
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::TooOpen {
            key: key.to_owned(),
            path: path.to_owned(),
            mode,
        });
    }
    let bytes = std::fs::read(path).map_err(unreadable)?;
    let text = String::from_utf8(bytes).map_err(|_| SecretError::NotUtf8 {
        key: key.to_owned(),
        path: path.to_owned(),
    })?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        return Err(SecretError::Empty {
            key: key.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(Secret(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn relative_name_resolves_in_credentials_directory() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ha-token", "abc\n", 0o400);
        let p = resolve_in("token_file", Path::new("ha-token"), Some(dir.path().into())).unwrap();
        assert_eq!(read_resolved("token_file", &p).unwrap().expose(), "abc");
    }

    #[test]
    fn relative_name_without_credentials_directory_is_an_error_naming_the_key() {
        let err = resolve_in("token_file", Path::new("ha-token"), None).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("token_file") && shown.contains("CREDENTIALS_DIRECTORY"));
    }

    #[test]
    fn missing_file_names_key_and_path() {
        let err = read("s3_secret_file", Path::new("/nonexistent/s3")).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("s3_secret_file") && shown.contains("/nonexistent/s3"));
    }

    #[test]
    fn world_readable_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "k", "abc", 0o644);
        let err = read("api_key_file", &p).unwrap_err();
        assert!(
            matches!(err, SecretError::TooOpen { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn only_an_empty_secret_is_not_provisioned() {
        let dir = tempfile::tempdir().unwrap();
        for body in ["", "\n", "\r\n"] {
            let p = write(dir.path(), "s3-secret", body, 0o400);
            let err = read("replication.secret_access_key_file", &p).unwrap_err();
            assert!(err.is_not_provisioned(), "{body:?}: {err}");
            let shown = err.to_string();
            assert!(
                shown.contains("replication.secret_access_key_file")
                    && shown.contains("s3-secret")
                    && shown.contains("not provisioned yet"),
                "{shown}"
            );
        }
        let broken = [
            read("k_file", &dir.path().join("missing")).unwrap_err(),
            read("k_file", &write(dir.path(), "open", "abc", 0o644)).unwrap_err(),
            read("k_file", &write(dir.path(), "open-empty", "", 0o644)).unwrap_err(),
            {
                let p = write(dir.path(), "latin1", "", 0o600);
                std::fs::write(&p, [0xffu8, 0xfe]).unwrap();
                read("k_file", &p).unwrap_err()
            },
            resolve_in("k_file", Path::new("rel"), None).unwrap_err(),
        ];
        for err in broken {
            assert!(!err.is_not_provisioned(), "{err}");
            assert!(!err.to_string().contains("not provisioned"), "{err}");
        }
    }

    #[test]
    fn empty_secret_is_refused_and_debug_hides_value() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "k", "\n", 0o600);
        assert!(matches!(read("k_file", &p), Err(SecretError::Empty { .. })));
        let p = write(dir.path(), "k2", "hunter2\r\n", 0o600);
        let s = read("k_file", &p).unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }
}

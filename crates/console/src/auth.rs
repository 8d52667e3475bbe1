//! The one operator password, sessions and CSRF tokens, and the login rate limit.
//!
//! - The password is stored only as an argon2id PHC string (`password_hash_file`, a systemd
//!   credential or a file in the state directory). With `generate_if_missing`, the first start
//!   writes a random password to `initial-password` beside the hash (both 0600) and says so in
//!   the journal: the operator reads it once with `sudo cat`, as with a router's first login.
//! - A session is a random 256-bit id in an `HttpOnly; SameSite=Strict` cookie, kept in memory
//!   (a restart logs everybody out; the console keeps no state of its own). Each session has
//!   its own CSRF token, which every form that changes something carries and the server checks.
//! - Failed logins are counted per client address over the last minute; past the limit every
//!   login is refused with 429 until the window frees up (argon2 also costs ~50 ms a try).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::config::AuthConfig;

pub const COOKIE: &str = "barnabee_console";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: not an argon2 password hash (PHC string, as `barnabee-console hash-password` prints): {message}"
    )]
    BadHash { path: PathBuf, message: String },
    #[error(
        "{path} does not exist; create it with `barnabee-console hash-password`, or set [auth] generate_if_missing = true"
    )]
    Missing { path: PathBuf },
    #[error("{0}")]
    Credential(String),
    #[error(
        "{path} is empty: the console password is not provisioned yet; nobody can log in until it is"
    )]
    NotProvisioned { path: PathBuf },
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> Result<String, AuthError> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// argon2id with 7 MiB, 5 passes, 1 lane: one of OWASP's equivalent recommended settings
/// (the default 19 MiB variant would stay resident in the console after the first login and
/// break its 30 MB memory budget). Verification uses the parameters stored in the hash.
fn hasher() -> Result<Argon2<'static>, AuthError> {
    let params =
        argon2::Params::new(7 * 1024, 5, 1, None).map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params,
    ))
}

/// An argon2id PHC string for `password`.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AuthError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// A password a person can type: 4 groups of 4 from an alphabet without look-alikes.
fn generate_password() -> Result<String, AuthError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| AuthError::Random(e.to_string()))?;
    let chars: Vec<char> = raw
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    Ok(chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-"))
}

fn write_private(path: &Path, text: &str) -> Result<(), AuthError> {
    let io = |source| AuthError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Read the password hash, creating it (and `initial-password`) first when allowed. A relative
/// path names a systemd credential (`$CREDENTIALS_DIRECTORY`, the NixOS `passwordHashFile`).
pub fn load_hash(cfg: &AuthConfig) -> Result<String, AuthError> {
    let resolved =
        barnabee_service::secret::resolve("auth.password_hash_file", &cfg.password_hash_file)
            .map_err(|e| AuthError::Credential(e.to_string()))?;
    let path = &resolved;
    if !path.exists() {
        if !cfg.generate_if_missing {
            return Err(AuthError::Missing { path: path.clone() });
        }
        let password = generate_password()?;
        let initial = path.with_file_name("initial-password");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| AuthError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let _ = std::fs::remove_file(&initial);
        write_private(&initial, &format!("{password}\n"))?;
        write_private(path, &format!("{}\n", hash_password(&password)?))?;
        log::warn!(event = "console_password_created"; "no console password yet: a random one is in {} (read it once, then change it with `barnabee-console hash-password`)", initial.display());
    }
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
        path: path.clone(),
        source,
    })?;
    let hash = text.trim().to_owned();
    if hash.is_empty() {
        // An empty credential: not provisioned yet (a first boot before sops-nix has its key).
        return Err(AuthError::NotProvisioned { path: path.clone() });
    }
    PasswordHash::new(&hash).map_err(|e| AuthError::BadHash {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(hash)
}

/// Whether `password` matches the PHC string `hash` (constant time inside argon2).
pub fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// [`verify`] with argon2's work area supplied (and kept) by the caller, so repeated logins
/// reuse one allocation instead of asking the allocator for megabytes each time.
pub fn verify_with_memory(hash: &str, password: &str, blocks: &mut Vec<argon2::Block>) -> bool {
    let Ok(h) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        argon2::Algorithm::try_from(h.algorithm),
        argon2::Params::try_from(&h),
    ) else {
        return false;
    };
    let version = match h.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    blocks.resize(params.block_count(), argon2::Block::default());
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut blocks[..])
        .is_ok()
        && out.len() == expected.as_bytes().len()
        && out
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Password checks on one thread of their own: argon2's 7 MiB work area is then allocated in
/// one place and reused (on the blocking pool every thread's malloc arena would keep its own
/// copy resident), and concurrent logins queue instead of multiplying the CPU cost.
pub struct Verifier {
    tx: std::sync::Mutex<std::sync::mpsc::Sender<(String, tokio::sync::oneshot::Sender<bool>)>>,
}

impl Verifier {
    pub fn start(hash: String) -> Result<Verifier, AuthError> {
        let (tx, rx) = std::sync::mpsc::channel::<(String, tokio::sync::oneshot::Sender<bool>)>();
        std::thread::Builder::new()
            .name("password-check".into())
            .spawn(move || {
                let mut blocks = Vec::new();
                for (password, reply) in rx {
                    let _ = reply.send(verify_with_memory(&hash, &password, &mut blocks));
                }
            })
            .map_err(|e| AuthError::Hash(format!("cannot start the password-check thread: {e}")))?;
        Ok(Verifier {
            tx: std::sync::Mutex::new(tx),
        })
    }

    /// Whether `password` is the console's password.
    pub async fn check(&self, password: String) -> bool {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((password, reply));
        sent.is_ok() && answer.await.unwrap_or(false)
    }
}

/// Equal strings, compared in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    expires: Instant,
}

/// Logged-in sessions and failed logins; everything in memory.
pub struct Sessions {
    ttl: Duration,
    max_failures: usize,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl Sessions {
    pub fn new(ttl: Duration, max_failures_per_minute: u32) -> Self {
        Self {
            ttl,
            max_failures: max_failures_per_minute as usize,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session: (id for the cookie, its CSRF token).
    pub fn create(&self) -> Result<(String, String), AuthError> {
        let id = random_hex(32)?;
        let csrf = random_hex(32)?;
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        s.retain(|_, v| v.expires > now);
        s.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                expires: now + self.ttl,
            },
        );
        Ok((id, csrf))
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        let s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.get(id).filter(|v| v.expires > Instant::now()).cloned()
    }

    pub fn end(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// `Some(seconds to wait)` when `ip` has used up its failed logins for the minute.
    pub fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let q = f.entry(ip).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        (q.len() >= self.max_failures).then(|| {
            let oldest = q.front().copied().unwrap_or(now);
            WINDOW.saturating_sub(now.duration_since(oldest)).as_secs() + 1
        })
    }

    pub fn failed(&self, ip: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(ip)
            .or_default()
            .push_back(Instant::now());
    }
}

/// The session id in a `Cookie` header, if any.
pub fn cookie_session(header: Option<&str>) -> Option<&str> {
    header?
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hash_verify_and_generated_first_password() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = AuthConfig {
            password_hash_file: dir.path().join("state/password-hash"),
            generate_if_missing: true,
            session_hours: 1,
            max_failures_per_minute: 3,
        };
        let hash = load_hash(&cfg).unwrap();
        let initial = std::fs::read_to_string(dir.path().join("state/initial-password")).unwrap();
        assert!(verify(&hash, initial.trim()));
        assert!(!verify(&hash, "wrong"));
        let mut blocks = Vec::new();
        assert!(verify_with_memory(&hash, initial.trim(), &mut blocks));
        assert!(!verify_with_memory(&hash, "wrong", &mut blocks));
        assert_eq!(blocks.len(), 7 * 1024, "the work area is the hash's m");
        // A hash made with other parameters (argon2's defaults) verifies the same way.
        let default = Argon2::default()
            .hash_password(b"pw", &SaltString::encode_b64(&[7u8; 16]).unwrap())
            .unwrap()
            .to_string();
        assert!(verify_with_memory(&default, "pw", &mut blocks));
        assert!(!verify_with_memory(
            "$argon2id$v=19$m=7168,t=5,p=1$bad",
            "pw",
            &mut blocks
        ));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cfg.password_hash_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Loaded again: the same hash, nothing regenerated.
        assert_eq!(load_hash(&cfg).unwrap(), hash);
        // Not allowed to create: a clear error naming the file.
        let e = load_hash(&AuthConfig {
            password_hash_file: dir.path().join("none"),
            generate_if_missing: false,
            ..cfg.clone()
        })
        .unwrap_err();
        assert!(e.to_string().contains("hash-password"), "{e}");
        std::fs::write(dir.path().join("bad"), "plain text").unwrap();
        let e = load_hash(&AuthConfig {
            password_hash_file: dir.path().join("bad"),
            ..cfg
        })
        .unwrap_err();
        assert!(e.to_string().contains("not an argon2"), "{e}");
    }

    #[test]
    fn sessions_and_the_login_limit() {
        let s = Sessions::new(Duration::from_secs(60), 2);
        let (id, csrf) = s.create().unwrap();
        assert_eq!(s.get(&id).unwrap().csrf, csrf);
        s.end(&id);
        assert!(s.get(&id).is_none());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(s.blocked(ip).is_none());
        s.failed(ip);
        s.failed(ip);
        assert!(s.blocked(ip).unwrap() <= 61);
        assert!(s.blocked("192.0.2.2".parse().unwrap()).is_none());
        assert_eq!(
            cookie_session(Some("a=1; barnabee_console=xyz")),
            Some("xyz")
        );
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}

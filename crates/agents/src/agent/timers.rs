//! Kitchen timers that ring where they were set and survive a restart.
//!
//! - Kept in `<state_dir>/timers.json` (end times in Unix milliseconds, so a restart, or a
//!   replacement after a crash, knows when each ends). Written whole (temp file + rename) on
//!   every change: a handful of timers, a few hundred bytes. A file that does not parse is
//!   moved aside (`timers.json.corrupt`) and reported, never half-applied.
//! - Rung by the voice daemon (`[voice] url`, `POST /v1/announce` with the `device_id` the
//!   timer was set from): "Your 5 minutes timer is done." A timer that ended while the daemon
//!   was down rings at start ("… finished while I was restarting"). When the voice daemon does
//!   not know that device (404) it rings on the voice daemon's own speaker rather than nowhere;
//!   when it is down or has no speaker, three tries 5 s apart, then a warning in the journal.
//!   Every end is also logged as `EVENT=timer_done` with the outcome.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::route::instant::say_duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timer {
    pub id: u64,
    /// "5 minutes".
    pub label: String,
    /// When it ends, Unix milliseconds.
    pub ends_ms: i64,
    /// The device it was set from (it rings there).
    pub device_id: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    next: u64,
    running: Vec<Timer>,
}

/// Where a timer rings: the voice daemon's announce endpoint.
#[derive(Clone)]
pub struct Ringer {
    pub voice_url: String,
    pub http: reqwest::Client,
    /// Pause between tries when the voice daemon cannot speak it.
    pub retry: Duration,
}

#[derive(Clone)]
pub struct Timers {
    state: Arc<Mutex<Saved>>,
    file: Option<PathBuf>,
    ringer: Option<Ringer>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Timers {
    /// Timers kept in `file` (none: in memory only), rung through `ringer` (none: logged only).
    /// Call [`Timers::resume`] inside the runtime to schedule the ones read from the file.
    pub fn open(file: Option<PathBuf>, ringer: Option<Ringer>) -> Timers {
        let saved = file.as_deref().map(load).unwrap_or_default();
        Timers {
            state: Arc::new(Mutex::new(saved)),
            file,
            ringer,
        }
    }

    /// Schedule every timer read at open; those already over ring now.
    pub fn resume(&self) {
        let running = self.lock().running.clone();
        for t in running {
            log::info!(event = "timer_resumed", timer_id = t.id; "timer for {} resumed after a restart", t.label);
            self.schedule(t);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Saved> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start a timer; returns its spoken label.
    pub fn set(&self, d: Duration, device_id: Option<&str>) -> String {
        let label = say_duration(d);
        let timer = {
            let mut s = self.lock();
            s.next += 1;
            let t = Timer {
                id: s.next,
                label: label.clone(),
                ends_ms: now_ms() + d.as_millis() as i64,
                device_id: device_id.map(str::to_owned),
            };
            s.running.push(t.clone());
            self.save(&s);
            t
        };
        self.schedule(timer);
        label
    }

    /// Cancel every running timer; returns how many there were.
    pub fn cancel_all(&self) -> usize {
        let mut s = self.lock();
        let n = s.running.len();
        s.running.clear();
        self.save(&s);
        n
    }

    /// What is left on each running timer: (label, time left).
    pub fn left(&self) -> Vec<(String, Duration)> {
        let now = now_ms();
        self.lock()
            .running
            .iter()
            .map(|t| {
                let ms = (t.ends_ms - now).max(0) as u64;
                (t.label.clone(), Duration::from_millis(ms))
            })
            .collect()
    }

    fn schedule(&self, t: Timer) {
        let timers = self.clone();
        let wait = Duration::from_millis((t.ends_ms - now_ms()).max(0) as u64);
        // Over by more than a second when scheduled: it ended while the daemon was down.
        let late = t.ends_ms + 1000 < now_ms();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let still_running = {
                let mut s = timers.lock();
                match s.running.iter().position(|x| x.id == t.id) {
                    Some(i) => {
                        s.running.remove(i);
                        timers.save(&s);
                        true
                    }
                    None => false, // cancelled
                }
            };
            if still_running {
                timers.ring(&t, late).await;
            }
        });
    }

    async fn ring(&self, t: &Timer, late: bool) {
        let text = if late {
            format!("Your {} timer finished while I was restarting.", t.label)
        } else {
            format!("Your {} timer is done.", t.label)
        };
        let Some(r) = &self.ringer else {
            log::info!(event = "timer_done", timer_id = t.id, outcome = "logged"; "timer for {} is done (no [voice] url to ring it)", t.label);
            return;
        };
        let url = format!("{}/v1/announce", r.voice_url.trim_end_matches('/'));
        let mut device = t.device_id.clone();
        let mut last = String::new();
        let mut failures = 0;
        while failures < 3 {
            let mut body = json!({"text": text, "from": "timer"});
            if let Some(d) = &device {
                body["device_id"] = json!(d);
            }
            match r.http.post(&url).json(&body).send().await {
                Ok(resp) if resp.status().is_success() => {
                    log::info!(event = "timer_done", timer_id = t.id, outcome = "rung", device_id = device.as_deref().unwrap_or(""); "timer for {} rang", t.label);
                    return;
                }
                Ok(resp) if resp.status().as_u16() == 404 && device.is_some() => {
                    // Not a failure to wait on: ask again at once, for its own speaker.
                    log::info!(timer_id = t.id; "the voice daemon is not device {:?}; ringing on its own speaker", device.as_deref().unwrap_or(""));
                    device = None;
                    continue;
                }
                Ok(resp) => {
                    let status = resp.status();
                    last = format!("{status}: {}", resp.text().await.unwrap_or_default());
                }
                Err(e) => last = e.to_string(),
            }
            failures += 1;
            if failures < 3 {
                tokio::time::sleep(r.retry).await;
            }
        }
        log::warn!(event = "timer_done", timer_id = t.id, outcome = "not_rung"; "timer for {} is done but could not be rung at {url}: {last}", t.label);
    }

    fn save(&self, s: &Saved) {
        let Some(file) = &self.file else { return };
        let tmp = file.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let text = serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?;
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, file)
        };
        if let Err(e) = write() {
            log::error!(event = "timers_not_saved", path = file.display().to_string().as_str(); "cannot save the timers to {}: {e}; they will not survive a restart", file.display());
        }
    }
}

/// Read the saved timers; a missing file is none, a corrupt one is moved aside and reported.
fn load(file: &std::path::Path) -> Saved {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Saved::default(),
        Err(e) => {
            log::error!(event = "timers_unreadable"; "cannot read {}: {e}; starting with no timers", file.display());
            return Saved::default();
        }
    };
    match serde_json::from_slice::<Saved>(&bytes) {
        Ok(s) => s,
        Err(e) => {
            let aside = file.with_extension("json.corrupt");
            let moved = std::fs::rename(file, &aside).is_ok();
            log::error!(event = "timers_corrupt"; "{} is corrupt ({e}); starting with no timers{}", file.display(),
                if moved { format!(", the file is kept as {}", aside.display()) } else { String::new() });
            Saved::default()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn saved_on_every_change_and_read_back_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("timers.json");
        let t = Timers::open(Some(file.clone()), None);
        assert_eq!(
            t.set(Duration::from_secs(300), Some("kitchen")),
            "5 minutes"
        );
        t.set(Duration::from_secs(60), None);
        let again = Timers::open(Some(file.clone()), None);
        let left = again.left();
        assert_eq!(left.len(), 2);
        assert_eq!(left[0].0, "5 minutes");
        assert!(left[0].1 > Duration::from_secs(290), "{left:?}");
        assert_eq!(
            again.lock().running[0].device_id.as_deref(),
            Some("kitchen")
        );
        assert_eq!(t.cancel_all(), 2);
        assert!(Timers::open(Some(file), None).left().is_empty());
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_and_never_applied() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("timers.json");
        std::fs::write(&file, b"{\"next\": 3, \"running\": [{\"id\": 1}]}").unwrap();
        assert!(Timers::open(Some(file.clone()), None).left().is_empty());
        assert!(!file.exists());
        assert!(dir.path().join("timers.json.corrupt").exists());
    }
}

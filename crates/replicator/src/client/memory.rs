//! An in-memory replica for tests (with fault injection).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::{ClientError, FileInfo, Payload, ReplicaClient};

type Objects = BTreeMap<(u8, u64, u64), (Vec<u8>, i64)>;

#[derive(Default)]
pub struct MemoryClient {
    objects: Mutex<Objects>,
    /// Fail this many next puts (for retry tests).
    pub fail_puts: AtomicU32,
    /// While set, every operation fails as an unreachable server would.
    pub down: AtomicBool,
    puts: AtomicU32,
}

impl MemoryClient {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, level: u8, min: u64, max: u64, data: Vec<u8>, created_ms: i64) {
        self.lock().insert((level, min, max), (data, created_ms));
    }

    pub fn puts(&self) -> u32 {
        self.puts.load(Ordering::SeqCst)
    }

    fn check_up(&self, op: &'static str) -> Result<(), ClientError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(ClientError::S3 {
                op,
                object: String::new(),
                message: "injected outage: connection refused".into(),
            });
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ReplicaClient for MemoryClient {
    fn describe(&self) -> String {
        "memory://".into()
    }
    fn object_name(&self, level: u8, min: u64, max: u64) -> String {
        format!("{level:04x}/{}", crate::ltx::format_filename(min, max))
    }
    async fn list(&self, level: u8, _precise: bool) -> Result<Vec<FileInfo>, ClientError> {
        self.check_up("list")?;
        Ok(self
            .lock()
            .iter()
            .filter(|(k, _)| k.0 == level)
            .map(|(&(level, min_txid, max_txid), (d, t))| FileInfo {
                level,
                min_txid,
                max_txid,
                size: d.len() as u64,
                created_ms: *t,
            })
            .collect())
    }
    async fn get(&self, level: u8, min: u64, max: u64) -> Result<Vec<u8>, ClientError> {
        self.check_up("get")?;
        self.lock()
            .get(&(level, min, max))
            .map(|(d, _)| d.clone())
            .ok_or_else(|| ClientError::NotFound {
                object: self.object_name(level, min, max),
            })
    }
    async fn put(
        &self,
        level: u8,
        min: u64,
        max: u64,
        data: Payload,
        ts: i64,
    ) -> Result<(), ClientError> {
        self.check_up("put")?;
        let data = data.to_vec().map_err(|source| ClientError::Io {
            object: self.object_name(level, min, max),
            source,
        })?;
        if self
            .fail_puts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(ClientError::S3 {
                op: "put",
                object: self.object_name(level, min, max),
                message: "injected failure".into(),
            });
        }
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.insert(level, min, max, data, ts);
        Ok(())
    }
    async fn delete(&self, files: &[FileInfo]) -> Result<(), ClientError> {
        self.check_up("delete")?;
        let mut m = self.lock();
        for f in files {
            m.remove(&(f.level, f.min_txid, f.max_txid));
        }
        Ok(())
    }
    async fn delete_all(&self) -> Result<(), ClientError> {
        self.lock().clear();
        Ok(())
    }
}

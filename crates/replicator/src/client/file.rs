//! File replicas: `<root>/ltx/<level decimal>/<min>-<max>.ltx`, mtime = header timestamp.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::{ClientError, FileInfo, Payload, ReplicaClient};
use crate::ltx::{format_filename, parse_filename};

pub struct FileClient {
    root: PathBuf,
}

impl FileClient {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, level: u8) -> PathBuf {
        self.root.join("ltx").join(level.to_string())
    }

    fn path(&self, level: u8, min: u64, max: u64) -> PathBuf {
        self.dir(level).join(format_filename(min, max))
    }
}

fn io(object: &Path, source: std::io::Error) -> ClientError {
    if source.kind() == std::io::ErrorKind::NotFound {
        ClientError::NotFound {
            object: object.display().to_string(),
        }
    } else {
        ClientError::Io {
            object: object.display().to_string(),
            source,
        }
    }
}

impl ReplicaClient for FileClient {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
    fn object_name(&self, level: u8, min: u64, max: u64) -> String {
        self.path(level, min, max).display().to_string()
    }
    async fn list(&self, level: u8, _precise: bool) -> Result<Vec<FileInfo>, ClientError> {
        let dir = self.dir(level);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir, e)),
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| io(&dir, e))?;
            let name = ent.file_name();
            let Some((min, max)) = name.to_str().and_then(parse_filename) else {
                continue;
            };
            let md = match ent.metadata() {
                Ok(md) => md,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&ent.path(), e)),
            };
            let created_ms = md
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            out.push(FileInfo {
                level,
                min_txid: min,
                max_txid: max,
                size: md.len(),
                created_ms,
            });
        }
        out.sort_by_key(|f| (f.min_txid, f.max_txid));
        Ok(out)
    }
    async fn get(&self, level: u8, min: u64, max: u64) -> Result<Vec<u8>, ClientError> {
        let p = self.path(level, min, max);
        std::fs::read(&p).map_err(|e| io(&p, e))
    }
    fn local_path(&self, level: u8, min: u64, max: u64) -> Option<std::path::PathBuf> {
        Some(self.path(level, min, max))
    }
    async fn put(
        &self,
        level: u8,
        min: u64,
        max: u64,
        data: Payload,
        ts: i64,
    ) -> Result<(), ClientError> {
        let dir = self.dir(level);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let p = self.path(level, min, max);
        let tmp = p.with_extension("ltx.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        data.write_to(&mut f).map_err(|e| io(&tmp, e))?;
        let mtime = UNIX_EPOCH + Duration::from_millis(ts.max(0) as u64);
        f.set_modified(mtime).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, &p).map_err(|e| io(&p, e))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
    async fn delete(&self, files: &[FileInfo]) -> Result<(), ClientError> {
        for f in files {
            let p = self.path(f.level, f.min_txid, f.max_txid);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&p, e)),
            }
        }
        Ok(())
    }
    async fn delete_all(&self) -> Result<(), ClientError> {
        let p = self.root.join("ltx");
        match std::fs::remove_dir_all(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&p, e)),
        }
    }
}

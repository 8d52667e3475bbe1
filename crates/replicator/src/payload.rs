//! An object's bytes on their way to a replica: in memory, or in a spool file.
//!
//! Small LTX files (level 0 under normal writes: kilobytes) stay in memory. A file that
//! grows past [`SPILL_ABOVE`] while it is encoded (a full snapshot, a compaction holding
//! one) is written to a spool file instead, and every client uploads it from there (S3 parts
//! are read from the file at their offsets), so the memory replication takes stays bounded
//! whatever the database's size (Litestream's habit: its LTX files are written to disk before
//! they are uploaded). A payload is shared, not copied, between a replica set's queues and a
//! retried upload; its spool file is removed when the last holder drops it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An encoder's output above this size goes to a spool file.
pub const SPILL_ABOVE: usize = 4 << 20;

/// An LTX object's bytes; cloning shares them.
#[derive(Clone, Debug)]
pub enum Payload {
    Memory(bytes::Bytes),
    File(Arc<SpoolFile>),
}

impl Default for Payload {
    fn default() -> Self {
        Payload::Memory(bytes::Bytes::new())
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Payload::Memory(v.into())
    }
}

impl Payload {
    pub fn len(&self) -> u64 {
        match self {
            Payload::Memory(b) => b.len() as u64,
            Payload::File(f) => f.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The spool file, when the payload is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Payload::Memory(_) => None,
            Payload::File(f) => Some(&f.path),
        }
    }

    /// The whole payload in memory (reads a spool file). For small objects and tests; the
    /// upload paths stream a spool file instead.
    pub fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Payload::Memory(b) => Ok(b.to_vec()),
            Payload::File(f) => std::fs::read(&f.path),
        }
    }

    /// Copy the payload into `out` (from the spool file in chunks, never whole).
    pub fn write_to(&self, out: &mut std::fs::File) -> std::io::Result<()> {
        match self {
            Payload::Memory(b) => out.write_all(b),
            Payload::File(f) => {
                let mut src = std::fs::File::open(&f.path)?;
                let n = std::io::copy(&mut src, out)?;
                if n != f.len {
                    return Err(std::io::Error::other(format!(
                        "spool file {} holds {n} bytes, {} were written to it",
                        f.path.display(),
                        f.len
                    )));
                }
                Ok(())
            }
        }
    }

    /// The first `n` bytes (an LTX header), without reading the rest.
    pub fn head(&self, n: usize) -> std::io::Result<Vec<u8>> {
        match self {
            Payload::Memory(b) => Ok(b[..n.min(b.len())].to_vec()),
            Payload::File(f) => {
                let mut out = Vec::with_capacity(n);
                std::fs::File::open(&f.path)?
                    .take(n as u64)
                    .read_to_end(&mut out)?;
                Ok(out)
            }
        }
    }
}

/// A finished spool file; removed when dropped.
#[derive(Debug)]
pub struct SpoolFile {
    path: PathBuf,
    len: u64,
}

impl SpoolFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A spool file being written: removed on drop unless [`SpoolWriter::finish`]ed.
pub struct SpoolWriter {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    len: u64,
}

impl SpoolWriter {
    /// A new private file in the system's temporary directory (`TMPDIR`; the NixOS units'
    /// private `/tmp`).
    pub fn create() -> std::io::Result<Self> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "barnabee-spool-{}-{}.ltx",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Self {
            file: std::io::BufWriter::with_capacity(1 << 16, file),
            path,
            len: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.file.write_all(b).map_err(|e| self.named(e))?;
        self.len += b.len() as u64;
        Ok(())
    }

    /// Flush and close; the payload owns the file from now on.
    pub fn finish(mut self) -> std::io::Result<Payload> {
        self.file.flush().map_err(|e| self.named(e))?;
        let spool = SpoolFile {
            path: std::mem::take(&mut self.path),
            len: self.len,
        };
        Ok(Payload::File(Arc::new(spool)))
    }

    /// The file was filled by someone else (a download to [`SpoolWriter::path`], `len` bytes):
    /// the payload owns it from now on.
    pub fn filled(mut self, len: u64) -> Payload {
        let spool = SpoolFile {
            path: std::mem::take(&mut self.path),
            len,
        };
        Payload::File(Arc::new(spool))
    }

    fn named(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(e.kind(), format!("{}: {e}", self.path.display()))
    }
}

impl Drop for SpoolWriter {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_file_lives_as_long_as_its_last_holder() {
        let mut w = SpoolWriter::create().unwrap();
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let path = w.path().to_path_buf();
        let p = w.finish().unwrap();
        assert_eq!(p.len(), 11);
        assert_eq!(p.to_vec().unwrap(), b"hello world");
        assert_eq!(p.head(5).unwrap(), b"hello");
        let shared = p.clone();
        drop(p);
        assert!(path.exists(), "a clone still holds it");
        let mut out = tempfile::tempfile().unwrap();
        shared.write_to(&mut out).unwrap();
        drop(shared);
        assert!(!path.exists(), "removed with the last holder");
    }

    #[test]
    fn an_unfinished_spool_file_is_removed() {
        let mut w = SpoolWriter::create().unwrap();
        w.write_all(b"partial").unwrap();
        let path = w.path().to_path_buf();
        assert!(path.exists());
        drop(w);
        assert!(!path.exists());
    }
}

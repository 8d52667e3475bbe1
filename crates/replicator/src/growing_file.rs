//! Reading a file while another task is still writing it (a restore decodes an object while
//! it downloads, so the download and the decoding overlap instead of following each other).

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// How the writer of a [`GrowingFile`] ended.
#[derive(Clone, Default)]
pub struct Progress(Arc<AtomicU8>);

const WRITING: u8 = 0;
const DONE: u8 = 1;
const FAILED: u8 = 2;

impl Progress {
    pub fn done(&self) {
        self.0.store(DONE, Ordering::Release);
    }
    pub fn failed(&self) {
        self.0.store(FAILED, Ordering::Release);
    }
    fn get(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }
}

/// Reads `len` bytes of a file as they arrive: at the end of what is written so far it waits
/// (polling every millisecond) until the writer adds more, finishes, or fails.
pub struct GrowingFile {
    file: std::fs::File,
    len: u64,
    read: u64,
    progress: Progress,
}

impl GrowingFile {
    /// `file` must already exist (opened before the writer starts; the writer may truncate it
    /// with `File::create`: the same file).
    pub fn new(file: std::fs::File, len: u64, progress: Progress) -> Self {
        Self {
            file,
            len,
            read: 0,
            progress,
        }
    }
}

impl Read for GrowingFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.read >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min((self.len - self.read) as usize);
        loop {
            // Read the state before the file: if the writer is done, everything it wrote is
            // visible to the read that follows.
            let state = self.progress.get();
            let n = self.file.read(&mut buf[..want])?;
            if n > 0 {
                self.read += n as u64;
                return Ok(n);
            }
            match state {
                WRITING => std::thread::sleep(Duration::from_millis(1)),
                FAILED => {
                    return Err(std::io::Error::other("the download stopped"));
                }
                // Done, and nothing more: the object is shorter than listed.
                _ => return Ok(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_what_a_slow_writer_adds_until_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::File::create(&path).unwrap();
        let progress = Progress::default();
        let mut r = GrowingFile::new(std::fs::File::open(&path).unwrap(), 3000, progress.clone());
        let writer = {
            let path = path.clone();
            let progress = progress.clone();
            std::thread::spawn(move || {
                let mut f = std::fs::File::create(&path).unwrap();
                for i in 0..3u8 {
                    std::thread::sleep(Duration::from_millis(20));
                    f.write_all(&[i; 1000]).unwrap();
                }
                progress.done();
            })
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        writer.join().unwrap();
        assert_eq!(out.len(), 3000);
        assert!(out[..1000].iter().all(|&b| b == 0) && out[2000..].iter().all(|&b| b == 2));
    }

    #[test]
    fn a_failed_writer_is_an_error_and_a_short_file_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [1u8; 10]).unwrap();
        let progress = Progress::default();
        let mut r = GrowingFile::new(std::fs::File::open(&path).unwrap(), 100, progress.clone());
        progress.failed();
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).is_err());
        let progress = Progress::default();
        let mut r = GrowingFile::new(std::fs::File::open(&path).unwrap(), 100, progress.clone());
        progress.done();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 10);
    }
}

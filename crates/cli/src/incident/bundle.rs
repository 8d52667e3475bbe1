//! Writing the bundle: one `.tar.zst` with every file under a top folder, written to a temp
//! file in the destination directory and renamed into place, so a reader never sees half a
//! bundle and a failed run leaves nothing behind. An existing file is never overwritten.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// What goes into the bundle: bytes, or a file spooled to disk (the journal can be large).
pub enum Content {
    Bytes(Vec<u8>),
    File(File),
}

pub struct Entry {
    /// Path under the top folder, e.g. `health/memory.json`.
    pub path: String,
    pub content: Content,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot create a temporary file in {dir}: {source}")]
    Temp { dir: PathBuf, source: io::Error },
    #[error("cannot write {path} (into {temp}): {source}")]
    Write {
        path: String,
        temp: PathBuf,
        source: io::Error,
    },
    #[error("cannot move the bundle into place at {out}: {source}")]
    Persist { out: PathBuf, source: io::Error },
}

/// Write `entries` under `top/` into `out` (zstd level 9); returns the bundle's size.
pub fn write(out: &Path, top: &str, mtime: u64, entries: Vec<Entry>) -> Result<u64, BundleError> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".barnabee-incident-")
        .suffix(".partial")
        .tempfile_in(&dir)
        .map_err(|source| BundleError::Temp {
            dir: dir.clone(),
            source,
        })?;
    let temp_path = temp.path().to_owned();
    let fail = |path: &str| {
        let temp = temp_path.clone();
        let path = path.to_owned();
        move |source| BundleError::Write { path, temp, source }
    };

    let file = temp.reopen().map_err(fail("the bundle"))?;
    let encoder = zstd::Encoder::new(file, 9).map_err(fail("the bundle"))?;
    let mut tar = tar::Builder::new(encoder);
    let mut dir_header = tar::Header::new_gnu();
    dir_header.set_entry_type(tar::EntryType::Directory);
    dir_header.set_mode(0o755);
    dir_header.set_mtime(mtime);
    dir_header.set_size(0);
    tar.append_data(&mut dir_header, format!("{top}/"), io::empty())
        .map_err(fail(top))?;
    for entry in entries {
        let name = format!("{top}/{}", entry.path);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        match entry.content {
            Content::Bytes(b) => {
                header.set_size(b.len() as u64);
                tar.append_data(&mut header, &name, b.as_slice())
                    .map_err(fail(&name))?;
            }
            Content::File(mut f) => {
                use std::io::Seek;
                let len = f.seek(io::SeekFrom::End(0)).map_err(fail(&name))?;
                f.rewind().map_err(fail(&name))?;
                header.set_size(len);
                // `take`: a file that grew since (it should not) cannot corrupt the archive.
                tar.append_data(&mut header, &name, f.take(len))
                    .map_err(fail(&name))?;
            }
        }
    }
    let encoder = tar.into_inner().map_err(fail("the tar trailer"))?;
    let mut file = encoder.finish().map_err(fail("the zstd trailer"))?;
    file.flush().map_err(fail("the bundle"))?;
    file.sync_all().map_err(fail("the bundle"))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    temp.persist_noclobber(out)
        .map_err(|e| BundleError::Persist {
            out: out.to_owned(),
            source: e.error,
        })?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn read_back(path: &Path) -> Vec<(String, Vec<u8>)> {
        let dec = zstd::Decoder::new(File::open(path).unwrap()).unwrap();
        let mut ar = tar::Archive::new(dec);
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().display().to_string();
                let mut body = Vec::new();
                e.read_to_end(&mut body).unwrap();
                (name, body)
            })
            .collect()
    }

    #[test]
    fn bytes_and_spooled_files_land_under_the_top_folder() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b.tar.zst");
        let mut spool = tempfile::tempfile().unwrap();
        spool.write_all(b"line 1\nline 2\n").unwrap();
        write(
            &out,
            "top",
            1_700_000_000,
            vec![
                Entry {
                    path: "a.txt".into(),
                    content: Content::Bytes(b"hello".to_vec()),
                },
                Entry {
                    path: "sub/journal.json".into(),
                    content: Content::File(spool),
                },
            ],
        )
        .unwrap();
        let files = read_back(&out);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["top/", "top/a.txt", "top/sub/journal.json"]);
        assert_eq!(files[1].1, b"hello");
        assert_eq!(files[2].1, b"line 1\nline 2\n");
        // no temp file left beside it
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn never_overwrites_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b.tar.zst");
        std::fs::write(&out, "an earlier bundle").unwrap();
        let err = write(&out, "top", 0, Vec::new()).unwrap_err().to_string();
        assert!(err.contains(&out.display().to_string()), "{err}");
        assert_eq!(std::fs::read(&out).unwrap(), b"an earlier bundle");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left"
        );
    }

    #[test]
    fn unwritable_directory_is_named() {
        let err = write(
            Path::new("/nonexistent-dir/b.tar.zst"),
            "top",
            0,
            Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent-dir"), "{err}");
    }
}

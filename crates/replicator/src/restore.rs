//! Restore: Litestream's restore plan, then download, verify, merge, write `<out>.tmp`,
//! `PRAGMA integrity_check`, rename.

use std::path::{Path, PathBuf};

use crate::client::{ClientError, FileInfo, ReplicaClient, SNAPSHOT_LEVEL};
use crate::growing_file::{GrowingFile, Progress};
use crate::ltx::{self, LtxError, lock_page};

/// What to restore to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Target {
    #[default]
    Latest,
    /// The state after this TXID.
    Txid(u64),
    /// The newest state whose files were all created strictly before this time (ms).
    Timestamp(i64),
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("transaction not available: {0}")]
    NotAvailable(String),
    #[error(
        "non-contiguous ltx files: restore reaches TXID {reached:016x}, but {object} starts at {min:016x}"
    )]
    NonContiguous {
        reached: u64,
        object: String,
        min: u64,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{object}: {source}")]
    Corrupt { object: String, source: LtxError },
    #[error("{object}: {what}")]
    Inconsistent { object: String, what: String },
    #[error("restored image incomplete: {0}")]
    Incomplete(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: integrity check failed: {detail}")]
    Integrity { path: PathBuf, detail: String },
    #[error("{0}: output already exists")]
    Exists(PathBuf),
}

fn in_target(f: &FileInfo, target: Target) -> bool {
    match target {
        Target::Latest => true,
        Target::Txid(t) => f.max_txid <= t,
        Target::Timestamp(ts) => f.created_ms < ts,
    }
}

/// Litestream's restore plan: newest usable L9 snapshot, then greedy extension across levels
/// 8..0 (highest max TXID; ties: lower min, higher level, older).
pub async fn plan<C: ReplicaClient>(
    client: &C,
    target: Target,
) -> Result<Vec<FileInfo>, RestoreError> {
    let precise = matches!(target, Target::Timestamp(_));
    let mut levels: Vec<Vec<FileInfo>> = Vec::new();
    for level in 0..=SNAPSHOT_LEVEL {
        levels.push(client.list(level, precise).await?);
    }
    plan_from(&levels, target, |f| {
        client.object_name(f.level, f.min_txid, f.max_txid)
    })
}

/// The planning algorithm on listings (index = level).
pub fn plan_from(
    levels: &[Vec<FileInfo>],
    target: Target,
    name: impl Fn(&FileInfo) -> String,
) -> Result<Vec<FileInfo>, RestoreError> {
    let mut out: Vec<FileInfo> = Vec::new();
    let mut cur = 0u64;
    if let Some(snaps) = levels.get(SNAPSHOT_LEVEL as usize)
        && let Some(s) = snaps
            .iter()
            .filter(|f| f.min_txid == 1 && in_target(f, target))
            .max_by_key(|f| (f.max_txid, f.created_ms))
    {
        cur = s.max_txid;
        out.push(s.clone());
    }
    loop {
        if let Target::Txid(t) = target
            && cur >= t
        {
            break;
        }
        let mut best: Option<&FileInfo> = None;
        for level in (0..SNAPSHOT_LEVEL).rev() {
            for f in levels.get(level as usize).into_iter().flatten() {
                if f.min_txid > cur + 1 || f.max_txid <= cur || !in_target(f, target) {
                    continue;
                }
                let better = match best {
                    None => true,
                    Some(b) => {
                        (
                            f.max_txid,
                            std::cmp::Reverse(f.min_txid),
                            f.level,
                            std::cmp::Reverse(f.created_ms),
                        ) > (
                            b.max_txid,
                            std::cmp::Reverse(b.min_txid),
                            b.level,
                            std::cmp::Reverse(b.created_ms),
                        )
                    }
                };
                if better {
                    best = Some(f);
                }
            }
        }
        let Some(b) = best else { break };
        cur = b.max_txid;
        out.push(b.clone());
    }
    if out.is_empty() {
        return Err(RestoreError::NotAvailable(match target {
            Target::Latest => "replica holds no usable files".into(),
            Target::Txid(t) => format!("no files reach TXID {t:016x}"),
            Target::Timestamp(ts) => {
                format!(
                    "no files created before {}",
                    crate::time::format_rfc3339(ts)
                )
            }
        }));
    }
    match target {
        Target::Txid(t) if cur != t => {
            return Err(RestoreError::NotAvailable(format!(
                "TXID {t:016x} (replica reaches {cur:016x} along a contiguous chain)"
            )));
        }
        Target::Latest => {
            for f in levels.iter().flatten() {
                if f.min_txid > cur + 1 {
                    return Err(RestoreError::NonContiguous {
                        reached: cur,
                        object: name(f),
                        min: f.min_txid,
                    });
                }
            }
        }
        _ => {}
    }
    Ok(out)
}

/// Summary of a finished restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    pub txid: u64,
    pub pages: u32,
    pub page_size: u32,
    pub bytes_downloaded: u64,
}

/// Download the planned files, verify each (header rules, page index, file checksum, name vs
/// header), merge them, and write the database to `output` via `<output>.tmp`.
///
/// Streams: each object is read in place (file replica) or downloaded to
/// `<output>.tmp-download` (S3), decoded page by page and its pages written straight to their
/// place in `<output>.tmp`; later files overwrite earlier pages. Memory stays at a small read
/// window plus one bit per page, whatever the database size.
pub async fn apply<C: ReplicaClient>(
    client: &C,
    plan: &[FileInfo],
    output: &Path,
    progress: impl FnMut(usize, usize),
) -> Result<Restored, RestoreError> {
    let tmp = tmp_path(output);
    let spool = with_suffix(output, ".tmp-download");
    let r = write_tmp(client, plan, &tmp, &spool, progress).await;
    let _ = std::fs::remove_file(&spool);
    let restored = match r {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let ioerr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RestoreError::Io { path, source }
    };
    if let Err(detail) = integrity_check(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(RestoreError::Integrity {
            path: output.to_path_buf(),
            detail,
        });
    }
    std::fs::rename(&tmp, output).map_err(ioerr(output))?;
    if let Some(dir) = output.parent().and_then(|d| {
        std::fs::File::open(if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        })
        .ok()
    }) {
        let _ = dir.sync_all();
    }
    Ok(restored)
}

/// Apply the plan's files in order into `tmp` (see [`apply`]). An object that is not a local
/// file is decoded while it downloads (from its spool file as it grows), so a large
/// snapshot's download and its decoding overlap.
async fn write_tmp<C: ReplicaClient>(
    client: &C,
    plan: &[FileInfo],
    tmp: &Path,
    spool: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<Restored, RestoreError> {
    let out = std::fs::File::create(tmp).map_err(io_at(tmp))?;
    let mut applier = Applier {
        out,
        tmp: tmp.to_path_buf(),
        have: Vec::new(),
        page_size: 0,
        commit: 0,
        txid: 0,
        downloaded: 0,
    };
    for (i, f) in plan.iter().enumerate() {
        let object = client.object_name(f.level, f.min_txid, f.max_txid);
        applier = match client.local_path(f.level, f.min_txid, f.max_txid) {
            Some(path) => {
                let opened = std::fs::File::open(&path).and_then(|file| {
                    let len = file.metadata()?.len();
                    Ok((file, len))
                });
                let (file, len) = match opened {
                    Ok(x) => x,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(ClientError::NotFound { object }.into());
                    }
                    Err(e) => return Err(io_at(&path)(e)),
                };
                applied(applier, file, len, f.clone(), object, path).await?
            }
            None if client.download_is_one_pass() => {
                downloading(client, f, object, spool, applier).await?
            }
            None => {
                let n = client
                    .download(f.level, f.min_txid, f.max_txid, spool)
                    .await?;
                let file = std::fs::File::open(spool).map_err(io_at(spool))?;
                applied(applier, file, n, f.clone(), object, spool.to_path_buf()).await?
            }
        };
        progress(i + 1, plan.len());
    }
    applier.finish()
}

/// Download `f` to `spool` and decode it from there at the same time.
async fn downloading<C: ReplicaClient>(
    client: &C,
    f: &FileInfo,
    object: String,
    spool: &Path,
    applier: Applier,
) -> Result<Applier, RestoreError> {
    // Created before the download starts, so the decoder's handle is on the file the
    // download then fills (`File::create` truncates the same file).
    std::fs::File::create(spool).map_err(io_at(spool))?;
    let reader = std::fs::File::open(spool).map_err(io_at(spool))?;
    let written = Progress::default();
    let reader = GrowingFile::new(reader, f.size, written.clone());
    let decode = applied(
        applier,
        reader,
        f.size,
        f.clone(),
        object,
        spool.to_path_buf(),
    );
    let download = async {
        let r = client
            .download(f.level, f.min_txid, f.max_txid, spool)
            .await;
        match &r {
            Ok(_) => written.done(),
            Err(_) => written.failed(),
        }
        r
    };
    let (downloaded, decoded) = tokio::join!(download, decode);
    // A failed download explains a failed decoding; a wrong length makes any result suspect.
    let n = downloaded?;
    if n != f.size {
        return Err(RestoreError::Inconsistent {
            object: client.object_name(f.level, f.min_txid, f.max_txid),
            what: format!("listed as {} bytes, {n} were downloaded", f.size),
        });
    }
    decoded
}

/// [`Applier::apply`] on the blocking pool (decoding and writing a large object takes a
/// while); the applier comes back for the next file.
async fn applied(
    mut applier: Applier,
    r: impl std::io::Read + Send + 'static,
    len: u64,
    f: FileInfo,
    object: String,
    path: PathBuf,
) -> Result<Applier, RestoreError> {
    blocking(move || applier.apply(r, len, &f, &object, &path).map(|()| applier)).await
}

/// Run `work` on the blocking pool (decoding and writing a large object takes a while).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RestoreError> + Send + 'static,
) -> Result<T, RestoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RestoreError::Incomplete(format!("the decoding task failed: {e}")))?
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> RestoreError + use<> {
    let path = path.to_path_buf();
    move |source| RestoreError::Io { path, source }
}

/// The database being written: where each planned file's pages go.
struct Applier {
    out: std::fs::File,
    tmp: PathBuf,
    /// have[p]: page p was written by a file of the plan (and not cut off by a smaller commit).
    have: Vec<bool>,
    page_size: u32,
    commit: u32,
    txid: u64,
    downloaded: u64,
}

impl Applier {
    /// Verify one planned file (`len` bytes from `r`; `path` for errors) and write its pages.
    fn apply(
        &mut self,
        r: impl std::io::Read,
        len: u64,
        f: &FileInfo,
        object: &str,
        path: &Path,
    ) -> Result<(), RestoreError> {
        use std::io::Read;
        use std::os::unix::fs::FileExt;
        let mut r = r;
        let corrupt = |source| RestoreError::Corrupt {
            object: object.to_owned(),
            source,
        };
        let mut hb = Vec::with_capacity(ltx::HEADER_SIZE);
        (&mut r)
            .take(ltx::HEADER_SIZE as u64)
            .read_to_end(&mut hb)
            .map_err(io_at(path))?;
        let h = ltx::decode_header(&hb).map_err(corrupt)?;
        if h.min_txid != f.min_txid || h.max_txid != f.max_txid {
            return Err(RestoreError::Inconsistent {
                object: object.to_owned(),
                what: format!("header says TXIDs {:016x}-{:016x}", h.min_txid, h.max_txid),
            });
        }
        if self.page_size != 0 && h.page_size != self.page_size {
            return Err(RestoreError::Inconsistent {
                object: object.to_owned(),
                what: format!("page size {} differs from {}", h.page_size, self.page_size),
            });
        }
        self.downloaded += len;
        self.page_size = h.page_size;
        self.commit = h.commit;
        self.txid = h.max_txid;
        self.have.resize(self.commit as usize + 1, false);
        let ps = u64::from(self.page_size);
        let (out, have) = (&self.out, &mut self.have);
        let mut write_error = None;
        ltx::decode_stream(std::io::Cursor::new(&hb).chain(r), len, |pgno, data| {
            if let Err(e) = out.write_all_at(data, u64::from(pgno - 1) * ps) {
                let msg = e.to_string();
                write_error = Some(e);
                return Err(ltx::LtxError::Io(msg));
            }
            have[pgno as usize] = true;
            Ok(())
        })
        .map_err(|e| match write_error.take() {
            Some(source) => RestoreError::Io {
                path: self.tmp.clone(),
                source,
            },
            None => corrupt(e),
        })?;
        Ok(())
    }

    /// Every page present, cut to the final commit, on disk.
    fn finish(self) -> Result<Restored, RestoreError> {
        let lock = lock_page(self.page_size.max(512));
        let missing: Vec<u32> = (1..=self.commit)
            .filter(|&p| p != lock && !self.have[p as usize])
            .take(5)
            .collect();
        if !missing.is_empty() {
            return Err(RestoreError::Incomplete(format!(
                "pages {missing:?} missing (commit {}); the plan does not start with a snapshot",
                self.commit
            )));
        }
        // Pages above the final commit (a database that shrank) go; the lock page stays zeros.
        self.out
            .set_len(u64::from(self.commit) * u64::from(self.page_size))
            .map_err(io_at(&self.tmp))?;
        self.out.sync_all().map_err(io_at(&self.tmp))?;
        Ok(Restored {
            txid: self.txid,
            pages: self.commit,
            page_size: self.page_size,
            bytes_downloaded: self.downloaded,
        })
    }
}

fn with_suffix(output: &Path, suffix: &str) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn tmp_path(output: &Path) -> PathBuf {
    with_suffix(output, ".tmp")
}

/// `PRAGMA integrity_check` on a database image without leaving `-wal`/`-shm` files behind.
pub fn integrity_check(path: &Path) -> Result<(), String> {
    let uri = format!("file:{}?immutable=1", path.display());
    let conn = rusqlite::Connection::open_with_flags(
        uri,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| e.to_string())?;
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect())
        .map_err(|e| e.to_string())?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(())
    } else {
        Err(rows.join("; "))
    }
}

/// Plan and apply in one go; refuses an existing output.
pub async fn restore<C: ReplicaClient>(
    client: &C,
    output: &Path,
    target: Target,
) -> Result<Restored, RestoreError> {
    if output.exists() {
        return Err(RestoreError::Exists(output.to_path_buf()));
    }
    let plan = plan(client, target).await?;
    for f in &plan {
        log::info!(level = f.level, object = f.name().as_str(); "restore plan");
    }
    apply(client, &plan, output, |_, _| {}).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fi(level: u8, min: u64, max: u64, t: i64) -> FileInfo {
        FileInfo {
            level,
            min_txid: min,
            max_txid: max,
            size: 1,
            created_ms: t,
        }
    }

    fn levels(files: &[FileInfo]) -> Vec<Vec<FileInfo>> {
        let mut l = vec![Vec::new(); 10];
        for f in files {
            l[f.level as usize].push(f.clone());
        }
        l
    }

    fn names(p: &[FileInfo]) -> Vec<(u8, u64, u64)> {
        p.iter()
            .map(|f| (f.level, f.min_txid, f.max_txid))
            .collect()
    }

    fn run(files: &[FileInfo], t: Target) -> Result<Vec<(u8, u64, u64)>, RestoreError> {
        plan_from(&levels(files), t, |f| f.name()).map(|p| names(&p))
    }

    #[test]
    fn snapshot_only_and_incrementals() {
        let f = [
            fi(9, 1, 5, 5),
            fi(0, 6, 6, 6),
            fi(0, 7, 7, 7),
            fi(0, 1, 1, 1),
        ];
        assert_eq!(
            run(&f, Target::Latest).unwrap(),
            vec![(9, 1, 5), (0, 6, 6), (0, 7, 7)]
        );
        assert_eq!(
            run(&f, Target::Txid(6)).unwrap(),
            vec![(9, 1, 5), (0, 6, 6)]
        );
        assert_eq!(run(&f, Target::Txid(1)).unwrap(), vec![(0, 1, 1)]);
    }

    #[test]
    fn longest_range_across_levels_and_gap_filled_by_lower_level() {
        let f = [
            fi(0, 1, 1, 1),
            fi(0, 2, 2, 2),
            fi(0, 3, 3, 3),
            fi(1, 1, 2, 2),
            fi(2, 1, 3, 3),
            fi(0, 4, 4, 4),
        ];
        assert_eq!(run(&f, Target::Latest).unwrap(), vec![(2, 1, 3), (0, 4, 4)]);
        let f = [
            fi(1, 1, 10, 1),
            fi(1, 21, 30, 1),
            fi(0, 11, 11, 1),
            fi(0, 12, 20, 1),
        ];
        assert_eq!(
            run(&f, Target::Latest).unwrap(),
            vec![(1, 1, 10), (0, 11, 11), (0, 12, 20), (1, 21, 30)]
        );
    }

    #[test]
    fn ties_and_overlaps() {
        // Same max: lower min wins, then higher level.
        let f = [
            fi(0, 1, 1, 1),
            fi(1, 1, 4, 1),
            fi(2, 1, 4, 1),
            fi(3, 2, 4, 1),
        ];
        assert_eq!(run(&f, Target::Latest).unwrap(), vec![(2, 1, 4)]);
        // Snapshot followed by an overlapping compaction.
        let f = [fi(9, 1, 5, 1), fi(2, 1, 100, 2)];
        assert_eq!(
            run(&f, Target::Latest).unwrap(),
            vec![(9, 1, 5), (2, 1, 100)]
        );
    }

    #[test]
    fn errors() {
        assert!(matches!(
            run(&[], Target::Latest),
            Err(RestoreError::NotAvailable(_))
        ));
        let f = [fi(0, 1, 1, 1), fi(0, 3, 3, 3)];
        let e = run(&f, Target::Latest).unwrap_err();
        assert!(
            matches!(
                e,
                RestoreError::NonContiguous {
                    reached: 1,
                    min: 3,
                    ..
                }
            ),
            "{e}"
        );
        assert!(matches!(
            run(&f, Target::Txid(3)),
            Err(RestoreError::NotAvailable(_))
        ));
        // No snapshot and nothing starting at 1.
        assert!(matches!(
            run(&[fi(0, 2, 2, 1)], Target::Txid(2)),
            Err(RestoreError::NotAvailable(_))
        ));
    }

    #[test]
    fn timestamps_are_strictly_before() {
        let f = [
            fi(0, 1, 1, 1000),
            fi(0, 2, 2, 2000),
            fi(0, 3, 3, 3000),
            fi(1, 1, 3, 3000),
            fi(9, 1, 3, 4000),
        ];
        assert_eq!(
            run(&f, Target::Timestamp(2500)).unwrap(),
            vec![(0, 1, 1), (0, 2, 2)]
        );
        assert_eq!(run(&f, Target::Timestamp(4001)).unwrap(), vec![(9, 1, 3)]);
        assert!(matches!(
            run(&f, Target::Timestamp(1000)),
            Err(RestoreError::NotAvailable(_))
        ));
    }
}

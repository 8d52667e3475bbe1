//! The watched database: turns committed WAL frames into level-0 LTX files, and runs the
//! checkpoints (a long read transaction pins the WAL; only shipped frames are checkpointed).
//!
//! No tables are added to the database. WAL restarts are detected with the WAL header's
//! salts and checkpoint sequence; any restart this module cannot prove gap-free makes the next
//! file a full snapshot (an L0 file that contains every page), so TXIDs never have gaps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use crate::ltx::{Encoder, FLAG_NO_CHECKSUM, Header, LtxError, PageEncoding, lock_page};
use crate::wal::{self, WAL_HEADER_SIZE, WalHeader};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: String },
    #[error("{path}: building LTX: {source}")]
    Ltx { path: PathBuf, source: LtxError },
}

/// Where the last captured file ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub salt1: u32,
    pub salt2: u32,
    pub checkpoint_seq: u32,
    /// Next WAL byte offset to read (end of the last captured committed frame).
    pub offset: u64,
    /// Database size in pages after the last captured file.
    pub commit: u32,
}

/// One L0 file built from the WAL, not yet shipped.
#[derive(Clone, Debug)]
pub struct Pending {
    pub txid: u64,
    pub timestamp_ms: i64,
    pub data: Vec<u8>,
    pub pages: usize,
    pub snapshot: bool,
    pub position: Position,
}

pub struct Db {
    path: PathBuf,
    wal_path: PathBuf,
    conn: Connection,
    in_read_txn: bool,
    encoding: PageEncoding,
    /// Last TXID captured (shipped or pending).
    txid: u64,
    pos: Option<Position>,
    /// The position is a restored database file with no WAL (see [`Db::resume_restored`]),
    /// and our read transaction has been held since it was verified: every frame of the
    /// current WAL came after it. Cleared when the read transaction ends.
    restored_base: bool,
    /// Most WAL bytes one incremental file takes (whole transactions; `max-sync-wal-bytes`).
    max_sync_bytes: u64,
    /// The last [`Db::sync`] stopped at `max_sync_bytes`: more is committed after it.
    backlog: bool,
}

/// Closing the last connection to a WAL database would otherwise checkpoint and delete the
/// WAL: the recorded position would be lost and the next start would ship a full snapshot.
fn no_checkpoint_on_close(conn: &Connection, path: &Path) -> Result<(), DbError> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .map(|_| ())
    .map_err(sq(path))
}

/// `.<name>-barnabee-replicator.pos` next to the database `path`.
pub fn position_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}-barnabee-replicator.pos"))
}

fn write_position(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("pos.tmp");
    std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, path))
}

/// The LTX checksum of a database file (page size from its header).
fn file_checksum(image: &[u8]) -> Option<u64> {
    if image.len() < 100 {
        return None;
    }
    let page_size = match u16::from_be_bytes([image[16], image[17]]) {
        1 => 65536,
        p => u32::from(p),
    };
    if page_size < 512 || !image.len().is_multiple_of(page_size as usize) {
        return None;
    }
    Some(crate::ltx::database_checksum(image, page_size))
}

/// Record that the database file at `path` was just restored to `txid` (with `commit`
/// pages) and has no WAL, so the next [`Db::open`] continues from `txid` instead of shipping
/// a full snapshot. The file's checksum is recorded too: if anything checkpoints into the
/// database before replication starts, the position is not trusted.
pub fn record_restored(path: &Path, txid: u64, commit: u32) -> Result<(), DbError> {
    let image = std::fs::read(path).map_err(|source| DbError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let sum = file_checksum(&image).ok_or_else(|| DbError::Invalid {
        path: path.to_path_buf(),
        what: "not a database image".into(),
    })?;
    let text = format!("{txid} 0 0 0 {WAL_HEADER_SIZE} {commit} {sum}\n");
    let pos = position_path(path);
    write_position(&pos, &text).map_err(|source| DbError::Io { path: pos, source })
}

fn sq(path: &Path) -> impl Fn(rusqlite::Error) -> DbError + '_ {
    move |source| DbError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

impl Db {
    /// Open the database (must exist and be in WAL mode, or be switchable to it), starting
    /// after `last_txid` (the replica's position). The first sync writes a full snapshot.
    pub fn open(
        path: &Path,
        last_txid: u64,
        encoding: PageEncoding,
        busy_timeout: Duration,
    ) -> Result<Self, DbError> {
        if !path.exists() {
            return Err(DbError::Invalid {
                path: path.into(),
                what: "database does not exist".into(),
            });
        }
        let conn = Connection::open(path).map_err(sq(path))?;
        no_checkpoint_on_close(&conn, path)?;
        conn.busy_timeout(busy_timeout).map_err(sq(path))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(sq(path))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError::Invalid {
                path: path.into(),
                what: format!("journal_mode is {mode}, WAL is required"),
            });
        }
        conn.execute_batch("PRAGMA wal_autocheckpoint=0")
            .map_err(sq(path))?;
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        let mut db = Db {
            path: path.to_path_buf(),
            wal_path: PathBuf::from(wal_path),
            conn,
            in_read_txn: false,
            encoding,
            txid: last_txid,
            pos: None,
            restored_base: false,
            max_sync_bytes: u64::MAX,
            backlog: false,
        };
        db.begin_read()?;
        db.resume();
        Ok(db)
    }

    /// `.<name>-barnabee-replicator.pos` next to the database: where the last shipped file
    /// ended, so a restart continues incrementally instead of writing a full snapshot.
    fn state_path(&self) -> PathBuf {
        position_path(&self.path)
    }

    fn persist(&self) {
        let Some(p) = self.pos else { return };
        let text = format!(
            "{} {} {} {} {} {}\n",
            self.txid, p.salt1, p.salt2, p.checkpoint_seq, p.offset, p.commit
        );
        let path = self.state_path();
        if write_position(&path, &text).is_err() {
            log::warn!(path = path.display().to_string().as_str(); "cannot record the replication position");
        }
    }

    /// Continue from the recorded position if it matches the replica and the WAL still holds
    /// exactly the frames we shipped (same salts, valid checksum chain up to the offset).
    fn resume(&mut self) {
        let Ok(text) = std::fs::read_to_string(self.state_path()) else {
            return;
        };
        let v: Vec<u64> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        if let [txid, 0, 0, 0, WAL_HEADER_SIZE, commit, sum] = v[..] {
            return self.resume_restored(txid, commit, sum);
        }
        let [txid, salt1, salt2, seq, offset, commit] = v[..] else {
            return;
        };
        if txid != self.txid || txid == 0 {
            return;
        }
        let Ok(walb) = self.read_wal() else { return };
        let Ok(h) = WalHeader::decode(&walb) else {
            return;
        };
        if u64::from(h.salt1) != salt1
            || u64::from(h.salt2) != salt2
            || (offset as usize) > walb.len()
        {
            return;
        }
        match wal::read_committed(&walb[..offset as usize], WAL_HEADER_SIZE) {
            Ok((_, r)) if r.end == offset => {}
            _ => return,
        }
        self.pos = Some(Position {
            salt1: h.salt1,
            salt2: h.salt2,
            checkpoint_seq: seq as u32,
            offset,
            commit: commit as u32,
        });
        log::info!(txid = txid, offset = offset; "resuming from the recorded WAL position");
    }

    /// Continue after a restore ([`record_restored`]): the database file must still be the
    /// restored image (nothing checkpointed into it since); every frame of the current WAL
    /// came after it (see [`Db::sync`] for positions without WAL salts).
    fn resume_restored(&mut self, txid: u64, commit: u64, sum: u64) {
        if txid != self.txid || txid == 0 {
            return;
        }
        let Ok(image) = self.read_db_file() else {
            return;
        };
        if file_checksum(&image) != Some(sum) {
            log::info!(txid = txid; "database changed since the restore; not resuming");
            return;
        }
        // A WAL header with a checkpoint sequence other than 0 was restarted: some of its
        // frames may have been checkpointed (the checksum says not, but be strict).
        if let Ok(walb) = self.read_wal()
            && let Ok(h) = WalHeader::decode(&walb)
            && h.checkpoint_seq != 0
        {
            return;
        }
        self.pos = Some(Position {
            salt1: 0,
            salt2: 0,
            checkpoint_seq: 0,
            offset: WAL_HEADER_SIZE,
            commit: commit as u32,
        });
        self.restored_base = true;
        log::info!(txid = txid; "resuming after the restore");
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Split an incremental backlog into files of about this many WAL bytes (whole
    /// transactions each; a single larger transaction still makes one file).
    pub fn set_max_sync_wal_bytes(&mut self, n: u64) {
        self.max_sync_bytes = n.max(1);
    }

    /// The last capture stopped at the size limit: committed frames remain to be captured.
    pub fn backlog(&self) -> bool {
        self.backlog
    }

    pub fn txid(&self) -> u64 {
        self.txid
    }

    pub fn position(&self) -> Option<Position> {
        self.pos
    }

    /// Hold a read transaction so no other connection can restart the WAL under us.
    fn begin_read(&mut self) -> Result<(), DbError> {
        if !self.in_read_txn {
            self.conn
                .execute_batch("BEGIN; SELECT count(*) FROM sqlite_master;")
                .map_err(sq(&self.path))?;
            self.in_read_txn = true;
        }
        Ok(())
    }

    fn end_read(&mut self) -> Result<(), DbError> {
        self.restored_base = false;
        if self.in_read_txn {
            self.conn.execute_batch("COMMIT").map_err(sq(&self.path))?;
            self.in_read_txn = false;
        }
        Ok(())
    }

    /// Move the read transaction forward (lets other connections' checkpoints progress).
    pub fn refresh_read(&mut self) -> Result<(), DbError> {
        self.end_read()?;
        self.begin_read()
    }

    fn read_wal(&self) -> Result<Vec<u8>, DbError> {
        match std::fs::read(&self.wal_path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(DbError::Io {
                path: self.wal_path.clone(),
                source,
            }),
        }
    }

    /// WAL file size and mtime: a cheap "anything new?" probe.
    pub fn wal_stamp(&self) -> Option<(u64, std::time::SystemTime)> {
        let md = std::fs::metadata(&self.wal_path).ok()?;
        Some((md.len(), md.modified().ok()?))
    }

    fn read_db_file(&self) -> Result<Vec<u8>, DbError> {
        std::fs::read(&self.path).map_err(|source| DbError::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn page_size_of(&self, db: &[u8], wal: Option<&WalHeader>) -> Result<u32, DbError> {
        if let Some(w) = wal {
            return Ok(w.page_size);
        }
        if db.len() < 100 {
            return Err(DbError::Invalid {
                path: self.path.clone(),
                what: "database file is empty".into(),
            });
        }
        Ok(match u16::from_be_bytes([db[16], db[17]]) {
            1 => 65536,
            p => u32::from(p),
        })
    }

    /// Build the next L0 file from committed WAL frames, or `None` when nothing is new.
    /// The position only advances when [`Db::mark_shipped`] is called with the result.
    pub fn sync(&mut self) -> Result<Option<Pending>, DbError> {
        self.backlog = false;
        let walb = self.read_wal()?;
        let hdr = if walb.len() >= WAL_HEADER_SIZE as usize {
            WalHeader::decode(&walb).ok()
        } else {
            None
        };
        let Some(pos) = self.pos else {
            return self.snapshot(&walb, hdr);
        };
        let Some(h) = hdr else {
            // No WAL (or an empty one): nothing new unless the WAL vanished under us.
            if pos.offset > WAL_HEADER_SIZE {
                log::warn!(db = self.path.display().to_string().as_str(); "WAL disappeared; taking a snapshot");
                return self.snapshot(&walb, hdr);
            }
            return Ok(None);
        };
        let start = if h.salt1 == pos.salt1 && h.salt2 == pos.salt2 {
            pos.offset
        } else if self.restored_base && pos.salt1 == 0 && pos.salt2 == 0 {
            // The restored database file with no WAL, verified after our read transaction
            // began: nobody could restart the WAL since, so all its frames follow the restore.
            WAL_HEADER_SIZE
        } else {
            log::warn!(db = self.path.display().to_string().as_str(); "WAL restarted by another connection; taking a snapshot");
            return self.snapshot(&walb, hdr);
        };
        let (_, r) = match wal::read_committed_limited(&walb, start, self.max_sync_bytes) {
            Ok(x) => x,
            Err(e) => {
                log::warn!(db = self.path.display().to_string().as_str(), error = e.to_string().as_str(); "lost WAL position; taking a snapshot");
                return self.snapshot(&walb, hdr);
            }
        };
        let Some(commit) = r.commit else {
            return Ok(None);
        };
        self.backlog = r.limited;
        let mut pages = r.pages;
        let lock = lock_page(h.page_size);
        if commit > pos.commit {
            // Growth pages not in these frames: newest earlier WAL version, else the db file.
            let missing: Vec<u32> = (pos.commit + 1..=commit)
                .filter(|p| *p != lock && !pages.contains_key(p))
                .collect();
            if !missing.is_empty() {
                let earlier = wal::read_committed(&walb[..start as usize], WAL_HEADER_SIZE)
                    .map(|(_, r)| r.pages)
                    .unwrap_or_default();
                let dbf = self.read_db_file()?;
                for p in missing {
                    let data = match earlier.get(&p) {
                        Some(d) => d.clone(),
                        None => db_page(&dbf, p, h.page_size),
                    };
                    pages.insert(p, data);
                }
            }
        }
        pages.remove(&lock);
        let position = Position {
            salt1: h.salt1,
            salt2: h.salt2,
            checkpoint_seq: h.checkpoint_seq,
            offset: r.end,
            commit,
        };
        self.build(
            pages,
            h.page_size,
            commit,
            start as i64,
            (r.end - start) as i64,
            (h.salt1, h.salt2),
            false,
            position,
        )
        .map(Some)
    }

    fn snapshot(
        &mut self,
        walb: &[u8],
        hdr: Option<WalHeader>,
    ) -> Result<Option<Pending>, DbError> {
        let dbf = self.read_db_file()?;
        let page_size = self.page_size_of(&dbf, hdr.as_ref())?;
        let (mut pages, commit, wal_fields, position) = match hdr {
            Some(h) => {
                let (_, r) =
                    wal::read_committed(walb, WAL_HEADER_SIZE).map_err(|e| DbError::Invalid {
                        path: self.wal_path.clone(),
                        what: e.to_string(),
                    })?;
                let commit = r.commit.unwrap_or((dbf.len() / page_size as usize) as u32);
                let fields = if r.end > WAL_HEADER_SIZE {
                    (
                        WAL_HEADER_SIZE as i64,
                        (r.end - WAL_HEADER_SIZE) as i64,
                        (h.salt1, h.salt2),
                    )
                } else {
                    (0, 0, (0, 0))
                };
                let pos = Position {
                    salt1: h.salt1,
                    salt2: h.salt2,
                    checkpoint_seq: h.checkpoint_seq,
                    offset: r.end,
                    commit,
                };
                (r.pages, commit, fields, pos)
            }
            None => {
                let commit = (dbf.len() / page_size as usize) as u32;
                let pos = Position {
                    salt1: 0,
                    salt2: 0,
                    checkpoint_seq: 0,
                    offset: WAL_HEADER_SIZE,
                    commit,
                };
                (BTreeMap::new(), commit, (0, 0, (0, 0)), pos)
            }
        };
        if commit == 0 {
            return Ok(None);
        }
        let lock = lock_page(page_size);
        for p in 1..=commit {
            if p != lock && !pages.contains_key(&p) {
                pages.insert(p, db_page(&dbf, p, page_size));
            }
        }
        pages.retain(|&p, _| p <= commit && p != lock);
        self.build(
            pages,
            page_size,
            commit,
            wal_fields.0,
            wal_fields.1,
            wal_fields.2,
            true,
            position,
        )
        .map(Some)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        pages: BTreeMap<u32, Vec<u8>>,
        page_size: u32,
        commit: u32,
        wal_offset: i64,
        wal_size: i64,
        salts: (u32, u32),
        snapshot: bool,
        position: Position,
    ) -> Result<Pending, DbError> {
        let txid = self.txid + 1;
        let timestamp_ms = crate::time::now_ms();
        let header = Header {
            flags: FLAG_NO_CHECKSUM,
            page_size,
            commit,
            min_txid: txid,
            max_txid: txid,
            timestamp: timestamp_ms,
            pre_apply_checksum: 0,
            wal_offset,
            wal_size,
            wal_salt1: salts.0,
            wal_salt2: salts.1,
            node_id: 0,
        };
        let lerr = |source| DbError::Ltx {
            path: self.path.clone(),
            source,
        };
        // A snapshot with TXID > 1 is not a "snapshot" in LTX terms (min != 1) but carries every page.
        let mut enc = Encoder::new(header, self.encoding).map_err(lerr)?;
        let n = pages.len();
        for (p, d) in &pages {
            enc.add_page(*p, d).map_err(lerr)?;
        }
        let data = enc.finish(0).map_err(lerr)?;
        Ok(Pending {
            txid,
            timestamp_ms,
            data,
            pages: n,
            snapshot,
            position,
        })
    }

    /// Record that `p` reached the replica.
    pub fn mark_shipped(&mut self, p: &Pending) {
        self.restored_base = false;
        self.txid = p.txid;
        self.pos = Some(p.position);
        self.persist();
    }

    /// Number of valid frames of the current WAL generation that we have read (a checkpoint
    /// trigger). The WAL file keeps its size after a restart, so its length says nothing.
    pub fn wal_frames(&self) -> u64 {
        use std::io::Read;
        let Some(pos) = self.pos else { return 0 };
        let Ok(mut f) = std::fs::File::open(&self.wal_path) else {
            return 0;
        };
        let mut b = [0u8; WAL_HEADER_SIZE as usize];
        if f.read_exact(&mut b).is_err() {
            return 0;
        }
        let Ok(h) = WalHeader::decode(&b) else {
            return 0;
        };
        if h.salt1 != pos.salt1 || h.salt2 != pos.salt2 {
            return 0;
        }
        pos.offset.saturating_sub(WAL_HEADER_SIZE) / h.frame_size()
    }

    /// Checkpoint frames already shipped, then restart the WAL under our own write lock so
    /// the restart is known to be gap-free. `ship` is called (under the write lock) with any
    /// file captured since the last sync and must upload it; if it fails, nothing is
    /// checkpointed. Returns true when the WAL was restarted.
    pub fn checkpoint(
        &mut self,
        mut ship: impl FnMut(&Pending) -> Result<(), String>,
    ) -> Result<bool, DbError> {
        let Some(pos) = self.pos else {
            return Ok(false);
        };
        let path = self.path.clone();
        // 1. Checkpoint PASSIVE without our read transaction.
        self.end_read()?;
        let ck: rusqlite::Result<(i64, i64, i64)> =
            self.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                });
        let result = (|| {
            let (_busy, log, done) = ck.map_err(sq(&path))?;
            if log <= 0 || log != done {
                return Ok(false); // not fully backfilled (a reader pins frames): no restart
            }
            // 2. Take the write lock with a second connection; nobody can append now.
            let w = Connection::open(&path).map_err(sq(&path))?;
            no_checkpoint_on_close(&w, &path)?;
            w.busy_timeout(Duration::from_secs(1)).map_err(sq(&path))?;
            w.execute_batch("PRAGMA wal_autocheckpoint=0; BEGIN IMMEDIATE")
                .map_err(sq(&path))?;
            // 3. Capture and ship anything committed since our last sync (all of it: the
            //    restart below drops whatever stays unshipped).
            let limit = std::mem::replace(&mut self.max_sync_bytes, u64::MAX);
            let captured = self.sync();
            self.max_sync_bytes = limit;
            match captured {
                Ok(Some(p)) => {
                    if let Err(e) = ship(&p) {
                        let _ = w.execute_batch("ROLLBACK");
                        log::warn!(error = e.as_str(); "checkpoint: shipping the last frames failed; not restarting the WAL");
                        return Ok(false);
                    }
                    self.mark_shipped(&p);
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = w.execute_batch("ROLLBACK");
                    return Err(e);
                }
            }
            let Some(before) = self.pos else {
                let _ = w.execute_batch("ROLLBACK");
                return Ok(false);
            };
            if before.salt1 != pos.salt1 || before.salt2 != pos.salt2 {
                // sync() above already handled a restart by a snapshot.
                let _ = w.execute_batch("ROLLBACK");
                return Ok(false);
            }
            // 4. Rewrite the user_version cookie unchanged: the commit restarts the WAL
            //    (it is fully backfilled) while we hold the only write lock.
            let v: i64 = w
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(sq(&path))?;
            w.execute_batch(&format!("PRAGMA user_version = {v}; COMMIT"))
                .map_err(sq(&path))?;
            drop(w);
            let walb = self.read_wal()?;
            let h = WalHeader::decode(&walb).ok();
            match h {
                Some(h) if h.salt1 == before.salt1 && h.salt2 == before.salt2 => Ok(false),
                Some(h) if h.checkpoint_seq == before.checkpoint_seq.wrapping_add(1) => {
                    // Exactly one restart, ours: continue from the new WAL's first frame.
                    self.pos = Some(Position {
                        salt1: h.salt1,
                        salt2: h.salt2,
                        checkpoint_seq: h.checkpoint_seq,
                        offset: WAL_HEADER_SIZE,
                        commit: before.commit,
                    });
                    self.persist();
                    Ok(true)
                }
                _ => {
                    // Someone else restarted too: the next sync takes a snapshot.
                    Ok(true)
                }
            }
        })();
        self.begin_read()?;
        result
    }
}

fn db_page(dbf: &[u8], pgno: u32, page_size: u32) -> Vec<u8> {
    let ps = page_size as usize;
    let start = (pgno as usize - 1) * ps;
    let mut v = vec![0u8; ps];
    if start < dbf.len() {
        let end = (start + ps).min(dbf.len());
        v[..end - start].copy_from_slice(&dbf[start..end]);
    }
    v
}

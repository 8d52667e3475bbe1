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
    pub data: crate::payload::Payload,
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
        let Ok(Some(header)) = self.read_wal_header() else {
            return;
        };
        let Ok(h) = WalHeader::decode(&header) else {
            return;
        };
        if u64::from(h.salt1) != salt1 || u64::from(h.salt2) != salt2 {
            return;
        }
        // The recorded position must be a commit boundary of this WAL's committed frames.
        match self.read_wal_committed(&header, WAL_HEADER_SIZE, Some(offset), u64::MAX) {
            Ok(Ok((_, r))) if r.end == offset => {}
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
        if let Ok(Some(header)) = self.read_wal_header()
            && let Ok(h) = WalHeader::decode(&header)
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

    /// The WAL's 32-byte header, if the WAL has one.
    fn read_wal_header(&self) -> Result<Option<Vec<u8>>, DbError> {
        use std::io::Read;
        let ioerr = |source| DbError::Io {
            path: self.wal_path.clone(),
            source,
        };
        let mut f = match std::fs::File::open(&self.wal_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ioerr(e)),
        };
        let mut b = vec![0u8; WAL_HEADER_SIZE as usize];
        match f.read_exact(&mut b) {
            Ok(()) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(ioerr(e)),
        }
    }

    /// The committed frames of the WAL from `start` (a frame boundary) up to `to` (or the
    /// end), parsed as they are read ([`wal::read_committed_stream`]): the memory this takes
    /// is the pages touched, not the WAL bytes crossed, however large the WAL grew (a backlog
    /// after an S3 outage). Reading stops at the first frame of another generation (other
    /// salts: what a restart left behind), which no reader goes past. The outer error is I/O,
    /// the inner one the WAL's (a position that no longer fits it).
    #[allow(clippy::type_complexity)]
    fn read_wal_committed(
        &self,
        header: &[u8],
        start: u64,
        to: Option<u64>,
        max_bytes: u64,
    ) -> Result<Result<(WalHeader, wal::WalRead), wal::WalError>, DbError> {
        use std::io::{Read, Seek, SeekFrom};
        let ioerr = |source| DbError::Io {
            path: self.wal_path.clone(),
            source,
        };
        let h = match WalHeader::decode(header) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        let from = wal::read_from(start, h.frame_size());
        let reader: Box<dyn Read> = match std::fs::File::open(&self.wal_path) {
            Ok(mut f) => {
                f.seek(SeekFrom::Start(from)).map_err(ioerr)?;
                let f = std::io::BufReader::with_capacity(256 << 10, f);
                match to {
                    Some(t) => Box::new(f.take(t.saturating_sub(from))),
                    None => Box::new(f),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Box::new(std::io::empty()),
            Err(e) => return Err(ioerr(e)),
        };
        Ok(wal::read_committed_stream(
            header, reader, from, start, max_bytes,
        ))
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
        let hb = self.read_wal_header()?;
        let hdr = hb.as_deref().and_then(|b| WalHeader::decode(b).ok());
        let Some(pos) = self.pos else {
            return self.snapshot_now(hdr);
        };
        let Some(h) = hdr else {
            // No WAL (or an empty one): nothing new unless the WAL vanished under us.
            if pos.offset > WAL_HEADER_SIZE {
                log::warn!(db = self.path.display().to_string().as_str(); "WAL disappeared; taking a snapshot");
                return self.snapshot_now(hdr);
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
            return self.snapshot_now(hdr);
        };
        // Only what follows the position (and the frame before it, for the checksum chain).
        let header = hb.unwrap_or_default();
        let (_, r) = match self.read_wal_committed(&header, start, None, self.max_sync_bytes)? {
            Ok(x) => x,
            Err(e) => {
                log::warn!(db = self.path.display().to_string().as_str(), error = e.to_string().as_str(); "lost WAL position; taking a snapshot");
                return self.snapshot_now(hdr);
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
                let earlier = self
                    .read_wal_committed(&header, WAL_HEADER_SIZE, Some(start), u64::MAX)?
                    .map(|(_, r)| r.pages)
                    .unwrap_or_default();
                let dbf = DbFile::open(&self.path)?;
                for p in missing {
                    let data = match earlier.get(&p) {
                        Some(d) => d.clone(),
                        None => {
                            let mut d = vec![0u8; h.page_size as usize];
                            dbf.page(p, h.page_size, &mut d)?;
                            d
                        }
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
            None,
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

    /// A full snapshot from the current WAL generation and the database file (the WAL
    /// header is read again, so that it and the frames read belong together).
    fn snapshot_now(&mut self, _seen: Option<WalHeader>) -> Result<Option<Pending>, DbError> {
        let hb = self.read_wal_header()?;
        let hdr = hb.as_deref().and_then(|b| WalHeader::decode(b).ok());
        let wal = match (&hdr, hb) {
            (Some(_), Some(b)) => Some(
                self.read_wal_committed(&b, WAL_HEADER_SIZE, None, u64::MAX)?
                    .map_err(|e| DbError::Invalid {
                        path: self.wal_path.clone(),
                        what: e.to_string(),
                    })?
                    .1,
            ),
            _ => None,
        };
        self.snapshot(wal, hdr)
    }

    /// `wal`: the current generation's committed frames (read with `hdr`).
    fn snapshot(
        &mut self,
        wal: Option<wal::WalRead>,
        hdr: Option<WalHeader>,
    ) -> Result<Option<Pending>, DbError> {
        // The database file is read page by page while encoding: memory holds the WAL's
        // pages and the compressed file, not a copy of the database.
        let dbf = DbFile::open(&self.path)?;
        let page_size = match hdr.as_ref() {
            Some(h) => h.page_size,
            None => self.page_size_of(&dbf.head()?, None)?,
        };
        let file_pages = (dbf.len / u64::from(page_size)) as u32;
        let (pages, commit, wal_fields, position) = match (hdr, wal) {
            (Some(h), Some(r)) => {
                let commit = r.commit.unwrap_or(file_pages);
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
            _ => {
                let pos = Position {
                    salt1: 0,
                    salt2: 0,
                    checkpoint_seq: 0,
                    offset: WAL_HEADER_SIZE,
                    commit: file_pages,
                };
                (BTreeMap::new(), file_pages, (0, 0, (0, 0)), pos)
            }
        };
        if commit == 0 {
            return Ok(None);
        }
        self.build(
            pages,
            Some(&dbf),
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
    /// Encode the L0 file: `pages`, or with `base` every page 1..=commit (the lock page
    /// excepted), from `pages` where present and otherwise read from the database file.
    fn build(
        &self,
        pages: BTreeMap<u32, Vec<u8>>,
        base: Option<&DbFile>,
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
        let mut enc = Encoder::new(header, self.encoding)
            .map_err(lerr)?
            .spill_above(crate::payload::SPILL_ABOVE);
        let mut n = 0;
        match base {
            None => {
                for (p, d) in &pages {
                    enc.add_page(*p, d).map_err(lerr)?;
                    n += 1;
                }
            }
            Some(f) => {
                let lock = lock_page(page_size);
                // Room for every page uncompressed (plus frame overhead): pages are written
                // in place, never copied to a larger buffer.
                enc.reserve(commit as usize * (page_size as usize + 32));
                let mut buf = vec![0u8; page_size as usize];
                for p in (1..=commit).filter(|p| *p != lock) {
                    let d = match pages.get(&p) {
                        Some(d) => d.as_slice(),
                        None => {
                            f.page(p, page_size, &mut buf)?;
                            buf.as_slice()
                        }
                    };
                    enc.add_page(p, d).map_err(lerr)?;
                    n += 1;
                }
            }
        }
        let data = enc.finish_payload(0).map_err(lerr)?;
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

    /// Capture everything committed (no size limit: a WAL restart drops what stays
    /// unshipped) and hand it to `ship`. Ok(false) when the upload failed.
    fn ship_all(
        &mut self,
        ship: &mut impl FnMut(&Pending) -> Result<(), String>,
    ) -> Result<bool, DbError> {
        let limit = std::mem::replace(&mut self.max_sync_bytes, u64::MAX);
        let captured = self.sync();
        self.max_sync_bytes = limit;
        if let Some(p) = captured? {
            if let Err(e) = ship(&p) {
                log::warn!(error = e.as_str(); "checkpoint: shipping the last frames failed; not restarting the WAL");
                return Ok(false);
            }
            self.mark_shipped(&p);
        }
        Ok(true)
    }

    /// Checkpoint frames already shipped, then restart the WAL under our own write lock so
    /// the restart is known to be gap-free. `ship` is called (under the write lock) with any
    /// file captured since the last sync and must upload it; if it fails, nothing is
    /// checkpointed. Returns true when the WAL was restarted.
    ///
    /// Order matters. A WAL restart is done by the first writer after a checkpoint that
    /// backfilled every frame, unless a reader still reads from the WAL. So the write lock
    /// comes first (nobody appends), then everything committed is shipped, then our read
    /// transaction is moved to the WAL's end (it pins nothing, and as a WAL reader it keeps
    /// every other writer from restarting the WAL), then PASSIVE runs on a third connection.
    /// Only then is our read transaction released, under our write lock, and our commit
    /// restarts the WAL. Checkpointing before taking the write lock let the application's
    /// next commit restart the WAL in between, unseen, and every such restart cost a full
    /// snapshot at level 0 (under a steady write load: most checkpoints).
    pub fn checkpoint(
        &mut self,
        mut ship: impl FnMut(&Pending) -> Result<(), String>,
    ) -> Result<bool, DbError> {
        let Some(pos) = self.pos else {
            return Ok(false);
        };
        let path = self.path.clone();
        let result = (|| {
            // 1. The write lock, on a second connection: nobody can append now.
            let mut w = Connection::open(&path).map_err(sq(&path))?;
            no_checkpoint_on_close(&w, &path)?;
            // Poll for the lock every 200 us (SQLite's busy timeout polls at up to 100 ms
            // and so almost never finds a busy writer between two commits), for ~0.3 s; if
            // the writers never pause that long, the checkpoint waits for the next interval.
            w.busy_handler(Some(poll_write_lock)).map_err(sq(&path))?;
            w.execute_batch("PRAGMA wal_autocheckpoint=0; BEGIN IMMEDIATE")
                .map_err(sq(&path))?;
            // 2. Ship anything committed since our last sync.
            if !self.ship_all(&mut ship)? {
                return Ok(false);
            }
            let Some(before) = self.pos else {
                return Ok(false);
            };
            if before.salt1 != pos.salt1 || before.salt2 != pos.salt2 || before.salt1 == 0 {
                // sync() above already handled a restart by a snapshot (or there is no WAL).
                return Ok(false);
            }
            // 3. Our read transaction moves to the WAL's end (nothing can be appended now).
            self.refresh_read()?;
            // 4. PASSIVE on a third connection (a connection in a transaction cannot).
            let c = Connection::open(&path).map_err(sq(&path))?;
            no_checkpoint_on_close(&c, &path)?;
            let (_busy, log, done): (i64, i64, i64) = c
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(sq(&path))?;
            drop(c);
            if log <= 0 || log != done {
                return Ok(false); // not fully backfilled (a reader pins frames): no restart
            }
            // 5. A write transaction begun after the full backfill reads the database file
            //    only, and only such a writer restarts the WAL: begin ours again. A writer
            //    slipping in between cannot restart the WAL (we read from it); it appends,
            //    and then our commit below appends too (seen below: no restart).
            w.execute_batch("ROLLBACK; BEGIN IMMEDIATE")
                .map_err(sq(&path))?;
            if !self.ship_all(&mut ship)? {
                return Ok(false);
            }
            let Some(before) = self.pos else {
                return Ok(false);
            };
            if before.salt1 != pos.salt1 || before.salt2 != pos.salt2 {
                return Ok(false);
            }
            // 6. Release our read lock and rewrite the user_version cookie unchanged: the
            //    commit restarts the WAL while we hold the only write lock.
            self.end_read()?;
            let v: i64 = w
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(sq(&path))?;
            w.execute_batch(&format!("PRAGMA user_version = {v}; COMMIT"))
                .map_err(sq(&path))?;
            drop(w);
            let h = self
                .read_wal_header()?
                .and_then(|b| WalHeader::decode(&b).ok());
            match h {
                Some(h) if h.salt1 == before.salt1 && h.salt2 == before.salt2 => Ok(false),
                Some(h) if h.salt1 == before.salt1.wrapping_add(1) => {
                    // Exactly one restart (each adds 1 to salt-1), ours: nobody else could
                    // write since step 5. Continue from the new WAL's first frame. (Not the
                    // header's checkpoint sequence: SQLite writes there the restarting
                    // connection's own count of restarts, 1 for our fresh connection every
                    // time, so it said "someone else restarted" from the second checkpoint
                    // on, and every later checkpoint cost a full snapshot at level 0.)
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

/// Busy handler of the checkpoint's write transaction (see [`Db::checkpoint`]).
fn poll_write_lock(attempts: i32) -> bool {
    if attempts >= 1500 {
        return false;
    }
    std::thread::sleep(Duration::from_micros(200));
    true
}

/// The database file, read a page at a time.
struct DbFile {
    path: PathBuf,
    file: std::fs::File,
    len: u64,
}

impl DbFile {
    fn open(path: &Path) -> Result<Self, DbError> {
        let ioerr = |source| DbError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(ioerr)?;
        let len = file.metadata().map_err(ioerr)?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            len,
        })
    }

    /// The first 100 bytes (the SQLite header), fewer for a shorter file.
    fn head(&self) -> Result<Vec<u8>, DbError> {
        let mut b = vec![0u8; 100.min(self.len as usize)];
        self.read_at(0, &mut b)?;
        Ok(b)
    }

    /// Page `pgno` into `buf` (zeros past the end of the file).
    fn page(&self, pgno: u32, page_size: u32, buf: &mut [u8]) -> Result<(), DbError> {
        let start = u64::from(pgno - 1) * u64::from(page_size);
        buf.fill(0);
        if start < self.len {
            let n = (self.len - start).min(buf.len() as u64) as usize;
            self.read_at(start, &mut buf[..n])?;
        }
        Ok(())
    }

    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<(), DbError> {
        use std::os::unix::fs::FileExt;
        self.file
            .read_exact_at(buf, off)
            .map_err(|source| DbError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(path: &Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS kv(k INTEGER PRIMARY KEY, v TEXT);",
        )
        .unwrap();
        c
    }

    /// Every checkpoint restarts the WAL and the next file continues incrementally: no full
    /// snapshot after the first file, however many checkpoints (the WAL header's checkpoint
    /// sequence is the restarting connection's own count, 1 every time for ours).
    #[test]
    fn consecutive_checkpoints_never_cost_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let a = app(&path);
        let mut db = Db::open(&path, 0, PageEncoding::Frame, Duration::from_secs(1)).unwrap();
        let first = db.sync().unwrap().unwrap();
        assert!(first.snapshot);
        db.mark_shipped(&first);
        let mut restarts = 0;
        for round in 0..6 {
            for i in 0..50 {
                a.execute(
                    "INSERT INTO kv(k, v) VALUES (?1, ?2)",
                    rusqlite::params![round * 1000 + i, "x".repeat(300)],
                )
                .unwrap();
            }
            let p = db.sync().unwrap().unwrap();
            assert!(
                !p.snapshot,
                "round {round}: a full snapshot after a checkpoint"
            );
            assert!(p.pages < 40, "round {round}: {} pages for 50 rows", p.pages);
            db.mark_shipped(&p);
            // A commit after the sync: the checkpoint ships it under its write lock.
            a.execute(
                "INSERT INTO kv(k, v) VALUES (?1, 'late')",
                [round * 1000 + 999],
            )
            .unwrap();
            let mut shipped = Vec::new();
            if db
                .checkpoint(|p| {
                    shipped.push((p.txid, p.snapshot));
                    Ok(())
                })
                .unwrap()
            {
                restarts += 1;
            }
            assert_eq!(
                shipped.len(),
                1,
                "round {round}: the late commit ships once"
            );
            assert!(!shipped[0].1, "round {round}: shipped as a snapshot");
            assert_eq!(
                db.position().unwrap().offset,
                WAL_HEADER_SIZE,
                "round {round}"
            );
        }
        assert_eq!(restarts, 6);
        a.execute("INSERT INTO kv(k, v) VALUES (-1, 'after')", [])
            .unwrap();
        let p = db.sync().unwrap().unwrap();
        assert!(!p.snapshot);
        assert_eq!(p.txid, 1 + 6 * 2 + 1);
    }

    /// A sync reads what follows its position and stops at the frames a restart left behind.
    #[test]
    fn wal_span_stops_at_stale_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let a = app(&path);
        let mut db = Db::open(&path, 0, PageEncoding::Frame, Duration::from_secs(1)).unwrap();
        for i in 0..400 {
            a.execute(
                "INSERT INTO kv(k, v) VALUES (?1, ?2)",
                rusqlite::params![i, "y".repeat(500)],
            )
            .unwrap();
        }
        let p = db.sync().unwrap().unwrap();
        db.mark_shipped(&p);
        assert!(db.checkpoint(|_| Ok(())).unwrap());
        // The WAL file keeps its size; the new generation holds one or two frames.
        let len = std::fs::metadata(&db.wal_path).unwrap().len();
        assert!(len > 100 * 4096, "{len}");
        let header = db.read_wal_header().unwrap().unwrap();
        let h = WalHeader::decode(&header).unwrap();
        let (_, r) = db
            .read_wal_committed(&header, WAL_HEADER_SIZE, None, u64::MAX)
            .unwrap()
            .unwrap();
        assert!(
            r.frames <= 2 && r.end <= WAL_HEADER_SIZE + 2 * h.frame_size(),
            "read {} frames up to offset {} of {len} bytes: past the new generation",
            r.frames,
            r.end
        );
        a.execute("INSERT INTO kv(k, v) VALUES (-1, 'z')", [])
            .unwrap();
        let p = db.sync().unwrap().unwrap();
        assert!(!p.snapshot && p.pages <= 3, "{} pages", p.pages);
    }
}

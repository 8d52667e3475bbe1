//! SQLite WAL reader: committed transactions only, salts and cumulative checksums verified.

use std::collections::BTreeMap;

pub const WAL_HEADER_SIZE: u64 = 32;
pub const FRAME_HEADER_SIZE: u64 = 24;
const MAGIC_LE: u32 = 0x377f_0682;
const MAGIC_BE: u32 = 0x377f_0683;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WalError {
    #[error("WAL header: {0}")]
    Header(String),
    #[error("WAL offset {offset}: {what}")]
    Offset { offset: u64, what: String },
}

/// The 32-byte WAL header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalHeader {
    pub big_endian: bool,
    pub page_size: u32,
    pub checkpoint_seq: u32,
    pub salt1: u32,
    pub salt2: u32,
    pub checksum: (u32, u32),
}

impl WalHeader {
    pub fn frame_size(&self) -> u64 {
        FRAME_HEADER_SIZE + u64::from(self.page_size)
    }

    pub fn decode(b: &[u8]) -> Result<Self, WalError> {
        if b.len() < WAL_HEADER_SIZE as usize {
            return Err(WalError::Header(format!("{} bytes, need 32", b.len())));
        }
        let magic = be32(b, 0);
        let big_endian = match magic {
            MAGIC_BE => true,
            MAGIC_LE => false,
            m => return Err(WalError::Header(format!("bad magic {m:#010x}"))),
        };
        let version = be32(b, 4);
        if version != 3_007_000 {
            return Err(WalError::Header(format!("unsupported version {version}")));
        }
        let page_size = match be32(b, 8) {
            1 => 65536,
            p => p,
        };
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(WalError::Header(format!("invalid page size {page_size}")));
        }
        let computed = checksum(big_endian, (0, 0), &b[..24]);
        let stored = (be32(b, 24), be32(b, 28));
        if computed != stored {
            return Err(WalError::Header("header checksum mismatch".into()));
        }
        Ok(WalHeader {
            big_endian,
            page_size,
            checkpoint_seq: be32(b, 12),
            salt1: be32(b, 16),
            salt2: be32(b, 20),
            checksum: stored,
        })
    }
}

/// What one read found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalRead {
    /// Newest committed version of each page (pages above `commit` dropped).
    pub pages: BTreeMap<u32, Vec<u8>>,
    /// Database size in pages after the last committed transaction; `None` if none was found.
    pub commit: Option<u32>,
    /// Byte offset just after the last committed frame (== start when nothing committed).
    pub end: u64,
    /// Number of committed frames read.
    pub frames: u64,
    /// The read stopped at `max_bytes` ([`read_committed_limited`]); more committed frames
    /// may follow `end`.
    pub limited: bool,
}

/// Read the committed transactions of `wal` starting at byte `start` (32 or a frame boundary
/// after a previously read committed frame). Stops silently at the first torn, salt-mismatched
/// or checksum-mismatched frame (what SQLite itself would ignore); errors only for a bad header
/// or a start offset that is not a valid frame boundary.
pub fn read_committed(wal: &[u8], start: u64) -> Result<(WalHeader, WalRead), WalError> {
    read_committed_limited(wal, start, u64::MAX)
}

/// [`read_committed`], stopping at the first commit boundary at least `max_bytes` after
/// `start` (Litestream's `max-sync-wal-bytes`: a large backlog ships as several files, each a
/// whole number of transactions).
pub fn read_committed_limited(
    wal: &[u8],
    start: u64,
    max_bytes: u64,
) -> Result<(WalHeader, WalRead), WalError> {
    let header = &wal[..wal.len().min(WAL_HEADER_SIZE as usize)];
    read_committed_at(header, wal, 0, start, max_bytes)
}

/// Where a WAL read has to begin so that a read from `start` can seed its checksum: the
/// previous frame (its stored checksum), or the first frame.
pub fn read_from(start: u64, frame_size: u64) -> u64 {
    if start > WAL_HEADER_SIZE {
        start.saturating_sub(frame_size)
    } else {
        WAL_HEADER_SIZE
    }
}

/// [`read_committed_limited`] on part of the WAL: `header` is its first 32 bytes and `buf`
/// holds the WAL's bytes from offset `buf_off` on ([`read_from`]`(start)` or earlier), so
/// that a sync reads only what follows its position, not the whole file.
pub fn read_committed_at(
    header: &[u8],
    buf: &[u8],
    buf_off: u64,
    start: u64,
    max_bytes: u64,
) -> Result<(WalHeader, WalRead), WalError> {
    read_committed_stream(header, buf, buf_off, start, max_bytes)
}

/// [`read_committed_at`] from a reader positioned at WAL offset `r_off` (at or before
/// [`read_from`]`(start)`): frames are read one at a time and only the newest version of each
/// page is kept, so the memory a read takes is the pages it touches, not the WAL bytes it
/// crosses (a backlog after an outage is hundreds of MB of frames of a few pages each).
pub fn read_committed_stream<R: std::io::Read>(
    header: &[u8],
    mut r: R,
    r_off: u64,
    start: u64,
    max_bytes: u64,
) -> Result<(WalHeader, WalRead), WalError> {
    let hdr = WalHeader::decode(header)?;
    let fs = hdr.frame_size();
    if start < WAL_HEADER_SIZE || !(start - WAL_HEADER_SIZE).is_multiple_of(fs) {
        return Err(WalError::Offset {
            offset: start,
            what: format!("not a frame boundary for page size {}", hdr.page_size),
        });
    }
    let from = read_from(start, fs);
    if r_off > from {
        return Err(WalError::Offset {
            offset: start,
            what: format!("the buffer starts at {r_off}, after the previous frame"),
        });
    }
    let io = |e: std::io::Error| WalError::Offset {
        offset: start,
        what: format!("reading the WAL: {e}"),
    };
    let mut skip = std::io::Read::take(&mut r, from - r_off);
    std::io::copy(&mut skip, &mut std::io::sink()).map_err(io)?;
    let mut frame = vec![0u8; fs as usize];
    let mut cksum = if start == WAL_HEADER_SIZE {
        hdr.checksum
    } else {
        if !read_frame(&mut r, &mut frame).map_err(io)? {
            return Err(WalError::Offset {
                offset: start,
                what: "beyond the end of the WAL".into(),
            });
        }
        if be32(&frame, 8) != hdr.salt1 || be32(&frame, 12) != hdr.salt2 {
            return Err(WalError::Offset {
                offset: start,
                what: "previous frame salts do not match the WAL header".into(),
            });
        }
        (be32(&frame, 16), be32(&frame, 20))
    };
    let mut out = WalRead {
        end: start,
        ..Default::default()
    };
    let mut pending: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut pending_frames = 0u64;
    let mut off = start;
    let valid = |frame: &[u8]| {
        be32(frame, 8) == hdr.salt1 && be32(frame, 12) == hdr.salt2 && be32(frame, 0) != 0
    };
    while read_frame(&mut r, &mut frame).map_err(io)? {
        let (fh, data) = frame.split_at(FRAME_HEADER_SIZE as usize);
        let pgno = be32(fh, 0);
        let commit = be32(fh, 4);
        if !valid(&frame) {
            break;
        }
        let c = checksum(hdr.big_endian, cksum, &fh[..8]);
        let c = checksum(hdr.big_endian, c, data);
        if c != (be32(fh, 16), be32(fh, 20)) {
            break;
        }
        cksum = c;
        match pending.get_mut(&pgno) {
            Some(v) => v.copy_from_slice(data),
            None => {
                pending.insert(pgno, data.to_vec());
            }
        }
        pending_frames += 1;
        off += fs;
        if commit != 0 {
            if out.pages.is_empty() {
                std::mem::swap(&mut out.pages, &mut pending);
            } else {
                out.pages.append(&mut pending);
            }
            out.frames += pending_frames;
            pending_frames = 0;
            out.commit = Some(commit);
            out.end = off;
            // Limited when another frame of this WAL follows (more is committed, or being
            // committed, after `end`); otherwise the read is over anyway.
            if off - start >= max_bytes {
                out.limited = read_frame(&mut r, &mut frame).map_err(io)? && valid(&frame);
                break;
            }
        }
    }
    if let Some(c) = out.commit {
        out.pages.retain(|&p, _| p <= c);
    }
    Ok((hdr, out))
}

/// One whole frame into `frame`; false at the end of the input (a torn frame included).
fn read_frame<R: std::io::Read>(r: &mut R, frame: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < frame.len() {
        match r.read(&mut frame[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), seeded with `s`.
pub fn checksum(big_endian: bool, s: (u32, u32), data: &[u8]) -> (u32, u32) {
    let (mut s1, mut s2) = s;
    for ch in data.chunks_exact(8) {
        let (x0, x1) = if big_endian {
            (be32(ch, 0), be32(ch, 4))
        } else {
            (
                u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]),
                u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]),
            )
        };
        s1 = s1.wrapping_add(x0).wrapping_add(s2);
        s2 = s2.wrapping_add(x1).wrapping_add(s1);
    }
    (s1, s2)
}

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

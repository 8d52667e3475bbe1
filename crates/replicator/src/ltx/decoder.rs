//! Reads and fully verifies LTX files (both page encodings, page index, trailer, checksums).

use super::LtxError;
use super::checksum::{CHECKSUM_FLAG, Crc64};
use super::header::{
    HEADER_SIZE, Header, PAGE_FLAG_SIZE, PAGE_HEADER_SIZE, TRAILER_SIZE, Trailer, be32, be64,
    lock_page,
};

/// One page-index entry: page number, frame offset from the file start, frame size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub pgno: u32,
    pub offset: u64,
    pub size: u64,
}

/// A decoded, verified LTX file.
#[derive(Clone, Debug)]
pub struct DecodedFile {
    pub header: Header,
    /// Pages in file order (ascending page number), decompressed.
    pub pages: Vec<(u32, Vec<u8>)>,
    pub index: Vec<IndexEntry>,
    pub trailer: Trailer,
    /// True when the pages use the LZ4 block encoding (flag 0x1).
    pub block_encoded: bool,
}

/// Parse only the header (validated).
pub fn decode_header(b: &[u8]) -> Result<Header, LtxError> {
    Header::decode(b)
}

/// Decode and verify a whole LTX file: header rules, page order, page index, trailer, file
/// checksum, and for checksum-tracking snapshots the post-apply checksum.
pub fn decode(b: &[u8]) -> Result<DecodedFile, LtxError> {
    let mut pages: Vec<(u32, Vec<u8>)> = Vec::new();
    let s = decode_with(&mut Slice(b), |pgno, data| {
        pages.push((pgno, data.to_vec()));
        Ok(())
    })?;
    Ok(DecodedFile {
        header: s.header,
        pages,
        index: s.index,
        trailer: s.trailer,
        block_encoded: s.block_encoded,
    })
}

/// What [`decode_stream`] verified (the pages went to its callback).
#[derive(Clone, Debug)]
pub struct StreamedFile {
    pub header: Header,
    pub index: Vec<IndexEntry>,
    pub trailer: Trailer,
    pub block_encoded: bool,
}

/// Decode and verify an LTX file of `len` bytes read sequentially from `r`, with the same
/// checks as [`decode`], handing each page (ascending page number) to `on_page` as soon as it
/// is decompressed; only a small read window and the page index are held in memory. Pages
/// are handed over before the file checksum (at the end) is verified: a caller writing them
/// somewhere must discard that on error.
pub fn decode_stream<R: std::io::Read>(
    r: R,
    len: u64,
    on_page: impl FnMut(u32, &[u8]) -> Result<(), LtxError>,
) -> Result<StreamedFile, LtxError> {
    let len = usize::try_from(len).map_err(|_| LtxError::TooShort { len: 0, need: 0 })?;
    decode_with(
        &mut Window {
            r,
            buf: Vec::new(),
            off: 0,
            start: 0,
            len,
            eof: false,
        },
        on_page,
    )
}

/// Where the decoder reads from: absolute offsets, always moving forward.
trait Source {
    /// Total length of the file.
    fn len(&self) -> usize;
    /// The bytes from absolute offset `pos` on: at least `n` of them unless the file (or the
    /// input) ends first. Bytes before `pos` may be forgotten.
    fn at(&mut self, pos: usize, n: usize) -> Result<&[u8], LtxError>;
}

struct Slice<'a>(&'a [u8]);

impl Source for Slice<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn at(&mut self, pos: usize, _n: usize) -> Result<&[u8], LtxError> {
        Ok(self.0.get(pos..).unwrap_or(&[]))
    }
}

/// A forward-only window over a reader.
struct Window<R> {
    r: R,
    buf: Vec<u8>,
    /// Index in `buf` of absolute offset `start`.
    off: usize,
    start: usize,
    len: usize,
    eof: bool,
}

impl<R: std::io::Read> Source for Window<R> {
    fn len(&self) -> usize {
        self.len
    }
    fn at(&mut self, pos: usize, n: usize) -> Result<&[u8], LtxError> {
        use std::io::Read;
        let io = |e: std::io::Error| LtxError::Io(e.to_string());
        // Forget what lies before `pos` (reading and discarding if it was never buffered).
        let skip = pos.saturating_sub(self.start);
        let have = self.buf.len() - self.off;
        if skip <= have {
            self.off += skip;
        } else {
            self.off = self.buf.len();
            let mut left = (skip - have) as u64;
            while left > 0 && !self.eof {
                let got = std::io::copy(&mut self.r.by_ref().take(left), &mut std::io::sink())
                    .map_err(io)?;
                if got == 0 {
                    self.eof = true;
                }
                left -= got;
            }
        }
        self.start = pos;
        let want = n.min(self.len.saturating_sub(pos));
        if self.buf.len() - self.off < want {
            if self.off > 0 {
                self.buf.drain(..self.off);
                self.off = 0;
            }
            // Read ahead in 256 KiB steps (never past the file's end).
            let target = want.max(256 * 1024).min(self.len.saturating_sub(pos));
            let mut filled = self.buf.len();
            self.buf.resize(target, 0);
            while filled < want && !self.eof {
                match self.r.read(&mut self.buf[filled..]) {
                    Ok(0) => self.eof = true,
                    Ok(k) => filled += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io(e)),
                }
            }
            self.buf.truncate(filled);
        }
        Ok(&self.buf[self.off..])
    }
}

fn decode_with<S: Source>(
    src: &mut S,
    mut on_page: impl FnMut(u32, &[u8]) -> Result<(), LtxError>,
) -> Result<StreamedFile, LtxError> {
    let len = src.len();
    let header = Header::decode(src.at(0, HEADER_SIZE)?)?;
    if len < HEADER_SIZE + PAGE_HEADER_SIZE + TRAILER_SIZE + 9 {
        return Err(LtxError::TooShort {
            len,
            need: HEADER_SIZE + PAGE_HEADER_SIZE + TRAILER_SIZE + 9,
        });
    }
    let ps = header.page_size as usize;
    let lock = lock_page(header.page_size);
    let mut crc = Crc64::new();
    crc.update(&src.at(0, HEADER_SIZE)?[..HEADER_SIZE]);
    let mut pos = HEADER_SIZE;
    let mut pages = 0u32;
    let mut post_apply = 0u64;
    let track_post_apply = !header.no_checksum() && header.is_snapshot();
    let mut frames: Vec<IndexEntry> = Vec::new();
    let mut block_encoded = false;
    let mut last = 0u32;
    let mut data = vec![0u8; ps];
    loop {
        let start = pos;
        let ph = src
            .at(pos, PAGE_HEADER_SIZE)?
            .get(..PAGE_HEADER_SIZE)
            .ok_or_else(|| LtxError::Page {
                pgno: 0,
                offset: pos,
                what: "truncated page header (no terminator)".into(),
            })?;
        let pgno = be32(ph);
        let flags = u16::from_be_bytes([ph[4], ph[5]]);
        crc.update(ph);
        pos += PAGE_HEADER_SIZE;
        if pgno == 0 {
            if flags != 0 {
                return Err(LtxError::Page {
                    pgno,
                    offset: start,
                    what: format!("terminator with flags {flags:#06x}"),
                });
            }
            break;
        }
        let perr = |what: String| LtxError::Page {
            pgno,
            offset: start,
            what,
        };
        // Order rules.
        if pgno == lock {
            return Err(LtxError::Order(format!("lock page {pgno} present")));
        }
        if pgno > header.commit {
            return Err(LtxError::Order(format!(
                "page {pgno} above commit {}",
                header.commit
            )));
        }
        if header.is_snapshot() {
            let mut want = last + 1;
            if want == lock {
                want += 1;
            }
            if pgno != want {
                return Err(LtxError::Order(format!(
                    "snapshot page {pgno} out of sequence, expected {want}"
                )));
            }
        } else if pgno <= last {
            return Err(LtxError::Order(format!(
                "page {pgno} not after page {last}"
            )));
        }
        match flags {
            PAGE_FLAG_SIZE => {
                block_encoded = true;
                let lb = src
                    .at(pos, 4)?
                    .get(..4)
                    .ok_or_else(|| perr("truncated block length".into()))?;
                crc.update(lb);
                let n = be32(lb) as usize;
                pos += 4;
                let src = src
                    .at(pos, n)?
                    .get(..n)
                    .ok_or_else(|| perr(format!("truncated LZ4 block of {n} bytes")))?;
                pos += n;
                let got = lz4_flex::block::decompress_into(src, &mut data)
                    .map_err(|e| perr(format!("LZ4 block: {e}")))?;
                if got != ps {
                    return Err(perr(format!(
                        "LZ4 block decompressed to {got} bytes, expected {ps}"
                    )));
                }
            }
            0 => {
                // A frame's length is only known by parsing it: widen the window until it
                // fits (a page's frame is normally at most a little over the page size).
                let mut want = 2 * ps + 4096;
                let n = loop {
                    let w = src.at(pos, want)?;
                    let more = w.len() >= want;
                    match super::lz4frame::decode(w, &mut data) {
                        Ok(n) => break n,
                        Err(e) if more && e.starts_with("truncated") => want *= 2,
                        Err(e) => return Err(perr(format!("LZ4 frame: {e}"))),
                    }
                };
                pos += n;
            }
            f => return Err(perr(format!("unknown page flags {f:#06x}"))),
        }
        crc.update(&data);
        if track_post_apply {
            post_apply ^= super::checksum::page_checksum(pgno, &data);
        }
        frames.push(IndexEntry {
            pgno,
            offset: start as u64,
            size: (pos - start) as u64,
        });
        on_page(pgno, &data)?;
        pages += 1;
        last = pgno;
    }
    if header.is_snapshot() {
        let want = if header.commit >= lock {
            header.commit - 1
        } else {
            header.commit
        };
        if pages != want {
            return Err(LtxError::Order(format!(
                "snapshot has {pages} pages, commit {} needs {want}",
                header.commit
            )));
        }
    }
    // Page index and trailer: the rest of the file, read whole (small).
    if len < pos + 8 + TRAILER_SIZE {
        return Err(LtxError::Index(
            "truncated before page index / trailer".into(),
        ));
    }
    let tail = src.at(pos, len - pos)?;
    if tail.len() < len - pos {
        return Err(LtxError::Index(format!(
            "file ends {} bytes early",
            len - pos - tail.len()
        )));
    }
    let tail = &tail[..len - pos];
    let index_end = tail.len() - TRAILER_SIZE - 8;
    let index_len = be64(&tail[index_end..]) as usize;
    if index_end != index_len {
        return Err(LtxError::Index(format!(
            "size field says {index_len} bytes, {index_end} bytes lie between page block and trailer"
        )));
    }
    let mut ip = 0;
    let mut index = Vec::new();
    loop {
        let pgno = uvarint(tail, &mut ip, index_end)?;
        if pgno == 0 {
            break;
        }
        let offset = uvarint(tail, &mut ip, index_end)?;
        let size = uvarint(tail, &mut ip, index_end)?;
        let pgno = u32::try_from(pgno)
            .map_err(|_| LtxError::Index(format!("page number {pgno} out of range")))?;
        index.push(IndexEntry { pgno, offset, size });
    }
    if ip != index_end {
        return Err(LtxError::Index(format!(
            "{} stray bytes after the index end marker",
            index_end - ip
        )));
    }
    if index != frames {
        let bad = index
            .iter()
            .zip(&frames)
            .position(|(a, b)| a != b)
            .unwrap_or(index.len().min(frames.len()));
        return Err(LtxError::Index(format!(
            "entries do not match the page frames (first difference at entry {bad}: {} entries for {} frames)",
            index.len(),
            frames.len()
        )));
    }
    crc.update(&tail[..index_end + 8]);
    let tb = &tail[index_end + 8..];
    let trailer = Trailer::decode(tb, &header)?;
    crc.update(&tb[..8]);
    let computed = crc.finish() | CHECKSUM_FLAG;
    if computed != trailer.file_checksum {
        return Err(LtxError::FileChecksum {
            stored: trailer.file_checksum,
            computed,
        });
    }
    if track_post_apply {
        let sum = post_apply | CHECKSUM_FLAG;
        if sum != trailer.post_apply_checksum {
            return Err(LtxError::PostApplyChecksum {
                stored: trailer.post_apply_checksum,
                computed: sum,
            });
        }
    }
    Ok(StreamedFile {
        header,
        index: frames,
        trailer,
        block_encoded,
    })
}

fn uvarint(b: &[u8], pos: &mut usize, end: usize) -> Result<u64, LtxError> {
    let mut v = 0u64;
    let mut shift = 0u32;
    loop {
        if *pos >= end {
            return Err(LtxError::Index("truncated varint".into()));
        }
        let byte = b[*pos];
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err(LtxError::Index("varint overflows u64".into()));
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return Err(LtxError::Index("varint overflows u64".into()));
        }
    }
}

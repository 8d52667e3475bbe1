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
    let header = Header::decode(b)?;
    if b.len() < HEADER_SIZE + PAGE_HEADER_SIZE + TRAILER_SIZE + 9 {
        return Err(LtxError::TooShort {
            len: b.len(),
            need: HEADER_SIZE + PAGE_HEADER_SIZE + TRAILER_SIZE + 9,
        });
    }
    let ps = header.page_size as usize;
    let lock = lock_page(header.page_size);
    let mut crc = Crc64::new();
    crc.update(&b[..HEADER_SIZE]);
    let mut pos = HEADER_SIZE;
    let mut pages: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut frames: Vec<IndexEntry> = Vec::new();
    let mut block_encoded = false;
    let mut last = 0u32;
    loop {
        let start = pos;
        let ph = b
            .get(pos..pos + PAGE_HEADER_SIZE)
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
        let data = match flags {
            PAGE_FLAG_SIZE => {
                block_encoded = true;
                let lb = b
                    .get(pos..pos + 4)
                    .ok_or_else(|| perr("truncated block length".into()))?;
                crc.update(lb);
                let n = be32(lb) as usize;
                pos += 4;
                let src = b
                    .get(pos..pos.saturating_add(n))
                    .ok_or_else(|| perr(format!("truncated LZ4 block of {n} bytes")))?;
                pos += n;
                let mut out = vec![0u8; ps];
                let got = lz4_flex::block::decompress_into(src, &mut out)
                    .map_err(|e| perr(format!("LZ4 block: {e}")))?;
                if got != ps {
                    return Err(perr(format!(
                        "LZ4 block decompressed to {got} bytes, expected {ps}"
                    )));
                }
                out
            }
            0 => {
                let mut out = vec![0u8; ps];
                let n = super::lz4frame::decode(&b[pos..], &mut out)
                    .map_err(|e| perr(format!("LZ4 frame: {e}")))?;
                pos += n;
                out
            }
            f => return Err(perr(format!("unknown page flags {f:#06x}"))),
        };
        crc.update(&data);
        frames.push(IndexEntry {
            pgno,
            offset: start as u64,
            size: (pos - start) as u64,
        });
        pages.push((pgno, data));
        last = pgno;
    }
    if header.is_snapshot() {
        let want = if header.commit >= lock {
            header.commit - 1
        } else {
            header.commit
        };
        if pages.len() as u32 != want {
            return Err(LtxError::Order(format!(
                "snapshot has {} pages, commit {} needs {want}",
                pages.len(),
                header.commit
            )));
        }
    }
    // Page index.
    if b.len() < pos + 8 + TRAILER_SIZE {
        return Err(LtxError::Index(
            "truncated before page index / trailer".into(),
        ));
    }
    let index_end = b.len() - TRAILER_SIZE - 8;
    let index_len = be64(&b[index_end..]) as usize;
    if index_end < pos || index_end - pos != index_len {
        return Err(LtxError::Index(format!(
            "size field says {index_len} bytes, {} bytes lie between page block and trailer",
            index_end.saturating_sub(pos)
        )));
    }
    let mut ip = pos;
    let mut index = Vec::new();
    loop {
        let pgno = uvarint(b, &mut ip, index_end)?;
        if pgno == 0 {
            break;
        }
        let offset = uvarint(b, &mut ip, index_end)?;
        let size = uvarint(b, &mut ip, index_end)?;
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
    crc.update(&b[pos..index_end + 8]);
    let tb = &b[index_end + 8..];
    let trailer = Trailer::decode(tb, &header)?;
    crc.update(&tb[..8]);
    let computed = crc.finish() | CHECKSUM_FLAG;
    if computed != trailer.file_checksum {
        return Err(LtxError::FileChecksum {
            stored: trailer.file_checksum,
            computed,
        });
    }
    if !header.no_checksum() && header.is_snapshot() {
        let mut sum = 0u64;
        for (pgno, data) in &pages {
            sum ^= super::checksum::page_checksum(*pgno, data);
        }
        let sum = sum | CHECKSUM_FLAG;
        if sum != trailer.post_apply_checksum {
            return Err(LtxError::PostApplyChecksum {
                stored: trailer.post_apply_checksum,
                computed: sum,
            });
        }
    }
    Ok(DecodedFile {
        header,
        pages,
        index,
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

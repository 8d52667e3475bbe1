//! Writes LTX files: header, page frames, terminator, page index, trailer; in memory, or
//! spilled to a spool file once large (see [`crate::payload`]).

use super::LtxError;
use super::checksum::{CHECKSUM_FLAG, Crc64};
use super::header::{HEADER_SIZE, Header, PAGE_FLAG_SIZE, PAGE_HEADER_SIZE, lock_page};
use crate::payload::{Payload, SpoolWriter};

/// How page payloads are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PageEncoding {
    /// One LZ4 frame per page (FLG 0x64, BD 0x40, content checksum): readable by every
    /// Litestream 0.5.x, including nixpkgs' 0.5.15. The default.
    #[default]
    Frame,
    /// Page flag 0x1, u32 length, raw LZ4 block: Litestream >= 0.5.16 only.
    Block,
}

/// An LTX encoder. Pages must be added in the order the format requires.
pub struct Encoder {
    header: Header,
    encoding: PageEncoding,
    /// Output not yet spilled (all of it, in memory mode).
    buf: Vec<u8>,
    crc: Crc64,
    index: Vec<(u32, u64, u64)>,
    last_pgno: u32,
    /// Spill `buf` to a spool file whenever it reaches this size.
    spill_above: Option<usize>,
    spill: Option<SpoolWriter>,
    /// Bytes already in the spool file.
    spilled: u64,
}

impl Encoder {
    pub fn new(header: Header, encoding: PageEncoding) -> Result<Self, LtxError> {
        header.validate()?;
        let hb = header.encode();
        let mut crc = Crc64::new();
        crc.update(&hb);
        let mut buf = Vec::with_capacity(HEADER_SIZE + 4096);
        buf.extend_from_slice(&hb);
        Ok(Self {
            header,
            encoding,
            buf,
            crc,
            index: Vec::new(),
            last_pgno: 0,
            spill_above: None,
            spill: None,
            spilled: 0,
        })
    }

    /// Move the output to a spool file once it reaches `bytes`: memory then holds at most
    /// about that much of it, whatever the file's size.
    pub fn spill_above(mut self, bytes: usize) -> Self {
        self.spill_above = Some(bytes.max(1));
        self
    }

    /// Offset of the next byte in the file.
    fn pos(&self) -> u64 {
        self.spilled + self.buf.len() as u64
    }

    fn spill_now(&mut self) -> Result<(), LtxError> {
        let io = |e: std::io::Error| LtxError::Io(format!("spool file: {e}"));
        if self.spill.is_none() {
            self.spill = Some(SpoolWriter::create().map_err(io)?);
        }
        if let Some(w) = self.spill.as_mut() {
            w.write_all(&self.buf).map_err(io)?;
        }
        self.spilled += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Reserve room for `bytes` more output up front (a large file then grows in place
    /// instead of being copied at each doubling; untouched room costs no memory).
    pub fn reserve(&mut self, bytes: usize) {
        let bytes = match self.spill_above {
            Some(limit) => bytes.min(limit + (64 << 10)),
            None => bytes,
        };
        self.buf.reserve(bytes);
    }

    /// Add one page; `data` must be exactly one page.
    pub fn add_page(&mut self, pgno: u32, data: &[u8]) -> Result<(), LtxError> {
        let h = &self.header;
        let order = |s: String| Err(LtxError::Order(s));
        if data.len() != h.page_size as usize {
            return Err(LtxError::Page {
                pgno,
                offset: self.pos() as usize,
                what: format!(
                    "page data is {} bytes, page size is {}",
                    data.len(),
                    h.page_size
                ),
            });
        }
        if pgno == 0 {
            return order("page number 0".into());
        }
        if pgno == lock_page(h.page_size) {
            return order(format!("lock page {pgno} must not be written"));
        }
        if pgno > h.commit {
            return order(format!("page {pgno} above commit {}", h.commit));
        }
        if h.is_snapshot() {
            let mut want = self.last_pgno + 1;
            if want == lock_page(h.page_size) {
                want += 1;
            }
            if pgno != want {
                return order(format!(
                    "snapshot page {pgno} out of sequence, expected {want}"
                ));
            }
        } else if pgno <= self.last_pgno {
            return order(format!("page {pgno} not after page {}", self.last_pgno));
        }
        let offset = self.pos();
        let flags = match self.encoding {
            PageEncoding::Frame => 0u16,
            PageEncoding::Block => PAGE_FLAG_SIZE,
        };
        let mut ph = [0u8; PAGE_HEADER_SIZE];
        ph[..4].copy_from_slice(&pgno.to_be_bytes());
        ph[4..].copy_from_slice(&flags.to_be_bytes());
        self.buf.extend_from_slice(&ph);
        self.crc.update(&ph);
        match self.encoding {
            PageEncoding::Block => {
                let compressed = lz4_flex::block::compress(data);
                let len = (compressed.len() as u32).to_be_bytes();
                self.buf.extend_from_slice(&len);
                self.crc.update(&len);
                self.buf.extend_from_slice(&compressed);
            }
            PageEncoding::Frame => super::lz4frame::encode(data, &mut self.buf),
        }
        self.crc.update(data);
        self.index.push((pgno, offset, self.pos() - offset));
        self.last_pgno = pgno;
        if self
            .spill_above
            .is_some_and(|limit| self.buf.len() >= limit)
        {
            self.spill_now()?;
        }
        Ok(())
    }

    /// Terminate the page block, write the index and trailer; returns the file bytes
    /// (read back from the spool file if it spilled: for tests and small files).
    /// `post_apply_checksum` must be 0 for NoChecksum files.
    pub fn finish(self, post_apply_checksum: u64) -> Result<Vec<u8>, LtxError> {
        match self.finish_payload(post_apply_checksum)? {
            Payload::Memory(b) => Ok(Vec::from(b)),
            p => p
                .to_vec()
                .map_err(|e| LtxError::Io(format!("spool file: {e}"))),
        }
    }

    /// [`Encoder::finish`], leaving a spilled file where it is.
    pub fn finish_payload(mut self, post_apply_checksum: u64) -> Result<Payload, LtxError> {
        let h = &self.header;
        if h.is_snapshot() {
            let lock = lock_page(h.page_size);
            let want = if h.commit >= lock && lock > 0 {
                h.commit - 1
            } else {
                h.commit
            };
            if self.index.len() as u32 != want {
                return Err(LtxError::Order(format!(
                    "snapshot has {} pages, commit {} needs {want}",
                    self.index.len(),
                    h.commit
                )));
            }
        }
        if h.no_checksum() && post_apply_checksum != 0 {
            return Err(LtxError::Trailer(
                "post-apply checksum with NoChecksum flag".into(),
            ));
        }
        if !h.no_checksum() && post_apply_checksum & CHECKSUM_FLAG == 0 {
            return Err(LtxError::Trailer(
                "post-apply checksum missing bit 63".into(),
            ));
        }
        let term = [0u8; PAGE_HEADER_SIZE];
        self.buf.extend_from_slice(&term);
        self.crc.update(&term);
        let mut idx = Vec::new();
        for &(pgno, off, size) in &self.index {
            put_uvarint(&mut idx, u64::from(pgno));
            put_uvarint(&mut idx, off);
            put_uvarint(&mut idx, size);
        }
        put_uvarint(&mut idx, 0);
        let n = (idx.len() as u64).to_be_bytes();
        idx.extend_from_slice(&n);
        self.crc.update(&idx);
        self.buf.extend_from_slice(&idx);
        let post = post_apply_checksum.to_be_bytes();
        self.crc.update(&post);
        self.buf.extend_from_slice(&post);
        let file_checksum = self.crc.finish() | CHECKSUM_FLAG;
        self.buf.extend_from_slice(&file_checksum.to_be_bytes());
        if self.spill.is_none() {
            return Ok(Payload::from(self.buf));
        }
        self.spill_now()?;
        match self.spill.take() {
            Some(w) => w
                .finish()
                .map_err(|e| LtxError::Io(format!("spool file: {e}"))),
            None => Err(LtxError::Io("spool file vanished".into())),
        }
    }
}

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ltx::{FLAG_NO_CHECKSUM, decode};

    fn hdr(min: u64, commit: u32) -> Header {
        Header {
            flags: FLAG_NO_CHECKSUM,
            page_size: 512,
            commit,
            min_txid: min,
            max_txid: min,
            timestamp: 1_767_225_600_000,
            ..Default::default()
        }
    }

    #[test]
    fn frame_encoding_matches_go_lz4_header() {
        let mut e = Encoder::new(hdr(1, 1), PageEncoding::Frame).unwrap();
        e.add_page(1, &[7u8; 512]).unwrap();
        let b = e.finish(0).unwrap();
        // page header (6 bytes) then the LZ4 frame: magic, FLG 0x64, BD 0x40.
        assert_eq!(&b[100..106], &[0, 0, 0, 1, 0, 0]);
        assert_eq!(&b[106..112], &[0x04, 0x22, 0x4D, 0x18, 0x64, 0x40]);
        assert_eq!(decode(&b).unwrap().pages, vec![(1, vec![7u8; 512])]);
    }

    #[test]
    fn a_spilled_file_is_the_in_memory_file_byte_for_byte() {
        let page =
            |p: u32| -> Vec<u8> { (0..512).map(|i| (i as u32 * 31 + p * 7) as u8).collect() };
        let encode = |spill: Option<usize>| {
            let mut e = Encoder::new(hdr(1, 40), PageEncoding::Frame).unwrap();
            if let Some(n) = spill {
                e = e.spill_above(n);
            }
            for p in 1..=40 {
                e.add_page(p, &page(p)).unwrap();
            }
            e.finish_payload(0).unwrap()
        };
        let memory = encode(None);
        assert!(memory.path().is_none());
        let spilled = encode(Some(1000));
        let path = spilled.path().expect("spilled to a file").to_path_buf();
        assert_eq!(spilled.len(), memory.len());
        let bytes = spilled.to_vec().unwrap();
        assert_eq!(bytes, memory.to_vec().unwrap());
        assert_eq!(decode(&bytes).unwrap().pages.len(), 40);
        drop(spilled);
        assert!(!path.exists(), "the spool file goes with the payload");
    }

    #[test]
    fn order_rules() {
        let p = [0u8; 512];
        let mut e = Encoder::new(hdr(2, 10), PageEncoding::Block).unwrap();
        e.add_page(3, &p).unwrap();
        assert!(
            e.add_page(3, &p)
                .unwrap_err()
                .to_string()
                .contains("not after")
        );
        assert!(e.add_page(2, &p).is_err());
        assert!(
            e.add_page(11, &p)
                .unwrap_err()
                .to_string()
                .contains("above commit")
        );
        assert!(
            e.add_page(4, &[0u8; 10])
                .unwrap_err()
                .to_string()
                .contains("page size")
        );
        // Snapshot must be contiguous from 1 and complete.
        let mut e = Encoder::new(hdr(1, 3), PageEncoding::Block).unwrap();
        assert!(
            e.add_page(2, &p)
                .unwrap_err()
                .to_string()
                .contains("out of sequence")
        );
        e.add_page(1, &p).unwrap();
        assert!(
            e.finish(0)
                .unwrap_err()
                .to_string()
                .contains("snapshot has 1 pages")
        );
        // Lock page refused.
        let lock = crate::ltx::lock_page(512);
        let mut e = Encoder::new(hdr(2, lock + 5), PageEncoding::Block).unwrap();
        assert!(
            e.add_page(lock, &p)
                .unwrap_err()
                .to_string()
                .contains("lock page")
        );
        e.add_page(lock + 1, &p).unwrap();
        // NoChecksum forbids a post-apply checksum.
        assert!(e.finish(5 | CHECKSUM_FLAG).is_err());
        // Commit zero, no pages: valid.
        let e = Encoder::new(hdr(2, 0), PageEncoding::Frame).unwrap();
        let b = e.finish(0).unwrap();
        assert_eq!(decode(&b).unwrap().pages.len(), 0);
    }
}

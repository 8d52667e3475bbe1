#![allow(clippy::unwrap_used)]
//! Property tests: the LTX decoder and the WAL reader never panic on arbitrary input
//! (random bytes, and valid files with random mutations / truncations), and the streaming
//! decoder (restore) agrees with the whole-file decoder.

use barnabee_replicator::ltx::{self, Encoder, FLAG_NO_CHECKSUM, Header, PageEncoding};
use barnabee_replicator::wal;
use proptest::prelude::*;

fn valid_ltx(block: bool, pages: u32) -> Vec<u8> {
    let h = Header {
        flags: FLAG_NO_CHECKSUM,
        page_size: 512,
        commit: pages,
        min_txid: 1,
        max_txid: 1,
        timestamp: 1,
        ..Default::default()
    };
    let enc = if block {
        PageEncoding::Block
    } else {
        PageEncoding::Frame
    };
    let mut e = Encoder::new(h, enc).unwrap();
    for p in 1..=pages {
        let data: Vec<u8> = (0..512u32).map(|i| ((i * p) % 251) as u8).collect();
        e.add_page(p, &data).unwrap();
    }
    e.finish(0).unwrap()
}

/// A tiny valid WAL (little-endian magic) with `n` committed single-page frames.
fn valid_wal(n: u32) -> Vec<u8> {
    let ps = 512u32;
    let mut b = Vec::new();
    b.extend_from_slice(&0x377f_0682u32.to_be_bytes());
    b.extend_from_slice(&3_007_000u32.to_be_bytes());
    b.extend_from_slice(&ps.to_be_bytes());
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0x1111_2222u32.to_be_bytes());
    b.extend_from_slice(&0x3333_4444u32.to_be_bytes());
    let c = wal::checksum(false, (0, 0), &b[..24]);
    b.extend_from_slice(&c.0.to_be_bytes());
    b.extend_from_slice(&c.1.to_be_bytes());
    let mut ck = c;
    for i in 0..n {
        let mut fh = Vec::new();
        fh.extend_from_slice(&(i % 3 + 1).to_be_bytes());
        fh.extend_from_slice(&3u32.to_be_bytes());
        fh.extend_from_slice(&0x1111_2222u32.to_be_bytes());
        fh.extend_from_slice(&0x3333_4444u32.to_be_bytes());
        let data = vec![i as u8; ps as usize];
        ck = wal::checksum(false, ck, &fh[..8]);
        ck = wal::checksum(false, ck, &data);
        fh.extend_from_slice(&ck.0.to_be_bytes());
        fh.extend_from_slice(&ck.1.to_be_bytes());
        b.extend_from_slice(&fh);
        b.extend_from_slice(&data);
    }
    b
}

/// A reader handing out at most `chunk` bytes per read (exercises the decode window).
struct Chunky<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl std::io::Read for Chunky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Decode `b` as a stream of `len` bytes; the pages it handed over, or the error.
fn streamed(b: &[u8], len: u64, chunk: usize) -> Result<Vec<(u32, Vec<u8>)>, ltx::LtxError> {
    let mut pages = Vec::new();
    let r = Chunky {
        data: b,
        chunk: chunk.max(1),
    };
    ltx::decode_stream(r, len, |p, d| {
        pages.push((p, d.to_vec()));
        Ok(())
    })
    .map(|_| pages)
}

#[test]
fn streaming_decoder_matches_on_files_larger_than_its_window() {
    for block in [true, false] {
        // ~1.2 MB of incompressible 4 KiB pages: many window refills.
        let h = Header {
            flags: FLAG_NO_CHECKSUM,
            page_size: 4096,
            commit: 300,
            min_txid: 1,
            max_txid: 1,
            timestamp: 1,
            ..Default::default()
        };
        let enc = if block {
            PageEncoding::Block
        } else {
            PageEncoding::Frame
        };
        let mut e = Encoder::new(h, enc).unwrap();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for p in 1..=300u32 {
            let data: Vec<u8> = (0..4096)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            e.add_page(p, &data).unwrap();
        }
        let b = e.finish(0).unwrap();
        assert!(b.len() > 1_000_000);
        let whole = ltx::decode(&b).unwrap().pages;
        for chunk in [1000, 4096, 65536, 1 << 20] {
            assert_eq!(streamed(&b, b.len() as u64, chunk).unwrap(), whole);
        }
        // A stream shorter than announced, or a flipped byte late in the file, fails.
        assert!(streamed(&b[..b.len() - 10], b.len() as u64, 65536).is_err());
        let mut bad = b.clone();
        let n = bad.len();
        bad[n - 100] ^= 1;
        assert_eq!(
            streamed(&bad, n as u64, 65536).unwrap_err(),
            ltx::decode(&bad).unwrap_err()
        );
    }
}

#[test]
fn valid_inputs_decode() {
    assert_eq!(ltx::decode(&valid_ltx(true, 3)).unwrap().pages.len(), 3);
    assert_eq!(ltx::decode(&valid_ltx(false, 3)).unwrap().pages.len(), 3);
    let (_, r) = wal::read_committed(&valid_wal(5), 32).unwrap();
    assert_eq!(r.frames, 5);
    assert_eq!(r.commit, Some(3));
    assert_eq!(r.pages[&1], vec![3u8; 512]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn ltx_decoder_never_panics_on_random_bytes(b in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = ltx::decode(&b);
    }

    #[test]
    fn ltx_decoder_never_panics_on_mutated_files(
        block in any::<bool>(),
        pages in 0u32..4,
        muts in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut b = valid_ltx(block, pages.max(1));
        for (i, v) in muts {
            let n = b.len();
            b[i % n] = v;
        }
        let _ = ltx::decode(&b);
        let c = cut % (b.len() + 1);
        let _ = ltx::decode(&b[..c]);
    }

    #[test]
    fn streaming_decoder_agrees_with_whole_file_decoder(
        block in any::<bool>(),
        pages in 1u32..5,
        muts in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
        chunk in 1usize..700,
        extra_len in 0u64..3,
    ) {
        let mut b = valid_ltx(block, pages);
        for (i, v) in muts {
            let n = b.len();
            b[i % n] = v;
        }
        let b = &b[..cut % (b.len() + 1)];
        let whole = ltx::decode(b).map(|d| d.pages);
        let stream = streamed(b, b.len() as u64, chunk);
        prop_assert_eq!(whole.is_ok(), stream.is_ok(), "{:?} vs {:?}", whole, stream);
        if let (Ok(w), Ok(s)) = (whole, stream) {
            prop_assert_eq!(w, s);
        }
        // An announced length the reader does not deliver is an error, never a panic.
        if extra_len > 0 {
            prop_assert!(streamed(b, b.len() as u64 + extra_len, chunk).is_err());
        }
    }

    #[test]
    fn wal_reader_never_panics(
        muts in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
        start in any::<u64>(),
        random in proptest::collection::vec(any::<u8>(), 0..1200),
    ) {
        let mut b = valid_wal(4);
        for (i, v) in muts {
            let n = b.len();
            b[i % n] = v;
        }
        let c = cut % (b.len() + 1);
        let _ = wal::read_committed(&b[..c], 32);
        let _ = wal::read_committed(&b, start % 4000);
        let _ = wal::read_committed(&b, 32 + 536 * (start % 6));
        let _ = wal::read_committed(&random, 32);
    }
}

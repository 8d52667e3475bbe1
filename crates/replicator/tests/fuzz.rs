#![allow(clippy::unwrap_used)]
//! Property tests: the LTX decoder and the WAL reader never panic on arbitrary input
//! (random bytes, and valid files with random mutations / truncations).

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

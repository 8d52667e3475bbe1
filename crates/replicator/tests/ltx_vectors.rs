#![allow(clippy::unwrap_used)]
//! Every reference vector in ../shared/testdata/ltx decodes with the values in MANIFEST.jsonl;
//! pages match the source databases; our encoder round-trips them.

mod common;

use barnabee_replicator::ltx::{
    self, CHECKSUM_FLAG, Encoder, FLAG_NO_CHECKSUM, Header, PageEncoding, database_checksum,
};

#[test]
fn every_reference_vector_decodes_with_manifest_values() {
    let Some(dir) = common::shared_ltx("every_reference_vector_decodes_with_manifest_values")
    else {
        return;
    };
    let mut n = 0;
    for m in common::manifest(&dir) {
        let file = m["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(file)).unwrap();
        if file.ends_with(".db") {
            let ps = u16::from_be_bytes([bytes[16], bytes[17]]);
            let ps = if ps == 1 { 65536 } else { u32::from(ps) };
            assert_eq!(
                database_checksum(&bytes, ps),
                common::hex64(&m["ltx_db_checksum"]),
                "{file}"
            );
            continue;
        }
        let d = ltx::decode(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        let h = &d.header;
        assert_eq!(
            format!("0x{:08x}", h.flags),
            m["flags"].as_str().unwrap(),
            "{file}"
        );
        assert_eq!(
            u64::from(h.page_size),
            m["page_size"].as_u64().unwrap(),
            "{file}"
        );
        assert_eq!(u64::from(h.commit), m["commit"].as_u64().unwrap(), "{file}");
        assert_eq!(h.min_txid, common::hex64(&m["min_txid"]), "{file}");
        assert_eq!(h.max_txid, common::hex64(&m["max_txid"]), "{file}");
        assert_eq!(h.timestamp, m["timestamp_ms"].as_i64().unwrap(), "{file}");
        assert_eq!(h.wal_offset, m["wal_offset"].as_i64().unwrap(), "{file}");
        assert_eq!(h.wal_size, m["wal_size"].as_i64().unwrap(), "{file}");
        assert_eq!(
            u64::from(h.wal_salt1),
            common::hex64(&m["wal_salt1"]),
            "{file}"
        );
        assert_eq!(
            u64::from(h.wal_salt2),
            common::hex64(&m["wal_salt2"]),
            "{file}"
        );
        assert_eq!(
            h.pre_apply_checksum,
            common::hex64(&m["pre_apply_checksum"]),
            "{file}"
        );
        assert_eq!(d.pages.len() as u64, m["pages"].as_u64().unwrap(), "{file}");
        assert_eq!(
            d.trailer.post_apply_checksum,
            common::hex64(&m["post_apply_checksum"]),
            "{file}"
        );
        assert_eq!(
            d.trailer.file_checksum,
            common::hex64(&m["file_checksum"]),
            "{file}"
        );
        assert_eq!(
            d.block_encoded,
            !file.starts_with("legacy-frame") && !file.contains("legacy"),
            "{file}"
        );
        // Page index entries point at real frames.
        for e in &d.index {
            let off = e.offset as usize;
            assert_eq!(
                u32::from_be_bytes(bytes[off..off + 4].try_into().unwrap()),
                e.pgno,
                "{file}"
            );
        }
        n += 1;
    }
    assert!(n >= 24, "only {n} ltx files in the manifest");
}

#[test]
fn snapshot_vectors_hold_the_source_database_pages() {
    let Some(dir) = common::shared_ltx("snapshot_vectors_hold_the_source_database_pages") else {
        return;
    };
    for (ltx_file, db) in [
        ("encode-db/tiny-4096.ltx", "tiny-4096"),
        ("encode-db/small-4096.ltx", "small-4096"),
        ("encode-db/small-1024.ltx", "small-1024"),
        ("encode-db/small-512.ltx", "small-512"),
        ("encode-db/tiny-65536.ltx", "tiny-65536"),
        ("encode-db/random-4096.ltx", "random-4096"),
        ("legacy-frame/tiny-4096.ltx", "tiny-4096"),
        ("legacy-frame/small-4096.ltx", "small-4096"),
        ("legacy-frame/small-1024.ltx", "small-1024"),
    ] {
        let src = std::fs::read(dir.join(format!("db/{db}.db"))).unwrap();
        let d = ltx::decode(&std::fs::read(dir.join(ltx_file)).unwrap()).unwrap();
        let image: Vec<u8> = d
            .pages
            .iter()
            .flat_map(|(_, p)| p.iter().copied())
            .collect();
        assert_eq!(image, src, "{ltx_file}");
        // Round trip through our encoder, both encodings, checksum-tracking and NoChecksum.
        for enc in [PageEncoding::Frame, PageEncoding::Block] {
            for flags in [0, FLAG_NO_CHECKSUM] {
                let mut e = Encoder::new(
                    Header {
                        flags,
                        ..d.header.clone()
                    },
                    enc,
                )
                .unwrap();
                for (pgno, data) in &d.pages {
                    e.add_page(*pgno, data).unwrap();
                }
                let post = if flags == 0 {
                    d.trailer.post_apply_checksum
                } else {
                    0
                };
                let out = e.finish(post).unwrap();
                let back = ltx::decode(&out).unwrap_or_else(|e| panic!("{ltx_file} {enc:?}: {e}"));
                assert_eq!(back.pages, d.pages, "{ltx_file} {enc:?}");
                assert_eq!(back.block_encoded, enc == PageEncoding::Block);
                assert_eq!(back.trailer.file_checksum & CHECKSUM_FLAG, CHECKSUM_FLAG);
            }
        }
    }
}

#[test]
fn corrupt_vectors_fail_naming_the_problem() {
    let Some(dir) = common::shared_ltx("corrupt_vectors_fail_naming_the_problem") else {
        return;
    };
    for file in ["encode-db/small-4096.ltx", "legacy-frame/small-4096.ltx"] {
        let good = std::fs::read(dir.join(file)).unwrap();
        // Flip a byte inside the first page payload.
        let mut b = good.clone();
        b[100 + 6 + 20] ^= 0xff;
        let e = ltx::decode(&b).unwrap_err().to_string();
        assert!(
            e.contains("page 1") || e.contains("checksum"),
            "{file}: {e}"
        );
        // Flip a byte of the stored file checksum.
        let mut b = good.clone();
        let n = b.len();
        b[n - 1] ^= 1;
        let e = ltx::decode(&b).unwrap_err().to_string();
        assert!(e.contains("file checksum mismatch"), "{file}: {e}");
        // Truncate.
        let e = ltx::decode(&good[..good.len() - 30])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("index") || e.contains("trailer") || e.contains("checksum"),
            "{file}: {e}"
        );
        // Bad magic.
        let mut b = good.clone();
        b[1] = b'Q';
        assert!(ltx::decode(&b).unwrap_err().to_string().contains("magic"));
        // Page index entry offset changed.
        let mut b = good.clone();
        let n = b.len();
        let idx_len = u64::from_be_bytes(b[n - 24..n - 16].try_into().unwrap()) as usize;
        let idx_start = n - 24 - idx_len;
        b[idx_start + 1] ^= 0x01; // offset varint of page 1 (100 -> 101)
        let e = ltx::decode(&b).unwrap_err().to_string();
        assert!(e.contains("page index"), "{file}: {e}");
    }
}

//! The 100-byte LTX header, the 16-byte trailer, page headers, file names and validation rules.

use super::LtxError;
use super::checksum::CHECKSUM_FLAG;

pub const HEADER_SIZE: usize = 100;
pub const TRAILER_SIZE: usize = 16;
pub const PAGE_HEADER_SIZE: usize = 6;
pub const MAGIC: &[u8; 4] = b"LTX1";
/// Header flag: database checksums are not tracked (required in Litestream replicas).
pub const FLAG_NO_CHECKSUM: u32 = 0x2;
/// Page flag: a u32 compressed length and a raw LZ4 block follow (block encoding).
pub const PAGE_FLAG_SIZE: u16 = 0x1;

/// The page holding byte offset 1 GiB, never stored in LTX files.
pub fn lock_page(page_size: u32) -> u32 {
    (0x4000_0000 / page_size) + 1
}

pub fn is_valid_page_size(page_size: u32) -> bool {
    (512..=65536).contains(&page_size) && page_size.is_power_of_two()
}

/// Decoded header fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub flags: u32,
    pub page_size: u32,
    pub commit: u32,
    pub min_txid: u64,
    pub max_txid: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub pre_apply_checksum: u64,
    pub wal_offset: i64,
    pub wal_size: i64,
    pub wal_salt1: u32,
    pub wal_salt2: u32,
    pub node_id: u64,
}

impl Header {
    pub fn is_snapshot(&self) -> bool {
        self.min_txid == 1
    }

    pub fn no_checksum(&self) -> bool {
        self.flags & FLAG_NO_CHECKSUM != 0
    }

    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..4].copy_from_slice(MAGIC);
        b[4..8].copy_from_slice(&self.flags.to_be_bytes());
        b[8..12].copy_from_slice(&self.page_size.to_be_bytes());
        b[12..16].copy_from_slice(&self.commit.to_be_bytes());
        b[16..24].copy_from_slice(&self.min_txid.to_be_bytes());
        b[24..32].copy_from_slice(&self.max_txid.to_be_bytes());
        b[32..40].copy_from_slice(&self.timestamp.to_be_bytes());
        b[40..48].copy_from_slice(&self.pre_apply_checksum.to_be_bytes());
        b[48..56].copy_from_slice(&self.wal_offset.to_be_bytes());
        b[56..64].copy_from_slice(&self.wal_size.to_be_bytes());
        b[64..68].copy_from_slice(&self.wal_salt1.to_be_bytes());
        b[68..72].copy_from_slice(&self.wal_salt2.to_be_bytes());
        b[72..80].copy_from_slice(&self.node_id.to_be_bytes());
        b
    }

    /// Parse and validate a header from the first 100 bytes of `b`.
    pub fn decode(b: &[u8]) -> Result<Self, LtxError> {
        if b.len() < HEADER_SIZE {
            return Err(LtxError::TooShort {
                len: b.len(),
                need: HEADER_SIZE,
            });
        }
        let mut magic = [0u8; 4];
        magic.copy_from_slice(&b[0..4]);
        if &magic != MAGIC {
            return Err(LtxError::BadMagic { found: magic });
        }
        let h = Header {
            flags: be32(&b[4..]),
            page_size: be32(&b[8..]),
            commit: be32(&b[12..]),
            min_txid: be64(&b[16..]),
            max_txid: be64(&b[24..]),
            timestamp: be64(&b[32..]) as i64,
            pre_apply_checksum: be64(&b[40..]),
            wal_offset: be64(&b[48..]) as i64,
            wal_size: be64(&b[56..]) as i64,
            wal_salt1: be32(&b[64..]),
            wal_salt2: be32(&b[68..]),
            node_id: be64(&b[72..]),
        };
        h.validate()?;
        Ok(h)
    }

    /// Every header rule of superfly/ltx.
    pub fn validate(&self) -> Result<(), LtxError> {
        let err = |s: String| Err(LtxError::Header(s));
        if self.flags & !FLAG_NO_CHECKSUM != 0 {
            return err(format!("unknown flags {:#010x}", self.flags));
        }
        if !is_valid_page_size(self.page_size) {
            return err(format!("invalid page size {}", self.page_size));
        }
        if self.min_txid == 0 {
            return err("min TXID is 0".into());
        }
        if self.max_txid < self.min_txid {
            return err(format!(
                "max TXID {:016x} below min TXID {:016x}",
                self.max_txid, self.min_txid
            ));
        }
        if self.wal_offset < 0 {
            return err(format!("negative WAL offset {}", self.wal_offset));
        }
        if self.wal_size < 0 {
            return err(format!("negative WAL size {}", self.wal_size));
        }
        if (self.wal_salt1 != 0 || self.wal_salt2 != 0) && self.wal_offset == 0 {
            return err("WAL salts set but WAL offset is 0".into());
        }
        if self.wal_size != 0 && self.wal_offset == 0 {
            return err("WAL size set but WAL offset is 0".into());
        }
        if self.no_checksum() {
            if self.pre_apply_checksum != 0 {
                return err("pre-apply checksum set with NoChecksum flag".into());
            }
        } else if self.is_snapshot() {
            if self.pre_apply_checksum != 0 {
                return err("pre-apply checksum set on a snapshot".into());
            }
        } else {
            if self.pre_apply_checksum == 0 {
                return err("pre-apply checksum required on a non-snapshot file".into());
            }
            if self.pre_apply_checksum & CHECKSUM_FLAG == 0 {
                return err("pre-apply checksum missing flag bit 63".into());
            }
        }
        Ok(())
    }
}

/// The 16-byte trailer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trailer {
    pub post_apply_checksum: u64,
    pub file_checksum: u64,
}

impl Trailer {
    pub fn decode(b: &[u8], header: &Header) -> Result<Self, LtxError> {
        let t = Trailer {
            post_apply_checksum: be64(b),
            file_checksum: be64(&b[8..]),
        };
        if header.no_checksum() {
            if t.post_apply_checksum != 0 {
                return Err(LtxError::Trailer(
                    "post-apply checksum set with NoChecksum flag".into(),
                ));
            }
        } else if t.post_apply_checksum == 0 || t.post_apply_checksum & CHECKSUM_FLAG == 0 {
            return Err(LtxError::Trailer(format!(
                "post-apply checksum {:016x} invalid (must be non-zero with bit 63 set)",
                t.post_apply_checksum
            )));
        }
        if t.file_checksum & CHECKSUM_FLAG == 0 {
            return Err(LtxError::Trailer(format!(
                "file checksum {:016x} missing flag bit 63",
                t.file_checksum
            )));
        }
        Ok(t)
    }
}

pub(crate) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

pub(crate) fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// `<min 16 hex>-<max 16 hex>.ltx`, lowercase.
pub fn format_filename(min: u64, max: u64) -> String {
    format!("{min:016x}-{max:016x}.ltx")
}

/// Inverse of [`format_filename`]; `None` for anything Litestream's listing would skip.
pub fn parse_filename(name: &str) -> Option<(u64, u64)> {
    let b = name.as_bytes();
    if b.len() != 37 || b[16] != b'-' || &name[33..] != ".ltx" {
        return None;
    }
    let hex = |s: &str| {
        if s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            u64::from_str_radix(s, 16).ok()
        } else {
            None
        }
    };
    Some((hex(&name[0..16])?, hex(&name[17..33])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Header {
        Header {
            flags: FLAG_NO_CHECKSUM,
            page_size: 4096,
            commit: 3,
            min_txid: 2,
            max_txid: 2,
            timestamp: 1,
            ..Default::default()
        }
    }

    #[test]
    fn round_trip() {
        let h = Header {
            wal_offset: 32,
            wal_size: 100,
            wal_salt1: 7,
            wal_salt2: 9,
            ..ok()
        };
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn validation_rules() {
        let cases: Vec<(Header, &str)> = vec![
            (
                Header {
                    flags: 0x4 | FLAG_NO_CHECKSUM,
                    ..ok()
                },
                "unknown flags",
            ),
            (
                Header {
                    page_size: 1000,
                    ..ok()
                },
                "invalid page size",
            ),
            (
                Header {
                    page_size: 256,
                    ..ok()
                },
                "invalid page size",
            ),
            (
                Header {
                    page_size: 131072,
                    ..ok()
                },
                "invalid page size",
            ),
            (
                Header {
                    min_txid: 0,
                    ..ok()
                },
                "min TXID is 0",
            ),
            (
                Header {
                    max_txid: 1,
                    ..ok()
                },
                "below min TXID",
            ),
            (
                Header {
                    wal_offset: -1,
                    ..ok()
                },
                "negative WAL offset",
            ),
            (
                Header {
                    wal_size: -1,
                    wal_offset: 32,
                    ..ok()
                },
                "negative WAL size",
            ),
            (
                Header {
                    wal_salt1: 1,
                    ..ok()
                },
                "salts set",
            ),
            (
                Header {
                    wal_size: 10,
                    ..ok()
                },
                "WAL size set",
            ),
            (
                Header {
                    pre_apply_checksum: 5 | CHECKSUM_FLAG,
                    ..ok()
                },
                "NoChecksum",
            ),
            (Header { flags: 0, ..ok() }, "pre-apply checksum required"),
            (
                Header {
                    flags: 0,
                    pre_apply_checksum: 5,
                    ..ok()
                },
                "bit 63",
            ),
            (
                Header {
                    flags: 0,
                    min_txid: 1,
                    pre_apply_checksum: 5 | CHECKSUM_FLAG,
                    ..ok()
                },
                "on a snapshot",
            ),
        ];
        for (h, want) in cases {
            let e = h.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{h:?}: {e} (want {want})");
            assert!(Header::decode(&h.encode()).is_err());
        }
    }

    #[test]
    fn bad_magic_and_short() {
        let mut b = ok().encode();
        b[0] = b'X';
        assert!(matches!(Header::decode(&b), Err(LtxError::BadMagic { .. })));
        assert!(matches!(
            Header::decode(&b[..50]),
            Err(LtxError::TooShort { .. })
        ));
    }

    #[test]
    fn filenames() {
        assert_eq!(
            format_filename(1, 0x2a),
            "0000000000000001-000000000000002a.ltx"
        );
        assert_eq!(
            parse_filename("0000000000000001-000000000000002a.ltx"),
            Some((1, 0x2a))
        );
        assert_eq!(
            parse_filename("0000000000000001-000000000000002A.ltx"),
            None
        );
        assert_eq!(
            parse_filename("0000000000000001-000000000000002a.ltx.tmp"),
            None
        );
        assert_eq!(parse_filename("1-2.ltx"), None);
    }

    #[test]
    fn lock_pages() {
        assert_eq!(lock_page(4096), 262_145);
        assert_eq!(lock_page(65536), 16_385);
    }
}

//! CRC-64/GO-ISO (Go's `hash/crc64` with the ISO table) and the LTX database checksum.
//!
//! Reflected polynomial `0xD800000000000000`, init and final XOR all-ones. Every stored LTX
//! checksum has bit 63 set ([`CHECKSUM_FLAG`]), so a stored checksum is never 0 unless absent.

/// Bit 63, set on every stored checksum.
pub const CHECKSUM_FLAG: u64 = 1 << 63;

const POLY: u64 = 0xD800_0000_0000_0000;

/// Slicing-by-8 tables: `TABLES[0]` is the classic byte table; `TABLES[k][i]` is the CRC of
/// byte `i` followed by `k` zero bytes. Eight bytes are folded per step instead of one: a
/// restore or a snapshot checksums every byte of the database, and the byte-at-a-time loop
/// was the largest single cost of decoding a 210 MB snapshot.
const TABLES: [[u64; 256]; 8] = {
    let mut t = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

/// A streaming CRC-64/GO-ISO.
#[derive(Clone, Debug)]
pub struct Crc64 {
    state: u64,
}

impl Default for Crc64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc64 {
    pub fn new() -> Self {
        Self { state: !0 }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        let t = &TABLES;
        let mut crc = self.state;
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut eight = [0u8; 8];
            eight.copy_from_slice(w);
            let x = crc ^ u64::from_le_bytes(eight);
            crc = t[7][(x & 0xff) as usize]
                ^ t[6][((x >> 8) & 0xff) as usize]
                ^ t[5][((x >> 16) & 0xff) as usize]
                ^ t[4][((x >> 24) & 0xff) as usize]
                ^ t[3][((x >> 32) & 0xff) as usize]
                ^ t[2][((x >> 40) & 0xff) as usize]
                ^ t[1][((x >> 48) & 0xff) as usize]
                ^ t[0][(x >> 56) as usize];
        }
        for &b in words.remainder() {
            crc = t[0][((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        self.state = crc;
    }

    /// The plain CRC value (no flag bit).
    pub fn finish(&self) -> u64 {
        !self.state
    }
}

/// CRC-64/GO-ISO of one buffer.
pub fn crc64(bytes: &[u8]) -> u64 {
    let mut c = Crc64::new();
    c.update(bytes);
    c.finish()
}

/// The checksum of one database page as used by the rolling database checksum.
pub fn page_checksum(pgno: u32, data: &[u8]) -> u64 {
    let mut c = Crc64::new();
    c.update(&pgno.to_be_bytes());
    c.update(data);
    c.finish() | CHECKSUM_FLAG
}

/// The LTX database checksum of a whole database image (lock page skipped).
pub fn database_checksum(image: &[u8], page_size: u32) -> u64 {
    let lock = super::header::lock_page(page_size);
    let mut sum = 0u64;
    for (i, page) in image.chunks(page_size as usize).enumerate() {
        let pgno = i as u32 + 1;
        if pgno == lock {
            continue;
        }
        sum ^= page_checksum(pgno, page);
    }
    sum | CHECKSUM_FLAG
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc64(b"123456789"), 0xB909_56C7_75A4_1001);
        let mut c = Crc64::new();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.finish(), 0xB909_56C7_75A4_1001);
    }

    /// The byte-at-a-time definition, which the sliced loop must equal for any input and any
    /// split of it into updates.
    fn bytewise(bytes: &[u8]) -> u64 {
        let mut crc = !0u64;
        for &b in bytes {
            crc = TABLES[0][((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        !crc
    }

    #[test]
    fn sliced_equals_bytewise_for_every_length_and_split() {
        // Any bytes will do, as long as they are not all alike.
        let data: Vec<u8> = (0..4099u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        for len in (0..64).chain([511, 512, 4096, 4099]) {
            let want = bytewise(&data[..len]);
            assert_eq!(crc64(&data[..len]), want, "length {len}");
            for split in [1, 3, 7, 8, 9] {
                let mut c = Crc64::new();
                for part in data[..len].chunks(split) {
                    c.update(part);
                }
                assert_eq!(c.finish(), want, "length {len} in parts of {split}");
            }
        }
    }

    #[test]
    fn empty_database_checksum() {
        assert_eq!(database_checksum(&[], 4096), CHECKSUM_FLAG);
    }

    #[test]
    fn lock_page_is_skipped() {
        // 512-byte pages: lock page = 0x40000000/512 + 1. Build a sparse check via page_checksum.
        let lock = crate::ltx::header::lock_page(512);
        assert_eq!(lock, 2_097_153);
        let a = page_checksum(1, &[1; 512]);
        assert_ne!(a, page_checksum(2, &[1; 512]));
    }
}

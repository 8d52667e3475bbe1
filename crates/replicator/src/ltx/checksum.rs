//! CRC-64/GO-ISO (Go's `hash/crc64` with the ISO table) and the LTX database checksum.
//!
//! Reflected polynomial `0xD800000000000000`, init and final XOR all-ones. Every stored LTX
//! checksum has bit 63 set ([`CHECKSUM_FLAG`]), so a stored checksum is never 0 unless absent.

/// Bit 63, set on every stored checksum.
pub const CHECKSUM_FLAG: u64 = 1 << 63;

const POLY: u64 = 0xD800_0000_0000_0000;

const TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
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
        table[i] = crc;
        i += 1;
    }
    table
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
        let mut crc = self.state;
        for &b in bytes {
            crc = TABLE[((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8);
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

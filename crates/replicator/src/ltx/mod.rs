//! The LTX file format (superfly/ltx v3 layout, as Litestream 0.5 writes it).
//!
//! `header` holds the fixed-size structures and validation rules, `encoder`/`decoder` the page
//! block and page index, `checksum` CRC-64/GO-ISO.

pub mod checksum;
pub mod decoder;
pub mod encoder;
pub mod header;
pub mod lz4frame;

pub use checksum::{CHECKSUM_FLAG, Crc64, crc64, database_checksum, page_checksum};
pub use decoder::{DecodedFile, IndexEntry, StreamedFile, decode, decode_header, decode_stream};
pub use encoder::{Encoder, PageEncoding};
pub use header::{
    FLAG_NO_CHECKSUM, HEADER_SIZE, Header, PAGE_FLAG_SIZE, PAGE_HEADER_SIZE, TRAILER_SIZE, Trailer,
    format_filename, lock_page, parse_filename,
};

/// Everything that can be wrong with an LTX file; each variant says what and where.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LtxError {
    #[error("file too short: {len} bytes, need at least {need}")]
    TooShort { len: usize, need: usize },
    #[error("bad magic {found:02x?}, expected \"LTX1\"")]
    BadMagic { found: [u8; 4] },
    #[error("header: {0}")]
    Header(String),
    #[error("page {pgno} at offset {offset}: {what}")]
    Page {
        pgno: u32,
        offset: usize,
        what: String,
    },
    #[error("page order: {0}")]
    Order(String),
    #[error("page index: {0}")]
    Index(String),
    #[error("trailer: {0}")]
    Trailer(String),
    #[error("file checksum mismatch: stored {stored:016x}, computed {computed:016x}")]
    FileChecksum { stored: u64, computed: u64 },
    #[error("post-apply checksum mismatch: stored {stored:016x}, computed {computed:016x}")]
    PostApplyChecksum { stored: u64, computed: u64 },
    #[error("reading: {0}")]
    Io(String),
}

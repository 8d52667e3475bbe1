//! `ltx list|verify|dump FILE...`

use std::path::PathBuf;

use clap::Subcommand;

use crate::ltx;
use crate::time::format_rfc3339;

#[derive(Debug, Subcommand)]
pub enum LtxCommand {
    /// One line per file: TXIDs, commit, pages, timestamp, flags.
    List { files: Vec<PathBuf> },
    /// Fully decode and verify each file (exit 1 if any is bad).
    Verify { files: Vec<PathBuf> },
    /// Header, trailer and page index of each file.
    Dump { files: Vec<PathBuf> },
}

pub fn run(cmd: LtxCommand) -> i32 {
    let mut code = 0;
    match cmd {
        LtxCommand::List { files } => {
            println!(
                "{:<16} {:<16} {:>8} {:>8} {:>6} {:<24} FILE",
                "MIN", "MAX", "COMMIT", "PAGES", "FLAGS", "TIMESTAMP"
            );
            for f in files {
                match std::fs::read(&f)
                    .map_err(|e| e.to_string())
                    .and_then(|b| ltx::decode(&b).map_err(|e| e.to_string()))
                {
                    Ok(d) => println!(
                        "{:016x} {:016x} {:>8} {:>8} {:>#6x} {:<24} {}",
                        d.header.min_txid,
                        d.header.max_txid,
                        d.header.commit,
                        d.pages.len(),
                        d.header.flags,
                        format_rfc3339(d.header.timestamp),
                        f.display()
                    ),
                    Err(e) => {
                        eprintln!("{}: {e}", f.display());
                        code = 1;
                    }
                }
            }
        }
        LtxCommand::Verify { files } => {
            for f in files {
                match std::fs::read(&f)
                    .map_err(|e| e.to_string())
                    .and_then(|b| ltx::decode(&b).map_err(|e| e.to_string()))
                {
                    Ok(d) => println!(
                        "{}: ok ({} pages, file checksum {:016x})",
                        f.display(),
                        d.pages.len(),
                        d.trailer.file_checksum
                    ),
                    Err(e) => {
                        println!("{}: INVALID: {e}", f.display());
                        code = 1;
                    }
                }
            }
        }
        LtxCommand::Dump { files } => {
            for f in files {
                match std::fs::read(&f)
                    .map_err(|e| e.to_string())
                    .and_then(|b| ltx::decode(&b).map_err(|e| e.to_string()))
                {
                    Ok(d) => {
                        let h = &d.header;
                        println!("# {}", f.display());
                        println!(
                            "Header:\n  flags: {:#010x}\n  page size: {}\n  commit: {}\n  min TXID: {:016x}\n  max TXID: {:016x}\n  timestamp: {} ({} ms)\n  pre-apply checksum: {:016x}\n  WAL offset: {}\n  WAL size: {}\n  WAL salts: {:08x} {:08x}\n  node ID: {}",
                            h.flags,
                            h.page_size,
                            h.commit,
                            h.min_txid,
                            h.max_txid,
                            format_rfc3339(h.timestamp),
                            h.timestamp,
                            h.pre_apply_checksum,
                            h.wal_offset,
                            h.wal_size,
                            h.wal_salt1,
                            h.wal_salt2,
                            h.node_id
                        );
                        println!(
                            "  encoding: {}",
                            if d.block_encoded {
                                "lz4 block"
                            } else {
                                "lz4 frame"
                            }
                        );
                        println!(
                            "Trailer:\n  post-apply checksum: {:016x}\n  file checksum: {:016x}",
                            d.trailer.post_apply_checksum, d.trailer.file_checksum
                        );
                        println!("Page index:");
                        for e in &d.index {
                            println!(
                                "  page {:>8}  offset {:>10}  size {:>6}",
                                e.pgno, e.offset, e.size
                            );
                        }
                    }
                    Err(e) => {
                        eprintln!("{}: {e}", f.display());
                        code = 1;
                    }
                }
            }
        }
    }
    code
}

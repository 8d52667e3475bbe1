//! One LZ4 frame per page, written and read directly (no per-page encoder/decoder buffers):
//! FLG 0x64 (version 01, independent blocks, content checksum), BD 0x40 (64 KiB blocks), as
//! Go's pierrec/lz4 wrote them for Litestream <= 0.5.15.

const MAGIC: [u8; 4] = [0x04, 0x22, 0x4D, 0x18];
const FLG: u8 = 0x64;
const BD: u8 = 0x40;
const MAX_BLOCK: usize = 64 * 1024;

fn xxh32(data: &[u8]) -> u32 {
    twox_hash::XxHash32::oneshot(0, data)
}

/// Header checksum byte: second byte of xxh32 over FLG..BD.
fn header_checksum(desc: &[u8]) -> u8 {
    (xxh32(desc) >> 8) as u8
}

/// Append one LZ4 frame holding `data` to `out`.
pub fn encode(data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.push(FLG);
    out.push(BD);
    out.push(header_checksum(&[FLG, BD]));
    for chunk in data.chunks(MAX_BLOCK) {
        let c = lz4_flex::block::compress(chunk);
        if c.len() < chunk.len() {
            out.extend_from_slice(&(c.len() as u32).to_le_bytes());
            out.extend_from_slice(&c);
        } else {
            out.extend_from_slice(&((chunk.len() as u32) | 0x8000_0000).to_le_bytes());
            out.extend_from_slice(chunk);
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&xxh32(data).to_le_bytes());
}

/// Decode the frame at the start of `b` into exactly `out.len()` bytes; returns the frame
/// length. Verifies the header checksum and, when present, the content checksum.
pub fn decode(b: &[u8], out: &mut [u8]) -> Result<usize, String> {
    let need = |n: usize| {
        if b.len() < n {
            Err(format!("truncated at byte {}", b.len()))
        } else {
            Ok(())
        }
    };
    need(7)?;
    if b[..4] != MAGIC {
        return Err(format!("bad magic {:02x?}", &b[..4]));
    }
    let flg = b[4];
    if flg >> 6 != 1 {
        return Err(format!("unsupported frame version in FLG {flg:#04x}"));
    }
    let block_checksum = flg & 0x10 != 0;
    let content_size = flg & 0x08 != 0;
    let content_checksum = flg & 0x04 != 0;
    let dict = flg & 0x01 != 0;
    if dict {
        return Err("dictionary frames are not supported".into());
    }
    let hdr_end = 6 + if content_size { 8 } else { 0 };
    need(hdr_end + 1)?;
    if header_checksum(&b[4..hdr_end]) != b[hdr_end] {
        return Err("header checksum mismatch".into());
    }
    let mut pos = hdr_end + 1;
    let mut filled = 0usize;
    loop {
        need(pos + 4)?;
        let v = u32::from_le_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]);
        pos += 4;
        if v == 0 {
            break;
        }
        let n = (v & 0x7fff_ffff) as usize;
        need(pos.saturating_add(n))?;
        let src = &b[pos..pos + n];
        let room = &mut out[filled..];
        let got = if v & 0x8000_0000 != 0 {
            if n > room.len() {
                return Err(format!("frame holds more than {} bytes", out.len()));
            }
            room[..n].copy_from_slice(src);
            n
        } else {
            lz4_flex::block::decompress_into(src, room).map_err(|e| format!("block: {e}"))?
        };
        filled += got;
        pos += n;
        if block_checksum {
            pos += 4;
        }
    }
    if filled != out.len() {
        return Err(format!(
            "decompressed to {filled} bytes, expected {}",
            out.len()
        ));
    }
    if content_checksum {
        need(pos + 4)?;
        let stored = u32::from_le_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]);
        if stored != xxh32(out) {
            return Err("content checksum mismatch".into());
        }
        pos += 4;
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn interoperates_with_lz4_flex_frames() {
        for data in [
            vec![7u8; 4096],
            (0..65536u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ] {
            let mut ours = Vec::new();
            encode(&data, &mut ours);
            assert_eq!(&ours[4..6], &[0x64, 0x40]);
            let mut back = Vec::new();
            lz4_flex::frame::FrameDecoder::new(&ours[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data);
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .content_checksum(true);
            let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            e.write_all(&data).unwrap();
            let theirs = e.finish().unwrap();
            let mut out = vec![0u8; data.len()];
            assert_eq!(decode(&theirs, &mut out).unwrap(), theirs.len());
            assert_eq!(out, data);
            let mut bad = theirs.clone();
            let n = bad.len();
            bad[n - 1] ^= 1;
            assert!(
                decode(&bad, &mut out)
                    .unwrap_err()
                    .contains("content checksum")
            );
        }
    }
}

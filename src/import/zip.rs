//! Zip archives, as much of the format as exports need: writing deflated entries, and reading
//! stored or deflated ones (what Plausible, `zip` and every desktop archiver write). No ZIP64 and
//! no encryption: archives that need them are refused, not misread.

use std::io::{Read, Write};

/// Why an archive cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    #[error("not a zip archive (no end of central directory)")]
    NotZip,
    #[error("the archive is truncated or its directory is damaged")]
    Damaged,
    #[error("entry `{0}` uses ZIP64 or encryption, which are not supported")]
    Unsupported(String),
    #[error(
        "entry `{0}` uses compression method {1}; only stored (0) and deflate (8) are supported"
    )]
    Method(String, u16),
    #[error("entry `{0}` is larger than {1} bytes")]
    TooLarge(String, u64),
    #[error("entry `{0}` does not match its checksum")]
    Checksum(String),
    #[error("cannot write the archive: {0}")]
    Io(#[from] std::io::Error),
}

const LOCAL: u32 = 0x0403_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;
/// Bit 11: names are UTF-8.
const UTF8: u16 = 1 << 11;

/// A zip archive of these entries (name, content), each deflated.
pub fn write(entries: &[(String, Vec<u8>)]) -> Result<Vec<u8>, ZipError> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, content) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(content);
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(content)?;
        let packed = enc.finish()?;
        let too_big = |n: usize| {
            u32::try_from(n).map_err(|_| ZipError::TooLarge(name.clone(), u32::MAX.into()))
        };
        let (size, packed_size, offset) = (
            too_big(content.len())?,
            too_big(packed.len())?,
            too_big(out.len())?,
        );
        let header = |sig: u32, buf: &mut Vec<u8>| {
            buf.extend_from_slice(&sig.to_le_bytes());
            if sig == CENTRAL {
                buf.extend_from_slice(&20u16.to_le_bytes()); // made by
            }
            for v in [20u16, UTF8, 8, 0, 0x21] {
                // version needed, flags, method, time, date (1980-01-01)
                buf.extend_from_slice(&v.to_le_bytes());
            }
            for v in [crc.sum(), packed_size, size] {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            buf.extend_from_slice(&(name.len() as u16).to_le_bytes());
            buf.extend_from_slice(&0u16.to_le_bytes()); // extra
            if sig == CENTRAL {
                // comment length, disk, internal and external attributes, offset
                buf.extend_from_slice(&[0; 6]);
                buf.extend_from_slice(&0u32.to_le_bytes());
                buf.extend_from_slice(&offset.to_le_bytes());
            }
            buf.extend_from_slice(name.as_bytes());
        };
        header(LOCAL, &mut out);
        out.extend_from_slice(&packed);
        header(CENTRAL, &mut central);
    }
    let central_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&END.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // disk numbers
    let n = entries.len() as u16;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment
    Ok(out)
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ZipError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(ZipError::Damaged)
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ZipError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(ZipError::Damaged)
}

/// Whether the bytes begin like a zip archive.
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(&LOCAL.to_le_bytes()) || bytes.starts_with(&END.to_le_bytes())
}

/// The archive's files (name, content), directories left out. An entry may decompress to at most
/// `max_entry` bytes.
pub fn read(bytes: &[u8], max_entry: u64) -> Result<Vec<(String, Vec<u8>)>, ZipError> {
    // The end record is the last 22 bytes, or earlier by the length of a comment.
    let end = (0..bytes.len().saturating_sub(21))
        .rev()
        .take(65_536 + 22)
        .find(|&i| u32_at(bytes, i).ok() == Some(END))
        .ok_or(ZipError::NotZip)?;
    let count = u16_at(bytes, end + 10)? as usize;
    let mut at = u32_at(bytes, end + 16)? as usize;
    let mut files = Vec::with_capacity(count);
    for _ in 0..count {
        if u32_at(bytes, at)? != CENTRAL {
            return Err(ZipError::Damaged);
        }
        let flags = u16_at(bytes, at + 8)?;
        let method = u16_at(bytes, at + 10)?;
        let crc = u32_at(bytes, at + 16)?;
        let packed_size = u32_at(bytes, at + 20)?;
        let size = u32_at(bytes, at + 24)?;
        let name_len = u16_at(bytes, at + 28)? as usize;
        let extra_len = u16_at(bytes, at + 30)? as usize;
        let comment_len = u16_at(bytes, at + 32)? as usize;
        let local = u32_at(bytes, at + 42)? as usize;
        let name_bytes = bytes
            .get(at + 46..at + 46 + name_len)
            .ok_or(ZipError::Damaged)?;
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        at += 46 + name_len + extra_len + comment_len;
        if name.ends_with('/') {
            continue;
        }
        if flags & 1 != 0 || [packed_size, size, local as u32].contains(&u32::MAX) {
            return Err(ZipError::Unsupported(name));
        }
        if u64::from(size) > max_entry {
            return Err(ZipError::TooLarge(name, max_entry));
        }
        if u32_at(bytes, local)? != LOCAL {
            return Err(ZipError::Damaged);
        }
        let start =
            local + 30 + u16_at(bytes, local + 26)? as usize + u16_at(bytes, local + 28)? as usize;
        let packed = bytes
            .get(start..start + packed_size as usize)
            .ok_or(ZipError::Damaged)?;
        let content = match method {
            0 => packed.to_vec(),
            8 => {
                let mut out = Vec::with_capacity(size as usize);
                flate2::read::DeflateDecoder::new(packed)
                    .take(u64::from(size) + 1)
                    .read_to_end(&mut out)
                    .map_err(|_| ZipError::Damaged)?;
                out
            }
            other => return Err(ZipError::Method(name, other)),
        };
        let mut check = flate2::Crc::new();
        check.update(&content);
        if content.len() != size as usize || check.sum() != crc {
            return Err(ZipError::Checksum(name));
        }
        files.push((name, content));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_archives_read_back() {
        let entries = vec![
            (
                "imported_visitors_20260101_20260102.csv".to_owned(),
                b"date,visitors\r\n".repeat(50),
            ),
            ("dir/ünïcode.csv".to_owned(), Vec::new()),
        ];
        let zip = write(&entries).unwrap();
        assert!(is_zip(&zip));
        assert_eq!(read(&zip, 1 << 20).unwrap(), entries);
        assert!(matches!(read(&zip, 10), Err(ZipError::TooLarge(..))));
    }

    #[test]
    fn damaged_archives_are_errors_not_panics() {
        let zip = write(&[("a.csv".to_owned(), b"hello".to_vec())]).unwrap();
        assert!(matches!(read(b"hello", 100), Err(ZipError::NotZip)));
        for cut in 0..zip.len() {
            // Any prefix or corruption is refused or read; it never panics.
            let _ = read(&zip[..cut], 100);
            let mut bad = zip.clone();
            bad[cut] ^= 0xff;
            let _ = read(&bad, 100);
        }
    }
}

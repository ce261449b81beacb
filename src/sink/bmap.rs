//! `.bmap` files (bmaptool's block map, format 2.0) for prepared images.
//!
//! `bmaptool create` maps the blocks a file *stores*, which for a Raspberry Pi OS image is
//! nearly everything: the free space of its file systems holds old bytes, not holes. pinode
//! knows which blocks the file systems use ([`crate::disk::usage`]), so its map is the
//! smaller, still-correct one, and `bmaptool copy` writes (and checks, range by range) only
//! those.

use std::fmt::Write as _;
use std::io;

use sha2::{Digest, Sha256};

use crate::disk::usage::{MAP_BLOCK, RangeSet, ReadAt};

/// Renders the bmap of the `len`-byte `image` whose blocks in use are `map`, with a SHA-256
/// per range and the file's own checksum, as bmaptool expects them.
pub(crate) fn render(image: &dyn ReadAt, len: u64, map: &RangeSet) -> io::Result<String> {
    let blocks = len.div_ceil(MAP_BLOCK);
    let aligned = map.aligned(MAP_BLOCK, blocks * MAP_BLOCK);
    let mapped_blocks = aligned.bytes() / MAP_BLOCK;
    let mut ranges = String::new();
    let mut buf = vec![0u8; 1 << 20];
    for range in aligned.iter() {
        let (first, last) = (range.start / MAP_BLOCK, range.end / MAP_BLOCK - 1);
        let mut hash = Sha256::new();
        let mut at = range.start;
        let end = range.end.min(len);
        while at < end {
            let n = (end - at).min(buf.len() as u64) as usize;
            image.read_bytes_at(&mut buf[..n], at)?;
            hash.update(&buf[..n]);
            at += n as u64;
        }
        let span = if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        };
        let _ = writeln!(
            ranges,
            "        <Range chksum=\"{}\"> {span} </Range>",
            hex::encode(hash.finalize())
        );
    }
    let percent = if blocks == 0 {
        0.0
    } else {
        mapped_blocks as f64 * 100.0 / blocks as f64
    };
    let zeros = "0".repeat(64);
    let text = format!(
        "<?xml version=\"1.0\" ?>\n\
         <!-- Block map of an image prepared by pinode: only the blocks its file systems use\n\
         \x20    (and their metadata, the partition table, anything outside a known file\n\
         \x20    system). Write it with: bmaptool copy IMAGE DEVICE -->\n\
         <bmap version=\"2.0\">\n\
         \x20   <ImageSize> {len} </ImageSize>\n\
         \x20   <BlockSize> {MAP_BLOCK} </BlockSize>\n\
         \x20   <BlocksCount> {blocks} </BlocksCount>\n\
         \x20   <!-- Mapped: {percent:.1}% -->\n\
         \x20   <MappedBlocksCount> {mapped_blocks} </MappedBlocksCount>\n\
         \x20   <ChecksumType> sha256 </ChecksumType>\n\
         \x20   <!-- Computed with this value all ASCII zeros. -->\n\
         \x20   <BmapFileChecksum> {zeros} </BmapFileChecksum>\n\
         \x20   <BlockMap>\n\
         {ranges}\
         \x20   </BlockMap>\n\
         </bmap>\n"
    );
    let own = hex::encode(Sha256::digest(text.as_bytes()));
    Ok(text.replacen(&zeros, &own, 1))
}

/// A `.bmap` file read back: the image size it was made for and the byte ranges it maps.
#[derive(Debug, Clone)]
pub(crate) struct BlockMap {
    pub(crate) image_size: u64,
    pub(crate) map: RangeSet,
}

/// Why a `.bmap` could not be used; `line` is 1-based.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub(crate) struct BmapError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

/// Reads the size, block size and ranges of a bmap (format 1.x or 2.x, as bmaptool and
/// [`render`] write them). Only what writing needs is read: the per-range checksums are not
/// checked here (the image's `.sha256` and the card's read-back are).
pub(crate) fn parse(text: &str) -> Result<BlockMap, BmapError> {
    let mut image_size = None;
    let mut block_size = None;
    let mut ranges = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |message: String| BmapError {
            line: i + 1,
            message,
        };
        let number = |value: &str| -> Result<u64, BmapError> {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| err(format!("not a number: {:?}", value.trim())))
        };
        let line = line.trim();
        if let Some(v) = element(line, "ImageSize") {
            image_size = Some(number(v)?);
        } else if let Some(v) = element(line, "BlockSize") {
            block_size = Some(number(v)?).filter(|b| *b > 0);
            if block_size.is_none() {
                return Err(err("BlockSize is 0".into()));
            }
        } else if line.starts_with("<Range") {
            let Some(block) = block_size else {
                return Err(err("a Range before BlockSize".into()));
            };
            let Some(v) = line
                .split_once('>')
                .and_then(|(_, rest)| rest.split_once("</Range>"))
                .map(|(v, _)| v.trim())
            else {
                return Err(err("a Range that is not on one line".into()));
            };
            let (first, last) = match v.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => (number(v)?, number(v)?),
            };
            let start = first.checked_mul(block);
            let end = last.checked_add(1).and_then(|l| l.checked_mul(block));
            match (start, end) {
                (Some(start), Some(end)) if first <= last => ranges.push(start..end),
                _ => return Err(err(format!("an impossible range: {v}"))),
            }
        }
    }
    let Some(image_size) = image_size else {
        return Err(BmapError {
            line: text.lines().count(),
            message: "no ImageSize".into(),
        });
    };
    if let Some(beyond) = ranges.iter().find(|r| r.start >= image_size) {
        return Err(BmapError {
            line: 0,
            message: format!(
                "a range starts at byte {} past the image's {image_size} bytes",
                beyond.start
            ),
        });
    }
    let ranges = ranges
        .into_iter()
        .map(|r| r.start..r.end.min(image_size))
        .collect();
    Ok(BlockMap {
        image_size,
        map: RangeSet::from_unsorted(ranges),
    })
}

/// The text of `<NAME> … </NAME>` when `line` is that element.
fn element<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.strip_prefix(&format!("<{name}>"))?
        .strip_suffix(&format!("</{name}>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bytes(Vec<u8>);
    impl ReadAt for Bytes {
        fn read_bytes_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            let at = offset as usize;
            buf.copy_from_slice(&self.0[at..at + buf.len()]);
            Ok(())
        }
    }

    #[test]
    fn ranges_checksums_and_the_file_checksum() {
        let image = Bytes((0..20_000u32).map(|i| i as u8).collect());
        let map = RangeSet::from_unsorted(vec![0..4096, 12_288..20_000]);
        let text = render(&image, 20_000, &map).unwrap();
        assert!(text.contains("<BlocksCount> 5 </BlocksCount>"), "{text}");
        assert!(text.contains("<MappedBlocksCount> 3 </MappedBlocksCount>"));
        let first = hex::encode(Sha256::digest(&image.0[..4096]));
        let last = hex::encode(Sha256::digest(&image.0[12_288..]));
        assert!(text.contains(&format!("<Range chksum=\"{first}\"> 0 </Range>")));
        assert!(text.contains(&format!("<Range chksum=\"{last}\"> 3-4 </Range>")));
        // The file checksum is that of the file with the checksum zeroed.
        let start = text.find("<BmapFileChecksum> ").unwrap() + 19;
        let own = text[start..start + 64].to_string();
        let zeroed = text.replacen(&own, &"0".repeat(64), 1);
        assert_eq!(hex::encode(Sha256::digest(zeroed.as_bytes())), own);
    }

    #[test]
    fn a_rendered_map_reads_back() {
        let image = Bytes(vec![1u8; 20_000]);
        let map = RangeSet::from_unsorted(vec![0..4096, 12_288..20_000]);
        let read = parse(&render(&image, 20_000, &map).unwrap()).unwrap();
        assert_eq!(read.image_size, 20_000);
        assert_eq!(
            read.map.iter().cloned().collect::<Vec<_>>(),
            vec![0..4096, 12_288..20_000]
        );
        let bad = "<BlockSize> 4096 </BlockSize>\n<Range chksum=\"x\"> 9-2 </Range>\n";
        assert_eq!(parse(bad).unwrap_err().line, 2);
        assert!(parse("<BlockSize> 4096 </BlockSize>\n").is_err());
    }
}

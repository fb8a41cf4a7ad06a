//! Checks the header of an encapsulated frame against the data set before a codec sees it.
//!
//! The dicom-rs adapters size their output from Rows × Columns but let the codec allocate
//! from the stream's own header, and copy one into the other with slice indexing: a JPEG
//! 2000 codestream claiming 60000x60000 inside a 100x100 DICOM would make openjp2 allocate
//! for the former, then panic. So the stream header must agree with Rows, Columns and
//! Samples per Pixel before any decoding.

use super::render::Layout;

/// JPEG baseline, extended, lossless (process 14, and its selection value 1).
const JPEG: [&str; 4] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
];

/// JPEG 2000 (lossless only, lossy, part 2 both) and High-Throughput JPEG 2000.
const JPEG_2000: [&str; 7] = [
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
];

const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// Most tiles a JPEG 2000 codestream may declare (the tile index is 16 bits anyway).
const MAX_J2K_TILES: u64 = 65_535;

/// `Err(detail)` completes "its <transfer syntax> pixel data {detail}".
pub(super) fn check(ts_uid: &str, fragment: &[u8], layout: &Layout) -> Result<(), String> {
    if JPEG.contains(&ts_uid) {
        jpeg(fragment, layout)
    } else if JPEG_2000.contains(&ts_uid) {
        jpeg_2000(fragment, layout)
    } else if ts_uid == RLE_LOSSLESS {
        rle(fragment, layout)
    } else {
        Ok(())
    }
}

fn agree(width: u32, height: u32, components: u32, layout: &Layout) -> Result<(), String> {
    if width != layout.cols || height != layout.rows {
        return Err(format!(
            "is {width}x{height} pixels but the data set says {}x{}",
            layout.cols, layout.rows
        ));
    }
    if components != u32::from(layout.samples_per_pixel) {
        return Err(format!(
            "has {components} components but the data set says {} samples per pixel",
            layout.samples_per_pixel
        ));
    }
    Ok(())
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

/// Walks the markers from SOI to the first SOFn.
fn jpeg(b: &[u8], layout: &Layout) -> Result<(), String> {
    let bad = || "is not a JPEG stream with a readable frame header".to_string();
    if b.get(0..2) != Some(&[0xFF, 0xD8]) {
        return Err(bad());
    }
    let mut pos = 2;
    loop {
        // Skip fill bytes before a marker.
        while b.get(pos) == Some(&0xFF) && b.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        if b.get(pos) != Some(&0xFF) {
            return Err(bad());
        }
        let marker = *b.get(pos + 1).ok_or_else(bad)?;
        let length = be16(b, pos + 2).ok_or_else(bad)? as usize;
        if length < 2 {
            return Err(bad());
        }
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            let precision = u32::from(*b.get(pos + 4).ok_or_else(bad)?);
            let height = be16(b, pos + 5).ok_or_else(bad)?;
            let width = be16(b, pos + 7).ok_or_else(bad)?;
            let components = u32::from(*b.get(pos + 9).ok_or_else(bad)?);
            if !(2..=16).contains(&precision) {
                return Err(format!("has a sample precision of {precision} bits"));
            }
            if height == 0 {
                return Err("leaves its height to a DNL marker, which is not supported".into());
            }
            return agree(width, height, components, layout);
        }
        if matches!(marker, 0xD8..=0xDA) {
            // A second SOI, EOI or a scan before any frame header.
            return Err(bad());
        }
        pos += 2 + length;
    }
}

/// Reads the SIZ marker segment of a J2K codestream (or of the `jp2c` box of a JP2 file).
fn jpeg_2000(b: &[u8], layout: &Layout) -> Result<(), String> {
    let bad = || "is not a JPEG 2000 codestream with a readable SIZ header".to_string();
    let start = if b.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
        0
    } else if b.starts_with(&[0, 0, 0, 0x0C, b'j', b'P', b' ', b' ']) {
        // JP2 file format: look for the codestream in the first 64 KiB.
        let window = &b[..b.len().min(64 * 1024)];
        window
            .windows(4)
            .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])
            .ok_or_else(bad)?
    } else {
        return Err(bad());
    };
    let siz = start + 4; // at Lsiz
    let x_siz = be32(b, siz + 4).ok_or_else(bad)?;
    let y_siz = be32(b, siz + 8).ok_or_else(bad)?;
    let x_osiz = be32(b, siz + 12).ok_or_else(bad)?;
    let y_osiz = be32(b, siz + 16).ok_or_else(bad)?;
    let xt_siz = be32(b, siz + 20).ok_or_else(bad)?;
    let yt_siz = be32(b, siz + 24).ok_or_else(bad)?;
    let xt_osiz = be32(b, siz + 28).ok_or_else(bad)?;
    let yt_osiz = be32(b, siz + 32).ok_or_else(bad)?;
    let c_siz = be16(b, siz + 36).ok_or_else(bad)?;
    if x_osiz >= x_siz || y_osiz >= y_siz || xt_siz == 0 || yt_siz == 0 {
        return Err(bad());
    }
    if xt_osiz > x_osiz || yt_osiz > y_osiz {
        return Err(bad());
    }
    let tiles_x = u64::from(x_siz - xt_osiz).div_ceil(u64::from(xt_siz));
    let tiles_y = u64::from(y_siz - yt_osiz).div_ceil(u64::from(yt_siz));
    if tiles_x * tiles_y > MAX_J2K_TILES {
        return Err(format!(
            "declares {} tiles, over the limit of {MAX_J2K_TILES}",
            tiles_x * tiles_y
        ));
    }
    for c in 0..c_siz as usize {
        let at = siz + 38 + 3 * c;
        let s_siz = *b.get(at).ok_or_else(bad)?;
        let (dx, dy) = (
            *b.get(at + 1).ok_or_else(bad)?,
            *b.get(at + 2).ok_or_else(bad)?,
        );
        if (s_siz & 0x7F) + 1 > 16 {
            return Err(format!(
                "has a component of {} bits, over 16",
                (s_siz & 0x7F) + 1
            ));
        }
        if dx != 1 || dy != 1 {
            return Err("has subsampled components, which are not supported".into());
        }
    }
    agree(x_siz - x_osiz, y_siz - y_osiz, c_siz, layout)
}

/// The 64-byte RLE header: the number of segments must match the layout.
fn rle(b: &[u8], layout: &Layout) -> Result<(), String> {
    let le32 = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes([
            *b.get(at)?,
            *b.get(at + 1)?,
            *b.get(at + 2)?,
            *b.get(at + 3)?,
        ]))
    };
    let segments = le32(0).ok_or("is shorter than the 64-byte RLE header")?;
    let expected = u32::from(layout.samples_per_pixel) * u32::from(layout.bits_allocated / 8);
    if segments != expected {
        return Err(format!(
            "has {segments} RLE segments where the data set implies {expected}"
        ));
    }
    let mut offsets = Vec::with_capacity(segments as usize + 1);
    let mut previous = 64;
    for i in 0..segments as usize {
        let offset = le32(4 + 4 * i).ok_or("is shorter than the 64-byte RLE header")?;
        if offset < previous || offset as usize > b.len() {
            return Err("has RLE segment offsets out of order or out of range".into());
        }
        offsets.push(offset as usize);
        previous = offset;
    }
    offsets.push(b.len());
    // dicom-rs indexes into each decoded segment up to Rows × Columns: a short segment would
    // make it panic, so count what each one decodes to first.
    let needed = layout.rows as usize * layout.cols as usize;
    for pair in offsets.windows(2) {
        if packbits_len(&b[pair[0]..pair[1]], needed) < needed {
            return Err(
                "has an RLE segment that decodes to fewer samples than the image has".into(),
            );
        }
    }
    Ok(())
}

/// How many bytes a PackBits segment decodes to (counting up to `cap`), without decoding.
fn packbits_len(segment: &[u8], cap: usize) -> usize {
    let (mut i, mut out) = (0usize, 0usize);
    while i < segment.len() && out < cap {
        let n = segment[i] as i8;
        i += 1;
        if n >= 0 {
            let literal = (n as usize + 1).min(segment.len() - i);
            out += literal;
            i += literal;
        } else if n != -128 {
            if i >= segment.len() {
                break;
            }
            out += (1 - isize::from(n)) as usize;
            i += 1;
        }
    }
    out
}

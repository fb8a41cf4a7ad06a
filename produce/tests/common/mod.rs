//! Helpers shared by the integration tests: synthetic scans and poppler-utils wrappers.
//!
//! The poppler tools are required: a missing tool fails the test (it is never skipped).

#![allow(dead_code)]

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use chartvault_produce::{DocumentInfo, PdfDate, Rect, Word};

pub fn info(title: &str) -> DocumentInfo {
    DocumentInfo {
        title: title.to_string(),
        producer: "chartvault-produce tests".to_string(),
        creation: PdfDate {
            year: 2024,
            month: 5,
            day: 17,
            hour: 9,
            minute: 30,
            second: 0,
        },
    }
}

pub fn word(text: &str, left: u32, top: u32, width: u32, height: u32) -> Word {
    Word {
        text: text.to_string(),
        left,
        top,
        width,
        height,
    }
}

pub fn rect(left: u32, top: u32, width: u32, height: u32) -> Rect {
    Rect {
        left,
        top,
        width,
        height,
    }
}

/// A white `width` x `height` scan with a gray (90) block under each word box and the given
/// black rectangles.
pub fn scan(width: u32, height: u32, words: &[Word], black: &[Rect]) -> image::GrayImage {
    let mut img = image::GrayImage::from_pixel(width, height, image::Luma([255]));
    let mut fill = |r: &Rect, value: u8| {
        for y in r.top..(r.top + r.height).min(height) {
            for x in r.left..(r.left + r.width).min(width) {
                img.put_pixel(x, y, image::Luma([value]));
            }
        }
    };
    for w in words {
        fill(&rect(w.left, w.top, w.width, w.height), 90);
    }
    for r in black {
        fill(r, 0);
    }
    img
}

/// Encodes an 8-bit gray image as PNG (the `image` crate writes it non-interlaced).
pub fn png(img: &image::GrayImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encode PNG");
    out
}

/// The IDAT payloads of a PNG, concatenated.
pub fn idat(png: &[u8]) -> Vec<u8> {
    let mut rest = &png[8..];
    let mut out = Vec::new();
    while rest.len() >= 12 {
        let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        if &rest[4..8] == b"IDAT" {
            out.extend_from_slice(&rest[8..8 + len]);
        }
        rest = &rest[12 + len..];
    }
    out
}

/// Writes a test PDF into `dir`; with `PRODUCE_TEST_KEEP=/some/dir` set, also keeps a copy
/// there for inspection.
pub fn write_pdf(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write PDF");
    if let Some(keep) = std::env::var_os("PRODUCE_TEST_KEEP") {
        std::fs::write(Path::new(&keep).join(name), bytes).expect("keep PDF");
    }
    path
}

/// Runs a poppler tool, failing the test if it is missing or fails.
pub fn tool(name: &str, args: &[&str], path: &Path, tail: &[&str]) -> std::process::Output {
    let output = Command::new(name)
        .args(args)
        .arg(path)
        .args(tail)
        .output()
        .unwrap_or_else(|e| panic!("{name} (poppler-utils) must be installed: {e}"));
    assert!(
        output.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `pdfinfo` output; asserts poppler reported nothing on stderr (no syntax errors).
pub fn pdfinfo(path: &Path, args: &[&str]) -> String {
    let out = tool("pdfinfo", args, path, &[]);
    assert!(
        out.stderr.is_empty(),
        "pdfinfo reported: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// `pdftotext` of pages `first..=last` (plain reading-order mode); asserts no stderr.
pub fn pdftotext(path: &Path, first: u32, last: u32) -> String {
    let (first, last) = (first.to_string(), last.to_string());
    let out = tool("pdftotext", &["-f", &first, "-l", &last], path, &["-"]);
    assert!(
        out.stderr.is_empty(),
        "pdftotext reported: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The number of pages `pdfinfo` reports.
pub fn page_count(path: &Path) -> u32 {
    let info = pdfinfo(path, &[]);
    info.lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .expect("Pages line")
        .trim()
        .parse()
        .expect("page count")
}

/// A rendered page: 8-bit gray, row-major.
pub struct Gray {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Gray {
    pub fn at(&self, x: usize, y: usize) -> u8 {
        self.pixels[y * self.width + x]
    }

    /// Pixels of the region `x0..x1` x `y0..y1`.
    pub fn region(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> Vec<u8> {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .map(|(x, y)| self.at(x, y))
            .collect()
    }
}

/// Renders one page with `pdftoppm -gray` at `dpi`.
pub fn render(path: &Path, page: u32, dpi: u32) -> Gray {
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = dir.path().join("page");
    let (page, dpi) = (page.to_string(), dpi.to_string());
    tool(
        "pdftoppm",
        &["-gray", "-r", &dpi, "-f", &page, "-l", &page, "-singlefile"],
        path,
        &[prefix.to_str().expect("UTF-8 path")],
    );
    let bytes = std::fs::read(dir.path().join("page.pgm")).expect("pdftoppm output");
    parse_pgm(&bytes)
}

/// Parses a binary (P5) 8-bit PGM.
pub fn parse_pgm(bytes: &[u8]) -> Gray {
    let mut fields = Vec::new();
    let mut pos = 2;
    assert_eq!(&bytes[..2], b"P5", "not a binary PGM");
    while fields.len() < 3 {
        while bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if bytes[pos] == b'#' {
            while bytes[pos] != b'\n' {
                pos += 1;
            }
            continue;
        }
        let start = pos;
        while bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        let field: usize = std::str::from_utf8(&bytes[start..pos])
            .expect("ASCII")
            .parse()
            .expect("number");
        fields.push(field);
    }
    pos += 1; // the single whitespace after maxval
    assert_eq!(fields[2], 255, "8-bit PGM expected");
    let (width, height) = (fields[0], fields[1]);
    let pixels = bytes[pos..pos + width * height].to_vec();
    Gray {
        width,
        height,
        pixels,
    }
}

/// Extracts the images of one page with `pdfimages -png`, decoded to 8-bit gray.
pub fn extract_images(path: &Path, page: u32) -> Vec<image::GrayImage> {
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = dir.path().join("img");
    let page = page.to_string();
    tool(
        "pdfimages",
        &["-png", "-f", &page, "-l", &page],
        path,
        &[prefix.to_str().expect("UTF-8 path")],
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| image::open(f).expect("decode extracted image").into_luma8())
        .collect()
}

/// `pdfimages -list` rows (after the two header lines) for one page.
pub fn image_list(path: &Path, page: u32) -> Vec<String> {
    let page = page.to_string();
    let out = tool("pdfimages", &["-list", "-f", &page, "-l", &page], path, &[]);
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .skip(2)
        .map(str::to_string)
        .collect()
}

//! Decompression bombs in every shape the PDF guard must see through, generated here (a few
//! hundred KiB each), each refused when the file is opened, quickly, with the memory of this
//! process staying bounded.
//!
//! One test in a binary of its own: peak memory (`VmHWM`) is per process, and tests running
//! in parallel threads of one process would blur it.

use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use chartvault_ocr::{preflight, Limits, PageReader, PdfFile, ScanError, ScanFormat};

mod common;
use common::classic_pdf;

/// What each bomb expands to: twice the cap on one non-image stream (128 MiB).
const BOMB_BYTES: usize = 256 << 20;

/// Peak memory the whole run may add. The bombs inflate to 256 MiB each; a guard that lets
/// one through costs at least that (hayro collects a stream's output in one `Vec`, doubling as
/// it grows). What legitimately remains is the input files (a few MiB), the PDF parser's
/// tables and the guard's fixed buffers (tens of KiB per decoder).
const MEMORY_BOUND: u64 = 200 << 20;

/// Time one refusal may take (the guard counts at most the cap, ~128 MiB, per hypothesis;
/// this is a debug build).
const TIME_BOUND: Duration = Duration::from_secs(30);

// ---- encoders ----

/// zlib stream of `len` zero bytes, produced in 1 MiB chunks (the zeros never exist whole).
fn deflated_zeros(prefix: &[u8], len: usize, fill: u8) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(prefix).unwrap();
    let chunk = vec![fill; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        encoder.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    encoder.finish().unwrap()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn ascii_hex(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 2 + 1);
    for byte in data {
        out.extend(format!("{byte:02X}").as_bytes());
    }
    out.push(b'>');
    out
}

fn ascii85(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 5 / 4 + 8);
    for chunk in data.chunks(4) {
        let mut group = [0u8; 4];
        group[..chunk.len()].copy_from_slice(chunk);
        let value = u32::from_be_bytes(group);
        if value == 0 && chunk.len() == 4 {
            out.push(b'z');
            continue;
        }
        let mut digits = [0u8; 5];
        let mut v = value;
        for digit in digits.iter_mut().rev() {
            *digit = (v % 85) as u8 + b'!';
            v /= 85;
        }
        out.extend(&digits[..chunk.len() + 1]);
    }
    out.extend(b"~>");
    out
}

/// RunLengthDecode data for `len` zero bytes: runs of 128 (two bytes each, 64:1).
fn run_length_zeros(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len / 64 + 1);
    for _ in 0..len / 128 {
        out.extend([129u8, 0]);
    }
    out.push(128);
    out
}

/// MSB-first bit writer for LZW codes.
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, code: u32, width: u32) {
        self.acc = self.acc << width | u64::from(code);
        self.n += width;
        while self.n >= 8 {
            self.n -= 8;
            self.out.push((self.acc >> self.n) as u8);
        }
    }
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push((self.acc << (8 - self.n)) as u8);
        }
        self.out
    }
}

/// LZWDecode data for `prefix` then `zeros` zero bytes (at least), written as a standard
/// encoder would for long runs: after a clear code, the literal 0 and then codes 258, 259, …
/// 4095, each one byte longer than the last (~7.4 MB per table). `early_change` as the
/// `/EarlyChange` parameter: code widths grow one code early (1, the default) or not (0).
fn lzw(prefix: &[u8], zeros: usize, early_change: bool) -> Vec<u8> {
    let width = |table: u32| match table + u32::from(early_change) {
        s if s >= 2048 => 12,
        s if s >= 1024 => 11,
        s if s >= 512 => 10,
        _ => 9,
    };
    let mut bits = Bits {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    // The prefix as literals: the first registers nothing, each later one an entry.
    let mut table = 258u32;
    for (index, &byte) in prefix.iter().enumerate() {
        bits.put(u32::from(byte), width(table));
        if index > 0 {
            table += 1;
        }
    }
    let mut written = 0usize;
    while written < zeros {
        bits.put(256, width(table)); // clear
        table = 258;
        bits.put(0, width(table));
        written += 1;
        for code in 258..4096u32 {
            bits.put(code, width(table));
            table += 1;
            written += (code - 256) as usize;
        }
    }
    bits.put(257, width(table)); // end of data
    bits.finish()
}

// ---- PDF files ----

enum Place {
    /// A plain object at the top level of the file.
    Top(Vec<u8>),
    /// An object stored in the object stream.
    InObjectStream(Vec<u8>),
}

/// A PDF with a cross-reference stream. Objects are numbered from 1 (1 is the catalog); the
/// object stream (if any object goes in one) and then the xref stream come after them. The
/// object stream's dictionary gets `objstm_dict`, its data goes through `objstm_encode`; the
/// xref stream's dictionary gets `xref_dict`, its data (entries and `xref_padding` zero bytes
/// after them, which readers ignore) goes through `xref_encode`.
fn xref_stream_pdf(
    objects: &[Place],
    objstm_dict: &str,
    objstm_encode: &dyn Fn(&[u8]) -> Vec<u8>,
    xref_dict: &str,
    xref_encode: &dyn Fn(&[u8]) -> Vec<u8>,
) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n".to_vec();
    // (type, field2, field3) per object number from 0.
    let mut entries = vec![(0u8, 0u32, 65535u16)];
    let members: Vec<(usize, &Vec<u8>)> = objects
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p {
            Place::InObjectStream(body) => Some((i + 1, body)),
            Place::Top(_) => None,
        })
        .collect();
    let objstm_number = objects.len() + 1;
    let xref_number = if members.is_empty() {
        objects.len() + 1
    } else {
        objects.len() + 2
    };
    let mut member_index = 0u16;
    for (index, place) in objects.iter().enumerate() {
        match place {
            Place::Top(body) => {
                entries.push((1, out.len() as u32, 0));
                out.extend(format!("{} 0 obj\n", index + 1).as_bytes());
                out.extend(body);
                out.extend(b"\nendobj\n");
            }
            Place::InObjectStream(_) => {
                entries.push((2, objstm_number as u32, member_index));
                member_index += 1;
            }
        }
    }
    if !members.is_empty() {
        let mut header = String::new();
        let mut body = Vec::new();
        for (number, member) in &members {
            header.push_str(&format!("{number} {} ", body.len()));
            body.extend(member.iter());
            body.push(b'\n');
        }
        let mut data = header.into_bytes();
        let first = data.len();
        data.extend(body);
        let encoded = objstm_encode(&data);
        entries.push((1, out.len() as u32, 0));
        out.extend(
            format!(
                "{objstm_number} 0 obj\n<< /Type /ObjStm /N {} /First {first} {objstm_dict} /Length {} >>\nstream\n",
                members.len(),
                encoded.len()
            )
            .as_bytes(),
        );
        out.extend(&encoded);
        out.extend(b"\nendstream\nendobj\n");
    }
    let xref_offset = out.len();
    entries.push((1, xref_offset as u32, 0));
    let mut data = Vec::new();
    for (kind, field2, field3) in &entries {
        data.push(*kind);
        data.extend(field2.to_be_bytes());
        data.extend(field3.to_be_bytes());
    }
    let encoded = xref_encode(&data);
    out.extend(
        format!(
            "{xref_number} 0 obj\n<< /Type /XRef /Size {} /W [1 4 2] /Root 1 0 R {xref_dict} /Length {} >>\nstream\n",
            entries.len(),
            encoded.len()
        )
        .as_bytes(),
    );
    out.extend(&encoded);
    out.extend(format!("\nendstream\nendobj\nstartxref\n{xref_offset}\n%%EOF\n").as_bytes());
    out
}

fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
    out.extend(data);
    out.extend(b"\nendstream");
    out
}

fn obj(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

const CATALOG: &str = "<< /Type /Catalog /Pages 2 0 R >>";
const PAGES: &str = "<< /Type /Pages /Kids [3 0 R] /Count 1 >>";
const PAGE: &str = "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>";

/// One page whose content stream (object 4) is `dict` + `data`, with `extra` objects from 5.
fn page_with_contents(dict: &str, data: &[u8], extra: &[Vec<u8>]) -> Vec<u8> {
    let mut objects = vec![obj(CATALOG), obj(PAGES), obj(PAGE), stream(dict, data)];
    objects.extend(extra.iter().cloned());
    classic_pdf(&objects, "")
}

fn identity(data: &[u8]) -> Vec<u8> {
    data.to_vec()
}

/// Every bomb shape, by name.
fn bombs() -> Vec<(&'static str, Vec<u8>)> {
    let flate = deflated_zeros(b"", BOMB_BYTES, 0);
    let mut shapes = Vec::new();
    shapes.push((
        "indirect /Filter 5 0 R",
        page_with_contents("/Filter 5 0 R", &flate, &[obj("/FlateDecode")]),
    ));
    shapes.push((
        "[/FlateDecode] array",
        page_with_contents("/Filter [/FlateDecode]", &flate, &[]),
    ));
    shapes.push((
        "[/FlateDecode /FlateDecode] array",
        page_with_contents("/Filter [/FlateDecode /FlateDecode]", &deflate(&flate), &[]),
    ));
    shapes.push((
        "#-escaped /F#6CateDecode",
        page_with_contents("/Filter /F#6CateDecode", &flate, &[]),
    ));
    shapes.push((
        "dictionary with the token obj in a string",
        page_with_contents("/Filter /FlateDecode /Note (obj)", &flate, &[]),
    ));
    shapes.push((
        "dictionary over 64 KiB",
        page_with_contents(
            &format!("/Filter /FlateDecode /Note ({})", "x".repeat(70 << 10)),
            &flate,
            &[],
        ),
    ));
    shapes.push((
        "LZWDecode",
        page_with_contents("/Filter /LZWDecode", &lzw(b"", BOMB_BYTES, true), &[]),
    ));
    shapes.push((
        "LZWDecode with /EarlyChange 0",
        page_with_contents(
            "/Filter /LZWDecode /DecodeParms << /EarlyChange 0 >>",
            &lzw(b"", BOMB_BYTES, false),
            &[],
        ),
    ));
    shapes.push((
        "ASCII85Decode then FlateDecode",
        page_with_contents(
            "/Filter [/ASCII85Decode /FlateDecode]",
            &ascii85(&flate),
            &[],
        ),
    ));
    shapes.push((
        "ASCIIHexDecode then FlateDecode",
        page_with_contents("/Filter [/AHx /Fl]", &ascii_hex(&flate), &[]),
    ));
    shapes.push((
        "RunLengthDecode",
        page_with_contents(
            "/Filter /RunLengthDecode",
            &run_length_zeros(BOMB_BYTES),
            &[],
        ),
    ));
    shapes.push((
        "unreferenced stream",
        page_with_contents(
            "",
            b"0 0 m 10 10 l S",
            &[stream("/Filter /F#6CateDecode", &flate)],
        ),
    ));
    // The page tree lives in an object stream whose data ends in 256 MiB of spaces: the
    // parser inflates it while it opens the file.
    let objstm_flate = |data: &[u8]| deflated_zeros(data, BOMB_BYTES, b' ');
    shapes.push((
        "object stream (page tree inside)",
        xref_stream_pdf(
            &[
                Place::Top(obj(CATALOG)),
                Place::InObjectStream(obj(PAGES)),
                Place::InObjectStream(obj(PAGE)),
                Place::Top(stream("", b"0 0 m 10 10 l S")),
            ],
            "/Filter /F#6CateDecode",
            &objstm_flate,
            "",
            &identity,
        ),
    ));
    // A content stream stored inside an object stream (not allowed, but the parser reads
    // it): its bomb is invisible in the file's bytes, compressed inside the object stream.
    shapes.push((
        "Flate stream inside an object stream",
        xref_stream_pdf(
            &[
                Place::Top(obj(CATALOG)),
                Place::Top(obj(PAGES)),
                Place::Top(obj(PAGE)),
                Place::InObjectStream(stream("/Filter /FlateDecode", &flate)),
            ],
            "/Filter /FlateDecode",
            &deflate,
            "",
            &identity,
        ),
    ));
    let xref_flate = |data: &[u8]| deflated_zeros(data, BOMB_BYTES, 0);
    shapes.push((
        "xref stream",
        xref_stream_pdf(
            &[
                Place::Top(obj(CATALOG)),
                Place::Top(obj(PAGES)),
                Place::Top(obj(PAGE)),
                Place::Top(stream("", b"0 0 m 10 10 l S")),
            ],
            "",
            &identity,
            "/Filter /F#6CateDecode",
            &xref_flate,
        ),
    ));
    let xref_lzw = |data: &[u8]| lzw(data, BOMB_BYTES, true);
    shapes.push((
        "LZW xref stream",
        xref_stream_pdf(
            &[
                Place::Top(obj(CATALOG)),
                Place::Top(obj(PAGES)),
                Place::Top(obj(PAGE)),
                Place::Top(stream("", b"0 0 m 10 10 l S")),
            ],
            "",
            &identity,
            "/Filter /LZW",
            &xref_lzw,
        ),
    ));
    let xref_a85_flate = |data: &[u8]| ascii85(&deflated_zeros(data, BOMB_BYTES, 0));
    shapes.push((
        "ASCII85 then Flate xref stream",
        xref_stream_pdf(
            &[
                Place::Top(obj(CATALOG)),
                Place::Top(obj(PAGES)),
                Place::Top(obj(PAGE)),
                Place::Top(stream("", b"0 0 m 10 10 l S")),
            ],
            "",
            &identity,
            "/Filter [/A85 /Fl]",
            &xref_a85_flate,
        ),
    ));
    shapes
}

/// A `/proc/self/status` entry in bytes.
fn status(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with(key))
        .unwrap_or_else(|| panic!("{key} in /proc/self/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a size in kB");
    kib << 10
}

/// Peak resident memory of this process so far.
fn peak_memory() -> u64 {
    status("VmHWM:")
}

/// Resets the peak to the current resident size (Linux ≥ 4.0), so that each shape's peak can
/// be read on its own; `false` where that is not allowed.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Opens `bytes` and renders page 1; the error, if any.
fn open_and_render(bytes: Vec<u8>) -> Option<ScanError> {
    let limits = Limits::default();
    PdfFile::open(bytes, &limits)
        .and_then(|pdf| pdf.page(0, &limits).map(|_| ()))
        .err()
}

#[test]
fn decompression_bombs_are_refused_quickly_within_bounded_memory() {
    let shapes = bombs();
    let before = peak_memory();
    let mut failures = Vec::new();
    for (name, bytes) in shapes {
        let size = bytes.len();
        // The peak of this shape alone, above what the process holds now (the files).
        let base = if reset_peak() {
            status("VmRSS:")
        } else {
            before
        };
        let started = Instant::now();
        let error = open_and_render(bytes);
        let elapsed = started.elapsed();
        let peak = peak_memory().saturating_sub(base);
        println!(
            "{name}: {size} bytes, {} ms, peak +{} KiB: {}",
            elapsed.as_millis(),
            peak >> 10,
            error
                .as_ref()
                .map_or("ACCEPTED".to_owned(), |e| e.to_string())
        );
        match error {
            Some(ScanError::Pdf { page: None, detail }) if detail.contains("expand") => {}
            other => failures.push(format!("{name}: not refused as a bomb: {other:?}")),
        }
        if elapsed > TIME_BOUND {
            failures.push(format!("{name}: took {elapsed:?}"));
        }
        if peak > MEMORY_BOUND {
            failures.push(format!("{name}: peak memory grew by {} MiB", peak >> 20));
        }
    }
    // Without a reset, the peak over the whole run (the first shapes' peaks included).
    let peak = peak_memory().saturating_sub(before);
    println!(
        "peak memory above the start of the run: {} MiB (process peak {} MiB)",
        peak >> 20,
        peak_memory() >> 20
    );
    if peak > MEMORY_BOUND {
        failures.push(format!(
            "peak memory grew by {} MiB (bound {} MiB)",
            peak >> 20,
            MEMORY_BOUND >> 20
        ));
    }
    assert!(failures.is_empty(), "{failures:#?}");

    // The other entry points refuse them the same way.
    let bomb = page_with_contents(
        "/Filter /F#6CateDecode",
        &deflated_zeros(b"", BOMB_BYTES, 0),
        &[],
    );
    let error = preflight(Cursor::new(&bomb), &Limits::default()).expect_err("preflight");
    assert!(error.to_string().contains("expands"), "{error}");
    let error = PageReader::open(Cursor::new(&bomb), ScanFormat::Pdf, &Limits::default())
        .err()
        .expect("PageReader::open");
    assert!(error.to_string().contains("expands"), "{error}");
}

//! Entry points for the fuzz targets (`fuzz/`) and for replaying their corpus in the
//! ordinary test suite: each feeds arbitrary bytes to one decoder entry point under small
//! limits and must return, never panic, hang or allocate without bound.

use std::io::Cursor;

use crate::{Limits, PageReader};

/// Limits small enough that a fuzzer explores structure, not pixel work.
pub fn limits() -> Limits {
    Limits {
        max_pixels_per_page: 4_000_000,
        max_pages: 8,
        max_dimension: 4_000,
    }
}

/// Sniffing and preflight (every format's header parser).
pub fn preflight(data: &[u8]) {
    let _ = crate::sniff(data);
    let _ = crate::preflight(Cursor::new(data), &limits());
}

/// Opening a file as its sniffed format and decoding every page.
pub fn decode(data: &[u8]) {
    let Some(format) = crate::sniff(data) else {
        return;
    };
    let Ok(mut pages) = PageReader::open(Cursor::new(data), format, &limits()) else {
        return;
    };
    for index in 0..pages.page_count() {
        let _ = pages.decode(index);
    }
}

/// The PDF reader, whatever the first bytes say.
pub fn pdf(data: &[u8]) {
    let limits = limits();
    if let Ok(pdf) = crate::PdfFile::open(data.to_vec(), &limits) {
        for index in 0..pdf.page_count().min(2) {
            let _ = pdf.page(index, &limits);
        }
    }
}

/// The DICOM reader, whatever the first bytes say.
pub fn dicom(data: &[u8]) {
    let _ = crate::dicom_read(data, &limits());
}

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every fuzz target by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("preflight", preflight),
    ("decode", decode),
    ("pdf", pdf),
    ("dicom", dicom),
];

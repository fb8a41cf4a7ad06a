//! Writes a small sample production: a certification, two synthetic Letter scans (the second
//! with a redaction) and a manifest, Bates-numbered ACME-000001 onwards.
//!
//! ```text
//! cargo run -p chartvault-produce --example produce -- /tmp/production.pdf
//! pdftotext /tmp/production.pdf - && pdftoppm -r 50 -png /tmp/production.pdf /tmp/page
//! ```

use std::fs::File;
use std::io::BufWriter;

use chartvault_produce::{
    text_page_count, DocumentInfo, ImagePage, PageImage, PdfDate, ProductionWriter, Rect, Word,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "production.pdf".to_string());

    // A Letter page at 300 dpi with two "lines of text" drawn as gray blocks.
    let (width, height) = (2550u32, 3300u32);
    let words: Vec<Word> = ["Patient:", "Jane", "Doe", "DOB:", "1970-01-01"]
        .iter()
        .enumerate()
        .map(|(i, text)| Word {
            text: text.to_string(),
            left: 300 + i as u32 * 330,
            top: 300,
            width: 280,
            height: 60,
        })
        .collect();
    let mut pixels = vec![255u8; (width * height) as usize];
    for w in &words {
        for y in w.top..w.top + w.height {
            let row = (y * width) as usize;
            pixels[row + w.left as usize..row + (w.left + w.width) as usize].fill(80);
        }
    }
    let redactions = [Rect {
        left: 940,
        top: 290,
        width: 300,
        height: 80,
    }];

    let mut next_bates = 1;
    let mut bates = || {
        let number = format!("ACME-{next_bates:06}");
        next_bates += 1;
        number
    };
    let manifest =
        "MANIFEST\n\nACME-000002  Intake form\nACME-000003  Intake form (redacted: name)\n";
    let certification = |total: u32| {
        format!(
            "CERTIFICATION OF RECORDS CUSTODIAN\n\n\
             I certify that the attached {total} pages are true copies of the records kept\n\
             in the ordinary course of business.\n"
        )
    };
    // The certification states the total, which includes its own pages.
    let others = 2 + text_page_count(manifest);
    let total = others + text_page_count(&certification(others + 1));
    let certification = certification(total);

    let info = DocumentInfo {
        title: "Production ACME-001".to_string(),
        producer: format!("chartvault-produce {}", env!("CARGO_PKG_VERSION")),
        creation: PdfDate {
            year: 2024,
            month: 5,
            day: 17,
            hour: 9,
            minute: 30,
            second: 0,
        },
    };
    let mut pdf = ProductionWriter::new(BufWriter::new(File::create(&path)?), &info)?;
    pdf.text_pages_with(&certification, |_, _| Some(bates()))?;
    for redact in [false, true] {
        let stamp = bates();
        pdf.image_page(&ImagePage {
            image: PageImage::Gray {
                width,
                height,
                pixels: &pixels,
            },
            dpi: 300.0,
            words: &words,
            stamp: Some(&stamp),
            redactions: if redact { &redactions } else { &[] },
            redact_whole_page: false,
        })?;
    }
    pdf.text_pages_with(manifest, |_, _| Some(bates()))?;
    let (_, pages) = pdf.finish()?;
    assert_eq!(pages, total, "the certification's count is right");
    println!("wrote {pages} pages to {path}");
    Ok(())
}

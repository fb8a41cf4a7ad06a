//! The writer streams: output grows by each page's image as the page is written, and the
//! heap does not grow with the number of pages.
//!
//! This test binary counts heap bytes with its own global allocator, so it holds a single
//! test (a second one running in parallel would disturb the peak).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chartvault_produce::{ImagePage, PageImage, ProductionWriter};
use common::*;

struct CountingAlloc;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let now = CURRENT.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Resets the peak to the current heap size and returns that size.
fn reset_peak() -> usize {
    let now = CURRENT.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// A sink that only counts bytes (keeping the output would defeat the measurement); clones
/// share the count, so the test reads it while the writer owns the sink.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl Counter {
    fn bytes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn pages_stream_out_and_memory_stays_flat() {
    let started = Instant::now();
    // A 2550 x 3300 scan (Letter at 300 dpi) with text-like blocks and a noisy photo area,
    // so its PNG is about a megabyte: big enough that holding pages would show.
    let words: Vec<_> = (0..40)
        .map(|i| {
            word(
                &format!("word{i}"),
                300 + (i % 8) * 250,
                300 + (i / 8) * 100,
                200,
                60,
            )
        })
        .collect();
    let mut img = scan(2550, 3300, &words, &[rect(300, 2400, 1900, 300)]);
    let mut state: u32 = 0x1234_5678;
    for y in 1000..1900 {
        for x in 300..1500 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            img.put_pixel(x, y, image::Luma([(state >> 24) as u8]));
        }
    }
    let scan_png = png(&img);
    let idat_len = idat(&scan_png).len() as u64;
    assert!(idat_len > 800_000, "PNG should be large, is {idat_len}");

    let sink = Counter::default();
    let pages = 200u32;
    let stamps: Vec<String> = (1..=pages).map(|i| format!("ACME-{i:06}")).collect();
    let baseline = reset_peak();
    let mut pdf = ProductionWriter::new(sink.clone(), &info("streaming")).expect("new");
    for stamp in &stamps {
        let before = sink.bytes();
        pdf.image_page(&ImagePage {
            image: PageImage::Png(&scan_png),
            dpi: 300.0,
            words: &words,
            stamp: Some(stamp),
            redactions: &[],
            redact_whole_page: false,
        })
        .expect("page");
        let after = sink.bytes();
        assert!(
            after - before >= idat_len,
            "page must be written out at once: {} bytes for a {idat_len}-byte image",
            after - before
        );
    }
    let peak = PEAK.load(Ordering::Relaxed) - baseline;
    let (_, count) = pdf.finish().expect("finish");
    assert_eq!(count, pages);
    assert!(sink.bytes() >= u64::from(pages) * idat_len);
    // The output is ~200 MB; the writer's heap never exceeds a small fixed amount (page
    // refs, offsets and one page's content stream).
    assert!(
        peak < 1024 * 1024,
        "heap grew by {peak} bytes while writing {} bytes",
        sink.bytes()
    );

    // The decode path (raw pixels with a redaction burned in) holds one page at a time: the
    // peak does not depend on the page count.
    let pixels = img.as_raw();
    let redaction = [rect(300, 300, 500, 200)];
    let sink = Counter::default();
    let mut peaks = Vec::new();
    let mut pdf = ProductionWriter::new(sink.clone(), &info("decode path")).expect("new");
    let baseline = reset_peak();
    for stamp in stamps.iter().take(6) {
        let before = sink.bytes();
        pdf.image_page(&ImagePage {
            image: PageImage::Gray {
                width: 2550,
                height: 3300,
                pixels,
            },
            dpi: 300.0,
            words: &words,
            stamp: Some(stamp),
            redactions: &redaction,
            redact_whole_page: false,
        })
        .expect("page");
        assert!(sink.bytes() - before > 500_000, "page written out at once");
        peaks.push(PEAK.load(Ordering::Relaxed) - baseline);
    }
    drop(pdf);
    let page_bytes = pixels.len();
    let max_peak = *peaks.iter().max().expect("peaks");
    assert!(
        max_peak < 2 * page_bytes,
        "decode path peak {max_peak} for a {page_bytes}-byte page"
    );
    // The peak is reached with the first page and never exceeded afterwards by more than
    // allocator noise.
    assert!(
        peaks[5] <= peaks[0] + 64 * 1024,
        "peaks grow with pages: {peaks:?}"
    );

    let elapsed = started.elapsed();
    assert!(elapsed.as_secs() < 10, "streaming test took {elapsed:?}");
}

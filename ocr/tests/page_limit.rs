//! Time limits on pages, each test with a one-engine pool of its own (in a binary of its
//! own, so that the engine threads other tests count are only their pool's).

mod common;

use std::io::Cursor;
use std::path::Path;

use chartvault_ocr::{decode_page, DecodedPage, Limits, OcrConfig, OcrError, OcrPool, ScanFormat};

const PSM: u32 = 3;

/// A pool of one engine, this test's own.
fn one_engine() -> OcrPool {
    OcrPool::start(&OcrConfig {
        threads: 1,
        page_seg_mode: PSM,
        ..OcrConfig::default()
    })
    .expect("the OCR pool starts")
}

fn decode_fixture(dir: &Path, name: &str) -> DecodedPage {
    let bytes = std::fs::read(dir.join(name)).expect("fixture readable");
    decode_page(Cursor::new(bytes), ScanFormat::Tiff, 0, &Limits::default()).expect("decodes")
}

/// A page's time limit counts from the moment an engine starts on it: pages queued behind
/// others on a busy pool do not time out while they wait; a page that itself runs over does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_time_limit_counts_from_the_engines_start_not_the_queue() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let one_engine = one_engine();
    let page = decode_fixture(&dir, "phototest.tif");
    let started = std::time::Instant::now();
    one_engine
        .process_within(
            page.image.clone(),
            None,
            std::time::Duration::from_secs(600),
        )
        .await
        .expect("processed");
    let one_page = started.elapsed();
    // Four pages at once on one engine: the last waits three pages' time in the queue, far
    // over its limit of 2.5 pages' time, which it is only given once an engine has it.
    let limit = one_page.mul_f64(2.5);
    let pages = (0..4).map(|_| {
        let pool = one_engine.clone();
        let image = page.image.clone();
        tokio::spawn(async move { pool.process_within(image, None, limit).await })
    });
    for outcome in futures_join(pages.collect()).await {
        outcome.expect("no page times out while it waits for the engine");
    }
    let timed_out = one_engine
        .process_within(
            page.image.clone(),
            None,
            std::time::Duration::from_millis(1),
        )
        .await;
    assert!(
        matches!(timed_out, Err(OcrError::PageTimeout { limit_ms: 1 })),
        "{timed_out:?}"
    );
}

/// A page that runs over its limit is stopped, not abandoned: its engine is free for the
/// next page within the limit plus a second, though recognising the page takes far longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_over_its_limit_frees_its_engine_within_a_second() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let one_engine = one_engine();
    let dense = decode_fixture(&dir, "8087_054.3B.tif");
    let small = decode_fixture(&dir, "phototest.tif");
    let dpi = dense.dpi.map(|(x, _)| x.round() as u32);
    let no_limit = std::time::Duration::from_secs(600);

    let started = std::time::Instant::now();
    one_engine
        .process_within(dense.image.clone(), dpi, no_limit)
        .await
        .expect("the dense page is recognised without a limit");
    let dense_time = started.elapsed();
    let started = std::time::Instant::now();
    one_engine
        .process_within(small.image.clone(), None, no_limit)
        .await
        .expect("the small page is recognised");
    let small_time = started.elapsed();

    let limit = std::time::Duration::from_millis(300);
    let grace = std::time::Duration::from_secs(1);
    assert!(
        dense_time > limit + grace + small_time,
        "the dense page ({dense_time:?}) must take longer than the limit and the grace"
    );
    let started = std::time::Instant::now();
    let over = one_engine
        .process_within(dense.image.clone(), dpi, limit)
        .await;
    assert!(
        matches!(over, Err(OcrError::PageTimeout { limit_ms: 300 })),
        "{over:?}"
    );
    // The next page gets the same engine: it waits only for the stopped page to let go.
    one_engine
        .process_within(small.image.clone(), None, no_limit)
        .await
        .expect("the next page is recognised");
    let freed_after = started.elapsed().saturating_sub(small_time);
    println!(
        "dense page {dense_time:?}, small page {small_time:?}, engine free after {freed_after:?}"
    );
    assert!(
        freed_after < limit + grace,
        "the engine was busy for {freed_after:?} after a {limit:?} limit"
    );
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("the task ran"));
    }
    out
}

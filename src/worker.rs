//! The OCR job loop. Claims a document's job, decodes its pages in one pass over the encrypted
//! original, cleans each up and OCRs it on the engine pool, stores the page's artifacts encrypted, indexes the pages, and
//! marks the document `indexed`. Every step is idempotent, so after a crash the job is simply
//! run again: pages already stored are skipped, and re-indexing a page replaces it.

use std::collections::HashSet;
use std::io::Cursor;
use std::time::Duration;

use anyhow::Context;
use chartvault_index::PageRecord;
use chartvault_ocr::{DecodedPage, ScanError, ScanFormat};
use futures::StreamExt;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::ImageEncoder;
use tokio::sync::mpsc;

use crate::db::{Document, Job, PageRow};
use crate::domain::{DocumentId, DocumentStatus};
use crate::http::AppState;
use crate::vault::ObjectRef;

/// A job is tried this many times at most. Attempts are counted when a job is claimed, so a
/// document whose processing took the whole process down (and is claimed again at every
/// start) fails with a reason instead of taking it down again and again.
const MAX_ATTEMPTS: i64 = 3;

/// Starts the job loops: two per OCR engine, each working on one document at a time with up
/// to one page more than there are engines in flight. While one document waits for its
/// pages to be decoded, stored or committed to the index, the engines already have the
/// next pages queued: OCR, the bottleneck, never waits for the rest.
pub fn spawn(state: AppState, engines: usize) {
    for _ in 0..engines.max(1) * 2 {
        let state = state.clone();
        tokio::spawn(async move { run(state).await });
    }
}

enum Claimed {
    Job(Job),
    Batch(crate::db::batches::Batch),
}

async fn run(state: AppState) {
    loop {
        if state.shutdown.is_cancelled() {
            return;
        }
        let claimed = match state.db.claim_job().await {
            Ok(Some(job)) => Ok(Some(Claimed::Job(job))),
            Ok(None) => state
                .db
                .claim_batch()
                .await
                .map(|batch| batch.map(Claimed::Batch)),
            Err(error) => Err(error),
        };
        match claimed {
            Ok(Some(Claimed::Job(job))) if job.attempts > MAX_ATTEMPTS => {
                give_up(&state, job).await
            }
            Ok(Some(Claimed::Job(job))) => process(&state, job).await,
            Ok(Some(Claimed::Batch(batch))) if batch.attempts > crate::batch::MAX_ATTEMPTS => {
                crate::batch::give_up(&state, batch).await
            }
            Ok(Some(Claimed::Batch(batch))) => crate::batch::process(&state, batch).await,
            Ok(None) => {
                tokio::select! {
                    _ = state.jobs_waiting.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = state.shutdown.cancelled() => return,
                }
            }
            Err(error) => {
                tracing::error!(error = %error, "could not claim a job");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A job claimed more often than [`MAX_ATTEMPTS`]: every earlier attempt ended without a
/// result (the process stopped while working on it), so it is not run again.
async fn give_up(state: &AppState, job: Job) {
    let reason = format!(
        "processing stopped without a result {} times (the service stopped while working on \
         it); it is not tried again: check the file, then retry it (POST \
         /api/v1/documents/{{id}}/retry) or upload it again",
        job.attempts - 1
    );
    tracing::warn!(document_id = %job.document_id, attempts = job.attempts, "giving up on a job");
    if let Err(error) = state.db.fail_job(&job, job.document_id, &reason).await {
        tracing::error!(document_id = %job.document_id, error = %error, "could not record the job's failure");
    }
}

async fn process(state: &AppState, job: Job) {
    let doc_id = job.document_id;
    let started = std::time::Instant::now();
    match process_document(state, doc_id).await {
        Ok(pages) => {
            if let Err(error) = state.db.finish_job(&job, doc_id).await {
                tracing::error!(document_id = %doc_id, error = %error, "could not mark the job done");
                return;
            }
            tracing::info!(document_id = %doc_id, pages, elapsed_ms = started.elapsed().as_millis() as u64, "document indexed");
        }
        Err(failure) => {
            let permanent = failure.permanent || job.attempts >= MAX_ATTEMPTS;
            tracing::warn!(document_id = %doc_id, error = ?failure.error, permanent, "document processing failed");
            let result = if permanent {
                state.db.fail_job(&job, doc_id, &failure.reason).await
            } else {
                // Give whatever failed (disk, database) a moment before the retry.
                tokio::time::sleep(Duration::from_secs(1)).await;
                state.db.requeue_job(&job, &failure.reason).await
            };
            if let Err(error) = result {
                tracing::error!(document_id = %doc_id, error = %error, "could not record the job's failure");
            }
        }
    }
}

pub(crate) struct Failure {
    /// Client-facing reason: says what went wrong, never what the page says.
    pub reason: String,
    pub permanent: bool,
    pub error: anyhow::Error,
}

impl Failure {
    pub(crate) fn transient(error: anyhow::Error) -> Failure {
        Failure {
            reason: "internal error while processing".into(),
            permanent: false,
            error,
        }
    }
}

async fn process_document(state: &AppState, doc_id: DocumentId) -> Result<usize, Failure> {
    let doc = state
        .db
        .document(doc_id)
        .await
        .map_err(|e| Failure::transient(e.into()))?
        .ok_or_else(|| Failure::transient(anyhow::anyhow!("job for a missing document")))?;
    state
        .db
        .set_status(doc_id, DocumentStatus::Processing, None)
        .await
        .map_err(|e| Failure::transient(e.into()))?;
    let format = crate::ingest::format_of(&doc.content_type).ok_or_else(|| Failure {
        reason: "unsupported content type".into(),
        permanent: true,
        error: anyhow::anyhow!("unsupported content type {}", doc.content_type),
    })?;

    let done: HashSet<u32> = state
        .db
        .pages(doc_id)
        .await
        .map_err(|e| Failure::transient(e.into()))?
        .into_iter()
        .map(|p| p.page)
        .collect();
    let todo: Vec<u32> = (1..=doc.page_count).filter(|p| !done.contains(p)).collect();
    if !todo.is_empty() {
        process_pages(state, &Target::document(&doc), format, todo).await?;
        // (A document whose pages were made elsewhere, split from a batch or copied by a
        // correction, was checked there or by a person.)
        let pages = state
            .db
            .pages(doc_id)
            .await
            .map_err(|e| Failure::transient(e.into()))?;
        if let Some(reason) =
            low_confidence(&state.config, &pages).filter(|_| doc.qa_reason.is_none())
        {
            state
                .db
                .set_qa_reason(doc_id, &reason)
                .await
                .map_err(|e| Failure::transient(e.into()))?;
        }
    }

    reindex(state, &doc).await.map_err(Failure::transient)
}

/// Sends a document whose OCRed words are, on average, less confident than
/// `ocr.qa_min_confidence` to the QA queue (weighted by words; pages with their own text
/// layer, blank pages and pages without words do not count).
pub(crate) fn low_confidence(config: &crate::config::Config, pages: &[PageRow]) -> Option<String> {
    let threshold = f64::from(config.ocr.qa_min_confidence);
    if threshold <= 0.0 {
        return None;
    }
    let (mut weighted, mut words) = (0.0, 0u64);
    // (A kept cover sheet, page 0, is mostly barcode: it does not count.)
    for page in pages.iter().filter(|p| p.page > 0) {
        if page.text_source == "ocr" && page.word_count > 0 {
            weighted += page.mean_confidence * f64::from(page.word_count);
            words += u64::from(page.word_count);
        }
    }
    if words == 0 {
        return None;
    }
    let mean = weighted / words as f64;
    (mean < threshold).then(|| {
        format!(
            "the mean OCR confidence ({mean:.0}) is below the QA threshold ({threshold:.0}): \
             check the scan is legible and filed right"
        )
    })
}

/// Documents filed before every category and type went through one parser (a cover sheet's
/// `CAT=HIV` was stored as written) get their labels normalised, and their pages indexed
/// again under them, so the index's category filter sees what the policy sees. A category
/// that does not parse at all sends its document to the QA queue (records-only) to be
/// corrected. Run at start; nothing to do once done. Returns the documents changed.
pub async fn normalise_stored_labels(state: &AppState) -> anyhow::Result<usize> {
    let mut changed = 0;
    for (id, status, document_type, category, entered_in_error) in state.db.stored_labels().await? {
        let normal_type = crate::domain::parse_slug("document_type", &document_type)
            .unwrap_or_else(|_| document_type.trim().to_ascii_lowercase());
        let (normal_category, unreadable) = match crate::domain::Category::parse(&category) {
            Ok(parsed) => (parsed.to_string(), false),
            Err(_) => (category.trim().to_ascii_lowercase(), true),
        };
        if normal_type == document_type && normal_category == category && !unreadable {
            continue;
        }
        let reason = unreadable.then_some(
            "the category recorded for this document is not a valid category: correct it",
        );
        state
            .db
            .set_labels(id, &normal_type, &normal_category, reason)
            .await?;
        if status == "indexed" && !entered_in_error {
            reindex_document(state, id).await?;
        }
        changed += 1;
    }
    Ok(changed)
}

/// Indexes a document's pages again from their stored text, under the document's current
/// patient, type and date (after a QA resolution files it elsewhere): each page replaces its
/// old entry.
pub(crate) async fn reindex_document(state: &AppState, id: DocumentId) -> anyhow::Result<usize> {
    let doc = state
        .db
        .document(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no such document"))?;
    reindex(state, &doc).await
}

async fn reindex(state: &AppState, doc: &Document) -> anyhow::Result<usize> {
    let patient_name = state
        .db
        .patient(doc.patient_id)
        .await?
        .map(|patient| patient.name)
        .unwrap_or_default();
    // Every stored page: 1 to page_count, and a batch document's kept cover sheet (page 0).
    let pages = state.db.pages(doc.id).await?;
    let mut records = Vec::with_capacity(pages.len());
    for page in pages.iter().map(|p| p.page) {
        let text = state.vault.get(ObjectRef::PageText(doc.id, page)).await?;
        records.push(page_record(
            doc,
            &patient_name,
            page,
            String::from_utf8_lossy(&text).into_owned(),
        ));
    }
    let count = records.len();
    state.index_writer.index_pages(records).await?;
    Ok(count)
}

/// The index record of one page (also used to re-index pages after a restore).
pub(crate) fn page_record(
    doc: &Document,
    patient_name: &str,
    page: u32,
    text: String,
) -> PageRecord {
    PageRecord {
        document_id: doc.id.0,
        page,
        patient_id: doc.patient_id.0,
        patient_name: patient_name.to_string(),
        document_type: doc.document_type.clone(),
        category: doc.category.to_string(),
        service_date: doc.service_date,
        text,
    }
}

/// Decodes the pages in order on one blocking thread, from one open reader of the original
/// (a 500-page TIFF is read in one pass), and processes them as they come, with up to one
/// page more than there are OCR engines in flight. The channel between the two holds as many:
/// memory stays flat whatever the page count.
pub(crate) async fn process_pages(
    state: &AppState,
    doc: &Target,
    format: ScanFormat,
    todo: Vec<u32>,
) -> Result<(), Failure> {
    let in_flight = state.ocr.threads() + 1;
    let reader = state
        .vault
        .open(ObjectRef::Original(doc.id))
        .await
        .map_err(Failure::transient)?;
    let limits = crate::ingest::scan_limits(&state.config);
    let page_count = doc.page_count as usize;
    let (pages_tx, pages_rx) = mpsc::channel::<(u32, Result<DecodedPage, ScanError>)>(in_flight);
    let sandbox = state.decoder.clone();
    // The pages are decoded in a decoder process (see `chartvault_ocr::Sandbox`), which
    // checks that the file still has the pages it was accepted with.
    let decoder = tokio::task::spawn_blocking(move || -> Result<(), ScanError> {
        let indexes: Vec<usize> = todo.iter().map(|&page| (page - 1) as usize).collect();
        sandbox.decode_pages(
            reader,
            format,
            &limits,
            page_count,
            &indexes,
            |index, decoded| {
                let failed = decoded.is_err();
                // The receiver is gone when processing stopped early; so does decoding.
                if pages_tx.blocking_send((index as u32 + 1, decoded)).is_err() || failed {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            },
        )
    });
    let decoded_pages = futures::stream::unfold(pages_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let results = decoded_pages
        .map(|(page, decoded)| process_page(state, doc, page, decoded))
        .buffer_unordered(in_flight);
    {
        let mut results = std::pin::pin!(results);
        while let Some(result) = results.next().await {
            result?;
        }
    }
    decoder
        .await
        .map_err(|e| Failure::transient(e.into()))?
        .map_err(|e| match e {
            ScanError::Io(_) => Failure::transient(e.into()),
            e => Failure {
                reason: format!("the scan could not be read: {e}"),
                permanent: true,
                error: e.into(),
            },
        })
}

/// What pages are being processed for: a document, or a batch upload (whose pages are also
/// read for cover-sheet barcodes, and recorded under the batch until it is split).
pub(crate) struct Target {
    pub id: DocumentId,
    pub content_type: String,
    pub page_count: u32,
    pub batch: bool,
}

impl Target {
    fn document(doc: &Document) -> Target {
        Target {
            id: doc.id,
            content_type: doc.content_type.clone(),
            page_count: doc.page_count,
            batch: false,
        }
    }
}

/// Cleans one decoded page up, recognises it (unless blank), and stores its artifacts.
async fn process_page(
    state: &AppState,
    doc: &Target,
    page: u32,
    decoded: Result<DecodedPage, ScanError>,
) -> Result<(), Failure> {
    let decoded = decoded.map_err(|e| match e {
        ScanError::Io(_) => Failure::transient(e.into()),
        // Its message names the page already.
        e @ ScanError::DecoderStopped { .. } => Failure {
            reason: e.to_string(),
            permanent: true,
            error: e.into(),
        },
        e => Failure {
            reason: format!("page {page} could not be decoded: {e}"),
            permanent: true,
            error: e.into(),
        },
    })?;
    if let Some(reason) = &decoded.no_image {
        let notice = format!("stored and indexed without a preview: {reason}");
        state
            .db
            .set_notice(doc.id, &notice)
            .await
            .map_err(|e| Failure::transient(e.into()))?;
    }
    let (processed, text_source) = match decoded.text_layer {
        Some(layer) => (
            with_text_layer(state, decoded.image, decoded.dpi, layer).await?,
            if doc.content_type == chartvault_ocr::DICOM_MIME {
                "dicom"
            } else {
                "text-layer"
            },
        ),
        None => {
            let dpi = decoded.dpi.map(|(x, _)| x.round() as u32);
            let limit = Duration::from_millis(state.config.ocr.page_timeout_ms);
            // Counted from the moment an engine starts on the page, not while it waits for
            // one. The engine finishes a page that runs over on its own; the document stops
            // waiting for it and fails with a reason.
            let processed = state
                .ocr
                .process_within(decoded.image, dpi, limit)
                .await
                .map_err(|e| match e {
                    chartvault_ocr::OcrError::PageTimeout { .. } => Failure {
                        reason: format!(
                            "page {page} took longer than {} ms to clean up and recognise \
                             (ocr.page_timeout_ms)",
                            limit.as_millis()
                        ),
                        permanent: true,
                        error: e.into(),
                    },
                    e => Failure {
                        reason: format!("page {page} could not be recognised"),
                        permanent: true,
                        error: e.into(),
                    },
                })?;
            let source = if processed.blank { "none" } else { "ocr" };
            (processed, source)
        }
    };
    let (width, height) = processed.image.dimensions();
    let image = processed.image;
    let cover_sheet = doc.batch.then(|| state.config.batches.cover_sheet.clone());
    let blank = processed.blank;
    let (png, cover) = tokio::task::spawn_blocking(move || {
        // A batch page's codes are read on the cleaned-up page (upright, straight, 300 dpi).
        let cover = cover_sheet.map(|format| {
            if blank {
                chartvault_ocr::CoverSheet::NotCover
            } else {
                chartvault_ocr::parse_cover_sheet(&chartvault_ocr::read_barcodes(&image), &format)
            }
        });
        encode_png(&image).map(|png| (png, cover))
    })
    .await
    .map_err(|e| Failure::transient(e.into()))?
    .map_err(Failure::transient)?;
    let ocr = processed.ocr;
    let cover = cover.map(|cover| match cover {
        chartvault_ocr::CoverSheet::NotCover
            if chartvault_ocr::has_cover_marker(&ocr.text, &state.config.batches.cover_sheet) =>
        {
            chartvault_ocr::CoverSheet::Unreadable {
                reason:
                    "the page is printed as a cover sheet but no cover code on it could be read"
                        .into(),
            }
        }
        cover => cover,
    });
    let words = serde_json::to_vec(&ocr.words).map_err(|e| Failure::transient(e.into()))?;
    let word_count = ocr.words.len() as u32;
    let store = async {
        state
            .vault
            .put(ObjectRef::PageImage(doc.id, page), png)
            .await?;
        state
            .vault
            .put(ObjectRef::PageText(doc.id, page), ocr.text.into_bytes())
            .await?;
        state
            .vault
            .put(ObjectRef::PageWords(doc.id, page), words)
            .await?;
        anyhow::Ok(())
    };
    store.await.map_err(Failure::transient)?;
    let row = PageRow {
        page,
        width,
        height,
        dpi: Some(f64::from(processed.dpi)),
        mean_confidence: f64::from(ocr.mean_confidence),
        word_count,
        blank: processed.blank,
        rotation: processed.rotation,
        skew_degrees: processed.skew_degrees.map(f64::from),
        ink: Some(f64::from(processed.ink)),
        text_source: text_source.to_string(),
    };
    let recorded = match cover {
        Some(cover) => {
            state
                .db
                .insert_batch_page(doc.id, &crate::db::batches::BatchPage { row, cover })
                .await
        }
        None => state.db.insert_page(doc.id, &row).await,
    };
    recorded.map_err(|e| Failure::transient(e.into()))?;
    Ok(())
}

/// A page that brings its own text (a PDF's born-digital text or OCR layer, a DICOM file's
/// attributes): no OCR, and no
/// turning or straightening either, since the text's boxes are placed on the page as rendered.
async fn with_text_layer(
    state: &AppState,
    image: image::GrayImage,
    dpi: Option<(f32, f32)>,
    layer: chartvault_ocr::PageOcr,
) -> Result<chartvault_ocr::ProcessedPage, Failure> {
    let dpi = dpi.map_or(chartvault_ocr::DEFAULT_DPI as f32, |(x, _)| x);
    let blank_max_ink = state.config.ocr.blank_max_ink;
    tokio::task::spawn_blocking(move || {
        let ink = chartvault_ocr::cleanup::ink_coverage(&image, dpi);
        chartvault_ocr::ProcessedPage {
            blank: layer.text.trim().is_empty() && ink < blank_max_ink,
            image,
            dpi: dpi.round() as u32,
            rotation: 0,
            skew_degrees: None,
            ink,
            ocr: layer,
        }
    })
    .await
    .map_err(|e| Failure::transient(e.into()))
}

fn encode_png(image: &image::GrayImage) -> anyhow::Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::L8,
        )
        .context("encoding the page image")?;
    Ok(out.into_inner())
}

//! One document's pages: decodes them in one pass over the encrypted original, cleans each up
//! and OCRs it on the engine pool, stores the page's artifacts encrypted, indexes the pages,
//! and marks the document `indexed`. Batches reuse the same steps for their page ranges.

use std::collections::HashSet;
use std::time::Duration;

use chartvault_index::PageRecord;
use chartvault_ocr::{DecodedPage, ScanError, ScanFormat};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::app::Archive;
use crate::domain::{BatchId, DocumentId, DocumentStatus, TextSource};
use crate::store::documents::Document;
use crate::store::pages::PageRow;
use crate::store::prelude::*;
use crate::store::vault::ObjectRef;

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

    /// The kind of failure, for the metrics: never the reason's words.
    pub(crate) fn class(&self) -> &'static str {
        if !self.permanent {
            return "internal";
        }
        if let Some(error) = self.error.downcast_ref::<chartvault_ocr::OcrError>() {
            return match error {
                chartvault_ocr::OcrError::PageTimeout { .. } => "page-timeout",
                _ => "recognition",
            };
        }
        if self.error.downcast_ref::<ScanError>().is_some() {
            return "unreadable-scan";
        }
        "rejected"
    }
}

/// Recognises a document's pages and indexes them: the whole job, in a process that holds
/// the index writer and runs OCR engines.
pub(crate) async fn process_document(
    state: &Archive,
    doc_id: DocumentId,
) -> Result<usize, Failure> {
    recognise_document(state, doc_id).await?;
    index_document(state, doc_id).await
}

/// Indexes a document whose pages are recognised and stored (its job's second stage).
pub(crate) async fn index_document(state: &Archive, doc_id: DocumentId) -> Result<usize, Failure> {
    index_current(state, doc_id)
        .await
        .map_err(Failure::transient)
}

/// Decodes, cleans up, recognises and stores the pages of a document not stored yet, and
/// sends a document read with low confidence to QA (its job's first stage).
pub(crate) async fn recognise_document(state: &Archive, doc_id: DocumentId) -> Result<(), Failure> {
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
    let format = crate::ingest::upload::format_of(&doc.content_type).ok_or_else(|| Failure {
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
    Ok(())
}

/// Indexes a document's pages under the patient it has when they are indexed. A merge of
/// patients (HL7 A40) committed meanwhile moved it: it is indexed again under its new
/// patient (a merge that commits after the check indexes the moved documents itself).
async fn index_current(state: &Archive, id: DocumentId) -> anyhow::Result<usize> {
    loop {
        let doc = state
            .db
            .document(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no such document"))?;
        let count = reindex(state, &doc).await?;
        let now = state.db.document(id).await?.map(|d| d.patient_id);
        if now.is_none_or(|patient| patient == doc.patient_id) {
            return Ok(count);
        }
    }
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
        if page.text_source == TextSource::Ocr && page.word_count > 0 {
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
pub async fn normalise_stored_labels(state: &Archive) -> anyhow::Result<usize> {
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
pub(crate) async fn reindex_document(state: &Archive, id: DocumentId) -> anyhow::Result<usize> {
    let doc = state
        .db
        .document(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no such document"))?;
    reindex(state, &doc).await
}

async fn reindex(state: &Archive, doc: &Document) -> anyhow::Result<usize> {
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
    state.index_writer()?.index_pages(records).await?;
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
    state: &Archive,
    doc: &Target,
    format: ScanFormat,
    todo: Vec<u32>,
) -> Result<(), Failure> {
    let in_flight = state.ocr.threads() + 1;
    let reader = state
        .vault
        .open(doc.original())
        .await
        .map_err(Failure::transient)?;
    let limits = crate::ingest::upload::scan_limits(&state.config);
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
    pub owner: Owner,
    pub content_type: String,
    pub page_count: u32,
}

/// Whose pages they are.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner {
    Document(DocumentId),
    Batch(BatchId),
}

impl Target {
    fn document(doc: &Document) -> Target {
        Target {
            owner: Owner::Document(doc.id),
            content_type: doc.content_type.clone(),
            page_count: doc.page_count,
        }
    }

    fn original(&self) -> ObjectRef {
        match self.owner {
            Owner::Document(doc) => ObjectRef::Original(doc),
            Owner::Batch(batch) => ObjectRef::batch_original(batch),
        }
    }

    /// The page's image, text and words.
    fn page_artifacts(&self, page: u32) -> [ObjectRef; 3] {
        match self.owner {
            Owner::Document(doc) => ObjectRef::page_artifacts(doc, page),
            Owner::Batch(batch) => ObjectRef::batch_page_artifacts(batch, page),
        }
    }
}

/// Cleans one decoded page up, recognises it (unless blank), and stores its artifacts.
async fn process_page(
    state: &Archive,
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
    if let (Some(reason), Owner::Document(id)) = (&decoded.no_image, doc.owner) {
        let notice = format!("stored and indexed without a preview: {reason}");
        state
            .db
            .set_notice(id, &notice)
            .await
            .map_err(|e| Failure::transient(e.into()))?;
    }
    // A batch page's codes are read before it is recognised: a cover sheet whose code says
    // what follows it, and which is not kept as page 0, needs no reading at all.
    let cover_format =
        matches!(doc.owner, Owner::Batch(_)).then(|| state.config.batches.cover_sheet.clone());
    let (decoded, early_cover) = match (&cover_format, &decoded.text_layer) {
        (Some(format), None) => {
            let format = format.clone();
            let blank_max_ink = state.config.ocr.blank_max_ink;
            tokio::task::spawn_blocking(move || {
                // A blank back holds no code: its ink is measured in 5 ms, a read takes 40.
                let dpi = decoded
                    .dpi
                    .map_or(chartvault_ocr::DEFAULT_DPI as f32, |(x, _)| x);
                if chartvault_ocr::cleanup::ink_coverage(&decoded.image, dpi) < blank_max_ink {
                    return (decoded, Some(chartvault_ocr::CoverSheet::NotCover));
                }
                let codes = chartvault_ocr::read_barcodes(&decoded.image);
                let cover = chartvault_ocr::parse_cover_sheet(&codes, &format);
                (decoded, Some(cover))
            })
            .await
            .map_err(|e| Failure::transient(e.into()))?
        }
        _ => (decoded, None),
    };
    let cover_unread = !matches!(early_cover, Some(chartvault_ocr::CoverSheet::Cover { .. }))
        || state.config.batches.keep_cover_sheet;
    let (processed, text_source) = match decoded.text_layer {
        None if !cover_unread => {
            let dpi = decoded.dpi.map(|(x, _)| x.round() as u32);
            let processed = state
                .ocr
                .clean_up(decoded.image, dpi)
                .await
                .map_err(|e| Failure {
                    reason: format!("page {page} could not be cleaned up"),
                    permanent: true,
                    error: e.into(),
                })?;
            (processed, TextSource::None)
        }
        Some(layer) => (
            with_text_layer(state, decoded.image, decoded.dpi, layer).await?,
            if doc.content_type == chartvault_ocr::DICOM_MIME {
                TextSource::Dicom
            } else {
                TextSource::TextLayer
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
            let metrics = &state.metrics;
            metrics
                .cleanup_seconds
                .observe(processed.cleanup_time.as_secs_f64());
            let source = if processed.blank {
                TextSource::None
            } else {
                metrics.pages_recognised.inc();
                metrics
                    .ocr_seconds
                    .observe(processed.recognition_time.as_secs_f64());
                TextSource::Ocr
            };
            (processed, source)
        }
    };
    let (width, height) = processed.image.dimensions();
    // Read as scanned, a page without a cover code is read again once clean-up has turned or
    // straightened it (1D codes are read upright or upside down, within a few degrees).
    let reread = matches!(early_cover, Some(chartvault_ocr::CoverSheet::NotCover))
        && (processed.rotation != 0 || processed.straightened());
    let image = processed.image;
    let blank = processed.blank;
    let (png, cover) = tokio::task::spawn_blocking(move || {
        let cover = cover_format.map(|format| match early_cover {
            _ if blank => chartvault_ocr::CoverSheet::NotCover,
            Some(cover) if !reread => cover,
            _ => chartvault_ocr::parse_cover_sheet(&chartvault_ocr::read_barcodes(&image), &format),
        });
        chartvault_ocr::encode_page_png(&image).map(|png| (png, cover))
    })
    .await
    .map_err(|e| Failure::transient(e.into()))?
    .map_err(|e| Failure::transient(e.into()))?;
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
    let [image_object, text_object, words_object] = doc.page_artifacts(page);
    let store = async {
        state.vault.put(image_object, png).await?;
        state.vault.put(text_object, ocr.text.into_bytes()).await?;
        state.vault.put(words_object, words).await?;
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
        text_source,
    };
    // A batch's pages are always read for a cover sheet; a document's never.
    let recorded = match doc.owner {
        Owner::Batch(batch) => {
            let cover = cover.unwrap_or(chartvault_ocr::CoverSheet::NotCover);
            state
                .db
                .insert_batch_page(batch, &crate::store::batches::BatchPage { row, cover })
                .await
        }
        Owner::Document(id) => state.db.insert_page(id, &row).await,
    };
    recorded.map_err(|e| Failure::transient(e.into()))?;
    Ok(())
}

/// A page that brings its own text (a PDF's born-digital text or OCR layer, a DICOM file's
/// attributes): no OCR, and no
/// turning or straightening either, since the text's boxes are placed on the page as rendered.
async fn with_text_layer(
    state: &Archive,
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
            recognition_time: std::time::Duration::ZERO,
            cleanup_time: std::time::Duration::ZERO,
        }
    })
    .await
    .map_err(|e| Failure::transient(e.into()))
}

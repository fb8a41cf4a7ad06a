//! Batch uploads: one scanned file holding several documents, split at barcode cover sheets.
//!
//! What it promises:
//! - Every page of the batch is cleaned up and recognised like any document's page, and its
//!   codes are read on the cleaned-up image. Its artifacts are stored, encrypted, under the
//!   batch until the page is filed.
//! - The split ([`plan`]) walks the pages in scan order. A cover sheet (a page whose code
//!   has the configured prefix) starts a document; a blank page right after it is the cover
//!   sheet's back and goes with it; the cover sheet is not a page of the document, whose pages
//!   are numbered from 1. A cover sheet whose code cannot be read (or a page printed as a
//!   cover sheet with no readable code), the pages before the first cover sheet, a cover
//!   sheet with no pages after it, and an MRN that is no known patient's send the page range
//!   to the QA queue instead of guessing.
//! - A filed page range becomes an ordinary document: its own original (its pages of the
//!   batch as decoded, one TIFF: G4 for bilevel pages, lossless otherwise, resolution kept),
//!   its pages, indexed under its patient. The batch's copies of those pages are destroyed.
//! - The batch file holds several patients' pages, so no document points at it; it is
//!   crypto-shredded as soon as every page range is filed or rejected. The batch row (hash,
//!   size, who and when, and what it became) remains.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use chartvault_ocr::{CoverSheet, TiffPagesWriter};
use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use crate::app::Archive;
use crate::domain::{parse_slug, BatchId, Category, PatientId, UserId};
use crate::ingest::pages::{Failure, Owner, Target};
use crate::store::batches::{Batch, BatchPage, NewSegment, Segment};
use crate::store::documents::NewDocument;
use crate::store::prelude::*;
use crate::store::vault::ObjectRef;
use crate::store::Db;

/// A batch is tried this many times at most (counted when it is claimed: see the worker's
/// limit of the same name).
pub(crate) const MAX_ATTEMPTS: i64 = 3;

/// Where a page range is filed.
#[derive(Debug, Clone)]
pub struct Filing {
    pub patient_id: PatientId,
    pub document_type: String,
    pub category: Category,
    pub service_date: Option<NaiveDate>,
}

/// A cover sheet's document type and category, through the same parser as an upload's
/// (`TYPE=LETTER|CAT=HIV` is the type `letter` in the category `hiv`); `Err` says why the
/// page range has to wait in the QA queue instead.
pub fn cover_fields(
    document_type: &str,
    category: Option<&str>,
) -> Result<(String, Category), &'static str> {
    let document_type = parse_slug("document_type", document_type)
        .map_err(|_| "the cover sheet's document type is not valid")?;
    let category = match category {
        Some(raw) => Category::parse(raw).map_err(|_| "the cover sheet's category is not valid")?,
        None => Category::general(),
    };
    Ok((document_type, category))
}

/// Splits a batch's pages (in scan order) into segments; see the module docs.
pub fn plan(pages: &[BatchPage]) -> Vec<NewSegment> {
    struct Open {
        cover_page: Option<u32>,
        last_seen: u32,
        reason: Option<String>,
        pages: Vec<u32>,
        back_possible: bool,
    }
    fn close(open: Open) -> NewSegment {
        match (open.pages.first(), open.pages.last()) {
            (Some(&first), Some(&last)) => NewSegment {
                first_page: first,
                last_page: last,
                cover_page: open.cover_page,
                qa_reason: open.reason,
            },
            // A cover sheet (and its back) with nothing after it: a person decides.
            _ => NewSegment {
                first_page: open.cover_page.unwrap_or(open.last_seen),
                last_page: open.last_seen,
                cover_page: open.cover_page,
                qa_reason: Some(
                    open.reason
                        .unwrap_or_else(|| "a cover sheet with no pages after it".into()),
                ),
            },
        }
    }
    let mut segments = Vec::new();
    let mut open: Option<Open> = None;
    for page in pages {
        let number = page.row.page;
        match &page.cover {
            CoverSheet::Cover { .. } | CoverSheet::Unreadable { .. } => {
                if let Some(done) = open.take() {
                    segments.push(close(done));
                }
                let reason = match &page.cover {
                    CoverSheet::Unreadable { reason } => Some(format!(
                        "the cover sheet on page {number} of the batch could not be read: {reason}"
                    )),
                    _ => None,
                };
                open = Some(Open {
                    cover_page: Some(number),
                    last_seen: number,
                    reason,
                    pages: Vec::new(),
                    back_possible: true,
                });
            }
            CoverSheet::NotCover => {
                let current = open.get_or_insert_with(|| Open {
                    cover_page: None,
                    last_seen: number,
                    reason: Some("pages before the first cover sheet of the batch".into()),
                    pages: Vec::new(),
                    back_possible: false,
                });
                current.last_seen = number;
                if current.back_possible && current.pages.is_empty() && page.row.blank {
                    // The blank back of a duplex-scanned cover sheet.
                    current.back_possible = false;
                    continue;
                }
                current.back_possible = false;
                current.pages.push(number);
            }
        }
    }
    if let Some(done) = open.take() {
        segments.push(close(done));
    }
    segments
}

/// A batch claimed more often than [`MAX_ATTEMPTS`]: not run again (see the worker's
/// `give_up`).
pub(crate) async fn give_up(state: &Archive, batch: Batch) {
    let reason = format!(
        "processing stopped without a result {} times (the service stopped while working on \
         it); it is not tried again: check the file and upload it again",
        batch.attempts - 1
    );
    tracing::warn!(batch_id = %batch.id, attempts = batch.attempts, "giving up on a batch");
    if let Err(error) = state
        .db
        .set_batch_status(batch.id, "failed", Some(&reason))
        .await
    {
        tracing::error!(batch_id = %batch.id, error = %error, "could not record the batch's failure");
    }
}

/// Runs one claimed batch: processes its pages, splits it, files what its cover sheets say.
pub(crate) async fn process(state: &Archive, batch: Batch) {
    let started = std::time::Instant::now();
    match run(state, &batch).await {
        Ok(segments) => {
            if let Err(error) = state.db.set_batch_status(batch.id, "split", None).await {
                tracing::error!(batch_id = %batch.id, error = %error, "could not mark the batch split");
                return;
            }
            tracing::info!(batch_id = %batch.id, pages = batch.page_count, segments, elapsed_ms = started.elapsed().as_millis() as u64, "batch split");
        }
        Err(failure) => {
            let permanent = failure.permanent || batch.attempts >= MAX_ATTEMPTS;
            tracing::warn!(batch_id = %batch.id, error = ?failure.error, permanent, "batch processing failed");
            let result = if permanent {
                state
                    .db
                    .set_batch_status(batch.id, "failed", Some(&failure.reason))
                    .await
            } else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                state
                    .db
                    .set_batch_status(batch.id, "accepted", Some(&failure.reason))
                    .await
            };
            if let Err(error) = result {
                tracing::error!(batch_id = %batch.id, error = %error, "could not record the batch's failure");
            }
        }
    }
}

async fn run(state: &Archive, batch: &Batch) -> Result<usize, Failure> {
    let transient = |e: crate::store::StoreError| Failure::transient(e.into());
    let mut segments = state.db.segments(batch.id).await.map_err(transient)?;
    if segments.is_empty() {
        let format =
            crate::ingest::upload::format_of(&batch.content_type).ok_or_else(|| Failure {
                reason: "unsupported content type".into(),
                permanent: true,
                error: anyhow::anyhow!("unsupported content type {}", batch.content_type),
            })?;
        let done: HashSet<u32> = state
            .db
            .batch_pages(batch.id)
            .await
            .map_err(transient)?
            .into_iter()
            .map(|p| p.row.page)
            .collect();
        let todo: Vec<u32> = (1..=batch.page_count)
            .filter(|p| !done.contains(p))
            .collect();
        if !todo.is_empty() {
            let target = Target {
                owner: Owner::Batch(batch.id),
                content_type: batch.content_type.clone(),
                page_count: batch.page_count,
            };
            crate::ingest::pages::process_pages(state, &target, format, todo).await?;
        }
        let pages = state.db.batch_pages(batch.id).await.map_err(transient)?;
        segments = state
            .db
            .plan_segments(batch.id, &plan(&pages))
            .await
            .map_err(transient)?;
    }
    let covers: HashMap<u32, CoverSheet> = state
        .db
        .batch_pages(batch.id)
        .await
        .map_err(transient)?
        .into_iter()
        .map(|p| (p.row.page, p.cover))
        .collect();
    let mut filings = Vec::new();
    for segment in segments.iter().filter(|s| s.status == "pending") {
        let cover = segment.cover_page.and_then(|page| covers.get(&page));
        let Some(CoverSheet::Cover {
            mrn,
            issuer,
            document_type,
            category,
            service_date,
        }) = cover
        else {
            state
                .db
                .segment_to_qa(segment.id, "the cover sheet's fields are missing")
                .await
                .map_err(transient)?;
            continue;
        };
        // An MRN of an issuer the archive does not know is no known patient's either.
        let patient = match state.config.patients.mrn(mrn, issuer.as_deref()) {
            Ok(mrn) => state.db.patient_by_mrn(&mrn).await.map_err(transient)?,
            Err(_) => None,
        };
        let Some(patient) = patient else {
            state
                .db
                .segment_to_qa(
                    segment.id,
                    "the MRN on the cover sheet is not that of a known patient",
                )
                .await
                .map_err(transient)?;
            continue;
        };
        let (document_type, category) = match cover_fields(document_type, category.as_deref()) {
            Ok(fields) => fields,
            Err(why) => {
                state
                    .db
                    .segment_to_qa(segment.id, why)
                    .await
                    .map_err(transient)?;
                continue;
            }
        };
        let filing = Filing {
            patient_id: patient.id,
            document_type,
            category,
            service_date: service_date.as_deref().and_then(|d| d.parse().ok()),
        };
        filings.push((segment, filing));
    }
    // The documents are cut at once: each decodes its own pages of the batch file in a
    // decoder of its own and writes its own original; the batch file goes once all are filed.
    // Each runs to its end (none is dropped halfway when another fails).
    let filed = futures::future::join_all(
        filings
            .iter()
            .map(|(segment, filing)| file_segment(state, batch, segment, filing, None)),
    )
    .await;
    for result in filed {
        result.map_err(Failure::transient)?;
    }
    release_if_done(state, batch.id)
        .await
        .map_err(Failure::transient)?;
    Ok(segments.len())
}

/// Files a page range as a document (see the module docs). `by` is the person resolving it
/// from the QA queue, `None` when the cover sheet filed it. False when the range was filed
/// or rejected meanwhile.
pub async fn file(
    state: &Archive,
    batch: &Batch,
    segment: &Segment,
    filing: &Filing,
    by: Option<UserId>,
) -> anyhow::Result<bool> {
    let filed = file_segment(state, batch, segment, filing, by).await?;
    if filed {
        release_if_done(state, batch.id).await?;
    }
    Ok(filed)
}

/// [`file`] without destroying the batch file when it was the last range: the caller does,
/// once (several ranges may be filed at the same time).
async fn file_segment(
    state: &Archive,
    batch: &Batch,
    segment: &Segment,
    filing: &Filing,
    by: Option<UserId>,
) -> anyhow::Result<bool> {
    let doc = segment.document_id;
    let format = crate::ingest::upload::format_of(&batch.content_type)
        .context("the batch has an unsupported content type")?;
    let limits = crate::ingest::upload::scan_limits(&state.config);
    let (first, last) = (segment.first_page, segment.last_page);
    // (batch page, document page): the kept cover sheet is page 0, then pages from 1.
    let kept_cover = segment
        .cover_page
        .filter(|&cover| state.config.batches.keep_cover_sheet && cover < first);
    let mapping: Vec<(u32, u32)> = kept_cover
        .map(|cover| (cover, 0))
        .into_iter()
        .chain((first..=last).zip(1..))
        .collect();
    let batch_pages: Vec<u32> = mapping.iter().map(|&(page, _)| page).collect();

    // The document's original: its pages of the batch, as decoded, in one TIFF; or, when
    // the batch file was destroyed already (a document cut from it was shredded, or a range
    // of it rejected), its stored page images.
    // The batch file, unless it was destroyed (a document cut from it was shredded, or a
    // range rejected, meanwhile too): then the range's own stored pages.
    let from_file = if original_destroyed(state, batch.id).await? {
        None
    } else {
        let pages = batch_pages.clone();
        match decode_from_batch_file(state, batch, format, &limits, pages).await {
            Ok(tiff) => Some(tiff),
            Err(_) if original_destroyed(state, batch.id).await? => None,
            Err(error) => return Err(error),
        }
    };
    let tiff = match from_file {
        Some(tiff) => tiff,
        None => tiff_of_page_images(state, batch.id, &batch_pages).await?,
    };
    let sha256 = hex::encode(Sha256::digest(&tiff));
    let sha1 = hex::encode(<sha1::Sha1 as sha2::Digest>::digest(&tiff));
    let size = tiff.len() as u64;
    let key = state.vault.new_key()?;
    let vault = state.vault.clone();
    let key = tokio::task::spawn_blocking(move || -> anyhow::Result<crate::store::keys::NewKey> {
        let mut writer = vault.staging_writer(doc, &key)?;
        writer.write_all(&tiff)?;
        writer.finish()?.commit()?;
        vault.promote_staging(doc)?;
        Ok(key)
    })
    .await??;

    // Its pages: the batch's artifacts, re-encrypted under the document's identity.
    let pages: HashMap<u32, BatchPage> = state
        .db
        .batch_pages(batch.id)
        .await?
        .into_iter()
        .map(|p| (p.row.page, p))
        .collect();
    let mut rows = Vec::new();
    for &(page, number) in &mapping {
        let source = pages
            .get(&page)
            .with_context(|| format!("batch page {page} is not held by the batch"))?;
        state
            .vault
            .copy_page(
                ObjectRef::batch_page_artifacts(batch.id, page),
                ObjectRef::page_artifacts(doc, number),
            )
            .await?;
        let mut row = source.row.clone();
        row.page = number;
        rows.push(row);
    }

    let created_by = by.unwrap_or(batch.created_by.parse().context("batch created_by")?);
    let new_doc = NewDocument {
        id: doc,
        patient_id: filing.patient_id,
        document_type: filing.document_type.clone(),
        category: filing.category.clone(),
        service_date: filing.service_date,
        encounter: None,
        content_type: "image/tiff".into(),
        sha256,
        sha1: Some(sha1),
        size_bytes: size,
        page_count: last + 1 - first,
        created_by,
        sop_instance_uid: None,
        // Filed from its cover sheet: the confidence check still applies; filed by a person
        // from the QA queue: they have looked at it.
        qa_reason: if by.is_none() {
            crate::ingest::pages::low_confidence(&state.config, &rows)
        } else {
            None
        },
    };
    let mut key = key;
    state.vault.refresh_wrap(&mut key)?;
    let mut tx = state.db.begin().await?;
    if !Db::resolve_segment(&mut tx, segment.id, "filed", by).await? {
        drop(tx);
        return Ok(false);
    }
    state
        .db
        .insert_document_with_pages(&mut tx, &key, &new_doc, &rows)
        .await?;
    tx.commit().await?;
    state.jobs_waiting.notify_one();

    destroy_pages(state, batch.id, segment).await?;
    Ok(true)
}

/// Whether a batch's file is destroyed (or the batch is gone).
async fn original_destroyed(state: &Archive, batch: BatchId) -> anyhow::Result<bool> {
    Ok(state
        .db
        .batch(batch)
        .await?
        .is_none_or(|row| row.original_destroyed_at.is_some()))
}

/// A document's original: its pages of the batch file, as decoded (in a decoder process,
/// like every page of an upload), in one TIFF.
async fn decode_from_batch_file(
    state: &Archive,
    batch: &Batch,
    format: chartvault_ocr::ScanFormat,
    limits: &chartvault_ocr::Limits,
    batch_pages: Vec<u32>,
) -> anyhow::Result<Vec<u8>> {
    let reader = state
        .vault
        .open(ObjectRef::batch_original(batch.id))
        .await?;
    let sandbox = state.decoder.clone();
    let page_count = batch.page_count as usize;
    let limits = limits.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let mut writer = TiffPagesWriter::new()?;
        let mut failure: Option<anyhow::Error> = None;
        let indexes: Vec<usize> = batch_pages.iter().map(|&p| (p - 1) as usize).collect();
        sandbox.decode_pages(
            reader,
            format,
            &limits,
            page_count,
            &indexes,
            |_, decoded| {
                let added = decoded
                    .map_err(anyhow::Error::from)
                    .and_then(|page| Ok(writer.add(&page.image, page.dpi)?));
                match added {
                    Ok(()) => std::ops::ControlFlow::Continue(()),
                    Err(error) => {
                        failure = Some(error);
                        std::ops::ControlFlow::Break(())
                    }
                }
            },
        )?;
        if let Some(error) = failure {
            return Err(error);
        }
        Ok(writer.finish())
    })
    .await?
}

/// A document's original made of the batch's stored page images (PNG, as cleaned up), for a
/// page range filed after the batch file itself was destroyed.
async fn tiff_of_page_images(
    state: &Archive,
    batch: BatchId,
    batch_pages: &[u32],
) -> anyhow::Result<Vec<u8>> {
    let dpi: HashMap<u32, Option<f64>> = state
        .db
        .batch_pages(batch)
        .await?
        .into_iter()
        .map(|p| (p.row.page, p.row.dpi))
        .collect();
    let mut pages = Vec::with_capacity(batch_pages.len());
    for &page in batch_pages {
        let png = state
            .vault
            .get(ObjectRef::batch_page_image(batch, page))
            .await?;
        let dpi = dpi
            .get(&page)
            .copied()
            .flatten()
            .map(|d| (d as f32, d as f32));
        pages.push((png, dpi));
    }
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let mut writer = TiffPagesWriter::new()?;
        for (png, dpi) in pages {
            let image = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
                .context("a stored page image does not decode")?
                .to_luma8();
            writer.add(&image, dpi)?;
        }
        Ok(writer.finish())
    })
    .await?
}

/// Rejects a page range from the QA queue: its pages (and cover sheet) are crypto-shredded,
/// and so is the batch file, which holds them too (its key in the transaction that records
/// the rejection; page ranges still waiting are filed from their stored page images from
/// then on). False when it was resolved meanwhile.
pub async fn reject(state: &Archive, segment: &Segment, by: UserId) -> anyhow::Result<bool> {
    let original = live_original_key(state, segment.batch_id).await?;
    let mut tx = state.db.begin().await?;
    if !Db::resolve_segment(&mut tx, segment.id, "rejected", Some(by)).await? {
        return Ok(false);
    }
    if let Some(key) = &original {
        Db::destroy_batch_original_in(&mut tx, segment.batch_id, key).await?;
    }
    tx.commit().await?;
    if original.is_some() {
        state
            .vault
            .delete_blob(ObjectRef::batch_original(segment.batch_id))
            .await;
        state.db.truncate_wal_soon().await;
        tracing::info!(batch_id = %segment.batch_id, "batch file destroyed with the pages rejected");
    }
    destroy_pages(state, segment.batch_id, segment).await?;
    release_if_done(state, segment.batch_id).await?;
    Ok(true)
}

/// The key id of a batch's file while it is not destroyed (read from its header).
async fn live_original_key(state: &Archive, batch: BatchId) -> anyhow::Result<Option<String>> {
    match state.db.batch(batch).await? {
        Some(row) if row.original_destroyed_at.is_none() => {
            state
                .vault
                .key_id_of(ObjectRef::batch_original(batch))
                .await
        }
        _ => Ok(None),
    }
}

/// Destroys the batch's copies of a segment's pages: its cover sheet and the cover's back,
/// and its own pages (keys first, then blobs; then the rows).
async fn destroy_pages(state: &Archive, batch: BatchId, segment: &Segment) -> anyhow::Result<()> {
    let from = segment.cover_page.unwrap_or(segment.first_page);
    let pages: Vec<u32> = (from.min(segment.first_page)..=segment.last_page).collect();
    let objects: Vec<ObjectRef> = pages
        .iter()
        .flat_map(|&page| ObjectRef::batch_page_artifacts(batch, page))
        .collect();
    destroy_objects(state, objects).await?;
    state.db.delete_batch_pages(batch, &pages).await?;
    Ok(())
}

/// Once no page range of the batch is left to file, the batch file is crypto-shredded.
async fn release_if_done(state: &Archive, batch: BatchId) -> anyhow::Result<()> {
    if state.db.batch_has_open_segments(batch).await? {
        return Ok(());
    }
    let Some(row) = state.db.batch(batch).await? else {
        return Ok(());
    };
    let leftovers: Vec<u32> = state
        .db
        .batch_pages(batch)
        .await?
        .iter()
        .map(|p| p.row.page)
        .collect();
    if row.original_destroyed_at.is_some() && leftovers.is_empty() {
        return Ok(());
    }
    let mut objects: Vec<ObjectRef> = leftovers
        .iter()
        .flat_map(|&page| ObjectRef::batch_page_artifacts(batch, page))
        .collect();
    objects.push(ObjectRef::batch_original(batch));
    destroy_objects(state, objects).await?;
    state.db.delete_batch_pages(batch, &leftovers).await?;
    if row.original_destroyed_at.is_none() {
        state.db.mark_batch_original_destroyed(batch).await?;
    }
    state.db.truncate_wal_soon().await;
    tracing::info!(batch_id = %batch, "batch file destroyed: every page is filed or rejected");
    Ok(())
}

/// Crypto-shreds objects: each one's keyring row goes, then its blob.
async fn destroy_objects(state: &Archive, objects: Vec<ObjectRef>) -> anyhow::Result<()> {
    let vault = state.vault.clone();
    let lookup = objects.clone();
    let keys = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let mut keys = Vec::new();
        for object in &lookup {
            keys.extend(vault.stored_key_id(&object.blob_name())?);
        }
        Ok(keys)
    })
    .await??;
    for key in &keys {
        state.db.delete_key(key).await?;
    }
    let vault = state.vault.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for object in objects {
            vault.blobs.delete(&object.blob_name())?;
        }
        Ok(())
    })
    .await??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pages::PageRow;

    fn page(n: u32, blank: bool, cover: CoverSheet) -> BatchPage {
        BatchPage {
            row: PageRow {
                page: n,
                width: 10,
                height: 10,
                dpi: None,
                mean_confidence: 90.0,
                word_count: 1,
                blank,
                rotation: 0,
                skew_degrees: None,
                ink: None,
                text_source: crate::domain::TextSource::Ocr,
            },
            cover,
        }
    }

    fn cover() -> CoverSheet {
        CoverSheet::Cover {
            mrn: "1".into(),
            issuer: None,
            document_type: "letter".into(),
            category: None,
            service_date: None,
        }
    }

    fn seg(first: u32, last: u32, cover: Option<u32>, qa: bool) -> (u32, u32, Option<u32>, bool) {
        (first, last, cover, qa)
    }

    fn shape(segments: &[NewSegment]) -> Vec<(u32, u32, Option<u32>, bool)> {
        segments
            .iter()
            .map(|s| {
                (
                    s.first_page,
                    s.last_page,
                    s.cover_page,
                    s.qa_reason.is_some(),
                )
            })
            .collect()
    }

    #[test]
    fn covers_start_documents_and_their_blank_backs_go_with_them() {
        use CoverSheet::NotCover;
        let pages = vec![
            page(1, false, cover()),
            page(2, true, NotCover), // the cover's back
            page(3, false, NotCover),
            page(4, true, NotCover), // a page's blank back: kept, flagged
            page(5, false, cover()),
            page(6, false, NotCover),
        ];
        assert_eq!(
            shape(&plan(&pages)),
            vec![seg(3, 4, Some(1), false), seg(6, 6, Some(5), false)]
        );
    }

    #[test]
    fn what_cannot_be_filed_goes_to_qa() {
        use CoverSheet::NotCover;
        let unreadable = CoverSheet::Unreadable { reason: "x".into() };
        let pages = vec![
            page(1, false, NotCover), // before the first cover sheet
            page(2, false, unreadable),
            page(3, false, NotCover),
            page(4, false, cover()),
            page(5, true, NotCover), // its back, then nothing
            page(6, false, cover()),
            page(7, false, NotCover),
        ];
        let segments = plan(&pages);
        assert_eq!(
            shape(&segments),
            vec![
                seg(1, 1, None, true),
                seg(3, 3, Some(2), true),
                seg(4, 5, Some(4), true),
                seg(7, 7, Some(6), false),
            ]
        );
        assert!(segments[1].qa_reason.as_deref().unwrap().contains("page 2"));
        assert!(segments[2]
            .qa_reason
            .as_deref()
            .unwrap()
            .contains("no pages"));
    }
}

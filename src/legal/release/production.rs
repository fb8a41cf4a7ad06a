//! A production: one PDF answering a request, certified, Bates-stamped, with its
//! manifest, written encrypted and recorded with its disclosures.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use chartvault_storage::KeyId;
use chrono::{Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::access::audit::AuditEvent;
use crate::access::policy::{Action, Principal};
use crate::app::Archive;
use crate::config::ReleasesConfig;
use crate::domain::{DocumentId, LegalBasis, Outcome, PatientId, ProductionId};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::store::disclosures::{DisclosureSource, NewDisclosure};
use crate::store::documents::Document;
use crate::store::prelude::*;
use crate::store::releases::{NewProduction, Production, Region, Release};
use crate::store::vault::ObjectRef;

use super::bates_number;
use super::checklist::*;
use super::manifest::*;
use super::scope::*;

/// What the production request asks for.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductionRequest {
    /// Who certifies (name and title); required when certified.
    pub custodian: Option<String>,
    /// With the custodian certification (default: yes, except a patient's own copy).
    pub certify: Option<bool>,
    /// With Bates stamps (default: yes, except a patient's own copy).
    pub bates: Option<bool>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Produced {
    pub production: Production,
    pub manifest: Manifest,
}

/// One Bates prefix is numbered by one production at a time (the commit checks it too).
static PRODUCING: Mutex<()> = Mutex::const_new(());

struct PlannedPage {
    doc: usize,
    page: u32,
    dpi: f32,
    regions: Vec<Region>,
    whole: bool,
}

pub(super) fn fill_template(template: &str, values: &[(&str, String)]) -> String {
    let mut text = template.to_string();
    for (key, value) in values {
        text = text.replace(&format!("{{{key}}}"), value);
    }
    text
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A page on its way to the PDF writer (decrypted, one or two at a time).
struct PageJob {
    image: PageData,
    words: Vec<chartvault_produce::Word>,
    dpi: f32,
    stamp: Option<String>,
    regions: Vec<chartvault_produce::Rect>,
    whole: bool,
}

/// A page image as the PDF gets it.
pub(super) enum PageData {
    /// The stored PNG, embedded as it is.
    Png(Vec<u8>),
    /// A page of black and white (a bilevel scan, straightened): thresholded, so that the
    /// PDF holds it at one bit per pixel.
    Bilevel {
        width: u32,
        height: u32,
        pixels: Vec<u8>,
    },
}

/// Share of a page's pixels that must be near black or near white for it to be embedded
/// as black and white: what a bilevel scan looks like after deskewing (grey only along
/// the edges of strokes). Photographs, x-ray previews and grey scans stay grey.
const BILEVEL_MIN_SHARE: f64 = 0.97;

/// The stored page as the PDF should embed it (runs on a blocking thread).
pub(super) fn prepare_page(png: Vec<u8>, bilevel: bool) -> PageData {
    if !bilevel {
        return PageData::Png(png);
    }
    match chartvault_produce::bilevel_page(&png, BILEVEL_MIN_SHARE) {
        Some(page) => PageData::Bilevel {
            width: page.width,
            height: page.height,
            pixels: page.pixels,
        },
        // Grey, or not a readable PNG (the writer reports what is wrong with it).
        None => PageData::Png(png),
    }
}

/// Builds, stores and records a production of `release` (authorised by the caller): the
/// checklist must pass; the pages are planned with their redactions and Bates numbers; the
/// certification and manifest are laid out with the page counts they state; the PDF is
/// written encrypted, audited with its hash, then recorded with its disclosures.
pub async fn produce(
    state: &Archive,
    principal: &Principal,
    release: &Release,
    request: &ProductionRequest,
) -> AppResult<Produced> {
    let patient_access = release.legal_basis == LegalBasis::PatientAccess;
    let certify = request.certify.unwrap_or(!patient_access);
    let stamped = request.bates.unwrap_or(!patient_access);
    let custodian = custodian_of(request, certify)?;
    let documents = documents_in_scope(state, principal, release).await?;
    if documents.is_empty() {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "the request covers no document (after exclusions): nothing to produce",
        ));
    }
    check_releasable(state, principal, release, &documents).await?;
    let plan = plan_pages(state, release, &documents).await?;

    let _numbering = PRODUCING.lock().await;
    let production_id = ProductionId::new_random();
    let bates = Bates {
        prefix: stamped.then(|| release.bates_prefix.clone()),
        first: if stamped {
            state.db.bates_next(&release.bates_prefix).await?
        } else {
            0
        },
    };
    let layout = lay_out(
        &state.config.releases,
        release,
        &documents,
        &plan,
        production_id,
        custodian.as_deref().filter(|_| certify),
        &bates,
    );
    let object = ObjectRef::Production(production_id);
    let (sha256, size_bytes, key_id) =
        write_pdf(state, production_id, &layout, &plan, &documents, &bates).await?;

    // Audited (with the PDF's hash) before it exists for anyone.
    let record_pages = plan.len() as u32;
    let bates_range = bates.prefix.as_ref().map(|_| {
        (
            bates.number(0).unwrap_or_default(),
            bates.number(plan.len() - 1).unwrap_or_default(),
        )
    });
    let audited = AuditEvent::new(principal, Action::ManageReleases)
        .patient(release.patient_ids.first().copied())
        .detail(serde_json::json!({
            "produce": production_id,
            "release": release.id,
            "sha256": sha256,
            "pdf_pages": layout.pdf_pages,
            "record_pages": record_pages,
            "documents": documents.len(),
            "bates": bates_range,
            "patients": release.patient_ids,
        }))
        .record(&state.db)
        .await;
    if let Err(error) = audited {
        state.vault.discard(object, &key_id).await;
        return Err(error);
    }
    let manifest_json = Manifest {
        production_id,
        release_id: release.id,
        legal_basis: release.legal_basis,
        bates_first: bates_range.as_ref().map(|r| r.0.clone()),
        bates_last: bates_range.as_ref().map(|r| r.1.clone()),
        pdf_pages: layout.pdf_pages,
        certification_pages: layout.certification_pages,
        manifest_pages: layout.manifest_pages,
        documents: documents.len() as u32,
        pages: layout.pages,
        pdf_sha256: sha256.clone(),
        created_at: crate::store::now(),
    };
    // The accounting of disclosures: one per patient, naming their documents, recorded in
    // the transaction that records the production.
    let disclosures = production_disclosures(
        release,
        &documents,
        production_id,
        bates_range.as_ref(),
        record_pages,
        principal.user_id,
    );
    let recorded = state
        .db
        .insert_production(
            &NewProduction {
                id: production_id,
                release_id: release.id,
                bates: bates.prefix.clone().map(|p| (p, bates.first)),
                record_pages,
                pdf_pages: layout.pdf_pages,
                documents: documents.len() as u32,
                certified: certify,
                custodian,
                sha256: sha256.clone(),
                size_bytes,
                manifest: serde_json::to_string(&manifest_json).map_err(AppError::internal)?,
                created_by: principal.user_id,
            },
            &disclosures,
        )
        .await;
    match recorded {
        Ok(true) => {}
        Ok(false) => {
            state.vault.discard(object, &key_id).await;
            return Err(AppError::new(
                ErrorCode::Conflict,
                "another production took these Bates numbers meanwhile; retry",
            ));
        }
        Err(error) => {
            state.vault.discard(object, &key_id).await;
            return Err(error.into());
        }
    }
    drop(_numbering);

    let (production, _) = state
        .db
        .production(production_id)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("a recorded production vanished")))?;
    tracing::info!(
        production_id = %production_id,
        pages = layout.pdf_pages,
        bytes = size_bytes,
        "production written"
    );
    Ok(Produced {
        production,
        manifest: manifest_json,
    })
}

/// The custodian who certifies: required for a certified production, 1 to 300 characters.
fn custodian_of(request: &ProductionRequest, certify: bool) -> AppResult<Option<String>> {
    match (&request.custodian, certify) {
        (Some(c), _) if !c.trim().is_empty() && c.chars().count() <= 300 => {
            Ok(Some(c.trim().to_string()))
        }
        (Some(_), _) => Err(AppError::invalid("custodian must be 1 to 300 characters")),
        (None, true) => Err(AppError::invalid(
            "a certified production needs the custodian who certifies it",
        )),
        (None, false) => Ok(None),
    }
}

/// Refuses (audited, 409 naming every blocked item) a production the checklist blocks.
async fn check_releasable(
    state: &Archive,
    principal: &Principal,
    release: &Release,
    documents: &[Document],
) -> AppResult<()> {
    let kinds: Vec<String> = state
        .db
        .attachments(release.id)
        .await?
        .into_iter()
        .map(|a| a.kind)
        .collect();
    let items = checklist(&state.config.releases, release, &kinds, documents);
    let blocked: Vec<String> = items
        .iter()
        .filter(|i| i.blocked())
        .map(|i| {
            if i.document_ids.is_empty() {
                format!("{}: {}", i.item, i.detail)
            } else {
                let ids: Vec<String> = i.document_ids.iter().map(|d| d.to_string()).collect();
                format!("{}: {} (documents {})", i.item, i.detail, ids.join(", "))
            }
        })
        .collect();
    if blocked.is_empty() {
        return Ok(());
    }
    AuditEvent::new(principal, Action::ManageReleases)
        .outcome(Outcome::Refused)
        .patient(release.patient_ids.first().copied())
        .detail(serde_json::json!({
            "release": release.id,
            "blocked": items.iter().filter(|i| i.blocked()).map(|i| i.item.clone()).collect::<Vec<_>>(),
            "patients": release.patient_ids,
        }))
        .record(&state.db)
        .await?;
    Err(AppError::new(
        ErrorCode::Conflict,
        format!(
            "the release checklist blocks this production: {}",
            blocked.join("; ")
        ),
    ))
}

/// Every page of every document, in order, with its redactions.
async fn plan_pages(
    state: &Archive,
    release: &Release,
    documents: &[Document],
) -> AppResult<Vec<PlannedPage>> {
    let mut redactions: HashMap<(DocumentId, u32), (Vec<Region>, bool)> = HashMap::new();
    for r in state.db.redactions(release.id).await? {
        let entry = redactions.entry((r.document_id, r.page)).or_default();
        entry.0.extend(r.regions);
        entry.1 |= r.whole_page;
    }
    let mut plan = Vec::new();
    for (n, doc) in documents.iter().enumerate() {
        for row in state.db.pages(doc.id).await? {
            let (regions, whole) = redactions.remove(&(doc.id, row.page)).unwrap_or_default();
            plan.push(PlannedPage {
                doc: n,
                page: row.page,
                dpi: row.dpi.unwrap_or(300.0) as f32,
                regions,
                whole,
            });
        }
    }
    if plan.is_empty() {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "the documents the request covers have no pages: nothing to produce",
        ));
    }
    Ok(plan)
}

/// The Bates numbers of a production: none when it is not stamped.
struct Bates {
    prefix: Option<String>,
    first: i64,
}

impl Bates {
    /// The number of the `i`th record page.
    fn number(&self, i: usize) -> Option<String> {
        self.prefix
            .as_deref()
            .map(|p| bates_number(p, self.first + i as i64))
    }
}

/// The pages around the records, with the counts they state fixed before a byte is written.
struct Layout {
    /// Empty when the production is not certified.
    certification: String,
    manifest: String,
    pages: Vec<ManifestPage>,
    certification_pages: u32,
    manifest_pages: u32,
    pdf_pages: u32,
}

/// Lays out the certification (when `custodian` certifies) and the manifest. Each states
/// page counts that depend on how many pages the other takes, so this settles in a few
/// rounds.
fn lay_out(
    config: &ReleasesConfig,
    release: &Release,
    documents: &[Document],
    plan: &[PlannedPage],
    production_id: ProductionId,
    custodian: Option<&str>,
    bates: &Bates,
) -> Layout {
    let certify = custodian.is_some();
    let record_pages = plan.len() as u32;
    let mut certification_pages: u32 = u32::from(certify);
    let mut manifest_pages = 1;
    let mut certification = String::new();
    let mut manifest = String::new();
    let mut pages: Vec<ManifestPage> = Vec::new();
    for _ in 0..3 {
        pages = plan
            .iter()
            .enumerate()
            .map(|(i, p)| ManifestPage {
                bates: bates.number(i),
                pdf_page: certification_pages + i as u32 + 1,
                document_id: documents[p.doc].id,
                page: p.page,
                original_sha256: documents[p.doc].sha256.clone(),
                redacted: !p.regions.is_empty(),
                withheld: p.whole,
            })
            .collect();
        manifest = manifest_text(production_id, release, documents, &pages);
        manifest_pages = chartvault_produce::text_page_count(&manifest);
        let pdf_pages = certification_pages + record_pages + manifest_pages;
        if let Some(custodian) = custodian {
            let today = Utc::now().date_naive();
            certification = fill_template(
                &config.certification_template,
                &[
                    ("institution", config.institution.clone()),
                    ("custodian", custodian.to_string()),
                    ("pdf_pages", pdf_pages.to_string()),
                    ("record_pages", record_pages.to_string()),
                    ("documents", documents.len().to_string()),
                    (
                        "bates_first",
                        bates.number(0).unwrap_or_else(|| "(not stamped)".into()),
                    ),
                    (
                        "bates_last",
                        bates
                            .number(plan.len() - 1)
                            .unwrap_or_else(|| "(not stamped)".into()),
                    ),
                    ("date", today.to_string()),
                    (
                        "matter",
                        release.details.matter.clone().unwrap_or_else(|| "-".into()),
                    ),
                    ("recipient", release.details.recipient.name.clone()),
                    ("release_id", release.id.to_string()),
                    ("production_id", production_id.to_string()),
                ],
            );
            let counted = chartvault_produce::text_page_count(&certification);
            if counted != certification_pages {
                certification_pages = counted;
                continue;
            }
        }
        break;
    }
    Layout {
        certification,
        manifest,
        pages,
        certification_pages,
        manifest_pages,
        pdf_pages: certification_pages + record_pages + manifest_pages,
    }
}

/// Writes the production's PDF, encrypted, as it is produced: pages decrypted here →
/// thresholded on one thread → written on another, two at most waiting at each step (one
/// long-lived thread each keeps the memory they use in one allocator arena each, whatever
/// the page count). Returns the PDF's SHA-256, its size and its key; on failure nothing of
/// it remains.
async fn write_pdf(
    state: &Archive,
    production_id: ProductionId,
    layout: &Layout,
    plan: &[PlannedPage],
    documents: &[Document],
    bates: &Bates,
) -> AppResult<(String, u64, KeyId)> {
    let object = ObjectRef::Production(production_id);
    let (sink, key_id) = state.vault.writer(object).await?;
    let (raw_tx, mut raw_rx) = tokio::sync::mpsc::channel::<PageJob>(2);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<PageJob>(2);
    let bilevel = state.config.releases.bilevel_pages;
    let preparer = tokio::task::spawn_blocking(move || {
        while let Some(mut job) = raw_rx.blocking_recv() {
            if let PageData::Png(png) = job.image {
                job.image = prepare_page(png, bilevel);
            }
            if tx.blocking_send(job).is_err() {
                return; // the writer failed: its error is the one to report
            }
        }
    });
    let now = Utc::now();
    let info = chartvault_produce::DocumentInfo {
        title: format!("Production {production_id}"),
        producer: format!("chartvault {}", env!("CARGO_PKG_VERSION")),
        creation: chartvault_produce::PdfDate {
            year: now.year() as u16,
            month: now.month() as u8,
            day: now.day() as u8,
            hour: now.hour() as u8,
            minute: now.minute() as u8,
            second: now.second() as u8,
        },
    };
    let manifest_footer_total = layout.manifest_pages;
    let writer_certification = layout.certification.clone();
    let writer_manifest = layout.manifest.clone();
    let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<(String, u64, u32)> {
        let out = Hashing {
            inner: sink,
            hasher: Sha256::new(),
            bytes: 0,
        };
        let mut pdf = chartvault_produce::ProductionWriter::new(out, &info)?;
        if !writer_certification.is_empty() {
            pdf.text_pages(&writer_certification, None)?;
        }
        while let Some(job) = rx.blocking_recv() {
            pdf.image_page(&chartvault_produce::ImagePage {
                image: match &job.image {
                    PageData::Png(png) => chartvault_produce::PageImage::Png(png),
                    PageData::Bilevel {
                        width,
                        height,
                        pixels,
                    } => chartvault_produce::PageImage::Gray {
                        width: *width,
                        height: *height,
                        pixels,
                    },
                },
                dpi: job.dpi,
                words: &job.words,
                stamp: job.stamp.as_deref(),
                redactions: &job.regions,
                redact_whole_page: job.whole,
            })?;
        }
        pdf.text_pages_with(&writer_manifest, |n, _| {
            Some(format!("Manifest page {n} of {manifest_footer_total}"))
        })?;
        let (mut out, pages) = pdf.finish()?;
        out.flush()?;
        let sha256 = hex::encode(out.hasher.finalize());
        out.inner.finish()?.commit()?;
        Ok((sha256, out.bytes, pages))
    });
    let feed = async {
        for (i, p) in plan.iter().enumerate() {
            let job = page_job(state, documents[p.doc].id, p, bates.number(i)).await?;
            if raw_tx.send(job).await.is_err() {
                break; // the writer failed: its error is the one to report
            }
        }
        drop(raw_tx);
        anyhow::Ok(())
    };
    let fed = feed.await;
    let _ = preparer.await;
    let written = writer.await.map_err(anyhow::Error::from).and_then(|r| r);
    match (fed, written) {
        (Ok(()), Ok((sha256, size_bytes, written_pages))) => {
            debug_assert_eq!(written_pages, layout.pdf_pages);
            Ok((sha256, size_bytes, key_id))
        }
        (Err(error), _) | (_, Err(error)) => {
            state.vault.discard(object, &key_id).await;
            Err(AppError::internal(error.context("writing a production")))
        }
    }
}

/// One planned page, decrypted, as the PDF writer takes it.
async fn page_job(
    state: &Archive,
    doc: DocumentId,
    p: &PlannedPage,
    stamp: Option<String>,
) -> anyhow::Result<PageJob> {
    let image = PageData::Png(state.vault.get(ObjectRef::PageImage(doc, p.page)).await?);
    let words_json = state.vault.get(ObjectRef::PageWords(doc, p.page)).await?;
    let words: Vec<chartvault_ocr::OcrWord> = serde_json::from_slice(&words_json)?;
    Ok(PageJob {
        image,
        // Only what the page shows: a PDF's text that its rendered page does not (white on
        // white, covered, invisible over blank paper) never reaches the recipient unseen by
        // the reviewer.
        words: words
            .into_iter()
            .filter(|w| !w.hidden)
            .map(|w| chartvault_produce::Word {
                text: w.text,
                left: w.left,
                top: w.top,
                width: w.width,
                height: w.height,
            })
            .collect(),
        dpi: p.dpi,
        stamp,
        regions: p
            .regions
            .iter()
            .map(|r| chartvault_produce::Rect {
                left: r.left,
                top: r.top,
                width: r.width,
                height: r.height,
            })
            .collect(),
        whole: p.whole,
    })
}

/// The disclosures a production makes, one per patient naming their documents, for the
/// accounting of disclosures.
fn production_disclosures(
    release: &Release,
    documents: &[Document],
    production_id: ProductionId,
    bates_range: Option<&(String, String)>,
    record_pages: u32,
    recorded_by: crate::domain::UserId,
) -> Vec<NewDisclosure> {
    let mut by_patient: BTreeMap<PatientId, Vec<DocumentId>> = BTreeMap::new();
    for doc in documents {
        by_patient.entry(doc.patient_id).or_default().push(doc.id);
    }
    let recipient = &release.details.recipient;
    let purpose = match &release.details.matter {
        Some(matter) => format!("{} ({matter})", release.legal_basis),
        None => release.legal_basis.to_string(),
    };
    by_patient
        .into_iter()
        .map(|(patient, docs)| {
            let description = match bates_range {
                Some((first, last)) => format!(
                    "production {production_id}: {} documents, Bates {first} to {last} \
                     ({record_pages} pages in all)",
                    docs.len()
                ),
                None => format!(
                    "copy {production_id}: {} documents ({record_pages} pages in all)",
                    docs.len()
                ),
            };
            NewDisclosure {
                patient_id: patient,
                disclosed_at: Utc::now().date_naive(),
                document_ids: docs,
                recipient_name: match &recipient.organization {
                    Some(org) => format!("{}, {org}", recipient.name),
                    None => recipient.name.clone(),
                },
                recipient_address: recipient.address.clone(),
                description,
                purpose: purpose.clone(),
                source: DisclosureSource::Production,
                recorded_by,
            }
        })
        .collect()
}

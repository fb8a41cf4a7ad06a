//! Release of information: which documents a request covers, the checklist that must pass
//! before anything leaves, and the production (one PDF) that answers it.
//!
//! Promises:
//! - A request covers the documents of its patients that are filed (not waiting in QA, not
//!   entered in error, not destroyed), within its service-date range, document types and
//!   categories, that the person producing may read, less its exclusions.
//! - The checklist: a subpoena without a court order needs recorded satisfactory
//!   assurances; a court order or a patient authorisation must be on file as an attachment;
//!   a document in a category of `[[releases.category_requirements]]` (by default
//!   `substance-use`: a court order or Part 2 consent; `psychotherapy`: the patient's
//!   specific authorisation) needs one of its authorisations. A blocked item names the
//!   documents and what would unblock it (exclude them, or attach the authorisation).
//! - A production is one PDF: a custodian certification first (the configured template),
//!   then every page of every document as stored (the cleaned-up scan), Bates-stamped
//!   `PREFIX-000001…` with an invisible text layer from the OCR words and redactions
//!   burned into the pixels (the words under them left out of the text layer), then the
//!   manifest pages. Memory stays at one page: pages are decrypted one at a time and the
//!   PDF is encrypted as it is written.
//! - Bates numbers are unique and gap-free per prefix: a production takes its numbers in
//!   the transaction that records it, so a failed production takes none, and a supplemental
//!   production continues where the last one ended.
//! - Before a production exists for anyone, its audit entry (with the PDF's SHA-256) is
//!   committed; then it is recorded with a disclosure per patient for the accounting.
//! - A patient's own copy (`patient-access`) has no Bates stamps and no certification unless
//!   asked; it is due 30 days after receipt, extendable once by 30 days.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use chartvault_storage::KeyId;
use chrono::{Datelike, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::access::audit::AuditEvent;
use crate::access::policy::{decide, Action, Principal};
use crate::app::Archive;
use crate::config::ReleasesConfig;
use crate::domain::{DocumentId, DocumentStatus, Outcome, PatientId};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::store::disclosures::{DisclosureSource, NewDisclosure};
use crate::store::documents::Document;
use crate::store::releases::{NewProduction, Production, Region, Release};
use crate::store::vault::ObjectRef;

/// The legal bases a request may rest on.
pub const LEGAL_BASES: &[&str] = &[
    "subpoena",
    "court-order",
    "patient-authorization",
    "patient-access",
    "other",
];

pub fn bates_number(prefix: &str, n: i64) -> String {
    format!("{prefix}-{n:06}")
}

/// One item of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct ChecklistItem {
    pub item: String,
    /// `pass` or `blocked`.
    pub status: &'static str,
    pub detail: String,
    /// The documents a blocked item is about.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub document_ids: Vec<DocumentId>,
}

impl ChecklistItem {
    fn new(item: &str, pass: bool, detail: String, document_ids: Vec<DocumentId>) -> Self {
        ChecklistItem {
            item: item.to_string(),
            status: if pass { "pass" } else { "blocked" },
            detail,
            document_ids,
        }
    }

    pub fn blocked(&self) -> bool {
        self.status == "blocked"
    }
}

/// The checklist of a request over the documents it would produce.
pub fn checklist(
    config: &ReleasesConfig,
    release: &Release,
    attachment_kinds: &[String],
    documents: &[Document],
) -> Vec<ChecklistItem> {
    let has = |a: &str| {
        release.authorizations.iter().any(|x| x == a) || attachment_kinds.iter().any(|k| k == a)
    };
    let mut items = Vec::new();
    match release.legal_basis.as_str() {
        "subpoena" => {
            let assured = release
                .details
                .satisfactory_assurances
                .as_deref()
                .is_some_and(|a| !a.trim().is_empty())
                || has("satisfactory-assurances");
            let pass = has("court-order") || assured;
            items.push(ChecklistItem::new(
                "satisfactory-assurances",
                pass,
                if has("court-order") {
                    "a court order accompanies the subpoena".into()
                } else if assured {
                    "satisfactory assurances are recorded".into()
                } else {
                    "a subpoena without a court order needs satisfactory assurances \
                     (45 CFR 164.512(e)(1)(ii)): record them, or attach the court order"
                        .into()
                },
                Vec::new(),
            ));
        }
        "court-order" => items.push(ChecklistItem::new(
            "court-order",
            has("court-order"),
            if has("court-order") {
                "the court order is on file".into()
            } else {
                "attach the court order".into()
            },
            Vec::new(),
        )),
        "patient-authorization" => items.push(ChecklistItem::new(
            "patient-authorization",
            has("patient-authorization"),
            if has("patient-authorization") {
                "the patient's authorization is on file".into()
            } else {
                "attach the patient's signed authorization".into()
            },
            Vec::new(),
        )),
        _ => {}
    }
    for requirement in &config.category_requirements {
        let affected: Vec<DocumentId> = documents
            .iter()
            .filter(|d| d.category.as_str() == requirement.category)
            .map(|d| d.id)
            .collect();
        if affected.is_empty() {
            continue;
        }
        // A patient's own records are theirs to have (45 CFR 164.524), Part 2 included.
        let pass =
            release.legal_basis == "patient-access" || requirement.any_of.iter().any(|a| has(a));
        let detail = if pass {
            format!("{}: authorized", requirement.category)
        } else {
            format!(
                "{} document(s) in category {}: {}; exclude them or attach one of: {}",
                affected.len(),
                requirement.category,
                requirement.why,
                requirement.any_of.join(", ")
            )
        };
        items.push(ChecklistItem::new(
            &format!("category:{}", requirement.category),
            pass,
            detail,
            if pass { Vec::new() } else { affected },
        ));
    }
    items
}

/// The documents a request covers for this caller, in production order (patient, service
/// date, archive time), exclusions left out.
pub async fn documents_in_scope(
    state: &Archive,
    principal: &Principal,
    release: &Release,
) -> AppResult<Vec<Document>> {
    let excluded: Vec<DocumentId> = state
        .db
        .exclusions(&release.id)
        .await?
        .into_iter()
        .map(|e| e.document_id)
        .collect();
    let mut out = Vec::new();
    for patient in &release.patient_ids {
        let mut docs: Vec<Document> = state
            .db
            .documents_of_patient(*patient)
            .await?
            .into_iter()
            .filter(|d| d.status == DocumentStatus::Indexed && !excluded.contains(&d.id))
            .filter(
                |d| match (release.date_from, release.date_to, d.service_date) {
                    (None, None, _) => true,
                    (_, _, None) => false,
                    (from, to, Some(date)) => {
                        from.is_none_or(|f| date >= f) && to.is_none_or(|t| date <= t)
                    }
                },
            )
            .filter(|d| {
                release.document_types.is_empty()
                    || release.document_types.contains(&d.document_type)
            })
            .filter(|d| {
                release.categories.is_empty()
                    || release.categories.iter().any(|c| d.category.as_str() == c)
            })
            .filter(|d| {
                let resource = d.resource();
                decide(principal, Action::ReadDocument, Some(&resource)).is_allow()
            })
            .collect();
        docs.sort_by(|a, b| {
            (a.service_date, &a.created_at, a.id).cmp(&(b.service_date, &b.created_at, b.id))
        });
        out.extend(docs);
    }
    Ok(out)
}

/// What the production request asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductionRequest {
    /// Who certifies (name and title); required when certified.
    pub custodian: Option<String>,
    /// With the custodian certification (default: yes, except a patient's own copy).
    pub certify: Option<bool>,
    /// With Bates stamps (default: yes, except a patient's own copy).
    pub bates: Option<bool>,
}

/// One produced page in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestPage {
    /// The Bates number; `None` for an unstamped copy.
    pub bates: Option<String>,
    /// The page's position in the PDF (1-based).
    pub pdf_page: u32,
    pub document_id: DocumentId,
    pub page: u32,
    /// SHA-256 of the document's original, as archived.
    pub original_sha256: String,
    pub redacted: bool,
    pub withheld: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub production_id: DocumentId,
    pub release_id: String,
    pub legal_basis: String,
    pub bates_first: Option<String>,
    pub bates_last: Option<String>,
    pub pdf_pages: u32,
    pub certification_pages: u32,
    pub manifest_pages: u32,
    pub documents: u32,
    pub pages: Vec<ManifestPage>,
    /// SHA-256 of the produced PDF (which cannot hold its own hash: it is here and in the
    /// audit entry).
    pub pdf_sha256: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
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

/// The text of the manifest pages.
fn manifest_text(
    production_id: DocumentId,
    release: &Release,
    documents: &[Document],
    pages: &[ManifestPage],
) -> String {
    let mut text = String::new();
    text.push_str("PRODUCTION MANIFEST\n\n");
    text.push_str(&format!("Release request: {}\n", release.id));
    text.push_str(&format!("Production: {production_id}\n"));
    text.push_str(&format!(
        "{} pages of {} documents. Each document's SHA-256 is that of its original as \
         archived; the JSON manifest maps every page.\n\n",
        pages.len(),
        documents.len()
    ));
    for (n, doc) in documents.iter().enumerate() {
        let mine: Vec<&ManifestPage> = pages.iter().filter(|p| p.document_id == doc.id).collect();
        let (Some(first), Some(last)) = (mine.first(), mine.last()) else {
            continue;
        };
        text.push_str(&format!(
            "Document {} of {}: {}\n",
            n + 1,
            documents.len(),
            doc.id
        ));
        text.push_str(&format!(
            "  Type {}, service date {}\n",
            doc.document_type,
            doc.service_date
                .map_or_else(|| "not recorded".to_string(), |d| d.to_string())
        ));
        text.push_str(&format!("  SHA-256 {}\n", doc.sha256));
        // Bates numbers are not repeated here (each stands once, on its page): the
        // production's page positions map to them.
        text.push_str(&format!(
            "  Produced as PDF pages {} to {} (document pages {} to {})\n",
            first.pdf_page, last.pdf_page, first.page, last.page
        ));
        let redacted: Vec<String> = mine
            .iter()
            .filter(|p| p.redacted || p.withheld)
            .map(|p| format!("{}{}", p.page, if p.withheld { " (withheld)" } else { "" }))
            .collect();
        if !redacted.is_empty() {
            text.push_str(&format!("  Redacted pages: {}\n", redacted.join(", ")));
        }
        text.push('\n');
    }
    text
}

fn fill_template(template: &str, values: &[(&str, String)]) -> String {
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
enum PageData {
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
fn prepare_page(png: Vec<u8>, bilevel: bool) -> PageData {
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
    let patient_access = release.legal_basis == "patient-access";
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
    let production_id = DocumentId::new_random();
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
        release_id: release.id.clone(),
        legal_basis: release.legal_basis.clone(),
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
                release_id: release.id.clone(),
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
        .attachments(&release.id)
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
    for r in state.db.redactions(&release.id).await? {
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
    production_id: DocumentId,
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
                    ("release_id", release.id.clone()),
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
    production_id: DocumentId,
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
    production_id: DocumentId,
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
        None => release.legal_basis.clone(),
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

/// The due date of a new request: as given, or by the basis's default.
pub fn due_on(
    config: &ReleasesConfig,
    legal_basis: &str,
    received_on: NaiveDate,
    given: Option<NaiveDate>,
) -> NaiveDate {
    let days = if legal_basis == "patient-access" {
        config.access_due_days
    } else {
        config.default_due_days
    };
    given.unwrap_or_else(|| received_on + chrono::Days::new(u64::from(days)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_bates_prefix;

    #[test]
    fn bates_prefixes_are_checked_and_numbers_are_six_digits() {
        assert_eq!(bates_number("ACME", 1), "ACME-000001");
        assert_eq!(bates_number("ACME", 1_234_567), "ACME-1234567");
        assert!(parse_bates_prefix("ACME-2026").is_ok());
        for bad in ["", "acme", "-X", "A B", "TOO-LONG-PREFIX-XX"] {
            assert!(parse_bates_prefix(bad).is_err(), "{bad}");
        }
    }

    fn document(category: &str) -> Document {
        Document {
            id: DocumentId::new_random(),
            patient_id: PatientId::new_random(),
            document_type: "note".into(),
            category: crate::domain::Category::parse(category).unwrap(),
            service_date: None,
            encounter: None,
            content_type: "image/png".into(),
            sha256: String::new(),
            size_bytes: 0,
            page_count: 1,
            status: DocumentStatus::Indexed,
            failure_reason: None,
            created_at: String::new(),
            indexed_at: None,
            deleted_at: None,
            deleted_by: None,
            deletion_reason: None,
            qa_reason: None,
            notice: None,
            supersedes: None,
            superseded_by: None,
            entered_in_error_at: None,
            entered_in_error_by: None,
            correction_reason: None,
        }
    }

    fn release(legal_basis: &str, assurances: Option<&str>) -> Release {
        let party = crate::store::releases::Party {
            name: "Counsel".into(),
            organization: None,
            address: None,
        };
        Release {
            id: "r".into(),
            legal_basis: legal_basis.into(),
            details: crate::store::releases::ReleaseDetails {
                requester: party.clone(),
                recipient: party,
                matter: None,
                description: None,
                satisfactory_assurances: assurances.map(str::to_string),
            },
            received_on: NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
            due_on: NaiveDate::from_ymd_opt(2026, 12, 2).unwrap(),
            extended_at: None,
            extension_reason: None,
            date_from: None,
            date_to: None,
            document_types: Vec::new(),
            categories: Vec::new(),
            authorizations: Vec::new(),
            bates_prefix: "CV".into(),
            patient_ids: Vec::new(),
            created_by: String::new(),
            created_at: String::new(),
        }
    }

    fn blocked(items: &[ChecklistItem]) -> Vec<String> {
        items
            .iter()
            .filter(|i| i.blocked())
            .map(|i| i.item.clone())
            .collect()
    }

    #[test]
    fn the_checklist_asks_each_basis_and_category_for_what_it_needs() {
        let config = ReleasesConfig::default();
        let docs = [
            document("general"),
            document("psychotherapy"),
            document("substance-use"),
        ];
        let kinds = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();

        // A bare subpoena: no assurances, and neither sensitive category is authorised.
        let items = checklist(&config, &release("subpoena", None), &[], &docs);
        assert_eq!(
            blocked(&items),
            [
                "satisfactory-assurances",
                "category:substance-use",
                "category:psychotherapy"
            ]
        );
        let part2 = items
            .iter()
            .find(|i| i.item == "category:substance-use")
            .unwrap();
        assert_eq!(part2.document_ids, vec![docs[2].id]);
        // Assurances recorded, a Part 2 consent attached: psychotherapy still blocks.
        let items = checklist(
            &config,
            &release("subpoena", Some("notice sent")),
            &kinds(&["part2-consent"]),
            &docs,
        );
        assert_eq!(blocked(&items), ["category:psychotherapy"]);
        // A court order covers the subpoena and Part 2, not psychotherapy notes.
        let items = checklist(
            &config,
            &release("subpoena", None),
            &kinds(&["court-order"]),
            &docs,
        );
        assert_eq!(blocked(&items), ["category:psychotherapy"]);
        // A court-order request without the order on file.
        let items = checklist(&config, &release("court-order", None), &[], &docs[..1]);
        assert_eq!(blocked(&items), ["court-order"]);
        // The patient's own request: everything is theirs.
        let items = checklist(&config, &release("patient-access", None), &[], &docs);
        assert!(blocked(&items).is_empty());
        // Without sensitive documents a subpoena needs only its assurances.
        let items = checklist(
            &config,
            &release("subpoena", Some("QPO sought")),
            &[],
            &docs[..1],
        );
        assert!(blocked(&items).is_empty());
    }

    fn png(pixels: &image::GrayImage) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        pixels.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn black_and_white_pages_are_thresholded_and_grey_ones_kept() {
        // A straightened bilevel page: white, black strokes, grey only along their edges.
        let mut page = image::GrayImage::from_pixel(200, 100, image::Luma([255]));
        for x in 20..180 {
            for y in 40..50 {
                page.put_pixel(x, y, image::Luma([3]));
            }
            page.put_pixel(x, 50, image::Luma([120]));
            page.put_pixel(x, 39, image::Luma([140]));
        }
        match prepare_page(png(&page), true) {
            PageData::Bilevel {
                width,
                height,
                pixels,
            } => {
                assert_eq!((width, height), (200, 100));
                assert!(pixels.iter().all(|&v| v == 0 || v == 255));
                assert_eq!(pixels[45 * 200 + 100], 0);
                assert_eq!(pixels[50 * 200 + 100], 0, "dark grey edge goes black");
                assert_eq!(pixels[39 * 200 + 100], 255, "light grey edge goes white");
            }
            PageData::Png(_) => panic!("a black and white page is thresholded"),
        }
        // A grey page (a photograph, an x-ray preview) stays as stored.
        let ramp = image::GrayImage::from_fn(200, 100, |x, _| image::Luma([x as u8]));
        let stored = png(&ramp);
        assert!(matches!(prepare_page(stored.clone(), true), PageData::Png(p) if p == stored));
        // And nothing is decoded when the setting is off.
        assert!(matches!(prepare_page(png(&page), false), PageData::Png(_)));
    }

    #[test]
    fn templates_fill_every_placeholder_they_name() {
        let filled = fill_template(
            "{a} and {b} and {a}",
            &[("a", "x".into()), ("b", "y".into())],
        );
        assert_eq!(filled, "x and y and x");
    }
}

//! The manifest of a production: what each page is, and its text pages.

use serde::{Deserialize, Serialize};

use crate::domain::{DocumentId, LegalBasis, ProductionId, ReleaseId};
use crate::store::documents::Document;
use crate::store::releases::Release;

/// One produced page in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Manifest {
    pub production_id: ProductionId,
    pub release_id: ReleaseId,
    pub legal_basis: LegalBasis,
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

/// The text of the manifest pages.
pub(super) fn manifest_text(
    production_id: ProductionId,
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

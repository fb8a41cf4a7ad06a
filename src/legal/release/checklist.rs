//! The checklist that must pass before anything of a request leaves.

use serde::Serialize;

use crate::config::ReleasesConfig;
use crate::domain::{DocumentId, LegalBasis};
use crate::store::documents::Document;
use crate::store::releases::Release;

/// One item of the checklist.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    match release.legal_basis {
        LegalBasis::Subpoena => {
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
        LegalBasis::CourtOrder => items.push(ChecklistItem::new(
            "court-order",
            has("court-order"),
            if has("court-order") {
                "the court order is on file".into()
            } else {
                "attach the court order".into()
            },
            Vec::new(),
        )),
        LegalBasis::PatientAuthorization => items.push(ChecklistItem::new(
            "patient-authorization",
            has("patient-authorization"),
            if has("patient-authorization") {
                "the patient's authorization is on file".into()
            } else {
                "attach the patient's signed authorization".into()
            },
            Vec::new(),
        )),
        LegalBasis::PatientAccess | LegalBasis::Other => {}
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
        let pass = release.legal_basis == LegalBasis::PatientAccess
            || requirement.any_of.iter().any(|a| has(a));
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

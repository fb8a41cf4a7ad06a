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
//!
//! The parts: [`checklist`], [`scope`] (the documents a request covers), [`production`]
//! (the PDF and its record), [`manifest`], and [`redaction`] (proposals of what to black out).

pub mod checklist;
pub mod manifest;
pub mod production;
pub mod redaction;
pub mod scope;

use chrono::NaiveDate;

use crate::config::ReleasesConfig;
use crate::domain::LegalBasis;

pub fn bates_number(prefix: &str, n: i64) -> String {
    format!("{prefix}-{n:06}")
}

/// The due date of a new request: as given, or by the basis's default.
pub fn due_on(
    config: &ReleasesConfig,
    legal_basis: LegalBasis,
    received_on: NaiveDate,
    given: Option<NaiveDate>,
) -> NaiveDate {
    let days = if legal_basis == LegalBasis::PatientAccess {
        config.access_due_days
    } else {
        config.default_due_days
    };
    given.unwrap_or_else(|| received_on + chrono::Days::new(u64::from(days)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::{checklist::*, production::*};
    use crate::config::parse_bates_prefix;
    use crate::domain::{DocumentId, DocumentStatus, PatientId};
    use crate::store::documents::Document;
    use crate::store::releases::Release;

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
            sha1: None,
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
            id: crate::domain::ReleaseId::new_random(),
            legal_basis: legal_basis.parse().unwrap(),
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

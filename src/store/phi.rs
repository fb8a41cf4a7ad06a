//! Sealing of the PHI the database holds: patient MRN, name and birth date, a document's
//! encounter and a deletion's reason, a DICOM instance's data set, a disclosure's recipient, description and purpose, a
//! legal hold's matter, custodian, reasons and query, a release request's parties and notes.
//! (The audit log is sealed under a key of its own: see [`crate::audit`].)
//!
//! Promises:
//! - Every PHI column holds the storage envelope (`CVAULT` magic, key id, AES-256-GCM) under
//!   the service's `metadata` data key, with associated data naming the table, column and
//!   row id: a value copied onto another row or column fails to open.
//! - MRN lookups never need the MRN in plaintext: the `mrn_index` column holds
//!   HMAC-SHA256 of the normalised MRN under the `mrn-blind-index` key, so equality lookups
//!   work and nothing else leaks (no prefix or range queries, by design).
//! - Both keys are ordinary keyring rows wrapped under the KEK, so KEK rotation re-wraps
//!   them like every object key.
//!
//! Why application-level sealing and not an encrypted SQLite (SQLCipher): the same sealed
//! values and blind index work unchanged when the metadata moves to PostgreSQL, the keys
//! live in the same keyring and rotate with it, and a database backup or replica holds
//! ciphertext whatever copies it.

use chartvault_storage::{is_object, DataKey, FieldCipher, KeyId};

use crate::domain::Mrn;

/// The sealed columns. The string is part of each value's associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    PatientMrn,
    PatientName,
    PatientBirthDate,
    DocumentEncounter,
    DocumentDeletionReason,
    BreakGlassReason,
    BreakGlassReviewNote,
    DisclosureRecipientName,
    DisclosureRecipientAddress,
    DisclosureDescription,
    DisclosurePurpose,
    BatchCoverFields,
    DocumentCorrectionReason,
    HoldMatter,
    HoldCustodian,
    HoldReason,
    HoldQuery,
    HoldReleaseReason,
    ReleaseDetails,
    ReleaseExtensionReason,
    ReleaseExclusionReason,
    ProductionCustodian,
    EncounterVisitNumber,
    EncounterAdmittedAt,
    EncounterDischargedAt,
    DicomMetadata,
}

impl Column {
    fn as_str(self) -> &'static str {
        match self {
            Column::PatientMrn => "patients.mrn",
            Column::PatientName => "patients.name",
            Column::PatientBirthDate => "patients.birth_date",
            Column::DocumentEncounter => "documents.encounter",
            Column::DocumentDeletionReason => "documents.deletion_reason",
            Column::BreakGlassReason => "break_glass.reason",
            Column::BreakGlassReviewNote => "break_glass.review_note",
            Column::DisclosureRecipientName => "disclosures.recipient_name",
            Column::DisclosureRecipientAddress => "disclosures.recipient_address",
            Column::DisclosureDescription => "disclosures.description",
            Column::DisclosurePurpose => "disclosures.purpose",
            Column::BatchCoverFields => "batch_pages.cover_fields",
            Column::DocumentCorrectionReason => "documents.correction_reason",
            Column::HoldMatter => "holds.matter",
            Column::HoldCustodian => "holds.custodian",
            Column::HoldReason => "holds.reason",
            Column::HoldQuery => "holds.query",
            Column::HoldReleaseReason => "holds.release_reason",
            Column::ReleaseDetails => "releases.details",
            Column::ReleaseExtensionReason => "releases.extension_reason",
            Column::ReleaseExclusionReason => "release_exclusions.reason",
            Column::ProductionCustodian => "productions.custodian",
            Column::EncounterVisitNumber => "encounters.visit_number",
            Column::EncounterAdmittedAt => "encounters.admitted_at",
            Column::EncounterDischargedAt => "encounters.discharged_at",
            Column::DicomMetadata => "dicom_instances.metadata",
        }
    }
}

/// The keys that seal PHI columns and compute the MRN blind index.
#[derive(Debug)]
pub struct PhiCipher {
    fields: FieldCipher,
}

/// A sealed value that did not open: wrong row, altered bytes, or an unknown key.
#[derive(Debug, thiserror::Error)]
#[error("a sealed {column} value does not decrypt")]
pub struct UnsealError {
    column: &'static str,
}

impl PhiCipher {
    pub fn from_keys(key_id: KeyId, key: DataKey, blind_index: DataKey) -> PhiCipher {
        PhiCipher {
            fields: FieldCipher::new(key_id, key, blind_index),
        }
    }

    fn aad(column: Column, row_id: &str) -> Vec<u8> {
        format!("chartvault:column:{}:{row_id}", column.as_str()).into_bytes()
    }

    pub fn seal(&self, column: Column, row_id: &str, plaintext: &str) -> Vec<u8> {
        self.fields
            .seal(&Self::aad(column, row_id), plaintext.as_bytes())
    }

    pub fn open(&self, column: Column, row_id: &str, sealed: &[u8]) -> Result<String, UnsealError> {
        let error = || UnsealError {
            column: column.as_str(),
        };
        let plaintext = self
            .fields
            .open(&Self::aad(column, row_id), sealed)
            .ok_or_else(error)?;
        String::from_utf8(plaintext).map_err(|_| error())
    }

    /// The blind index of an MRN: HMAC-SHA256 over the normalised MRN, in a domain of its
    /// issuer's (the default issuer's domain is the one every archive began with, so its
    /// patients kept their index when issuers came).
    pub fn mrn_index(&self, mrn: &Mrn) -> Vec<u8> {
        match mrn.issuer() {
            None => self
                .fields
                .blind_index("chartvault:mrn:", mrn.as_str().as_bytes()),
            Some(issuer) => self.fields.blind_index(
                &format!("chartvault:mrn@{}:", issuer.to_ascii_uppercase()),
                mrn.as_str().as_bytes(),
            ),
        }
    }

    /// The blind index of a visit number (HL7 PV1-19): trimmed, letters uppercase.
    pub fn visit_index(&self, visit_number: &str) -> Vec<u8> {
        self.fields.blind_index(
            "chartvault:visit:",
            visit_number.trim().to_ascii_uppercase().as_bytes(),
        )
    }

    /// The blind index of a DICOM SOP Instance UID (the same key as MRNs, another domain).
    pub fn sop_index(&self, sop_instance_uid: &str) -> Vec<u8> {
        self.fields
            .blind_index("chartvault:dicom-sop:", sop_instance_uid.trim().as_bytes())
    }

    /// The blind index of a DICOM Study Instance UID.
    pub fn study_index(&self, study_instance_uid: &str) -> Vec<u8> {
        self.fields.blind_index(
            "chartvault:dicom-study:",
            study_instance_uid.trim().as_bytes(),
        )
    }

    /// The blind index of a DICOM Series Instance UID.
    pub fn series_index(&self, series_instance_uid: &str) -> Vec<u8> {
        self.fields.blind_index(
            "chartvault:dicom-series:",
            series_instance_uid.trim().as_bytes(),
        )
    }
}

/// Whether a column value is sealed already (an archive upgraded from plaintext columns
/// holds unsealed values until its first start after the upgrade).
pub fn is_sealed(value: &[u8]) -> bool {
    is_object(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> PhiCipher {
        PhiCipher::from_keys(KeyId::generate(), DataKey::generate(), DataKey::generate())
    }

    #[test]
    fn sealed_values_open_only_on_their_own_row_and_column() {
        let phi = cipher();
        let sealed = phi.seal(Column::PatientName, "row-1", "Jane Roe");
        assert!(is_sealed(&sealed));
        assert!(!String::from_utf8_lossy(&sealed).contains("Jane"));
        assert_eq!(
            phi.open(Column::PatientName, "row-1", &sealed).unwrap(),
            "Jane Roe"
        );
        assert!(phi.open(Column::PatientName, "row-2", &sealed).is_err());
        assert!(phi.open(Column::PatientMrn, "row-1", &sealed).is_err());
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(phi.open(Column::PatientName, "row-1", &flipped).is_err());
        assert!(cipher()
            .open(Column::PatientName, "row-1", &sealed)
            .is_err());
    }

    #[test]
    fn blind_index_is_keyed_and_follows_mrn_normalisation() {
        let phi = cipher();
        let a = phi.mrn_index(&Mrn::parse("ab-0012").unwrap());
        let b = phi.mrn_index(&Mrn::parse(" AB-0012 ").unwrap());
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
        assert_ne!(a, phi.mrn_index(&Mrn::parse("AB-012").unwrap()));
        // Another issuer's AB-0012 is another patient.
        let north = Mrn::parse("AB-0012")
            .unwrap()
            .issued_by(Some("NORTH".into()));
        assert_ne!(a, phi.mrn_index(&north));
        assert_eq!(
            phi.mrn_index(&north),
            phi.mrn_index(
                &Mrn::parse("ab-0012")
                    .unwrap()
                    .issued_by(Some("north".into()))
            )
        );
        assert_ne!(a, cipher().mrn_index(&Mrn::parse("AB-0012").unwrap()));
    }
}

//! Disclosures of a patient's records, for the accounting of disclosures (45 CFR 164.528).
//! Recipient, address, description and purpose are sealed like every PHI column; the date,
//! the patient's and documents' opaque ids and who recorded it stay in the clear.

use super::base::*;

use crate::domain::{DocumentId, PatientId, UserId};
use chrono::NaiveDate;
use serde::Serialize;

/// Where a disclosure was recorded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DisclosureSource {
    /// Released outside the system and recorded through the API.
    Manual,
    /// A production made by the service itself.
    Production,
}

impl DisclosureSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DisclosureSource::Manual => "manual",
            DisclosureSource::Production => "production",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewDisclosure {
    pub patient_id: PatientId,
    pub disclosed_at: NaiveDate,
    pub document_ids: Vec<DocumentId>,
    pub recipient_name: String,
    pub recipient_address: Option<String>,
    pub description: String,
    pub purpose: String,
    pub source: DisclosureSource,
    pub recorded_by: UserId,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Disclosure {
    pub id: String,
    pub patient_id: PatientId,
    pub disclosed_at: NaiveDate,
    pub document_ids: Vec<DocumentId>,
    pub recipient_name: String,
    pub recipient_address: Option<String>,
    pub description: String,
    pub purpose: String,
    pub source: String,
    pub recorded_by: String,
    pub recorded_at: String,
}

/// The accounting of disclosures: append-only, one row per disclosed document.
pub trait DisclosureStore {
    /// Records a disclosure; returns its id.
    fn insert_disclosure(
        &self,
        disclosure: &NewDisclosure,
    ) -> impl Future<Output = StoreResult<String>> + Send;

    /// Records a disclosure inside the caller's transaction (a production records its
    /// disclosures in the transaction that records the production).
    fn insert_disclosure_tx(
        &self,
        tx: &mut Tx,
        disclosure: &NewDisclosure,
    ) -> impl Future<Output = StoreResult<String>> + Send;

    /// The patient's disclosures made on or after `since`, newest first, decrypted.
    fn disclosures_of_patient(
        &self,
        patient: PatientId,
        since: NaiveDate,
    ) -> impl Future<Output = StoreResult<Vec<Disclosure>>> + Send;
}

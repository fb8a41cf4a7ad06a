//! Legal holds: what they cover, and the question every destruction asks ("which active
//! holds cover this document?"). Matter, custodian, reasons and the query are sealed.

use super::base::*;

use crate::domain::{DocumentId, HoldId, PatientId, UserId};
use serde::Serialize;

/// What a hold covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HoldScope {
    /// Every document filed under the patient, now or later.
    Patient,
    /// The documents named when the hold was placed.
    Documents,
    /// The documents a search found when the hold was placed.
    Query,
}

impl HoldScope {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldScope::Patient => "patient",
            HoldScope::Documents => "documents",
            HoldScope::Query => "query",
        }
    }

    pub(crate) fn parse(raw: &str) -> StoreResult<HoldScope> {
        match raw {
            "patient" => Ok(HoldScope::Patient),
            "documents" => Ok(HoldScope::Documents),
            "query" => Ok(HoldScope::Query),
            other => Err(decode_err(format!("unknown hold scope {other:?}"))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewHold {
    pub matter: String,
    pub custodian: String,
    pub reason: String,
    pub scope: HoldScope,
    pub patient_id: Option<PatientId>,
    /// The search (as JSON) of a `query` hold.
    pub query: Option<String>,
    pub documents: Vec<DocumentId>,
    pub created_by: UserId,
}

/// A hold as read back, decrypted.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Hold {
    pub id: HoldId,
    pub matter: String,
    pub custodian: String,
    pub reason: String,
    pub scope: HoldScope,
    pub patient_id: Option<PatientId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<serde_json::Value>,
    /// The documents it names (empty for a patient hold, which covers the patient).
    pub document_ids: Vec<DocumentId>,
    pub created_by: String,
    pub created_at: String,
    pub active: bool,
    pub released_by: Option<String>,
    pub released_at: Option<String>,
    pub release_reason: Option<String>,
}

/// An active hold covering a document, as a refusal names it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct HoldRef {
    pub id: HoldId,
    pub matter: String,
}

/// Legal holds and what they cover.
pub trait HoldStore {
    /// Records a hold and the documents it names; returns its id.
    fn insert_hold(&self, hold: &NewHold) -> impl Future<Output = StoreResult<HoldId>> + Send;

    /// The active holds covering a document, oldest first.
    fn holds_covering(
        &self,
        document: DocumentId,
    ) -> impl Future<Output = StoreResult<Vec<HoldRef>>> + Send;

    fn hold(&self, id: HoldId) -> impl Future<Output = StoreResult<Option<Hold>>> + Send;

    /// Every hold, active ones first, newest first within each.
    fn holds(&self) -> impl Future<Output = StoreResult<Vec<Hold>>> + Send;

    /// Releases an active hold; false if it was released already (or is unknown).
    fn release_hold(
        &self,
        id: HoldId,
        by: UserId,
        reason: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

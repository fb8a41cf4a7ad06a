//! Access rows: care relationships, category grants and break-the-glass accesses (each MACed, see [`super::integrity`]).

use super::base::*;

/// One break-the-glass access, its reason opened.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BreakGlassRow {
    pub id: String,
    pub user_id: String,
    pub patient_id: PatientId,
    pub reason_code: String,
    pub reason: String,
    pub started_at: String,
    pub expires_at: String,
    pub reviewed_at: Option<String>,
    pub reviewed_by: Option<String>,
    pub review_outcome: Option<String>,
    pub review_note: Option<String>,
}

/// Care relationships, sensitive-category grants and break-the-glass accesses: what
/// the access policy reads, and the MACs that keep those rows from being forged.
pub trait AccessStore {
    /// Patients on the user's care list on `day`.
    fn care_patients(
        &self,
        user: UserId,
        day: NaiveDate,
    ) -> impl Future<Output = StoreResult<Vec<PatientId>>> + Send;

    fn insert_care_relationship(
        &self,
        user: UserId,
        patient: PatientId,
        starts_on: NaiveDate,
        ends_on: Option<NaiveDate>,
        by: UserId,
    ) -> impl Future<Output = StoreResult<String>> + Send;

    /// Ends a care relationship (its last day becomes the day before `today`, so it no
    /// longer holds today); returns false if there is no such open relationship.
    fn end_care_relationship(
        &self,
        id: &str,
        today: NaiveDate,
        by: UserId,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    fn category_grants(
        &self,
        user: UserId,
    ) -> impl Future<Output = StoreResult<Vec<Category>>> + Send;

    fn grant_category(
        &self,
        user: UserId,
        category: &Category,
        by: UserId,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn revoke_category(
        &self,
        user: UserId,
        category: &Category,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// The user's break-the-glass accesses that have not expired: (patient, access id).
    fn active_break_glass(
        &self,
        user: UserId,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Vec<(PatientId, String)>>> + Send;

    fn insert_break_glass(
        &self,
        user: UserId,
        patient: PatientId,
        reason_code: &str,
        reason: &str,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<BreakGlassRow>> + Send;

    /// Break-the-glass accesses, oldest first: those not reviewed yet, or all.
    fn break_glass_accesses(
        &self,
        unreviewed_only: bool,
    ) -> impl Future<Output = StoreResult<Vec<BreakGlassRow>>> + Send;

    /// Records the privacy officer's review; false if there is no such unreviewed access.
    fn review_break_glass(
        &self,
        id: &str,
        by: UserId,
        outcome: &str,
        note: Option<&str>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

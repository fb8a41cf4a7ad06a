//! Patients: found by the blind index of their MRN; names and MRNs sealed.

use super::base::*;

#[derive(Debug, Clone, Serialize)]
pub struct Patient {
    pub id: PatientId,
    pub mrn: Mrn,
    pub name: String,
    pub birth_date: Option<NaiveDate>,
}

/// Patients, found by the blind index of their MRN.
pub trait PatientStore {
    fn patient_by_mrn(
        &self,
        mrn: &Mrn,
    ) -> impl Future<Output = StoreResult<Option<Patient>>> + Send;

    fn patient(&self, id: PatientId) -> impl Future<Output = StoreResult<Option<Patient>>> + Send;

    /// The patient with this MRN, created with the given details if new. An existing
    /// patient keeps the details on record.
    fn ensure_patient(
        &self,
        tx: &mut Tx,
        mrn: &Mrn,
        name: &str,
        birth_date: Option<NaiveDate>,
    ) -> impl Future<Output = StoreResult<PatientId>> + Send;

    /// Sets a patient's name and birth date (the registration system changed them).
    fn update_patient(
        &self,
        tx: &mut Tx,
        id: PatientId,
        name: &str,
        birth_date: Option<NaiveDate>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

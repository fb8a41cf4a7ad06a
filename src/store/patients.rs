//! Patients: found by the blind index of their MRN; names and MRNs sealed.

use super::base::*;

#[derive(Debug, Clone, utoipa::ToSchema)]
pub struct Patient {
    pub id: PatientId,
    pub mrn: Mrn,
    pub name: String,
    pub birth_date: Option<NaiveDate>,
}

/// `{id, mrn, issuer?, name, birth_date}`: `issuer` only for an MRN of another issuer than
/// the default one.
impl Serialize for Patient {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("Patient", 5)?;
        out.serialize_field("id", &self.id)?;
        out.serialize_field("mrn", &self.mrn)?;
        match self.mrn.issuer() {
            Some(issuer) => out.serialize_field("issuer", issuer)?,
            None => out.skip_field("issuer")?,
        }
        out.serialize_field("name", &self.name)?;
        out.serialize_field("birth_date", &self.birth_date)?;
        out.end()
    }
}

/// A visit the registration system reported (HL7 PV1), which documents are filed against.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Encounter {
    #[serde(skip)]
    pub patient_id: PatientId,
    /// PV1-19.
    pub visit_number: String,
    /// PV1-2: `I` inpatient, `O` outpatient, `E` emergency, ...
    pub patient_class: Option<String>,
    /// PV1-44, PV1-45.
    pub admitted_at: Option<chrono::NaiveDateTime>,
    pub discharged_at: Option<chrono::NaiveDateTime>,
}

/// Patients, found by the blind index of their MRN, and their encounters.
pub trait PatientStore {
    fn patient_by_mrn(
        &self,
        mrn: &Mrn,
    ) -> impl Future<Output = StoreResult<Option<Patient>>> + Send;

    fn patient(&self, id: PatientId) -> impl Future<Output = StoreResult<Option<Patient>>> + Send;

    /// The patient with this MRN, created with the given details if new. An existing
    /// patient keeps the details on record. An MRN merged into another patient's (see
    /// [`PatientStore::merge_patients`]) is the survivor's, here and in `patient_by_mrn`.
    fn ensure_patient(
        &self,
        tx: &mut Tx,
        mrn: &Mrn,
        name: &str,
        birth_date: Option<NaiveDate>,
    ) -> impl Future<Output = StoreResult<PatientId>> + Send;

    /// Moves everything of `prior` to `survivor` (documents, care relationships and
    /// break-the-glass accesses with new row MACs, holds, disclosures, release requests) and
    /// marks `prior` merged into `survivor`: from then on its MRN finds the survivor. Inside
    /// the caller's transaction. Returns the documents moved.
    fn merge_patients(
        &self,
        tx: &mut Tx,
        prior: PatientId,
        survivor: PatientId,
    ) -> impl Future<Output = StoreResult<Vec<DocumentId>>> + Send;

    /// Records a visit of `patient` (as the registration system reported it): a visit
    /// number seen before is updated, and is this patient's from now on; a time not given
    /// keeps what is on record.
    fn record_encounter(
        &self,
        tx: &mut Tx,
        encounter: &Encounter,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The encounter with this visit number.
    fn encounter(
        &self,
        visit_number: &str,
    ) -> impl Future<Output = StoreResult<Option<Encounter>>> + Send;

    /// A patient's encounters, the latest admitted first.
    fn encounters_of(
        &self,
        patient: PatientId,
    ) -> impl Future<Output = StoreResult<Vec<Encounter>>> + Send;

    /// Sets a patient's name and birth date (the registration system changed them).
    fn update_patient(
        &self,
        tx: &mut Tx,
        id: PatientId,
        name: &str,
        birth_date: Option<NaiveDate>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

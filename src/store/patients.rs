//! Patients: found by the blind index of their MRN; names and MRNs sealed.

use super::*;

#[derive(Debug, Clone, Serialize)]
pub struct Patient {
    pub id: PatientId,
    pub mrn: String,
    pub name: String,
    pub birth_date: Option<NaiveDate>,
}

impl Db {
    pub(super) fn patient_from_row(
        &self,
        row: &sqlx::sqlite::SqliteRow,
    ) -> super::StoreResult<Patient> {
        let id: String = row.try_get("id")?;
        let birth_date =
            self.open_optional(Column::PatientBirthDate, &id, row.try_get("birth_date")?)?;
        Ok(Patient {
            id: parse_id(&id)?,
            mrn: self.open_column(Column::PatientMrn, &id, row.try_get("mrn")?)?,
            name: self.open_column(Column::PatientName, &id, row.try_get("name")?)?,
            birth_date: parse_date(birth_date)?,
        })
    }

    pub async fn patient_by_mrn(&self, mrn: &Mrn) -> super::StoreResult<Option<Patient>> {
        let row =
            sqlx::query("SELECT id, mrn, name, birth_date FROM patients WHERE mrn_index = $1")
                .bind(self.phi()?.mrn_index(mrn))
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| self.patient_from_row(&r)).transpose()
    }

    pub async fn patient(&self, id: PatientId) -> super::StoreResult<Option<Patient>> {
        let row = sqlx::query("SELECT id, mrn, name, birth_date FROM patients WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| self.patient_from_row(&r)).transpose()
    }

    /// The patient with this MRN, created with the given details if new. An existing
    /// patient keeps the details on record.
    pub async fn ensure_patient(
        &self,
        tx: &mut Tx,
        mrn: &Mrn,
        name: &str,
        birth_date: Option<NaiveDate>,
    ) -> super::StoreResult<PatientId> {
        let phi = self.phi()?;
        let mrn_index = phi.mrn_index(mrn);
        let existing = sqlx::query("SELECT id FROM patients WHERE mrn_index = $1")
            .bind(&mrn_index)
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(row) = existing {
            return parse_id(row.try_get::<&str, _>("id")?);
        }
        let id = PatientId::new_random();
        let row_id = id.to_string();
        sqlx::query(
            "INSERT INTO patients (id, mrn_index, mrn, name, birth_date, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&row_id)
        .bind(&mrn_index)
        .bind(phi.seal(Column::PatientMrn, &row_id, mrn.as_str()))
        .bind(phi.seal(Column::PatientName, &row_id, name))
        .bind(birth_date.map(|d| phi.seal(Column::PatientBirthDate, &row_id, &d.to_string())))
        .bind(now())
        .execute(&mut **tx)
        .await?;
        Ok(id)
    }
}

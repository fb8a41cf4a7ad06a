//! [`PatientStore`] in SQL.

use super::*;
pub(super) use crate::store::patients::*;

impl PatientStore for Backend {
    async fn patient_by_mrn(&self, mrn: &Mrn) -> super::StoreResult<Option<Patient>> {
        let row = sqlx::query(
            "SELECT id, mrn, issuer, name, birth_date, merged_into FROM patients WHERE mrn_index = $1",
        )
        .bind(self.phi()?.mrn_index(mrn))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        // Almost always the patient themself; a merged MRN is an alias of its survivor.
        let Some(merged_into) = row.try_get::<Option<String>, _>("merged_into")? else {
            return self.patient_from_row(&row).map(Some);
        };
        let mut conn = self.pool.acquire().await?;
        let survivor = survivor_of(&mut conn, parse_id(&merged_into)?).await?;
        drop(conn);
        self.patient(survivor).await
    }

    async fn patient(&self, id: PatientId) -> super::StoreResult<Option<Patient>> {
        let row =
            sqlx::query("SELECT id, mrn, issuer, name, birth_date FROM patients WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| self.patient_from_row(&r)).transpose()
    }

    async fn ensure_patient(
        &self,
        tx: &mut Tx,
        mrn: &Mrn,
        name: &str,
        birth_date: Option<NaiveDate>,
    ) -> super::StoreResult<PatientId> {
        let phi = self.phi()?;
        let mrn_index = phi.mrn_index(mrn);
        let existing = sqlx::query("SELECT id, merged_into FROM patients WHERE mrn_index = $1")
            .bind(&mrn_index)
            .fetch_optional(tx.conn())
            .await?;
        if let Some(row) = existing {
            return match row.try_get::<Option<String>, _>("merged_into")? {
                None => parse_id(row.try_get::<&str, _>("id")?),
                Some(merged_into) => survivor_of(tx.conn(), parse_id(&merged_into)?).await,
            };
        }
        let id = PatientId::new_random();
        let row_id = id.to_string();
        sqlx::query(
            "INSERT INTO patients (id, mrn_index, mrn, issuer, name, birth_date, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&row_id)
        .bind(&mrn_index)
        .bind(phi.seal(Column::PatientMrn, &row_id, mrn.as_str()))
        .bind(mrn.issuer())
        .bind(phi.seal(Column::PatientName, &row_id, name))
        .bind(birth_date.map(|d| phi.seal(Column::PatientBirthDate, &row_id, &d.to_string())))
        .bind(now())
        .execute(tx.conn())
        .await?;
        Ok(id)
    }

    async fn merge_patients(
        &self,
        tx: &mut Tx,
        prior: PatientId,
        survivor: PatientId,
    ) -> super::StoreResult<Vec<DocumentId>> {
        let (p, s) = (prior.to_string(), survivor.to_string());
        let moved: Vec<String> = sqlx::query_scalar(
            "UPDATE documents SET patient_id = $1 WHERE patient_id = $2 RETURNING id",
        )
        .bind(&s)
        .bind(&p)
        .fetch_all(tx.conn())
        .await?;
        for table in ["disclosures", "holds", "encounters"] {
            sqlx::query(&format!(
                "UPDATE {table} SET patient_id = $1 WHERE patient_id = $2"
            ))
            .bind(&s)
            .bind(&p)
            .execute(tx.conn())
            .await?;
        }
        // A request that named both keeps one row, the survivor's.
        sqlx::query(
            "UPDATE release_patients SET patient_id = $1 WHERE patient_id = $2
             AND release_id NOT IN (SELECT release_id FROM release_patients WHERE patient_id = $1)",
        )
        .bind(&s)
        .bind(&p)
        .execute(tx.conn())
        .await?;
        sqlx::query("DELETE FROM release_patients WHERE patient_id = $1")
            .bind(&p)
            .execute(tx.conn())
            .await?;
        // Access rows are MACed with their patient: each genuine one gets a new MAC; one that
        // fails its check grants nothing and is not made genuine by moving it.
        for (table, columns) in [row_mac::CARE, row_mac::BREAK_GLASS] {
            let rows = sqlx::query(&format!(
                "SELECT {}, mac FROM {table} WHERE patient_id = $1",
                columns.join(", ")
            ))
            .bind(&p)
            .fetch_all(tx.conn())
            .await?;
            for row in &rows {
                if !self.row_verifies((table, columns), row)? {
                    continue;
                }
                let mut fields = super::integrity::row_fields(row, columns)?;
                let patient = columns
                    .iter()
                    .position(|c| *c == "patient_id")
                    .expect("MACed access rows name their patient");
                fields[patient] = Some(s.clone());
                let mac = self.row_tag(table, &super::integrity::as_refs(&fields))?;
                sqlx::query(&format!(
                    "UPDATE {table} SET patient_id = $1, mac = $2 WHERE id = $3"
                ))
                .bind(&s)
                .bind(mac)
                .bind(fields[0].as_deref())
                .execute(tx.conn())
                .await?;
            }
        }
        sqlx::query("UPDATE patients SET merged_into = $1, merged_at = $2 WHERE id = $3")
            .bind(&s)
            .bind(now())
            .bind(&p)
            .execute(tx.conn())
            .await?;
        moved.iter().map(|id| parse_id(id)).collect()
    }

    async fn record_encounter(&self, tx: &mut Tx, encounter: &Encounter) -> super::StoreResult<()> {
        let phi = self.phi()?;
        let index = phi.visit_index(&encounter.visit_number);
        let existing: Option<String> =
            sqlx::query_scalar("SELECT id FROM encounters WHERE visit_index = $1")
                .bind(&index)
                .fetch_optional(tx.conn())
                .await?;
        // Sealed values are bound to their row's id: the visit's own, or a new one.
        let id = existing.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let time = |column, t: Option<chrono::NaiveDateTime>| {
            t.map(|t| phi.seal(column, &id, &t.format(TIME).to_string()))
        };
        // A visit seen before follows the message's patient; what it does not send stays.
        sqlx::query(
            "INSERT INTO encounters (id, patient_id, visit_index, visit_number, patient_class,
                admitted_at, discharged_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
             ON CONFLICT (visit_index) DO UPDATE SET patient_id = excluded.patient_id,
                patient_class = COALESCE(excluded.patient_class, encounters.patient_class),
                admitted_at = COALESCE(excluded.admitted_at, encounters.admitted_at),
                discharged_at = COALESCE(excluded.discharged_at, encounters.discharged_at),
                updated_at = excluded.updated_at",
        )
        .bind(&id)
        .bind(encounter.patient_id.to_string())
        .bind(&index)
        .bind(phi.seal(
            Column::EncounterVisitNumber,
            &id,
            encounter.visit_number.trim(),
        ))
        .bind(&encounter.patient_class)
        .bind(time(Column::EncounterAdmittedAt, encounter.admitted_at))
        .bind(time(Column::EncounterDischargedAt, encounter.discharged_at))
        .bind(now())
        .execute(tx.conn())
        .await?;
        Ok(())
    }

    async fn encounter(&self, visit_number: &str) -> super::StoreResult<Option<Encounter>> {
        let row = sqlx::query("SELECT * FROM encounters WHERE visit_index = $1")
            .bind(self.phi()?.visit_index(visit_number))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| self.encounter_from_row(&row)).transpose()
    }

    async fn encounters_of(&self, patient: PatientId) -> super::StoreResult<Vec<Encounter>> {
        let rows = sqlx::query("SELECT * FROM encounters WHERE patient_id = $1")
            .bind(patient.to_string())
            .fetch_all(&self.pool)
            .await?;
        let mut encounters = rows
            .iter()
            .map(|row| self.encounter_from_row(row))
            .collect::<super::StoreResult<Vec<_>>>()?;
        // Sealed times cannot be ordered by the database.
        encounters.sort_by(|a, b| b.admitted_at.cmp(&a.admitted_at));
        Ok(encounters)
    }

    async fn update_patient(
        &self,
        tx: &mut Tx,
        id: PatientId,
        name: &str,
        birth_date: Option<NaiveDate>,
    ) -> super::StoreResult<()> {
        let phi = self.phi()?;
        let row_id = id.to_string();
        sqlx::query("UPDATE patients SET name = $1, birth_date = $2 WHERE id = $3")
            .bind(phi.seal(Column::PatientName, &row_id, name))
            .bind(birth_date.map(|d| phi.seal(Column::PatientBirthDate, &row_id, &d.to_string())))
            .bind(&row_id)
            .execute(tx.conn())
            .await?;
        Ok(())
    }
}

/// The patient a merged patient was merged into, through every later merge (at most 16);
/// a patient never merged is its own survivor.
async fn survivor_of(conn: &mut Conn, mut id: PatientId) -> super::StoreResult<PatientId> {
    for _ in 0..16 {
        let next: Option<String> =
            sqlx::query_scalar("SELECT merged_into FROM patients WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&mut *conn)
                .await?
                .flatten();
        match next {
            Some(next) => id = parse_id(&next)?,
            None => return Ok(id),
        }
    }
    Ok(id)
}

/// How encounter times are sealed.
const TIME: &str = "%Y-%m-%dT%H:%M:%S";

impl Backend {
    fn encounter_from_row(&self, row: &DbRow) -> super::StoreResult<Encounter> {
        let id: String = row.try_get("id")?;
        let time = |column: Column, name: &str| -> super::StoreResult<_> {
            self.open_optional(column, &id, row.try_get(name)?)?
                .map(|t| {
                    chrono::NaiveDateTime::parse_from_str(&t, TIME)
                        .map_err(|e| decode_err(e.to_string()))
                })
                .transpose()
        };
        Ok(Encounter {
            patient_id: parse_id(row.try_get::<&str, _>("patient_id")?)?,
            visit_number: self.open_column(
                Column::EncounterVisitNumber,
                &id,
                row.try_get("visit_number")?,
            )?,
            patient_class: row.try_get("patient_class")?,
            admitted_at: time(Column::EncounterAdmittedAt, "admitted_at")?,
            discharged_at: time(Column::EncounterDischargedAt, "discharged_at")?,
        })
    }

    pub(super) fn patient_from_row(&self, row: &DbRow) -> super::StoreResult<Patient> {
        let id: String = row.try_get("id")?;
        let birth_date =
            self.open_optional(Column::PatientBirthDate, &id, row.try_get("birth_date")?)?;
        Ok(Patient {
            id: parse_id(&id)?,
            mrn: Mrn::parse(&self.open_column(Column::PatientMrn, &id, row.try_get("mrn")?)?)
                .map_err(decode_err)?
                .issued_by(row.try_get("issuer")?),
            name: self.open_column(Column::PatientName, &id, row.try_get("name")?)?,
            birth_date: parse_date(birth_date)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{file_bytes, store};
    use super::*;

    #[tokio::test]
    async fn a_patient_is_found_by_mrn_only_and_its_name_and_mrn_are_sealed() {
        let store = store().await;
        let mrn = Mrn::parse("00123-x").unwrap();
        let mut tx = store.begin().await.unwrap();
        let id = store
            .ensure_patient(&mut tx, &mrn, "Zebulon Quartermaine", None)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let found = store.patient_by_mrn(&mrn).await.unwrap().unwrap();
        assert_eq!(
            (found.id, found.name.as_str()),
            (id, "Zebulon Quartermaine")
        );
        assert_eq!(found.mrn.as_str(), "00123-X", "MRNs compare uppercase");
        let other = Mrn::parse("123-X").unwrap();
        assert!(
            store.patient_by_mrn(&other).await.unwrap().is_none(),
            "zeros count"
        );
        // Another issuer's 00123-X is another patient, who keeps their issuer.
        let north = mrn.clone().issued_by(Some("NORTH".into()));
        assert!(store.patient_by_mrn(&north).await.unwrap().is_none());
        let mut tx = store.begin().await.unwrap();
        let northern = store
            .ensure_patient(&mut tx, &north, "Ynes Northcote", None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_ne!(northern, id);
        let found_north = store.patient_by_mrn(&north).await.unwrap().unwrap();
        assert_eq!(found_north.mrn.issuer(), Some("NORTH"));
        assert_eq!(store.patient_by_mrn(&mrn).await.unwrap().unwrap().id, id);

        // The same MRN again is the same patient, with the details on record.
        let mut tx = store.begin().await.unwrap();
        let again = store
            .ensure_patient(&mut tx, &mrn, "Someone Else", None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(again, id);
        assert_eq!(
            store.patient(id).await.unwrap().unwrap().name,
            "Zebulon Quartermaine"
        );

        store.truncate_wal().await.unwrap();
        let bytes = file_bytes(&store).await;
        for needle in ["Zebulon", "Quartermaine", "00123-X"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} is in the database file"
            );
        }
    }

    #[tokio::test]
    async fn a_visit_is_recorded_once_follows_its_patient_and_keeps_what_is_not_sent() {
        let store = store().await;
        let mut tx = store.begin().await.unwrap();
        let first = store
            .ensure_patient(&mut tx, &Mrn::parse("E-1").unwrap(), "Vera Visit", None)
            .await
            .unwrap();
        let second = store
            .ensure_patient(&mut tx, &Mrn::parse("E-2").unwrap(), "Otto Other", None)
            .await
            .unwrap();
        let admitted = NaiveDate::from_ymd_opt(2026, 12, 1)
            .unwrap()
            .and_hms_opt(8, 30, 0);
        store
            .record_encounter(
                &mut tx,
                &Encounter {
                    patient_id: first,
                    visit_number: "V-9".into(),
                    patient_class: Some("I".into()),
                    admitted_at: admitted,
                    discharged_at: None,
                },
            )
            .await
            .unwrap();
        // Reported again (lower case, another patient, only the discharge).
        let discharged = NaiveDate::from_ymd_opt(2026, 12, 4)
            .unwrap()
            .and_hms_opt(11, 0, 0);
        store
            .record_encounter(
                &mut tx,
                &Encounter {
                    patient_id: second,
                    visit_number: " v-9 ".into(),
                    patient_class: None,
                    admitted_at: None,
                    discharged_at: discharged,
                },
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(store.encounters_of(first).await.unwrap().is_empty());
        let visits = store.encounters_of(second).await.unwrap();
        assert_eq!(visits.len(), 1);
        let visit = store.encounter("V-9").await.unwrap().unwrap();
        assert_eq!(visit.visit_number, "V-9");
        assert_eq!(visit.patient_class.as_deref(), Some("I"));
        assert_eq!(
            (visit.admitted_at, visit.discharged_at),
            (admitted, discharged)
        );
        let bytes = file_bytes(&store).await;
        assert!(
            !bytes.windows(3).any(|w| w == b"V-9"),
            "the visit number is sealed"
        );
    }
}

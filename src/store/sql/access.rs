//! [`AccessStore`] in SQL, for every backend.

use super::*;
pub(super) use crate::store::access::*;

impl AccessStore for Backend {
    async fn care_patients(
        &self,
        user: UserId,
        day: NaiveDate,
    ) -> super::StoreResult<Vec<PatientId>> {
        let day = day.to_string();
        let rows = sqlx::query(
            "SELECT id, user_id, patient_id, starts_on, ends_on, mac FROM care_relationships
             WHERE user_id = $1 AND starts_on <= $2 AND (ends_on IS NULL OR ends_on >= $2)",
        )
        .bind(user.to_string())
        .bind(&day)
        .fetch_all(&self.pool)
        .await?;
        let mut patients = Vec::with_capacity(rows.len());
        for row in &rows {
            if self.row_verifies(row_mac::CARE, row)? {
                let patient: PatientId = parse_id(row.try_get::<&str, _>("patient_id")?)?;
                if !patients.contains(&patient) {
                    patients.push(patient);
                }
            }
        }
        Ok(patients)
    }

    async fn insert_care_relationship(
        &self,
        user: UserId,
        patient: PatientId,
        starts_on: NaiveDate,
        ends_on: Option<NaiveDate>,
        by: UserId,
    ) -> super::StoreResult<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let (user, patient) = (user.to_string(), patient.to_string());
        let (starts_on, ends_on) = (starts_on.to_string(), ends_on.map(|d| d.to_string()));
        let mac = self.row_tag(
            row_mac::CARE.0,
            &[
                Some(&id),
                Some(&user),
                Some(&patient),
                Some(&starts_on),
                ends_on.as_deref(),
            ],
        )?;
        sqlx::query(
            "INSERT INTO care_relationships (id, user_id, patient_id, starts_on, ends_on, created_by, created_at, mac)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&user)
        .bind(&patient)
        .bind(&starts_on)
        .bind(&ends_on)
        .bind(by.to_string())
        .bind(now())
        .bind(mac)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    async fn end_care_relationship(
        &self,
        id: &str,
        today: NaiveDate,
        by: UserId,
    ) -> super::StoreResult<bool> {
        let yesterday = today.pred_opt().unwrap_or(today).to_string();
        let mut tx = self.begin_immediate().await?;
        let row = sqlx::query(
            "SELECT id, user_id, patient_id, starts_on, ends_on, mac FROM care_relationships
             WHERE id = $1 AND (ends_on IS NULL OR ends_on > $2)",
        )
        .bind(id)
        .bind(&yesterday)
        .fetch_optional(tx.conn())
        .await?;
        // A row that fails its integrity check is not made genuine by a new MAC.
        let Some(row) = row.filter(|r| self.row_verifies(row_mac::CARE, r).unwrap_or(false)) else {
            return Ok(false);
        };
        let (user, patient, starts_on): (String, String, String) = (
            row.try_get("user_id")?,
            row.try_get("patient_id")?,
            row.try_get("starts_on")?,
        );
        let mac = self.row_tag(
            row_mac::CARE.0,
            &[
                Some(id),
                Some(&user),
                Some(&patient),
                Some(&starts_on),
                Some(&yesterday),
            ],
        )?;
        sqlx::query(
            "UPDATE care_relationships SET ends_on = $1, ended_by = $2, mac = $3 WHERE id = $4",
        )
        .bind(&yesterday)
        .bind(by.to_string())
        .bind(mac)
        .bind(id)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn category_grants(&self, user: UserId) -> super::StoreResult<Vec<Category>> {
        let rows =
            sqlx::query("SELECT user_id, category, mac FROM category_grants WHERE user_id = $1")
                .bind(user.to_string())
                .fetch_all(&self.pool)
                .await?;
        let mut grants = Vec::with_capacity(rows.len());
        for row in &rows {
            if self.row_verifies(row_mac::GRANTS, row)? {
                grants.push(Category::from_stored(row.try_get("category")?));
            }
        }
        Ok(grants)
    }

    async fn grant_category(
        &self,
        user: UserId,
        category: &Category,
        by: UserId,
    ) -> super::StoreResult<()> {
        let user = user.to_string();
        let mac = self.row_tag(row_mac::GRANTS.0, &[Some(&user), Some(category.as_str())])?;
        sqlx::query(
            "INSERT INTO category_grants (user_id, category, granted_by, created_at, mac)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (user_id, category) DO UPDATE SET mac = excluded.mac",
        )
        .bind(&user)
        .bind(category.as_str())
        .bind(by.to_string())
        .bind(now())
        .bind(mac)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn revoke_category(&self, user: UserId, category: &Category) -> super::StoreResult<bool> {
        let changed =
            sqlx::query("DELETE FROM category_grants WHERE user_id = $1 AND category = $2")
                .bind(user.to_string())
                .bind(category.as_str())
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(changed > 0)
    }

    async fn active_break_glass(
        &self,
        user: UserId,
        at: DateTime<Utc>,
    ) -> super::StoreResult<Vec<(PatientId, String)>> {
        let rows = sqlx::query(
            "SELECT id, user_id, patient_id, started_at, expires_at, mac FROM break_glass
             WHERE user_id = $1 AND expires_at > $2",
        )
        .bind(user.to_string())
        .bind(at.to_rfc3339_opts(SecondsFormat::Millis, true))
        .fetch_all(&self.pool)
        .await?;
        let mut accesses = Vec::with_capacity(rows.len());
        for row in &rows {
            if self.row_verifies(row_mac::BREAK_GLASS, row)? {
                accesses.push((
                    parse_id(row.try_get::<&str, _>("patient_id")?)?,
                    row.try_get("id")?,
                ));
            }
        }
        Ok(accesses)
    }

    async fn insert_break_glass(
        &self,
        user: UserId,
        patient: PatientId,
        reason_code: &str,
        reason: &str,
        expires_at: DateTime<Utc>,
    ) -> super::StoreResult<BreakGlassRow> {
        let id = uuid::Uuid::new_v4().to_string();
        let started_at = now();
        let expires_at = expires_at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let (user_text, patient_text) = (user.to_string(), patient.to_string());
        let mac = self.row_tag(
            row_mac::BREAK_GLASS.0,
            &[
                Some(&id),
                Some(&user_text),
                Some(&patient_text),
                Some(&started_at),
                Some(&expires_at),
            ],
        )?;
        sqlx::query(
            "INSERT INTO break_glass (id, user_id, patient_id, reason_code, reason, started_at, expires_at, mac)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&user_text)
        .bind(&patient_text)
        .bind(reason_code)
        .bind(self.phi()?.seal(Column::BreakGlassReason, &id, reason))
        .bind(&started_at)
        .bind(&expires_at)
        .bind(mac)
        .execute(&self.pool)
        .await?;
        Ok(BreakGlassRow {
            id,
            user_id: user.to_string(),
            patient_id: patient,
            reason_code: reason_code.to_string(),
            reason: reason.to_string(),
            started_at,
            expires_at,
            reviewed_at: None,
            reviewed_by: None,
            review_outcome: None,
            review_note: None,
        })
    }

    async fn break_glass_accesses(
        &self,
        unreviewed_only: bool,
    ) -> super::StoreResult<Vec<BreakGlassRow>> {
        let rows = sqlx::query(
            "SELECT * FROM break_glass WHERE ($1 = 0 OR reviewed_at IS NULL) ORDER BY started_at",
        )
        .bind(unreviewed_only as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                Ok(BreakGlassRow {
                    user_id: row.try_get("user_id")?,
                    patient_id: parse_id(row.try_get::<&str, _>("patient_id")?)?,
                    reason_code: row.try_get("reason_code")?,
                    reason: self.open_column(
                        Column::BreakGlassReason,
                        &id,
                        row.try_get("reason")?,
                    )?,
                    started_at: row.try_get("started_at")?,
                    expires_at: row.try_get("expires_at")?,
                    reviewed_at: row.try_get("reviewed_at")?,
                    reviewed_by: row.try_get("reviewed_by")?,
                    review_outcome: row.try_get("review_outcome")?,
                    review_note: self.open_optional(
                        Column::BreakGlassReviewNote,
                        &id,
                        row.try_get("review_note")?,
                    )?,
                    id,
                })
            })
            .collect()
    }

    async fn review_break_glass(
        &self,
        id: &str,
        by: UserId,
        outcome: &str,
        note: Option<&str>,
    ) -> super::StoreResult<bool> {
        let note = match note {
            Some(note) => Some(self.phi()?.seal(Column::BreakGlassReviewNote, id, note)),
            None => None,
        };
        let changed = sqlx::query(
            "UPDATE break_glass SET reviewed_at = $1, reviewed_by = $2, review_outcome = $3, review_note = $4
             WHERE id = $5 AND reviewed_at IS NULL",
        )
        .bind(now())
        .bind(by.to_string())
        .bind(outcome)
        .bind(note)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::store;
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[tokio::test]
    async fn a_care_relationship_grants_its_patient_within_its_dates_and_not_once_altered() {
        let store = store().await;
        let clinician = store.create_user("carl", Role::Clinician).await.unwrap();
        let admin = store.create_user("ada", Role::Admin).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let patient_of = |mrn: &'static str| Mrn::parse(mrn).unwrap();
        let treated = store
            .ensure_patient(&mut tx, &patient_of("T-1"), "Treated", None)
            .await
            .unwrap();
        let other = store
            .ensure_patient(&mut tx, &patient_of("O-1"), "Other", None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        store
            .insert_care_relationship(
                clinician,
                treated,
                day(2026, 1, 1),
                Some(day(2026, 6, 30)),
                admin,
            )
            .await
            .unwrap();

        let on = |d| store.care_patients(clinician, d);
        assert_eq!(on(day(2026, 3, 1)).await.unwrap(), vec![treated]);
        assert_eq!(
            on(day(2026, 6, 30)).await.unwrap(),
            vec![treated],
            "the end day counts"
        );
        assert!(on(day(2026, 7, 1)).await.unwrap().is_empty());
        assert!(on(day(2025, 12, 31)).await.unwrap().is_empty());

        // Pointed at another patient by someone who can write the file: it grants nothing.
        sqlx::query("UPDATE care_relationships SET patient_id = $1")
            .bind(other.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        assert!(on(day(2026, 3, 1)).await.unwrap().is_empty());
    }
}

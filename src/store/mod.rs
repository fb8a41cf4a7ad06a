//! Metadata in SQLite (WAL, `synchronous=FULL` so an acknowledged upload survives a crash).
//!
//! All SQL lives here, behind [`Db`]; the rest of the service speaks in domain types.
//! Queries use `$n` placeholders so the same SQL can serve PostgreSQL later.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use crate::domain::{Category, DocumentId, DocumentStatus, Mrn, PatientId, Role, UserId};
use crate::store::audit_record::AuditCipher;
use crate::store::objects::ObjectRef;
use crate::store::phi::{is_sealed, Column, PhiCipher};

pub mod audit_log;
pub mod audit_record;
pub mod batches;
pub mod disclosures;
pub mod holds;
pub mod integrity;
pub mod keys;
pub mod objects;
pub mod phi;
pub mod releases;
mod reseal;
pub mod retention;
pub mod row_mac;
pub mod vault;

pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The store's error. SQLite's today; callers never name the driver.
pub type StoreError = sqlx::Error;
/// A store result.
pub type StoreResult<T> = Result<T, StoreError>;

/// What a retention destruction certifies; written in the destruction's transaction.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    pub run_id: String,
    pub document_id: DocumentId,
    pub document_sha256: String,
    pub document_type: String,
    pub page_count: u32,
    pub rule: String,
    pub counted_from: NaiveDate,
    pub expired_on: NaiveDate,
    /// A user id, or [`retention::RETENTION_JOB`].
    pub destroyed_by: String,
}

/// Shared by every clone of a [`Db`]: the keys, the writer lock and the head.
pub(crate) struct AuditLogState {
    cipher: OnceLock<AuditCipher>,
    /// One appender at a time in this process, so concurrent requests queue here instead
    /// of failing on the `seq` primary key.
    writer: tokio::sync::Mutex<()>,
    /// The seq of the newest entry this process appended (checkpoints watch it).
    head: tokio::sync::watch::Sender<i64>,
}

impl Default for AuditLogState {
    fn default() -> Self {
        AuditLogState {
            cipher: OnceLock::new(),
            writer: tokio::sync::Mutex::new(()),
            head: tokio::sync::watch::channel(0).0,
        }
    }
}

#[derive(Clone)]
pub struct Db {
    pool: SqlitePool,
    /// Seals and opens PHI columns; set once at startup, when the keyring can be read.
    phi: Arc<OnceLock<PhiCipher>>,
    /// The audit chain's keys, its one writer, and its head (see [`audit_log`]).
    audit: Arc<AuditLogState>,
    /// MACs the rows that grant access; set once at startup (see [`integrity`]).
    row_mac: Arc<OnceLock<row_mac::RowMac>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Patient {
    pub id: PatientId,
    pub mrn: String,
    pub name: String,
    pub birth_date: Option<NaiveDate>,
}

#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: DocumentId,
    pub patient_id: PatientId,
    pub document_type: String,
    pub category: Category,
    pub service_date: Option<NaiveDate>,
    pub encounter: Option<String>,
    pub content_type: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub page_count: u32,
    pub created_by: UserId,
    /// A DICOM instance's SOP Instance UID (stored as its blind index only).
    pub sop_instance_uid: Option<String>,
    /// Why the document goes to the QA queue once processed.
    pub qa_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Document {
    pub id: DocumentId,
    pub patient_id: PatientId,
    pub document_type: String,
    pub category: Category,
    pub service_date: Option<NaiveDate>,
    pub encounter: Option<String>,
    pub content_type: String,
    pub sha256: String,
    pub size_bytes: i64,
    pub page_count: u32,
    pub status: DocumentStatus,
    pub failure_reason: Option<String>,
    pub created_at: String,
    pub indexed_at: Option<String>,
    /// Set on a tombstone (status `deleted`).
    pub deleted_at: Option<String>,
    pub deleted_by: Option<String>,
    pub deletion_reason: Option<String>,
    /// Why the document is (or, once processed, will be) in the QA queue.
    pub qa_reason: Option<String>,
    /// What could not be done though the document is usable (e.g. no DICOM preview).
    pub notice: Option<String>,
    /// The version this one corrects (entered in error).
    pub supersedes: Option<DocumentId>,
    /// Set on a version entered in error: its correction.
    pub superseded_by: Option<DocumentId>,
    pub entered_in_error_at: Option<String>,
    pub entered_in_error_by: Option<String>,
    pub correction_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PageRow {
    pub page: u32,
    pub width: u32,
    pub height: u32,
    pub dpi: Option<f64>,
    pub mean_confidence: f64,
    pub word_count: u32,
    /// A blank page: stored and numbered, not recognised.
    pub blank: bool,
    /// How far the scan was turned clockwise to make it upright (0, 90, 180, 270).
    pub rotation: u16,
    /// The skew measured on the scan and corrected in the stored image, in degrees.
    pub skew_degrees: Option<f64>,
    /// The fraction of the page covered by ink.
    pub ink: Option<f64>,
    /// Where the text came from: `ocr`, `text-layer` (a PDF's own text), `dicom` (a DICOM
    /// file's attributes) or `none` (blank).
    pub text_source: String,
}

/// One break-the-glass access, its reason opened.
#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub document_id: DocumentId,
    pub attempts: i64,
}

#[derive(Debug, Clone)]
pub struct TokenOwner {
    pub user_id: UserId,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub expires_at: String,
    pub revoked: bool,
}

/// One audit row. Ids only: the audit never holds names, MRNs or text.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    pub user_id: Option<UserId>,
    pub role: Option<Role>,
    pub action: &'static str,
    pub patient_id: Option<PatientId>,
    pub document_id: Option<DocumentId>,
    pub outcome: &'static str,
    pub client_addr: Option<String>,
    pub request_id: Option<String>,
    /// Why the access happened (e.g. `treatment`), when the policy knows it.
    pub purpose_of_use: Option<String>,
    /// The access was a break-glass override: flagged for review.
    pub break_glass: bool,
    pub detail: Option<serde_json::Value>,
}

impl AuditEntry {
    /// A user or token change made by no principal of the service (at the console, or the
    /// first start creating the admin): purpose `HSYSADMIN`, who and how in `detail`.
    pub fn administration(action: &'static str, detail: serde_json::Value) -> AuditEntry {
        AuditEntry {
            user_id: None,
            role: None,
            action,
            patient_id: None,
            document_id: None,
            outcome: "ok",
            client_addr: None,
            request_id: None,
            purpose_of_use: Some("HSYSADMIN".to_string()),
            break_glass: false,
            detail: Some(detail),
        }
    }
}

/// One audit entry as read back (decrypted), with its chain hash. Its fields are the
/// record's (through `Deref`).
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    #[serde(flatten)]
    pub record: audit_record::AuditRecord,
    /// Hex of the entry's chain hash.
    pub hash: String,
}

impl std::ops::Deref for AuditRow {
    type Target = audit_record::AuditRecord;

    fn deref(&self) -> &Self::Target {
        &self.record
    }
}

fn parse_id<T: FromStr>(raw: &str) -> sqlx::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    raw.parse::<T>()
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn parse_date(raw: Option<String>) -> sqlx::Result<Option<NaiveDate>> {
    raw.map(|d| NaiveDate::from_str(&d).map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}

/// A page row from a `pages` or `batch_pages` row (the same columns).
fn page_row_from(r: &sqlx::sqlite::SqliteRow) -> sqlx::Result<PageRow> {
    Ok(PageRow {
        page: r.try_get::<i64, _>("page")? as u32,
        width: r.try_get::<i64, _>("width")? as u32,
        height: r.try_get::<i64, _>("height")? as u32,
        dpi: r.try_get("dpi")?,
        mean_confidence: r.try_get("mean_confidence")?,
        word_count: r.try_get::<i64, _>("word_count")? as u32,
        blank: r.try_get("blank")?,
        rotation: r.try_get::<i64, _>("rotation")? as u16,
        skew_degrees: r.try_get("skew_degrees")?,
        ink: r.try_get("ink")?,
        text_source: r.try_get("text_source")?,
    })
}

fn insert_page_query(
    document: DocumentId,
    page: &PageRow,
) -> sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    sqlx::query(
        "INSERT INTO pages (document_id, page, width, height, dpi, mean_confidence, word_count,
            created_at, blank, rotation, skew_degrees, ink, text_source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (document_id, page) DO UPDATE SET width = excluded.width,
            height = excluded.height, dpi = excluded.dpi,
            mean_confidence = excluded.mean_confidence, word_count = excluded.word_count,
            blank = excluded.blank, rotation = excluded.rotation,
            skew_degrees = excluded.skew_degrees, ink = excluded.ink,
            text_source = excluded.text_source",
    )
    .bind(document.to_string())
    .bind(page.page as i64)
    .bind(page.width as i64)
    .bind(page.height as i64)
    .bind(page.dpi)
    .bind(page.mean_confidence)
    .bind(page.word_count as i64)
    .bind(now())
    .bind(page.blank)
    .bind(i64::from(page.rotation))
    .bind(page.skew_degrees)
    .bind(page.ink)
    .bind(page.text_source.clone())
}

fn decode_err(message: String) -> sqlx::Error {
    sqlx::Error::Decode(message.into())
}

impl Db {
    pub async fn open(path: &Path) -> anyhow::Result<Db> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Deleted rows (a shredded key, an upgraded plaintext value) are overwritten.
            .pragma("secure_delete", "ON");
        // Migrations run on their own connection with foreign-key enforcement off, as
        // SQLite requires for rebuilding a table; each ends by checking every reference.
        {
            use sqlx::Connection;
            let mut migrating =
                sqlx::SqliteConnection::connect_with(&options.clone().foreign_keys(false)).await?;
            sqlx::migrate!("./migrations").run(&mut migrating).await?;
            migrating.close().await?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(Db {
            pool,
            phi: Arc::new(OnceLock::new()),
            audit: Arc::new(AuditLogState::default()),
            row_mac: Arc::new(OnceLock::new()),
        })
    }

    /// Gives the database the keys of its sealed columns (once, at startup).
    pub fn set_phi(&self, phi: PhiCipher) {
        if self.phi.set(phi).is_err() {
            tracing::warn!("the PHI column keys were set twice; keeping the first");
        }
    }

    fn phi(&self) -> sqlx::Result<&PhiCipher> {
        self.phi
            .get()
            .ok_or_else(|| sqlx::Error::Configuration("the PHI column keys are not loaded".into()))
    }

    fn open_column(&self, column: Column, row_id: &str, sealed: &[u8]) -> sqlx::Result<String> {
        self.phi()?
            .open(column, row_id, sealed)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }

    fn open_optional(
        &self,
        column: Column,
        row_id: &str,
        sealed: Option<Vec<u8>>,
    ) -> sqlx::Result<Option<String>> {
        sealed
            .map(|bytes| self.open_column(column, row_id, &bytes))
            .transpose()
    }

    fn document_from_row(&self, row: &sqlx::sqlite::SqliteRow) -> sqlx::Result<Document> {
        let status: String = row.try_get("status")?;
        let id: String = row.try_get("id")?;
        let qa_reason: Option<String> = row.try_get("qa_reason")?;
        // In the database a document in the QA queue is `indexed` with a `qa_reason`.
        // And a version entered in error is `indexed` with `entered_in_error_at`.
        let entered_in_error_at: Option<String> = row.try_get("entered_in_error_at")?;
        let status = match DocumentStatus::from_str(&status).map_err(decode_err)? {
            DocumentStatus::Indexed if entered_in_error_at.is_some() => {
                DocumentStatus::EnteredInError
            }
            DocumentStatus::Indexed if qa_reason.is_some() => DocumentStatus::Qa,
            status => status,
        };
        let optional_id = |column: &str| -> sqlx::Result<Option<DocumentId>> {
            row.try_get::<Option<String>, _>(column)?
                .map(|id| parse_id(&id))
                .transpose()
        };
        Ok(Document {
            id: parse_id(&id)?,
            patient_id: parse_id(row.try_get::<&str, _>("patient_id")?)?,
            document_type: row.try_get("document_type")?,
            category: Category::from_stored(row.try_get("category")?),
            service_date: parse_date(row.try_get("service_date")?)?,
            encounter: self.open_optional(
                Column::DocumentEncounter,
                &id,
                row.try_get("encounter")?,
            )?,
            content_type: row.try_get("content_type")?,
            sha256: row.try_get("sha256")?,
            size_bytes: row.try_get("size_bytes")?,
            page_count: row.try_get::<i64, _>("page_count")? as u32,
            status,
            failure_reason: row.try_get("failure_reason")?,
            created_at: row.try_get("created_at")?,
            indexed_at: row.try_get("indexed_at")?,
            deleted_at: row.try_get("deleted_at")?,
            deleted_by: row.try_get("deleted_by")?,
            deletion_reason: self.open_optional(
                Column::DocumentDeletionReason,
                &id,
                row.try_get("deletion_reason")?,
            )?,
            qa_reason,
            notice: row.try_get("notice")?,
            supersedes: optional_id("supersedes")?,
            superseded_by: optional_id("superseded_by")?,
            entered_in_error_at,
            entered_in_error_by: row.try_get("entered_in_error_by")?,
            correction_reason: self.open_optional(
                Column::DocumentCorrectionReason,
                &id,
                row.try_get("correction_reason")?,
            )?,
        })
    }

    fn patient_from_row(&self, row: &sqlx::sqlite::SqliteRow) -> sqlx::Result<Patient> {
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

    /// Seals the PHI of rows written before columns were sealed (an upgraded archive), then
    /// vacuums so their plaintext does not linger in free pages. Returns the rows sealed.
    pub async fn seal_legacy_rows(&self) -> anyhow::Result<u64> {
        let phi = self.phi()?;
        let mut sealed = 0u64;
        let mut tx = self.pool.begin().await?;
        let patients =
            sqlx::query("SELECT id, mrn, name, birth_date FROM patients WHERE mrn_index IS NULL")
                .fetch_all(&mut *tx)
                .await?;
        for row in &patients {
            let id: String = row.try_get("id")?;
            let text = |column: &str| -> sqlx::Result<Option<String>> {
                Ok(row
                    .try_get::<Option<Vec<u8>>, _>(column)?
                    .map(|b| String::from_utf8_lossy(&b).into_owned()))
            };
            let mrn = Mrn::parse(&text("mrn")?.unwrap_or_default())
                .map_err(|e| anyhow::anyhow!("an old patient row holds an invalid MRN: {e}"))?;
            sqlx::query(
                "UPDATE patients SET mrn_index = $1, mrn = $2, name = $3, birth_date = $4 WHERE id = $5",
            )
            .bind(phi.mrn_index(&mrn))
            .bind(phi.seal(Column::PatientMrn, &id, mrn.as_str()))
            .bind(phi.seal(Column::PatientName, &id, &text("name")?.unwrap_or_default()))
            .bind(text("birth_date")?.map(|d| phi.seal(Column::PatientBirthDate, &id, &d)))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            sealed += 1;
        }
        let documents =
            sqlx::query("SELECT id, encounter FROM documents WHERE encounter IS NOT NULL")
                .fetch_all(&mut *tx)
                .await?;
        for row in &documents {
            let id: String = row.try_get("id")?;
            let value: Vec<u8> = row.try_get("encounter")?;
            if is_sealed(&value) {
                continue;
            }
            let text = String::from_utf8_lossy(&value).into_owned();
            sqlx::query("UPDATE documents SET encounter = $1 WHERE id = $2")
                .bind(phi.seal(Column::DocumentEncounter, &id, &text))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            sealed += 1;
        }
        tx.commit().await?;
        if sealed > 0 {
            self.scrub_free_space().await?;
        }
        Ok(sealed)
    }

    /// Rewrites the database file without free pages and empties the WAL, so deleted or
    /// replaced rows (old plaintext, shredded keys) are not left on disk.
    pub async fn scrub_free_space(&self) -> sqlx::Result<()> {
        sqlx::query("VACUUM").execute(&self.pool).await?;
        self.truncate_wal().await.map(|_| ())
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn begin(&self) -> sqlx::Result<Transaction<'static, Sqlite>> {
        self.pool.begin().await
    }

    // ---- keyring ----

    pub async fn insert_key(
        tx: &mut Transaction<'_, Sqlite>,
        key_id: &str,
        kek_version: u32,
        wrapped: &[u8],
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO keyring (key_id, kek_version, wrapped, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(key_id)
        .bind(kek_version as i64)
        .bind(wrapped)
        .bind(now())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn get_key(&self, key_id: &str) -> sqlx::Result<Option<(u32, Vec<u8>)>> {
        let row = sqlx::query("SELECT kek_version, wrapped FROM keyring WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok((
                r.try_get::<i64, _>("kek_version")? as u32,
                r.try_get::<Vec<u8>, _>("wrapped")?,
            ))
        })
        .transpose()
    }

    /// Keyring rows per KEK version, ascending by version.
    pub async fn keyring_versions(&self) -> sqlx::Result<Vec<(u32, i64)>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT kek_version, count(*) FROM keyring GROUP BY kek_version ORDER BY kek_version",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(v, n)| (v as u32, n)).collect())
    }

    /// Up to `limit` keyring rows wrapped under a version other than `current`.
    pub async fn keyring_rows_not_under(
        &self,
        current: u32,
        limit: i64,
    ) -> sqlx::Result<Vec<(String, u32, Vec<u8>)>> {
        let rows: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT key_id, kek_version, wrapped FROM keyring WHERE kek_version != $1 LIMIT $2",
        )
        .bind(current as i64)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, v, bytes)| (id, v as u32, bytes))
            .collect())
    }

    /// Replaces wrapped keys in one transaction, each only if its row is still under the
    /// version it was read with: `(key_id, old_version, new_version, new_bytes)`. Returns the
    /// rows changed.
    pub async fn swap_wrapped_keys(
        &self,
        updates: &[(String, u32, u32, Vec<u8>)],
    ) -> sqlx::Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut changed = 0;
        for (key_id, old, new, bytes) in updates {
            changed += sqlx::query(
                "UPDATE keyring SET kek_version = $1, wrapped = $2 WHERE key_id = $3 AND kek_version = $4",
            )
            .bind(*new as i64)
            .bind(bytes)
            .bind(key_id)
            .bind(*old as i64)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    pub async fn service_key_id(&self, purpose: &str) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar("SELECT key_id FROM service_keys WHERE purpose = $1")
            .bind(purpose)
            .fetch_optional(&self.pool)
            .await
    }

    /// Records a new service key (keyring row and purpose) in one transaction. Returns false
    /// if another process recorded one for this purpose first.
    pub async fn insert_service_key(
        &self,
        purpose: &str,
        key_id: &str,
        kek_version: u32,
        wrapped: &[u8],
    ) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let taken: Option<String> =
            sqlx::query_scalar("SELECT key_id FROM service_keys WHERE purpose = $1")
                .bind(purpose)
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_some() {
            return Ok(false);
        }
        Db::insert_key(&mut tx, key_id, kek_version, wrapped).await?;
        sqlx::query("INSERT INTO service_keys (purpose, key_id, created_at) VALUES ($1, $2, $3)")
            .bind(purpose)
            .bind(key_id)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn delete_key(&self, key_id: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM keyring WHERE key_id = $1")
            .bind(key_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- access: care relationships, category grants, break-the-glass ----

    /// Patients on the user's care list on `day`.
    pub async fn care_patients(
        &self,
        user: UserId,
        day: NaiveDate,
    ) -> sqlx::Result<Vec<PatientId>> {
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

    pub async fn insert_care_relationship(
        &self,
        user: UserId,
        patient: PatientId,
        starts_on: NaiveDate,
        ends_on: Option<NaiveDate>,
        by: UserId,
    ) -> sqlx::Result<String> {
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

    /// Ends a care relationship (its last day becomes the day before `today`, so it no
    /// longer holds today); returns false if there is no such open relationship.
    pub async fn end_care_relationship(
        &self,
        id: &str,
        today: NaiveDate,
        by: UserId,
    ) -> sqlx::Result<bool> {
        let yesterday = today.pred_opt().unwrap_or(today).to_string();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(
            "SELECT id, user_id, patient_id, starts_on, ends_on, mac FROM care_relationships
             WHERE id = $1 AND (ends_on IS NULL OR ends_on > $2)",
        )
        .bind(id)
        .bind(&yesterday)
        .fetch_optional(&mut *tx)
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
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn category_grants(&self, user: UserId) -> sqlx::Result<Vec<Category>> {
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

    pub async fn grant_category(
        &self,
        user: UserId,
        category: &Category,
        by: UserId,
    ) -> sqlx::Result<()> {
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

    pub async fn revoke_category(&self, user: UserId, category: &Category) -> sqlx::Result<bool> {
        let changed =
            sqlx::query("DELETE FROM category_grants WHERE user_id = $1 AND category = $2")
                .bind(user.to_string())
                .bind(category.as_str())
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(changed > 0)
    }

    /// The user's break-the-glass accesses that have not expired: (patient, access id).
    pub async fn active_break_glass(
        &self,
        user: UserId,
        at: DateTime<Utc>,
    ) -> sqlx::Result<Vec<(PatientId, String)>> {
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

    pub async fn insert_break_glass(
        &self,
        user: UserId,
        patient: PatientId,
        reason_code: &str,
        reason: &str,
        expires_at: DateTime<Utc>,
    ) -> sqlx::Result<BreakGlassRow> {
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

    /// Break-the-glass accesses, oldest first: those not reviewed yet, or all.
    pub async fn break_glass_accesses(
        &self,
        unreviewed_only: bool,
    ) -> sqlx::Result<Vec<BreakGlassRow>> {
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

    /// Records the privacy officer's review; false if there is no such unreviewed access.
    pub async fn review_break_glass(
        &self,
        id: &str,
        by: UserId,
        outcome: &str,
        note: Option<&str>,
    ) -> sqlx::Result<bool> {
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

    // ---- patients ----

    pub async fn patient_by_mrn(&self, mrn: &Mrn) -> sqlx::Result<Option<Patient>> {
        let row =
            sqlx::query("SELECT id, mrn, name, birth_date FROM patients WHERE mrn_index = $1")
                .bind(self.phi()?.mrn_index(mrn))
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| self.patient_from_row(&r)).transpose()
    }

    pub async fn patient(&self, id: PatientId) -> sqlx::Result<Option<Patient>> {
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
        tx: &mut Transaction<'_, Sqlite>,
        mrn: &Mrn,
        name: &str,
        birth_date: Option<NaiveDate>,
    ) -> sqlx::Result<PatientId> {
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

    // ---- documents, pages, jobs ----

    /// Records the document and its OCR job (inside the caller's transaction).
    pub async fn insert_document_with_job(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        doc: &NewDocument,
    ) -> sqlx::Result<()> {
        let at = now();
        let row_id = doc.id.to_string();
        let encounter = match &doc.encounter {
            Some(encounter) => Some(self.phi()?.seal(
                Column::DocumentEncounter,
                &row_id,
                encounter,
            )),
            None => None,
        };
        let sop_index = match &doc.sop_instance_uid {
            Some(uid) => Some(self.phi()?.sop_index(uid)),
            None => None,
        };
        sqlx::query(
            "INSERT INTO documents (id, patient_id, document_type, category, service_date, encounter,
                content_type, sha256, size_bytes, page_count, status, created_at, created_by,
                sop_index, qa_reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'accepted', $11, $12, $13, $14)",
        )
        .bind(doc.id.to_string())
        .bind(doc.patient_id.to_string())
        .bind(&doc.document_type)
        .bind(doc.category.as_str())
        .bind(doc.service_date.map(|d| d.to_string()))
        .bind(encounter)
        .bind(&doc.content_type)
        .bind(&doc.sha256)
        .bind(doc.size_bytes as i64)
        .bind(doc.page_count as i64)
        .bind(&at)
        .bind(doc.created_by.to_string())
        .bind(sop_index)
        .bind(&doc.qa_reason)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO jobs (document_id, state, created_at, updated_at) VALUES ($1, 'pending', $2, $2)",
        )
        .bind(doc.id.to_string())
        .bind(&at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Records a document whose original and pages are stored already (split from a batch,
    /// or a correction): the original's key, the document, its job (which only indexes
    /// the pages) and its page rows, inside the caller's transaction.
    pub async fn insert_document_with_pages(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        original_key: &crate::store::keys::NewKey,
        doc: &NewDocument,
        pages: &[PageRow],
    ) -> sqlx::Result<()> {
        Db::insert_key(
            tx,
            &original_key.id.to_hex(),
            original_key.wrapped.kek_version,
            &original_key.wrapped.bytes,
        )
        .await?;
        self.insert_document_with_job(tx, doc).await?;
        for page in pages {
            Db::insert_page_tx(tx, doc.id, page).await?;
        }
        Ok(())
    }

    /// The live document holding this DICOM instance, if any.
    pub async fn document_by_sop_instance(&self, uid: &str) -> sqlx::Result<Option<Document>> {
        let index = self.phi()?.sop_index(uid);
        let row = sqlx::query(
            "SELECT * FROM documents WHERE sop_index = $1 AND status != 'deleted' LIMIT 1",
        )
        .bind(index)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| self.document_from_row(&row)).transpose()
    }

    /// Sends a document (still being processed) to the QA queue once it is processed.
    pub async fn set_qa_reason(&self, id: DocumentId, reason: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE documents SET qa_reason = $1 WHERE id = $2 AND qa_reason IS NULL")
            .bind(reason)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// What could not be done for a document that is usable all the same.
    pub async fn set_notice(&self, id: DocumentId, notice: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE documents SET notice = $1 WHERE id = $2")
            .bind(notice)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks `old` entered in error, superseded by `new` (inside the transaction that records
    /// `new`), and moves a DICOM instance's blind index to the new version. False when `old`
    /// is no longer an indexed document outside the QA queue and not corrected before.
    pub async fn supersede(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        old: DocumentId,
        new: DocumentId,
        by: UserId,
        reason: &str,
    ) -> sqlx::Result<bool> {
        let old_id = old.to_string();
        let sealed = self
            .phi()?
            .seal(Column::DocumentCorrectionReason, &old_id, reason);
        let sop_index: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT sop_index FROM documents WHERE id = $1")
                .bind(&old_id)
                .fetch_optional(&mut **tx)
                .await?
                .flatten();
        let done = sqlx::query(
            "UPDATE documents SET superseded_by = $1, entered_in_error_at = $2,
                entered_in_error_by = $3, correction_reason = $4, sop_index = NULL
             WHERE id = $5 AND status = 'indexed' AND qa_reason IS NULL
                AND entered_in_error_at IS NULL",
        )
        .bind(new.to_string())
        .bind(now())
        .bind(by.to_string())
        .bind(sealed)
        .bind(&old_id)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE documents SET supersedes = $1, sop_index = $2,
                notice = (SELECT notice FROM documents WHERE id = $1)
             WHERE id = $3",
        )
        .bind(&old_id)
        .bind(sop_index)
        .bind(new.to_string())
        .execute(&mut **tx)
        .await?;
        Ok(true)
    }

    /// Takes a document out of the QA queue, filed under `patient` with this type and date.
    /// False when it was not in the queue (any more).
    pub async fn resolve_qa(
        &self,
        id: DocumentId,
        patient: PatientId,
        document_type: &str,
        service_date: Option<NaiveDate>,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE documents SET qa_reason = NULL, patient_id = $1, document_type = $2,
                service_date = $3
             WHERE id = $4 AND status = 'indexed' AND qa_reason IS NOT NULL",
        )
        .bind(patient.to_string())
        .bind(document_type)
        .bind(service_date.map(|d| d.to_string()))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Documents waiting in the QA queue, oldest first.
    pub async fn qa_documents(&self) -> sqlx::Result<Vec<Document>> {
        let rows = sqlx::query(
            "SELECT * FROM documents WHERE status = 'indexed' AND qa_reason IS NOT NULL
             ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| self.document_from_row(row)).collect()
    }

    /// Every live document's id, status, document type and category as stored (before any
    /// normalisation), and whether it is entered in error.
    pub async fn stored_labels(
        &self,
    ) -> sqlx::Result<Vec<(DocumentId, String, String, String, bool)>> {
        let rows = sqlx::query(
            "SELECT id, status, document_type, category, entered_in_error_at FROM documents
             WHERE status != 'deleted'",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    parse_id(row.try_get::<&str, _>("id")?)?,
                    row.try_get("status")?,
                    row.try_get("document_type")?,
                    row.try_get("category")?,
                    row.try_get::<Option<String>, _>("entered_in_error_at")?
                        .is_some(),
                ))
            })
            .collect()
    }

    /// Rewrites a document's type and category (normalised), and flags it for QA with
    /// `qa_reason` when given and it has none.
    pub async fn set_labels(
        &self,
        id: DocumentId,
        document_type: &str,
        category: &str,
        qa_reason: Option<&str>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE documents SET document_type = $1, category = $2,
                qa_reason = coalesce(qa_reason, $3)
             WHERE id = $4",
        )
        .bind(document_type)
        .bind(category)
        .bind(qa_reason)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every document flagged for the QA queue, in whatever state (accepted, processing,
    /// waiting in the queue, failed): `records` alone sees them. (Versions entered in error
    /// are records-only too, but out of the index already.)
    pub async fn records_only_document_ids(&self) -> sqlx::Result<Vec<DocumentId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM documents WHERE qa_reason IS NOT NULL AND status != 'deleted'",
        )
        .fetch_all(&self.pool)
        .await?;
        ids.iter().map(|id| parse_id(id)).collect()
    }

    pub async fn document(&self, id: DocumentId) -> sqlx::Result<Option<Document>> {
        let row = sqlx::query("SELECT * FROM documents WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| self.document_from_row(&r)).transpose()
    }

    /// The patient's oldest live (not deleted) document with this original.
    pub async fn document_by_sha256(
        &self,
        patient: PatientId,
        sha256: &str,
    ) -> sqlx::Result<Option<Document>> {
        let row = sqlx::query(
            "SELECT * FROM documents WHERE patient_id = $1 AND sha256 = $2 AND status != 'deleted'
                AND entered_in_error_at IS NULL
             ORDER BY created_at LIMIT 1",
        )
        .bind(patient.to_string())
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| self.document_from_row(&r)).transpose()
    }

    pub async fn documents_of_patient(&self, patient: PatientId) -> sqlx::Result<Vec<Document>> {
        let rows = sqlx::query(
            "SELECT * FROM documents WHERE patient_id = $1 ORDER BY service_date DESC, created_at DESC",
        )
        .bind(patient.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.document_from_row(r)).collect()
    }

    /// Turns a document into its tombstone, in one transaction: its keyring rows (the keys
    /// of `key_ids`) and page rows are deleted, so from the commit on nothing of it can be
    /// decrypted; id, sha256, when, who and the sealed reason remain. Only a document in one
    /// of `destroyable` states and under no active legal hold is changed; returns false
    /// (and changes nothing) otherwise. A retention destruction writes its certificate in
    /// the same transaction.
    /// Tombstones documents in one transaction: each `(document, its key ids)` of
    /// `documents` (a document and the earlier versions it corrects are destroyed together),
    /// all or none. False when one of them is no longer in a `destroyable` state or a hold
    /// now covers it.
    /// `batch_originals`: the batch files (batch id, key id) the documents were cut from and
    /// that still hold their pages, destroyed in the same transaction.
    pub async fn tombstone_document(
        &self,
        documents: &[(DocumentId, Vec<String>)],
        batch_originals: &[(DocumentId, String)],
        destroyable: &[DocumentStatus],
        by: &str,
        reason: &str,
        certificate: Option<&NewCertificate>,
    ) -> sqlx::Result<bool> {
        let states: Vec<&str> = destroyable.iter().map(|s| s.as_str()).collect();
        let mut tx = self.pool.begin().await?;
        for (id, key_ids) in documents {
            if !self
                .tombstone_in(&mut tx, *id, &states, key_ids, by, reason)
                .await?
            {
                return Ok(false);
            }
        }
        for (batch, key_id) in batch_originals {
            Db::destroy_batch_original_in(&mut tx, *batch, key_id).await?;
        }
        if let Some(certificate) = certificate {
            Db::insert_certificate(&mut tx, certificate).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn tombstone_in(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        id: DocumentId,
        states: &[&str],
        key_ids: &[String],
        by: &str,
        reason: &str,
    ) -> sqlx::Result<bool> {
        let row_id = id.to_string();
        let sealed_reason = self
            .phi()?
            .seal(Column::DocumentDeletionReason, &row_id, reason);
        let current: Option<String> =
            sqlx::query_scalar("SELECT status FROM documents WHERE id = $1")
                .bind(&row_id)
                .fetch_optional(&mut **tx)
                .await?;
        if !current.is_some_and(|status| states.contains(&status.as_str())) {
            return Ok(false);
        }
        // A hold placed since the caller checked still stops the destruction.
        if Db::held_in(tx, &row_id).await? {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE documents SET status = 'deleted', deleted_at = $1, deleted_by = $2,
                deletion_reason = $3, encounter = NULL, failure_reason = NULL,
                correction_reason = NULL
             WHERE id = $4",
        )
        .bind(now())
        .bind(by)
        .bind(sealed_reason)
        .bind(&row_id)
        .execute(&mut **tx)
        .await?;
        for key_id in key_ids {
            sqlx::query("DELETE FROM keyring WHERE key_id = $1")
                .bind(key_id)
                .execute(&mut **tx)
                .await?;
        }
        sqlx::query("DELETE FROM pages WHERE document_id = $1")
            .bind(&row_id)
            .execute(&mut **tx)
            .await?;
        Ok(true)
    }

    /// Tombstones whose blobs and index entries may still exist (a stop mid-shred).
    pub async fn unpurged_tombstones(&self) -> sqlx::Result<Vec<DocumentId>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM documents WHERE status = 'deleted' AND purged_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|id| parse_id(id)).collect()
    }

    pub async fn mark_purged(&self, id: DocumentId) -> sqlx::Result<()> {
        sqlx::query("UPDATE documents SET purged_at = $1 WHERE id = $2")
            .bind(now())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Moves the WAL into the database file and empties it, so overwritten rows (with
    /// `secure_delete`, zeroed in the file) do not survive in old WAL frames.
    /// Truncates the WAL after keys were destroyed, so that their rows survive in no log
    /// frame. SQLite does not truncate while a reader still needs older frames (it reports
    /// the checkpoint busy, not an error): then it is retried in the background, every second
    /// for up to ten minutes (a backup's snapshot can hold it that long), and a failure is
    /// logged; the next destruction or start truncates it too.
    pub async fn truncate_wal_soon(&self) {
        match self.truncate_wal().await {
            Ok(true) => return,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(error = %error, "could not truncate the WAL after destroying keys");
                return;
            }
        }
        let db = self.clone();
        tokio::spawn(async move {
            for _ in 0..600 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match db.truncate_wal().await {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(error = %error, "could not truncate the WAL after destroying keys");
                        return;
                    }
                }
            }
            tracing::warn!(
                "the WAL could not be truncated after destroying keys: readers kept it busy for \
                 ten minutes"
            );
        });
    }

    /// Checkpoints the WAL into the database and truncates it to zero bytes. `false` when a
    /// reader kept the checkpoint from completing (`busy`, after waiting a moment for it):
    /// the WAL may still hold frames.
    pub async fn truncate_wal(&self) -> sqlx::Result<bool> {
        let mut conn = self.pool.acquire().await?;
        // A reader can hold the WAL for as long as it reads: wait briefly, not the pool's
        // ten seconds, and let the caller retry.
        sqlx::query("PRAGMA busy_timeout = 250")
            .execute(&mut *conn)
            .await?;
        let checkpoint = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *conn)
            .await;
        sqlx::query("PRAGMA busy_timeout = 10000")
            .execute(&mut *conn)
            .await?;
        let busy: i64 = checkpoint?.try_get(0)?;
        Ok(busy == 0)
    }

    pub async fn set_status(
        &self,
        id: DocumentId,
        status: DocumentStatus,
        failure_reason: Option<&str>,
    ) -> sqlx::Result<()> {
        sqlx::query("UPDATE documents SET status = $1, failure_reason = $2 WHERE id = $3")
            .bind(status.as_str())
            .bind(failure_reason)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn insert_page(&self, document: DocumentId, page: &PageRow) -> sqlx::Result<()> {
        insert_page_query(document, page)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// [`Db::insert_page`] inside the caller's transaction.
    pub async fn insert_page_tx(
        tx: &mut Transaction<'_, Sqlite>,
        document: DocumentId,
        page: &PageRow,
    ) -> sqlx::Result<()> {
        insert_page_query(document, page).execute(&mut **tx).await?;
        Ok(())
    }

    pub async fn pages(&self, document: DocumentId) -> sqlx::Result<Vec<PageRow>> {
        let rows = sqlx::query(
            "SELECT page, width, height, dpi, mean_confidence, word_count, blank, rotation,
                skew_degrees, ink, text_source FROM pages
             WHERE document_id = $1 ORDER BY page",
        )
        .bind(document.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(page_row_from).collect()
    }

    /// Jobs that were running when the process stopped go back to the queue.
    pub async fn requeue_running_jobs(&self) -> sqlx::Result<u64> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'pending', updated_at = $1 WHERE state = 'running'",
        )
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Puts one job back in the queue after a transient failure.
    pub async fn requeue_job(&self, job: &Job, error: &str) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE jobs SET state = 'pending', last_error = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(error)
        .bind(now())
        .bind(job.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Puts a failed document back in the queue (a person asked for it once its cause was
    /// dealt with): `accepted` again, its job pending with its attempts counted afresh.
    /// `false` when the document is not `failed`.
    pub async fn retry_failed(&self, document: DocumentId) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        let changed = sqlx::query(
            "UPDATE documents SET status = 'accepted', failure_reason = NULL
             WHERE id = $1 AND status = 'failed'",
        )
        .bind(document.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE jobs SET state = 'pending', attempts = 0, last_error = NULL, updated_at = $1
             WHERE document_id = $2",
        )
        .bind(&at)
        .bind(document.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Claims the oldest pending job (the single UPDATE is atomic in SQLite). Its attempts
    /// are counted here, at the claim: a job whose processing kills the process is claimed
    /// again after every restart, and the count is what stops it.
    pub async fn claim_job(&self) -> sqlx::Result<Option<Job>> {
        let row = sqlx::query(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, updated_at = $1
             WHERE id = (SELECT id FROM jobs WHERE state = 'pending' ORDER BY id LIMIT 1)
             RETURNING id, document_id, attempts",
        )
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Job {
                id: r.try_get("id")?,
                document_id: parse_id(r.try_get::<&str, _>("document_id")?)?,
                attempts: r.try_get("attempts")?,
            })
        })
        .transpose()
    }

    pub async fn finish_job(&self, job: &Job, document: DocumentId) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        sqlx::query("UPDATE jobs SET state = 'done', updated_at = $1 WHERE id = $2")
            .bind(&at)
            .bind(job.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE documents SET status = 'indexed', failure_reason = NULL, indexed_at = $1 WHERE id = $2",
        )
        .bind(&at)
        .bind(document.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    pub async fn fail_job(
        &self,
        job: &Job,
        document: DocumentId,
        reason: &str,
    ) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        sqlx::query(
            "UPDATE jobs SET state = 'failed', last_error = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(reason)
        .bind(&at)
        .bind(job.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE documents SET status = 'failed', failure_reason = $1 WHERE id = $2")
            .bind(reason)
            .bind(document.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    // ---- users and tokens ----

    pub async fn create_user(&self, name: &str, role: Role) -> sqlx::Result<UserId> {
        let id = UserId::new_random();
        let id_text = id.to_string();
        let mac = self.row_tag(
            row_mac::USERS.0,
            &[Some(&id_text), Some(name), Some(role.as_str()), Some("0")],
        )?;
        sqlx::query(
            "INSERT INTO users (id, name, role, disabled, created_at, mac)
             VALUES ($1, $2, $3, 0, $4, $5)",
        )
        .bind(&id_text)
        .bind(name)
        .bind(role.as_str())
        .bind(now())
        .bind(mac)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// A user by name: (id, role, disabled). A row that fails its integrity check is no user.
    pub async fn user_by_name(&self, name: &str) -> sqlx::Result<Option<(UserId, Role, bool)>> {
        let row = sqlx::query("SELECT id, name, role, disabled, mac FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let row = match row {
            Some(row) if self.row_verifies(row_mac::USERS, &row)? => Some(row),
            _ => None,
        };
        row.map(|r| {
            let role: String = r.try_get("role")?;
            Ok((
                parse_id(r.try_get::<&str, _>("id")?)?,
                Role::from_str(&role).map_err(decode_err)?,
                r.try_get::<i64, _>("disabled")? != 0,
            ))
        })
        .transpose()
    }

    pub async fn user_count(&self) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
    }

    pub async fn set_user_disabled(&self, name: &str, disabled: bool) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query("SELECT id, name, role, disabled, mac FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        // A row that fails its integrity check is not made genuine by a new MAC.
        let Some(row) = row.filter(|r| self.row_verifies(row_mac::USERS, r).unwrap_or(false))
        else {
            return Ok(false);
        };
        let (id, role): (String, String) = (row.try_get("id")?, row.try_get("role")?);
        let flag = if disabled { "1" } else { "0" };
        let mac = self.row_tag(
            row_mac::USERS.0,
            &[Some(&id), Some(name), Some(&role), Some(flag)],
        )?;
        sqlx::query("UPDATE users SET disabled = $1, mac = $2 WHERE id = $3")
            .bind(disabled as i64)
            .bind(mac)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn insert_token(
        &self,
        token_id: &str,
        user: UserId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        let user = user.to_string();
        let expires_at = expires_at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mac = self.row_tag(
            row_mac::TOKENS.0,
            &[
                Some(token_id),
                Some(&user),
                Some(token_hash),
                Some(&expires_at),
                None,
            ],
        )?;
        sqlx::query(
            "INSERT INTO tokens (id, user_id, token_hash, created_at, expires_at, mac)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_id)
        .bind(&user)
        .bind(token_hash)
        .bind(now())
        .bind(&expires_at)
        .bind(mac)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn token_owner(&self, token_hash: &str) -> sqlx::Result<Option<TokenOwner>> {
        let token = sqlx::query(
            "SELECT id, user_id, token_hash, expires_at, revoked_at, mac FROM tokens
             WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(token) = token.filter(|t| self.row_verifies(row_mac::TOKENS, t).unwrap_or(false))
        else {
            return Ok(None);
        };
        let user_id: String = token.try_get("user_id")?;
        let user = sqlx::query("SELECT id, name, role, disabled, mac FROM users WHERE id = $1")
            .bind(&user_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(user) = user.filter(|u| self.row_verifies(row_mac::USERS, u).unwrap_or(false))
        else {
            return Ok(None);
        };
        Some((token, user))
            .map(|(t, r)| {
                let role: String = r.try_get("role")?;
                Ok(TokenOwner {
                    user_id: parse_id(r.try_get::<&str, _>("id")?)?,
                    name: r.try_get("name")?,
                    role: Role::from_str(&role).map_err(decode_err)?,
                    disabled: r.try_get::<i64, _>("disabled")? != 0,
                    expires_at: t.try_get("expires_at")?,
                    revoked: t.try_get::<Option<String>, _>("revoked_at")?.is_some(),
                })
            })
            .transpose()
    }

    /// Revokes one token by id, or every token of a user by name. Returns how many.
    pub async fn revoke_tokens(
        &self,
        token_id: Option<&str>,
        user: Option<&str>,
    ) -> sqlx::Result<u64> {
        let at = now();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let rows = match (token_id, user) {
            (Some(id), _) => {
                sqlx::query(
                    "SELECT id, user_id, token_hash, expires_at, revoked_at, mac FROM tokens
                     WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id)
                .fetch_all(&mut *tx)
                .await?
            }
            (None, Some(name)) => {
                sqlx::query(
                    "SELECT id, user_id, token_hash, expires_at, revoked_at, mac FROM tokens
                     WHERE revoked_at IS NULL AND user_id = (SELECT id FROM users WHERE name = $1)",
                )
                .bind(name)
                .fetch_all(&mut *tx)
                .await?
            }
            (None, None) => return Ok(0),
        };
        // Rows that fail their integrity check grant nothing already, and are not made genuine
        // by a new MAC.
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|r| self.row_verifies(row_mac::TOKENS, r).unwrap_or(false))
            .collect();
        for row in &rows {
            let fields: [String; 4] = [
                row.try_get("id")?,
                row.try_get("user_id")?,
                row.try_get("token_hash")?,
                row.try_get("expires_at")?,
            ];
            let mac = self.row_tag(
                row_mac::TOKENS.0,
                &[
                    Some(&fields[0]),
                    Some(&fields[1]),
                    Some(&fields[2]),
                    Some(&fields[3]),
                    Some(&at),
                ],
            )?;
            sqlx::query("UPDATE tokens SET revoked_at = $1, mac = $2 WHERE id = $3")
                .bind(&at)
                .bind(mac)
                .bind(&fields[0])
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }
}

// ---- operator tools: verify, backup, restore ----

/// A document as the operator tools see it: status as stored (including `deleted`, a
/// shredded document's tombstone, which this branch's [`DocumentStatus`] does not know).
#[derive(Debug, Clone)]
pub struct DocumentArtifacts {
    pub id: DocumentId,
    pub status: String,
    pub sha256: String,
}

impl DocumentArtifacts {
    /// A shredded document keeps a tombstone row and nothing else: no blobs, pages rows,
    /// keyring rows or index entries are expected of it.
    pub fn is_deleted(&self) -> bool {
        self.status == "deleted"
    }
}

/// One keyring row: the data key `key_id` wrapped under KEK `kek_version`.
#[derive(Clone)]
pub struct KeyringRow {
    pub key_id: String,
    pub kek_version: u32,
    pub wrapped: Vec<u8>,
}

/// Every row that names an artifact, read in one transaction: a consistent snapshot.
#[derive(Clone, Default)]
pub struct Inventory {
    pub documents: Vec<DocumentArtifacts>,
    /// (document, page) of every `pages` row.
    pub pages: Vec<(DocumentId, u32)>,
    pub keyring: Vec<KeyringRow>,
    /// (purpose, key id) of every service key.
    pub service_keys: Vec<(String, String)>,
    /// (document, state) of every job not done.
    pub open_jobs: Vec<(DocumentId, String)>,
    /// (batch, sha256) of every batch whose file is still held.
    pub batch_originals: Vec<(DocumentId, String)>,
    /// (batch, page) of every page still held under its batch.
    pub batch_pages: Vec<(DocumentId, u32)>,
    /// Release attachments and productions, with the SHA-256 of their plaintext.
    pub release_objects: Vec<(ObjectRef, String)>,
}

impl Db {
    /// Opens an existing database read-only: no migrations, no journal-mode change, no
    /// writes, so it is safe beside a running server (WAL readers never block its writer).
    pub async fn open_read_only(path: &Path) -> anyhow::Result<Db> {
        if !path.is_file() {
            anyhow::bail!("no database at {}", path.display());
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        Ok(Db {
            pool,
            phi: Arc::new(OnceLock::new()),
            audit: Arc::new(AuditLogState::default()),
            row_mac: Arc::new(OnceLock::new()),
        })
    }

    /// Opens a database file nothing writes to (a backup's snapshot) without locking it or
    /// creating `-wal`/`-shm` files beside it.
    pub async fn open_immutable(path: &Path) -> anyhow::Result<Db> {
        if !path.is_file() {
            anyhow::bail!("no database at {}", path.display());
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .immutable(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        Ok(Db {
            pool,
            phi: Arc::new(OnceLock::new()),
            audit: Arc::new(AuditLogState::default()),
            row_mac: Arc::new(OnceLock::new()),
        })
    }

    /// Reads the [`Inventory`] inside one read transaction.
    pub async fn inventory(&self) -> sqlx::Result<Inventory> {
        let mut tx = self.pool.begin().await?;
        // A version entered in error is kept but out of the index: not `indexed` here.
        let documents = sqlx::query(
            "SELECT id, sha256, CASE WHEN entered_in_error_at IS NULL THEN status
                ELSE 'entered-in-error' END AS status
             FROM documents ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            Ok(DocumentArtifacts {
                id: parse_id(r.try_get::<&str, _>("id")?)?,
                status: r.try_get("status")?,
                sha256: r.try_get("sha256")?,
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
        let pages = sqlx::query("SELECT document_id, page FROM pages ORDER BY document_id, page")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    parse_id(r.try_get::<&str, _>("document_id")?)?,
                    r.try_get::<i64, _>("page")? as u32,
                ))
            })
            .collect::<sqlx::Result<Vec<_>>>()?;
        let keyring = sqlx::query("SELECT key_id, kek_version, wrapped FROM keyring")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| {
                Ok(KeyringRow {
                    key_id: r.try_get("key_id")?,
                    kek_version: r.try_get::<i64, _>("kek_version")? as u32,
                    wrapped: r.try_get("wrapped")?,
                })
            })
            .collect::<sqlx::Result<Vec<_>>>()?;
        let service_keys = sqlx::query("SELECT purpose, key_id FROM service_keys")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("purpose")?, r.try_get("key_id")?)))
            .collect::<sqlx::Result<Vec<_>>>()?;
        let open_jobs = sqlx::query("SELECT document_id, state FROM jobs WHERE state <> 'done'")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    parse_id(r.try_get::<&str, _>("document_id")?)?,
                    r.try_get("state")?,
                ))
            })
            .collect::<sqlx::Result<Vec<_>>>()?;
        let batch_originals = sqlx::query(
            "SELECT id, sha256 FROM batches WHERE original_destroyed_at IS NULL ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| Ok((parse_id(r.try_get::<&str, _>("id")?)?, r.try_get("sha256")?)))
        .collect::<sqlx::Result<Vec<_>>>()?;
        let batch_pages = sqlx::query("SELECT batch_id, page FROM batch_pages")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    parse_id(r.try_get::<&str, _>("batch_id")?)?,
                    r.try_get::<i64, _>("page")? as u32,
                ))
            })
            .collect::<sqlx::Result<Vec<_>>>()?;
        let mut release_objects = Vec::new();
        for (table, object) in [
            (
                "release_attachments",
                ObjectRef::Attachment as fn(DocumentId) -> ObjectRef,
            ),
            ("productions", ObjectRef::Production),
        ] {
            let rows = sqlx::query(&format!("SELECT id, sha256 FROM {table} ORDER BY id"))
                .fetch_all(&mut *tx)
                .await?;
            for r in &rows {
                release_objects.push((
                    object(parse_id(r.try_get::<&str, _>("id")?)?),
                    r.try_get("sha256")?,
                ));
            }
        }
        tx.commit().await?;
        Ok(Inventory {
            documents,
            pages,
            keyring,
            service_keys,
            open_jobs,
            batch_originals,
            batch_pages,
            release_objects,
        })
    }

    /// Whether a blob of `id` (an original, or page `page`) is one a batch holds or is filing
    /// right now: the batch's file until it is destroyed, its pages until filed, and the
    /// copies made for a page range being filed before its document row exists.
    pub async fn batch_holds(&self, id: DocumentId, page: Option<u32>) -> sqlx::Result<bool> {
        let filing: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM batch_segments WHERE document_id = $1 AND status IN ('pending','qa')",
        )
        .bind(id.to_string())
        .fetch_one(&self.pool)
        .await?;
        if filing > 0 {
            return Ok(true);
        }
        let held: i64 =
            match page {
                None => sqlx::query_scalar(
                    "SELECT count(*) FROM batches WHERE id = $1 AND original_destroyed_at IS NULL",
                )
                .bind(id.to_string())
                .fetch_one(&self.pool)
                .await?,
                Some(page) => {
                    sqlx::query_scalar(
                        "SELECT count(*) FROM batch_pages WHERE batch_id = $1 AND page = $2
                     UNION ALL SELECT count(*) FROM batches
                        WHERE id = $1 AND status IN ('accepted','processing')
                     ORDER BY 1 DESC LIMIT 1",
                    )
                    .bind(id.to_string())
                    .bind(page as i64)
                    .fetch_one(&self.pool)
                    .await?
                }
            };
        Ok(held > 0)
    }

    /// The stored status of a document (`deleted` included), `None` if there is no row.
    pub async fn document_status(&self, id: DocumentId) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar(
            "SELECT CASE WHEN entered_in_error_at IS NULL THEN status ELSE 'entered-in-error' END
             FROM documents WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn page_exists(&self, id: DocumentId, page: u32) -> sqlx::Result<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM pages WHERE document_id = $1 AND page = $2")
                .bind(id.to_string())
                .bind(page as i64)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    /// Writes a consistent copy of the whole database to `dest` (which must not exist), while
    /// the server goes on writing: SQLite's `VACUUM INTO` reads one snapshot.
    pub async fn vacuum_into(&self, dest: &Path) -> anyhow::Result<()> {
        let dest = dest
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("the backup path is not valid UTF-8"))?;
        sqlx::query("VACUUM INTO $1")
            .bind(dest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every document with status `indexed` and its metadata, for re-indexing.
    pub async fn indexed_documents(&self) -> sqlx::Result<Vec<Document>> {
        let rows = sqlx::query(
            "SELECT * FROM documents WHERE status = 'indexed' AND entered_in_error_at IS NULL
             ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.document_from_row(r)).collect()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

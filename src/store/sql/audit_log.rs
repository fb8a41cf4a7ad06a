//! [`AuditLogStore`] in SQL, for every backend.

use super::*;
pub(super) use crate::store::audit_log::*;

use sqlx::{QueryBuilder, Row};
use tokio::sync::watch;

use crate::store::audit_record::{hash_from_slice, AuditCipher, AuditRecord, GENESIS_HASH};

fn record_of(entry: &AuditEntry, seq: i64, at: String) -> AuditRecord {
    AuditRecord {
        seq,
        at,
        user_id: entry.user_id.map(|u| u.to_string()),
        role: entry.role.map(|r| r.as_str().to_string()),
        action: entry.action.to_string(),
        patient_id: entry.patient_id.map(|p| p.to_string()),
        document_id: entry.document_id.map(|d| d.to_string()),
        outcome: entry.outcome.as_str().to_string(),
        client_addr: entry.client_addr.clone(),
        request_id: entry.request_id.clone(),
        purpose_of_use: entry.purpose_of_use.clone(),
        break_glass: entry.break_glass,
        detail: entry.detail.as_ref().map(|d| d.to_string()),
    }
}

fn stored_row(r: &DbRow) -> super::StoreResult<StoredAuditRow> {
    Ok(StoredAuditRow {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        action: r.try_get("action")?,
        outcome: r.try_get("outcome")?,
        break_glass: r.try_get::<i64, _>("break_glass")? != 0,
        user_index: r.try_get("user_index")?,
        patient_index: r.try_get("patient_index")?,
        sealed: r.try_get("sealed")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

/// Inserts `record` after `prev_hash` (inside the writer's transaction); returns its hash.
async fn insert_record(
    tx: &mut Tx,
    cipher: &AuditCipher,
    record: &AuditRecord,
    prev_hash: &[u8; 32],
) -> super::StoreResult<[u8; 32]> {
    let hash = record.hash(prev_hash);
    let plain = cipher.plain_columns(record);
    sqlx::query(
        "INSERT INTO audit (seq, at, action, outcome, break_glass, user_index, patient_index,
            sealed, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(record.seq)
    .bind(&plain.at)
    .bind(&plain.action)
    .bind(&plain.outcome)
    .bind(i64::from(plain.break_glass))
    .bind(&plain.user_index)
    .bind(&plain.patient_index)
    .bind(cipher.seal(record))
    .bind(&prev_hash[..])
    .bind(&hash[..])
    .execute(tx.conn())
    .await?;
    for index in &plain.other_patient_indexes {
        sqlx::query("INSERT INTO audit_patients (patient_index, seq) VALUES ($1, $2)")
            .bind(index)
            .bind(record.seq)
            .execute(tx.conn())
            .await?;
    }
    Ok(hash)
}

/// The newest entry's (seq, hash), read inside the writer's transaction.
async fn chain_head(tx: &mut Tx) -> super::StoreResult<(i64, [u8; 32])> {
    let row = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        .fetch_optional(tx.conn())
        .await?;
    match row {
        None => Ok((0, GENESIS_HASH)),
        Some(row) => {
            let hash: Vec<u8> = row.try_get("hash")?;
            let hash = hash_from_slice(&hash)
                .ok_or_else(|| decode_err("the newest audit entry's hash is malformed".into()))?;
            Ok((row.try_get("seq")?, hash))
        }
    }
}

impl AuditLogStore for Backend {
    fn set_audit_cipher(&self, cipher: AuditCipher) {
        if self.audit.cipher.set(cipher).is_err() {
            tracing::warn!("the audit keys were set twice; keeping the first");
        }
    }

    fn audit_head_watch(&self) -> watch::Receiver<i64> {
        self.audit.head.subscribe()
    }

    async fn append_audit(&self, entry: &AuditEntry) -> super::StoreResult<i64> {
        let cipher = self.audit_cipher()?;
        let started = std::time::Instant::now();
        let _writer = self.audit.writer.lock().await;
        // IMMEDIATE: the write lock is taken before the head is read, so nothing can
        // append between the read and the insert (a deferred transaction would fail on
        // commit whenever any other connection had written meanwhile).
        let mut tx = self.begin_immediate().await?;
        let (last, prev_hash) = chain_head(&mut tx).await?;
        let record = record_of(entry, last + 1, now());
        insert_record(&mut tx, cipher, &record, &prev_hash).await?;
        tx.commit().await?;
        self.audit.head.send_replace(record.seq);
        self.audit
            .append_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(record.seq)
    }

    async fn audit_head(&self) -> super::StoreResult<Option<(i64, Vec<u8>)>> {
        let row = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("seq")?, r.try_get("hash")?)))
            .transpose()
    }

    async fn audit_rows(&self, after_seq: i64) -> super::StoreResult<Vec<AuditRow>> {
        let rows = sqlx::query("SELECT seq, sealed, hash FROM audit WHERE seq > $1 ORDER BY seq")
            .bind(after_seq)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| self.audit_row(r)).collect()
    }

    async fn audit_query(&self, filter: &AuditFilter) -> super::StoreResult<Vec<AuditRow>> {
        let cipher = self.audit_cipher()?;
        let mut query: QueryBuilder<Driver> =
            QueryBuilder::new("SELECT seq, sealed, hash FROM audit WHERE seq > ");
        query.push_bind(filter.after_seq);
        if let Some(user) = filter.user_id {
            query
                .push(" AND user_index = ")
                .push_bind(cipher.user_index(&user.to_string()));
        }
        if let Some(patient) = filter.patient_id {
            let index = cipher.patient_index(&patient.to_string());
            query
                .push(" AND (patient_index = ")
                .push_bind(index.clone())
                .push(" OR seq IN (SELECT seq FROM audit_patients WHERE patient_index = ")
                .push_bind(index)
                .push("))");
        }
        if let Some(from) = &filter.from {
            query.push(" AND at >= ").push_bind(from.clone());
        }
        if let Some(to) = &filter.to {
            query.push(" AND at < ").push_bind(to.clone());
        }
        if let Some(action) = &filter.action {
            query.push(" AND action = ").push_bind(action.clone());
        }
        if filter.break_glass_only {
            query.push(" AND break_glass = 1");
        }
        query
            .push(" ORDER BY seq LIMIT ")
            .push_bind(filter.limit.max(0));
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(|r| self.audit_row(r)).collect()
    }

    async fn stored_audit_rows(
        &self,
        after_seq: i64,
        up_to: i64,
        limit: i64,
    ) -> super::StoreResult<Vec<StoredAuditRow>> {
        let rows = sqlx::query(
            "SELECT seq, at, action, outcome, break_glass, user_index, patient_index, sealed,
                prev_hash, hash
             FROM audit WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
        )
        .bind(after_seq)
        .bind(up_to)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_row).collect()
    }

    async fn audit_patient_refs(&self, up_to: i64) -> super::StoreResult<Vec<(i64, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT seq, patient_index FROM audit_patients WHERE seq <= $1 ORDER BY seq, patient_index",
        )
        .bind(up_to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("seq")?, r.try_get("patient_index")?)))
            .collect()
    }

    async fn chain_legacy_audit(&self) -> anyhow::Result<u64> {
        let legacy: Option<String> = sqlx::query_scalar(TABLE_NAMED)
            .bind("audit_legacy")
            .fetch_optional(&self.pool)
            .await?;
        if legacy.is_none() {
            return Ok(0);
        }
        let cipher = self.audit_cipher()?;
        let _writer = self.audit.writer.lock().await;
        let mut tx = self.begin_immediate().await?;
        let rows = sqlx::query(
            "SELECT at, user_id, role, action, patient_id, document_id, outcome, client_addr,
                request_id, detail
             FROM audit_legacy ORDER BY seq",
        )
        .fetch_all(tx.conn())
        .await?;
        let (mut last, mut prev_hash) = chain_head(&mut tx).await?;
        for row in &rows {
            let record = AuditRecord {
                seq: last + 1,
                at: row.try_get("at")?,
                user_id: row.try_get("user_id")?,
                role: row.try_get("role")?,
                action: row.try_get("action")?,
                patient_id: row.try_get("patient_id")?,
                document_id: row.try_get("document_id")?,
                outcome: row.try_get("outcome")?,
                client_addr: row.try_get("client_addr")?,
                request_id: row.try_get("request_id")?,
                purpose_of_use: None,
                break_glass: false,
                detail: row.try_get("detail")?,
            };
            prev_hash = insert_record(&mut tx, cipher, &record, &prev_hash).await?;
            last = record.seq;
        }
        sqlx::query("DROP TABLE audit_legacy")
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        self.audit.head.send_replace(last);
        if !rows.is_empty() {
            self.scrub_free_space().await?;
        }
        Ok(rows.len() as u64)
    }
}

impl Backend {
    pub(crate) fn audit_cipher(&self) -> super::StoreResult<&AuditCipher> {
        self.audit
            .cipher
            .get()
            .ok_or_else(|| StoreError::KeysNotLoaded("the audit keys"))
    }

    fn audit_row(&self, r: &DbRow) -> super::StoreResult<AuditRow> {
        let seq: i64 = r.try_get("seq")?;
        let sealed: Vec<u8> = r.try_get("sealed")?;
        let hash: Vec<u8> = r.try_get("hash")?;
        let record = self
            .audit_cipher()?
            .open(seq, &sealed)
            .map_err(StoreError::unreadable)?;
        Ok(AuditRow {
            record,
            hash: hex::encode(hash),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{second_handle, store};
    use super::*;

    /// Two nodes append at once: one chain, no seq taken twice, each entry linked to the
    /// one before.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_from_two_nodes_form_one_chain() {
        let store = store().await;
        let other = second_handle(&store).await;
        let append = |db: Backend, node: &'static str| async move {
            for i in 0..25 {
                let entry = AuditEntry::administration(node, serde_json::json!({ "i": i }));
                db.append_audit(&entry).await.expect("append");
            }
        };
        let (a, b) = tokio::join!(
            tokio::spawn(append(store.db.clone(), "node-a")),
            tokio::spawn(append(other, "node-b"))
        );
        a.unwrap();
        b.unwrap();
        let rows = store.stored_audit_rows(0, i64::MAX, 1000).await.unwrap();
        assert_eq!(
            rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (1..=50).collect::<Vec<_>>()
        );
        let mut previous = GENESIS_HASH.to_vec();
        for row in &rows {
            assert_eq!(
                row.prev_hash, previous,
                "entry {} links to the one before",
                row.seq
            );
            previous = row.hash.clone();
        }
        let opened = store.audit_rows(0).await.unwrap();
        for node in ["node-a", "node-b"] {
            assert_eq!(opened.iter().filter(|r| r.action == node).count(), 25);
        }
    }
}

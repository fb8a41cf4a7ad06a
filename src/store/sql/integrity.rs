//! [`IntegrityStore`] in SQL, for every backend.

use super::*;
pub(super) use crate::store::integrity::*;

use sqlx::Row;

use crate::store::row_mac::{RowMac, TABLES};

/// The audit action of the one pass that MACs rows written before MACs existed.
const UPGRADE_ACTION: &str = "row-integrity-upgrade";

/// The values of `columns` in `row`, as text (NULL as `None`; integers written out).
pub(crate) fn row_fields(row: &DbRow, columns: &[&str]) -> super::StoreResult<Vec<Option<String>>> {
    columns
        .iter()
        .map(|column| {
            if let Ok(value) = row.try_get::<Option<String>, _>(*column) {
                return Ok(value);
            }
            Ok(row
                .try_get::<Option<i64>, _>(*column)?
                .map(|v| v.to_string()))
        })
        .collect()
}

pub(crate) fn as_refs(fields: &[Option<String>]) -> Vec<Option<&str>> {
    fields.iter().map(|f| f.as_deref()).collect()
}

impl IntegrityStore for Backend {
    fn set_row_mac(&self, row_mac: RowMac) {
        if self.row_mac.set(row_mac).is_err() {
            tracing::warn!("the row MAC key was set twice; keeping the first");
        }
    }

    async fn row_integrity_upgraded(&self) -> super::StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM audit WHERE action = $1 LIMIT 1")
                .bind(UPGRADE_ACTION)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    async fn mac_legacy_rows(&self) -> anyhow::Result<u64> {
        if self.row_integrity_upgraded().await? {
            return Ok(0);
        }
        let mut tx = self.begin_immediate().await?;
        let mut count = 0u64;
        for (table, columns) in TABLES {
            let rows = sqlx::query(&format!(
                "SELECT rowid AS row_number, * FROM {table} WHERE mac IS NULL"
            ))
            .fetch_all(tx.conn())
            .await?;
            for row in &rows {
                let fields = row_fields(row, columns)?;
                let row_number: i64 = row.try_get("row_number")?;
                sqlx::query(&format!("UPDATE {table} SET mac = $1 WHERE rowid = $2"))
                    .bind(self.row_tag(table, &as_refs(&fields))?)
                    .bind(row_number)
                    .execute(tx.conn())
                    .await?;
                count += 1;
            }
        }
        tx.commit().await?;
        self.append_audit(&super::audit_log::AuditEntry::administration(
            UPGRADE_ACTION,
            serde_json::json!({ "rows": count, "via": "start" }),
        ))
        .await?;
        Ok(count)
    }
}

impl Backend {
    pub(crate) fn row_mac(&self) -> super::StoreResult<&RowMac> {
        self.row_mac
            .get()
            .ok_or_else(|| StoreError::KeysNotLoaded("the row MAC key"))
    }

    /// Whether `row` (holding `table`'s MAC columns and `mac`) verifies; a row that does not
    /// is logged (by table and kind, never by content).
    pub(crate) fn row_verifies(
        &self,
        (table, columns): (&str, &[&str]),
        row: &DbRow,
    ) -> super::StoreResult<bool> {
        let fields = row_fields(row, columns)?;
        let tag: Option<Vec<u8>> = row.try_get("mac")?;
        let ok = self
            .row_mac()?
            .verify(table, &as_refs(&fields), tag.as_deref());
        if !ok {
            tracing::error!(
                table,
                "an access row failed its integrity check (written outside the service?): \
                 it grants nothing"
            );
        }
        Ok(ok)
    }

    /// The MAC of a row about to be written, from its values in MAC column order.
    pub(crate) fn row_tag(
        &self,
        table: &str,
        fields: &[Option<&str>],
    ) -> super::StoreResult<Vec<u8>> {
        Ok(self.row_mac()?.tag(table, fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chartvault_storage::DataKey;

    #[test]
    fn a_row_verifies_only_with_its_own_values_table_and_key() {
        let mac = RowMac::from_key(DataKey::generate());
        let fields = [Some("u1"), Some("alice"), Some("records"), Some("0")];
        let tag = mac.tag("users", &fields);
        assert!(mac.verify("users", &fields, Some(&tag)));
        let elevated = [Some("u1"), Some("alice"), Some("admin"), Some("0")];
        assert!(!mac.verify("users", &elevated, Some(&tag)));
        assert!(!mac.verify("tokens", &fields, Some(&tag)));
        assert!(!mac.verify("users", &fields, None));
        let other = RowMac::from_key(DataKey::generate());
        assert!(!other.verify("users", &fields, Some(&tag)));
        // NULL is not the empty string, and fields do not run into each other.
        assert_ne!(
            mac.tag("t", &[Some("ab"), Some("c")]),
            mac.tag("t", &[Some("a"), Some("bc")])
        );
        assert_ne!(mac.tag("t", &[None]), mac.tag("t", &[Some("")]));
    }
}

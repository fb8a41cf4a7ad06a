//! Integrity of the rows that grant access.
//!
//! Users, tokens, care relationships, category grants and break-the-glass accesses each carry
//! a MAC: HMAC-SHA256 under the service's `row-mac` key (a keyring row wrapped under the KEK
//! like every key, so never on disk in the clear) over the columns that decide what the row
//! grants, with the table's name. A row written or changed by someone who can write the
//! database file but holds no KEK does not verify and grants nothing: its token is unknown
//! (401), its care relationship, grant or access is ignored, and the mismatch is logged.
//!
//! Promises:
//! - every write of such a row computes its MAC in the same statement or transaction;
//! - every read that grants access verifies it, in constant time;
//! - rows written before MACs existed are given theirs once, at the first start of a version
//!   that has them ([`Db::mac_legacy_rows`]), which the audit log records; from then on a row
//!   without a MAC grants nothing, and the pass never runs again: whether it ran is read from
//!   the audit log, whose entries cannot be removed without breaking its signed chain (a
//!   marker anywhere else in the database could be deleted by whoever can write the file);
//! - the key is only ever created on an archive whose audit log has no such entry: an
//!   archive that lost its key after the pass (a `service_keys` row deleted) refuses to
//!   start instead of MACing whatever rows it then holds under a new one.
//!
//! What a MAC does not stop: putting back an older, genuine version of a row (a revoked
//! token's row as it was before its revocation). Rolling a database file back is the same
//! attack at scale; the signed audit checkpoints, shipped off the machine, are what reveal it.

use sqlx::Row;

use super::row_mac::{RowMac, TABLES};
use super::Db;

/// The audit action of the one pass that MACs rows written before MACs existed.
const UPGRADE_ACTION: &str = "row-integrity-upgrade";

/// The values of `columns` in `row`, as text (NULL as `None`; integers written out).
pub(crate) fn row_fields(
    row: &sqlx::sqlite::SqliteRow,
    columns: &[&str],
) -> super::StoreResult<Vec<Option<String>>> {
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

impl Db {
    /// Gives the database the key of its access rows' MACs (once, at startup).
    pub fn set_row_mac(&self, row_mac: RowMac) {
        if self.row_mac.set(row_mac).is_err() {
            tracing::warn!("the row MAC key was set twice; keeping the first");
        }
    }

    pub(crate) fn row_mac(&self) -> super::StoreResult<&RowMac> {
        self.row_mac
            .get()
            .ok_or_else(|| sqlx::Error::Configuration("the row MAC key is not loaded".into()))
    }

    /// Whether `row` (holding `table`'s MAC columns and `mac`) verifies; a row that does not
    /// is logged (by table and kind, never by content).
    pub(crate) fn row_verifies(
        &self,
        (table, columns): (&str, &[&str]),
        row: &sqlx::sqlite::SqliteRow,
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

    /// Whether the audit log records the integrity upgrade (see [`Db::mac_legacy_rows`]).
    pub async fn row_integrity_upgraded(&self) -> super::StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM audit WHERE action = $1 LIMIT 1")
                .bind(UPGRADE_ACTION)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    /// Gives every access row written before MACs existed its MAC, once: the first start of a
    /// version with MACs does it, and the audit log records that it did (the same start of a
    /// new archive records it with no rows); after that a row without a MAC is one written
    /// outside the service and grants nothing. Returns the rows given a MAC.
    pub async fn mac_legacy_rows(&self) -> anyhow::Result<u64> {
        if self.row_integrity_upgraded().await? {
            return Ok(0);
        }
        let mut tx = self.begin_immediate().await?;
        let mut count = 0u64;
        for (table, columns) in TABLES {
            let rows = sqlx::query(&format!(
                "SELECT rowid AS row_number, * FROM {table} WHERE mac IS NULL"
            ))
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                let fields = row_fields(row, columns)?;
                let row_number: i64 = row.try_get("row_number")?;
                sqlx::query(&format!("UPDATE {table} SET mac = $1 WHERE rowid = $2"))
                    .bind(self.row_tag(table, &as_refs(&fields))?)
                    .bind(row_number)
                    .execute(&mut *tx)
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

//! Copies an embedded archive's metadata (SQLite) into PostgreSQL, table by table, for
//! `chartvault migrate-store`; and a PostgreSQL archive's metadata into a new SQLite file at
//! one snapshot, for `chartvault backup` ([`snapshot_postgres_into_sqlite`]). Sealed columns and blind indexes are copied as the bytes they
//! are (both backends keep the same bytes); each keyring row goes through `rewrap`, so the
//! target's KEK provider (a KMS, say) can wrap the data keys on the way.
//!
//! Resumable: rows are inserted with `ON CONFLICT DO NOTHING`, so a copy stopped midway is
//! finished by running it again, and a second run copies nothing. Each table's columns are
//! read from the target's schema and converted to its types (SQLite's integers become
//! PostgreSQL's booleans where the schema says so).

use sqlx::{QueryBuilder, Row};

use super::postgres::PgStore;
use super::sqlite::SqliteStore;

/// Every table of the archive, each after the tables it references.
pub const TABLES: &[&str] = &[
    "keyring",
    "users",
    "tokens",
    "service_keys",
    "patients",
    "documents",
    "care_relationships",
    "category_grants",
    "break_glass",
    "audit",
    "audit_patients",
    "disclosures",
    "batches",
    "batch_pages",
    "batch_segments",
    "holds",
    "hold_documents",
    "retention_runs",
    "destruction_certificates",
    "releases",
    "release_patients",
    "release_attachments",
    "release_exclusions",
    "release_redactions",
    "bates_counters",
    "productions",
    "hl7_inbound",
    "hl7_outbox",
    "encounters",
    "dicom_instances",
    "pages",
    "jobs",
];

/// Rows read and inserted per statement.
const BATCH: i64 = 500;

/// A keyring row as it will be stored: `(key id, KEK version, wrapped) -> (KEK version,
/// wrapped)`.
pub type Rewrap<'a> = dyn Fn(&str, u32, Vec<u8>) -> anyhow::Result<(u32, Vec<u8>)> + Sync + 'a;

/// One column's value, typed as the target's schema says.
enum Value {
    Int(Option<i64>),
    Bool(Option<bool>),
    Real(Option<f64>),
    Bytes(Option<Vec<u8>>),
    Text(Option<String>),
}

/// Copies every table of `source` into `target` (migrated, empty or partly copied);
/// returns the rows inserted per table.
pub async fn copy_sqlite_into_postgres(
    source: &SqliteStore,
    target: &PgStore,
    rewrap: &Rewrap<'_>,
) -> anyhow::Result<Vec<(&'static str, u64)>> {
    let legacy: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'audit_legacy'",
    )
    .fetch_optional(&source.pool)
    .await?;
    anyhow::ensure!(
        legacy.is_none(),
        "the archive still has audit rows from before the chain: start the server on it once \
         (it chains them), stop it, then migrate"
    );
    let mut copied = Vec::new();
    for table in TABLES {
        copied.push((*table, copy_table(source, target, table, rewrap).await?));
    }
    // Identity columns go on after the largest value copied.
    for (table, column) in [("jobs", "id"), ("hl7_outbox", "seq")] {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                GREATEST((SELECT MAX({column}) FROM {table}), 1))"
        ))
        .execute(&target.pool)
        .await?;
    }
    Ok(copied)
}

async fn copy_table(
    source: &SqliteStore,
    target: &PgStore,
    table: &str,
    rewrap: &Rewrap<'_>,
) -> anyhow::Result<u64> {
    let columns = pg_columns(&target.pool, table).await?;
    anyhow::ensure!(!columns.is_empty(), "the target has no table {table}");
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let select = format!(
        "SELECT rowid AS row_number, {} FROM {table} WHERE rowid > $1 ORDER BY rowid LIMIT $2",
        names.join(", ")
    );
    let mut after = 0i64;
    let mut inserted = 0u64;
    loop {
        let rows = sqlx::query(&select)
            .bind(after)
            .bind(BATCH)
            .fetch_all(&source.pool)
            .await?;
        let Some(last) = rows.last() else {
            return Ok(inserted);
        };
        after = last.try_get("row_number")?;
        let mut values = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut typed = Vec::with_capacity(columns.len());
            for (name, kind) in &columns {
                let name = name.as_str();
                typed.push(match kind.as_str() {
                    "bigint" | "integer" | "smallint" => Value::Int(row.try_get(name)?),
                    "boolean" => Value::Bool(row.try_get::<Option<i64>, _>(name)?.map(|v| v != 0)),
                    "double precision" | "real" => Value::Real(row.try_get(name)?),
                    "bytea" => Value::Bytes(row.try_get(name)?),
                    "text" => Value::Text(row.try_get(name)?),
                    other => anyhow::bail!("{table}.{name}: no copy for the type {other}"),
                });
            }
            if table == "keyring" {
                rewrap_row(&names, &mut typed, rewrap)?;
            }
            values.push(typed);
        }
        let mut insert = QueryBuilder::<sqlx::Postgres>::new(format!(
            "INSERT INTO {table} ({}) ",
            names.join(", ")
        ));
        insert.push_values(values, |mut b, row| {
            for value in row {
                match value {
                    Value::Int(v) => b.push_bind(v),
                    Value::Bool(v) => b.push_bind(v),
                    Value::Real(v) => b.push_bind(v),
                    Value::Bytes(v) => b.push_bind(v),
                    Value::Text(v) => b.push_bind(v),
                };
            }
        });
        insert.push(" ON CONFLICT DO NOTHING");
        inserted += insert.build().execute(&target.pool).await?.rows_affected();
    }
}

/// Copies every table of `source` into `target` (a freshly migrated, empty SQLite file), all
/// read in one `REPEATABLE READ` transaction: the copy is the database as it was at one
/// moment, while other nodes go on writing. Values are copied as the bytes they are (sealed
/// columns stay sealed); PostgreSQL's booleans become SQLite's integers. Returns the rows
/// copied per table.
pub async fn snapshot_postgres_into_sqlite(
    source: &PgStore,
    target: &SqliteStore,
) -> anyhow::Result<Vec<(&'static str, u64)>> {
    // A new SQLite file's migrations leave the (empty) table of audit rows from before the
    // chain, which a server drops at its first start: PostgreSQL's rows are all chained.
    let legacy: Option<i64> = sqlx::query_scalar("SELECT COUNT(*) FROM audit_legacy")
        .fetch_optional(&target.pool)
        .await
        .ok()
        .flatten();
    if legacy == Some(0) {
        sqlx::query("DROP TABLE audit_legacy")
            .execute(&target.pool)
            .await?;
    }
    let mut snapshot = source.pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *snapshot)
        .await?;
    let mut copied = Vec::new();
    for table in TABLES {
        let columns = pg_columns(&mut *snapshot, table).await?;
        anyhow::ensure!(!columns.is_empty(), "PostgreSQL has no table {table}");
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let select = format!(
            "SELECT rowid AS row_number, {} FROM {table} WHERE rowid > $1 ORDER BY rowid LIMIT $2",
            names.join(", ")
        );
        let mut after = 0i64;
        let mut rows_copied = 0u64;
        loop {
            let rows = sqlx::query(&select)
                .bind(after)
                .bind(BATCH)
                .fetch_all(&mut *snapshot)
                .await?;
            let Some(last) = rows.last() else {
                break;
            };
            after = last.try_get("row_number")?;
            let mut values = Vec::with_capacity(rows.len());
            for row in &rows {
                let mut typed = Vec::with_capacity(columns.len());
                for (name, kind) in &columns {
                    let name = name.as_str();
                    typed.push(match kind.as_str() {
                        "bigint" => Value::Int(row.try_get(name)?),
                        "integer" => {
                            Value::Int(row.try_get::<Option<i32>, _>(name)?.map(i64::from))
                        }
                        "smallint" => {
                            Value::Int(row.try_get::<Option<i16>, _>(name)?.map(i64::from))
                        }
                        "boolean" => {
                            Value::Int(row.try_get::<Option<bool>, _>(name)?.map(i64::from))
                        }
                        "double precision" => Value::Real(row.try_get(name)?),
                        "real" => Value::Real(row.try_get::<Option<f32>, _>(name)?.map(f64::from)),
                        "bytea" => Value::Bytes(row.try_get(name)?),
                        "text" => Value::Text(row.try_get(name)?),
                        other => anyhow::bail!("{table}.{name}: no copy for the type {other}"),
                    });
                }
                values.push(typed);
            }
            let mut insert = QueryBuilder::<sqlx::Sqlite>::new(format!(
                "INSERT INTO {table} ({}) ",
                names.join(", ")
            ));
            insert.push_values(values, |mut b, row| {
                for value in row {
                    match value {
                        Value::Int(v) => b.push_bind(v),
                        Value::Bool(v) => b.push_bind(v),
                        Value::Real(v) => b.push_bind(v),
                        Value::Bytes(v) => b.push_bind(v),
                        Value::Text(v) => b.push_bind(v),
                    };
                }
            });
            rows_copied += insert.build().execute(&target.pool).await?.rows_affected();
        }
        copied.push((*table, rows_copied));
    }
    snapshot.commit().await?;
    Ok(copied)
}

/// A PostgreSQL table's columns (but `rowid`) and their types, in order.
async fn pg_columns<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    table: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    Ok(sqlx::query(
        "SELECT column_name::text AS name, data_type::text AS type
         FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 AND column_name <> 'rowid'
         ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(executor)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("name")?, r.try_get("type")?)))
    .collect::<Result<_, sqlx::Error>>()?)
}

/// Puts a keyring row through `rewrap`.
fn rewrap_row(names: &[&str], row: &mut [Value], rewrap: &Rewrap<'_>) -> anyhow::Result<()> {
    let at = |column: &str| {
        names
            .iter()
            .position(|n| *n == column)
            .ok_or_else(|| anyhow::anyhow!("the keyring has no {column} column"))
    };
    let (id, version, wrapped) = (at("key_id")?, at("kek_version")?, at("wrapped")?);
    let Value::Text(Some(key_id)) = &row[id] else {
        anyhow::bail!("a keyring row without a key id");
    };
    let key_id = key_id.clone();
    let Value::Int(Some(kek_version)) = row[version] else {
        anyhow::bail!("a keyring row without a KEK version");
    };
    let Value::Bytes(Some(bytes)) = std::mem::replace(&mut row[wrapped], Value::Bytes(None)) else {
        anyhow::bail!("a keyring row without its wrapped key");
    };
    let (new_version, new_bytes) = rewrap(&key_id, u32::try_from(kek_version)?, bytes)?;
    row[version] = Value::Int(Some(i64::from(new_version)));
    row[wrapped] = Value::Bytes(Some(new_bytes));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// A table added to either schema and not to [`TABLES`] would be left behind by a move.
    #[tokio::test]
    async fn every_table_of_both_schemas_is_copied() {
        let listed: BTreeSet<String> = TABLES.iter().map(|t| t.to_string()).collect();
        let (sqlite, _dir) = super::super::sqlite::open_test_store().await;
        let tables: BTreeSet<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name NOT IN ('sqlite_sequence', '_sqlx_migrations', 'audit_legacy')",
        )
        .fetch_all(&sqlite.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
        assert_eq!(tables, listed, "SQLite's tables");
        let (postgres, _url) = super::super::postgres::open_test_store().await;
        let tables: BTreeSet<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
        )
        .fetch_all(&postgres.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
        assert_eq!(tables, listed, "PostgreSQL's tables");
    }
}

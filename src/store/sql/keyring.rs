//! [`KeyringStore`] in SQL, for every backend.

use super::*;
pub(super) use crate::store::keyring::*;

impl KeyringStore for Backend {
    async fn insert_key(
        tx: &mut Tx,
        key_id: &str,
        kek_version: u32,
        wrapped: &[u8],
    ) -> super::StoreResult<()> {
        sqlx::query(
            "INSERT INTO keyring (key_id, kek_version, wrapped, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(key_id)
        .bind(kek_version as i64)
        .bind(wrapped)
        .bind(now())
        .execute(tx.conn())
        .await?;
        Ok(())
    }

    async fn get_key(&self, key_id: &str) -> super::StoreResult<Option<(u32, Vec<u8>)>> {
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

    async fn keyring_versions(&self) -> super::StoreResult<Vec<(u32, i64)>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT kek_version, count(*) FROM keyring GROUP BY kek_version ORDER BY kek_version",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(v, n)| (v as u32, n)).collect())
    }

    async fn keyring_rows_not_under(
        &self,
        current: u32,
        limit: i64,
    ) -> super::StoreResult<Vec<(String, u32, Vec<u8>)>> {
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

    async fn swap_wrapped_keys(
        &self,
        updates: &[(String, u32, u32, Vec<u8>)],
    ) -> super::StoreResult<u64> {
        let mut tx = self.begin().await?;
        let mut changed = 0;
        for (key_id, old, new, bytes) in updates {
            changed += sqlx::query(
                "UPDATE keyring SET kek_version = $1, wrapped = $2 WHERE key_id = $3 AND kek_version = $4",
            )
            .bind(*new as i64)
            .bind(bytes)
            .bind(key_id)
            .bind(*old as i64)
            .execute(tx.conn())
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    async fn service_key_id(&self, purpose: &str) -> super::StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT key_id FROM service_keys WHERE purpose = $1")
            .bind(purpose)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::from)
    }

    async fn insert_service_key(
        &self,
        purpose: &str,
        key_id: &str,
        kek_version: u32,
        wrapped: &[u8],
    ) -> super::StoreResult<bool> {
        let mut tx = self.begin().await?;
        let taken: Option<String> =
            sqlx::query_scalar("SELECT key_id FROM service_keys WHERE purpose = $1")
                .bind(purpose)
                .fetch_optional(tx.conn())
                .await?;
        if taken.is_some() {
            return Ok(false);
        }
        Backend::insert_key(&mut tx, key_id, kek_version, wrapped).await?;
        sqlx::query("INSERT INTO service_keys (purpose, key_id, created_at) VALUES ($1, $2, $3)")
            .bind(purpose)
            .bind(key_id)
            .bind(now())
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_key(&self, key_id: &str) -> super::StoreResult<()> {
        sqlx::query("DELETE FROM keyring WHERE key_id = $1")
            .bind(key_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::store;
    use super::*;

    #[tokio::test]
    async fn a_service_key_is_recorded_once_and_a_deleted_key_is_gone() {
        let store = store().await;
        assert!(store
            .insert_service_key("index", "k1", 1, b"wrapped-1")
            .await
            .unwrap());
        assert!(
            !store
                .insert_service_key("index", "k2", 1, b"wrapped-2")
                .await
                .unwrap(),
            "the first key of a purpose stays"
        );
        assert_eq!(
            store.service_key_id("index").await.unwrap().as_deref(),
            Some("k1")
        );
        assert_eq!(
            store.get_key("k1").await.unwrap(),
            Some((1, b"wrapped-1".to_vec()))
        );
        assert!(
            store.get_key("k2").await.unwrap().is_none(),
            "nothing half-recorded"
        );

        let mut tx = store.begin().await.unwrap();
        Backend::insert_key(&mut tx, "k3", 2, b"wrapped-3")
            .await
            .unwrap();
        drop(tx);
        assert!(
            store.get_key("k3").await.unwrap().is_none(),
            "rolled back when dropped"
        );

        let mut tx = store.begin().await.unwrap();
        Backend::insert_key(&mut tx, "k4", 2, b"wrapped-4")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            store.keyring_versions().await.unwrap(),
            vec![(1, 1), (2, 1)]
        );
        store.delete_key("k4").await.unwrap();
        assert!(store.get_key("k4").await.unwrap().is_none());
        assert!(
            store.delete_key("k1").await.is_err(),
            "a service's key is not deleted while the service names it"
        );
        assert_eq!(store.keyring_versions().await.unwrap(), vec![(1, 1)]);
    }
}

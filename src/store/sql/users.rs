//! [`UserStore`] in SQL, for every backend.

use super::*;
pub(super) use crate::store::users::*;

impl UserStore for Backend {
    async fn create_user(&self, name: &str, role: Role) -> super::StoreResult<UserId> {
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

    async fn user_by_name(&self, name: &str) -> super::StoreResult<Option<(UserId, Role, bool)>> {
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

    async fn user_count(&self) -> super::StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::from)
    }

    async fn set_user_disabled(&self, name: &str, disabled: bool) -> super::StoreResult<bool> {
        let mut tx = self.begin_immediate().await?;
        let row = sqlx::query("SELECT id, name, role, disabled, mac FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(tx.conn())
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
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn insert_token(
        &self,
        token_id: &str,
        user: UserId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> super::StoreResult<()> {
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

    async fn token_owner(&self, token_hash: &str) -> super::StoreResult<Option<TokenOwner>> {
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

    async fn revoke_tokens(
        &self,
        token_id: Option<&str>,
        user: Option<&str>,
    ) -> super::StoreResult<u64> {
        let at = now();
        let mut tx = self.begin_immediate().await?;
        let rows = match (token_id, user) {
            (Some(id), _) => {
                sqlx::query(
                    "SELECT id, user_id, token_hash, expires_at, revoked_at, mac FROM tokens
                     WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id)
                .fetch_all(tx.conn())
                .await?
            }
            (None, Some(name)) => {
                sqlx::query(
                    "SELECT id, user_id, token_hash, expires_at, revoked_at, mac FROM tokens
                     WHERE revoked_at IS NULL AND user_id = (SELECT id FROM users WHERE name = $1)",
                )
                .bind(name)
                .fetch_all(tx.conn())
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
                .execute(tx.conn())
                .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::store;
    use super::*;

    #[tokio::test]
    async fn a_token_names_its_user_until_revoked_and_says_when_the_user_is_disabled() {
        let store = store().await;
        let user = store.create_user("rita", Role::Records).await.unwrap();
        let expires = Utc::now() + chrono::Duration::days(1);
        store
            .insert_token("t1", user, "hash-1", expires)
            .await
            .unwrap();

        let owner = store.token_owner("hash-1").await.unwrap().unwrap();
        assert_eq!((owner.user_id, owner.role), (user, Role::Records));
        assert!(!owner.revoked && !owner.disabled);
        assert!(store.token_owner("hash-2").await.unwrap().is_none());

        assert!(store.set_user_disabled("rita", true).await.unwrap());
        assert!(store.token_owner("hash-1").await.unwrap().unwrap().disabled);
        assert_eq!(store.revoke_tokens(None, Some("rita")).await.unwrap(), 1);
        assert!(store.token_owner("hash-1").await.unwrap().unwrap().revoked);
    }

    #[tokio::test]
    async fn a_token_or_user_row_changed_in_the_file_grants_nothing() {
        let store = store().await;
        let user = store.create_user("carl", Role::Clinician).await.unwrap();
        let expires = Utc::now() + chrono::Duration::days(1);
        store
            .insert_token("t1", user, "hash-1", expires)
            .await
            .unwrap();
        // Someone who can write the file but holds no key extends a token...
        sqlx::query("UPDATE tokens SET expires_at = '2999-01-01T00:00:00.000Z'")
            .execute(store.pool())
            .await
            .unwrap();
        assert!(store.token_owner("hash-1").await.unwrap().is_none());

        // ... or makes a user an admin.
        let user = store.create_user("dana", Role::Clinician).await.unwrap();
        store
            .insert_token("t2", user, "hash-2", expires)
            .await
            .unwrap();
        assert!(store.token_owner("hash-2").await.unwrap().is_some());
        sqlx::query("UPDATE users SET role = 'admin' WHERE name = 'dana'")
            .execute(store.pool())
            .await
            .unwrap();
        assert!(store.token_owner("hash-2").await.unwrap().is_none());
        assert!(store.user_by_name("dana").await.unwrap().is_none());
    }
}

//! Users and their API tokens (stored as hashes; each row MACed).

use super::base::*;

#[derive(Debug, Clone)]
pub struct TokenOwner {
    pub user_id: UserId,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub expires_at: String,
    pub revoked: bool,
}

/// Users and their API tokens (kept as hashes).
pub trait UserStore {
    fn create_user(
        &self,
        name: &str,
        role: Role,
    ) -> impl Future<Output = StoreResult<UserId>> + Send;

    /// A user by name: (id, role, disabled). A row that fails its integrity check is no user.
    fn user_by_name(
        &self,
        name: &str,
    ) -> impl Future<Output = StoreResult<Option<(UserId, Role, bool)>>> + Send;

    fn user_count(&self) -> impl Future<Output = StoreResult<i64>> + Send;

    fn set_user_disabled(
        &self,
        name: &str,
        disabled: bool,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    fn insert_token(
        &self,
        token_id: &str,
        user: UserId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn token_owner(
        &self,
        token_hash: &str,
    ) -> impl Future<Output = StoreResult<Option<TokenOwner>>> + Send;

    /// Revokes one token by id, or every token of a user by name. Returns how many.
    fn revoke_tokens(
        &self,
        token_id: Option<&str>,
        user: Option<&str>,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
}

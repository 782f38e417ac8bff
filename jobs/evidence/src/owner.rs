//! What an operator runs from the command line (`api keys …`, `api custody verify`), from a
//! database connection as its owner: no API key and no service, so that the first key of a
//! tenant can be made, and so that an auditor with read access to the database can check a
//! chain without the service.

use sqlx::PgPool;

use crate::custody::Verdict;
use crate::error::EvidenceError;
use crate::keys::{ApiKey, IssuedKey, NewKey};
use crate::model::TenantId;
use crate::store;

/// `api keys create`: a key for `tenant` (made if new), as the database owner.
pub async fn create_key(pool: &PgPool, tenant: &TenantId, new: &NewKey) -> Result<IssuedKey, EvidenceError> {
    new.validate()?;
    let mut tx = pool.begin().await?;
    store::ensure_tenant(&mut tx, tenant).await?;
    let issued = store::insert_key(&mut tx, tenant, new, None).await?;
    tx.commit().await?;
    Ok(issued)
}

/// `api keys list`: every key, or one tenant's, oldest first.
pub async fn list_keys(pool: &PgPool, tenant: Option<&TenantId>) -> Result<Vec<ApiKey>, EvidenceError> {
    Ok(store::list_keys(pool, store::KeyScope { tenant, within: None }).await?)
}

/// `api keys revoke`: the key with this prefix, in any tenant. Revoking twice keeps the first time.
pub async fn revoke_key(pool: &PgPool, prefix: &str) -> Result<ApiKey, EvidenceError> {
    store::revoke_key(pool, prefix, store::KeyScope::default())
        .await?
        .ok_or_else(|| EvidenceError::KeyNotFound(prefix.to_owned()))
}

/// `api custody verify`: recompute `tenant`'s chain, as the owner.
pub async fn verify_custody(pool: &PgPool, tenant: &TenantId) -> Result<Verdict, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    store::verify_custody(&mut conn, tenant).await
}

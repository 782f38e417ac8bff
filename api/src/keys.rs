//! `/v1/keys`: admin keys make, list and revoke the API keys of their tenant. The secret of a
//! new key is in the answer to its creation and nowhere else.

use chrono::{DateTime, Utc};
use evidence::Role;
use evidence::keys::{ApiKey as Key, NewKey};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};
use uuid::Uuid;

use crate::AppState;
use crate::auth::ApiKey;
use crate::error::ApiError;

#[derive(Tags)]
enum Tag {
    /// API keys of the caller's tenant (admin keys only).
    Keys,
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum RoleView {
    /// Everything in its tenant, including keys.
    Admin,
    /// Create, upload and complete evidence; read metadata.
    Uploader,
    /// Read metadata and custody, search, download.
    Viewer,
    /// Read metadata and custody, verify the custody chain (no text, no bytes).
    Auditor,
}

impl From<RoleView> for Role {
    fn from(r: RoleView) -> Self {
        match r {
            RoleView::Admin => Role::Admin,
            RoleView::Uploader => Role::Uploader,
            RoleView::Viewer => Role::Viewer,
            RoleView::Auditor => Role::Auditor,
        }
    }
}

impl From<Role> for RoleView {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => RoleView::Admin,
            Role::Uploader => RoleView::Uploader,
            Role::Viewer => RoleView::Viewer,
            Role::Auditor => RoleView::Auditor,
        }
    }
}

/// Fields other than these are refused (422 `unknown_field`).
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateKey {
    /// Who or what the key is for, e.g. `scanner-3` or `j.doe laptop`.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: String,
    pub role: RoleView,
    /// Limit the key to these cases; omit for every case of the tenant.
    #[oai(validator(min_items = 1, max_items = 50))]
    pub case_ids: Option<Vec<String>>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct KeyView {
    pub id: Uuid,
    pub tenant: String,
    /// Public: names the key in listings and logs, and revokes it.
    pub prefix: String,
    pub name: String,
    pub role: RoleView,
    /// Absent: every case of the tenant.
    pub case_ids: Option<Vec<String>>,
    /// The admin key that made it; absent: made on the command line.
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// Last request made with it, to the minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<Key> for KeyView {
    fn from(k: Key) -> Self {
        KeyView {
            id: k.id,
            tenant: k.tenant_id,
            prefix: k.prefix,
            name: k.name,
            role: k.role.into(),
            case_ids: k.case_ids,
            created_by: k.created_by,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct KeyCreated {
    pub key: KeyView,
    /// The key itself, for `Authorization: Bearer`: shown this once, stored only as a hash.
    pub secret: String,
}

#[derive(Debug, Object)]
pub struct KeyList {
    pub items: Vec<KeyView>,
}

#[derive(ApiResponse)]
pub enum CreatedResponse {
    #[oai(status = 201)]
    Created(Json<KeyCreated>),
}

pub struct KeysApi;

#[OpenApi(prefix_path = "/v1")]
impl KeysApi {
    /// Make an API key in the caller's tenant (admin). The answer holds its secret, once.
    ///
    /// An admin key limited to some cases makes keys limited to (some of) them only.
    #[oai(path = "/keys", method = "post", tag = "Tag::Keys", operation_id = "create_key")]
    async fn create(
        &self,
        state: Data<&AppState>,
        key: ApiKey,
        body: Json<CreateKey>,
    ) -> Result<CreatedResponse, ApiError> {
        let caller = key.caller();
        let new = NewKey { name: body.0.name, role: body.0.role.into(), cases: body.0.case_ids };
        let issued = state.service.create_key(caller, &new).await?;
        tracing::info!(new_key = issued.key.prefix, role = %issued.key.role, "API key created");
        Ok(CreatedResponse::Created(Json(KeyCreated { key: issued.key.into(), secret: issued.secret })))
    }

    /// The API keys of the caller's tenant, oldest first, revoked ones included (admin).
    #[oai(path = "/keys", method = "get", tag = "Tag::Keys", operation_id = "list_keys")]
    async fn list(&self, state: Data<&AppState>, key: ApiKey) -> Result<Json<KeyList>, ApiError> {
        let caller = key.caller();
        let keys = state.service.list_keys(caller).await?;
        Ok(Json(KeyList { items: keys.into_iter().map(Into::into).collect() }))
    }

    /// Revoke a key by its prefix (admin): every later request with it answers 401. Revoking
    /// twice keeps the first time; a key cannot revoke itself (409 `own_key`).
    #[oai(path = "/keys/:prefix/revoke", method = "post", tag = "Tag::Keys", operation_id = "revoke_key")]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        key: ApiKey,
        prefix: Path<String>,
    ) -> Result<Json<KeyView>, ApiError> {
        let caller = key.caller();
        let revoked = state.service.revoke_key(caller, &prefix.0).await?;
        tracing::info!(revoked_key = revoked.prefix, "API key revoked");
        Ok(Json(revoked.into()))
    }
}

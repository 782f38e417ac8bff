//! Who may do what: tenants, roles, the actions each role allows, and the caller an API key
//! stands for. The service checks every operation against its caller; Postgres row-level
//! security holds the tenant boundary a second time (see the tenancy migration).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::EvidenceError;
use crate::model::TenantId;

/// What a key is for. Stored as text (`api_key.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Role {
    /// Everything in its tenant, including managing keys.
    Admin,
    /// Create, upload and complete evidence; read its metadata.
    Uploader,
    /// Read metadata, search, download.
    Viewer,
    /// Read metadata only: no text, no bytes.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Uploader, Role::Viewer, Role::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Uploader => "uploader",
            Role::Viewer => "viewer",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The one table of who may do what (ARCHITECTURE.md shows it; the API tests walk it).
    pub fn allows(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Admin => true,
            Role::Uploader => matches!(action, Upload | ReadMetadata),
            Role::Viewer => matches!(action, ReadMetadata | Search | Download | ReadCustody),
            Role::Auditor => matches!(action, ReadMetadata | ReadCustody | VerifyCustody),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything an API call can do, as far as permissions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create evidence and complete its upload.
    Upload,
    /// Read one evidence or list them (metadata, status, hashes).
    ReadMetadata,
    /// Full-text search (it shows extracted text).
    Search,
    /// A URL for the bytes.
    Download,
    /// Queue evidence for ingestion again.
    Reindex,
    /// Create, list and revoke API keys.
    ManageKeys,
    /// Read one evidence's custody entries.
    ReadCustody,
    /// Recompute the tenant's whole custody chain.
    VerifyCustody,
    /// List, cancel and retry the tenant's jobs.
    OperateJobs,
}

impl Action {
    fn describe(self) -> &'static str {
        match self {
            Action::Upload => "upload evidence",
            Action::ReadMetadata => "read evidence",
            Action::Search => "search",
            Action::Download => "download evidence",
            Action::Reindex => "reindex evidence",
            Action::ManageKeys => "manage API keys",
            Action::ReadCustody => "read the custody log",
            Action::VerifyCustody => "verify the custody log",
            Action::OperateJobs => "operate the job queue",
        }
    }
}

/// The key a request was made with, as the service needs it: its tenant, role and case scope,
/// and how to name it in logs and in the custody log.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: Uuid,
    pub key_prefix: String,
    pub key_name: String,
    pub tenant: TenantId,
    pub role: Role,
    /// The cases this key may touch; `None`: every case of its tenant.
    pub cases: Option<Vec<String>>,
}

impl Caller {
    /// `Forbidden` unless the role allows `action`.
    pub fn require(&self, action: Action) -> Result<(), EvidenceError> {
        if self.role.allows(action) {
            Ok(())
        } else {
            Err(EvidenceError::Forbidden {
                code: "role_not_allowed",
                message: format!("a key with role {} may not {}", self.role, action.describe()),
            })
        }
    }

    /// `Forbidden` unless the key reaches every case of its tenant (a job can concern any case).
    pub fn require_every_case(&self, what: &str) -> Result<(), EvidenceError> {
        match &self.cases {
            None => Ok(()),
            Some(cases) => Err(EvidenceError::Forbidden {
                code: "case_out_of_scope",
                message: format!(
                    "{what} needs a key for every case of the tenant; this one is limited to {}",
                    cases.join(", ")
                ),
            }),
        }
    }

    /// `Forbidden` unless the key may touch evidence of `case` (`None`: evidence of no case,
    /// which only keys for every case may touch).
    pub fn require_case(&self, case: Option<&str>) -> Result<(), EvidenceError> {
        let Some(cases) = &self.cases else { return Ok(()) };
        match case {
            Some(case) if cases.iter().any(|c| c == case) => Ok(()),
            Some(case) => Err(EvidenceError::Forbidden {
                code: "case_out_of_scope",
                message: format!("this key is limited to cases {}; `{case}` is not one of them", cases.join(", ")),
            }),
            None => Err(EvidenceError::Forbidden {
                code: "case_out_of_scope",
                message: format!("this key is limited to cases {}: name one as case_id", cases.join(", ")),
            }),
        }
    }

    /// The cases a listing or search is limited to: the filter's case (checked against the
    /// scope), else the key's scope (`None`: no limit).
    pub fn case_scope(&self, filter: Option<&str>) -> Result<Option<Vec<String>>, EvidenceError> {
        match filter {
            Some(case) => {
                self.require_case(Some(case))?;
                Ok(Some(vec![case.to_owned()]))
            }
            None => Ok(self.cases.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_keys_reach_only_their_cases() {
        let caller = Caller {
            key_id: Uuid::nil(),
            key_prefix: "000000000000".into(),
            key_name: "k".into(),
            tenant: TenantId::new("t").unwrap(),
            role: Role::Viewer,
            cases: Some(vec!["a".into(), "b".into()]),
        };
        assert!(caller.require_case(Some("a")).is_ok());
        assert!(caller.require_case(Some("c")).is_err());
        assert!(caller.require_case(None).is_err());
        assert_eq!(caller.case_scope(None).unwrap(), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(caller.case_scope(Some("b")).unwrap(), Some(vec!["b".to_owned()]));
        assert!(caller.case_scope(Some("c")).is_err());
        assert!(caller.require(Action::Download).is_ok());
        assert!(caller.require(Action::Upload).is_err());
    }
}

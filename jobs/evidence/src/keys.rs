//! API keys: `evk_<prefix>_<secret>`, 12 hex characters of public prefix (how a key is named in
//! listings and logs, and looked up) and 64 of secret (256 random bits). Only the SHA-256 of the
//! whole key is stored; the key itself is shown once, when it is made.
//!
//! Keys are made and revoked by admin keys through the API (within their tenant) or by an
//! operator with `api keys …` (any tenant; `owner`), which runs as the database owner like
//! migrations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::access::{Caller, Role};
use crate::model::Invalid;

const SCHEME: &str = "evk_";

/// A key as listed: everything but its secret.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub tenant_id: String,
    pub prefix: String,
    pub name: String,
    pub role: Role,
    /// `None`: every case of the tenant.
    pub case_ids: Option<Vec<String>>,
    /// The admin key that made it; `None`: the command line.
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// To the minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key to make.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
    pub cases: Option<Vec<String>>,
}

impl NewKey {
    pub fn validate(&self) -> Result<(), Invalid> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Invalid("name must be 1 to 100 characters, without control characters".into()));
        }
        if let Some(cases) = &self.cases {
            if cases.is_empty() || cases.len() > 50 {
                return Err(Invalid("case_ids must name 1 to 50 cases (omit it for every case)".into()));
            }
            let bad_case =
                |c: &String| c.trim().is_empty() || c.chars().count() > 200 || c.chars().any(char::is_control);
            if let Some(bad) = cases.iter().find(|c| bad_case(c)) {
                return Err(Invalid(format!("case id {bad:?} must be 1 to 200 characters without control characters")));
            }
        }
        Ok(())
    }
}

/// A key just made, with the secret that is never shown again.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub key: ApiKey,
    pub secret: String,
}

/// A fresh key: its prefix, the whole key, and the hash that is stored.
pub(crate) fn generate() -> (String, String, Vec<u8>) {
    let prefix = hex::encode(rand::random::<[u8; 6]>());
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let key = format!("{SCHEME}{prefix}_{secret}");
    let hash = Sha256::digest(key.as_bytes()).to_vec();
    (prefix, key, hash)
}

/// Keys this process found valid in the last minute, by the hash of the whole key, so that a
/// request with a known key needs no round trip of its own to check it. What a key stands for
/// (tenant, role, cases) never changes; whether it was revoked since is checked by the database
/// when each of the request's transactions begins (`store::begin_as_key`), so a revoke still
/// holds at once. After a minute the full check runs again, which also notes the key's use.
#[derive(Debug, Clone, Default)]
pub struct KnownKeys(Arc<Mutex<HashMap<KeyHash, (Instant, Caller)>>>);

/// The SHA-256 of a whole key.
type KeyHash = Vec<u8>;

impl KnownKeys {
    /// How long a checked key is remembered.
    pub const FOR: Duration = Duration::from_secs(60);
    /// At most this many are remembered; a process that meets more forgets them all at once.
    const MAX: usize = 10_000;

    pub(crate) fn get(&self, hash: &[u8]) -> Option<Caller> {
        let known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        known.get(hash).filter(|(at, _)| at.elapsed() < Self::FOR).map(|(_, caller)| caller.clone())
    }

    pub(crate) fn remember(&self, hash: KeyHash, caller: &Caller) {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= Self::MAX {
            known.retain(|_, (at, _)| at.elapsed() < Self::FOR);
            if known.len() >= Self::MAX {
                known.clear();
            }
        }
        known.insert(hash, (Instant::now(), caller.clone()));
    }
}

/// The prefix and hash of a key as a client sent it, or `None` when it is not shaped like one.
pub(crate) fn parse(key: &str) -> Option<(&str, Vec<u8>)> {
    let rest = key.strip_prefix(SCHEME)?;
    let (prefix, secret) = rest.split_once('_')?;
    let hex_of =
        |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex_of(prefix, 12) && hex_of(secret, 64)).then(|| (prefix, Sha256::digest(key.as_bytes()).to_vec()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_parse_back_to_their_prefix_and_hash() {
        let (prefix, key, hash) = super::generate();
        assert_eq!(key.len(), 4 + 12 + 1 + 64);
        let (p, h) = super::parse(&key).expect("a generated key parses");
        assert_eq!((p, h), (prefix.as_str(), hash));
        for bad in ["", "evk_", "Bearer x", &key[1..], &key.to_uppercase(), &format!("{key}0"), &key.replace('_', "-")]
        {
            assert!(super::parse(bad).is_none(), "{bad}");
        }
        assert_ne!(super::generate().1, key, "two keys differ");
    }

    #[test]
    fn a_new_key_is_refused_for_a_case_id_with_a_control_character() {
        let new = |cases: &[&str]| super::NewKey {
            name: "k".into(),
            role: crate::Role::Viewer,
            cases: Some(cases.iter().map(|c| c.to_string()).collect()),
        };
        assert!(new(&["case-1", "case 2"]).validate().is_ok());
        // A NUL arrives escaped inside the JSON, past the body's UTF-8 check; Postgres refuses
        // it in text, which was a 500.
        for bad in ["a\u{0}b", "tab\there", " ", ""] {
            let refused = new(&["case-1", bad]).validate().expect_err(bad);
            assert!(refused.0.contains("without control characters"), "{bad:?}: {}", refused.0);
        }
    }
}

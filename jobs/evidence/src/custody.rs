//! The custody log: every event of every evidence, one hash-chained, append-only log per tenant,
//! each entry written in the same transaction as the change it records (`store::append_custody`,
//! or the `custody_append` function of the custody migration in SQL triggers), then put in its
//! chain by the sealer (`service::run_sealer`), which writes the entry's place (seq, time,
//! previous hash, hash) as a row of its own and never touches the entry. Verifying a chain needs
//! nothing but its entries: each entry's hash is SHA-256 over [`encoding`], which starts with the
//! previous entry's hash.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::access::Caller;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Created,
    UploadCompleted,
    /// The worker hashed the bytes and stored them at their content key (with every hash).
    Verified,
    Indexed,
    /// The ingest ended in `index_error` (with the reason).
    Failed,
    /// Someone read the evidence (`GET /v1/evidence/{id}`).
    Viewed,
    DownloadUrlIssued,
    Reindexed,
    /// The periodic re-hash of the stored bytes (with its result).
    FixityChecked,
    /// No upload was completed within the upload window; what was uploaded is deleted.
    Expired,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Created => "created",
            Event::UploadCompleted => "upload_completed",
            Event::Verified => "verified",
            Event::Indexed => "indexed",
            Event::Failed => "failed",
            Event::Viewed => "viewed",
            Event::DownloadUrlIssued => "download_url_issued",
            Event::Reindexed => "reindexed",
            Event::FixityChecked => "fixity_checked",
            Event::Expired => "expired",
        }
    }
}

/// Who acted: an API key (its id and name) or the worker (the ingest job's id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: &'static str,
    pub id: String,
    pub name: String,
}

impl Actor {
    pub fn key(caller: &Caller) -> Self {
        Self { kind: "api_key", id: caller.key_id.to_string(), name: caller.key_name.clone() }
    }

    /// The worker, running the ingest job `job`.
    pub fn worker(job: queue::JobId) -> Self {
        Self::worker_job(job, "ingest job")
    }

    /// The worker, running another job (`name` says which, e.g. "fixity sweep").
    pub fn worker_job(job: queue::JobId, name: &str) -> Self {
        Self { kind: "worker", id: job.0.to_string(), name: name.into() }
    }
}

/// One entry to append: the store adds the tenant, the position, the time and the hashes.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub evidence: Uuid,
    pub event: Event,
    pub actor: &'a Actor,
    pub request_id: Option<&'a str>,
    pub details: Value,
}

/// An entry as stored, with its place in the chain. `seq`, `at`, `prev_hash` and `hash` are
/// `None` until the sealer has put it there (moments after its transaction commits, and after
/// every transaction that was running when it was written has ended).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Entry {
    pub tenant_id: String,
    pub seq: Option<i64>,
    pub evidence_id: Option<Uuid>,
    pub event: String,
    pub actor_kind: String,
    pub actor_id: String,
    pub actor_name: String,
    pub request_id: Option<String>,
    pub at: Option<DateTime<Utc>>,
    /// A JSON object, as the exact text that was hashed.
    pub details: String,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

/// The hash before a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The bytes an entry's hash covers: each field as `<length in bytes>:<value>\n`, in this order:
/// prev_hash, seq, tenant_id, evidence_id, event, actor_kind, actor_id, actor_name, request_id,
/// at (UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ`), details; an absent value is the empty string. The
/// same as the database's `custody_encoding`. Meant for sealed entries (an unsealed one's missing
/// fields count as empty).
pub fn encoding(e: &Entry) -> Vec<u8> {
    let seq = e.seq.map(|s| s.to_string()).unwrap_or_default();
    let evidence = e.evidence_id.map(|id| id.to_string()).unwrap_or_default();
    let at = e.at.map(|at| at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()).unwrap_or_default();
    let fields = [
        e.prev_hash.as_deref().unwrap_or(""),
        &seq,
        &e.tenant_id,
        &evidence,
        &e.event,
        &e.actor_kind,
        &e.actor_id,
        &e.actor_name,
        e.request_id.as_deref().unwrap_or(""),
        &at,
        &e.details,
    ];
    let mut out = Vec::new();
    for f in fields {
        out.extend_from_slice(format!("{}:{f}\n", f.len()).as_bytes());
    }
    out
}

/// SHA-256 of the entry's [`encoding`], lower-case hex.
pub fn entry_hash(e: &Entry) -> String {
    hex::encode(Sha256::digest(encoding(e)))
}

/// What verifying a chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every link holds: `count` entries, the last with hash `head` (GENESIS for none).
    /// `pending` entries were committed but not yet sealed into the chain.
    Intact { count: i64, head: String, pending: i64 },
    /// The first entry that does not follow from the one before it.
    Broken(BrokenLink),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// The position the entry was expected at, and the entry found there.
    pub seq: i64,
    /// What was wrong: `hash` (the entry is not what was hashed), `prev_hash` (it does not follow
    /// the entry before it), `seq` (an entry is missing or out of place), `head` (the chain ends
    /// before or after the head the database recorded).
    pub field: &'static str,
    pub expected: String,
    pub found: String,
}

/// Walks one tenant's entries in `seq` order, checking every link; the caller feeds entries and
/// then asks for the verdict against the recorded head.
#[derive(Debug)]
pub struct Verifier {
    count: i64,
    last_hash: String,
    broken: Option<BrokenLink>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self { count: 0, last_hash: GENESIS.to_owned(), broken: None }
    }
}

impl Verifier {
    /// Check the next entry; after the first broken link the rest are ignored.
    pub fn push(&mut self, e: &Entry) {
        if self.broken.is_some() {
            return;
        }
        let expected_seq = self.count + 1;
        let computed = entry_hash(e);
        let (seq, prev_hash, hash) = (e.seq.unwrap_or(0), e.prev_hash.as_deref(), e.hash.as_deref());
        let broken = if seq != expected_seq {
            Some(("seq", expected_seq.to_string(), seq.to_string()))
        } else if prev_hash != Some(self.last_hash.as_str()) {
            Some(("prev_hash", self.last_hash.clone(), prev_hash.unwrap_or_default().to_owned()))
        } else if hash != Some(computed.as_str()) {
            Some(("hash", computed.clone(), hash.unwrap_or_default().to_owned()))
        } else {
            None
        };
        match broken {
            Some((field, expected, found)) => {
                self.broken = Some(BrokenLink { seq: expected_seq, field, expected, found });
            }
            None => {
                self.count += 1;
                self.last_hash = computed;
            }
        }
    }

    /// The verdict, given the head the database recorded (`None`: the tenant has no chain yet)
    /// and how many entries wait for the sealer.
    pub fn finish(self, head: Option<(i64, String)>, pending: i64) -> Verdict {
        if let Some(broken) = self.broken {
            return Verdict::Broken(broken);
        }
        let (head_seq, head_hash) = head.unwrap_or((0, GENESIS.to_owned()));
        if head_seq != self.count || head_hash != self.last_hash {
            return Verdict::Broken(BrokenLink {
                seq: self.count + 1,
                field: "head",
                expected: format!("{head_seq} entries ending in {head_hash}"),
                found: format!("{} entries ending in {}", self.count, self.last_hash),
            });
        }
        Verdict::Intact { count: self.count, head: self.last_hash, pending }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, prev: &str) -> Entry {
        let mut e = Entry {
            tenant_id: "t1".into(),
            seq: Some(seq),
            evidence_id: None,
            event: "created".into(),
            actor_kind: "api_key".into(),
            actor_id: "k".into(),
            actor_name: "name".into(),
            request_id: Some("req".into()),
            at: Some("2026-12-02T02:14:24.833728Z".parse().unwrap()),
            details: "{}".into(),
            prev_hash: Some(prev.into()),
            hash: None,
        };
        e.hash = Some(entry_hash(&e));
        e
    }

    /// An entry the database sealed (psql, against the custody migration): the same fields
    /// must give the same hash here.
    #[test]
    fn the_encoding_and_hash_match_the_database() {
        let prev = "6569b4a2ace9a6958627cceb9b36d95f3092868f703b0be9b91d814e73208e67";
        let e = entry(2, prev);
        let text = String::from_utf8(encoding(&e)).unwrap();
        assert_eq!(
            text,
            format!(
                "64:{prev}\n1:2\n2:t1\n0:\n7:created\n7:api_key\n1:k\n4:name\n3:req\n27:2026-12-02T02:14:24.833728Z\n2:{{}}\n"
            )
        );
        assert_eq!(e.hash.as_deref(), Some("febb45c28d97cc2539329459db7cdb687b453a5c9c6a6e950f9d89018a3a430f"));
    }

    #[test]
    fn a_chain_verifies_and_each_kind_of_break_is_named() {
        let first = entry(1, GENESIS);
        let second = entry(2, first.hash.as_deref().unwrap());
        let mut v = Verifier::default();
        v.push(&first);
        v.push(&second);
        let head = second.hash.clone().unwrap();
        assert_eq!(v.finish(Some((2, head.clone())), 0), Verdict::Intact { count: 2, head: head.clone(), pending: 0 });

        let mut edited = second.clone();
        edited.actor_name = "someone else".into();
        let mut v = Verifier::default();
        v.push(&first);
        v.push(&edited);
        assert!(matches!(v.finish(None, 0), Verdict::Broken(BrokenLink { seq: 2, field: "hash", .. })));

        let mut v = Verifier::default();
        v.push(&second);
        assert!(matches!(v.finish(None, 0), Verdict::Broken(BrokenLink { seq: 1, field: "seq", .. })));

        let mut v = Verifier::default();
        v.push(&first);
        assert!(matches!(v.finish(Some((2, head)), 0), Verdict::Broken(BrokenLink { seq: 2, field: "head", .. })));
    }
}

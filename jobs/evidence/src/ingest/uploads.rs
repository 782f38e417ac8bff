//! Deleting uploads once their bytes are stored at their content key, in batches. The ingest
//! job hands the upload's key over after its commit and goes on; one task per worker deletes
//! whatever keys have gathered meanwhile with one `DeleteObjects` request. Idle, each upload
//! costs one request, as a DELETE would; under load one request serves many, and no job waits.
//!
//! Not durable, as the DELETE after the commit never was: a worker killed with keys still in
//! hand leaves those uploads in the bucket. Nothing reads them again (download, reindex and
//! fixity read `stored_key`), so what is lost is space, not integrity.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::storage::{Storage, StorageError};

/// At most this many keys per request (the store's limit for `DeleteObjects`).
const MAX_BATCH: usize = 1000;
/// While the store is unreachable a batch is tried again, waiting from 1 s up to this.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// What a deleter did, from its start until its task ended: said in the worker's log at stop.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UploadsDeleted {
    /// Keys handed over.
    pub keys: u64,
    /// `DeleteObjects` requests the store answered.
    pub requests: u64,
    /// Keys left in the bucket: refused by the store, or in a request that failed for good (at
    /// stop, or for a reason that waiting would not mend).
    pub left: u64,
}

/// Where the ingest job leaves an upload to delete; cloned into each handler.
#[derive(Debug, Clone)]
pub struct UploadDeleter {
    keys: mpsc::UnboundedSender<String>,
}

impl UploadDeleter {
    /// The deleter and its task. The task ends once every clone of the deleter is dropped and
    /// the keys handed over before are deleted: the worker awaits it after its jobs have ended.
    /// While the store is unreachable a batch waits for it, until `stop`; from then on a batch
    /// is tried once.
    pub fn start(storage: Arc<Storage>, stop: CancellationToken) -> (Self, JoinHandle<UploadsDeleted>) {
        let (keys, receiver) = mpsc::unbounded_channel();
        (Self { keys }, tokio::spawn(delete_in_batches(storage, receiver, stop)))
    }

    /// Delete the object at `key` soon.
    pub fn delete(&self, key: String) {
        // The task ends only after every sender is dropped: this fails only if it panicked.
        if let Err(mpsc::error::SendError(key)) = self.keys.send(key) {
            left_behind(&[key], "the deleter has stopped");
        }
    }
}

async fn delete_in_batches(
    storage: Arc<Storage>,
    mut receiver: mpsc::UnboundedReceiver<String>,
    stop: CancellationToken,
) -> UploadsDeleted {
    let mut done = UploadsDeleted::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        done.keys += batch.len() as u64;
        let mut wait = Duration::from_secs(1);
        loop {
            match storage.delete_many(&batch).await {
                Ok(refused) => {
                    done.requests += 1;
                    done.left += refused.len() as u64;
                    for (key, reason) in refused {
                        left_behind(&[key], &reason);
                    }
                }
                Err(StorageError::Unavailable(e)) if !stop.is_cancelled() => {
                    tracing::warn!(keys = batch.len(), error = e, "the store is unreachable; deleting uploads later");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.cancelled() => {}
                    }
                    wait = (wait * 2).min(MAX_WAIT);
                    continue;
                }
                Err(e) => {
                    done.left += batch.len() as u64;
                    left_behind(&batch, &e.to_string());
                }
            }
            break;
        }
        batch.clear();
    }
    done
}

/// Say which uploads stay in the bucket, and count them.
fn left_behind(keys: &[String], reason: &str) {
    metrics::counter!("evidence_uploads_left_total").increment(keys.len() as u64);
    tracing::warn!(keys = keys.join(" "), reason, "could not delete these uploads; nothing reads them again");
}

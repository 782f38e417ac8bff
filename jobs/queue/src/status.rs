//! Live facts about a worker, shared by its parts (the listener sets them, the completer records
//! completions) and read by health endpoints and tests.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct WorkerStatus {
    pub listener_connected: AtomicBool,
    pub listener_reconnects: AtomicU64,
    /// Unix milliseconds of the last completed job, 0 before the first.
    pub last_completed_unix_ms: AtomicI64,
}

impl WorkerStatus {
    pub(crate) fn record_completed(&self) {
        self.last_completed_unix_ms.store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    pub fn listener_connected(&self) -> bool {
        self.listener_connected.load(Ordering::Acquire)
    }

    /// When the last job completed, if one has.
    pub fn last_completed_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let ms = self.last_completed_unix_ms.load(Ordering::Relaxed);
        (ms > 0).then(|| chrono::DateTime::from_timestamp_millis(ms)).flatten()
    }
}

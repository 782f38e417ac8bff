//! Live facts about a worker, shared by its parts (the listener sets them, the completer records
//! completions) and read by health endpoints and tests.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct WorkerStatus {
    pub listener_connected: AtomicBool,
    pub listener_reconnects: AtomicU64,
    /// Unix milliseconds of the last completed job, 0 before the first.
    pub last_completed_unix_ms: AtomicI64,
    /// Dependencies the breaker holds open: while any is, the worker claims nothing.
    waiting_for: Mutex<Vec<String>>,
    /// Checks of an open dependency that failed, since the worker started.
    failed_checks: AtomicU64,
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

    /// The dependencies the worker is waiting for (it claims nothing until this is empty).
    pub fn waiting_for(&self) -> Vec<String> {
        self.waiting_for.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_waiting_for(&self, open: Vec<String>) {
        *self.waiting_for.lock().unwrap_or_else(|e| e.into_inner()) = open;
    }

    /// How many checks of an unreachable dependency have failed since the worker started.
    pub fn failed_checks(&self) -> u64 {
        self.failed_checks.load(Ordering::Relaxed)
    }

    pub(crate) fn record_failed_check(&self) {
        self.failed_checks.fetch_add(1, Ordering::Relaxed);
    }
}

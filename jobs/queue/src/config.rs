//! The worker's settings and the rules they must keep. The queue reads no environment: a binary
//! fills a [`WorkerConfig`] from wherever it likes and the worker checks it before it starts.

use std::time::Duration;

use uuid::Uuid;

use crate::table::JobTable;

/// Settings of one worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The job table and NOTIFY channel.
    pub table: JobTable,
    pub queue: String,
    /// Jobs run at once, at most.
    pub concurrency: usize,
    /// Jobs taken per claim statement, at most.
    pub claim_batch: usize,
    /// Claim loops running side by side, sharing out `concurrency`. More than one keeps
    /// Postgres busy while a claim is in flight; it pays at high throughput (see ARCHITECTURE.md).
    pub claimers: usize,
    /// The safety net under LISTEN/NOTIFY.
    pub poll_interval: Duration,
    /// How long a claim holds without a heartbeat.
    pub lease: Duration,
    /// How often in-flight leases are renewed; `None` means a third of the lease.
    pub heartbeat: Option<Duration>,
    /// At shutdown, how long in-flight jobs may take before they are handed back.
    pub shutdown_grace: Duration,
    /// Rescue and prune cadence (one worker at a time does it).
    pub maintenance_interval: Duration,
    /// Finished jobs older than this are deleted.
    pub retention: Duration,
    /// Effect-free completions per statement, at most.
    pub completion_batch: usize,
    /// Stored in `job.locked_by`, for people reading the table.
    pub worker_id: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            table: JobTable::default(),
            queue: "default".into(),
            concurrency: 8,
            claim_batch: 100,
            claimers: 1,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            heartbeat: None,
            shutdown_grace: Duration::from_secs(10),
            maintenance_interval: Duration::from_secs(5),
            retention: Duration::from_secs(7 * 24 * 3600),
            completion_batch: 1000,
            worker_id: WorkerConfig::worker_id_on("worker"),
        }
    }
}

/// A setting outside its allowed range. `field` is the [`WorkerConfig`] field; binaries name
/// their own variable for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} = {value} is out of range: {allowed}")]
pub struct ConfigError {
    pub field: &'static str,
    pub value: String,
    pub allowed: String,
}

impl WorkerConfig {
    /// `host:pid:random`, unique per process, readable in `job.locked_by`.
    pub fn worker_id_on(host: &str) -> String {
        format!("{host}:{}:{}", std::process::id(), &Uuid::new_v4().simple().to_string()[..8])
    }

    /// `lock_timeout` and `idle_in_transaction_session_timeout` of a finishing transaction: one
    /// lease each. A finish that waits that long for a lock fails and is retried; a worker that
    /// stalls inside its finish for that long loses the transaction, so its job can be rescued.
    pub fn finish_bounds(&self) -> (Duration, Duration) {
        (self.lease, self.lease)
    }

    /// The heartbeat period in force.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat.unwrap_or(self.lease / 3)
    }

    /// Every rule the worker relies on; the first one broken.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, value: String, allowed: &str| Err(ConfigError { field, value, allowed: allowed.to_owned() });
        let positive = [
            ("poll_interval", self.poll_interval),
            ("lease", self.lease),
            ("shutdown_grace", self.shutdown_grace),
            ("maintenance_interval", self.maintenance_interval),
            ("retention", self.retention),
        ];
        for (field, value) in positive {
            if value.is_zero() {
                return err(field, format!("{value:?}"), "must be greater than zero");
            }
        }
        let counts = [
            ("concurrency", self.concurrency),
            ("claim_batch", self.claim_batch),
            ("claimers", self.claimers),
            ("completion_batch", self.completion_batch),
        ];
        for (field, value) in counts {
            if value == 0 {
                return err(field, value.to_string(), "must be at least 1");
            }
        }
        let heartbeat = self.heartbeat_interval();
        if heartbeat.is_zero() {
            return err("heartbeat", format!("{heartbeat:?}"), "must be greater than zero");
        }
        if self.lease < heartbeat * 3 {
            return err(
                "lease",
                format!("{:?}", self.lease),
                &format!(
                    "must be at least three heartbeats (3 × {heartbeat:?}), so that one late heartbeat does not lose the lease"
                ),
            );
        }
        if self.worker_id.is_empty() {
            return err("worker_id", String::new(), "must not be empty");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid() {
        assert_eq!(WorkerConfig::default().validate(), Ok(()));
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        let d = WorkerConfig::default;
        let table: [(WorkerConfig, &str); 8] = [
            (WorkerConfig { poll_interval: Duration::ZERO, ..d() }, "poll_interval"),
            (WorkerConfig { lease: Duration::ZERO, ..d() }, "lease"),
            (WorkerConfig { maintenance_interval: Duration::ZERO, ..d() }, "maintenance_interval"),
            (WorkerConfig { concurrency: 0, ..d() }, "concurrency"),
            (WorkerConfig { claim_batch: 0, ..d() }, "claim_batch"),
            (WorkerConfig { claimers: 0, ..d() }, "claimers"),
            (WorkerConfig { heartbeat: Some(Duration::ZERO), ..d() }, "heartbeat"),
            (WorkerConfig { lease: Duration::from_secs(5), heartbeat: Some(Duration::from_secs(2)), ..d() }, "lease"),
        ];
        for (config, field) in table {
            assert_eq!(config.validate().map_err(|e| e.field), Err(field));
        }
        let ok = WorkerConfig { lease: Duration::from_secs(6), heartbeat: Some(Duration::from_secs(2)), ..d() };
        assert_eq!(ok.validate(), Ok(()));
    }
}

//! The breaker: a job that failed because a dependency could not be reached
//! ([`JobError::Unavailable`](crate::JobError::Unavailable)), or a claim that could not reach the
//! database, opens it for that dependency. While any dependency is open the claim loops claim
//! nothing, so an outage costs each job at most the one attempt that found it (and that attempt
//! is given back). A watcher per open dependency runs its check with backoff and closes it when
//! the check passes; the claim loops resume by themselves. A dependency without a check is
//! closed again after one backoff step, and the next job tried finds out.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::handler::{BoxFuture, DATABASE, database_unreachable};
use crate::status::WorkerStatus;
use crate::store;

/// Asks whether a dependency answers; `Err` says why not.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The first wait before a check, doubled after each failed one up to the cap.
const FIRST_CHECK: Duration = Duration::from_millis(500);
const CHECK_CAP: Duration = Duration::from_secs(10);
/// A check that does not answer in this time has failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Breaker {
    open: watch::Sender<BTreeSet<String>>,
    checks: HashMap<String, Check>,
    status: Arc<WorkerStatus>,
    /// Ends the watchers when the worker stops.
    stop: CancellationToken,
}

impl Breaker {
    pub fn new(checks: HashMap<String, Check>, status: Arc<WorkerStatus>, stop: CancellationToken) -> Self {
        Self { open: watch::Sender::new(BTreeSet::new()), checks, status, stop }
    }

    /// The set of open dependencies; claim loops claim only while it is empty.
    pub fn subscribe(&self) -> watch::Receiver<BTreeSet<String>> {
        self.open.subscribe()
    }

    /// Stop claiming until `dependency` answers again. Opening an open dependency changes nothing.
    pub fn open(self: &Arc<Self>, dependency: &str, error: &str) {
        let opened = self.open.send_if_modified(|open| open.insert(dependency.to_owned()));
        if !opened {
            return;
        }
        self.publish();
        tracing::warn!(dependency, error, "dependency unreachable: no more claims until it answers");
        tokio::spawn(self.clone().watch(dependency.to_owned()));
    }

    /// Stop claiming until the database answers, when `e` says it could not be reached.
    pub fn open_if_database_unreachable(self: &Arc<Self>, e: &store::Error) {
        if let store::Error::Db(db) = e
            && database_unreachable(db)
        {
            self.open(DATABASE, &e.to_string());
        }
    }

    async fn watch(self: Arc<Self>, dependency: String) {
        let check = self.checks.get(&dependency).cloned();
        let mut wait = FIRST_CHECK;
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let Some(check) = &check else { break };
            let answer = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(answer) => answer,
                Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
            };
            match answer {
                Ok(()) => break,
                Err(e) => {
                    self.status.record_failed_check();
                    tracing::info!(
                        dependency,
                        error = e,
                        next_check_ms = wait.as_millis() as u64,
                        "dependency still unreachable"
                    );
                }
            }
            wait = (wait * 2).min(CHECK_CAP);
        }
        self.open.send_modify(|open| {
            open.remove(&dependency);
        });
        self.publish();
        tracing::info!(dependency, "dependency answers again: claiming resumes");
    }

    /// Mirror the open set into the worker's status and the gauge.
    fn publish(&self) {
        let open = self.open.borrow().clone();
        for name in self.checks.keys().chain(open.iter()) {
            metrics::gauge!("jobs_dependency_down", "dependency" => name.clone()).set(if open.contains(name) {
                1.0
            } else {
                0.0
            });
        }
        self.status.set_waiting_for(open.into_iter().collect());
    }
}

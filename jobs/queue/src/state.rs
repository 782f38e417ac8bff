//! The job state machine as pure code: given an attempt's outcome, what happens next.
//! No I/O here, so every rule is covered by the table-driven tests below.

use std::time::Duration;

use crate::job::JobState;

/// Backoff for a kind: `min(cap, base · 2^(attempt−1))`, then jittered into its upper half.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { base: Duration::from_secs(1), cap: Duration::from_secs(300) }
    }
}

impl RetryPolicy {
    /// The un-jittered delay after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: i32) -> Duration {
        let exp = attempt.saturating_sub(1).clamp(0, 30) as u32;
        self.base.saturating_mul(1u32 << exp).min(self.cap)
    }

    /// `jitter` in `[0, 1)` spreads retries over `[d/2, d)` so that jobs failing together
    /// ("equal jitter") do not come back together.
    pub fn jittered(&self, attempt: i32, jitter: f64) -> Duration {
        let d = self.backoff(attempt);
        d / 2 + d.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// How one attempt failed. (A success always completes the job; there is nothing to decide.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Worth retrying: a timeout, a 5xx from storage, a dropped connection, a panic.
    Retryable,
    /// Retrying cannot help: bad input, checksum mismatch, object gone.
    Permanent,
    /// The worker holding the job stopped renewing its lease (crash, partition).
    LeaseExpired,
    /// The worker is shutting down and hands the job back unfinished; no backoff.
    Released,
    /// A dependency (the database, an object store) could not be reached: not the job's fault.
    /// `outages` is how many attempts the job was given back for that already, `budget` the
    /// kind's limit ([`crate::KindOptions::max_outages`]); past it, the failure counts as a
    /// retryable one, so that a job can never loop for ever on an error that only looks like an
    /// outage.
    Unavailable { outages: i32, budget: i32 },
}

/// How long a job postponed by an outage waits before it may be claimed again, by its outage
/// count. Short, because the worker's breaker is what waits the outage out: it claims nothing
/// while a dependency is down, so the delay only spreads the first claims after it is back.
pub const OUTAGE_BACKOFF: RetryPolicy = RetryPolicy { base: Duration::from_secs(1), cap: Duration::from_secs(10) };

/// What a running job whose attempt failed becomes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Failure {
    /// Back to `available` with `run_at = now() + delay` (database clock).
    Retry {
        delay: Duration,
    },
    /// Back to `available` after `delay` with the attempt given back (`attempt − 1`) and
    /// counted in `outages` instead.
    Postpone {
        delay: Duration,
    },
    Discard,
}

impl Failure {
    pub fn state(self) -> JobState {
        match self {
            Failure::Retry { .. } | Failure::Postpone { .. } => JobState::Available,
            Failure::Discard => JobState::Discarded,
        }
    }
}

/// The transition out of `running` after a failed attempt. `attempt` is the attempt that just
/// ended (1-based, as stored after the claim incremented it).
pub fn next(outcome: Outcome, attempt: i32, max_attempts: i32, policy: &RetryPolicy, jitter: f64) -> Failure {
    match outcome {
        Outcome::Permanent => Failure::Discard,
        Outcome::Unavailable { outages, budget } if outages < budget => {
            Failure::Postpone { delay: OUTAGE_BACKOFF.jittered(outages.saturating_add(1), jitter) }
        }
        // A shutdown is not the job's fault, but it did use an attempt; when none are left the
        // job is discarded like any other, so a job cannot loop forever through restarts.
        Outcome::Released if attempt < max_attempts => Failure::Retry { delay: Duration::ZERO },
        Outcome::Retryable | Outcome::LeaseExpired | Outcome::Released | Outcome::Unavailable { .. } => {
            if attempt >= max_attempts {
                Failure::Discard
            } else {
                Failure::Retry { delay: policy.jittered(attempt, jitter) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy { base: Duration::from_secs(2), cap: Duration::from_secs(60) };

    #[test]
    fn backoff_doubles_from_base_and_stops_at_cap() {
        let table = [(1, 2), (2, 4), (3, 8), (4, 16), (5, 32), (6, 60), (7, 60), (40, 60), (0, 2), (-3, 2)];
        for (attempt, secs) in table {
            assert_eq!(P.backoff(attempt), Duration::from_secs(secs), "attempt {attempt}");
        }
    }

    #[test]
    fn jitter_keeps_delay_in_upper_half() {
        assert_eq!(P.jittered(3, 0.0), Duration::from_secs(4));
        assert_eq!(P.jittered(3, 0.5), Duration::from_secs(6));
        assert!(P.jittered(3, 0.999) < Duration::from_secs(8));
        assert_eq!(P.jittered(3, 7.0), Duration::from_secs(8), "jitter is clamped");
    }

    #[test]
    fn transitions_out_of_running() {
        use Failure::*;
        use Outcome::*;
        let retry = |secs: u64| Retry { delay: Duration::from_secs(secs) };
        let postpone = |ms: u64| Postpone { delay: Duration::from_millis(ms) };
        let down = |outages: i32| Unavailable { outages, budget: 3 };
        // (outcome, attempt, max_attempts, expected) with jitter 0.0
        let table = [
            (Retryable, 1, 5, retry(1)),
            (Retryable, 2, 5, retry(2)),
            (Retryable, 4, 5, retry(8)),
            (Retryable, 5, 5, Discard),
            (Retryable, 6, 5, Discard),
            (Retryable, 1, 1, Discard),
            (Permanent, 1, 5, Discard),
            (LeaseExpired, 1, 3, retry(1)),
            (LeaseExpired, 3, 3, Discard),
            (Released, 1, 3, Retry { delay: Duration::ZERO }),
            (Released, 3, 3, Discard),
            // An outage gives the attempt back, even the last one, until the outage budget is spent;
            // then it is an ordinary retryable failure.
            // (OUTAGE_BACKOFF by the outage count: 1 s, 2 s, 4 s … 10 s, at jitter 0.0 their half.)
            (down(0), 1, 5, postpone(500)),
            (down(1), 1, 5, postpone(1000)),
            (down(2), 5, 5, postpone(2000)),
            (down(3), 1, 5, retry(1)),
            (down(3), 5, 5, Discard),
            (Unavailable { outages: 40, budget: 100 }, 1, 5, postpone(5000)),
        ];
        for (outcome, attempt, max, expected) in table {
            assert_eq!(next(outcome, attempt, max, &P, 0.0), expected, "{outcome:?} attempt {attempt}/{max}");
        }
    }
}

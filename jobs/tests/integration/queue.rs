//! The queue's promises, tested against a real Postgres: exactly-once effects under several
//! workers, transactional enqueue, NOTIFY wakeups, fencing, retries, discards, rescue, listener
//! recovery and graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jobs::queue::{
    DiscardInfo, Handler, JobArgs, JobContext, JobError, JobId, JobState, KindOptions, NewJob, Registry, RetryPolicy,
    run_maintenance, store,
};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;

use crate::support::{RunningWorker, big_pool, count, poll_for, test_config, wait_until};

const WAIT: Duration = Duration::from_secs(30);

fn fast_retry() -> KindOptions {
    KindOptions {
        retry: RetryPolicy { base: Duration::from_millis(10), cap: Duration::from_millis(20) },
        ..KindOptions::default()
    }
}

async fn create_effect_tables(pool: &PgPool) {
    sqlx::query("CREATE TABLE effect (job_id bigint NOT NULL, n bigint NOT NULL)").execute(pool).await.unwrap();
    sqlx::query("CREATE TABLE discard_log (job_id bigint NOT NULL, error text NOT NULL)").execute(pool).await.unwrap();
}

async fn job(pool: &PgPool, id: JobId) -> jobs::queue::Job {
    store::get(pool, id).await.unwrap().expect("job exists")
}

async fn enqueue<A: JobArgs>(pool: &PgPool, args: &A) -> JobId {
    store::enqueue(pool, &NewJob::from_args(args).unwrap()).await.unwrap().expect("inserted")
}

// ---- handlers -------------------------------------------------------------------------------

/// Writes one effect row in the job's finishing transaction.
#[derive(Serialize, Deserialize)]
struct Record {
    n: i64,
}
impl JobArgs for Record {
    const KIND: &'static str = "record";
}
struct RecordHandler;
impl Handler for RecordHandler {
    type Args = Record;
    async fn run(&self, ctx: JobContext, args: Record) -> Result<(), JobError> {
        let mut tx = ctx.begin_finish().await?;
        sqlx::query("INSERT INTO effect (job_id, n) VALUES ($1, $2)")
            .bind(ctx.id)
            .bind(args.n)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}

/// Does nothing: completed in batches by the worker.
#[derive(Serialize, Deserialize)]
struct Noop {}
impl JobArgs for Noop {
    const KIND: &'static str = "noop";
}
struct NoopHandler;
impl Handler for NoopHandler {
    type Args = Noop;
    async fn run(&self, _ctx: JobContext, _args: Noop) -> Result<(), JobError> {
        Ok(())
    }
}

/// Fails its first `fail_first` attempts; with `panic`, by panicking.
#[derive(Serialize, Deserialize)]
struct Flaky {
    fail_first: i32,
    permanent: bool,
    panic: bool,
}
impl JobArgs for Flaky {
    const KIND: &'static str = "flaky";
}
struct FlakyHandler;
impl Handler for FlakyHandler {
    type Args = Flaky;
    async fn run(&self, ctx: JobContext, args: Flaky) -> Result<(), JobError> {
        if ctx.attempt > args.fail_first {
            return Ok(());
        }
        if args.panic {
            panic!("flaky handler panics on attempt {}", ctx.attempt);
        }
        if args.permanent {
            return Err(JobError::permanent("input can never work"));
        }
        Err(JobError::retryable(format!("transient failure on attempt {}", ctx.attempt)))
    }

    async fn on_discard(&self, conn: &mut PgConnection, job: &DiscardInfo) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO discard_log (job_id, error) VALUES ($1, $2)")
            .bind(job.id)
            .bind(&job.error)
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// Sleeps; for timeouts and shutdown.
#[derive(Serialize, Deserialize)]
struct Sleepy {
    ms: u64,
}
impl JobArgs for Sleepy {
    const KIND: &'static str = "sleepy";
}
struct SleepyHandler;
impl Handler for SleepyHandler {
    type Args = Sleepy;
    async fn run(&self, _ctx: JobContext, args: Sleepy) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        Ok(())
    }
}

/// Waits for the test to open the gate, then tries to commit an effect.
#[derive(Serialize, Deserialize)]
struct Gated {}
impl JobArgs for Gated {
    const KIND: &'static str = "gated";
}
#[derive(Clone, Default)]
struct Gate {
    started: Arc<Notify>,
    open: Arc<Notify>,
    finish_refused: Arc<AtomicBool>,
}
impl Handler for Gate {
    type Args = Gated;
    async fn run(&self, ctx: JobContext, _args: Gated) -> Result<(), JobError> {
        self.started.notify_one();
        self.open.notified().await;
        let mut tx = match ctx.begin_finish().await {
            Ok(tx) => tx,
            Err(e) => {
                self.finish_refused.store(true, Ordering::Release);
                return Err(e);
            }
        };
        sqlx::query("INSERT INTO effect (job_id, n) VALUES ($1, 0)").bind(ctx.id).execute(&mut *tx).await?;
        tx.commit().await
    }
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(RecordHandler, KindOptions::default())
        .register(NoopHandler, KindOptions::default())
        .register(FlakyHandler, fast_retry())
        .register(SleepyHandler, KindOptions { timeout: Duration::from_millis(300), ..fast_retry() });
    r
}

// ---- tests ----------------------------------------------------------------------------------

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn several_workers_run_each_jobs_effects_exactly_once(opts: PgPoolOptions, connect: PgConnectOptions) {
    let pool = big_pool(opts, connect).await;
    create_effect_tables(&pool).await;
    let mut jobs: Vec<NewJob> = (0..2000).map(|n| NewJob::from_args(&Record { n }).unwrap()).collect();
    jobs.extend((0..1000).map(|_| NewJob::from_args(&Noop {}).unwrap()));
    assert_eq!(store::enqueue_many(&pool, &jobs).await.unwrap().len(), 3000);

    let workers: Vec<_> = (0..3).map(|_| RunningWorker::start(&pool, registry(), test_config())).collect();
    wait_until(WAIT, "every job completed", || async {
        count(&pool, "SELECT count(*) FROM job WHERE state <> 'completed'").await == 0
    })
    .await;
    for w in workers {
        w.stop().await;
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM effect").await, 2000);
    assert_eq!(count(&pool, "SELECT count(DISTINCT job_id) FROM effect").await, 2000);
    assert_eq!(count(&pool, "SELECT count(DISTINCT n) FROM effect").await, 2000);
    assert_eq!(count(&pool, "SELECT count(*) FROM job WHERE attempt <> 1").await, 0, "no job ran twice");
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn rolled_back_enqueue_never_runs(pool: PgPool) {
    create_effect_tables(&pool).await;
    let worker = RunningWorker::start(&pool, registry(), test_config());
    worker.wait_listening().await;

    let mut tx = pool.begin().await.unwrap();
    store::enqueue(&mut *tx, &NewJob::from_args(&Record { n: 1 }).unwrap()).await.unwrap();
    tx.rollback().await.unwrap();
    let committed = enqueue(&pool, &Record { n: 2 }).await;

    wait_until(WAIT, "the committed job ran", || async {
        count(&pool, "SELECT count(*) FROM effect WHERE n = 2").await == 1
    })
    .await;
    worker.stop().await;
    assert_eq!(count(&pool, "SELECT count(*) FROM job").await, 1, "only the committed job exists");
    assert_eq!(count(&pool, "SELECT count(*) FROM effect WHERE n = 1").await, 0);
    assert_eq!(job(&pool, committed).await.state(), Some(JobState::Completed));
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn notify_wakes_an_idle_worker_long_before_the_poll_interval(pool: PgPool) {
    create_effect_tables(&pool).await;
    let config = jobs::queue::WorkerConfig { poll_interval: Duration::from_secs(3600), ..test_config() };
    let worker = RunningWorker::start(&pool, registry(), config);
    worker.wait_listening().await;

    let started = Instant::now();
    enqueue(&pool, &Record { n: 7 }).await;
    wait_until(Duration::from_secs(10), "the job ran without a poll", || async {
        count(&pool, "SELECT count(*) FROM effect WHERE n = 7").await == 1
    })
    .await;
    println!("enqueue → effect committed in {:?} with a 1 h poll interval", started.elapsed());
    worker.stop().await;
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn worker_whose_lease_was_taken_over_cannot_finish(pool: PgPool) {
    create_effect_tables(&pool).await;
    let gate = Gate::default();
    let mut registry = Registry::new();
    registry.register(gate.clone(), fast_retry());
    // No poll, no heartbeat, no maintenance of its own during the test: worker A stalls like a
    // process paused by the OS while the rest of the system moves on.
    let config = jobs::queue::WorkerConfig {
        poll_interval: Duration::from_secs(3600),
        maintenance_interval: Duration::from_secs(3600),
        lease: Duration::from_secs(3600),
        ..test_config()
    };
    let worker_a = RunningWorker::start(&pool, registry.clone(), config);
    worker_a.wait_listening().await;
    let id = enqueue(&pool, &Gated {}).await;
    gate.started.notified().await;

    // A's lease runs out; the rescuer hands the job back and worker B claims it.
    sqlx::query("UPDATE job SET locked_until = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    // Worker A's own first maintenance round may hold the advisory lock at this moment (it
    // runs once at start); whichever round runs, the job must come back.
    wait_until(WAIT, "the rescuer hands the job back", || async {
        run_maintenance(&pool, &registry, Duration::from_secs(3600)).await.unwrap();
        job(&pool, id).await.state() == Some(JobState::Available)
    })
    .await;
    let kinds = vec![Gated::KIND.to_owned()];
    let claimed = poll_for(WAIT, "worker B claims the rescued job", || async {
        let claimed = store::claim(&pool, "default", &kinds, 1, "worker-b", Duration::from_secs(60)).await.unwrap();
        (!claimed.is_empty()).then_some(claimed)
    })
    .await;
    let b_token = claimed[0].lease_token;
    assert_eq!(claimed[0].attempt, 2);

    // A wakes up and tries to commit: the fence refuses and its effect rolls back.
    gate.open.notify_one();
    let refused = gate.finish_refused.clone();
    wait_until(WAIT, "worker A's finish is refused", || {
        let refused = refused.clone();
        async move { refused.load(Ordering::Acquire) }
    })
    .await;
    assert_eq!(count(&pool, "SELECT count(*) FROM effect").await, 0);
    let row = job(&pool, id).await;
    assert_eq!(row.state(), Some(JobState::Running));
    assert_eq!(row.lease_token, Some(b_token), "B still holds the job");
    assert!(store::complete_if_running(&pool, id, b_token).await.unwrap(), "B can finish");
    worker_a.stop().await;
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn retryable_failures_back_off_then_succeed(pool: PgPool) {
    create_effect_tables(&pool).await;
    let worker = RunningWorker::start(&pool, registry(), test_config());
    let id = enqueue(&pool, &Flaky { fail_first: 2, permanent: false, panic: false }).await;
    wait_until(WAIT, "completed after two failures", || async {
        job(&pool, id).await.state() == Some(JobState::Completed)
    })
    .await;
    worker.stop().await;
    let row = job(&pool, id).await;
    assert_eq!(row.attempt, 3);
    assert_eq!(row.errors.as_array().unwrap().len(), 2);
    assert_eq!(row.last_error.as_deref(), Some("transient failure on attempt 2"));
    assert_eq!(row.errors[0]["attempt"], 1);
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn discard_after_max_attempts_runs_the_hook_in_the_same_transaction(pool: PgPool) {
    create_effect_tables(&pool).await;
    let worker = RunningWorker::start(&pool, registry(), test_config());
    let failing =
        NewJob::from_args(&Flaky { fail_first: 100, permanent: false, panic: false }).unwrap().max_attempts(3);
    let id = store::enqueue(&pool, &failing).await.unwrap().unwrap();
    let permanent = enqueue(&pool, &Flaky { fail_first: 100, permanent: true, panic: false }).await;
    wait_until(WAIT, "both discarded", || async {
        count(&pool, "SELECT count(*) FROM job WHERE state = 'discarded'").await == 2
    })
    .await;
    worker.stop().await;

    let row = job(&pool, id).await;
    assert_eq!((row.attempt, row.errors.as_array().unwrap().len()), (3, 3));
    assert!(row.finished_at.is_some());
    let row = job(&pool, permanent).await;
    assert_eq!(row.attempt, 1, "a permanent error skips the remaining attempts");
    let logged: Vec<(i64, String)> =
        sqlx::query_as("SELECT job_id, error FROM discard_log ORDER BY job_id").fetch_all(&pool).await.unwrap();
    assert_eq!(
        logged,
        vec![(id.0, "transient failure on attempt 3".into()), (permanent.0, "input can never work".into())]
    );
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn a_panicking_handler_is_a_failed_attempt_and_the_worker_keeps_running(pool: PgPool) {
    create_effect_tables(&pool).await;
    let worker = RunningWorker::start(&pool, registry(), test_config());
    let id = enqueue(&pool, &Flaky { fail_first: 1, permanent: false, panic: true }).await;
    wait_until(WAIT, "completed on the second attempt", || async {
        job(&pool, id).await.state() == Some(JobState::Completed)
    })
    .await;
    let after = enqueue(&pool, &Record { n: 1 }).await;
    wait_until(WAIT, "a later job still runs", || async {
        job(&pool, after).await.state() == Some(JobState::Completed)
    })
    .await;
    worker.stop().await;
    let row = job(&pool, id).await;
    assert_eq!(row.attempt, 2);
    assert_eq!(row.last_error.as_deref(), Some("handler panicked: flaky handler panics on attempt 1"));
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn a_handler_over_its_time_limit_is_a_failed_attempt(pool: PgPool) {
    create_effect_tables(&pool).await;
    let worker = RunningWorker::start(&pool, registry(), test_config());
    let id = store::enqueue(&pool, &NewJob::from_args(&Sleepy { ms: 60_000 }).unwrap().max_attempts(1))
        .await
        .unwrap()
        .unwrap();
    wait_until(WAIT, "discarded after timing out", || async {
        job(&pool, id).await.state() == Some(JobState::Discarded)
    })
    .await;
    worker.stop().await;
    assert_eq!(job(&pool, id).await.last_error.as_deref(), Some("timed out after 0.3 s"));
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn rescuer_retries_expired_leases_and_discards_spent_ones(pool: PgPool) {
    create_effect_tables(&pool).await;
    let registry = registry();
    let retried = enqueue(&pool, &Flaky { fail_first: 0, permanent: false, panic: false }).await;
    let spent = store::enqueue(
        &pool,
        &NewJob::from_args(&Flaky { fail_first: 0, permanent: false, panic: false }).unwrap().max_attempts(1),
    )
    .await
    .unwrap()
    .unwrap();
    // A worker claims both and dies: nobody renews the leases.
    let claimed =
        store::claim(&pool, "default", &registry.kinds(), 10, "crashed", Duration::from_secs(60)).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let before = run_maintenance(&pool, &registry, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(before.rescued, 0, "leases still valid are left alone");
    sqlx::query("UPDATE job SET locked_until = now() - interval '1 second'").execute(&pool).await.unwrap();

    let report = run_maintenance(&pool, &registry, Duration::from_secs(3600)).await.unwrap();
    assert_eq!((report.ran, report.rescued, report.discarded), (true, 2, 1));
    let row = job(&pool, retried).await;
    assert_eq!(row.state(), Some(JobState::Available));
    assert_eq!((row.attempt, row.lease_token), (1, None));
    assert!(row.last_error.unwrap().starts_with("lease expired"));
    let row = job(&pool, spent).await;
    assert_eq!(row.state(), Some(JobState::Discarded));
    assert_eq!(count(&pool, "SELECT count(*) FROM discard_log").await, 1, "the discard hook ran");
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn maintenance_runs_in_one_worker_at_a_time(pool: PgPool) {
    let mut holder = pool.begin().await.unwrap();
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(0x6a6f_6273_6d61_696e_i64)
        .fetch_one(&mut *holder)
        .await
        .unwrap();
    assert!(held);
    let report = run_maintenance(&pool, &registry(), Duration::from_secs(1)).await.unwrap();
    assert!(!report.ran, "another holder of the lock means this round does nothing");
    holder.rollback().await.unwrap();
    assert!(run_maintenance(&pool, &registry(), Duration::from_secs(1)).await.unwrap().ran);
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn pruner_deletes_only_old_finished_jobs(pool: PgPool) {
    let old = enqueue(&pool, &Noop {}).await;
    let recent = enqueue(&pool, &Noop {}).await;
    let waiting = enqueue(&pool, &Noop {}).await;
    sqlx::query("UPDATE job SET state = 'completed', finished_at = now() - interval '2 hours' WHERE id = $1")
        .bind(old)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE job SET state = 'completed', finished_at = now() WHERE id = $1")
        .bind(recent)
        .execute(&pool)
        .await
        .unwrap();
    let report = run_maintenance(&pool, &registry(), Duration::from_secs(3600)).await.unwrap();
    assert_eq!(report.pruned, 1);
    assert!(store::get(&pool, old).await.unwrap().is_none());
    assert!(store::get(&pool, recent).await.unwrap().is_some());
    assert!(store::get(&pool, waiting).await.unwrap().is_some());
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn listener_killed_by_the_server_reconnects_and_no_job_is_missed(opts: PgPoolOptions, connect: PgConnectOptions) {
    let pool = big_pool(opts, connect).await;
    create_effect_tables(&pool).await;
    let config = jobs::queue::WorkerConfig { poll_interval: Duration::from_secs(3600), ..test_config() };
    let worker = RunningWorker::start(&pool, registry(), config);
    worker.wait_listening().await;

    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'listen%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(killed, vec![true], "exactly one listener connection was terminated");
    // Enqueued while the listener may be down: the poll after reconnecting must find them.
    let jobs: Vec<NewJob> = (0..50).map(|n| NewJob::from_args(&Record { n }).unwrap()).collect();
    store::enqueue_many(&pool, &jobs).await.unwrap();

    wait_until(WAIT, "every job ran despite the lost listener", || async {
        count(&pool, "SELECT count(*) FROM effect").await == 50
    })
    .await;
    assert!(worker.status.listener_reconnects.load(Ordering::Relaxed) >= 1);
    // And NOTIFY works again on the new connection.
    enqueue(&pool, &Record { n: 1000 }).await;
    wait_until(Duration::from_secs(10), "a job after the reconnect", || async {
        count(&pool, "SELECT count(*) FROM effect WHERE n = 1000").await == 1
    })
    .await;
    worker.stop().await;
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn graceful_shutdown_lets_in_flight_jobs_finish_and_leaves_nothing_running(pool: PgPool) {
    let registry = {
        let mut r = Registry::new();
        r.register(SleepyHandler, KindOptions::default());
        r
    };
    let jobs: Vec<NewJob> = (0..20).map(|_| NewJob::from_args(&Sleepy { ms: 300 }).unwrap()).collect();
    store::enqueue_many(&pool, &jobs).await.unwrap();
    let worker = RunningWorker::start(&pool, registry, test_config());
    wait_until(WAIT, "jobs running", || async {
        count(&pool, "SELECT count(*) FROM job WHERE state = 'running'").await > 0
    })
    .await;
    worker.stop().await;
    assert_eq!(count(&pool, "SELECT count(*) FROM job WHERE state = 'running'").await, 0);
    assert!(count(&pool, "SELECT count(*) FROM job WHERE state = 'completed'").await >= 1);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM job WHERE state = 'available' AND attempt = 0").await
            + count(&pool, "SELECT count(*) FROM job WHERE state = 'completed'").await,
        20
    );
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn shutdown_hands_back_jobs_that_outlive_the_grace_period(pool: PgPool) {
    let registry = {
        let mut r = Registry::new();
        r.register(SleepyHandler, KindOptions::default());
        r
    };
    let id = enqueue(&pool, &Sleepy { ms: 600_000 }).await;
    let config = jobs::queue::WorkerConfig { shutdown_grace: Duration::from_millis(200), ..test_config() };
    let worker = RunningWorker::start(&pool, registry, config);
    wait_until(WAIT, "job running", || async { job(&pool, id).await.state() == Some(JobState::Running) }).await;
    worker.stop().await;
    let row = job(&pool, id).await;
    assert_eq!(row.state(), Some(JobState::Available));
    assert_eq!(row.last_error.as_deref(), Some("the worker shut down before the job finished"));
    assert_eq!(count(&pool, "SELECT count(*) FROM job WHERE run_at <= now()").await, 1, "runnable again at once");
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn claim_skips_rows_locked_by_another_transaction(pool: PgPool) {
    let ids: Vec<JobId> =
        store::enqueue_many(&pool, &(0..3).map(|_| NewJob::from_args(&Noop {}).unwrap()).collect::<Vec<_>>())
            .await
            .unwrap();
    let mut other = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM job WHERE id = $1 FOR UPDATE").bind(ids[0]).execute(&mut *other).await.unwrap();
    let claimed = store::claim(&pool, "default", &[Noop::KIND.into()], 10, "w", Duration::from_secs(60)).await.unwrap();
    let mut got: Vec<JobId> = claimed.iter().map(|j| j.id).collect();
    got.sort();
    assert_eq!(got, ids[1..].to_vec());
    other.rollback().await.unwrap();
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn claim_uses_the_partial_index_of_available_rows(pool: PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET enable_seqscan = off").execute(&mut *conn).await.unwrap();
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT id FROM job WHERE queue = 'default' AND state = 'available' AND run_at <= now()
         AND kind = ANY('{noop}') ORDER BY priority, run_at, id LIMIT 10 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert!(plan.iter().any(|line| line.contains("job_claimable_idx")), "plan: {plan:#?}");
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn unique_key_allows_one_active_job_per_thing(pool: PgPool) {
    let job = || NewJob::from_args(&Noop {}).unwrap().unique_key("evidence-1");
    let first = store::enqueue(&pool, &job()).await.unwrap().expect("first is inserted");
    assert_eq!(store::enqueue(&pool, &job()).await.unwrap(), None, "second is skipped");
    let mut conn = pool.acquire().await.unwrap();
    store::cancel(&mut conn, first).await.unwrap();
    assert!(store::enqueue(&pool, &job()).await.unwrap().is_some(), "a finished job frees the key");
    assert!(matches!(store::retry(&mut conn, first).await, Err(jobs::queue::Error::UniqueConflict)));
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn operators_cancel_and_retry_jobs(pool: PgPool) {
    let id = enqueue(&pool, &Noop {}).await;
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(store::cancel(&mut conn, id).await.unwrap().state(), Some(JobState::Cancelled));
    let err = store::cancel(&mut conn, id).await.unwrap_err();
    assert_eq!(err.to_string(), format!("job {id} is cancelled; cancel needs available or running"));
    let row = store::retry(&mut conn, id).await.unwrap();
    assert_eq!((row.state(), row.attempt, row.finished_at), (Some(JobState::Available), 0, None));
    assert!(matches!(store::retry(&mut conn, JobId(999_999)).await, Err(jobs::queue::Error::NotFound(_))));
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn cancelling_a_running_job_fences_out_its_worker(pool: PgPool) {
    create_effect_tables(&pool).await;
    let gate = Gate::default();
    let mut registry = Registry::new();
    registry.register(gate.clone(), fast_retry());
    let worker = RunningWorker::start(&pool, registry, test_config());
    let id = enqueue(&pool, &Gated {}).await;
    gate.started.notified().await;
    let mut conn = pool.acquire().await.unwrap();
    store::cancel(&mut conn, id).await.unwrap();
    gate.open.notify_one();
    worker.stop().await;
    assert_eq!(job(&pool, id).await.state(), Some(JobState::Cancelled));
    assert_eq!(count(&pool, "SELECT count(*) FROM effect").await, 0);
}

#[sqlx::test(migrator = "jobs::MIGRATOR")]
async fn claims_commit_asynchronously_without_changing_the_connection(_opts: PgPoolOptions, connect: PgConnectOptions) {
    // One connection, so the statements after the claim run on the very connection it used.
    let pool = PgPoolOptions::new().max_connections(1).connect_with(connect).await.unwrap();
    let id = store::enqueue(&pool, &NewJob::from_args(&Noop {}).unwrap()).await.unwrap().unwrap();
    let default: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&pool).await.unwrap();

    let claimed = store::claim(&pool, "default", &[Noop::KIND.into()], 10, "w", Duration::from_secs(60)).await.unwrap();
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);
    assert_eq!(job(&pool, id).await.state(), Some(JobState::Running), "the claim is committed and visible");

    let after: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&pool).await.unwrap();
    assert_eq!(after, default, "the claim's setting ended with its own transaction");
    // A caller's transaction on the same connection commits as the server is configured.
    let mut tx = pool.begin().await.unwrap();
    let inside: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(inside, default);
    tx.rollback().await.unwrap();
}

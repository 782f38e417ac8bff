//! The queue's promises, tested against a real Postgres: exactly-once effects under several
//! workers, transactional enqueue, NOTIFY wakeups, fencing, retries, discards, rescue, listener
//! recovery and graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use queue::{
    ClaimPosition, DiscardInfo, Failure, Handler, JobArgs, JobContext, JobError, JobId, JobState, KindOptions, NewJob,
    Registry, RetryPolicy, begin_round, run_maintenance, store,
};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;

use crate::support::{RunningWorker, T, big_pool, count, drain, poll_for, test_config, wait_until};

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

async fn job(pool: &PgPool, id: JobId) -> queue::Job {
    store::get(&T, pool, id).await.unwrap().expect("job exists")
}

async fn enqueue<A: JobArgs>(pool: &PgPool, args: &A) -> JobId {
    store::enqueue(&T, pool, &NewJob::from_args(args).unwrap()).await.unwrap().expect("inserted")
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

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn several_workers_run_each_jobs_effects_exactly_once(opts: PgPoolOptions, connect: PgConnectOptions) {
    let pool = big_pool(opts, connect).await;
    create_effect_tables(&pool).await;
    let mut jobs: Vec<NewJob> = (0..2000).map(|n| NewJob::from_args(&Record { n }).unwrap()).collect();
    jobs.extend((0..1000).map(|_| NewJob::from_args(&Noop {}).unwrap()));
    assert_eq!(store::enqueue_many(&T, &pool, &jobs).await.unwrap().len(), 3000);

    // A lease far longer than the test: a second attempt can only come from a protocol bug, not
    // from a slow machine letting a lease run out.
    let config = queue::WorkerConfig { lease: Duration::from_secs(600), ..test_config() };
    let ran = futures_util::future::join_all((0..3).map(|_| drain(&pool, registry(), config.clone()))).await;
    assert_eq!(ran.iter().sum::<u64>(), 3000, "each job ran once, in one of the workers: {ran:?}");
    assert_eq!(count(&pool, "SELECT count(*) FROM job WHERE state <> 'completed'").await, 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM effect").await, 2000);
    assert_eq!(count(&pool, "SELECT count(DISTINCT job_id) FROM effect").await, 2000);
    assert_eq!(count(&pool, "SELECT count(DISTINCT n) FROM effect").await, 2000);
    assert_eq!(count(&pool, "SELECT count(*) FROM job WHERE attempt <> 1").await, 0, "no job ran twice");
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn rolled_back_enqueue_never_runs(pool: PgPool) {
    create_effect_tables(&pool).await;
    let worker = RunningWorker::start(&pool, registry(), test_config());
    worker.wait_listening().await;

    let mut tx = pool.begin().await.unwrap();
    store::enqueue(&T, &mut *tx, &NewJob::from_args(&Record { n: 1 }).unwrap()).await.unwrap();
    tx.rollback().await.unwrap();
    let committed = enqueue(&pool, &Record { n: 2 }).await;

    wait_until(WAIT, "the committed job ran", || async {
        count(&pool, "SELECT count(*) FROM effect WHERE n = 2").await == 1
    })
    .await;
    worker.stop().await;
    assert_eq!(count(&pool, "SELECT count(*) FROM job").await, 1, "only the committed job exists");
    assert_eq!(count(&pool, "SELECT count(*) FROM effect WHERE n = 1").await, 0);
    assert_eq!(job(&pool, committed).await.state, JobState::Completed);
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn notify_wakes_an_idle_worker_long_before_the_poll_interval(pool: PgPool) {
    create_effect_tables(&pool).await;
    // One claim loop whose first poll runs at start and the next in an hour. Apart from
    // notifications it can be woken at most three times (its first claim, the interval's first
    // tick, the listener's connect), and those may still be pending when it reports listening:
    // four jobs enqueued one after another can only all run if notifications wake it.
    let config = queue::WorkerConfig { poll_interval: Duration::from_secs(3600), claimers: 1, ..test_config() };
    let worker = RunningWorker::start(&pool, registry(), config);
    worker.wait_listening().await;
    for n in 0..4 {
        enqueue(&pool, &Record { n }).await;
        wait_until(Duration::from_secs(10), &format!("job {n} ran without a poll"), || async {
            count(&pool, "SELECT count(*) FROM effect").await == n + 1
        })
        .await;
    }
    assert_eq!(worker.status.listener_reconnects.load(Ordering::Relaxed), 0, "no reconnect woke it either");
    worker.stop().await;
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn rolled_back_enqueue_sends_no_notification(pool: PgPool) {
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await.unwrap();
    listener.listen(T.channel()).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    store::enqueue(&T, &mut *tx, &NewJob::from_args(&Noop {}).unwrap().queue("rolled-back")).await.unwrap();
    tx.rollback().await.unwrap();
    store::enqueue(&T, &pool, &NewJob::from_args(&Noop {}).unwrap().queue("committed")).await.unwrap();
    // Notifications arrive in commit order: had the rolled-back enqueue sent one, it would come first.
    let first = tokio::time::timeout(WAIT, listener.recv()).await.expect("a notification").unwrap();
    assert_eq!(first.payload(), "committed");
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn worker_whose_lease_was_taken_over_cannot_finish(pool: PgPool) {
    create_effect_tables(&pool).await;
    let gate = Gate::default();
    let mut registry = Registry::new();
    registry.register(gate.clone(), fast_retry());
    // No poll, no heartbeat, no maintenance of its own during the test: worker A stalls like a
    // process paused by the OS while the rest of the system moves on. Its one slot is held by the
    // stalled job, so it cannot claim the job again once it is rescued. (With free slots it
    // could: a wakeup still on its way, such as the enqueue's own notification arriving after
    // the rescue, made it claim the rescued job before the test saw it available, and the test
    // then waited for a rescue that could never come. That was this test's 1-in-20 failure.)
    let config = queue::WorkerConfig {
        concurrency: 1,
        claimers: 1,
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
    // Worker A's own first maintenance round (it runs once at start) may come late, hold the
    // advisory lock, or be the one that rescues the job: whichever round runs, the job must
    // come back. A cannot take it again: its one slot is held by the stalled attempt.
    wait_until(WAIT, "the rescuer hands the job back", || async {
        run_maintenance(&pool, &T, &registry, Duration::from_secs(3600), WAIT).await.unwrap();
        job(&pool, id).await.state == JobState::Available
    })
    .await;
    let kinds = vec![Gated::KIND.to_owned()];
    let claimed = poll_for(WAIT, "worker B claims the rescued job", || async {
        let claimed = store::claim(&T, &pool, "default", &kinds, 1, "worker-b", Duration::from_secs(60)).await.unwrap();
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
    assert_eq!(row.state, JobState::Running);
    assert_eq!(row.lease_token, Some(b_token), "B still holds the job");
    assert!(store::complete_if_running(&T, &pool, id, b_token).await.unwrap(), "B can finish");
    worker_a.stop().await;
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn retryable_failures_back_off_then_succeed(pool: PgPool) {
    create_effect_tables(&pool).await;
    let id = enqueue(&pool, &Flaky { fail_first: 2, permanent: false, panic: false }).await;
    drain(&pool, registry(), test_config()).await;
    let row = job(&pool, id).await;
    assert_eq!((row.state, row.attempt), (JobState::Completed, 3));
    assert_eq!(row.errors.as_array().unwrap().len(), 2);
    assert_eq!(row.last_error.as_deref(), Some("transient failure on attempt 2"));
    assert_eq!(row.errors[0]["attempt"], 1);
    // Each retry waited out its backoff: attempt n+1 started no earlier than failure n plus
    // half of base·2^(n−1) (fast_retry: base 10 ms, cap 20 ms; jitter keeps the upper half).
    let waited: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM (e2 ->> 'at')::timestamptz - (e1 ->> 'at')::timestamptz)::float8
         FROM job, LATERAL (SELECT errors -> 0 AS e1, errors -> 1 AS e2) AS e WHERE id = $1",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(waited[0] >= 0.005, "the second attempt came {:.4} s after the first failure", waited[0]);
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn a_retry_is_scheduled_by_the_backoff(pool: PgPool) {
    let mut registry = Registry::new();
    let policy = RetryPolicy { base: Duration::from_secs(40), cap: Duration::from_secs(300) };
    registry.register(FlakyHandler, KindOptions { retry: policy, ..KindOptions::default() });
    let flaky = NewJob::from_args(&Flaky { fail_first: 100, permanent: false, panic: false }).unwrap().max_attempts(2);
    let id = store::enqueue(&T, &pool, &flaky).await.unwrap().unwrap();
    let worker = RunningWorker::start(&pool, registry, test_config());
    wait_until(WAIT, "the first attempt failed", || async {
        job(&pool, id).await.attempt >= 1 && job(&pool, id).await.last_error.is_some()
    })
    .await;
    worker.stop().await;
    assert_eq!(job(&pool, id).await.state, JobState::Available, "the second attempt waits for its time");
    // run_at and the error's time come from one statement's now(): their difference is the delay
    // state::next chose, in [base/2, base) for the first failure.
    let delay: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM run_at - (errors -> 0 ->> 'at')::timestamptz)::float8 FROM job WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!((20.0..40.0).contains(&delay), "run_at is {delay} s after the failure");
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn discard_after_max_attempts_runs_the_hook_in_the_same_transaction(pool: PgPool) {
    create_effect_tables(&pool).await;
    let failing =
        NewJob::from_args(&Flaky { fail_first: 100, permanent: false, panic: false }).unwrap().max_attempts(3);
    let id = store::enqueue(&T, &pool, &failing).await.unwrap().unwrap();
    let permanent = enqueue(&pool, &Flaky { fail_first: 100, permanent: true, panic: false }).await;
    drain(&pool, registry(), test_config()).await;
    assert_eq!(count(&pool, "SELECT count(*) FROM job WHERE state = 'discarded'").await, 2);
    // The hook's row and the discarded job row were written by one transaction: same xmin.
    let same_tx = count(
        &pool,
        "SELECT count(*) FROM job j JOIN discard_log d ON d.job_id = j.id WHERE j.xmin::text = d.xmin::text",
    )
    .await;
    assert_eq!(same_tx, 2, "each discard and its hook committed in one transaction");

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

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn a_panicking_handler_is_a_failed_attempt_and_the_worker_keeps_running(pool: PgPool) {
    create_effect_tables(&pool).await;
    let id = enqueue(&pool, &Flaky { fail_first: 1, permanent: false, panic: true }).await;
    let after = enqueue(&pool, &Record { n: 1 }).await;
    drain(&pool, registry(), test_config()).await;
    assert_eq!(job(&pool, after).await.state, JobState::Completed, "a later job still ran");
    let row = job(&pool, id).await;
    assert_eq!((row.state, row.attempt), (JobState::Completed, 2));
    assert_eq!(row.errors[0]["error"], "handler panicked: flaky handler panics on attempt 1");
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn a_handler_over_its_time_limit_is_a_failed_attempt(pool: PgPool) {
    create_effect_tables(&pool).await;
    let id = store::enqueue(&T, &pool, &NewJob::from_args(&Sleepy { ms: 60_000 }).unwrap().max_attempts(1))
        .await
        .unwrap()
        .unwrap();
    drain(&pool, registry(), test_config()).await;
    let row = job(&pool, id).await;
    assert_eq!(row.state, JobState::Discarded);
    assert_eq!(row.last_error.as_deref(), Some("timed out after 0.3 s"));
}

/// Sleeps past several leases; counts the lease renewals it sees.
#[derive(Serialize, Deserialize)]
struct Long {
    ms: u64,
}
impl JobArgs for Long {
    const KIND: &'static str = "long";
}
struct LongHandler;
impl Handler for LongHandler {
    type Args = Long;
    async fn run(&self, _ctx: JobContext, args: Long) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        Ok(())
    }
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn a_heartbeat_keeps_a_job_alive_past_its_first_lease(pool: PgPool) {
    let mut registry = Registry::new();
    registry.register(LongHandler, KindOptions::default());
    // A 3 s lease renewed every 500 ms, a job of 7 s and a rescuer every 200 ms: without the
    // heartbeat the lease would run out twice and the job be taken back.
    let config = queue::WorkerConfig {
        lease: Duration::from_secs(3),
        heartbeat: Some(Duration::from_millis(500)),
        ..test_config()
    };
    let id = enqueue(&pool, &Long { ms: 7000 }).await;
    drain(&pool, registry, config).await;
    let row = job(&pool, id).await;
    assert_eq!((row.state, row.attempt), (JobState::Completed, 1));
    assert_eq!(row.errors, serde_json::json!([]), "no attempt was lost to the rescuer");
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn a_heartbeat_that_lands_first_beats_the_rescuer(pool: PgPool) {
    let registry = registry();
    let id = enqueue(&pool, &Noop {}).await;
    let claimed = store::claim(&T, &pool, "default", &registry.kinds(), 1, "w", Duration::from_secs(60)).await.unwrap();
    let token = claimed[0].lease_token;
    sqlx::query("UPDATE job SET locked_until = now() - interval '1 second'").execute(&pool).await.unwrap();

    // The heartbeat renews the expired lease and has not committed yet when the rescuer runs:
    // the rescuer skips the row it holds instead of waiting for it or taking it.
    let mut beat = pool.begin().await.unwrap();
    assert_eq!(
        store::heartbeat(&T, &mut *beat, &[id], &[token], Duration::from_secs(60)).await.unwrap().held,
        vec![id]
    );
    let during = tokio::time::timeout(WAIT, run_maintenance(&pool, &T, &registry, Duration::from_secs(3600), WAIT))
        .await
        .expect("the rescuer does not wait for the heartbeat's row")
        .unwrap();
    assert_eq!((during.ran, during.rescued), (true, 0));
    beat.commit().await.unwrap();

    // Committed, the renewed lease is no longer expired: the next round leaves it too.
    let after = run_maintenance(&pool, &T, &registry, Duration::from_secs(3600), WAIT).await.unwrap();
    assert_eq!(after.rescued, 0);
    let row = job(&pool, id).await;
    assert_eq!((row.state, row.lease_token), (JobState::Running, Some(token)), "the worker still holds its job");
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn a_worker_whose_lease_was_taken_over_can_neither_fail_its_job_nor_renew_it(pool: PgPool) {
    let registry = registry();
    let lease = Duration::from_secs(60);
    let id = enqueue(&pool, &Noop {}).await;
    let a = store::claim(&T, &pool, "default", &registry.kinds(), 1, "worker-a", lease).await.unwrap();
    let token_a = a[0].lease_token;
    // A stalls past its lease; the rescuer hands the job back and worker B claims it.
    sqlx::query("UPDATE job SET locked_until = now() - interval '1 second'").execute(&pool).await.unwrap();
    let rescue = run_maintenance(&pool, &T, &registry, Duration::from_secs(3600), WAIT).await.unwrap();
    assert_eq!(rescue.rescued, 1);
    // The rescue schedules the retry after its backoff; B claims it once it is due.
    let b = poll_for(WAIT, "worker B claims the rescued job", || async {
        let claimed = store::claim(&T, &pool, "default", &registry.kinds(), 1, "worker-b", lease).await.unwrap();
        (!claimed.is_empty()).then_some(claimed)
    })
    .await;
    let token_b = b[0].lease_token;
    let taken = job(&pool, id).await;

    // A wakes up: its failure and its heartbeat find no row of theirs, and say so.
    let retry = Failure::Retry { delay: Duration::from_secs(1) };
    assert!(!store::fail_if_running(&T, &pool, id, token_a, retry, "A's late failure").await.unwrap());
    let beat = store::heartbeat(&T, &pool, &[id], &[token_a], Duration::from_secs(3600)).await.unwrap();
    assert_eq!(beat, store::Beat::default(), "nothing held, nothing skipped");
    let row = job(&pool, id).await;
    assert_eq!((row.state, row.lease_token, row.attempt), (JobState::Running, Some(token_b), 2));
    assert_eq!(row.locked_until, taken.locked_until, "B's lease is neither renewed nor cut by A");
    assert!(!row.errors.to_string().contains("A's late failure"), "A's failure is not recorded: {}", row.errors);

    // B, which holds the lease, can do both.
    assert_eq!(store::heartbeat(&T, &pool, &[id], &[token_b], Duration::from_secs(3600)).await.unwrap().held, vec![id]);
    assert!(store::fail_if_running(&T, &pool, id, token_b, retry, "B's failure").await.unwrap());
    assert_eq!(job(&pool, id).await.state, JobState::Available);
}

/// Fails permanently; its discard hook fails too (it writes to a table that does not exist).
#[derive(Serialize, Deserialize)]
struct BadHook {}
impl JobArgs for BadHook {
    const KIND: &'static str = "bad_hook";
}
#[derive(Clone, Default)]
struct BadHookHandler {
    hook_ran: Arc<AtomicBool>,
}
impl Handler for BadHookHandler {
    type Args = BadHook;
    async fn run(&self, _ctx: JobContext, _args: BadHook) -> Result<(), JobError> {
        Err(JobError::permanent("never works"))
    }

    async fn on_discard(&self, conn: &mut PgConnection, _job: &DiscardInfo) -> Result<(), sqlx::Error> {
        self.hook_ran.store(true, Ordering::Release);
        sqlx::query("INSERT INTO no_such_table VALUES (1)").execute(conn).await?;
        Ok(())
    }
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn a_failing_discard_hook_rolls_the_discard_back(pool: PgPool) {
    let handler = BadHookHandler::default();
    let mut registry = Registry::new();
    registry.register(handler.clone(), KindOptions::default());
    let id = enqueue(&pool, &BadHook {}).await;
    let worker = RunningWorker::start(&pool, registry.clone(), test_config());
    let hook_ran = handler.hook_ran.clone();
    wait_until(WAIT, "the discard hook ran", move || {
        let hook_ran = hook_ran.clone();
        async move { hook_ran.load(Ordering::Acquire) }
    })
    .await;
    // Stopping waits for the attempt's task, so its transaction has ended either way.
    worker.stop().await;
    let row = job(&pool, id).await;
    assert_eq!((row.state, row.finished_at), (JobState::Running, None), "the worker's discard rolled back");
    assert_eq!(row.errors, serde_json::json!([]), "and with it the error it would have recorded");

    // The rescuer's discard (attempts spent) rolls back the same way, its whole round with it.
    sqlx::query("UPDATE job SET locked_until = now() - interval '1 second', max_attempts = 1")
        .execute(&pool)
        .await
        .unwrap();
    assert!(run_maintenance(&pool, &T, &registry, Duration::from_secs(3600), WAIT).await.is_err());
    assert_eq!(job(&pool, id).await.state, JobState::Running);
}

/// Records whether its own job row is free while it works: a transaction kept open by the
/// claim (or by anything else of the worker's for this job) would hold the row's lock.
#[derive(Serialize, Deserialize)]
struct Observe {}
impl JobArgs for Observe {
    const KIND: &'static str = "observe";
}
#[derive(Clone)]
struct ObserveHandler {
    pool: PgPool,
    free: Arc<std::sync::Mutex<Vec<bool>>>,
}
impl Handler for ObserveHandler {
    type Args = Observe;
    async fn run(&self, ctx: JobContext, _args: Observe) -> Result<(), JobError> {
        let mut tx = self.pool.begin().await?;
        let locked =
            sqlx::query("SELECT id FROM job WHERE id = $1 FOR UPDATE NOWAIT").bind(ctx.id).execute(&mut *tx).await;
        tx.rollback().await?;
        self.free.lock().unwrap().push(locked.is_ok());
        Ok(())
    }
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn no_transaction_is_open_while_a_handler_works(pool: PgPool) {
    let handler = ObserveHandler { pool: pool.clone(), free: Arc::default() };
    let mut registry = Registry::new();
    registry.register(handler.clone(), KindOptions::default());
    let jobs: Vec<NewJob> = (0..5).map(|_| NewJob::from_args(&Observe {}).unwrap()).collect();
    store::enqueue_many(&T, &pool, &jobs).await.unwrap();
    // A lease long enough that no heartbeat (which locks the row for a moment) falls inside a job.
    let config = queue::WorkerConfig { lease: Duration::from_secs(600), ..test_config() };
    drain(&pool, registry, config).await;
    assert_eq!(*handler.free.lock().unwrap(), vec![true; 5], "each job's row was unlocked while it ran");
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn rescuer_retries_expired_leases_and_discards_spent_ones(pool: PgPool) {
    create_effect_tables(&pool).await;
    let registry = registry();
    let retried = enqueue(&pool, &Flaky { fail_first: 0, permanent: false, panic: false }).await;
    let spent = store::enqueue(
        &T,
        &pool,
        &NewJob::from_args(&Flaky { fail_first: 0, permanent: false, panic: false }).unwrap().max_attempts(1),
    )
    .await
    .unwrap()
    .unwrap();
    // A worker claims both and dies: nobody renews the leases.
    let claimed =
        store::claim(&T, &pool, "default", &registry.kinds(), 10, "crashed", Duration::from_secs(60)).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let before = run_maintenance(&pool, &T, &registry, Duration::from_secs(3600), WAIT).await.unwrap();
    assert_eq!(before.rescued, 0, "leases still valid are left alone");
    sqlx::query("UPDATE job SET locked_until = now() - interval '1 second'").execute(&pool).await.unwrap();

    let report = run_maintenance(&pool, &T, &registry, Duration::from_secs(3600), WAIT).await.unwrap();
    assert_eq!((report.ran, report.rescued, report.discarded), (true, 2, 1));
    let row = job(&pool, retried).await;
    assert_eq!(row.state, JobState::Available);
    assert_eq!((row.attempt, row.lease_token), (1, None));
    assert!(row.last_error.unwrap().starts_with("lease expired"));
    let row = job(&pool, spent).await;
    assert_eq!(row.state, JobState::Discarded);
    assert_eq!(count(&pool, "SELECT count(*) FROM discard_log").await, 1, "the discard hook ran");
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn maintenance_runs_in_one_worker_at_a_time(pool: PgPool) {
    let mut holder = pool.begin().await.unwrap();
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(queue::MAINTENANCE_LOCK)
        .fetch_one(&mut *holder)
        .await
        .unwrap();
    assert!(held);
    let report = run_maintenance(&pool, &T, &registry(), Duration::from_secs(1), WAIT).await.unwrap();
    assert!(!report.ran, "another holder of the lock means this round does nothing");
    holder.rollback().await.unwrap();
    assert!(run_maintenance(&pool, &T, &registry(), Duration::from_secs(1), WAIT).await.unwrap().ran);
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn a_worker_stalled_inside_a_maintenance_round_holds_it_for_one_bound_at_most(pool: PgPool) {
    // A worker stopped (SIGSTOP) or cut off inside its round leaves its transaction idle, with
    // the round's lock: the server ends it after the bound, and the other workers' rounds run.
    let bound = Duration::from_millis(500);
    let stalled = begin_round(&pool, bound).await.unwrap().expect("no other round");
    let report = run_maintenance(&pool, &T, &registry(), Duration::from_secs(1), bound).await.unwrap();
    assert!(!report.ran, "the stalled round holds the lock");
    wait_until(WAIT, "another worker's round runs", || {
        let pool = pool.clone();
        async move { run_maintenance(&pool, &T, &registry(), Duration::from_secs(1), bound).await.unwrap().ran }
    })
    .await;
    drop(stalled);
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
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
    let report = run_maintenance(&pool, &T, &registry(), Duration::from_secs(3600), WAIT).await.unwrap();
    assert_eq!(report.pruned, 1);
    assert!(store::get(&T, &pool, old).await.unwrap().is_none());
    assert!(store::get(&T, &pool, recent).await.unwrap().is_some());
    assert!(store::get(&T, &pool, waiting).await.unwrap().is_some());
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn listener_killed_by_the_server_reconnects_and_no_job_is_missed(opts: PgPoolOptions, connect: PgConnectOptions) {
    let pool = big_pool(opts, connect).await;
    create_effect_tables(&pool).await;
    let config = queue::WorkerConfig { poll_interval: Duration::from_secs(3600), ..test_config() };
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
    store::enqueue_many(&T, &pool, &jobs).await.unwrap();

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

/// Works until its worker is asked to stop, then 200 ms more: in flight across the shutdown.
#[derive(Serialize, Deserialize)]
struct Held {}
impl JobArgs for Held {
    const KIND: &'static str = "held";
}
#[derive(Clone)]
struct HeldHandler {
    shutdown: tokio_util::sync::CancellationToken,
}
impl Handler for HeldHandler {
    type Args = Held;
    async fn run(&self, _ctx: JobContext, _args: Held) -> Result<(), JobError> {
        self.shutdown.cancelled().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(())
    }
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn graceful_shutdown_lets_in_flight_jobs_finish_and_leaves_nothing_running(pool: PgPool) {
    let jobs: Vec<NewJob> = (0..10).map(|_| NewJob::from_args(&Held {}).unwrap()).collect();
    store::enqueue_many(&T, &pool, &jobs).await.unwrap();
    let config = queue::WorkerConfig { concurrency: 4, claimers: 1, ..test_config() };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut registry = Registry::new();
    registry.register(HeldHandler { shutdown: shutdown.clone() }, KindOptions::default());
    let worker = queue::Worker::new(pool.clone(), registry, config).unwrap();
    let handle = tokio::spawn(worker.run(shutdown.clone()));
    wait_until(WAIT, "four jobs running (every slot)", || async {
        count(&pool, "SELECT count(*) FROM job WHERE state = 'running'").await == 4
    })
    .await;
    // The four finish 200 ms after the shutdown request, well within the 5 s grace period.
    shutdown.cancel();
    handle.await.unwrap();
    assert_eq!(count(&pool, "SELECT count(*) FROM job WHERE state = 'running'").await, 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM job WHERE state = 'completed'").await, 4, "the in-flight four");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM job WHERE state = 'available' AND attempt = 0").await,
        6,
        "no claim after the shutdown"
    );
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn shutdown_hands_back_jobs_that_outlive_the_grace_period(pool: PgPool) {
    let registry = {
        let mut r = Registry::new();
        r.register(SleepyHandler, KindOptions::default());
        r
    };
    let id = enqueue(&pool, &Sleepy { ms: 600_000 }).await;
    let config = queue::WorkerConfig { shutdown_grace: Duration::from_millis(200), ..test_config() };
    let worker = RunningWorker::start(&pool, registry, config);
    wait_until(WAIT, "job running", || async { job(&pool, id).await.state == JobState::Running }).await;
    worker.stop().await;
    let row = job(&pool, id).await;
    assert_eq!(row.state, JobState::Available);
    assert_eq!(row.last_error.as_deref(), Some("the worker shut down before the job finished"));
    assert_eq!(count(&pool, "SELECT count(*) FROM job WHERE run_at <= now()").await, 1, "runnable again at once");
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn claim_skips_rows_locked_by_another_transaction(pool: PgPool) {
    let ids: Vec<JobId> =
        store::enqueue_many(&T, &pool, &(0..3).map(|_| NewJob::from_args(&Noop {}).unwrap()).collect::<Vec<_>>())
            .await
            .unwrap();
    let mut other = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM job WHERE id = $1 FOR UPDATE").bind(ids[0]).execute(&mut *other).await.unwrap();
    let claimed =
        store::claim(&T, &pool, "default", &[Noop::KIND.into()], 10, "w", Duration::from_secs(60)).await.unwrap();
    let mut got: Vec<JobId> = claimed.iter().map(|j| j.id).collect();
    got.sort();
    assert_eq!(got, ids[1..].to_vec());
    other.rollback().await.unwrap();
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn claim_uses_the_partial_index_of_available_rows(pool: PgPool) {
    // A table that looks like production: mostly finished rows, a few waiting.
    let jobs: Vec<NewJob> = (0..20_000).map(|_| NewJob::from_args(&Noop {}).unwrap()).collect();
    store::enqueue_many(&T, &pool, &jobs).await.unwrap();
    sqlx::query("UPDATE job SET state = 'completed', finished_at = now() WHERE id % 100 <> 0")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("ANALYZE job").execute(&pool).await.unwrap();
    let plan = store::explain_claim(&T, &pool, "default", &[Noop::KIND.into()], 10, None).await.unwrap();
    assert!(plan.iter().any(|line| line.contains("job_claimable_idx")), "plan: {plan:#?}");
    // A resumed claim starts the index scan at its position: the row comparison is an index
    // condition, not a filter applied to every entry before it.
    let after = ClaimPosition { priority: 0, run_at: chrono::Utc::now(), id: JobId(10_000) };
    let plan = store::explain_claim(&T, &pool, "default", &[Noop::KIND.into()], 10, Some(&after)).await.unwrap();
    let scan = plan.iter().position(|line| line.contains("Index Scan using job_claimable_idx")).expect("index scan");
    assert!(
        plan[scan + 1].contains("Index Cond") && plan[scan + 1].contains("ROW(priority, run_at, id) >"),
        "{plan:#?}"
    );
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn a_batch_completion_looks_its_jobs_up_by_id_whatever_the_statistics_say(pool: PgPool) {
    // As after a burst: statistics taken when nothing ran, then many jobs run and finished.
    let jobs: Vec<NewJob> = (0..20_000).map(|_| NewJob::from_args(&Noop {}).unwrap()).collect();
    store::enqueue_many(&T, &pool, &jobs).await.unwrap();
    sqlx::query("ANALYZE job").execute(&pool).await.unwrap();
    let kinds = [Noop::KIND.to_owned()];
    for _ in 0..10 {
        let claimed = store::claim(&T, &pool, "default", &kinds, 1_000, "w", Duration::from_secs(60)).await.unwrap();
        let ids: Vec<JobId> = claimed.iter().map(|j| j.id).collect();
        let tokens: Vec<uuid::Uuid> = claimed.iter().map(|j| j.lease_token).collect();
        store::complete_many_if_running(&T, &pool, &ids, &tokens).await.unwrap();
    }
    let claimed = store::claim(&T, &pool, "default", &kinds, 125, "w", Duration::from_secs(60)).await.unwrap();
    let ids: Vec<JobId> = claimed.iter().map(|j| j.id).collect();
    let tokens: Vec<uuid::Uuid> = claimed.iter().map(|j| j.lease_token).collect();
    let plan = store::explain_complete_many(&T, &pool, &ids, &tokens).await.unwrap();
    // The node lines only: the others carry every id and token.
    let nodes: Vec<&String> = plan.iter().filter(|line| line.contains("Scan") || line.contains("Update")).collect();
    assert!(nodes.iter().any(|line| line.contains("job_pkey")), "plan: {nodes:#?}");
    assert_eq!(store::complete_many_if_running(&T, &pool, &ids, &tokens).await.unwrap().len(), 125);
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn batch_completions_and_heartbeats_are_planned_for_their_own_batch(pool: PgPool) {
    // A prepared statement that has run five times may be given a generic plan, in which
    // `lease_token = ANY($2)` compares each row with every token of the batch.
    let jobs: Vec<NewJob> = (0..4_000).map(|_| NewJob::from_args(&Noop {}).unwrap()).collect();
    store::enqueue_many(&T, &pool, &jobs).await.unwrap();
    let kinds = [Noop::KIND.to_owned()];
    let mut conn = pool.acquire().await.unwrap();
    for _ in 0..10 {
        let claimed = store::claim(&T, &pool, "default", &kinds, 400, "w", Duration::from_secs(60)).await.unwrap();
        let ids: Vec<JobId> = claimed.iter().map(|j| j.id).collect();
        let tokens: Vec<uuid::Uuid> = claimed.iter().map(|j| j.lease_token).collect();
        store::heartbeat(&T, &mut *conn, &ids, &tokens, Duration::from_secs(60)).await.unwrap();
        assert_eq!(store::complete_many_if_running(&T, &mut *conn, &ids, &tokens).await.unwrap().len(), 400);
    }
    // This session's prepared statements that match tokens, and how they were planned (the
    // pattern is cut in two so that this statement does not match itself).
    let generic: Vec<(String, i64)> = sqlx::query_as(
        "SELECT statement, generic_plans FROM pg_prepared_statements
         WHERE statement LIKE '%lease_token' || ' = ANY%' AND generic_plans > 0",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert!(generic.is_empty(), "generic plans: {generic:#?}");
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn jobs_that_sort_before_a_resumed_claim_are_still_claimed(pool: PgPool) {
    let mut registry = Registry::new();
    registry.register(SleepyHandler, KindOptions::default());
    // A backlog the loops work through in full batches, each claim resuming after the last.
    let backlog: Vec<NewJob> = (0..400).map(|_| NewJob::from_args(&Sleepy { ms: 20 }).unwrap()).collect();
    store::enqueue_many(&T, &pool, &backlog).await.unwrap();
    let worker = RunningWorker::start(&pool, registry, test_config());
    poll_for(WAIT, "the backlog is being claimed", || async {
        (count(&pool, "SELECT count(*) FROM job WHERE state = 'completed'").await >= 50).then_some(())
    })
    .await;
    // Two jobs that sort before any position reached by now: a higher priority, and a run_at
    // in the past.
    let urgent = NewJob::from_args(&Sleepy { ms: 20 }).unwrap().priority(-1);
    let late = NewJob::from_args(&Sleepy { ms: 20 }).unwrap().run_at(chrono::Utc::now() - chrono::Duration::hours(1));
    let ids = store::enqueue_many(&T, &pool, &[urgent, late]).await.unwrap();
    poll_for(WAIT, "both jobs run", || async {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM job WHERE id = ANY($1) AND state = 'completed'")
            .bind(&ids)
            .fetch_one(&pool)
            .await
            .unwrap();
        (done == 2).then_some(())
    })
    .await;
    poll_for(WAIT, "the whole backlog completes", || async {
        (count(&pool, "SELECT count(*) FROM job WHERE state = 'completed'").await == 402).then_some(())
    })
    .await;
    worker.stop().await;
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn unique_key_allows_one_active_job_per_thing(pool: PgPool) {
    let job = || NewJob::from_args(&Noop {}).unwrap().unique_key("evidence-1");
    let first = store::enqueue(&T, &pool, &job()).await.unwrap().expect("first is inserted");
    assert_eq!(store::enqueue(&T, &pool, &job()).await.unwrap(), None, "second is skipped");
    let mut conn = pool.acquire().await.unwrap();
    store::cancel(&T, &mut conn, first).await.unwrap();
    assert!(store::enqueue(&T, &pool, &job()).await.unwrap().is_some(), "a finished job frees the key");
    assert!(matches!(store::retry(&T, &mut conn, first).await, Err(queue::Error::UniqueConflict)));
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn operators_cancel_and_retry_jobs(pool: PgPool) {
    let id = enqueue(&pool, &Noop {}).await;
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(store::cancel(&T, &mut conn, id).await.unwrap().state, JobState::Cancelled);
    let err = store::cancel(&T, &mut conn, id).await.unwrap_err();
    assert_eq!(err.to_string(), format!("job {id} is cancelled; cancel needs available or running"));
    let row = store::retry(&T, &mut conn, id).await.unwrap();
    assert_eq!((row.state, row.attempt, row.finished_at), (JobState::Available, 0, None));
    assert!(matches!(store::retry(&T, &mut conn, JobId(999_999)).await, Err(queue::Error::NotFound(_))));
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn cancelling_a_running_job_fences_out_its_worker(pool: PgPool) {
    create_effect_tables(&pool).await;
    let gate = Gate::default();
    let mut registry = Registry::new();
    registry.register(gate.clone(), fast_retry());
    let worker = RunningWorker::start(&pool, registry, test_config());
    let id = enqueue(&pool, &Gated {}).await;
    gate.started.notified().await;
    // The runbook's cancel by hand, which sends no cancel notice: the fence alone must hold.
    sqlx::query(
        "UPDATE job SET state = 'cancelled', finished_at = now(), lease_token = NULL, locked_until = NULL
         WHERE id = $1 AND state IN ('available', 'running')",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    gate.open.notify_one();
    let refused = gate.finish_refused.clone();
    wait_until(WAIT, "the worker's finish is refused", move || {
        let refused = refused.clone();
        async move { refused.load(Ordering::Acquire) }
    })
    .await;
    worker.stop().await;
    assert_eq!(job(&pool, id).await.state, JobState::Cancelled);
    assert_eq!(count(&pool, "SELECT count(*) FROM effect").await, 0);
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn claims_commit_asynchronously_without_changing_the_connection(_opts: PgPoolOptions, connect: PgConnectOptions) {
    // One connection, so the statements after the claim run on the very connection it used.
    let pool = PgPoolOptions::new().max_connections(1).connect_with(connect).await.unwrap();
    let id = store::enqueue(&T, &pool, &NewJob::from_args(&Noop {}).unwrap()).await.unwrap().unwrap();
    let default: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&pool).await.unwrap();
    assert_eq!(default, "on", "the test database commits synchronously unless told otherwise");
    // A trigger records the setting in force while the claim's UPDATE writes the row.
    sqlx::raw_sql(
        "CREATE TABLE commit_mode (setting text NOT NULL);
         CREATE FUNCTION record_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO commit_mode VALUES (current_setting('synchronous_commit')); RETURN NEW; END $$;
         CREATE TRIGGER record_commit_mode BEFORE UPDATE ON job FOR EACH ROW EXECUTE FUNCTION record_commit_mode();",
    )
    .execute(&pool)
    .await
    .unwrap();

    let claimed =
        store::claim(&T, &pool, "default", &[Noop::KIND.into()], 10, "w", Duration::from_secs(60)).await.unwrap();
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);
    assert_eq!(job(&pool, id).await.state, JobState::Running, "the claim is committed and visible");
    let during: Vec<String> = sqlx::query_scalar("SELECT setting FROM commit_mode").fetch_all(&pool).await.unwrap();
    assert_eq!(during, vec!["off".to_owned()], "the claim's transaction commits asynchronously");

    let after: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&pool).await.unwrap();
    assert_eq!(after, default, "the claim's setting ended with its own transaction");
    // A caller's transaction on the same connection commits as the server is configured.
    let mut tx = pool.begin().await.unwrap();
    let inside: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(inside, default);
    tx.rollback().await.unwrap();
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn a_heartbeat_never_waits_for_a_finishing_job_and_counts_it_alive(pool: PgPool) {
    let kinds = vec![Noop::KIND.to_owned()];
    store::enqueue_many(&T, &pool, &[NewJob::from_args(&Noop {}).unwrap(), NewJob::from_args(&Noop {}).unwrap()])
        .await
        .unwrap();
    let claimed = store::claim(&T, &pool, "default", &kinds, 2, "w", Duration::from_secs(60)).await.unwrap();
    let (ids, tokens): (Vec<JobId>, Vec<_>) = claimed.iter().map(|j| (j.id, j.lease_token)).unzip();
    // The first job is inside its finishing transaction (completed, not yet committed).
    let mut finishing = pool.begin().await.unwrap();
    assert!(store::complete_if_running(&T, &mut *finishing, ids[0], tokens[0]).await.unwrap());

    let beat = tokio::time::timeout(
        Duration::from_secs(5),
        store::heartbeat(&T, &pool, &ids, &tokens, Duration::from_secs(60)),
    )
    .await
    .expect("the heartbeat does not wait for the finishing transaction's row lock")
    .unwrap();
    let mut held = beat.held.clone();
    held.sort();
    assert_eq!(held, ids, "both jobs are still ours: neither is cancelled");
    assert_eq!(beat.skipped, vec![ids[0]], "the finishing one was skipped, not renewed");
    finishing.commit().await.unwrap();
}

/// Its first attempt stalls inside its finishing transaction (a worker paused by the OS); later
/// attempts complete.
#[derive(Serialize, Deserialize)]
struct StallInFinish {}
impl JobArgs for StallInFinish {
    const KIND: &'static str = "stall_in_finish";
}
struct StallInFinishHandler;
impl Handler for StallInFinishHandler {
    type Args = StallInFinish;
    async fn run(&self, ctx: JobContext, _args: StallInFinish) -> Result<(), JobError> {
        let tx = ctx.begin_finish().await?;
        if ctx.attempt == 1 {
            std::future::pending::<()>().await;
        }
        tx.commit().await
    }
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn a_worker_stalled_inside_its_finish_loses_the_transaction_and_the_job_is_rescued(pool: PgPool) {
    let mut registry = Registry::new();
    registry.register(StallInFinishHandler, fast_retry());
    // A 3 s lease: the server ends the stalled transaction after 3 s idle, the lease runs out,
    // and the rescuer (every 200 ms) hands the job to a free slot.
    let config = queue::WorkerConfig {
        lease: Duration::from_secs(3),
        heartbeat: Some(Duration::from_millis(500)),
        ..test_config()
    };
    let id = enqueue(&pool, &StallInFinish {}).await;
    let worker = RunningWorker::start(&pool, registry, config);
    wait_until(WAIT, "the job completed on a later attempt", || async {
        let row = job(&pool, id).await;
        row.state == JobState::Completed
    })
    .await;
    worker.stop().await;
    let row = job(&pool, id).await;
    assert_eq!(row.attempt, 2, "the stalled attempt was rescued once");
    assert!(row.errors[0]["error"].as_str().unwrap().starts_with("lease expired"), "{}", row.errors);
}

/// Fails with "unavailable" naming `dependency` while `down` is set, then succeeds.
#[derive(Serialize, Deserialize)]
struct NeedsStore {
    dependency: String,
}
impl JobArgs for NeedsStore {
    const KIND: &'static str = "needs_store";
}
struct NeedsStoreHandler {
    down: Arc<AtomicBool>,
}
impl Handler for NeedsStoreHandler {
    type Args = NeedsStore;
    async fn run(&self, _ctx: JobContext, args: NeedsStore) -> Result<(), JobError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(JobError::unavailable(&args.dependency, "the store refused the connection"));
        }
        Ok(())
    }
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn an_outage_gives_the_attempt_back_and_stops_claims_until_the_check_passes(pool: PgPool) {
    let down = Arc::new(AtomicBool::new(true));
    let mut registry = Registry::new();
    registry.register(NeedsStoreHandler { down: down.clone() }, fast_retry());
    // One attempt each: an outage that counted would discard the job at once.
    let first = NewJob::from_args(&NeedsStore { dependency: "store".into() }).unwrap().max_attempts(1);
    let first = store::enqueue(&T, &pool, &first).await.unwrap().unwrap();
    let flag = down.clone();
    let worker = queue::Worker::new(pool.clone(), registry, test_config()).unwrap().depends_on("store", move || {
        let down = flag.load(Ordering::SeqCst);
        async move { if down { Err("connection refused".to_owned()) } else { Ok(()) } }
    });
    let status = worker.status();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(worker.run(shutdown.clone()));
    poll_for(WAIT, "the breaker opens for the store", || async { (status.waiting_for() == ["store"]).then_some(()) })
        .await;
    let mut later = Vec::new();
    for _ in 0..3 {
        let job = NewJob::from_args(&NeedsStore { dependency: "store".into() }).unwrap().max_attempts(1);
        later.push(store::enqueue(&T, &pool, &job).await.unwrap().unwrap());
    }
    let checks = status.failed_checks();
    poll_for(WAIT, "two more failed checks", || async { (status.failed_checks() >= checks + 2).then_some(()) }).await;
    let row = job(&pool, first).await;
    assert_eq!((row.state, row.attempt, row.outages), (JobState::Available, 0, 1), "given back, counted as an outage");
    assert_eq!(row.errors[0]["outage"], true);
    for id in &later {
        let row = job(&pool, *id).await;
        assert_eq!((row.state, row.attempt), (JobState::Available, 0), "nothing is claimed while the store is down");
    }

    down.store(false, Ordering::SeqCst);
    poll_for(WAIT, "every job completes once the store answers", || async {
        let done = count(&pool, "SELECT count(*) FROM job WHERE state = 'completed' AND attempt = 1").await;
        (done == 4).then_some(())
    })
    .await;
    assert!(status.waiting_for().is_empty());
    shutdown.cancel();
    handle.await.unwrap();
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn past_its_outage_budget_an_unavailable_failure_counts_as_an_attempt(pool: PgPool) {
    let mut registry = Registry::new();
    // Always down, and no check registered for "elsewhere": the breaker closes again after one
    // backoff step and the next claim finds out.
    let options = KindOptions { max_outages: 2, ..fast_retry() };
    registry.register(NeedsStoreHandler { down: Arc::new(AtomicBool::new(true)) }, options);
    let id = NewJob::from_args(&NeedsStore { dependency: "elsewhere".into() }).unwrap().max_attempts(2);
    let id = store::enqueue(&T, &pool, &id).await.unwrap().unwrap();
    drain(&pool, registry, test_config()).await;
    let row = job(&pool, id).await;
    assert_eq!((row.state, row.attempt, row.outages), (JobState::Discarded, 2, 2));
    let outages: Vec<bool> = row.errors.as_array().unwrap().iter().map(|e| e.get("outage").is_some()).collect();
    assert_eq!(outages, [true, true, false, false], "two outages given back, then two counted attempts");
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn a_terminated_session_counts_as_an_unreachable_database(pool: PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&pool).await.unwrap();
    // The next statement on that session meets its end: 57P01 or a reset connection.
    let ended = sqlx::query("SELECT 1").execute(&mut *conn).await.expect_err("the session was terminated");
    assert!(queue::database_unreachable(&ended), "{ended:?}");
    let failed = sqlx::query("SELECT 1 / 0").execute(&pool).await.expect_err("division by zero");
    assert!(!queue::database_unreachable(&failed), "a failed statement is not an outage: {failed:?}");
    assert!(matches!(JobError::from(ended), JobError::Unavailable { .. }));
    assert!(matches!(JobError::from(failed), JobError::Retryable(_)));
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn a_paused_queue_is_claimed_by_no_one_until_it_is_resumed(pool: PgPool) {
    let kinds = vec![Noop::KIND.to_owned()];
    let id = enqueue(&pool, &Noop {}).await;
    let other = store::enqueue(&T, &pool, &NewJob::from_args(&Noop {}).unwrap().queue("other")).await.unwrap().unwrap();
    let paused = store::pause(&T, &pool, "default", "test").await.unwrap();
    assert_eq!((paused.queue.as_str(), paused.paused_by.as_str()), ("default", "test"));
    let again = store::pause(&T, &pool, "default", "someone else").await.unwrap();
    assert_eq!(again, paused, "a second pause keeps the first");
    let lease = Duration::from_secs(5);
    let claim = |queue: &'static str| {
        let (pool, kinds) = (pool.clone(), kinds.clone());
        async move { store::claim(&T, &pool, queue, &kinds, 10, "w", lease).await.unwrap() }
    };
    assert!(claim("default").await.is_empty(), "nothing is claimed from a paused queue");
    let after = ClaimPosition { priority: -1, run_at: chrono::DateTime::UNIX_EPOCH, id: JobId(0) };
    assert!(store::claim_after(&T, &pool, "default", &kinds, 10, "w", lease, &after).await.unwrap().is_empty());
    assert_eq!(claim("other").await.iter().map(|j| j.id).collect::<Vec<_>>(), vec![other], "other queues run");
    assert_eq!(store::paused(&T, &pool).await.unwrap(), vec![paused]);

    // A worker whose next poll is an hour away: only the resume's notification can wake it.
    let config = queue::WorkerConfig { poll_interval: Duration::from_secs(3600), claimers: 1, ..test_config() };
    let worker = RunningWorker::start(&pool, registry(), config);
    worker.wait_listening().await;
    let mut conn = pool.acquire().await.unwrap();
    assert!(store::resume(&T, &mut conn, "default").await.unwrap());
    assert!(!store::resume(&T, &mut conn, "default").await.unwrap(), "resuming twice finds nothing to resume");
    let state = poll_for(WAIT, "the resumed queue's job runs", || async {
        Some(job(&pool, id).await.state).filter(|s| *s == JobState::Completed)
    })
    .await;
    assert_eq!(state, JobState::Completed);
    assert!(store::paused(&T, &pool).await.unwrap().is_empty());
    worker.stop().await;
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn listings_filter_and_page_newest_first(pool: PgPool) {
    let mut ids = Vec::new();
    for n in 0..5 {
        let job = NewJob::new("noop", serde_json::json!({"tenant": if n % 2 == 0 { "a" } else { "b" }, "n": n}));
        ids.push(store::enqueue(&T, &pool, &job).await.unwrap().unwrap());
    }
    let mut conn = pool.acquire().await.unwrap();
    store::cancel(&T, &mut conn, ids[2]).await.unwrap();
    let listed = |filter: store::JobFilter, limit| {
        let pool = pool.clone();
        async move { store::list(&T, &pool, &filter, limit).await.unwrap().into_iter().map(|j| j.id).collect::<Vec<_>>() }
    };
    let all = store::JobFilter::default();
    assert_eq!(listed(all.clone(), 10).await, ids.iter().rev().copied().collect::<Vec<_>>());
    let first = listed(all.clone(), 2).await;
    assert_eq!(first, vec![ids[4], ids[3]]);
    let next = listed(store::JobFilter { before: first.last().copied(), ..all.clone() }, 2).await;
    assert_eq!(next, vec![ids[2], ids[1]], "the next page starts after the last one");
    let tenant_a = store::JobFilter { payload_contains: Some(serde_json::json!({"tenant": "a"})), ..all.clone() };
    assert_eq!(listed(tenant_a.clone(), 10).await, vec![ids[4], ids[2], ids[0]]);
    let cancelled_a = store::JobFilter { state: Some(JobState::Cancelled), ..tenant_a };
    assert_eq!(listed(cancelled_a, 10).await, vec![ids[2]]);
    let other_queue = store::JobFilter { queue: Some("other".into()), ..all.clone() };
    assert!(listed(other_queue, 10).await.is_empty());
    let old = store::JobFilter { older_than: Some(Duration::from_secs(3600)), ..all };
    assert!(listed(old, 10).await.is_empty(), "no job is an hour old");
}

/// Runs until it is stopped; says when it started and when it was dropped.
#[derive(Serialize, Deserialize)]
struct Endless {}
impl JobArgs for Endless {
    const KIND: &'static str = "endless";
}
#[derive(Clone, Default)]
struct EndlessHandler {
    started: Arc<Notify>,
    stopped: Arc<AtomicBool>,
}
struct SetOnDrop(Arc<AtomicBool>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}
impl Handler for EndlessHandler {
    type Args = Endless;
    async fn run(&self, _ctx: JobContext, _args: Endless) -> Result<(), JobError> {
        let _stopped = SetOnDrop(self.stopped.clone());
        self.started.notify_one();
        std::future::pending().await
    }
}

#[sqlx::test(migrator = "queue::MIGRATOR")]
async fn a_cancelled_running_job_is_stopped_at_once_not_at_its_next_heartbeat(pool: PgPool) {
    let handler = EndlessHandler::default();
    let mut registry = Registry::new();
    registry.register(handler.clone(), KindOptions { timeout: Duration::from_secs(600), ..fast_retry() });
    // Heartbeats every 40 s: a stop within the wait below can only come from the cancel notice.
    let config = queue::WorkerConfig { lease: Duration::from_secs(120), ..test_config() };
    let worker = RunningWorker::start(&pool, registry, config);
    worker.wait_listening().await;
    let id = enqueue(&pool, &Endless {}).await;
    handler.started.notified().await;
    let mut conn = pool.acquire().await.unwrap();
    store::cancel(&T, &mut conn, id).await.unwrap();
    let stopped = handler.stopped.clone();
    wait_until(Duration::from_secs(10), "the handler is stopped", move || {
        let stopped = stopped.clone();
        async move { stopped.load(Ordering::Acquire) }
    })
    .await;
    assert_eq!(job(&pool, id).await.state, JobState::Cancelled);
    worker.stop().await;
}

#[test]
fn cancel_notices_name_their_job_and_nothing_else_is_one() {
    assert_eq!(store::cancelled_by_notice(&store::cancel_notice(JobId(42))), Some(JobId(42)));
    for other in ["default", "cancel:", "cancel:x", "cancel42"] {
        assert_eq!(store::cancelled_by_notice(other), None, "{other}");
    }
}

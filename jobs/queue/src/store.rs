//! Every SQL statement of the queue. Writes about a claimed job are fenced on its claim
//! (`state = 'running' AND lease_token = $token`) and report whether the fence held. Each
//! function takes the [`JobTable`] it works on; `{job}` in a statement is that table's name.

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::job::{ClaimPosition, ClaimedJob, Job, JobId, JobState, JobSummary, NewJob, PausedQueue, QueueOverview};
use crate::state::Failure;
use crate::table::JobTable;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("another available or running job already has this unique key")]
    UniqueConflict,
    #[error("job {0} not found")]
    NotFound(JobId),
    #[error("job {id} is {state}; {action} needs {needs}")]
    WrongState { id: JobId, state: JobState, action: &'static str, needs: &'static str },
}

/// The columns a claim (and the rescuer's lock) hands back, in [`ClaimedJob`]'s shape.
macro_rules! claimed_columns {
    () => {
        "id, queue, kind, payload, attempt, max_attempts, outages, lease_token, correlation_id, created_at, priority, run_at"
    };
}

/// Errors longer than this are cut before they are stored: the table stays readable in psql.
const MAX_ERROR_CHARS: usize = 4000;

fn clip(error: &str) -> String {
    match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((at, _)) => format!("{}…", &error[..at]),
        None => error.to_owned(),
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Enqueue one job on any executor (pool, connection or the caller's transaction), with its
/// NOTIFY in the same statement. `Ok(None)` when an active job with the same unique key exists.
pub async fn enqueue<'e>(t: &JobTable, exec: impl PgExecutor<'e>, job: &NewJob) -> Result<Option<JobId>, Error> {
    Ok(enqueue_many(t, exec, std::slice::from_ref(job)).await?.into_iter().next())
}

/// Enqueue many jobs in one statement (and one NOTIFY per distinct queue, which Postgres folds
/// further per transaction). Returns the ids of the jobs inserted; jobs whose unique key is
/// already held by an active job are skipped.
pub async fn enqueue_many<'e>(t: &JobTable, exec: impl PgExecutor<'e>, jobs: &[NewJob]) -> Result<Vec<JobId>, Error> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut queue = Vec::with_capacity(jobs.len());
    let mut kind = Vec::with_capacity(jobs.len());
    let mut payload = Vec::with_capacity(jobs.len());
    let mut priority = Vec::with_capacity(jobs.len());
    let mut max_attempts = Vec::with_capacity(jobs.len());
    let mut run_at = Vec::with_capacity(jobs.len());
    let mut unique_key = Vec::with_capacity(jobs.len());
    let mut correlation_id = Vec::with_capacity(jobs.len());
    for j in jobs {
        queue.push(j.queue.as_str());
        kind.push(j.kind.as_str());
        payload.push(&j.payload);
        priority.push(j.priority);
        max_attempts.push(j.max_attempts);
        run_at.push(j.run_at);
        unique_key.push(j.unique_key.as_deref());
        correlation_id.push(j.correlation_id.as_deref());
    }
    // The notify CTE is joined in so that it runs; it yields exactly one row.
    let ids: Vec<JobId> = sqlx::query_scalar(t.sql(
        "WITH ins AS (
             INSERT INTO {job} (queue, kind, payload, priority, max_attempts, run_at, unique_key, correlation_id)
             SELECT q, k, p, pr, ma, coalesce(ra, now()), uk, ci
             FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::smallint[], $5::int[],
                         $6::timestamptz[], $7::text[], $8::text[]) AS t(q, k, p, pr, ma, ra, uk, ci)
             ON CONFLICT (kind, unique_key) WHERE unique_key IS NOT NULL AND state IN ('available', 'running')
             DO NOTHING
             RETURNING id, queue
         ),
         notified AS (
             SELECT count(pg_notify($9, q.queue)) AS n
             FROM (SELECT DISTINCT queue FROM ins) AS q
         )
         SELECT ins.id FROM ins, notified",
    ))
    .bind(&queue)
    .bind(&kind)
    .bind(&payload)
    .bind(&priority)
    .bind(&max_attempts)
    .bind(&run_at)
    .bind(&unique_key)
    .bind(&correlation_id)
    .bind(t.channel())
    .fetch_all(exec)
    .await?;
    Ok(ids)
}

/// The claim statement: $1 queue, $2 kinds, $3 limit, $4 worker id, $5 lease in seconds, and
/// `after`, more conditions on the rows taken.
macro_rules! claim_statement {
    ($after:literal) => {
        concat!(
            "UPDATE {job}
     SET state = 'running', attempt = attempt + 1, lease_token = gen_random_uuid(),
         locked_by = $4, locked_until = now() + make_interval(secs => $5), attempted_at = now()
     WHERE id IN (
         SELECT id FROM {job}
         WHERE queue = $1 AND state = 'available' AND run_at <= now() AND kind = ANY($2)
           AND NOT EXISTS (SELECT 1 FROM {job}_paused_queue WHERE queue = $1)",
            $after,
            "
         ORDER BY priority, run_at, id
         LIMIT $3
         FOR UPDATE SKIP LOCKED
     )
     AND set_config('synchronous_commit', 'off', true) IS NOT NULL
     RETURNING ",
            claimed_columns!()
        )
    };
}

/// From the start of claim order.
const CLAIM: &str = claim_statement!("");
/// After a position ($6 priority, $7 run_at, $8 id): the row comparison is an index condition of
/// `job_claimable_idx`, so the scan starts there.
const CLAIM_AFTER: &str = claim_statement!(" AND (priority, run_at, id) > ($6, $7, $8)");

/// Claim up to `limit` runnable jobs of the given kinds: one statement, `FOR UPDATE SKIP LOCKED`
/// over the partial index of available rows. Each claimed row gets a fresh lease token and
/// `locked_until = now() + lease`. A paused queue ([`pause`]) gives nothing: the statement looks
/// its name up in `{job}_paused_queue` once (a one-time filter, not a check per row), so a pause
/// holds in every worker process from the moment it commits.
///
/// The claim commits without waiting for its WAL flush (`synchronous_commit = off` for this
/// statement's transaction only). That is safe: every later write about the job (finish, failure)
/// commits synchronously and WAL is flushed in order, so no outcome can outlive a lost claim. A
/// server crash can lose only claims whose jobs have recorded nothing yet; those jobs go back to
/// `available` with their earlier attempt count and run again, as after any crash. It takes
/// one fsync off every claim: half the claim's commit time on this machine, and off the
/// enqueue→start path. It takes the pool, not any executor, so that the setting can never
/// reach a caller's transaction.
pub async fn claim(
    t: &JobTable,
    pool: &PgPool,
    queue: &str,
    kinds: &[String],
    limit: usize,
    worker_id: &str,
    lease: Duration,
) -> Result<Vec<ClaimedJob>, Error> {
    let jobs = sqlx::query_as::<_, ClaimedJob>(t.sql(CLAIM))
        .bind(queue)
        .bind(kinds)
        .bind(limit as i64)
        .bind(worker_id)
        .bind(secs(lease))
        .fetch_all(pool)
        .await?;
    Ok(jobs)
}

/// [`claim`], taking only jobs after `after` in claim order. Jobs before it (a higher priority,
/// a `run_at` set in the past, a row another claim had locked and then let go) are not seen:
/// the claim loops scan from the start again at least once per poll interval and whenever a
/// resumed claim comes back short. Retries and new jobs land after any position a claim has
/// reached, because their `run_at` is at least the time they were made.
#[allow(clippy::too_many_arguments, reason = "the claim's parameters, one for each placeholder")]
pub async fn claim_after(
    t: &JobTable,
    pool: &PgPool,
    queue: &str,
    kinds: &[String],
    limit: usize,
    worker_id: &str,
    lease: Duration,
    after: &ClaimPosition,
) -> Result<Vec<ClaimedJob>, Error> {
    let jobs = sqlx::query_as::<_, ClaimedJob>(t.sql(CLAIM_AFTER))
        .bind(queue)
        .bind(kinds)
        .bind(limit as i64)
        .bind(worker_id)
        .bind(secs(lease))
        .bind(after.priority)
        .bind(after.run_at)
        .bind(after.id)
        .fetch_all(pool)
        .await?;
    Ok(jobs)
}

/// The plan Postgres would use for [`claim`], or for [`claim_after`] with `after` (`EXPLAIN`,
/// not run), one line per row: for operators checking that claims use `job_claimable_idx`, and
/// for the test that holds it.
pub async fn explain_claim(
    t: &JobTable,
    pool: &PgPool,
    queue: &str,
    kinds: &[String],
    limit: usize,
    after: Option<&ClaimPosition>,
) -> Result<Vec<String>, Error> {
    let sql = format!("EXPLAIN {}", if after.is_some() { CLAIM_AFTER } else { CLAIM });
    let query =
        sqlx::query_scalar(t.sql(&sql)).bind(queue).bind(kinds).bind(limit as i64).bind("explain").bind(1.0_f64);
    let query = match after {
        Some(p) => query.bind(p.priority).bind(p.run_at).bind(p.id),
        None => query,
    };
    Ok(query.fetch_all(pool).await?)
}

/// Complete one job if this claim still holds it. Run it inside the transaction that commits the
/// job's effects: `false` means the lease was lost and the caller must roll back.
pub async fn complete_if_running<'e>(
    t: &JobTable,
    exec: impl PgExecutor<'e>,
    id: JobId,
    token: Uuid,
) -> Result<bool, Error> {
    let done = sqlx::query(t.sql(
        "UPDATE {job} SET state = 'completed', finished_at = now(),
                        lease_token = NULL, locked_until = NULL
         WHERE id = $1 AND state = 'running' AND lease_token = $2",
    ))
    .bind(id)
    .bind(token)
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Complete many jobs in one statement, each fenced on its own token. Returns the ids whose fence
/// held; the others had lost their lease and were left alone.
///
/// Ids and tokens are matched as two sets, not pairwise: a token is a random UUID made for one
/// claim of one row, so a row's token is among ours only if it is the one we hold for that row.
/// Two `= ANY` filters stay linear in the batch when Postgres looks the ids up in the primary
/// key and hashes the tokens; a join against `unnest` was planned as a nested loop when
/// statistics lagged a burst (30 s for 5,000 rows). No index has `state = 'running'` in its
/// predicate (`…0008_job_lease_index`), so the planner cannot pick one that holds every job run
/// since the last vacuum.
///
/// The statement is planned at each call, for its own arrays (not prepared once): Postgres
/// hashes an `= ANY` list only when the list is known at planning time, and a prepared
/// statement's generic plan, which it adopts after five runs, tests every token of the batch
/// against every row instead (5,000 jobs: about 130 ms against 30 ms).
pub async fn complete_many_if_running<'e>(
    t: &JobTable,
    exec: impl PgExecutor<'e>,
    ids: &[JobId],
    tokens: &[Uuid],
) -> Result<Vec<JobId>, Error> {
    let done =
        sqlx::query_scalar(t.sql(COMPLETE_MANY)).persistent(false).bind(ids).bind(tokens).fetch_all(exec).await?;
    Ok(done)
}

const COMPLETE_MANY: &str = "UPDATE {job} SET state = 'completed', finished_at = now(),
                        lease_token = NULL, locked_until = NULL
         WHERE id = ANY($1) AND state = 'running' AND lease_token = ANY($2)
         RETURNING id";

/// The plan of [`complete_many_if_running`] for these ids (`EXPLAIN`, not run): for the test
/// that holds it to the primary key.
pub async fn explain_complete_many(
    t: &JobTable,
    pool: &PgPool,
    ids: &[JobId],
    tokens: &[Uuid],
) -> Result<Vec<String>, Error> {
    let sql = format!("EXPLAIN {COMPLETE_MANY}");
    Ok(sqlx::query_scalar(t.sql(&sql)).bind(ids).bind(tokens).fetch_all(pool).await?)
}

/// The SET list shared by every failed finish: record the error, drop the lease, and move to the
/// next state (`u.state`, `u.delay` in seconds) computed by `state::next`. A postponed attempt
/// (`u.postponed`, an outage) is given back and counted in `outages`, and its entry in `errors`
/// says `"outage": true`.
macro_rules! fail_set {
    () => {
        "
    state = u.state,
    run_at = CASE WHEN u.state = 'available' THEN now() + make_interval(secs => u.delay) ELSE {job}.run_at END,
    finished_at = CASE WHEN u.state = 'discarded' THEN now() END,
    last_error = u.error,
    errors = {job}.errors || jsonb_build_array(
        jsonb_build_object('attempt', {job}.attempt, 'at', now(), 'error', u.error)
        || CASE WHEN u.postponed THEN jsonb_build_object('outage', true) ELSE '{}'::jsonb END),
    attempt = {job}.attempt - u.postponed::int,
    outages = {job}.outages + u.postponed::int,
    lease_token = NULL, locked_until = NULL, locked_by = NULL"
    };
}

/// The state, the delay in seconds and whether the attempt is given back.
fn fail_parts(failure: Failure) -> (JobState, f64, bool) {
    match failure {
        Failure::Retry { delay } => (failure.state(), secs(delay), false),
        Failure::Postpone { delay } => (failure.state(), secs(delay), true),
        Failure::Discard => (failure.state(), 0.0, false),
    }
}

/// Record a failed attempt if this claim still holds the job: back to `available` after the
/// delay, or `discarded`. `false` means the lease was lost and nothing was written.
pub async fn fail_if_running<'e>(
    t: &JobTable,
    exec: impl PgExecutor<'e>,
    id: JobId,
    token: Uuid,
    failure: Failure,
    error: &str,
) -> Result<bool, Error> {
    let (state, delay, postponed) = fail_parts(failure);
    let sql = concat!(
        "UPDATE {job} SET ",
        fail_set!(),
        " FROM (SELECT $3::text AS state, $4::float8 AS delay, $5::text AS error, $6::bool AS postponed) AS u
         WHERE {job}.id = $1 AND {job}.state = 'running' AND {job}.lease_token = $2"
    );
    let done = sqlx::query(t.sql(sql))
        .bind(id)
        .bind(token)
        .bind(state.as_str())
        .bind(delay)
        .bind(clip(error))
        .bind(postponed)
        .execute(exec)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// What one heartbeat found for each job it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Beat {
    /// Still held by this claim (renewed, or skipped because its row is locked right now).
    pub held: Vec<JobId>,
    /// Held, but not renewed: its row was locked (most often by the job's own finishing
    /// transaction). Alive, never mistaken for lost.
    pub skipped: Vec<JobId>,
}

/// Extend the leases of the jobs this worker still runs, each fenced on its token, without ever
/// waiting for a row lock: a row another transaction holds (its job's finish, most often) is
/// skipped this round and counted as held. An id missing from [`Beat::held`] has lost its lease
/// (rescued or cancelled). Matched, and planned at each call, like [`complete_many_if_running`].
pub async fn heartbeat<'e>(
    t: &JobTable,
    exec: impl PgExecutor<'e>,
    ids: &[JobId],
    tokens: &[Uuid],
    lease: Duration,
) -> Result<Beat, Error> {
    let rows: Vec<(JobId, bool)> = sqlx::query_as(t.sql(
        "WITH held AS (
             SELECT id FROM {job} WHERE id = ANY($1) AND state = 'running' AND lease_token = ANY($2)
         ),
         renewed AS (
             UPDATE {job} SET locked_until = now() + make_interval(secs => $3)
             WHERE id IN (
                 SELECT id FROM {job} WHERE id = ANY($1) AND state = 'running' AND lease_token = ANY($2)
                 FOR UPDATE SKIP LOCKED
             )
             RETURNING id
         )
         SELECT held.id, renewed.id IS NOT NULL FROM held LEFT JOIN renewed ON renewed.id = held.id",
    ))
    .persistent(false)
    .bind(ids)
    .bind(tokens)
    .bind(secs(lease))
    .fetch_all(exec)
    .await?;
    let skipped = rows.iter().filter(|(_, renewed)| !renewed).map(|(id, _)| *id).collect();
    Ok(Beat { held: rows.into_iter().map(|(id, _)| id).collect(), skipped })
}

/// Bound the rest of this transaction: the server ends a statement that waits longer than
/// `lock_timeout` for a lock, and the whole session when it sits idle inside the transaction for
/// `idle_timeout` (a stalled or partitioned worker), so its locks are freed and its job rescued.
/// Both settings end with the transaction.
pub async fn bound_transaction(
    conn: &mut PgConnection,
    lock_timeout: Duration,
    idle_timeout: Duration,
) -> Result<(), Error> {
    let ms = |d: Duration| format!("{}ms", d.as_millis().max(1));
    sqlx::query(
        "SELECT set_config('lock_timeout', $1, true), set_config('idle_in_transaction_session_timeout', $2, true)",
    )
    .bind(ms(lock_timeout))
    .bind(ms(idle_timeout))
    .execute(conn)
    .await?;
    Ok(())
}

/// Lock up to `limit` running jobs of the given kinds whose lease expired (database clock). Call
/// inside a transaction and finish them with [`fail_expired`] in the same one. Only kinds the
/// caller has registered: a discard must run its kind's hook, which only its own workers have.
pub async fn lock_expired(
    t: &JobTable,
    conn: &mut PgConnection,
    kinds: &[String],
    limit: i64,
) -> Result<Vec<ClaimedJob>, Error> {
    let rows = sqlx::query_as::<_, ClaimedJob>(t.sql(concat!(
        "SELECT ",
        claimed_columns!(),
        " FROM {job}
         WHERE state = 'running' AND locked_until < now() AND kind = ANY($2)
         ORDER BY locked_until
         LIMIT $1
         FOR UPDATE SKIP LOCKED"
    )))
    .bind(limit)
    .bind(kinds)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows)
}

/// Move expired jobs to their next state in one statement, guarded on the lease still being
/// expired (a heartbeat that landed first wins). Returns the ids that moved.
pub async fn fail_expired(
    t: &JobTable,
    conn: &mut PgConnection,
    moves: &[(JobId, Failure)],
    error: &str,
) -> Result<Vec<JobId>, Error> {
    let ids: Vec<JobId> = moves.iter().map(|(id, _)| *id).collect();
    let parts: Vec<_> = moves.iter().map(|(_, failure)| fail_parts(*failure)).collect();
    let states: Vec<&str> = parts.iter().map(|(state, _, _)| state.as_str()).collect();
    let delays: Vec<f64> = parts.iter().map(|(_, delay, _)| *delay).collect();
    let postponed: Vec<bool> = parts.iter().map(|(_, _, postponed)| *postponed).collect();
    let sql = concat!(
        "UPDATE {job} SET ",
        fail_set!(),
        " FROM (SELECT id, state, delay, $4::text AS error, postponed
               FROM unnest($1::bigint[], $2::text[], $3::float8[], $5::bool[]) AS t(id, state, delay, postponed)) AS u
         WHERE {job}.id = u.id AND {job}.id = ANY($1) AND {job}.state = 'running' AND {job}.locked_until < now()
         RETURNING {job}.id"
    );
    let moved = sqlx::query_scalar(t.sql(sql))
        .bind(&ids)
        .bind(&states)
        .bind(&delays)
        .bind(clip(error))
        .bind(&postponed)
        .fetch_all(&mut *conn)
        .await?;
    Ok(moved)
}

/// Delete up to `limit` finished jobs older than `retention`. Returns how many went.
pub async fn prune<'e>(t: &JobTable, exec: impl PgExecutor<'e>, retention: Duration, limit: i64) -> Result<u64, Error> {
    let done = sqlx::query(t.sql(
        "DELETE FROM {job} WHERE id IN (
             SELECT id FROM {job}
             WHERE state IN ('completed', 'discarded', 'cancelled')
               AND finished_at < now() - make_interval(secs => $1)
             LIMIT $2
         )",
    ))
    .bind(secs(retention))
    .bind(limit)
    .execute(exec)
    .await?;
    Ok(done.rows_affected())
}

pub async fn get<'e>(t: &JobTable, exec: impl PgExecutor<'e>, id: JobId) -> Result<Option<Job>, Error> {
    Ok(sqlx::query_as::<_, Job>(t.sql("SELECT * FROM {job} WHERE id = $1")).bind(id).fetch_optional(exec).await?)
}

/// What callers outside the queue show about the jobs they point at, in one statement; jobs
/// already pruned are missing from the answer.
pub async fn summaries<'e>(t: &JobTable, exec: impl PgExecutor<'e>, ids: &[JobId]) -> Result<Vec<JobSummary>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as::<_, JobSummary>(
        t.sql("SELECT id, state, attempt, max_attempts, run_at, last_error FROM {job} WHERE id = ANY($1)"),
    )
    .bind(ids)
    .fetch_all(exec)
    .await?)
}

/// Operator action: cancel an available or running job. A running job's worker is fenced out
/// (its lease token is cleared) and told at once: the cancel notifies the queue's channel with
/// [`cancel_notice`], on which the worker running it stops the handler (a worker that misses the
/// notice finds out at its next heartbeat or finish). Either way it abandons its result.
pub async fn cancel(t: &JobTable, conn: &mut PgConnection, id: JobId) -> Result<Job, Error> {
    let job = transition(
        t,
        conn,
        id,
        "UPDATE {job} SET state = 'cancelled', finished_at = now(), lease_token = NULL, locked_until = NULL
         WHERE id = $1 AND state IN ('available', 'running') RETURNING *",
        "cancel",
        "available or running",
    )
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)").bind(t.channel()).bind(cancel_notice(id)).execute(&mut *conn).await?;
    Ok(job)
}

/// The payload on the queue's channel that tells workers a job was cancelled (`cancel:<id>`);
/// every other payload names a queue with jobs to claim.
pub fn cancel_notice(id: JobId) -> String {
    format!("cancel:{id}")
}

/// The job a [`cancel_notice`] names, if the payload is one.
pub fn cancelled_by_notice(payload: &str) -> Option<JobId> {
    payload.strip_prefix("cancel:")?.parse().ok().map(JobId)
}

/// Operator action: make a discarded or cancelled job available again now, with a fresh set of
/// attempts. Its error history is kept.
pub async fn retry(t: &JobTable, conn: &mut PgConnection, id: JobId) -> Result<Job, Error> {
    transition(
        t,
        conn,
        id,
        "UPDATE {job} SET state = 'available', run_at = now(), attempt = 0, finished_at = NULL
         WHERE id = $1 AND state IN ('discarded', 'cancelled') RETURNING *",
        "retry",
        "discarded or cancelled",
    )
    .await
}

async fn transition(
    t: &JobTable,
    conn: &mut PgConnection,
    id: JobId,
    sql: &'static str,
    action: &'static str,
    needs: &'static str,
) -> Result<Job, Error> {
    let updated = sqlx::query_as::<_, Job>(t.sql(sql)).bind(id).fetch_optional(&mut *conn).await;
    match updated {
        Ok(Some(job)) => {
            if job.state == JobState::Available {
                sqlx::query("SELECT pg_notify($1, $2)").bind(t.channel()).bind(&job.queue).execute(&mut *conn).await?;
            }
            Ok(job)
        }
        Ok(None) => match get(t, &mut *conn, id).await? {
            Some(job) => Err(Error::WrongState { id, state: job.state, action, needs }),
            None => Err(Error::NotFound(id)),
        },
        Err(sqlx::Error::Database(e)) if e.constraint() == Some(t.unique_key_index()) => Err(Error::UniqueConflict),
        Err(e) => Err(e.into()),
    }
}

/// Which jobs [`list`] shows, newest first; every condition is optional.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub queue: Option<String>,
    pub kind: Option<String>,
    pub state: Option<JobState>,
    /// Only jobs created at least this long ago.
    pub older_than: Option<Duration>,
    /// Only jobs whose payload contains this JSON (`payload @> …`). The queue gives payloads no
    /// meaning; a user scopes its listings with it (the evidence service: its tenant's jobs).
    pub payload_contains: Option<serde_json::Value>,
    /// Keyset paging: only jobs older in id than this one (the last of the previous page).
    pub before: Option<JobId>,
}

/// Up to `limit` jobs that match `filter`, highest id (newest) first. It walks the primary key
/// backwards from `filter.before`, so a page costs the rows it passes over, not an OFFSET.
pub async fn list<'e>(
    t: &JobTable,
    exec: impl PgExecutor<'e>,
    filter: &JobFilter,
    limit: i64,
) -> Result<Vec<Job>, Error> {
    Ok(sqlx::query_as::<_, Job>(t.sql(
        "SELECT * FROM {job}
         WHERE ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR kind = $2)
           AND ($3::text IS NULL OR state = $3)
           AND ($4::float8 IS NULL OR created_at <= now() - make_interval(secs => $4))
           AND ($5::jsonb IS NULL OR payload @> $5) AND ($6::bigint IS NULL OR id < $6)
         ORDER BY id DESC
         LIMIT $7",
    ))
    .bind(filter.queue.as_deref())
    .bind(filter.kind.as_deref())
    .bind(filter.state.map(JobState::as_str))
    .bind(filter.older_than.map(secs))
    .bind(filter.payload_contains.as_ref())
    .bind(filter.before)
    .bind(limit)
    .fetch_all(exec)
    .await?)
}

/// Operator action: stop every worker from claiming in `queue` until [`resume`]. Jobs are still
/// enqueued and running ones finish. Pausing a paused queue keeps the first pause. `by` says who
/// paused it.
pub async fn pause<'e>(t: &JobTable, exec: impl PgExecutor<'e>, queue: &str, by: &str) -> Result<PausedQueue, Error> {
    Ok(sqlx::query_as::<_, PausedQueue>(t.sql(
        "WITH ins AS (
             INSERT INTO {job}_paused_queue (queue, paused_by) VALUES ($1, $2)
             ON CONFLICT (queue) DO NOTHING RETURNING *
         )
         SELECT * FROM ins UNION ALL SELECT * FROM {job}_paused_queue WHERE queue = $1 LIMIT 1",
    ))
    .bind(queue)
    .bind(by)
    .fetch_one(exec)
    .await?)
}

/// Operator action: let workers claim in `queue` again, and wake the idle ones. `false` when the
/// queue was not paused.
pub async fn resume(t: &JobTable, conn: &mut PgConnection, queue: &str) -> Result<bool, Error> {
    let done =
        sqlx::query(t.sql("DELETE FROM {job}_paused_queue WHERE queue = $1")).bind(queue).execute(&mut *conn).await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("SELECT pg_notify($1, $2)").bind(t.channel()).bind(queue).execute(&mut *conn).await?;
    Ok(true)
}

/// The paused queues, by name.
pub async fn paused<'e>(t: &JobTable, exec: impl PgExecutor<'e>) -> Result<Vec<PausedQueue>, Error> {
    Ok(sqlx::query_as::<_, PausedQueue>(t.sql("SELECT * FROM {job}_paused_queue ORDER BY queue"))
        .fetch_all(exec)
        .await?)
}

/// Every queue with active jobs (available, running) or a pause, by name, in one statement.
/// Finished rows are left out: counting them would scan the whole table; both partial indexes
/// serve this.
pub async fn queues<'e>(t: &JobTable, exec: impl PgExecutor<'e>) -> Result<Vec<QueueOverview>, Error> {
    Ok(sqlx::query_as::<_, QueueOverview>(t.sql(
        "WITH active AS (
             SELECT queue, count(*) FILTER (WHERE state = 'available') AS available,
                    count(*) FILTER (WHERE state = 'running') AS running,
                    extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'available' AND run_at <= now()))::float8
                        AS oldest
             FROM {job} WHERE state IN ('available', 'running')
             GROUP BY queue
         )
         SELECT coalesce(a.queue, p.queue) AS queue, coalesce(a.available, 0) AS available,
                coalesce(a.running, 0) AS running, coalesce(a.oldest, 0) AS oldest_available_age_seconds,
                p.paused_at, p.paused_by
         FROM active a FULL JOIN {job}_paused_queue p ON p.queue = a.queue
         ORDER BY 1",
    ))
    .fetch_all(exec)
    .await?)
}

/// Jobs of one queue that are waiting (`available`), for `/ready`.
pub async fn available_count<'e>(t: &JobTable, exec: impl PgExecutor<'e>, queue: &str) -> Result<i64, Error> {
    Ok(sqlx::query_scalar(t.sql("SELECT count(*) FROM {job} WHERE queue = $1 AND state = 'available'"))
        .bind(queue)
        .fetch_one(exec)
        .await?)
}

/// The database answers (`SELECT 1`): the worker's check of its own database while its breaker
/// is open.
pub async fn ping(pool: &PgPool) -> Result<(), Error> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

/// Take the maintenance round's transaction-scoped advisory lock, if no one else holds it.
pub async fn try_maintenance_lock(conn: &mut PgConnection, key: i64) -> Result<bool, Error> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(key).fetch_one(conn).await?)
}

/// Jobs of these kinds in one queue that are available (now or later) or running: zero means
/// the queue is drained for them.
pub async fn active_count<'e>(
    t: &JobTable,
    exec: impl PgExecutor<'e>,
    queue: &str,
    kinds: &[String],
) -> Result<i64, Error> {
    Ok(sqlx::query_scalar(
        t.sql("SELECT count(*) FROM {job} WHERE queue = $1 AND kind = ANY($2) AND state IN ('available', 'running')"),
    )
    .bind(queue)
    .bind(kinds)
    .fetch_one(exec)
    .await?)
}

//! End-to-end ingest benchmark, run by `scripts/bench-ingest` against a running api + worker:
//! 1. throughput: N small text documents through presign → PUT → complete → indexed;
//! 2. latency: documents completed at a steady rate, complete→indexed from the database clock
//!    (`indexed_at - queued_at`);
//! 3. one large file (its worker's peak RSS is read by the script).
//!
//! Prints figures; asserts nothing. BENCH_DOCS (2000), BENCH_DOC_BYTES (4096), BENCH_CLIENTS (32),
//! BENCH_RATE (20/s), BENCH_RATE_DOCS (400; 0 skips), BENCH_BIG_BYTES (1 GiB; 0 skips), DEMO_API_URL,
//! EVIDENCE_API_KEY, BENCH_CPU_PIDS (`name=pid …`: the processes whose CPU time the throughput
//! phase reports, set by the script).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use evidence::telemetry::ProcStatLine;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tools::config::{api_key, database_url, demo_api_url, var_or};
use tools::{document, ingest_one, percentile};

async fn wait_indexed(pool: &PgPool, case_id: &str, n: i64, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let (done, failed): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'indexed'), count(*) FILTER (WHERE status = 'index_error')
             FROM evidence WHERE case_id = $1",
        )
        .bind(case_id)
        .fetch_one(pool)
        .await?;
        ensure!(failed == 0, "{failed} documents ended in index_error");
        if done >= n {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "only {done} of {n} indexed after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// CPU seconds (user + system) used so far by each process of the stack: those named in
/// BENCH_CPU_PIDS, every `postgres` process of this machine (with the time of backends that have
/// exited, which their parent holds) and this benchmark, whose clients load the same cores. A
/// process that is gone counts nothing.
fn cpu_seconds() -> Vec<(String, f64)> {
    let used = |pid: &str, with_children: bool| ProcStatLine::read(pid).and_then(|s| s.cpu_seconds(with_children));
    let named: String = var_or("BENCH_CPU_PIDS", String::new());
    let mut out: Vec<(String, f64)> = named
        .split_whitespace()
        .filter_map(|p| p.split_once('='))
        .map(|(name, pid)| (name.to_owned(), used(pid, false).unwrap_or(0.0)))
        .collect();
    let postgres = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|pid| ProcStatLine::read(&pid))
        .filter(|stat| stat.comm == "postgres")
        .filter_map(|stat| stat.cpu_seconds(true))
        .sum();
    out.push(("postgres".to_owned(), postgres));
    out.push(("clients".to_owned(), used("self", false).unwrap_or(0.0)));
    out
}

/// What each process used between two `cpu_seconds` readings, and all of it per item: where the
/// time of a run goes, when the stack keeps every core busy.
fn cpu_report(before: &[(String, f64)], after: &[(String, f64)], items: usize) -> String {
    let used: Vec<(&str, f64)> =
        before.iter().zip(after).map(|((name, b), (_, a))| (name.as_str(), (a - b).max(0.0))).collect();
    let total: f64 = used.iter().map(|(_, t)| t).sum();
    let parts: Vec<String> = used.iter().map(|(name, t)| format!("{name} {t:.2}")).collect();
    format!("CPU s: {}; all {total:.2} s = {:.2} ms per item", parts.join(", "), total * 1000.0 / items as f64)
}

async fn latencies_ms(pool: &PgPool, case_id: &str) -> anyhow::Result<Vec<f64>> {
    let mut v: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM indexed_at - queued_at)::float8 * 1000 FROM evidence WHERE case_id = $1 AND status = 'indexed'",
    )
    .bind(case_id)
    .fetch_all(pool)
    .await?;
    v.sort_by(f64::total_cmp);
    Ok(v)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = demo_api_url();
    let pool = PgPool::connect(&database_url()?).await?;
    let (http, store) = tools::clients(&api_key()?, Duration::from_secs(600))?;
    let docs: usize = var_or("BENCH_DOCS", 2000);
    let doc_bytes: usize = var_or("BENCH_DOC_BYTES", 4096);
    let clients: usize = var_or("BENCH_CLIENTS", 32);
    let rate: f64 = var_or("BENCH_RATE", 20.0);
    let rate_docs: usize = var_or("BENCH_RATE_DOCS", 400);
    let big: u64 = var_or("BENCH_BIG_BYTES", 1 << 30);
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();

    // 1. Throughput.
    let case = format!("bench-{run}-throughput");
    let sem = Arc::new(Semaphore::new(clients));
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..docs {
        let permit = sem.clone().acquire_owned().await?;
        let (http, store, base, case) = (http.clone(), store.clone(), base.clone(), case.clone());
        let bytes = document(i, doc_bytes, &run);
        tasks.spawn(async move {
            let r = ingest_one(&http, &store, &base, &case, format!("doc-{i}.txt"), bytes, "text/plain").await;
            drop(permit);
            r
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let uploaded = started.elapsed().as_secs_f64();
    wait_indexed(&pool, &case, docs as i64, Duration::from_secs(600)).await?;
    let total = started.elapsed().as_secs_f64();
    let cpu = cpu_report(&cpu_before, &cpu_seconds(), docs);
    let lat = latencies_ms(&pool, &case).await?;
    println!(
        "throughput: {docs} × {doc_bytes} B documents, {clients} clients: uploaded+completed in {uploaded:.2} s, all indexed in {total:.2} s = {:.0} items/s end to end",
        docs as f64 / total
    );
    println!(
        "            complete→indexed under that load: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99)
    );
    println!("            {cpu}");

    // 2. Latency at a steady rate (BENCH_RATE_DOCS=0 skips it).
    if rate_docs > 0 {
        let case = format!("bench-{run}-steady");
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..rate_docs {
            tick.tick().await;
            let (http, store, base, case) = (http.clone(), store.clone(), base.clone(), case.clone());
            let bytes = document(docs + i, doc_bytes, &run);
            tasks.spawn(async move {
                ingest_one(&http, &store, &base, &case, format!("steady-{i}.txt"), bytes, "text/plain").await
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        wait_indexed(&pool, &case, rate_docs as i64, Duration::from_secs(120)).await?;
        let lat = latencies_ms(&pool, &case).await?;
        println!(
            "steady {rate:.0} items/s ({rate_docs} documents): complete→indexed p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            percentile(&lat, 0.5),
            percentile(&lat, 0.95),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0)
        );
    }

    // 3. One large file, streamed from disk by the client as well.
    if big > 0 {
        let case = format!("bench-{run}-big");
        let path = std::env::temp_dir().join(format!("bench-big-{run}.txt"));
        {
            use std::io::Write;
            let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
            let block = document(0, 1 << 20, &run);
            let mut written = 0;
            while written < big {
                let n = (big - written).min(block.len() as u64) as usize;
                f.write_all(&block[..n])?;
                written += n as u64;
            }
        }
        let started = Instant::now();
        let created: Value = http
            .post(format!("{base}/v1/evidence"))
            .json(&json!({"filename": "big.txt", "content_type": "text/plain", "size_bytes": big, "case_id": case}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let file = tokio::fs::File::open(&path).await?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let upload = &created["upload"];
        store
            .put(upload["url"].as_str().context("url")?)
            .header("content-type", "text/plain")
            .header("content-length", big)
            .body(body)
            .send()
            .await?
            .error_for_status()?;
        let id = created["evidence"]["id"].as_str().context("id")?;
        let uploaded = started.elapsed().as_secs_f64();
        http.post(format!("{base}/v1/evidence/{id}/complete")).send().await?.error_for_status()?;
        wait_indexed(&pool, &case, 1, Duration::from_secs(900)).await?;
        std::fs::remove_file(&path)?;
        println!(
            "large file: {:.2} GiB uploaded in {uploaded:.1} s, indexed {:.1} s after complete",
            big as f64 / (1u64 << 30) as f64,
            started.elapsed().as_secs_f64() - uploaded
        );
    }
    Ok(())
}

//! Operating it, tested on the real `api` and `worker` binaries as processes: request ids in
//! the worker's log lines, metrics that match what happened, and readiness that follows the
//! database away and back without a restart.

use std::path::PathBuf;
use std::process::Stdio;

use evidence::samples;
use serde_json::{Value, json};
use sqlx::PgPool;

use evidence::Role;

use crate::support::{Proxy, WAIT, binary, client, make_key, poll_for};

/// The address a binary bound, from its JSON log line `msg` (each binds port 0: no port is
/// chosen before it is taken).
async fn bound_address(log: &std::path::Path, msg: &str) -> String {
    poll_for(WAIT, &format!("{msg:?} in {}", log.display()), || async {
        let text = std::fs::read_to_string(log).ok()?;
        let line = text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|l| l["msg"] == msg)?;
        line["bind"].as_str().map(str::to_owned)
    })
    .await
}

/// The test database's URL, on the server DATABASE_URL names (or through `host_port`), with an
/// application name to find the connections by (Postgres keeps 63 characters of it).
pub(crate) async fn database_url(pool: &PgPool, host_port: Option<&str>, app: &str) -> String {
    let name: String = sqlx::query_scalar("SELECT current_database()").fetch_one(pool).await.unwrap();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let (scheme_and_auth, rest) = base.rsplit_once('@').unwrap_or(("postgres://postgres", "127.0.0.1:5432/x"));
    let server = host_port.map(str::to_owned).unwrap_or_else(|| rest.split('/').next().unwrap().to_owned());
    format!("{scheme_and_auth}@{server}/{name}?application_name={app}")
}

/// The api and worker binaries, started as processes with their JSON logs going to files.
struct Processes {
    api: tokio::process::Child,
    worker: tokio::process::Child,
    api_url: String,
    worker_url: String,
    worker_log: PathBuf,
    _logs: tempfile::TempDir,
}

impl Processes {
    async fn start(database_url: &str, worker_database_url: &str) -> Self {
        Self::start_with(database_url, worker_database_url, None).await
    }

    /// `worker_s3`: another endpoint for the worker only (a proxy), the API keeps the real one.
    async fn start_with(database_url: &str, worker_database_url: &str, worker_s3: Option<String>) -> Self {
        Self::start_on(database_url, worker_database_url, None, worker_s3, &[]).await
    }

    /// `api_s3`, `worker_s3`: other endpoints (proxies) for each, which then create the bucket
    /// themselves; otherwise the API creates it on the real one and the worker does not.
    /// `env`: more settings for both.
    async fn start_on(
        database_url: &str,
        worker_database_url: &str,
        api_s3: Option<String>,
        worker_s3: Option<String>,
        env: &[(&str, &str)],
    ) -> Self {
        let logs = tempfile::tempdir().unwrap();
        let bucket = format!("ops-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let spawn_command = |name: &str, db: &str, log: PathBuf| {
            let mut cmd = tokio::process::Command::new(binary(name));
            cmd.env("DATABASE_URL", db)
                .env("DATABASE_MIGRATE", "false")
                .env("S3_BUCKET", &bucket)
                .env("S3_CREATE_BUCKET", "true")
                .env("API_BIND", "127.0.0.1:0")
                .env("WORKER_BIND", "127.0.0.1:0")
                .env("WORKER_POLL_INTERVAL_MS", "200")
                .env("INGEST_RETRY_BASE_MS", "100")
                .env("INGEST_RETRY_CAP_MS", "400")
                .env("INGEST_MAX_ATTEMPTS", "50")
                // The fixity and upload expiry sweeps are jobs of their own; these tests count
                // the ingest's jobs.
                .env("FIXITY_INTERVAL_SECS", "0")
                .env("UPLOAD_EXPIRY_SECS", "0")
                .env("LOG_FORMAT", "json")
                .env("RUST_LOG", "info")
                .stdout(Stdio::from(std::fs::File::create(log).unwrap()))
                .stderr(Stdio::inherit())
                .envs(env.iter().copied())
                .kill_on_drop(true);
            cmd
        };
        let api_log = logs.path().join("api.log");
        let api = {
            let mut cmd = spawn_command("api", database_url, api_log.clone());
            if let Some(endpoint) = &api_s3 {
                cmd.env("S3_ENDPOINT", endpoint);
            }
            cmd.spawn().expect("api")
        };
        let worker_log = logs.path().join("worker.log");
        let worker = {
            let mut cmd = spawn_command("worker", worker_database_url, worker_log.clone());
            if let Some(endpoint) = &worker_s3 {
                cmd.env("S3_ENDPOINT", endpoint)
                    .env("S3_CREATE_BUCKET", if api_s3.is_some() { "true" } else { "false" });
            }
            cmd.spawn().expect("worker")
        };
        let api_url = format!("http://{}", bound_address(&api_log, "api listening").await);
        let worker_url = format!("http://{}", bound_address(&worker_log, "worker health endpoints listening").await);
        let p = Self { api, worker, api_url, worker_url, worker_log, _logs: logs };
        let http = reqwest::Client::new();
        for url in [&p.api_url, &p.worker_url] {
            poll_for(WAIT, &format!("{url}/ready"), || async {
                let r = http.get(format!("{url}/ready")).send().await.ok()?;
                r.status().is_success().then_some(())
            })
            .await;
        }
        p
    }
}

async fn upload(http: &reqwest::Client, api: &str, s: &samples::Sample, request_id: &str) -> String {
    let created: Value = http
        .post(format!("{api}/v1/evidence"))
        .header("x-request-id", request_id)
        .json(&json!({"filename": s.filename, "content_type": s.content_type, "size_bytes": s.bytes.len()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Presigned: the URL carries its own signature, and no API key goes to the store.
    let mut put = reqwest::Client::new().put(created["upload"]["url"].as_str().unwrap()).body(s.bytes.clone());
    for (k, v) in created["upload"]["headers"].as_object().unwrap() {
        put = put.header(k, v.as_str().unwrap());
    }
    assert!(put.send().await.unwrap().status().is_success());
    let id = created["evidence"]["id"].as_str().unwrap().to_owned();
    let resp =
        http.post(format!("{api}/v1/evidence/{id}/complete")).header("x-request-id", request_id).send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], request_id, "the API returns the request id");
    assert_eq!(resp.status(), 202);
    id
}

async fn wait_indexed(http: &reqwest::Client, api: &str, id: &str) {
    poll_for(WAIT, "indexed", || async {
        let ev: Value = http.get(format!("{api}/v1/evidence/{id}")).send().await.ok()?.json().await.ok()?;
        (ev["status"] == "indexed").then_some(())
    })
    .await;
}

async fn search(http: &reqwest::Client, api: &str, q: &str) -> Value {
    let resp = http.get(format!("{api}/v1/search")).query(&[("q", q)]).send().await.unwrap();
    resp.json().await.unwrap()
}

/// The value of one Prometheus series (exact name and labels as rendered), if present.
fn series(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The largest finite bucket bound of a histogram on a page.
fn largest_bound(page: &str, histogram: &str) -> Option<f64> {
    let bucket = format!("{histogram}_bucket{{");
    page.lines()
        .filter(|l| l.starts_with(&bucket))
        .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next()?.parse::<f64>().ok())
        .filter(|b| b.is_finite())
        .reduce(f64::max)
}

/// Every metric on a page has its `# HELP` line, right before its `# TYPE`.
fn assert_every_metric_described(page: &str) {
    let lines: Vec<&str> = page.lines().collect();
    let mut typed = 0;
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = line.strip_prefix("# TYPE ").and_then(|t| t.split(' ').next()) {
            typed += 1;
            let help = i.checked_sub(1).map(|h| lines[h]).unwrap_or_default();
            assert!(help.starts_with(&format!("# HELP {name} ")), "{name} has no # HELP line:\n{page}");
        }
    }
    assert!(typed > 5, "{page}");
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn request_ids_reach_the_worker_logs_and_metrics_match_what_happened(pool: PgPool) {
    let url = database_url(&pool, None, "ops-test").await;
    let p = Processes::start(&url, &url).await;
    let http = client(&make_key(&pool, "ops", Role::Admin, None).await);
    let all = samples::all("ops");
    let mut bytes = 0;
    for (i, s) in all.iter().take(3).enumerate() {
        let id = upload(&http, &p.api_url, s, &format!("ops-trace-{i}")).await;
        wait_indexed(&http, &p.api_url, &id).await;
        bytes += s.bytes.len();
    }

    // Every worker line about the job carries the request id that completed the upload.
    let line = poll_for(WAIT, "the worker's 'evidence indexed' line for ops-trace-1", || async {
        let log = std::fs::read_to_string(&p.worker_log).ok()?;
        log.lines()
            .find(|l| l.contains("\"request_id\":\"ops-trace-1\"") && l.contains("evidence indexed"))
            .map(str::to_owned)
    })
    .await;
    let line: Value = serde_json::from_str(&line).expect("JSON log line");
    for field in ["ts", "level", "msg", "target", "job_id", "attempt", "evidence_id", "queue"] {
        assert!(!line[field].is_null(), "{field} missing from {line}");
    }

    let worker: String = http.get(format!("{}/metrics", p.worker_url)).send().await.unwrap().text().await.unwrap();
    assert_eq!(
        series(&worker, r#"jobs_finished_total{kind="ingest_evidence",outcome="completed"}"#),
        Some(3.0),
        "{worker}"
    );
    assert_eq!(series(&worker, r#"jobs_claimed_total{queue="default"}"#), Some(3.0));
    assert_eq!(series(&worker, "evidence_bytes_ingested_total"), Some(bytes as f64));
    // Job durations are told apart up to the longest job timeout (the fixity sweep's 12 hours),
    // and extractions up to the extraction's limit.
    assert_eq!(largest_bound(&worker, "job_duration_seconds"), Some(43200.0), "{worker}");
    assert_eq!(largest_bound(&worker, "evidence_extraction_duration_seconds"), Some(60.0), "{worker}");
    assert!(series(&worker, "process_resident_memory_bytes").is_some_and(|b| b > 1e6), "{worker}");
    assert!(series(&worker, "process_open_fds").is_some_and(|n| n > 3.0), "{worker}");
    assert_every_metric_described(&worker);
    // Paths no route matches share one label, however many distinct ones arrive.
    for n in 0..30 {
        let resp = http.get(format!("{}/probe-{n}/x", p.api_url)).send().await.unwrap();
        assert_eq!(resp.status(), 404);
    }
    let api: String = http.get(format!("{}/metrics", p.api_url)).send().await.unwrap().text().await.unwrap();
    assert_eq!(
        series(&api, r#"http_requests_total{method="GET",route="unmatched",status="404"}"#),
        Some(30.0),
        "{api}"
    );
    assert!(!api.contains("probe-"), "an unmatched path became a label: {api}");
    assert!(series(&api, "process_cpu_seconds_total").is_some_and(|s| s > 0.0), "{api}");
    assert_every_metric_described(&api);
    assert_eq!(
        series(&api, r#"http_requests_total{method="POST",route="/v1/evidence/{id}/complete",status="202"}"#),
        Some(3.0),
        "{api}"
    );
    let ready: Value = http.get(format!("{}/ready", p.worker_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!((ready["database"].as_bool(), ready["listener"].as_bool()), (Some(true), Some(true)));
    assert!(ready["last_completed_at"].is_string(), "{ready}");
    drop(p);
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn worker_readiness_follows_the_database_away_and_back_without_a_restart(pool: PgPool) {
    let upstream = {
        let base = std::env::var("DATABASE_URL").unwrap();
        base.rsplit_once('@').map(|(_, r)| r.split('/').next().unwrap().to_owned()).unwrap()
    };
    let proxy = Proxy::start(&upstream).await;
    let app = format!("ops-worker-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let direct = database_url(&pool, None, "ops-api").await;
    let through_proxy = database_url(&pool, Some(&proxy.addr.to_string()), &app).await;
    let mut p = Processes::start(&direct, &through_proxy).await;
    let http = client(&make_key(&pool, "ops", Role::Admin, None).await);
    let status = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    let ready = format!("{}/ready", p.worker_url);
    assert_eq!(status(ready.clone()).await, 200);

    // Cut the worker off: no new connections through the proxy, and its open ones terminated.
    proxy.set_up(false);
    let killed: i64 =
        sqlx::query_scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1")
            .bind(&app)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(killed >= 2, "the worker's pool and listener connections were terminated ({killed})");
    poll_for(WAIT, "/ready to answer 503", || async { (status(ready.clone()).await == 503).then_some(()) }).await;
    let body: Value = http.get(&ready).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(status(format!("{}/health", p.worker_url)).await, 200, "alive while not ready");

    proxy.set_up(true);
    poll_for(WAIT, "/ready to answer 200 again", || async { (status(ready.clone()).await == 200).then_some(()) }).await;
    assert!(p.worker.try_wait().unwrap().is_none(), "the worker was never restarted");

    // And it works again: an upload is indexed by the same process.
    let s = &samples::named("back", "interview-notes.txt");
    let id = upload(&http, &p.api_url, s, "ops-after-outage").await;
    wait_indexed(&http, &p.api_url, &id).await;
    let _ = p.api.start_kill();
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn real_worker_retries_through_an_s3_outage_and_indexes_when_it_ends(pool: PgPool) {
    let s3 = std::env::var("S3_ENDPOINT").expect("S3_ENDPOINT");
    let proxy = Proxy::start(&s3).await;
    let url = database_url(&pool, None, "ops-outage").await;
    let p = Processes::start_with(&url, &url, Some(format!("http://{}", proxy.addr))).await;
    proxy.set_up(false);
    let http = client(&make_key(&pool, "ops", Role::Admin, None).await);
    let s = &samples::named("outage", "board-minutes.docx");
    let id = upload(&http, &p.api_url, s, "outage-1").await;
    // The worker finds the store down, gives the attempt back, and says on /ready and in its
    // metrics that it waits for the store.
    let plain = reqwest::Client::new();
    let ready = poll_for(WAIT, "the worker's /ready names the object store", || async {
        let r = plain.get(format!("{}/ready", p.worker_url)).send().await.ok()?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.ok()?;
        (body["waiting_for"] == json!(["object_store"])).then_some((status, body))
    })
    .await;
    assert_eq!((ready.0, &ready.1["status"]), (503, &json!("not_ready")), "{}", ready.1);
    let metrics = plain.get(format!("{}/metrics", p.worker_url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("jobs_dependency_down{dependency=\"object_store\"} 1"), "{metrics}");
    // The breaker may trip on the worker's own check of the store before the job's attempt has
    // failed and been given back: wait for the job row to say so.
    poll_for(WAIT, "the attempt that met the outage given back (attempt 0, outages 1)", || async {
        let row: (i32, i32) = sqlx::query_as("SELECT attempt, outages FROM job").fetch_one(&pool).await.ok()?;
        (row == (0, 1)).then_some(())
    })
    .await;
    let ev: Value = http.get(format!("{}/v1/evidence/{id}", p.api_url)).send().await.unwrap().json().await.unwrap();
    assert!(ev["last_error"].as_str().unwrap_or_default().contains("object store unavailable"), "{ev}");
    proxy.set_up(true);
    wait_indexed(&http, &p.api_url, &id).await;
    let r = plain.get(format!("{}/ready", p.worker_url)).send().await.unwrap();
    assert_eq!(r.status(), 200, "ready again once the store answers");
    let hits = search(&http, &p.api_url, "acquisition Globex").await;
    assert_eq!(hits["hits"][0]["id"], id.as_str(), "words from the DOCX are found");
}

#[tokio::test]
async fn a_worker_with_an_impossible_setting_exits_at_once_naming_it() {
    let table = [
        ("WORKER_LEASE_SECS", "0", "WORKER_LEASE_SECS=\"0\" is invalid: must be greater than zero"),
        ("WORKER_CONCURRENCY", "0", "WORKER_CONCURRENCY=\"0\" is invalid: must be at least 1"),
        ("WORKER_POLL_INTERVAL_MS", "-5", "WORKER_POLL_INTERVAL_MS=\"-5\" is invalid"),
        ("WORKER_HEARTBEAT_MS", "20000", "is invalid: must be at least three heartbeats (3 × 20s)"),
    ];
    for (name, value, says) in table {
        let run = tokio::process::Command::new(binary("worker"))
            .env(name, value)
            .env_remove("RUST_BACKTRACE")
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .output();
        let out = tokio::time::timeout(WAIT, run).await.expect("the worker exits at once").unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}={value} was accepted");
        assert!(stderr.contains(says), "{name}={value}: {stderr}");
    }
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn keys_made_on_the_command_line_work_until_revoked(pool: PgPool) {
    let url = database_url(&pool, None, "keys-cli").await;
    let api_keys = |args: &[&str]| {
        let out = std::process::Command::new(binary("api")).arg("keys").args(args).env("DATABASE_URL", &url).output();
        let out = out.expect("api keys");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) =
        api_keys(&["create", "--tenant", "acme", "--role", "viewer", "--name", "cli", "--case", "c1"]);
    assert_eq!(code, Some(0), "{stderr}");
    let key = stdout.lines().last().unwrap().to_owned();
    assert!(key.starts_with("evk_") && key.len() == 81, "the key alone on the last line: {stdout}");
    let prefix = &key[4..16];

    let app = crate::support::TestApp::start(pool.clone(), Default::default()).await;
    let viewer = client(&key);
    let (status, page) = app.send(viewer.get(format!("{}/v1/evidence", app.base))).await;
    assert_eq!((status, &page["items"]), (200, &json!([])), "a new tenant starts empty");
    let upload = json!({"filename": "a.txt", "content_type": "text/plain", "size_bytes": 1, "case_id": "c1"});
    let (status, _) = app.send(viewer.post(format!("{}/v1/evidence", app.base)).json(&upload)).await;
    assert_eq!(status, 403, "a viewer may not upload");

    let (code, listing, _) = api_keys(&["list", "--tenant", "acme"]);
    assert_eq!(code, Some(0));
    assert!(listing.contains(prefix) && listing.contains("viewer") && listing.contains("active"), "{listing}");
    assert!(!listing.contains(&key[17..]), "no secret in the listing");
    let (code, _, stderr) = api_keys(&["revoke", prefix]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(app.send(viewer.get(format!("{}/v1/evidence", app.base))).await.0, 401, "refused at once");

    // Mistakes are named, with the usage, and exit 2.
    for (args, says) in [
        (&["create", "--tenant", "Acme", "--role", "viewer", "--name", "x"][..], "tenant `Acme`"),
        (&["create", "--tenant", "acme", "--role", "root", "--name", "x"][..], "--role root"),
        (&["create", "--tenant", "acme", "--role", "viewer"][..], "--name is required"),
        (&["revoke", "000000000000"][..], "no API key with prefix"),
    ] {
        let (code, _, stderr) = api_keys(args);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(stderr.starts_with("error: ") && stderr.contains(says), "{args:?}: {stderr}");
    }
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn ready_and_metrics_move_to_their_own_address_when_asked(pool: PgPool) {
    let url = database_url(&pool, None, "ops-bind").await;
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("api.log");
    let mut api = tokio::process::Command::new(binary("api"))
        .env("DATABASE_URL", &url)
        .env("DATABASE_MIGRATE", "false")
        .env("API_BIND", "127.0.0.1:0")
        .env("API_OPS_BIND", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let api_url = format!("http://{}", bound_address(&log, "api listening").await);
    let ops_url = format!("http://{}", bound_address(&log, "api operations endpoints listening").await);
    let http = reqwest::Client::new();
    let status = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    poll_for(WAIT, "the operations address to be ready", || async {
        (status(format!("{ops_url}/ready")).await == 200).then_some(())
    })
    .await;
    assert_eq!(status(format!("{api_url}/metrics")).await, 404, "not beside the API any more");
    assert_eq!(status(format!("{api_url}/ready")).await, 404);
    assert_eq!(status(format!("{api_url}/health")).await, 200, "/health stays");
    assert_eq!(status(format!("{ops_url}/v1/evidence")).await, 404, "the operations address serves no API");
    let page = http.get(format!("{ops_url}/metrics")).send().await.unwrap().text().await.unwrap();
    let answered = r#"http_requests_total{method="GET",route="/health",status="200"} 1"#;
    assert!(page.contains(answered), "the API's own metrics, on the operations address: {page}");
    api.kill().await.unwrap();
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn an_object_store_that_is_down_at_start_is_waited_out(pool: PgPool) {
    let proxy = Proxy::start(&std::env::var("S3_ENDPOINT").expect("S3_ENDPOINT")).await;
    proxy.set_up(false);
    let url = database_url(&pool, None, "ops-s3-start").await;
    let store = Some(format!("http://{}", proxy.addr));
    // Both start, serve and are ready (the database answers) while the store is down.
    let mut p = Processes::start_on(&url, &url, store.clone(), store, &[]).await;
    poll_for(WAIT, "the worker to say it will create the bucket later", || async {
        let log = std::fs::read_to_string(&p.worker_log).ok()?;
        log.contains("cannot create the bucket yet").then_some(())
    })
    .await;
    assert!(p.api.try_wait().unwrap().is_none() && p.worker.try_wait().unwrap().is_none(), "neither exited");

    proxy.set_up(true);
    poll_for(WAIT, "the bucket to be made", || async {
        let log = std::fs::read_to_string(&p.worker_log).ok()?;
        log.contains("bucket ready").then_some(())
    })
    .await;
    let http = client(&make_key(&pool, "ops", Role::Admin, None).await);
    let id = upload(&http, &p.api_url, &samples::named("late", "interview-notes.txt"), "late-store").await;
    wait_indexed(&http, &p.api_url, &id).await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn the_worker_metrics_follow_a_pause_and_a_cancel_made_through_the_api(pool: PgPool) {
    let url = database_url(&pool, None, "ops-operate").await;
    let env = [("API_OPERATOR_TENANT", "ops"), ("WORKER_MAINTENANCE_INTERVAL_MS", "200")];
    let p = Processes::start_on(&url, &url, None, None, &env).await;
    let http = client(&make_key(&pool, "ops", Role::Admin, None).await);
    let plain = reqwest::Client::new();
    let metrics_show = |series_and_value: &'static str| {
        let (plain, url) = (plain.clone(), format!("{}/metrics", p.worker_url));
        async move {
            poll_for(WAIT, series_and_value, || async {
                let page = plain.get(&url).send().await.ok()?.text().await.ok()?;
                page.lines().any(|l| l == series_and_value).then_some(())
            })
            .await
        }
    };

    let resp = http.post(format!("{}/v1/queues/default/pause", p.api_url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    metrics_show(r#"jobs_queue_paused{queue="default"} 1"#).await;
    let ready: Value = plain.get(format!("{}/ready", p.worker_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["paused"], true, "{ready}");

    let id = upload(&http, &p.api_url, &samples::named("operate", "interview-notes.txt"), "operate-1").await;
    metrics_show(r#"jobs_queue_depth{queue="default",state="available"} 1"#).await;
    let evidence: Value =
        http.get(format!("{}/v1/evidence/{id}", p.api_url)).send().await.unwrap().json().await.unwrap();
    let job = evidence["job_id"].as_i64().expect("the evidence names its job");

    // Cancelled, the only job leaves the queue: its gauges go back to 0 instead of keeping the
    // last value they had.
    let resp = http.post(format!("{}/v1/jobs/{job}/cancel", p.api_url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    metrics_show(r#"jobs_queue_depth{queue="default",state="available"} 0"#).await;
    metrics_show(r#"jobs_oldest_available_age_seconds{queue="default"} 0"#).await;
    let evidence: Value =
        http.get(format!("{}/v1/evidence/{id}", p.api_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(evidence["status"], "index_error", "{evidence}");

    // Retried and resumed, the worker runs it.
    let resp = http.post(format!("{}/v1/jobs/{job}/retry", p.api_url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http.post(format!("{}/v1/queues/default/resume", p.api_url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    metrics_show(r#"jobs_queue_paused{queue="default"} 0"#).await;
    wait_indexed(&http, &p.api_url, &id).await;
}

/// Where autovacuum is off, the workers analyze an evidence table once it has changed by 50 rows
/// and a tenth since its last analyze (a plan made while it was empty would otherwise stay), as
/// the application role.
#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn evidence_tables_that_changed_are_analyzed_by_the_workers(pool: PgPool) {
    let app_pool = evidence::startup::app_pool(
        (*pool.connect_options()).clone(),
        Some("evidence_app".into()),
        2,
        std::time::Duration::from_secs(10),
    );
    sqlx::raw_sql(
        "INSERT INTO tenant (id) VALUES ('t1');
         INSERT INTO evidence (id, tenant_id, filename, content_type, size_bytes, object_key, meta_tsv)
         SELECT gen_random_uuid(), 't1', 'f' || i, 'text/plain', 1, 't1/uploads/' || i, ''::tsvector
         FROM generate_series(1, 200) i",
    )
    .execute(&pool)
    .await
    .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let keeper = tokio::spawn(evidence::keep_statistics(app_pool, std::time::Duration::from_millis(100), stop.clone()));
    let analyzed = "SELECT last_analyze IS NOT NULL AND n_mod_since_analyze = 0 FROM pg_stat_user_tables
                    WHERE relname = 'evidence'";
    poll_for(WAIT, "the evidence table to be analyzed", || async {
        sqlx::query_scalar::<_, bool>(analyzed).fetch_one(&pool).await.unwrap().then_some(())
    })
    .await;
    stop.cancel();
    keeper.await.unwrap();
}

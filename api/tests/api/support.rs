//! The test harness: API + worker + bucket per test, an HTTP client, bounded waits, and a TCP
//! proxy that can cut the worker off from S3 or slow it down.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use api::AppState;
use evidence::config::FixitySettings;
use evidence::config::{IngestSettings, S3Settings};
use evidence::expiry::ExpiryHandler;
use evidence::fixity::{FixityHandler, register_fixity};
use evidence::keys::NewKey;
use evidence::samples::Sample;
use evidence::storage::Storage;
use evidence::{IngestHandler, Role, SearchLimits, Service, TenantId, UploadDeleter, register};
pub use queue::testing::poll_for;
use queue::{Registry, RetryPolicy, Worker, WorkerConfig};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(30);

/// Where the object store is (`S3_ENDPOINT`, its keys and region: scripts/test starts it and
/// sets them), with a bucket of the test's own.
pub fn s3_settings(bucket: &str, endpoint: Option<String>) -> S3Settings {
    let mut s = S3Settings::from_env().expect("S3_* variables");
    s.bucket = bucket.to_owned();
    s.create_bucket = true;
    if let Some(endpoint) = endpoint {
        s.endpoint = endpoint;
    }
    s
}

/// A workspace binary built next to this test binary (scripts/test builds every binary first).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe.parent().and_then(|deps| deps.parent()).expect("target dir").join(name);
    assert!(bin.is_file(), "{} is missing: run `cargo build --workspace --bins` (scripts/test does)", bin.display());
    bin
}

pub fn extract_bin() -> PathBuf {
    binary("extract")
}

/// The tenant of the key every `TestApp` starts with.
pub const TENANT: &str = "t1";

pub struct TestApp {
    /// The owner's pool (not subject to row-level security), for looking at the database.
    #[allow(dead_code, reason = "kept for tests that query the database directly")]
    pub pool: PgPool,
    /// The application role's pool, as the API and the worker use it.
    #[allow(dead_code, reason = "kept for tests that query the database directly")]
    pub app_pool: PgPool,
    pub base: String,
    /// Sends the admin key of tenant `t1` with every request.
    pub http: reqwest::Client,
    /// Sends no key: for presigned URLs and unauthenticated requests.
    pub plain: reqwest::Client,
    pub storage: Arc<Storage>,
    #[allow(dead_code, reason = "kept for tests that start a second app over the same objects")]
    pub bucket: String,
    pub proxy: Option<Proxy>,
    /// The in-process worker's live status (its breaker, for the outage tests).
    pub worker: Arc<queue::WorkerStatus>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

pub struct Options {
    /// Put a cuttable proxy between the worker and S3.
    pub proxy: bool,
    pub max_attempts: i32,
    pub searches: SearchLimits,
    /// `API_OPERATOR_TENANT`.
    pub operator_tenant: Option<evidence::TenantId>,
    /// The upload window of new evidence (production's default: a day).
    pub upload_expiry: Option<Duration>,
    /// `UPLOAD_PART_BYTES`: uploads above it are made in parts.
    pub upload_part_bytes: u64,
    /// The worker's `S3_REQUEST_TIMEOUT_SECS` (production's default: 60 s).
    pub worker_s3_timeout: Option<Duration>,
    /// `INGEST_EXTRACT_BIN` (default: the build's `extract`).
    pub extract_bin: Option<PathBuf>,
    /// The bucket (default: a new one), for a second app over the first one's objects.
    pub bucket: Option<String>,
    /// `INGEST_EXTRACT_TIMEOUT_SECS` (default: the environment's, 60 s).
    pub extract_timeout: Option<Duration>,
    /// `INGEST_EXTRACT_MEMORY_BYTES` (default: the environment's, 1 GiB).
    pub extract_memory_bytes: Option<u64>,
    /// `INGEST_TMP_DIR` (default: the environment's), where staged files and the extract
    /// child's own folder go.
    pub tmp_dir: Option<PathBuf>,
    /// `INGEST_FAMILY_MAX_*`: how far containers are opened into members.
    pub family: evidence::config::FamilySettings,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            proxy: false,
            max_attempts: 5,
            searches: SearchLimits::default(),
            operator_tenant: None,
            upload_expiry: Some(Duration::from_secs(24 * 3600)),
            upload_part_bytes: 64 << 20,
            worker_s3_timeout: None,
            extract_bin: None,
            bucket: None,
            extract_timeout: None,
            extract_memory_bytes: None,
            tmp_dir: None,
            family: Default::default(),
        }
    }
}

impl TestApp {
    pub async fn start(owner: PgPool, options: Options) -> Self {
        // The API and the worker run as the application role, as in production: row-level
        // security applies to every statement they make.
        let app_pool = evidence::startup::app_pool(
            (*owner.connect_options()).clone(),
            Some("evidence_app".into()),
            20,
            Duration::from_secs(10),
        );
        let pool = app_pool.clone();
        let bucket = options
            .bucket
            .clone()
            .unwrap_or_else(|| format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]));
        let api_settings = s3_settings(&bucket, None);
        let storage = Arc::new(Storage::new(&api_settings).unwrap());
        storage.ensure_bucket().await.expect("create the test bucket");
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();

        let proxy = if options.proxy { Some(Proxy::start(&api_settings.endpoint).await) } else { None };
        let worker_storage = match (&proxy, options.worker_s3_timeout) {
            (None, None) => storage.clone(),
            (proxy, timeout) => {
                let mut settings = s3_settings(&bucket, proxy.as_ref().map(|p| format!("http://{}", p.addr)));
                settings.request_timeout = timeout.unwrap_or(settings.request_timeout);
                Arc::new(Storage::new(&settings).unwrap())
            }
        };
        // The defaults, not the shell's INGEST_* values: a test's result never depends on them.
        let mut ingest = IngestSettings::defaults();
        ingest.extract_bin = options.extract_bin.clone().unwrap_or_else(extract_bin);
        ingest.extract_timeout = options.extract_timeout.unwrap_or(ingest.extract_timeout);
        ingest.extract_memory_bytes = options.extract_memory_bytes.unwrap_or(ingest.extract_memory_bytes);
        ingest.tmp_dir = options.tmp_dir.clone().unwrap_or(ingest.tmp_dir);
        ingest.family = options.family;
        // The fixity sweep is registered but runs only when a test schedules it.
        let fixity = FixityHandler {
            pool: pool.clone(),
            storage: worker_storage.clone(),
            jobs: Default::default(),
            settings: Arc::new(FixitySettings { interval: Duration::from_secs(24 * 3600), bytes_per_sec: 1 << 40 }),
        };
        let (uploads, deleting) = UploadDeleter::start(worker_storage.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            deleting.await.expect("the upload deleter");
        }));
        let handler = IngestHandler {
            pool: pool.clone(),
            storage: worker_storage.clone(),
            settings: Arc::new(ingest),
            jobs: Default::default(),
            max_attempts: options.max_attempts,
            uploads,
        };
        let mut registry = Registry::new();
        register(
            &mut registry,
            handler,
            RetryPolicy { base: Duration::from_millis(100), cap: Duration::from_millis(400) },
        );
        register_fixity(&mut registry, fixity);
        // So is the upload expiry sweep.
        let expiry = ExpiryHandler { pool: pool.clone(), storage: worker_storage.clone(), jobs: Default::default() };
        evidence::expiry::register_expiry(&mut registry, expiry);
        let worker = Worker::new(
            pool.clone(),
            registry,
            WorkerConfig {
                poll_interval: Duration::from_millis(200),
                maintenance_interval: Duration::from_millis(500),
                ..WorkerConfig::default()
            },
        )
        .expect("valid worker config");
        let worker = evidence::with_store_check(worker, worker_storage);
        let worker_status = worker.status();
        tasks.push(tokio::spawn(worker.run(shutdown.clone())));
        let sealing = evidence::run_sealer(pool.clone(), Duration::from_millis(20), shutdown.clone());
        tasks.push(tokio::spawn(sealing));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let service = Service {
            pool: pool.clone(),
            storage: storage.clone(),
            jobs: Default::default(),
            max_object_bytes: 64 << 20,
            upload_expiry: options.upload_expiry,
            upload_part_bytes: options.upload_part_bytes,
            max_attempts: options.max_attempts,
            searches: options.searches.clone(),
            known_keys: Default::default(),
            operator_tenant: options.operator_tenant.clone(),
        };
        let state = AppState::new(service, None);
        let stop = shutdown.clone();
        let url = base.clone();
        tasks.push(tokio::spawn(async move { api::serve(listener, state, url, stop).await.expect("api") }));
        let admin = make_key(&owner, TENANT, Role::Admin, None).await;
        Self {
            pool: owner,
            app_pool,
            base,
            http: client(&admin),
            plain: reqwest::Client::new(),
            storage,
            bucket,
            proxy,
            worker: worker_status,
            shutdown,
            tasks,
        }
    }

    /// A client with a new key of `role` in `tenant` (limited to `cases` when given).
    pub async fn client_for(&self, tenant: &str, role: Role, cases: Option<&[&str]>) -> reqwest::Client {
        client(&self.key_for(tenant, role, cases).await)
    }

    /// A new key of `role` in `tenant`.
    pub async fn key_for(&self, tenant: &str, role: Role, cases: Option<&[&str]>) -> String {
        make_key(&self.pool, tenant, role, cases.map(|c| c.iter().map(|s| s.to_string()).collect())).await
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            t.await.unwrap();
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body)).await
    }

    /// `post` with an empty body, taking the path by value (for running several at once).
    pub async fn post_owned(&self, path: String) -> (u16, Value) {
        self.post(&path, json!({})).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// POST /v1/evidence for a sample; returns the 201 body.
    pub async fn create(&self, sample: &Sample, extra: Value) -> Value {
        self.create_as(&self.http, sample, extra).await
    }

    /// `create` with another key's client.
    pub async fn create_as(&self, http: &reqwest::Client, sample: &Sample, extra: Value) -> Value {
        let mut body = json!({
            "filename": sample.filename,
            "content_type": sample.content_type,
            "size_bytes": sample.bytes.len(),
        });
        body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
        let (status, created) = self.send(http.post(format!("{}/v1/evidence", self.base)).json(&body)).await;
        assert_eq!(status, 201, "{created}");
        created
    }

    /// PUT the bytes to the presigned URL with the headers the API said to send.
    pub async fn put(&self, created: &Value, bytes: &[u8]) -> u16 {
        let upload = &created["upload"];
        let mut req = self.plain.put(upload["url"].as_str().unwrap()).body(bytes.to_vec());
        for (k, v) in upload["headers"].as_object().unwrap() {
            req = req.header(k, v.as_str().unwrap());
        }
        req.send().await.expect("PUT").status().as_u16()
    }

    /// The whole client side: create, PUT, complete. Returns the evidence id.
    pub async fn upload(&self, sample: &Sample, extra: Value) -> String {
        self.upload_as(&self.http, sample, extra).await
    }

    /// `upload` with another key's client.
    pub async fn upload_as(&self, http: &reqwest::Client, sample: &Sample, extra: Value) -> String {
        let created = self.create_as(http, sample, extra).await;
        assert_eq!(self.put(&created, &sample.bytes).await, 200);
        let id = created["evidence"]["id"].as_str().unwrap().to_owned();
        let (status, body) = self.send(http.post(format!("{}/v1/evidence/{id}/complete", self.base))).await;
        assert_eq!(status, 202, "{body}");
        id
    }

    /// Poll GET /v1/evidence/{id} until its status is `want`.
    pub async fn wait_status(&self, id: &str, want: &str) -> Value {
        self.wait_status_as(&self.http, id, want).await
    }

    /// `wait_status` with another key's client.
    pub async fn wait_status_as(&self, http: &reqwest::Client, id: &str, want: &str) -> Value {
        poll_for(WAIT, &format!("evidence {id} to be {want}"), || async {
            let (_, body) = self.send(http.get(format!("{}/v1/evidence/{id}", self.base))).await;
            (body["status"] == want).then_some(body)
        })
        .await
    }
}

/// A new API key (made as an operator would, on the command line's path).
pub async fn make_key(owner: &PgPool, tenant: &str, role: Role, cases: Option<Vec<String>>) -> String {
    let tenant = TenantId::new(tenant).unwrap();
    let new = NewKey { name: format!("test {role}"), role, cases };
    evidence::owner::create_key(owner, &tenant, &new).await.expect("create a key").secret
}

/// An HTTP client that sends `key` with every request.
pub fn client(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {key}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

/// A TCP proxy in front of the S3 server. While it is down it accepts and drops connections
/// at once, so the client sees real connection resets, not a mock's answer; with a rate set, it
/// sends the server's answers no faster than that.
pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Bytes per second from the server to the client; 0: as fast as they come.
    rate: Arc<AtomicU64>,
    /// Connections dropped while down.
    refused: Arc<AtomicU64>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, rate) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU64::new(0)));
        let refused = Arc::new(AtomicU64::new(0));
        let (flag, limit, dropped) = (up.clone(), rate.clone(), Arc::clone(&refused));
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !flag.load(Ordering::Acquire) {
                    dropped.fetch_add(1, Ordering::AcqRel);
                    drop(inbound);
                    continue;
                }
                let (upstream, limit) = (upstream.clone(), limit.clone());
                tokio::spawn(async move {
                    if let Ok(outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let ((mut from_client, mut to_client), (mut from_server, mut to_server)) =
                            (inbound.into_split(), outbound.into_split());
                        let requests = async {
                            use tokio::io::AsyncWriteExt;
                            let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
                            to_server.shutdown().await
                        };
                        let _ = tokio::join!(requests, throttled_copy(&mut from_server, &mut to_client, &limit));
                    }
                });
            }
        });
        Self { addr, up, rate, refused }
    }

    /// How many connections were dropped because the proxy was down.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Acquire)
    }

    /// Send the server's answers at most `bytes_per_sec` (0: unlimited) from now on.
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.rate.store(bytes_per_sec, Ordering::Release);
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Release);
    }
}

/// Copy `from` to `to` in pieces of at most 16 KiB, each followed by the pause that keeps the
/// copy within `rate` bytes per second.
async fn throttled_copy(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    rate: &AtomicU64,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        to.write_all(&buf[..n]).await?;
        match rate.load(Ordering::Acquire) {
            0 => {}
            rate => tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await,
        }
    }
}

pub async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The lower-case hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

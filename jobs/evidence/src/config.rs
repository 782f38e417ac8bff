//! Configuration from environment variables, read once in each binary's `main` and passed
//! down; nothing else in the workspace reads the environment (a test holds that). Every
//! variable is listed in README.md and `.env.example`. A value out of range stops the binary at
//! start with a message naming the variable and what it may be.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use queue::{RetryPolicy, WorkerConfig};

use crate::extract::{FamilyLimits, Limits};
use crate::model::TenantId;

#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    reason: String,
}

impl ConfigError {
    fn out_of_range(name: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        Self { name, value: value.to_string(), reason: reason.into() }
    }
}

/// Where settings are read from: the process's environment ([`environment`]), or, for a caller
/// that wants the defaults whatever the shell holds (the tests), nothing at all.
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn environment(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads one variable with a default, naming the variable in any error.
fn var<T: FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    var_in(&environment, name, default)
}

/// [`var`], from `lookup`.
fn var_in<T: FromStr>(lookup: Lookup, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match lookup(name) {
        Some(value) if !value.trim().is_empty() => value.trim().parse().map_err(|e: T::Err| ConfigError {
            name,
            value,
            reason: format!("{e}; {}", expected::<T>()),
        }),
        _ => Ok(default),
    }
}

/// What a value of type `T` looks like, for error messages.
fn expected<T>() -> &'static str {
    match std::any::type_name::<T>() {
        "u64" | "u32" | "usize" => "expected a whole number, 0 or more",
        "i32" | "i64" => "expected a whole number",
        "bool" => "expected true or false",
        "core::net::socket_addr::SocketAddr" => "expected an address like 127.0.0.1:8080",
        _ => "see README.md for the allowed values",
    }
}

fn millis(name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    var(name, default).map(Duration::from_millis)
}

fn secs(name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    secs_in(&environment, name, default)
}

fn secs_in(lookup: Lookup, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    var_in(lookup, name, default).map(Duration::from_secs)
}

fn flag(name: &'static str, default: bool) -> Result<bool, ConfigError> {
    var(name, default)
}

/// Where Postgres is and how the binaries use it.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    /// Apply the embedded migrations at start (`DATABASE_MIGRATE`), as the user of the URL.
    pub migrate: bool,
    /// The role every connection switches to (`DATABASE_APP_ROLE`, default `evidence_app`, the
    /// role the migrations create); empty: stay the user of the URL, which must then itself be
    /// subject to row-level security.
    pub app_role: Option<String>,
}

impl DatabaseSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            url: var("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/evidence".to_owned())?,
            max_connections: var("DATABASE_MAX_CONNECTIONS", 10)?,
            migrate: flag("DATABASE_MIGRATE", false)?,
            app_role: match std::env::var("DATABASE_APP_ROLE") {
                Ok(role) => Some(role.trim().to_owned()).filter(|r| !r.is_empty()),
                Err(_) => Some("evidence_app".to_owned()),
            },
        })
    }
}

/// Where the S3-compatible store is and how to sign for it.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// How this process reaches the store.
    pub endpoint: String,
    /// How clients reach it: presigned URLs are signed for this host.
    pub public_endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    /// Create the bucket at start when it is missing (local development).
    pub create_bucket: bool,
    pub presign_expiry: Duration,
    /// How long a request may go unanswered (a download: without a byte) before it counts as
    /// the store being unreachable. A download as a whole has no limit.
    pub request_timeout: Duration,
}

impl S3Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let endpoint: String = var("S3_ENDPOINT", "http://127.0.0.1:9000".to_owned())?;
        Ok(Self {
            public_endpoint: var("S3_PUBLIC_ENDPOINT", endpoint.clone())?,
            endpoint,
            region: var("S3_REGION", "us-east-1".to_owned())?,
            bucket: var("S3_BUCKET", "evidence".to_owned())?,
            access_key: var("S3_ACCESS_KEY", "evidence-dev".to_owned())?,
            secret_key: var("S3_SECRET_KEY", "evidence-dev-secret".to_owned())?,
            create_bucket: flag("S3_CREATE_BUCKET", false)?,
            presign_expiry: secs("S3_PRESIGN_EXPIRY_SECS", 900)?,
            request_timeout: match secs("S3_REQUEST_TIMEOUT_SECS", 60)? {
                Duration::ZERO => {
                    return Err(ConfigError::out_of_range("S3_REQUEST_TIMEOUT_SECS", 0, "must be at least 1"));
                }
                timeout => timeout,
            },
        })
    }
}

/// Limits of one upload and of its ingestion.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Largest object accepted, at create, at complete and while streaming.
    pub max_object_bytes: u64,
    pub max_text_bytes: u64,
    pub max_parse_bytes: u64,
    pub extract_timeout: Duration,
    pub extract_memory_bytes: u64,
    /// The `extract` binary; by default the one next to the running executable.
    pub extract_bin: PathBuf,
    /// Where objects are staged while they are hashed and extracted.
    pub tmp_dir: PathBuf,
    /// How long after its create an upload may be made (`UPLOAD_EXPIRY_SECS`); after it the
    /// worker marks the evidence `expired` and deletes what was uploaded. `None`: never.
    pub upload_expiry: Option<Duration>,
    /// Uploads larger than this go to the store in parts of this size (`UPLOAD_PART_BYTES`,
    /// 5 MiB to 5 GiB, S3's bounds for a part); larger when the file would need more than
    /// [`MAX_PARTS`] parts.
    pub upload_part_bytes: u64,
    /// The languages OCR reads images and PDF pages without text in (`INGEST_OCR_LANGUAGES`,
    /// Tesseract's form: `eng`, `deu+eng`); `None` (`off`): no OCR.
    pub ocr_languages: Option<String>,
    /// Where the programs extraction runs are found (`PATH`): pdftotext, pdftoppm, Tesseract.
    pub program_path: OsString,
    /// How far containers are opened into families of evidence.
    pub family: FamilySettings,
}

/// How far a container (a ZIP archive, an e-mail) is opened: its members become evidence of
/// their own, children of its evidence, down to `max_depth` containers deep.
#[derive(Debug, Clone, Copy)]
pub struct FamilySettings {
    /// `INGEST_FAMILY_MAX_DEPTH` (3): the members of evidence this deep in its family are not
    /// made evidence (a handed-over file is at depth 0, its members at 1).
    pub max_depth: i32,
    /// `INGEST_FAMILY_MAX_MEMBERS` (10,000): members made evidence in one family (the file
    /// handed over and every level below it) at most, so that archives nested in archives
    /// cannot multiply one upload into millions of rows.
    pub max_members: usize,
    /// `INGEST_FAMILY_MAX_BYTES` (1 GiB): bytes of one container's members together, as they
    /// are once inflated, at most (they are staged in `INGEST_TMP_DIR`).
    pub max_bytes: u64,
}

impl FamilySettings {
    fn read(lookup: Lookup) -> Result<Self, ConfigError> {
        let d = Self::default();
        let max_depth = var_in(lookup, "INGEST_FAMILY_MAX_DEPTH", d.max_depth)?;
        if !(0..=32).contains(&max_depth) {
            return Err(ConfigError::out_of_range("INGEST_FAMILY_MAX_DEPTH", max_depth, "0 to 32"));
        }
        Ok(Self {
            max_depth,
            max_members: var_in(lookup, "INGEST_FAMILY_MAX_MEMBERS", d.max_members)?,
            max_bytes: var_in(lookup, "INGEST_FAMILY_MAX_BYTES", d.max_bytes)?,
        })
    }
}

impl Default for FamilySettings {
    fn default() -> Self {
        Self { max_depth: 3, max_members: 10_000, max_bytes: 1 << 30 }
    }
}

impl IngestSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&environment)
    }

    /// Every `INGEST_*` and `UPLOAD_*` setting at its default, whatever the environment holds
    /// (the tests start from these); `PATH` is still where programs are found.
    pub fn defaults() -> Self {
        Self::read(&|_| None).expect("the defaults are valid")
    }

    fn read(lookup: Lookup) -> Result<Self, ConfigError> {
        let default_bin = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("extract")))
            .unwrap_or_else(|| PathBuf::from("extract"));
        Ok(Self {
            max_object_bytes: var_in(lookup, "INGEST_MAX_OBJECT_BYTES", 100 << 30)?,
            max_text_bytes: var_in(lookup, "INGEST_MAX_TEXT_BYTES", 4 << 20)?,
            max_parse_bytes: var_in(lookup, "INGEST_MAX_PARSE_BYTES", 64 << 20)?,
            extract_timeout: secs_in(lookup, "INGEST_EXTRACT_TIMEOUT_SECS", 60)?,
            extract_memory_bytes: var_in(lookup, "INGEST_EXTRACT_MEMORY_BYTES", 1 << 30)?,
            extract_bin: var_in(lookup, "INGEST_EXTRACT_BIN", default_bin)?,
            tmp_dir: var_in(lookup, "INGEST_TMP_DIR", std::env::temp_dir())?,
            upload_expiry: upload_expiry(lookup)?,
            upload_part_bytes: upload_part_bytes(lookup)?,
            ocr_languages: ocr_languages(lookup, "INGEST_OCR_LANGUAGES")?,
            program_path: program_path(),
            family: FamilySettings::read(lookup)?,
        })
    }
}

/// `PATH`, where the programs extraction runs are looked for; the usual places when unset.
fn program_path() -> OsString {
    std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
}

/// OCR languages: Tesseract's codes joined by `+` (`eng`, `deu+eng`), `eng` unless set; `off`
/// for no OCR.
fn ocr_languages(lookup: Lookup, name: &'static str) -> Result<Option<String>, ConfigError> {
    let languages: String = var_in(lookup, name, "eng".to_owned())?;
    if languages == "off" {
        return Ok(None);
    }
    let code = |c: &str| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    if !languages.split('+').all(code) {
        return Err(ConfigError::out_of_range(
            name,
            languages,
            "expected Tesseract language codes joined by + (eng, deu+eng), or off",
        ));
    }
    Ok(Some(languages))
}

/// `UPLOAD_EXPIRY_SECS`: 0 for never, else at least a minute (the expiry sweep runs about once a
/// minute, and a shorter window leaves no time to upload).
fn upload_expiry(lookup: Lookup) -> Result<Option<Duration>, ConfigError> {
    let expiry = secs_in(lookup, "UPLOAD_EXPIRY_SECS", 24 * 3600)?;
    if !expiry.is_zero() && expiry < Duration::from_secs(60) {
        return Err(ConfigError::out_of_range(
            "UPLOAD_EXPIRY_SECS",
            expiry.as_secs(),
            "must be 0 (never) or at least 60",
        ));
    }
    Ok((!expiry.is_zero()).then_some(expiry))
}

/// S3's bounds for a multipart upload: every part but the last at least 5 MiB, none above
/// 5 GiB, at most 10,000 parts.
pub const MIN_PART_BYTES: u64 = 5 << 20;
pub const MAX_PART_BYTES: u64 = 5 << 30;
pub const MAX_PARTS: u64 = 10_000;

/// `UPLOAD_PART_BYTES`: 64 MiB unless set, within S3's bounds for a part.
fn upload_part_bytes(lookup: Lookup) -> Result<u64, ConfigError> {
    let bytes = var_in(lookup, "UPLOAD_PART_BYTES", 64u64 << 20)?;
    let (min, max) = (MIN_PART_BYTES, MAX_PART_BYTES);
    if !(min..=max).contains(&bytes) {
        return Err(ConfigError::out_of_range(
            "UPLOAD_PART_BYTES",
            bytes,
            "must be 5 MiB (5242880) to 5 GiB (5368709120)",
        ));
    }
    Ok(bytes)
}

/// The variable that sets each [`WorkerConfig`] field, for messages about a bad value.
const WORKER_VARIABLES: [(&str, &str); 10] = [
    ("queue", "WORKER_QUEUE"),
    ("concurrency", "WORKER_CONCURRENCY"),
    ("claim_batch", "WORKER_CLAIM_BATCH"),
    ("claimers", "WORKER_CLAIMERS"),
    ("poll_interval", "WORKER_POLL_INTERVAL_MS"),
    ("lease", "WORKER_LEASE_SECS"),
    ("heartbeat", "WORKER_HEARTBEAT_MS"),
    ("shutdown_grace", "WORKER_SHUTDOWN_GRACE_SECS"),
    ("maintenance_interval", "WORKER_MAINTENANCE_INTERVAL_MS"),
    ("retention", "WORKER_RETENTION_SECS"),
];

/// The worker's queue settings, checked against the queue's rules, and where it serves
/// /health, /ready and /metrics.
pub fn worker_from_env() -> Result<(WorkerConfig, SocketAddr), ConfigError> {
    let d = WorkerConfig::default();
    let heartbeat: u64 = var("WORKER_HEARTBEAT_MS", 0)?;
    let host = var("HOSTNAME", "worker".to_owned())?;
    let config = WorkerConfig {
        queue: var("WORKER_QUEUE", d.queue)?,
        concurrency: var("WORKER_CONCURRENCY", d.concurrency)?,
        claim_batch: var("WORKER_CLAIM_BATCH", d.claim_batch)?,
        claimers: var("WORKER_CLAIMERS", d.claimers)?,
        poll_interval: millis("WORKER_POLL_INTERVAL_MS", d.poll_interval.as_millis() as u64)?,
        lease: secs("WORKER_LEASE_SECS", d.lease.as_secs())?,
        // 0 (the default) means a third of the lease.
        heartbeat: (heartbeat > 0).then(|| Duration::from_millis(heartbeat)),
        shutdown_grace: secs("WORKER_SHUTDOWN_GRACE_SECS", d.shutdown_grace.as_secs())?,
        maintenance_interval: millis("WORKER_MAINTENANCE_INTERVAL_MS", d.maintenance_interval.as_millis() as u64)?,
        retention: secs("WORKER_RETENTION_SECS", d.retention.as_secs())?,
        worker_id: WorkerConfig::worker_id_on(&host),
        ..d
    };
    config.validate().map_err(|e| {
        let name = WORKER_VARIABLES.iter().find(|(field, _)| *field == e.field).map_or(e.field, |(_, var)| var);
        // The value as the operator wrote it (or the default the rule was broken by).
        let value = std::env::var(name).unwrap_or_else(|_| format!("{} (the default)", e.value));
        ConfigError::out_of_range(name, value, e.allowed)
    })?;
    Ok((config, var("WORKER_BIND", "127.0.0.1:9091".parse().expect("literal address"))?))
}

/// The periodic fixity check (`fixity`).
#[derive(Debug, Clone)]
pub struct FixitySettings {
    /// How old a check may get before the bytes are checked again.
    pub interval: Duration,
    /// Average read rate of the checks, per worker.
    pub bytes_per_sec: u64,
}

/// The periodic fixity check: `None` when `FIXITY_INTERVAL_SECS` is 0 (off).
pub fn fixity_from_env() -> Result<Option<FixitySettings>, ConfigError> {
    let interval = secs("FIXITY_INTERVAL_SECS", 7 * 24 * 3600)?;
    let bytes_per_sec: u64 = var("FIXITY_BYTES_PER_SEC", 20 << 20)?;
    if bytes_per_sec == 0 {
        return Err(ConfigError::out_of_range("FIXITY_BYTES_PER_SEC", 0, "must be at least 1"));
    }
    Ok((!interval.is_zero()).then_some(FixitySettings { interval, bytes_per_sec }))
}

/// Retries of the ingest job: attempts, first backoff and its cap.
pub fn ingest_retry_from_env() -> Result<(i32, RetryPolicy), ConfigError> {
    let attempts: i32 = var("INGEST_MAX_ATTEMPTS", 8)?;
    if attempts < 1 {
        return Err(ConfigError::out_of_range("INGEST_MAX_ATTEMPTS", attempts, "must be at least 1"));
    }
    let policy =
        RetryPolicy { base: millis("INGEST_RETRY_BASE_MS", 1000)?, cap: millis("INGEST_RETRY_CAP_MS", 60_000)? };
    if policy.base.is_zero() || policy.cap < policy.base {
        return Err(ConfigError::out_of_range(
            "INGEST_RETRY_CAP_MS",
            policy.cap.as_millis(),
            format!(
                "INGEST_RETRY_BASE_MS must be at least 1 and the cap at least the base ({} ms)",
                policy.base.as_millis()
            ),
        ));
    }
    Ok((attempts, policy))
}

/// Where the API listens, the base URL its spec names, how much searches may take, and which
/// browser origins may call it.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub bind: SocketAddr,
    /// `None`: `http://` and the address actually bound (API_BIND may ask for port 0).
    pub public_url: Option<String>,
    /// Searches at once per process (`API_SEARCH_CONCURRENCY`).
    pub search_concurrency: usize,
    /// Server-side limit of one search (`API_SEARCH_TIMEOUT_MS`).
    pub search_timeout: Duration,
    /// Hits one search ranks, counts and facets at most (`API_SEARCH_MAX_HITS`); past them its
    /// total is a lower bound.
    pub search_max_hits: u32,
    /// Origins allowed by CORS (`API_CORS_ORIGINS`, comma-separated); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Where `/ready` and `/metrics` are served instead of `bind` (`API_OPS_BIND`); `None`: on
    /// `bind`, beside the API.
    pub ops_bind: Option<SocketAddr>,
    /// The tenant whose admin keys operate the whole queue (`API_OPERATOR_TENANT`): pause and
    /// resume queues, list them, reach every tenant's jobs. `None`: no tenant's.
    pub operator_tenant: Option<TenantId>,
}

impl ApiSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let public_url: String = var("API_PUBLIC_URL", String::new())?;
        let search_concurrency: usize = var("API_SEARCH_CONCURRENCY", 4)?;
        if search_concurrency == 0 {
            return Err(ConfigError::out_of_range("API_SEARCH_CONCURRENCY", 0, "must be at least 1"));
        }
        let search_timeout = millis("API_SEARCH_TIMEOUT_MS", 5000)?;
        if search_timeout.is_zero() {
            return Err(ConfigError::out_of_range("API_SEARCH_TIMEOUT_MS", 0, "must be greater than zero"));
        }
        let search_max_hits: u32 = var("API_SEARCH_MAX_HITS", 500)?;
        if !(1..=1_000_000).contains(&search_max_hits) {
            return Err(ConfigError::out_of_range("API_SEARCH_MAX_HITS", search_max_hits, "must be 1 to 1000000"));
        }
        let origins: String = var("API_CORS_ORIGINS", String::new())?;
        let cors_origins: Vec<String> =
            origins.split(',').map(|o| o.trim().trim_end_matches('/').to_owned()).filter(|o| !o.is_empty()).collect();
        if let Some(bad) = cors_origins.iter().find(|o| !(o.starts_with("http://") || o.starts_with("https://"))) {
            return Err(ConfigError::out_of_range("API_CORS_ORIGINS", bad, "each origin is scheme://host[:port]"));
        }
        let operator: String = var("API_OPERATOR_TENANT", String::new())?;
        let operator_tenant = match operator.trim() {
            "" => None,
            t => Some(TenantId::new(t).map_err(|e| ConfigError::out_of_range("API_OPERATOR_TENANT", t, e.0))?),
        };
        Ok(Self {
            operator_tenant,
            bind: var("API_BIND", "127.0.0.1:8080".parse().expect("literal address"))?,
            public_url: (!public_url.is_empty()).then_some(public_url),
            search_concurrency,
            search_timeout,
            search_max_hits,
            cors_origins,
            ops_bind: match var("API_OPS_BIND", String::new())? {
                ops if ops.is_empty() => None,
                ops => Some(
                    ops.parse()
                        .map_err(|e| ConfigError::out_of_range("API_OPS_BIND", ops, format!("host:port ({e})")))?,
                ),
            },
        })
    }
}

/// How the binaries log.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `RUST_LOG` directives.
    pub filter: String,
    /// `LOG_FORMAT=pretty` for people; JSON lines otherwise.
    pub pretty: bool,
}

impl LogSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let format: String = var("LOG_FORMAT", "json".to_owned())?;
        Ok(Self {
            filter: var("RUST_LOG", "info,sqlx=warn".to_owned())?,
            pretty: format.eq_ignore_ascii_case("pretty"),
        })
    }
}

/// The `extract` child's limits, passed by the worker as EXTRACT_* variables.
#[derive(Debug, Clone)]
pub struct ExtractChildSettings {
    pub limits: Limits,
    pub memory_bytes: u64,
    pub cpu_seconds: u64,
    /// `PATH`, where it finds pdftotext, pdftoppm and Tesseract.
    pub program_path: OsString,
}

impl ExtractChildSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Limits::default();
        Ok(Self {
            limits: Limits {
                max_text_bytes: var("EXTRACT_MAX_TEXT_BYTES", d.max_text_bytes)?,
                max_parse_bytes: var("EXTRACT_MAX_PARSE_BYTES", d.max_parse_bytes)?,
                ocr_languages: ocr_languages(&environment, "EXTRACT_OCR_LANGUAGES")?,
                deadline: None,
                // A container's members are written only where the worker says.
                family: match std::env::var_os("EXTRACT_MEMBERS_DIR") {
                    Some(dir) if !dir.is_empty() => Some(FamilyLimits {
                        dir: PathBuf::from(dir),
                        max_members: var("EXTRACT_MAX_MEMBERS", FamilySettings::default().max_members)?,
                        max_bytes: var("EXTRACT_MAX_MEMBER_BYTES", FamilySettings::default().max_bytes)?,
                    }),
                    _ => None,
                },
            },
            memory_bytes: var("EXTRACT_MEMORY_BYTES", 1 << 30)?,
            cpu_seconds: var("EXTRACT_CPU_SECONDS", 60)?,
            program_path: program_path(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every ingest and upload setting is read through the lookup it is given (so that
    /// `IngestSettings::defaults` holds whatever the shell holds), and a value found there wins.
    #[test]
    fn ingest_settings_are_read_only_through_their_lookup() {
        let asked = std::cell::RefCell::new(Vec::new());
        let read = IngestSettings::read(&|name| {
            asked.borrow_mut().push(name.to_owned());
            (name == "INGEST_MAX_TEXT_BYTES").then(|| "7".to_owned())
        })
        .unwrap();
        assert_eq!(read.max_text_bytes, 7);
        let asked = asked.into_inner();
        let names = [
            "INGEST_MAX_OBJECT_BYTES",
            "INGEST_MAX_TEXT_BYTES",
            "INGEST_MAX_PARSE_BYTES",
            "INGEST_EXTRACT_TIMEOUT_SECS",
            "INGEST_EXTRACT_MEMORY_BYTES",
            "INGEST_EXTRACT_BIN",
            "INGEST_TMP_DIR",
            "UPLOAD_EXPIRY_SECS",
            "UPLOAD_PART_BYTES",
            "INGEST_OCR_LANGUAGES",
            "INGEST_FAMILY_MAX_DEPTH",
            "INGEST_FAMILY_MAX_MEMBERS",
            "INGEST_FAMILY_MAX_BYTES",
        ];
        for name in names {
            assert!(asked.iter().any(|a| a == name), "{name} was not read through the lookup: {asked:?}");
        }
        assert_eq!(asked.len(), names.len(), "{asked:?}");
        let defaults = IngestSettings::defaults();
        assert_eq!((defaults.max_text_bytes, defaults.upload_part_bytes), (4 << 20, 64 << 20));
    }
}

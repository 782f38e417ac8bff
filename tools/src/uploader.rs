//! The command-line uploader's work (`evidence upload`): find the files, hash each one, then
//! create → PUT → complete with bounded parallelism, report progress, wait for indexing, and
//! tell per file how it ended. Over HTTP only, with an API key, as any client would.
//!
//! Each create carries an `Idempotency-Key` made from the file's path and sha256, so a second
//! run over the same folder gets the same evidence back and sends the bytes of none of the
//! files already accepted (only of those still awaiting their upload).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

/// What `evidence upload` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    pub case_id: Option<String>,
    pub custodian: Option<String>,
    pub tags: Vec<String>,
    /// Files in flight at once.
    pub parallel: usize,
    /// Wait until every accepted file is indexed or failed.
    pub wait: Option<Duration>,
}

/// One file found under the arguments: its path (as the table lists it) and size.
#[derive(Debug, Clone)]
pub struct LocalFile {
    pub path: PathBuf,
    pub size: u64,
}

/// How one file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent and completed now (and, with `--wait`, still not indexed when the wait ended).
    Accepted,
    /// An earlier run had already handed it over: nothing was sent.
    AlreadyAccepted,
    Indexed,
    /// Indexed, and the same bytes were already held (by another name or case).
    Duplicate,
    IndexError(String),
    /// Refused or not sent (the reason says which step).
    Failed(String),
}

impl Outcome {
    pub fn failed(&self) -> bool {
        matches!(self, Outcome::IndexError(_) | Outcome::Failed(_))
    }
    fn label(&self) -> String {
        match self {
            Outcome::Accepted => "accepted".into(),
            Outcome::AlreadyAccepted => "already accepted".into(),
            Outcome::Indexed => "indexed".into(),
            Outcome::Duplicate => "duplicate".into(),
            Outcome::IndexError(reason) => format!("index_error: {reason}"),
            Outcome::Failed(reason) => format!("failed: {reason}"),
        }
    }
}

/// One row of the final table.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub file: LocalFile,
    pub id: Option<String>,
    /// True when this run sent the file's bytes.
    pub sent: bool,
    pub outcome: Outcome,
}

/// The files under `inputs` (folders walked, depth first, in name order), skipping symbolic
/// links so that no loop is followed and nothing outside the folder is sent.
pub fn find_files(inputs: &[PathBuf]) -> anyhow::Result<Vec<LocalFile>> {
    let mut files = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).with_context(|| format!("{}", input.display()))?;
        if meta.is_dir() {
            walk(input, &mut files)?;
        } else if meta.is_file() {
            files.push(LocalFile { path: input.clone(), size: meta.len() });
        } else {
            bail!("{} is neither a file nor a folder", input.display());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<LocalFile>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("{}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, files)?;
        } else if kind.is_file() {
            files.push(LocalFile { size: entry.metadata()?.len(), path });
        }
    }
    Ok(())
}

/// Lower-case hex SHA-256 of a file, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// The Idempotency-Key of one file: the same path with the same bytes gives the same key.
pub fn idempotency_key(path: &Path, sha256: &str) -> String {
    let mut h = Sha256::new();
    h.update(path.to_string_lossy().as_bytes());
    h.update([0]);
    h.update(sha256.as_bytes());
    format!("evidence-upload-{}", &hex::encode(h.finalize())[..40])
}

/// The media type declared for a file, by its extension (the worker sniffs the bytes again).
pub fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" | "md" | "tsv" | "yaml" | "yml" => "text/plain",
        "csv" => "text/csv",
        "json" => "application/json",
        "xml" => "application/xml",
        "eml" => "message/rfc822",
        "html" | "htm" => "text/html",
        "pdf" => "application/pdf",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "tif" | "tiff" => "image/tiff",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// The API: its base URL and two clients, one with the key (for the API), one without (for
/// presigned URLs, which carry their own signature).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub store: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, key: &str) -> anyhow::Result<Self> {
        let builder =
            reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).timeout(Duration::from_secs(60));
        let http = crate::api_client(key, builder)?;
        // No overall timeout for the bytes: a large file takes as long as it takes.
        let store = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build()?;
        Ok(Self { base: base.trim_end_matches('/').to_owned(), http, store })
    }

    /// Send a request built by `make`, again after a network error, 429 or 5xx (1 s doubling
    /// to 16 s, six tries); any other answer is returned as it is.
    pub async fn send(&self, make: impl Fn() -> reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let mut wait = Duration::from_secs(1);
        for attempt in 1.. {
            let last = attempt >= 6;
            match make().send().await {
                Ok(r) if !(r.status().is_server_error() || r.status() == 429) || last => return Ok(r),
                Ok(_) => {}
                Err(e) if last => return Err(e.into()),
                Err(_) => {}
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(16));
        }
        unreachable!("the loop returns on its last try")
    }

    /// GET a JSON document from the API; a 4xx or 5xx is an error with the API's message.
    pub async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let resp = self.send(|| self.http.get(&url).query(query)).await.with_context(|| format!("GET {url}"))?;
        json_or_error(resp).await
    }

    /// POST a JSON body and read the JSON answer; a 4xx or 5xx is an error with the API's message.
    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let resp = self.send(|| self.http.post(&url).json(body)).await.with_context(|| format!("POST {url}"))?;
        json_or_error(resp).await
    }
}

/// The body of a 2xx answer; otherwise an error `<status> <code>: <message>`.
pub async fn json_or_error(resp: reqwest::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    match (body["code"].as_str(), body["message"].as_str()) {
        (Some(code), Some(message)) => bail!("{} {code}: {message}", status.as_u16()),
        _ => bail!("answered {status}"),
    }
}

/// Progress of the whole batch, shared by the uploads; drawn on stderr.
struct Progress {
    files: usize,
    bytes: u64,
    files_done: AtomicUsize,
    bytes_done: AtomicU64,
    started: Instant,
    terminal: bool,
}

impl Progress {
    fn line(&self) -> String {
        let (done, bytes) = (self.files_done.load(Ordering::Relaxed), self.bytes_done.load(Ordering::Relaxed));
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = bytes as f64 / secs;
        // No estimate in the first seconds, while the first files are still being hashed.
        let eta = if secs >= 2.0 && rate > 0.0 && self.bytes > bytes {
            format!("{:.0} s", (self.bytes - bytes) as f64 / rate)
        } else {
            "-".into()
        };
        format!(
            "{done}/{} files, {} of {}, {}/s, ETA {eta}",
            self.files,
            human_bytes(bytes),
            human_bytes(self.bytes),
            human_bytes(rate as u64)
        )
    }

    /// One file finished: a line of its own when stderr is not a terminal.
    fn file_done(&self, report: &FileReport) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        if !self.terminal {
            eprintln!("{}: {} ({})", report.file.path.display(), report.outcome.label(), self.line());
        }
    }

    /// Redraw the bar on a terminal every 200 ms until `stop`.
    async fn draw(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        if !self.terminal {
            return;
        }
        loop {
            eprint!("\r\x1b[2K{}", self.line());
            let _ = std::io::stderr().flush();
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        eprintln!("\r\x1b[2K{}", self.line());
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// Upload every file: at most `options.parallel` at once; then, with `wait`, poll until each
/// accepted file is indexed or failed. Reports come back in the order of `files`.
pub async fn upload_all(api: &Api, files: Vec<LocalFile>, options: &UploadOptions) -> Vec<FileReport> {
    let progress = Arc::new(Progress {
        files: files.len(),
        bytes: files.iter().map(|f| f.size).sum(),
        files_done: AtomicUsize::new(0),
        bytes_done: AtomicU64::new(0),
        started: Instant::now(),
        terminal: std::io::stderr().is_terminal(),
    });
    let stop = tokio_util::sync::CancellationToken::new();
    let bar = tokio::spawn(progress.clone().draw(stop.clone()));
    let mut reports: Vec<FileReport> = futures_util::stream::iter(files)
        .map(|file| {
            let progress = progress.clone();
            async move {
                let report = upload_one(api, file, options, &progress).await;
                progress.file_done(&report);
                report
            }
        })
        .buffered(options.parallel.max(1))
        .collect()
        .await;
    stop.cancel();
    let _ = bar.await;
    if let Some(wait) = options.wait {
        wait_for_indexing(api, &mut reports, wait).await;
    }
    reports
}

async fn upload_one(api: &Api, file: LocalFile, options: &UploadOptions, progress: &Arc<Progress>) -> FileReport {
    let mut report = FileReport { file, id: None, sent: false, outcome: Outcome::Accepted };
    if let Err(e) = send_file(api, &mut report, options, progress).await {
        report.outcome = Outcome::Failed(format!("{e:#}"));
        // What was not sent counts as done for the batch's figures.
        if !report.sent {
            progress.bytes_done.fetch_add(report.file.size, Ordering::Relaxed);
        }
    }
    report
}

async fn send_file(
    api: &Api,
    report: &mut FileReport,
    options: &UploadOptions,
    progress: &Arc<Progress>,
) -> anyhow::Result<()> {
    let path = report.file.path.clone();
    let sha256 = tokio::task::spawn_blocking({
        let path = path.clone();
        move || sha256_file(&path)
    })
    .await?
    .context("cannot read the file")?;
    let filename = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let body = json!({
        "filename": filename,
        "content_type": content_type(&path),
        "size_bytes": report.file.size,
        "sha256": sha256,
        "case_id": options.case_id,
        "custodian": options.custodian,
        "tags": options.tags,
    });
    // An earlier upload of the file that was abandoned until its window closed answers
    // `upload_expired`: the next key of the same sequence asks for a new evidence, and a later
    // run walks the same sequence to it.
    let base_key = idempotency_key(&path, &sha256);
    let url = format!("{}/v1/evidence", api.base);
    let mut generation = 0;
    let resp = loop {
        let key = if generation == 0 { base_key.clone() } else { format!("{base_key}-{generation}") };
        let resp = api.send(|| api.http.post(&url).header("idempotency-key", &key).json(&body)).await?;
        if resp.status() != 409 || generation >= 20 {
            break resp;
        }
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if body["code"] != "upload_expired" {
            bail!("create: 409 {}: {}", body["code"].as_str().unwrap_or(""), body["message"].as_str().unwrap_or(""));
        }
        generation += 1;
    };
    let existing = resp.status() == 200;
    let created = json_or_error(resp).await.context("create")?;
    let id = created["evidence"]["id"].as_str().context("the answer has no evidence.id")?.to_owned();
    report.id = Some(id.clone());
    if existing && created["evidence"]["status"] != "awaiting_upload" {
        report.outcome = Outcome::AlreadyAccepted;
        progress.bytes_done.fetch_add(report.file.size, Ordering::Relaxed);
        return Ok(());
    }

    report.sent = true;
    if let Some(multipart) = created["multipart_upload"].as_object() {
        // An upload in parts: each part from its offset in the file, one after the other (the
        // files of the batch are what goes in parallel), then the ETags to complete-multipart.
        let part_bytes = multipart["part_size_bytes"].as_u64().context("the answer has no part_size_bytes")?;
        let mut done = Vec::new();
        for part in multipart["parts"].as_array().context("the answer has no parts")? {
            let number = part["part_number"].as_u64().context("a part has no part_number")?;
            let offset = (number - 1) * part_bytes;
            let len = part_bytes.min(report.file.size.saturating_sub(offset));
            let etag = put_bytes(api, part, &path, offset, len, progress).await?;
            let etag = etag.with_context(|| format!("the PUT of part {number} answered no ETag"))?;
            done.push(json!({"part_number": number, "etag": etag}));
        }
        let url = format!("{}/v1/evidence/{id}/complete-multipart", api.base);
        let parts = json!({ "parts": done });
        json_or_error(api.send(|| api.http.post(&url).json(&parts)).await?).await.context("complete-multipart")?;
    } else {
        let upload = &created["upload"];
        put_bytes(api, upload, &path, 0, report.file.size, progress).await?;
        let url = format!("{}/v1/evidence/{id}/complete", api.base);
        json_or_error(api.send(|| api.http.post(&url)).await?).await.context("complete")?;
    }
    report.outcome = Outcome::Accepted;
    Ok(())
}

/// PUT `len` bytes of the file from `offset` to a presigned URL (`target` has its `url` and
/// `headers`), streamed from disk, never held in memory; a try that fails on the network or with
/// a 5xx is made again from the start (the URL admits the same bytes again). The ETag the store
/// answered, if any.
async fn put_bytes(
    api: &Api,
    target: &Value,
    path: &Path,
    offset: u64,
    len: u64,
    progress: &Arc<Progress>,
) -> anyhow::Result<Option<String>> {
    let url = target["url"].as_str().context("the answer has no upload url")?;
    let headers = target["headers"].as_object().cloned().unwrap_or_default();
    for attempt in 1u64.. {
        let mut file = tokio::fs::File::open(path).await.context("cannot open the file")?;
        file.seek(std::io::SeekFrom::Start(offset)).await.context("cannot read the file")?;
        let this_try = Arc::new(AtomicU64::new(0));
        let (bar, counter) = (progress.clone(), this_try.clone());
        let counted = ReaderStream::with_capacity(file.take(len), 256 * 1024).inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                bar.bytes_done.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        });
        let mut put =
            api.store.put(url).header(reqwest::header::CONTENT_LENGTH, len).body(reqwest::Body::wrap_stream(counted));
        for (k, v) in &headers {
            put = put.header(k, v.as_str().unwrap_or_default());
        }
        let answer = put.send().await;
        if let Ok(r) = &answer
            && r.status().is_success()
        {
            let etag = r.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
            return Ok(etag);
        }
        progress.bytes_done.fetch_sub(this_try.load(Ordering::Relaxed), Ordering::Relaxed);
        match answer {
            Ok(r) if r.status().is_client_error() || attempt == 3 => {
                bail!("PUT to the presigned URL answered {}", r.status())
            }
            Err(e) if attempt == 3 => return Err(anyhow::Error::from(e).context("PUT to the presigned URL")),
            _ => tokio::time::sleep(Duration::from_secs(attempt)).await,
        }
    }
    unreachable!("the third try returns or fails")
}

/// Poll the accepted files (this run's and earlier runs') until each is indexed or failed, or
/// `wait` has passed.
async fn wait_for_indexing(api: &Api, reports: &mut [FileReport], wait: Duration) {
    let deadline = Instant::now() + wait;
    let mut pending: Vec<usize> = (0..reports.len())
        .filter(|&i| matches!(reports[i].outcome, Outcome::Accepted | Outcome::AlreadyAccepted))
        .collect();
    eprintln!("evidence: waiting up to {} s for {} files to be indexed", wait.as_secs(), pending.len());
    let mut pause = Duration::from_millis(100);
    while !pending.is_empty() {
        let mut still = Vec::new();
        for i in pending {
            let id = reports[i].id.clone().unwrap_or_default();
            match api.get_json(&format!("/v1/evidence/{id}"), &[]).await {
                Ok(ev) => match ev["status"].as_str() {
                    Some("indexed") if ev["duplicate"] == true => reports[i].outcome = Outcome::Duplicate,
                    Some("indexed") => reports[i].outcome = Outcome::Indexed,
                    Some("index_error") => {
                        let reason = ev["last_error"].as_str().unwrap_or("no reason recorded").to_owned();
                        reports[i].outcome = Outcome::IndexError(reason);
                    }
                    _ => still.push(i),
                },
                Err(_) => still.push(i),
            }
        }
        pending = still;
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// The closing table: one line per file, then the totals.
pub fn table(reports: &[FileReport], took: Duration) -> String {
    let mut out = String::new();
    let width = reports.iter().map(|r| r.file.path.display().to_string().chars().count()).max().unwrap_or(4).max(4);
    out.push_str(&format!("{:<width$}  {:<36}  result\n", "file", "evidence id"));
    for r in reports {
        let id = r.id.as_deref().unwrap_or("-");
        out.push_str(&format!("{:<width$}  {id:<36}  {}\n", r.file.path.display().to_string(), r.outcome.label()));
    }
    let count = |f: fn(&Outcome) -> bool| reports.iter().filter(|r| f(&r.outcome)).count();
    let sent: Vec<&FileReport> = reports.iter().filter(|r| r.sent).collect();
    let bytes: u64 = sent.iter().map(|r| r.file.size).sum();
    let secs = took.as_secs_f64().max(0.001);
    out.push_str(&format!(
        "{} files: {} indexed, {} duplicate, {} accepted (not waited for), {} already accepted, {} index_error, {} failed; \
         sent {} files, {} in {:.1} s ({:.1} files/s, {}/s)\n",
        reports.len(),
        count(|o| *o == Outcome::Indexed),
        count(|o| *o == Outcome::Duplicate),
        count(|o| *o == Outcome::Accepted),
        count(|o| *o == Outcome::AlreadyAccepted),
        count(|o| matches!(o, Outcome::IndexError(_))),
        count(|o| matches!(o, Outcome::Failed(_))),
        sent.len(),
        human_bytes(bytes),
        secs,
        sent.len() as f64 / secs,
        human_bytes((bytes as f64 / secs) as u64),
    ));
    out
}

/// Download `id` to `out`, checking the bytes against the sha256 the API gives: written to a
/// temporary file beside `out` and renamed only when they match.
pub async fn download(api: &Api, id: &str, out: &Path) -> anyhow::Result<(String, u64)> {
    let link = api.get_json(&format!("/v1/evidence/{id}/download"), &[]).await?;
    let url = link["url"].as_str().context("the answer has no url")?;
    let expected = link["sha256"].as_str().context("the answer has no sha256")?.to_owned();
    let resp = api.store.get(url).send().await.context("GET the presigned URL")?;
    if !resp.status().is_success() {
        bail!("GET the presigned URL answered {}", resp.status());
    }
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).with_context(|| format!("a temporary file in {}", dir.display()))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("reading the download")?;
        hasher.update(&chunk);
        tmp.write_all(&chunk)?;
        size += chunk.len() as u64;
    }
    let got = hex::encode(hasher.finalize());
    if got != expected {
        bail!("the downloaded bytes have sha256 {got}, the evidence {expected}: nothing written");
    }
    tmp.as_file().sync_all()?;
    tmp.persist(out).with_context(|| format!("{}", out.display()))?;
    Ok((got, size))
}

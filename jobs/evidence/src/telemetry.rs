//! Logs and metrics for both binaries. Logs are one JSON object per line with `ts`, `level`,
//! `msg`, `target` and every field of the enclosing spans flattened in (`request_id`,
//! `job_id`, `evidence_id`, `attempt`, …), so `grep request_id` finds a request's whole story;
//! `LOG_FORMAT=pretty` for local reading; levels from `RUST_LOG` (both read by `config`).
//! Metrics go to a Prometheus recorder whose text `/metrics` serves ([`render`]), with a
//! `# HELP` line and a unit for each, and this process's own `process_*` figures.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogSettings;

pub use metrics_exporter_prometheus::PrometheusHandle as MetricsHandle;

/// Text extraction, by extractor and outcome (see [`record_extraction`]).
pub const EXTRACTION_SECONDS: &str = "evidence_extraction_duration_seconds";

/// Bucket bounds (seconds) of every histogram, up to a minute: requests, searches, short jobs.
const BUCKETS: [f64; 15] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Further bounds for histograms of longer things (an ingest may run 12 minutes, a fixity
/// sweep hours), used up to the longest duration the histogram must tell.
const LONG_BUCKETS: [f64; 10] = [120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0];

/// Install the global subscriber and metrics recorder. Call once, first thing in `main`.
/// `longest`: histograms whose values may pass a minute, each with the longest value it must
/// tell apart (a job timeout, say), which becomes its last bucket.
pub fn init(log: &LogSettings, longest: &[(&str, Duration)]) -> anyhow::Result<PrometheusHandle> {
    let filter = EnvFilter::try_new(&log.filter).with_context(|| format!("RUST_LOG={:?}", log.filter))?;
    if log.pretty {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).fmt_fields(JsonFields::new()).event_format(JsonLines).init();
    }
    let mut builder = PrometheusBuilder::new().set_buckets(&BUCKETS)?;
    for (name, up_to) in longest {
        builder = builder.set_buckets_for_metric(Matcher::Full((*name).to_owned()), &buckets_up_to(*up_to))?;
    }
    let handle = builder.install_recorder()?;
    queue::metrics::describe_metrics();
    describe_metrics();
    Ok(handle)
}

/// The bucket bounds for a histogram whose longest value is `longest`: those below it, then it.
pub fn buckets_up_to(longest: Duration) -> Vec<f64> {
    let longest = longest.as_secs_f64();
    let mut bounds: Vec<f64> = BUCKETS.iter().chain(&LONG_BUCKETS).copied().filter(|b| *b < longest).collect();
    if longest > 0.0 {
        bounds.push(longest);
    }
    bounds
}

fn describe_metrics() {
    describe_counter!(
        "evidence_bytes_ingested_total",
        Unit::Bytes,
        "Bytes streamed from the object store and hashed by ingest jobs."
    );
    describe_counter!(
        "evidence_integrity_failures_total",
        Unit::Count,
        "Stored bytes found to differ from their recorded sha256, by check (reindex, fixity)."
    );
    describe_counter!(
        "evidence_uploads_left_total",
        Unit::Count,
        "Uploads left in the bucket after their bytes were stored at their content key: the store refused their deletion (logged with the keys)."
    );
    describe_counter!(
        "evidence_searches_refused_total",
        Unit::Count,
        "Searches answered 503, by reason (busy: every search slot taken; timeout: over API_SEARCH_TIMEOUT_MS)."
    );
    describe_gauge!("evidence_by_status", Unit::Count, "Evidence rows by status, over every tenant.");
    describe_gauge!(
        "evidence_custody_unsealed",
        Unit::Count,
        "Custody entries committed but not yet sealed into their chain, over every tenant."
    );
    describe_histogram!(
        EXTRACTION_SECONDS,
        Unit::Seconds,
        "Time to extract a file's text, by extractor (text, pdf, docx, pptx, html, none; unknown when it failed) and outcome (text, no_text, failed)."
    );
}

/// Record one extraction: its extractor, whether it found text, and how long it took.
pub fn record_extraction(result: &Result<crate::extract::Extracted, crate::extract::Failure>, took: Duration) {
    let (extractor, outcome) = match result {
        Ok(x) if x.text.is_empty() => (x.extractor.clone(), "no_text"),
        Ok(x) => (x.extractor.clone(), "text"),
        Err(_) => ("unknown".to_owned(), "failed"),
    };
    metrics::histogram!(EXTRACTION_SECONDS, "extractor" => extractor, "outcome" => outcome).record(took.as_secs_f64());
}

/// The Prometheus text page: the recorder's metrics, then this process's own.
pub fn render(handle: &PrometheusHandle) -> String {
    let mut page = handle.render();
    process_metrics(&mut page);
    page
}

/// `process_*` as Prometheus' client libraries name them, read from `/proc` at each scrape
/// (nothing where there is no `/proc`): CPU time, resident and virtual memory, open and
/// allowed file descriptors, start time.
fn process_metrics(page: &mut String) {
    use std::fmt::Write;
    let mut put = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = write!(page, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n");
    };
    if let Some(stat) = ProcStat::read() {
        put("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.", stat.cpu_seconds);
        put("process_resident_memory_bytes", "gauge", "Resident memory size, in bytes.", stat.resident_bytes);
        put("process_virtual_memory_bytes", "gauge", "Virtual memory size, in bytes.", stat.virtual_bytes);
        if let Some(start) = stat.start_time_seconds {
            put(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since the Unix epoch, in seconds.",
                start,
            );
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        put("process_open_fds", "gauge", "Open file descriptors.", fds.count() as f64);
    }
    if let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        put("process_max_fds", "gauge", "The limit on open file descriptors.", soft as f64);
    }
}

/// The figures of `/proc/self/stat` (proc(5)) the process metrics need.
struct ProcStat {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    start_time_seconds: Option<f64>,
}

impl ProcStat {
    fn read() -> Option<Self> {
        let stat = ProcStatLine::read("self")?;
        let field = |n: usize| stat.field(n);
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let page = rustix::param::page_size() as f64;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok()));
        Some(Self {
            cpu_seconds: stat.cpu_seconds(false)?,
            resident_bytes: field(24)? * page,
            virtual_bytes: field(23)?,
            start_time_seconds: boot.zip(field(22)).map(|(boot, since)| boot + since / ticks),
        })
    }
}

/// One process's line of `/proc/<pid>/stat` (proc(5)): its command name and the fields after it.
pub struct ProcStatLine {
    pub comm: String,
    /// From field 3 (state) on.
    fields: Vec<String>,
}

impl ProcStatLine {
    /// `pid` is a number or `self`; `None` when the process is gone (or there is no `/proc`).
    pub fn read(pid: &str) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may hold spaces: the fields are counted after
        // its `)`.
        let (head, rest) = stat.rsplit_once(')')?;
        Some(Self {
            comm: head.split_once('(')?.1.to_owned(),
            fields: rest.split_whitespace().map(str::to_owned).collect(),
        })
    }

    /// Field `n` as proc(5) numbers them (from 3).
    pub fn field(&self, n: usize) -> Option<f64> {
        self.fields.get(n.checked_sub(3)?)?.parse().ok()
    }

    /// User and system CPU time, with that of the children it has waited for when asked
    /// (for a server whose exited workers' time its parent holds).
    pub fn cpu_seconds(&self, with_children: bool) -> Option<f64> {
        let own = self.field(14)? + self.field(15)?;
        let children = if with_children { self.field(16)? + self.field(17)? } else { 0.0 };
        Some((own + children) / rustix::param::clock_ticks_per_second() as f64)
    }
}

/// `{"ts":…,"level":…,"msg":…,"target":…, <span fields, outermost first>, <event fields>}`.
/// `ts` comes first so that sorting lines sorts them by time (`scripts/trace` relies on it).
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut line = Map::new();
        line.insert("ts".into(), chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into());
        line.insert("level".into(), event.metadata().level().as_str().to_ascii_lowercase().into());
        line.insert("msg".into(), Value::Null);
        line.insert("target".into(), event.metadata().target().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else { continue };
                if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(fields) {
                    line.extend(map);
                }
            }
        }
        let mut visitor = FieldVisitor(&mut line);
        event.record(&mut visitor);
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

struct FieldVisitor<'a>(&'a mut Map<String, Value>);

impl FieldVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = if field.name() == "message" { "msg" } else { field.name() };
        self.0.insert(name.to_owned(), value);
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_histograms_end_at_their_longest_value() {
        let ingest = buckets_up_to(Duration::from_secs(720));
        assert_eq!(&ingest[ingest.len() - 3..], &[300.0, 600.0, 720.0]);
        assert!(ingest.windows(2).all(|w| w[0] < w[1]), "{ingest:?}");
        assert_eq!(buckets_up_to(Duration::from_secs(60)).last(), Some(&60.0), "no bound repeated");
        assert_eq!(buckets_up_to(Duration::from_secs(12 * 3600)).last(), Some(&43200.0));
    }

    #[test]
    fn process_figures_are_read_from_proc() {
        let stat = ProcStat::read().expect("/proc/self/stat");
        assert!(stat.resident_bytes > 1e6 && stat.virtual_bytes >= stat.resident_bytes, "{}", stat.resident_bytes);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let start = stat.start_time_seconds.expect("btime");
        assert!(start <= now + 1.0 && start > now - 86400.0, "started {start}, now {now}");
    }

    #[test]
    fn a_process_line_names_its_command_and_counts_its_cpu() {
        let line = ProcStatLine::read(&std::process::id().to_string()).expect("this process's stat");
        assert!(!line.comm.is_empty() && !line.comm.contains(')'), "{}", line.comm);
        assert_eq!(line.field(4), Some(std::os::unix::process::parent_id() as f64), "ppid is field 4");
        let own = line.cpu_seconds(false).expect("cpu");
        assert!(line.cpu_seconds(true).expect("cpu") >= own && own >= 0.0);
        assert!(ProcStatLine::read("0").is_none(), "no process 0 in /proc");
    }
}

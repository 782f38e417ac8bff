//! `evidence`: the command-line client for people with a folder of evidence.
//!
//! EVIDENCE_API_URL (default API_PUBLIC_URL, else http://127.0.0.1:8080) and EVIDENCE_API_KEY,
//! or `--api` and `--key`. See `evidence help`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tools::config::first_set;
use tools::uploader::{self, Api, UploadOptions};

const USAGE: &str = "usage:
  evidence upload <folder|file>... [--case <case>] [--custodian <name>] [--tag <tag>]...
                  [--parallel <n>] [--wait [--timeout <seconds>]]
      hash each file, declare its sha256, upload (n at once, 4 by default) and complete it;
      with --wait, wait until each is indexed (600 s at most by default). Ends with a table;
      exits 1 when any file failed or ended in index_error. A second run over the same files
      sends none of them again.
  evidence search <words> [--case <case>] [--limit <n>] [--all]
      hits best first, n of them (20 by default); with --all, every hit the search holds
      (API_SEARCH_MAX_HITS at most), n a page (200)
  evidence status <evidence id>
  evidence members <evidence id>
      the members of a container (a ZIP's files, an e-mail's attachments), each made evidence
      of its own: id, status, depth and path inside it; then the container's family note
  evidence download <evidence id> -o <file>
      the bytes, checked against the evidence's sha256 before <file> is written
  evidence reindex [--case <case>] [--outdated] [--per-second <n>]
      queue indexed and failed evidence again through POST /v1/reindex, n a second at most
      (10 by default): a case's, or with --outdated all whose text an older version of the
      extraction made (read again by the current one); --case and --outdated together narrow.
      Prints each batch (skipped: an ingest was running, or the status moved); safe to stop
      and run again
options for every command: --api <url> (EVIDENCE_API_URL), --key <key> (EVIDENCE_API_KEY)";

/// Arguments: positionals, and `--name value` flags (`--wait` takes none).
struct Args {
    positional: Vec<String>,
    flags: Vec<(String, String)>,
}

impl Args {
    fn parse(args: &[String], with_value: &[&str], switches: &[&str]) -> anyhow::Result<Self> {
        let (mut positional, mut flags) = (Vec::new(), Vec::new());
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if switches.contains(&arg.as_str()) {
                flags.push((arg.clone(), String::new()));
            } else if with_value.contains(&arg.as_str()) {
                let value = it.next().with_context(|| format!("{arg} needs a value"))?;
                flags.push((arg.clone(), value.clone()));
            } else if arg.starts_with('-') && arg.len() > 1 {
                bail!("unknown option {arg}\n{USAGE}");
            } else {
                positional.push(arg.clone());
            }
        }
        Ok(Self { positional, flags })
    }
    fn last(&self, name: &str) -> Option<String> {
        self.flags.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.flags.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect()
    }
    fn has(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| n == name)
    }
    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T> {
        match self.last(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| anyhow::anyhow!("{name} {v}: not a number")),
        }
    }
    fn api(&self) -> anyhow::Result<Api> {
        let base = self
            .last("--api")
            .or_else(|| first_set(&["EVIDENCE_API_URL", "API_PUBLIC_URL"]))
            .unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let key = self.last("--key").or_else(|| first_set(&["EVIDENCE_API_KEY"])).context(
            "no API key: pass --key or set EVIDENCE_API_KEY (an admin makes one with `api keys create --tenant <t> --role uploader --name <n>`)",
        )?;
        Api::new(&base, &key)
    }
}

const COMMON: [&str; 2] = ["--api", "--key"];

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("evidence: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Ok(false): the command ran and something it did failed (exit 1); Err: it could not run.
async fn run(args: &[String]) -> anyhow::Result<bool> {
    let Some((command, rest)) = args.split_first() else {
        bail!("{USAGE}");
    };
    match command.as_str() {
        "upload" => {
            let a = Args::parse(
                rest,
                &[&COMMON[..], &["--case", "--custodian", "--tag", "--parallel", "--timeout"]].concat(),
                &["--wait"],
            )?;
            if a.positional.is_empty() {
                bail!("upload needs at least one folder or file\n{USAGE}");
            }
            let api = a.api()?;
            let options = UploadOptions {
                case_id: a.last("--case"),
                custodian: a.last("--custodian"),
                tags: a.all("--tag"),
                parallel: a.number("--parallel", 4usize)?.clamp(1, 64),
                wait: a.has("--wait").then(|| a.number("--timeout", 600u64).map(Duration::from_secs)).transpose()?,
            };
            let inputs: Vec<PathBuf> = a.positional.iter().map(PathBuf::from).collect();
            let files = uploader::find_files(&inputs)?;
            let total: u64 = files.iter().map(|f| f.size).sum();
            eprintln!("evidence: {} files, {} to {}", files.len(), uploader::human_bytes(total), api.base);
            let started = Instant::now();
            let reports = uploader::upload_all(&api, files, &options).await;
            print!("{}", uploader::table(&reports, started.elapsed()));
            Ok(!reports.iter().any(|r| r.outcome.failed()))
        }
        "search" => {
            let a = Args::parse(rest, &[&COMMON[..], &["--case", "--limit"]].concat(), &["--all"])?;
            if a.positional.is_empty() {
                bail!("search needs words to look for\n{USAGE}");
            }
            let q = a.positional.join(" ");
            // --all pages through every hit, --limit a page (by default the most the API gives).
            let limit = a.number("--limit", if a.has("--all") { 200u32 } else { 20 })?.to_string();
            let case = a.last("--case");
            let api = a.api()?;
            let (mut cursor, mut shown) = (None::<String>, 0usize);
            let total = loop {
                let mut query = vec![("q", q.as_str()), ("limit", limit.as_str())];
                if let Some(case) = &case {
                    query.push(("case_id", case.as_str()));
                }
                if let Some(cursor) = &cursor {
                    query.push(("cursor", cursor.as_str()));
                }
                let found = api.get_json("/v1/search", &query).await?;
                let hits = found["hits"].as_array().cloned().unwrap_or_default();
                for hit in &hits {
                    let snippet = hit["snippet"].as_str().unwrap_or_default().replace('\n', " ");
                    let page = hit["page"].as_i64().map(|p| format!(" (page {p})")).unwrap_or_default();
                    println!(
                        "{}  {}{page}  {snippet}",
                        hit["id"].as_str().unwrap_or("-"),
                        hit["filename"].as_str().unwrap_or("-")
                    );
                }
                shown += hits.len();
                cursor = found["next_cursor"].as_str().map(str::to_owned);
                if !a.has("--all") || cursor.is_none() {
                    let total = found["total"].as_i64().unwrap_or(shown as i64);
                    break if found["total_exact"] == false { format!("at least {total}") } else { total.to_string() };
                }
            };
            eprintln!("evidence: {shown} of {total} hits");
            Ok(true)
        }
        "status" => {
            let a = Args::parse(rest, &COMMON, &[])?;
            let [id] = a.positional.as_slice() else { bail!("status needs one evidence id\n{USAGE}") };
            let ev = a.api()?.get_json(&format!("/v1/evidence/{id}"), &[]).await?;
            println!("{}", serde_json::to_string_pretty(&ev)?);
            Ok(ev["status"] != "index_error")
        }
        "members" => {
            let a = Args::parse(rest, &COMMON, &[])?;
            let [id] = a.positional.as_slice() else { bail!("members needs one evidence id\n{USAGE}") };
            let api = a.api()?;
            let container = api.get_json(&format!("/v1/evidence/{id}"), &[]).await?;
            let (mut cursor, mut shown) = (None::<String>, 0usize);
            loop {
                let mut query = vec![("parent_id", id.as_str()), ("limit", "200")];
                if let Some(cursor) = &cursor {
                    query.push(("cursor", cursor.as_str()));
                }
                let page = api.get_json("/v1/evidence", &query).await?;
                let items = page["items"].as_array().cloned().unwrap_or_default();
                for m in &items {
                    println!(
                        "{}  {:<11} {}  {}",
                        m["id"].as_str().unwrap_or("-"),
                        m["status"].as_str().unwrap_or("-"),
                        m["depth"],
                        m["member_path"].as_str().unwrap_or("-")
                    );
                }
                shown += items.len();
                cursor = page["next_cursor"].as_str().map(str::to_owned);
                if cursor.is_none() {
                    break;
                }
            }
            eprintln!("evidence: {shown} member(s) of {}", container["filename"].as_str().unwrap_or(id));
            if let Some(note) = container["family_note"].as_str() {
                eprintln!("evidence: {note}");
            }
            Ok(true)
        }
        "download" => {
            let a = Args::parse(rest, &[&COMMON[..], &["-o", "--output"]].concat(), &[])?;
            let [id] = a.positional.as_slice() else { bail!("download needs one evidence id\n{USAGE}") };
            let out = a.last("-o").or_else(|| a.last("--output")).context("download needs -o <file>")?;
            let (sha256, size) = uploader::download(&a.api()?, id, std::path::Path::new(&out)).await?;
            eprintln!("evidence: wrote {out}: {size} bytes, sha256 {sha256} (checked)");
            Ok(true)
        }
        "reindex" => {
            let a = Args::parse(rest, &[&COMMON[..], &["--case", "--per-second"]].concat(), &["--outdated"])?;
            if !a.positional.is_empty() || !(a.has("--case") || a.has("--outdated")) {
                bail!("reindex needs --case <case>, --outdated or both\n{USAGE}");
            }
            let per_second = a.number("--per-second", 10u32)?.clamp(1, 200);
            let api = a.api()?;
            let (mut cursor, mut queued, mut skipped) = (None::<String>, 0usize, 0usize);
            loop {
                let started = Instant::now();
                let body = json!({"case_id": a.last("--case"), "outdated": a.has("--outdated"),
                                  "limit": per_second, "cursor": cursor});
                let batch = api.post_json("/v1/reindex", &body).await?;
                let count = |field: &str| batch[field].as_array().map_or(0, Vec::len);
                (queued, skipped) = (queued + count("queued"), skipped + count("skipped"));
                eprintln!("evidence: {queued} queued, {skipped} skipped so far");
                cursor = batch["next_cursor"].as_str().map(str::to_owned);
                if cursor.is_none() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1).saturating_sub(started.elapsed())).await;
            }
            println!("{queued} queued, {skipped} skipped");
            Ok(true)
        }
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(true)
        }
        other => bail!("unknown command {other}\n{USAGE}"),
    }
}

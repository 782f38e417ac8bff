//! The fault suite's load (`scripts/fault-suite`): uploads FAULT_DOCS text documents (FAULT_CLIENTS
//! at once) into case FAULT_CASE through presign → PUT → complete, while the suite breaks things.
//! Every step is retried while the API or the store cannot be reached or answers 5xx (for up to
//! two minutes), the create with an Idempotency-Key so that a retry never makes a second row.
//! Every FAULT_DUPLICATE_EVERY-th document has the bytes of the first (deduplication under faults).
//! Prints `accepted <n>`: documents whose complete was answered 202. Settings: FAULT_DOCS (500),
//! FAULT_CLIENTS (8), FAULT_CASE, FAULT_DUPLICATE_EVERY (10), DEMO_API_URL, EVIDENCE_API_KEY.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tools::config::{api_key, demo_api_url, first_set, var_or};
use tools::document;

const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

/// Send the request `make` builds until it is answered with anything but a 5xx.
async fn until_answered(what: &str, make: impl Fn() -> reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
    let started = Instant::now();
    let mut wait = Duration::from_millis(100);
    loop {
        match make().send().await {
            Ok(r) if !r.status().is_server_error() => return Ok(r),
            Ok(r) if started.elapsed() > GIVE_UP_AFTER => bail!("{what}: still {} after {GIVE_UP_AFTER:?}", r.status()),
            Err(e) if started.elapsed() > GIVE_UP_AFTER => bail!("{what}: {e}"),
            _ => {}
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

async fn upload(
    http: &reqwest::Client,
    store: &reqwest::Client,
    base: &str,
    case: &str,
    i: usize,
    bytes: Vec<u8>,
) -> anyhow::Result<()> {
    let body = json!({"filename": format!("doc-{i}.txt"), "content_type": "text/plain", "size_bytes": bytes.len(), "case_id": case});
    let key = format!("{case}-{i}");
    let created = until_answered("create", || {
        http.post(format!("{base}/v1/evidence")).header("Idempotency-Key", &key).json(&body)
    })
    .await?;
    let created: Value = created.error_for_status()?.json().await?;
    let id = created["evidence"]["id"].as_str().context("evidence.id")?.to_owned();
    let upload = &created["upload"];
    let url = upload["url"].as_str().context("upload.url")?;
    let headers = upload["headers"].as_object().context("upload.headers")?;
    until_answered("PUT", || {
        let mut put = store.put(url).body(bytes.clone());
        for (k, v) in headers {
            put = put.header(k, v.as_str().unwrap_or_default());
        }
        put
    })
    .await?
    .error_for_status()?;
    let done = until_answered("complete", || http.post(format!("{base}/v1/evidence/{id}/complete"))).await?;
    if done.status().as_u16() == 409 {
        // An earlier complete landed and its answer was lost: the evidence is past awaiting_upload.
        let ev: Value = until_answered("read", || http.get(format!("{base}/v1/evidence/{id}"))).await?.json().await?;
        if ev["status"] == "awaiting_upload" {
            bail!("complete of {id} refused: {ev}");
        }
        return Ok(());
    }
    done.error_for_status()?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = demo_api_url();
    let case = first_set(&["FAULT_CASE"]).context("FAULT_CASE must be set")?;
    let docs: usize = var_or("FAULT_DOCS", 500);
    let clients: usize = var_or("FAULT_CLIENTS", 8);
    let duplicate_every: usize = var_or("FAULT_DUPLICATE_EVERY", 10).max(1);
    let (http, store) = tools::clients(&api_key()?, Duration::from_secs(30))?;
    let sem = Arc::new(Semaphore::new(clients));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..docs {
        let permit = sem.clone().acquire_owned().await?;
        let (http, store, base, case) = (http.clone(), store.clone(), base.clone(), case.clone());
        let source = if i > 0 && i % duplicate_every == 0 { 0 } else { i };
        let bytes = document(source, 2048, &case);
        tasks.spawn(async move {
            let r = upload(&http, &store, &base, &case, i, bytes).await;
            drop(permit);
            r
        });
    }
    let mut accepted = 0;
    while let Some(r) = tasks.join_next().await {
        r??;
        accepted += 1;
    }
    println!("accepted {accepted}");
    Ok(())
}

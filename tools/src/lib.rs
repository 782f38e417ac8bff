//! Clients of the service for people and scripts: `evidence` (the command-line uploader, see
//! `uploader`), `demo-client` (the demo's uploads and checks),
//! `bench-ingest` (end-to-end figures through a running API), `bench-queue` (the queue alone,
//! on a scratch database) and `fault-load` (uploads that retry through the fault suite's faults). The binaries are in `src/bin`; what they share is here.

pub mod config;
pub mod uploader;

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

/// Two HTTP clients: one that sends the API key with every request (for the API), and one that
/// sends none (for presigned URLs, which carry their own signature; a store refuses a request
/// signed twice).
pub fn clients(api_key: &str, timeout: Duration) -> anyhow::Result<(reqwest::Client, reqwest::Client)> {
    let api = api_client(api_key, reqwest::Client::builder().timeout(timeout))?;
    let store = reqwest::Client::builder().timeout(timeout).build()?;
    Ok((api, store))
}

/// `builder`'s client, sending `Authorization: Bearer <api_key>` with every request.
pub fn api_client(api_key: &str, builder: reqwest::ClientBuilder) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {api_key}").parse().context("the API key")?);
    Ok(builder.default_headers(headers).build()?)
}

/// create → PUT → complete for one document; returns the evidence id. Fails on the first error.
pub async fn ingest_one(
    http: &reqwest::Client,
    store: &reqwest::Client,
    base: &str,
    case_id: &str,
    name: String,
    bytes: Vec<u8>,
    content_type: &str,
) -> anyhow::Result<String> {
    let created: Value = http
        .post(format!("{base}/v1/evidence"))
        .json(&json!({"filename": name, "content_type": content_type, "size_bytes": bytes.len(), "case_id": case_id}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let upload = &created["upload"];
    let mut put = store.put(upload["url"].as_str().context("upload.url")?).body(bytes);
    for (k, v) in upload["headers"].as_object().context("headers")? {
        put = put.header(k, v.as_str().unwrap_or_default());
    }
    put.send().await?.error_for_status()?;
    let id = created["evidence"]["id"].as_str().context("id")?.to_owned();
    http.post(format!("{base}/v1/evidence/{id}/complete")).send().await?.error_for_status()?;
    Ok(id)
}

/// The value at fraction `p` (0 to 1) of `sorted`, which is not empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A text document of `size` bytes, different for each `i` and `run`, of words search can find.
pub fn document(i: usize, size: usize, run: &str) -> Vec<u8> {
    let words = ["audit", "ledger", "invoice", "breach", "custody", "exhibit", "witness", "contract", "memo", "policy"];
    let mut text = format!("document {i} of run {run}\n");
    let mut n = i as u64;
    while text.len() < size {
        n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        text.push_str(words[(n >> 33) as usize % words.len()]);
        text.push(if n.is_multiple_of(11) { '\n' } else { ' ' });
    }
    text.truncate(size);
    text.into_bytes()
}

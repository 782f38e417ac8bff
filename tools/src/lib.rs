//! Clients of the service for people and scripts: `demo-client` (the demo's uploads and checks),
//! `bench-ingest` (end-to-end figures through a running API) and `bench-queue` (the queue alone,
//! on a scratch database). The binaries are in `src/bin`; what they share is here.

pub mod config;

use std::time::Duration;

/// Two HTTP clients: one that sends the API key with every request (for the API), and one that
/// sends none (for presigned URLs, which carry their own signature; a store refuses a request
/// signed twice).
pub fn clients(api_key: &str, timeout: Duration) -> anyhow::Result<(reqwest::Client, reqwest::Client)> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {api_key}").parse()?);
    let api = reqwest::Client::builder().timeout(timeout).default_headers(headers).build()?;
    let store = reqwest::Client::builder().timeout(timeout).build()?;
    Ok((api, store))
}

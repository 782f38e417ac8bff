//! The demo's client side, over HTTP only, as any user would do it: for each sample file ask
//! for an upload, PUT the bytes to the presigned URL, complete, wait until every file is
//! indexed, then search for each one, and list the members of the containers (an archive's
//! file, an e-mail's attachment) once they are indexed. Prints a summary; exits 0 only if all
//! of it worked.
//!
//! EVIDENCE_API_KEY (a key that may upload and search), DEMO_API_URL (default API_PUBLIC_URL,
//! else http://127.0.0.1:8080), DEMO_TIMEOUT_SECS (60).

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tools::config::{api_key, first_set, var_or};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = first_set(&["DEMO_API_URL", "API_PUBLIC_URL"]).unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let timeout = Duration::from_secs(var_or("DEMO_TIMEOUT_SECS", 60));
    let (http, store) = tools::clients(&api_key()?, Duration::from_secs(30))?;
    let marker = format!("run{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let case_id = format!("demo-{marker}");
    let samples = evidence::samples::all(&marker);
    println!("demo: uploading {} files to {base} as case {case_id}", samples.len());

    let started = Instant::now();
    let mut ids = Vec::new();
    for s in &samples {
        let sha = hex::encode(Sha256::digest(&s.bytes));
        let created: Value = http
            .post(format!("{base}/v1/evidence"))
            .json(&json!({
                "filename": s.filename, "content_type": s.content_type, "size_bytes": s.bytes.len(),
                "sha256": sha, "case_id": case_id, "tags": ["demo"],
            }))
            .send()
            .await
            .context("POST /v1/evidence")?
            .error_for_status()?
            .json()
            .await?;
        let upload = &created["upload"];
        let mut put = store.put(upload["url"].as_str().context("upload.url")?).body(s.bytes.clone());
        for (k, v) in upload["headers"].as_object().context("upload.headers")? {
            put = put.header(k, v.as_str().unwrap_or_default());
        }
        let status = put.send().await.context("PUT to the presigned URL")?.status();
        ensure!(status.is_success(), "PUT {} to the presigned URL answered {status}", s.filename);
        let id = created["evidence"]["id"].as_str().context("evidence.id")?.to_owned();
        http.post(format!("{base}/v1/evidence/{id}/complete")).send().await?.error_for_status()?;
        ids.push(id);
    }
    println!(
        "demo: {} uploads completed in {:.2} s; waiting for ingestion",
        ids.len(),
        started.elapsed().as_secs_f64()
    );

    let deadline = Instant::now() + timeout;
    let mut evidence = Vec::new();
    for id in &ids {
        loop {
            let ev: Value =
                http.get(format!("{base}/v1/evidence/{id}")).send().await?.error_for_status()?.json().await?;
            match ev["status"].as_str() {
                Some("indexed") | Some("index_error") => {
                    evidence.push(ev);
                    break;
                }
                _ if Instant::now() > deadline => bail!("evidence {id} still {} after {timeout:?}", ev["status"]),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    println!("demo: all files ingested {:.2} s after the first upload", started.elapsed().as_secs_f64());

    let mut failures = 0;
    println!("\n{:<24} {:<8} {:<11} {:<9} {:<29} search", "file", "status", "extractor", "duplicate", "query");
    for (s, ev) in samples.iter().zip(&evidence) {
        let hits: Value = http
            .get(format!("{base}/v1/search"))
            .query(&[("q", s.find_with.as_str()), ("case_id", case_id.as_str())])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let found = hits["hits"].as_array().is_some_and(|h| h.iter().any(|h| h["id"] == ev["id"]));
        let ok = ev["status"] == "indexed" && found;
        failures += usize::from(!ok);
        println!(
            "{:<24} {:<8} {:<11} {:<9} {:<29} {}",
            s.filename,
            ev["status"].as_str().unwrap_or("?"),
            ev["extractor"].as_str().unwrap_or("-"),
            ev["duplicate"].to_string(),
            format!("{:?}", s.find_with),
            if found { "found" } else { "NOT FOUND" }
        );
        if let Some(e) = ev["last_error"].as_str() {
            println!("    last_error: {e}");
        }
    }
    let example: Value = http
        .get(format!("{base}/v1/search"))
        .query(&[("q", "breach"), ("case_id", &case_id)])
        .send()
        .await?
        .json()
        .await?;
    if let Some(snippet) = example["hits"][0]["snippet"].as_str() {
        println!("\nsearch \"breach\" → {}: {snippet}", example["hits"][0]["filename"].as_str().unwrap_or("?"));
    }
    // Containers open into families: each member is evidence of its own, indexed in turn.
    println!();
    for (s, ev) in samples.iter().zip(&evidence) {
        if !matches!(ev["extractor"].as_str(), Some("zip" | "email")) {
            continue;
        }
        let id = ev["id"].as_str().context("evidence.id")?;
        let members = loop {
            let page: Value = http
                .get(format!("{base}/v1/evidence"))
                .query(&[("parent_id", id)])
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            let settled = items.iter().all(|m| matches!(m["status"].as_str(), Some("indexed" | "index_error")));
            if settled || Instant::now() > deadline {
                break items;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for m in &members {
            let status = m["status"].as_str().unwrap_or("?");
            println!("{} › {} ({status})", s.filename, m["member_path"].as_str().unwrap_or("?"));
        }
        if members.is_empty() || members.iter().any(|m| m["status"] != "indexed") {
            println!("{}: its members were not all indexed", s.filename);
            failures += 1;
        }
    }
    ensure!(failures == 0, "{failures} of {} files (or their members) were not indexed and found", samples.len());
    println!(
        "\ndemo: OK — {} files uploaded, verified, indexed and found in {:.2} s",
        samples.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

//! The evidence flow end to end over HTTP: presign → PUT → complete → ingest → search, and
//! every error a client can cause.

use evidence::samples::{self, Sample};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{Options, TENANT, TestApp, WAIT, count, poll_for, sha256_hex};

fn sample(name: &str) -> Sample {
    samples::named("t35tm4rk", name)
}

async fn search(app: &TestApp, q: &str) -> Vec<Value> {
    let (status, body) = app.send(app.http.get(format!("{}/v1/search", app.base)).query(&[("q", q)])).await;
    assert_eq!(status, 200, "{body}");
    body["hits"].as_array().unwrap().clone()
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn every_sample_type_is_indexed_and_found_by_search(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let all = samples::all("t35tm4rk");
    let mut ids = Vec::new();
    for s in &all {
        ids.push(app.upload(s, json!({"case_id": "case-1", "tags": ["demo"]})).await);
    }
    for (s, id) in all.iter().zip(&ids) {
        let ev = app.wait_status(id, "indexed").await;
        assert_eq!(ev["sha256"], sha256_hex(&s.bytes), "{}", s.filename);
        assert_eq!(ev["duplicate"], false);
        let hits = search(&app, &s.find_with).await;
        let hit = hits
            .iter()
            .find(|h| h["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{} not found by {:?}: {hits:?}", s.filename, s.find_with));
        assert_eq!(hit["matched_text"], s.has_text, "{}", s.filename);
        if s.has_text {
            assert!(hit["snippet"].as_str().unwrap().contains('«'), "{hit}");
        }
    }
    let id_of = |name: &str| &ids[all.iter().position(|s| s.filename == name).expect(name)];
    let png = app.get(&format!("/v1/evidence/{}", id_of("crime-scene-photo.png"))).await.1;
    assert_eq!(png["extractor"], "ocr");
    assert_eq!(png["extract_note"], "no text found in this image/png by OCR (eng)");
    let pdf = app.get(&format!("/v1/evidence/{}", id_of("audit-report.pdf"))).await.1;
    assert_eq!((pdf["media_type"].as_str(), pdf["extractor"].as_str()), (Some("application/pdf"), Some("pdf")));
    assert_eq!(pdf["properties"]["pages"], 1, "{pdf}");
    // What a document says of itself: here an e-mail's headers.
    let eml = app.get(&format!("/v1/evidence/{}", id_of("forwarded-exhibit.eml"))).await.1;
    let properties = &eml["properties"];
    assert_eq!(
        (properties["title"].as_str(), properties["author"].as_str()),
        (Some("Fwd: exhibit t35tm4rk"), Some("Dana Whitfield <dana@example.org>")),
        "{eml}"
    );
    assert!(png["properties"].is_null(), "{png}");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn same_bytes_twice_make_two_evidence_rows_and_one_content_row(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let s = sample("interview-notes.txt");
    let first = app.upload(&s, json!({"tags": ["a"]})).await;
    app.wait_status(&first, "indexed").await;
    let second = app.upload(&s, json!({"tags": ["b"], "filename": "copy-of-notes.txt"})).await;
    let ev = app.wait_status(&second, "indexed").await;
    assert_eq!(ev["duplicate"], true);
    assert_eq!(ev["filename"], "copy-of-notes.txt", "each evidence keeps its own metadata");
    assert_eq!(count(&pool, "SELECT count(*) FROM evidence").await, 2);
    assert_eq!(count(&pool, "SELECT count(*) FROM content").await, 1);
    assert_eq!(search(&app, "courier").await.len(), 2, "both evidence rows are found");
    let (status, page) = app.get(&format!("/v1/evidence?sha256={}", sha256_hex(&s.bytes))).await;
    assert_eq!(status, 200, "{page}");
    let mut copies: Vec<&str> = page["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    copies.sort();
    let mut want = vec![first.as_str(), second.as_str()];
    want.sort();
    assert_eq!(copies, want, "listing by checksum finds every copy");
    let (status, err) = app.get("/v1/evidence?sha256=ABC").await;
    assert_eq!((status, err["code"].as_str()), (422, Some("invalid_request")), "{err}");

    // Complete called again: a no-op that answers with the current state, and no new job.
    let (status, body) = app.post(&format!("/v1/evidence/{second}/complete"), json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("indexed")));
    assert_eq!(count(&pool, "SELECT count(*) FROM job").await, 2);
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn verified_evidence_downloads_through_a_presigned_url(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let s = sample("board-minutes.docx");
    let created = app.create(&s, json!({"filename": "Protokoll März.docx"})).await;
    let id = created["evidence"]["id"].as_str().unwrap().to_owned();
    let (status, err) = app.get(&format!("/v1/evidence/{id}/download")).await;
    assert_eq!((status, err["code"].as_str()), (409, Some("wrong_status")), "{err}");
    assert!(err["message"].as_str().unwrap().contains("awaiting_upload"), "{err}");

    assert_eq!(app.put(&created, &s.bytes).await, 200);
    app.post(&format!("/v1/evidence/{id}/complete"), json!({})).await;
    app.wait_status(&id, "indexed").await;
    let (status, download) = app.get(&format!("/v1/evidence/{id}/download")).await;
    assert_eq!(status, 200, "{download}");
    assert_eq!(download["sha256"], sha256_hex(&s.bytes));
    assert_eq!(download["size_bytes"], s.bytes.len());

    // Anyone holding the URL can fetch it (no credentials), and only what it was signed for.
    let url = download["url"].as_str().unwrap();
    let got = reqwest::get(url).await.unwrap();
    assert_eq!(got.status(), 200);
    let disposition = got.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.ends_with("filename*=UTF-8''Protokoll%20M%C3%A4rz.docx"), "{disposition}");
    assert_eq!(sha256_hex(&got.bytes().await.unwrap()), download["sha256"].as_str().unwrap());
    let sha256 = download["sha256"].as_str().unwrap();
    assert!(url.contains(&format!("/{TENANT}/content/{sha256}?")), "served from the content key: {url}");
    let other_key = url.replacen(sha256, &"0".repeat(64), 1);
    assert_eq!(reqwest::get(other_key).await.unwrap().status(), 403, "the signature covers the key");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn concurrent_duplicates_do_not_race(_opts: PgPoolOptions, connect: PgConnectOptions) {
    // Six finishing transactions at once need more connections than a test pool's five.
    let pool = PgPoolOptions::new().max_connections(20).connect_with(connect).await.unwrap();
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let s = sample("access-log.csv");
    let mut ids = Vec::new();
    for _ in 0..6 {
        let created = app.create(&s, json!({})).await;
        assert_eq!(app.put(&created, &s.bytes).await, 200);
        ids.push(created["evidence"]["id"].as_str().unwrap().to_owned());
    }
    // Hold every ingest at its content insert until all six are there, then let them go at once:
    // six transactions insert the same sha256 together.
    let mut gate = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE content IN SHARE MODE").execute(&mut *gate).await.unwrap();
    let completes = ids.iter().map(|id| app.post_owned(format!("/v1/evidence/{id}/complete")));
    for (status, _) in futures_util::future::join_all(completes).await {
        assert_eq!(status, 202);
    }
    poll_for(WAIT, "six ingests waiting to insert their content", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
             WHERE c.relname = 'content' AND NOT l.granted
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (waiting == 6).then_some(())
    })
    .await;
    gate.commit().await.unwrap();
    for id in &ids {
        app.wait_status(id, "indexed").await;
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM content").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM evidence WHERE duplicate = false").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM content_chunk").await, 1);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM job WHERE state = 'completed' AND attempt = 1").await,
        6,
        "none retried"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn idempotency_key_returns_the_same_evidence(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let body = json!({"filename": "a.txt", "content_type": "text/plain", "size_bytes": 5});
    let req = || app.http.post(format!("{}/v1/evidence", app.base)).header("Idempotency-Key", "key-1").json(&body);
    let (s1, first) = app.send(req()).await;
    let (s2, again) = app.send(req()).await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(first["evidence"]["id"], again["evidence"]["id"]);
    assert!(again["upload"]["url"].is_string(), "a replay still gets an upload URL while the upload is awaited");
    let other = json!({"filename": "b.txt", "content_type": "text/plain", "size_bytes": 5});
    let (status, err) = app
        .send(app.http.post(format!("{}/v1/evidence", app.base)).header("Idempotency-Key", "key-1").json(&other))
        .await;
    assert_eq!((status, err["code"].as_str()), (409, Some("idempotency_key_reused")));
    assert_eq!(count(&pool, "SELECT count(*) FROM evidence").await, 1);
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn bad_input_gets_a_clear_json_error(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let cases = [
        (json!({"filename": "../etc/passwd", "content_type": "text/plain", "size_bytes": 1}), 422, "invalid_request"),
        (json!({"filename": "a.txt", "content_type": "plain", "size_bytes": 1}), 422, "invalid_request"),
        (json!({"filename": "a.txt", "content_type": "text/plain", "size_bytes": -1}), 422, "invalid_request"),
        (json!({"filename": "a.txt", "content_type": "text/plain", "size_bytes": 1_i64 << 40}), 422, "invalid_request"),
        (
            json!({"filename": "a.txt", "content_type": "text/plain", "size_bytes": 1, "sha256": "abc"}),
            422,
            "invalid_request",
        ),
        (json!({"filename": "a.txt", "content_type": "text/plain"}), 400, "bad_request"),
        (json!({"filename": "", "content_type": "text/plain", "size_bytes": 1}), 422, "invalid_request"),
    ];
    for (body, status, code) in cases {
        let (got, err) = app.post("/v1/evidence", body.clone()).await;
        assert_eq!((got, err["code"].as_str()), (status, Some(code)), "{body} → {err}");
        assert!(!err["message"].as_str().unwrap().is_empty());
    }
    let (status, err) = app
        .send(
            app.http
                .post(format!("{}/v1/evidence", app.base))
                .body("{not json")
                .header("content-type", "application/json"),
        )
        .await;
    assert_eq!((status, err["code"].as_str()), (400, Some("bad_request")));
    let (status, err) = app.get("/v1/evidence/not-a-uuid").await;
    assert_eq!((status, err["code"].as_str()), (400, Some("invalid_id")));
    let message = err["message"].as_str().unwrap();
    assert!(message.starts_with("the id in the path is malformed: evidence ids are UUIDs"), "{message}");
    let (status, err) = app.post("/v1/evidence/42/complete", json!({})).await;
    assert_eq!((status, err["code"].as_str()), (400, Some("invalid_id")));
    let missing = uuid::Uuid::new_v4();
    let (status, err) = app.get(&format!("/v1/evidence/{missing}")).await;
    assert_eq!((status, err["code"].as_str()), (404, Some("not_found")));
    let (status, _) = app.post(&format!("/v1/evidence/{missing}/complete"), json!({})).await;
    assert_eq!(status, 404);
    let (status, err) = app.get("/v1/search?q=").await;
    assert_eq!((status, err["code"].as_str()), (422, Some("invalid_request")));
    let (status, err) = app.get("/v1/evidence?status=lost").await;
    assert_eq!((status, err["code"].as_str()), (422, Some("invalid_request")));
    let (status, err) = app.get("/v1/evidence?cursor=zzz").await;
    assert_eq!((status, err["code"].as_str()), (422, Some("invalid_request")), "not a cursor's shape: {err}");
    let (status, err) = app.get("/v1/evidence?cursor=999999999999999999_00000000-0000-0000-0000-000000000000").await;
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("bad_cursor")),
        "a cursor's shape, a time this API never wrote: {err}"
    );
    // Before Postgres's first timestamp: this answered 500 (timestamp out of range).
    let (status, err) = app.get("/v1/evidence?cursor=-7699017775043972060_ffb24d5b-8c01-db7e-023f-10d2b5787d3b").await;
    assert_eq!((status, err["code"].as_str()), (422, Some("invalid_request")), "{err}");
    let resp = app.http.delete(format!("{}/v1/evidence", app.base)).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, POST");
    let (status, _) = app.get("/health").await;
    assert_eq!(status, 200, "the service keeps running");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn complete_without_upload_or_with_wrong_size_is_refused(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let s = sample("interview-notes.txt");
    let created = app.create(&s, json!({})).await;
    let id = created["evidence"]["id"].as_str().unwrap();
    let (status, err) = app.post(&format!("/v1/evidence/{id}/complete"), json!({})).await;
    assert_eq!((status, err["code"].as_str()), (409, Some("upload_missing")));

    // Bytes of another size under the same key (as if uploaded around the presigned URL).
    let key = format!("{TENANT}/uploads/{id}");
    app.storage.put(&key, b"short", "text/plain").await.unwrap();
    let (status, err) = app.post(&format!("/v1/evidence/{id}/complete"), json!({})).await;
    assert_eq!((status, err["code"].as_str()), (422, Some("size_mismatch")), "{err}");
    assert_eq!(app.storage.head(&key).await.unwrap(), None, "the refused object was deleted");
    assert_eq!(count(&pool, "SELECT count(*) FROM job").await, 0, "nothing was queued");
    assert_eq!(app.get(&format!("/v1/evidence/{id}")).await.1["status"], "awaiting_upload");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn presigned_url_pins_content_type_and_checksum(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let s = sample("interview-notes.txt");
    let created = app.create(&s, json!({"sha256": sha256_hex(&s.bytes)})).await;
    let url = created["upload"]["url"].as_str().unwrap();
    let checksum = created["upload"]["headers"]["x-amz-checksum-sha256"].as_str().unwrap();
    let other_type = app
        .http
        .put(url)
        .header("content-type", "text/html")
        .header("x-amz-checksum-sha256", checksum)
        .body(s.bytes.clone());
    assert_eq!(other_type.send().await.unwrap().status().as_u16(), 403);
    let no_checksum = app.plain.put(url).header("content-type", "text/plain").body(s.bytes.clone());
    assert_eq!(no_checksum.send().await.unwrap().status().as_u16(), 403);
    let mut tampered = url.to_owned();
    tampered.pop();
    tampered.push(if url.ends_with('0') { '1' } else { '0' });
    let bad_sig = app
        .http
        .put(&tampered)
        .header("content-type", "text/plain")
        .header("x-amz-checksum-sha256", checksum)
        .body(s.bytes.clone());
    assert_eq!(bad_sig.send().await.unwrap().status().as_u16(), 403);
    assert_eq!(app.put(&created, &s.bytes).await, 200, "the declared request goes through");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn checksum_mismatch_ends_in_index_error_with_a_reason(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let s = sample("interview-notes.txt");
    let wrong = sha256_hex(b"other bytes");
    let created = app.create(&s, json!({"sha256": wrong})).await;
    let id = created["evidence"]["id"].as_str().unwrap();
    // The presigned URL would refuse these bytes; write them around it, as a replaced object.
    app.storage.put(&format!("{TENANT}/uploads/{id}"), &s.bytes, "text/plain").await.unwrap();
    let (status, _) = app.post(&format!("/v1/evidence/{id}/complete"), json!({})).await;
    assert_eq!(status, 202);
    let ev = app.wait_status(id, "index_error").await;
    let reason = ev["last_error"].as_str().unwrap();
    assert!(reason.starts_with(&format!("checksum mismatch: declared sha256 {wrong}")), "{reason}");
    assert!(reason.ends_with("(after 1 attempt)"), "permanent: no retries: {reason}");

    // Reindex is allowed from index_error; with the same bytes it fails the same way.
    let (status, body) = app.post(&format!("/v1/evidence/{id}/reindex"), json!({})).await;
    assert_eq!(status, 202, "{body}");
    app.wait_status(id, "index_error").await;
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn an_object_store_outage_spends_no_attempt_and_pauses_claims_until_it_ends(pool: PgPool) {
    // Two attempts: an outage that counted would fail the evidence on its second meeting.
    let app = TestApp::start(pool.clone(), Options { proxy: true, max_attempts: 2, ..Options::default() }).await;
    let proxy = app.proxy.as_ref().unwrap();
    proxy.set_up(false);
    let first = app.upload(&sample("incident-timeline.md"), json!({})).await;
    let status = app.worker.clone();
    poll_for(WAIT, "the worker waits for the object store", || async {
        (status.waiting_for() == ["object_store"]).then_some(())
    })
    .await;
    let second = app.upload(&sample("interview-notes.txt"), json!({})).await;
    // While the store stays down the worker asks it again and again (with backoff) and claims
    // nothing: the first job's attempt was given back, the second was never taken.
    let checks = status.failed_checks();
    poll_for(WAIT, "three more failed checks of the store", || async {
        (status.failed_checks() >= checks + 3).then_some(())
    })
    .await;
    let jobs = "SELECT attempt, outages, jsonb_array_length(errors), state FROM job
                WHERE kind = 'ingest_evidence' ORDER BY id";
    let rows: Vec<(i32, i32, i32, String)> = sqlx::query_as(jobs).fetch_all(&pool).await.unwrap();
    assert_eq!(rows, [(0, 1, 1, "available".to_owned()), (0, 0, 0, "available".to_owned())]);
    let outage: bool = sqlx::query_scalar("SELECT (errors -> 0 ->> 'outage')::bool FROM job ORDER BY id LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(outage, "the attempt's error says it met an outage");
    let waiting = app.get(&format!("/v1/evidence/{first}")).await.1;
    assert!(waiting["last_error"].as_str().unwrap().contains("object store unavailable"), "{waiting}");
    assert_eq!((&waiting["status"], &waiting["attempts"]), (&json!("queued"), &json!(0)), "{waiting}");

    proxy.set_up(true);
    for id in [&first, &second] {
        let ev = app.wait_status(id, "indexed").await;
        assert_eq!(ev["attempts"], 1, "{ev}");
    }
    let rows: Vec<(i32, i32, i32, String)> = sqlx::query_as(jobs).fetch_all(&pool).await.unwrap();
    assert_eq!(rows, [(1, 1, 1, "completed".to_owned()), (1, 0, 0, "completed".to_owned())]);
    assert!(status.waiting_for().is_empty());
    app.stop().await;
}

/// Only a stall is an outage, not a download that takes longer than the request timeout: with a
/// 1 s timeout the worker reads 3 MiB at 1 MiB/s and indexes it at its first attempt.
#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_download_longer_than_the_request_timeout_goes_through_while_bytes_keep_coming(pool: PgPool) {
    let timeout = Some(std::time::Duration::from_secs(1));
    let app =
        TestApp::start(pool.clone(), Options { proxy: true, worker_s3_timeout: timeout, ..Options::default() }).await;
    app.proxy.as_ref().unwrap().set_rate(1 << 20);
    let slow = Sample {
        filename: "slow-disk.img".into(),
        content_type: "application/octet-stream".into(),
        bytes: (0..3u32 << 20).map(|i| (i % 253) as u8).collect(),
        find_with: "slow-disk".into(),
        has_text: false,
    };
    let id = app.upload(&slow, json!({})).await;
    let ev = app.wait_status(&id, "indexed").await;
    let (attempt, outages): (i32, i32) =
        sqlx::query_as("SELECT attempt, outages FROM job WHERE kind = 'ingest_evidence'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((attempt, outages), (1, 0), "{ev}");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_malformed_pdf_is_stored_and_findable_by_name_and_the_worker_keeps_going(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let broken = Sample {
        filename: "corrupted-ledger.pdf".into(),
        content_type: "application/pdf".into(),
        bytes: b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\nxref\ngarbage".to_vec(),
        find_with: "corrupted ledger".into(),
        has_text: false,
    };
    let id = app.upload(&broken, json!({})).await;
    let ev = app.wait_status(&id, "indexed").await;
    assert_eq!(ev["extractor"], "none", "{ev}");
    assert!(ev["extract_note"].as_str().unwrap().contains("extraction failed"), "{ev}");
    assert_eq!(ev["text_reason"], "corrupt", "{ev}");
    assert!(search(&app, "corrupted ledger").await.iter().any(|h| h["id"] == id.as_str()));
    let next = app.upload(&sample("chain-of-custody.json"), json!({})).await;
    app.wait_status(&next, "indexed").await;
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn scans_are_read_by_ocr_and_found_by_their_words(pool: PgPool) {
    // A page drawn as a grey image, as a PNG and as a PDF with no text layer
    // (jobs/evidence/tests/fixtures/make-pdfs.sh): only OCR can find its words.
    let app = TestApp::start(pool, Options::default()).await;
    let scan = |filename: &str, content_type: &str, bytes: &[u8]| Sample {
        filename: filename.into(),
        content_type: content_type.into(),
        bytes: bytes.to_vec(),
        find_with: "Olander reconciled".into(),
        has_text: true,
    };
    let png = scan(
        "scanned-affidavit.png",
        "image/png",
        include_bytes!("../../../jobs/evidence/tests/fixtures/scan-page.png"),
    );
    let pdf = scan(
        "scanned-affidavit.pdf",
        "application/pdf",
        include_bytes!("../../../jobs/evidence/tests/fixtures/scan-image-only.pdf"),
    );
    let mut ids = Vec::new();
    for s in [&png, &pdf] {
        ids.push(app.upload(s, json!({"case_id": "scans"})).await);
    }
    for (id, (extractor, note)) in ids.iter().zip([
        ("ocr", "read by OCR (Tesseract, eng)"),
        ("pdf+ocr", "page(s) 1 have no text layer and were read by OCR (Tesseract, eng)"),
    ]) {
        let ev = app.wait_status(id, "indexed").await;
        assert_eq!((ev["extractor"].as_str(), ev["extract_note"].as_str()), (Some(extractor), Some(note)), "{ev}");
        assert!(ev["text_reason"].is_null(), "{ev}");
    }
    let hits = search(&app, "Olander reconciled").await;
    let found: Vec<&str> = hits.iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert!(ids.iter().all(|id| found.contains(&id.as_str())), "{hits:?}");
    for hit in &hits {
        assert_eq!(hit["matched_text"], true, "{hit}");
    }
    let in_pdf = hits.iter().find(|h| h["id"] == ids[1].as_str()).unwrap();
    assert_eq!(in_pdf["page"], 1, "{in_pdf}");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_document_is_found_by_what_it_says_of_itself(pool: PgPool) {
    // Its title ("Deposition summary") and author ("Hidden Author Name") are in its properties
    // only, not in its text (jobs/evidence/tests/fixtures/make-deposition.sh).
    let app = TestApp::start(pool, Options::default()).await;
    let docx = Sample {
        filename: "deposition.docx".into(),
        content_type: "application/vnd.openxmlformats-officedocument.wordprocessingml.document".into(),
        bytes: include_bytes!("../../../jobs/evidence/tests/fixtures/deposition.docx").to_vec(),
        find_with: "Zebulon".into(),
        has_text: true,
    };
    let id = app.upload(&docx, json!({"case_id": "properties"})).await;
    let ev = app.wait_status(&id, "indexed").await;
    assert_eq!(ev["properties"]["author"], "Hidden Author Name", "{ev}");
    for (q, found) in
        [("\"Hidden Author Name\"", true), ("summary Zebulon", true), ("Zebulon -hidden", false), ("Zebulon", true)]
    {
        let hits = search(&app, q).await;
        assert_eq!(hits.iter().any(|h| h["id"] == id.as_str()), found, "{q}: {hits:?}");
    }

    // A document without text is found by what it says of itself too.
    let core = "<?xml version=\"1.0\"?><cp:coreProperties \
                xmlns:cp=\"http://schemas.openxmlformats.org/package/2006/metadata/core-properties\" \
                xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><dc:title>Quarantined ledger Vexmoor</dc:title>\
                <dc:creator>Ilse Brandvold</dc:creator></cp:coreProperties>";
    let body = "<?xml version=\"1.0\"?><w:document \
                xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body/></w:document>";
    let empty = Sample {
        filename: "blank.docx".into(),
        bytes: samples::zip_of([("word/document.xml", body.as_bytes()), ("docProps/core.xml", core.as_bytes())]),
        ..docx
    };
    let id = app.upload(&empty, json!({"case_id": "properties"})).await;
    let ev = app.wait_status(&id, "indexed").await;
    assert_eq!(ev["properties"]["author"], "Ilse Brandvold", "{ev}");
    assert!(ev["text_bytes"].as_i64().unwrap() <= 1, "no text but a line break: {ev}");
    for q in ["Vexmoor", "\"Ilse Brandvold\" ledger"] {
        let hits = search(&app, q).await;
        assert_eq!(hits.iter().map(|h| h["id"].as_str()).collect::<Vec<_>>(), [Some(id.as_str())], "{q}: {hits:?}");
    }
    app.stop().await;
}

/// A one-page PDF with no text, 20 inches square, that draws 40,000 small marks: drawing it at
/// 300 dpi took pdftoppm 2.9 s and reading it Tesseract 9.2 s on one core (a letter-size page of
/// 12,000 marks was read whole within 3 s on a faster machine).
fn noise_pdf() -> Vec<u8> {
    let mut seed = 7u64;
    let mut next = |range: f64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as f64 / (1u64 << 31) as f64 * range
    };
    let marks: Vec<String> = (0..40_000)
        .map(|_| {
            format!(
                "{:.1} {:.1} {:.1} {:.1} re",
                20.0 + next(1400.0),
                20.0 + next(1400.0),
                1.0 + next(5.0),
                4.0 + next(5.0)
            )
        })
        .collect();
    let stream = format!("0 g\n{}\nf\n", marks.join("\n"));
    samples::pdf_of(&[
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 1440 1440] /Contents 4 0 R >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{stream}endstream", stream.len()),
    ])
}

/// Processes whose command line names `dir`.
fn processes_naming(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&dir) {
            found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn at_its_time_limit_the_extraction_ends_with_every_program_it_started(pool: PgPool) {
    // OCR of this page takes longer than the limit: the worker gives up at 3 s, and the
    // child's Tesseract (with a CPU limit of its own of 3 s) must end with the child, not
    // run on after it.
    let tmp = tempfile::tempdir().unwrap();
    let options = Options {
        extract_timeout: Some(std::time::Duration::from_secs(3)),
        tmp_dir: Some(tmp.path().to_owned()),
        ..Options::default()
    };
    let app = TestApp::start(pool, options).await;
    let scan = Sample {
        filename: "noisy-scan.pdf".into(),
        content_type: "application/pdf".into(),
        bytes: noise_pdf(),
        find_with: "noisy".into(),
        has_text: false,
    };
    let id = app.upload(&scan, json!({"case_id": "limits"})).await;
    let ev = app.wait_status(&id, "indexed").await;
    let left = processes_naming(tmp.path());
    assert!(left.is_empty(), "still running after the time-out: {left:?}");
    assert_eq!(ev["text_reason"], "timeout", "{ev}");
    assert!(ev["extract_note"].as_str().unwrap().contains("took longer than 3 s"), "{ev}");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn at_its_memory_limit_the_extraction_ends_and_says_the_file_is_too_large(pool: PgPool) {
    // 32 MB of HTML (which the child reads; plain text the worker reads itself) under a 16 MiB
    // address-space cap: the child cannot hold what it reads, the kernel refuses the
    // allocation, and the evidence is indexed by its metadata with the reason.
    let options = Options { extract_memory_bytes: Some(16 << 20), ..Options::default() };
    let app = TestApp::start(pool, options).await;
    let paragraph = "<p>ledger entry reconciled by the auditor on the closing day</p>\n";
    let html = format!("<html><body>{}</body></html>", paragraph.repeat((32 << 20) / paragraph.len()));
    let big = Sample {
        filename: "ledger-export.html".into(),
        content_type: "text/html".into(),
        bytes: html.into_bytes(),
        find_with: "ledger".into(),
        has_text: false,
    };
    let id = app.upload(&big, json!({"case_id": "limits"})).await;
    let ev = app.wait_status(&id, "indexed").await;
    assert_eq!(ev["text_reason"], "too_large", "{ev}");
    assert!(ev["extract_note"].as_str().unwrap().contains("ran out of its memory limit (16777216 bytes)"), "{ev}");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn the_listing_finds_evidence_by_why_its_text_is_missing(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let encrypted = Sample {
        filename: "sealed-settlement.pdf".into(),
        content_type: "application/pdf".into(),
        bytes: include_bytes!("../../../jobs/evidence/tests/fixtures/encrypted.pdf").to_vec(),
        find_with: "sealed settlement".into(),
        has_text: false,
    };
    let executable = Sample {
        filename: "dropper.bin".into(),
        content_type: "application/octet-stream".into(),
        bytes: [&b"\x7fELF\x02\x01\x01\0"[..], &[0; 120]].concat(),
        find_with: "dropper".into(),
        has_text: false,
    };
    let uploads =
        [(encrypted, Some("encrypted")), (executable, Some("unsupported_type")), (sample("interview-notes.txt"), None)];
    let mut ids = Vec::new();
    for (s, _) in &uploads {
        ids.push(app.upload(s, json!({"case_id": "reasons"})).await);
    }
    for ((s, reason), id) in uploads.iter().zip(&ids) {
        let ev = app.wait_status(id, "indexed").await;
        assert_eq!(ev["text_reason"].as_str(), *reason, "{}: {ev}", s.filename);
        if let Some(reason) = reason {
            let (status, page) = app.get(&format!("/v1/evidence?case_id=reasons&text_reason={reason}")).await;
            let found: Vec<&str> =
                page["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
            assert_eq!((status, found), (200, vec![id.as_str()]), "{reason}: {page}");
        }
    }
    let (status, err) = app.get("/v1/evidence?text_reason=lost").await;
    assert_eq!((status, err["code"].as_str()), (422, Some("invalid_request")), "{err}");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_bulk_reindex_extracts_again_what_an_older_extraction_read(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let (workbook, notes) = (sample("expense-ledger.xlsx"), sample("interview-notes.txt"));
    let old = app.upload(&workbook, json!({"case_id": "ledger"})).await;
    let current = app.upload(&notes, json!({"case_id": "ledger"})).await;
    app.wait_status(&old, "indexed").await;
    app.wait_status(&current, "indexed").await;
    // Make the workbook's content what version 1 made of it: no reader for spreadsheets.
    let sha = sha256_hex(&workbook.bytes);
    sqlx::query(
        "UPDATE content SET extractor = 'none', text_bytes = 0, text_reason = 'unsupported_type', extractor_version = 1,
                extract_note = 'no text extractor for application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'
         WHERE sha256 = $1",
    )
    .bind(&sha)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM content_chunk WHERE sha256 = $1").bind(&sha).execute(&pool).await.unwrap();
    assert!(search(&app, "kickback duplicate invoices").await.is_empty());

    let (status, err) = app.post("/v1/reindex", json!({})).await;
    assert_eq!((status, err["code"].as_str()), (422, Some("invalid_request")), "{err}");
    // In batches of one: the outdated workbook, then nothing more (the notes are current).
    let (status, batch) = app.post("/v1/reindex", json!({"outdated": true, "limit": 1})).await;
    assert_eq!(
        (status, batch["queued"].clone(), batch["extractor_version"].as_i64()),
        (200, json!([old]), Some(i64::from(evidence::extract::EXTRACTOR_VERSION)))
    );
    let cursor = batch["next_cursor"].as_str().expect("a full batch has a next cursor");
    let (_, rest) = app.post("/v1/reindex", json!({"outdated": true, "limit": 1, "cursor": cursor})).await;
    assert_eq!((rest["queued"].clone(), rest["next_cursor"].clone()), (json!([]), Value::Null), "{rest}");

    let ev = app.wait_status(&old, "indexed").await;
    assert_eq!(
        (ev["extractor"].as_str(), ev["extractor_version"].as_i64()),
        (Some("spreadsheet"), Some(i64::from(evidence::extract::EXTRACTOR_VERSION))),
        "{ev}"
    );
    assert!(ev["text_reason"].is_null() && ev["text_bytes"].as_i64() > Some(0), "{ev}");
    let hits = search(&app, "kickback duplicate invoices").await;
    assert!(hits.iter().any(|h| h["id"] == old.as_str() && h["matched_text"] == true), "{hits:?}");
    // What the last `indexed` entry of the evidence's custody log says (details are a JSON text).
    let last_indexed = |log: Value| -> Value {
        let entry = log["items"].as_array().unwrap().iter().rev().find(|e| e["event"] == "indexed").unwrap().clone();
        serde_json::from_str(entry["details"].as_str().unwrap()).unwrap()
    };
    let (_, log) = app.get(&format!("/v1/evidence/{old}/custody")).await;
    assert_eq!(last_indexed(log)["reextracted"], true);

    // By case: both queued again; bytes the current version read are not read again.
    // Where each chunk row lies: a rewrite moves every one.
    let chunks = || {
        sqlx::query_scalar::<_, String>(
            "SELECT string_agg(ctid::text, ',' ORDER BY seq) FROM content_chunk WHERE sha256 = $1",
        )
    };
    let before = chunks().bind(&sha).fetch_one(&pool).await.unwrap();
    let (_, batch) = app.post("/v1/reindex", json!({"case_id": "ledger"})).await;
    assert_eq!(batch["queued"].as_array().unwrap().len(), 2, "{batch}");
    for id in [&old, &current] {
        app.wait_status(id, "indexed").await;
    }
    let (_, log) = app.get(&format!("/v1/evidence/{old}/custody")).await;
    assert_eq!(last_indexed(log)["reextracted"], false);
    assert_eq!(chunks().bind(&sha).fetch_one(&pool).await.unwrap(), before);
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_read_again_that_fails_keeps_the_older_text(pool: PgPool) {
    let first = TestApp::start(pool.clone(), Options::default()).await;
    let workbook = sample("expense-ledger.xlsx");
    let id = first.upload(&workbook, json!({})).await;
    first.wait_status(&id, "indexed").await;
    let bucket = first.bucket.clone();
    first.stop().await;
    sqlx::query("UPDATE content SET extractor_version = 1").execute(&pool).await.unwrap();
    // A worker whose extractor fails on every file (exit 1: a crash, as far as it can tell).
    let options = Options { extract_bin: Some("/bin/false".into()), bucket: Some(bucket), ..Options::default() };
    let app = TestApp::start(pool.clone(), options).await;
    let (status, batch) = app.post("/v1/reindex", json!({"outdated": true})).await;
    assert_eq!((status, batch["queued"].clone()), (200, json!([id])), "{batch}");
    let ev = app.wait_status(&id, "indexed").await;
    assert_eq!((ev["extractor"].as_str(), ev["extractor_version"].as_i64()), (Some("spreadsheet"), Some(1)), "{ev}");
    let hits = search(&app, "kickback duplicate invoices").await;
    assert!(hits.iter().any(|h| h["id"] == id.as_str() && h["matched_text"] == true), "{hits:?}");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn listing_filters_and_pages_with_a_cursor(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let s = sample("interview-notes.txt");
    for i in 0..5 {
        app.create(&s, json!({"case_id": if i < 3 { "case-a" } else { "case-b" }, "tags": [format!("t{i}")]})).await;
    }
    let (_, page1) = app.get("/v1/evidence?case_id=case-a&limit=2").await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = app.get(&format!("/v1/evidence?case_id=case-a&limit=2&cursor={cursor}")).await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert!(page2["next_cursor"].is_null());
    let ids: std::collections::HashSet<_> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["items"].as_array().unwrap())
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids.len(), 3);
    let (_, tagged) = app.get("/v1/evidence?tag=t4").await;
    assert_eq!(tagged["items"].as_array().unwrap().len(), 1);
    let (_, awaiting) = app.get("/v1/evidence?status=awaiting_upload").await;
    assert_eq!(awaiting["items"].as_array().unwrap().len(), 5);
    let (status, err) =
        app.post(&format!("/v1/evidence/{}/reindex", tagged["items"][0]["id"].as_str().unwrap()), json!({})).await;
    assert_eq!((status, err["code"].as_str()), (409, Some("wrong_status")));
    app.stop().await;
}

#[test]
fn openapi_spec_matches_the_committed_snapshot() {
    let spec = api::spec_json();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &spec).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == spec,
        "the API changed: review it and run `UPDATE_SNAPSHOTS=1 scripts/test -p api` to update api/openapi.json"
    );
    for status in ["\"201\"", "\"202\"", "\"400\"", "\"404\"", "\"409\"", "\"422\"", "\"503\""] {
        assert!(spec.contains(status), "{status} missing from the spec");
    }
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn reindex_requeues_indexed_evidence_once(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let id = app.upload(&sample("chain-of-custody.json"), json!({})).await;
    app.wait_status(&id, "indexed").await;

    // A job for this evidence made by hand and still waiting: reindex must not add a second one.
    sqlx::query("INSERT INTO job (kind, payload, unique_key, run_at) VALUES ('ingest_evidence', '{}', $1, now() + interval '1 hour')")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    let (status, err) = app.post(&format!("/v1/evidence/{id}/reindex"), json!({})).await;
    assert_eq!((status, err["code"].as_str()), (409, Some("job_active")), "{err}");
    assert_eq!(app.get(&format!("/v1/evidence/{id}")).await.1["status"], "indexed", "the refusal rolled back");

    sqlx::query("DELETE FROM job WHERE run_at > now()").execute(&pool).await.unwrap();
    let (status, body) = app.post(&format!("/v1/evidence/{id}/reindex"), json!({})).await;
    assert_eq!(
        (status, body["status"].as_str().map(|s| s == "queued" || s == "indexing")),
        (202, Some(true)),
        "{body}"
    );
    let ev = app.wait_status(&id, "indexed").await;
    assert_eq!(ev["duplicate"], false, "reindexing the same bytes does not make it a duplicate of itself");
    assert_eq!(count(&pool, "SELECT count(*) FROM job WHERE state = 'completed'").await, 2);
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_job_made_by_hand_with_only_the_evidence_id_is_ingested(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let s = sample("incident-timeline.md");
    let created = app.create(&s, json!({})).await;
    assert_eq!(app.put(&created, &s.bytes).await, 200);
    let id = created["evidence"]["id"].as_str().unwrap().to_owned();
    // What runbooks/jobs-by-hand.md does in psql, without the API.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("UPDATE evidence SET status = 'queued', queued_at = now() WHERE id = $1::uuid")
        .bind(&id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let job: i64 = sqlx::query_scalar(
        "INSERT INTO job (kind, payload, unique_key, max_attempts)
         VALUES ('ingest_evidence', jsonb_build_object('evidence_id', $1::text, 'tenant', $2::text), $1, 8)
         RETURNING id",
    )
    .bind(&id)
    .bind(TENANT)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    sqlx::query("UPDATE evidence SET job_id = $2 WHERE id = $1::uuid")
        .bind(&id)
        .bind(job)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("SELECT pg_notify('job_available', 'default')").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let ev = app.wait_status(&id, "indexed").await;
    assert_eq!(ev["sha256"], sha256_hex(&s.bytes));
    app.stop().await;
}

/// The runbook's cancel and retry, pasted into psql as an operator would, move the evidence with
/// the job (the trigger of `…0002_evidence_follows_its_job`).
#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn cancelling_and_retrying_an_ingest_job_by_hand_moves_its_evidence(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options { proxy: true, max_attempts: 50, ..Options::default() }).await;
    let proxy = app.proxy.as_ref().unwrap();
    proxy.set_up(false);
    let id = app.upload(&sample("incident-timeline.md"), json!({})).await;
    poll_for(WAIT, "a failed attempt", || async {
        let errors: i32 =
            sqlx::query_scalar("SELECT jsonb_array_length(errors) FROM job").fetch_one(&pool).await.unwrap();
        (errors >= 1).then_some(())
    })
    .await;
    let job: i64 = sqlx::query_scalar("SELECT id FROM job").fetch_one(&pool).await.unwrap();

    // runbooks/jobs-by-hand.md, "Cancel a waiting or running job".
    let cancelled = sqlx::query(
        "UPDATE job SET state = 'cancelled', finished_at = now(), lease_token = NULL, locked_until = NULL
         WHERE id = $1 AND state IN ('available', 'running')",
    )
    .bind(job)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(cancelled.rows_affected(), 1);
    let ev = app.get(&format!("/v1/evidence/{id}")).await.1;
    assert_eq!(ev["status"], "index_error", "{ev}");
    let reason = ev["last_error"].as_str().unwrap();
    assert!(reason.contains(&format!("the ingest job ({job}) was cancelled by an operator")), "{reason}");

    // "Retry a discarded or cancelled job now": the evidence is queued again and gets indexed.
    proxy.set_up(true);
    let retried = sqlx::query(
        "UPDATE job SET state = 'available', run_at = now(), attempt = 0, finished_at = NULL
         WHERE id = $1 AND state IN ('discarded', 'cancelled')",
    )
    .bind(job)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(retried.rows_affected(), 1);
    let ev = app.wait_status(&id, "indexed").await;
    assert_eq!(ev["last_error"], Value::Null, "{ev}");
    // A worker's own retry (a failed attempt back to available) does not touch the evidence: the
    // trigger fires on operators' transitions only.
    assert_eq!(count(&pool, "SELECT count(*) FROM evidence WHERE status = 'indexed'").await, 1);
    app.stop().await;
}

/// Requests racing to queue the same evidence: one wins, the others answer with the state it left,
/// and there is one job.
#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn concurrent_completes_and_reindexes_of_one_evidence_queue_it_once(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let s = sample("interview-notes.txt");
    let created = app.create(&s, json!({})).await;
    assert_eq!(app.put(&created, &s.bytes).await, 200);
    let id = created["evidence"]["id"].as_str().unwrap().to_owned();
    let completes = (0..8).map(|_| app.post_owned(format!("/v1/evidence/{id}/complete")));
    let mut statuses: Vec<u16> = futures_util::future::join_all(completes).await.into_iter().map(|(s, _)| s).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 202], "one complete queues it");
    app.wait_status(&id, "indexed").await;

    // The worker may index it again before the last of these arrives, so more than one may be
    // accepted; each accepted one made exactly one job, and every other was refused as queued.
    let reindexes = (0..8).map(|_| app.post_owned(format!("/v1/evidence/{id}/reindex")));
    let answers = futures_util::future::join_all(reindexes).await;
    let accepted = answers.iter().filter(|(s, _)| *s == 202).count() as i64;
    let refused = answers.iter().filter(|(s, b)| *s == 409 && b["code"] == "wrong_status").count() as i64;
    assert!(accepted >= 1 && accepted + refused == 8, "{answers:?}");
    app.wait_status(&id, "indexed").await;
    assert_eq!(count(&pool, "SELECT count(*) FROM job").await, 1 + accepted, "one job per queueing");
    app.stop().await;
}

/// A complete-multipart whose join went through but whose answer was lost (the store joined
/// the parts, the client saw a timeout) is repeated: the upload id is gone by then, the object
/// is there with the declared size, and the repeat queues the evidence once.
#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_repeated_complete_multipart_after_a_lost_answer_queues_the_evidence_once(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options { upload_part_bytes: 5 << 20, ..Options::default() }).await;
    let bytes: Vec<u8> = (0..(6u32 << 20) + 5).map(|i| (i % 251) as u8).collect();
    let body = json!({"filename": "disk.img", "content_type": "application/octet-stream",
        "size_bytes": bytes.len(), "sha256": sha256_hex(&bytes)});
    let (status, created) = app.post("/v1/evidence", body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["evidence"]["id"].as_str().unwrap().to_owned();
    let mut parts = Vec::new();
    for (part, chunk) in created["multipart_upload"]["parts"].as_array().unwrap().iter().zip(bytes.chunks(5 << 20)) {
        let put = app.plain.put(part["url"].as_str().unwrap()).body(chunk.to_vec()).send().await.unwrap();
        assert!(put.status().is_success(), "part {part} answered {}", put.status());
        let etag = put.headers()["etag"].to_str().unwrap().to_owned();
        parts.push((part["part_number"].as_u64().unwrap() as u32, etag));
    }
    // The first join, as the API makes it; its answer never reaches the client.
    let (key, upload_id): (String, String) =
        sqlx::query_as("SELECT object_key, upload_id FROM evidence WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    app.storage.complete_multipart(&key, &upload_id, &parts).await.unwrap();

    let listed: Vec<Value> = parts.iter().map(|(n, etag)| json!({"part_number": n, "etag": etag})).collect();
    let (path, body) = (format!("/v1/evidence/{id}/complete-multipart"), json!({"parts": listed}));
    let (status, queued) = app.post(&path, body.clone()).await;
    assert_eq!((status, queued["status"].as_str()), (202, Some("queued")), "{queued}");
    app.wait_status(&id, "indexed").await;
    let (status, again) = app.post(&path, body).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("indexed")), "{again}");
    assert_eq!(count(&pool, "SELECT count(*) FROM job").await, 1, "one job");
    app.stop().await;
}

/// Abandoned uploads expire: once its window has closed (moved into the past here, as if a day
/// went by) the evidence becomes `expired`, what was uploaded is deleted, custody says so, and
/// neither complete nor a repeated create brings it back; an upload completed in time stays.
#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn an_abandoned_upload_expires_and_what_was_uploaded_is_deleted(pool: PgPool) {
    let window = std::time::Duration::from_secs(120);
    let options = Options { upload_expiry: Some(window), upload_part_bytes: 5 << 20, ..Options::default() };
    let app = TestApp::start(pool.clone(), options).await;
    let sample = samples::named("expiry", "interview-notes.txt");
    let body =
        json!({"filename": sample.filename, "content_type": sample.content_type, "size_bytes": sample.bytes.len()});
    let create =
        || app.http.post(format!("{}/v1/evidence", app.base)).header("Idempotency-Key", "abandoned").json(&body);
    let (status, abandoned) = app.send(create()).await;
    assert_eq!(status, 201, "{abandoned}");
    // No URL outlives the window.
    let parse = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    let (url_until, window_until) =
        (parse(&abandoned["upload"]["expires_at"]), parse(&abandoned["evidence"]["upload_expires_at"]));
    assert!(url_until <= window_until, "the URL is valid until {url_until}, the window closes at {window_until}");
    // The bytes are uploaded, and never completed.
    assert_eq!(app.put(&abandoned, &sample.bytes).await, 200);
    let id = abandoned["evidence"]["id"].as_str().unwrap().to_owned();
    let key: String = sqlx::query_scalar("SELECT object_key FROM evidence WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(app.storage.head(&key).await.unwrap().is_some());
    let in_time = app.upload(&samples::named("expiry", "board-minutes.docx"), json!({})).await;
    app.wait_status(&in_time, "indexed").await;
    // An upload in parts of which one part came.
    let image = json!({"filename": "disk.img", "content_type": "application/octet-stream", "size_bytes": 6 << 20});
    let (status, in_parts) = app.post("/v1/evidence", image).await;
    assert_eq!(status, 201, "{in_parts}");
    let part = |n: usize, len: usize| {
        let part = &in_parts["multipart_upload"]["parts"][n];
        app.plain.put(part["url"].as_str().unwrap()).body(vec![7u8; len])
    };
    assert!(part(0, 5 << 20).send().await.unwrap().status().is_success());
    let in_parts = in_parts["evidence"]["id"].as_str().unwrap().to_owned();

    sqlx::query("UPDATE evidence SET upload_expires_at = now() - interval '5 minutes'").execute(&pool).await.unwrap();
    evidence::expiry::schedule_expiry(&pool, &Default::default()).await.unwrap();
    let expired = app.wait_status(&id, "expired").await;
    assert!(expired["last_error"].as_str().unwrap().contains("upload window"), "{expired}");
    poll_for(WAIT, "the expired upload's object to be deleted", || async {
        app.storage.head(&key).await.ok()?.is_none().then_some(())
    })
    .await;
    let (_, kept) = app.get(&format!("/v1/evidence/{in_time}")).await;
    assert_eq!(kept["status"], "indexed", "{kept}");
    // Its multipart upload is aborted: the part it still lacked can no longer be sent.
    app.wait_status(&in_parts, "expired").await;
    poll_for(WAIT, "the expired multipart upload to be aborted", || async {
        let aborted = "SELECT upload_purged_at IS NOT NULL FROM evidence WHERE id = $1::uuid";
        sqlx::query_scalar::<_, bool>(aborted).bind(&in_parts).fetch_one(&pool).await.unwrap().then_some(())
    })
    .await;
    // Refused with a 4xx, or by the store closing the connection before it read the whole body
    // (it may answer before the body is sent: then the client sees a broken pipe).
    match part(1, 1 << 20).send().await {
        Ok(late) => assert!(late.status().is_client_error(), "a part PUT after the abort answered {}", late.status()),
        Err(e) => assert!(e.is_request(), "a part PUT after the abort failed otherwise: {e}"),
    }

    let (status, body) = app.post(&format!("/v1/evidence/{id}/complete"), json!({})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("upload_expired")), "{body}");
    let (status, body) = app.send(create()).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("upload_expired")), "{body}");
    let (_, custody) = app.get(&format!("/v1/evidence/{id}/custody")).await;
    let entry = custody["items"].as_array().unwrap().iter().find(|e| e["event"] == "expired");
    let by = entry.map(|e| (e["actor_kind"].as_str(), e["actor_name"].as_str()));
    assert_eq!(by, Some((Some("worker"), Some("upload expiry sweep"))), "{custody}");
    let (_, listed) = app.get("/v1/evidence?status=expired").await;
    let listed: Vec<&str> = listed["items"].as_array().unwrap().iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&id.as_str()) && listed.contains(&in_parts.as_str()), "{listed:?}");
    let purged: bool = sqlx::query_scalar("SELECT upload_purged_at IS NOT NULL FROM evidence WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(purged, "the delete is recorded, so no later sweep repeats it");
    app.stop().await;
}

/// The members of `parent` (`GET /v1/evidence?parent_id=`), once there are `n` of them, each
/// indexed, by member path.
async fn members_of(app: &TestApp, parent: &str, n: usize) -> Vec<Value> {
    let mut members = poll_for(WAIT, &format!("{n} indexed members of {parent}"), || async {
        let (status, page) = app.get(&format!("/v1/evidence?parent_id={parent}")).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap().clone();
        (items.len() == n && items.iter().all(|e| e["status"] == "indexed")).then_some(items)
    })
    .await;
    members.sort_by_key(|m| m["member_path"].as_str().unwrap().to_owned());
    members
}

fn zip_sample(filename: &str, bytes: Vec<u8>) -> Sample {
    Sample {
        filename: filename.into(),
        content_type: "application/zip".into(),
        bytes,
        find_with: String::new(),
        has_text: true,
    }
}

/// The details of the last custody entry of `event` of evidence `id`.
async fn last_custody_details(app: &TestApp, id: &str, event: &str) -> Value {
    let (_, log) = app.get(&format!("/v1/evidence/{id}/custody")).await;
    let entry = log["items"].as_array().unwrap().iter().rev().find(|e| e["event"] == event).cloned();
    serde_json::from_str(entry.unwrap_or_else(|| panic!("no {event} entry: {log}"))["details"].as_str().unwrap())
        .unwrap()
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn archives_and_emails_become_families_of_evidence(pool: PgPool) {
    let family = evidence::config::FamilySettings { max_depth: 2, max_members: 8, max_bytes: 1 << 20 };
    let app = TestApp::start(pool.clone(), Options { family, ..Options::default() }).await;
    let innermost = samples::zip_of([("core.txt", &b"the lowest level"[..])]);
    let inner = samples::zip_of([("deep/readme.txt", &b"Zebulon kept the ledger."[..]), ("innermost.zip", &innermost)]);
    let affidavit = samples::pdf("Affidavit of Marguerite Olander");
    let thread = samples::eml(
        "Dana <dana@example.org>",
        "exhibit",
        "Signed copy attached.",
        &[("exhibit-14.pdf", "application/pdf", affidavit.clone())],
    );
    let bundle = zip_sample(
        "bundle.zip",
        samples::zip_of([
            ("exhibits/", &b""[..]),
            ("exhibits/ledger.csv", b"vendor,amount\nQuorvant Holdings,1200\n"),
            ("inner.zip", &inner),
            ("thread.eml", &thread),
            // The same bytes twice: two members, one content.
            ("notes.txt", b"vendor,amount\nQuorvant Holdings,1200\n"),
        ]),
    );
    let id = app.upload(&bundle, json!({"case_id": "case-fam", "tags": ["seized"]})).await;
    let parent = app.wait_status(&id, "indexed").await;
    assert_eq!((parent["extractor"].as_str(), parent["depth"].as_i64()), (Some("zip"), Some(0)), "{parent}");
    assert!(parent["family_note"].is_null(), "{parent}");

    // Its files are evidence of their own, in its case, with its tags, found where they were.
    let members = members_of(&app, &id, 4).await;
    let paths: Vec<&str> = members.iter().map(|m| m["member_path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["exhibits/ledger.csv", "inner.zip", "notes.txt", "thread.eml"]);
    for m in &members {
        assert_eq!((m["parent_id"].as_str(), m["depth"].as_i64()), (Some(id.as_str()), Some(1)), "{m}");
        assert_eq!((m["case_id"].as_str(), &m["tags"]), (Some("case-fam"), &json!(["seized"])), "{m}");
    }
    assert_eq!(members[0]["filename"], "ledger.csv");
    assert_eq!(members[0]["sha256"], members[2]["sha256"]);
    let mut duplicates = [&members[0]["duplicate"], &members[2]["duplicate"]];
    duplicates.sort_by_key(|d| d.as_bool());
    assert_eq!(duplicates, [&json!(false), &json!(true)], "one of the two is the duplicate");
    assert_eq!(members[1]["sha256"], sha256_hex(&inner), "a member's bytes are what the archive holds");

    // A container inside opens in turn, down to INGEST_FAMILY_MAX_DEPTH.
    let inner_members = members_of(&app, members[1]["id"].as_str().unwrap(), 2).await;
    assert_eq!(inner_members[0]["member_path"], "deep/readme.txt");
    assert_eq!(inner_members[0]["depth"], 2);
    let innermost_zip = &inner_members[1];
    assert!(
        innermost_zip["family_note"].as_str().unwrap().contains("INGEST_FAMILY_MAX_DEPTH=2"),
        "a container as deep as the limit lists its members but does not open them: {innermost_zip}"
    );
    assert!(members_of(&app, innermost_zip["id"].as_str().unwrap(), 0).await.is_empty());

    // An e-mail inside: its attachment is its member, and found by its own words.
    let attachments = members_of(&app, members[3]["id"].as_str().unwrap(), 1).await;
    let pdf = &attachments[0];
    assert_eq!(
        (pdf["filename"].as_str(), pdf["content_type"].as_str()),
        (Some("exhibit-14.pdf"), Some("application/pdf"))
    );
    let hits = search(&app, "Olander").await;
    assert_eq!(hits.iter().map(|h| h["id"].clone()).collect::<Vec<_>>(), [pdf["id"].clone()], "{hits:?}");
    assert_eq!((&hits[0]["parent_id"], &hits[0]["member_path"]), (&members[3]["id"], &json!("exhibit-14.pdf")));
    let hits = search(&app, "Zebulon").await;
    assert_eq!(hits.iter().map(|h| h["id"].clone()).collect::<Vec<_>>(), [inner_members[0]["id"].clone()]);

    // Downloaded like any evidence: the bytes as they were inside.
    let (status, download) = app.get(&format!("/v1/evidence/{}/download", pdf["id"].as_str().unwrap())).await;
    assert_eq!(status, 200, "{download}");
    let got = reqwest::get(download["url"].as_str().unwrap()).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), affidavit.as_slice());

    // Its custody starts where it was found.
    let (_, log) = app.get(&format!("/v1/evidence/{}/custody", pdf["id"].as_str().unwrap())).await;
    let first = &log["items"][0];
    assert_eq!((first["event"].as_str(), first["actor_kind"].as_str()), (Some("created"), Some("worker")), "{log}");
    let details: Value = serde_json::from_str(first["details"].as_str().unwrap()).unwrap();
    assert_eq!((&details["parent_id"], &details["member_path"]), (&members[3]["id"], &json!("exhibit-14.pdf")));
    assert_eq!(details["sha256"], sha256_hex(&affidavit));

    // The container read again makes no second child.
    let before = count(&pool, "SELECT count(*) FROM evidence").await;
    assert_eq!(before, 8, "the archive, its 4 members, the inner archive's 2 and the e-mail's attachment");
    let (status, body) = app.post(&format!("/v1/evidence/{id}/reindex"), json!({})).await;
    assert_eq!(status, 202, "{body}");
    app.wait_status(&id, "indexed").await;
    assert_eq!(count(&pool, "SELECT count(*) FROM evidence").await, before);
    assert_eq!(count(&pool, "SELECT count(*) FROM evidence WHERE status <> 'indexed'").await, 0);
    let reread = last_custody_details(&app, &id, "indexed").await;
    assert_eq!((&reread["members"], &reread["children_made"]), (&json!(4), &json!(0)), "it was read again: {reread}");
    // Each child points at its own ingest job.
    let paired = "SELECT count(*) FROM evidence e JOIN job j ON j.id = e.job_id
                  WHERE e.parent_id IS NOT NULL AND j.payload ->> 'evidence_id' = e.id::text";
    assert_eq!(count(&pool, paired).await, 7);

    // The same archive handed over again is a family of its own: its bytes are known, and still
    // it is opened, and so is the known archive inside it.
    let again = app.upload(&Sample { filename: "bundle-copy.zip".into(), ..bundle }, json!({})).await;
    let copies = members_of(&app, &again, 4).await;
    assert!(copies.iter().all(|m| m["duplicate"] == true), "{copies:?}");
    members_of(&app, copies[1]["id"].as_str().unwrap(), 2).await;

    // A family holds INGEST_FAMILY_MAX_MEMBERS members over all its levels: 2 here, then 6 of
    // the 9 inside the archive below.
    let nine: Vec<(String, Vec<u8>)> =
        (1..=9).map(|n| (format!("f{n}.txt"), format!("page {n}").into_bytes())).collect();
    let crowded = samples::zip_of(nine.iter().map(|(name, bytes)| (name.as_str(), bytes.as_slice())));
    let top = zip_sample("top.zip", samples::zip_of([("crowded.zip", &crowded[..]), ("x.txt", b"x")]));
    let top = app.upload(&top, json!({})).await;
    let level1 = members_of(&app, &top, 2).await;
    assert_eq!(level1[0]["member_path"], "crowded.zip");
    let level2 = members_of(&app, level1[0]["id"].as_str().unwrap(), 6).await;
    assert_eq!(level2.len(), 6);
    let crowded = app.wait_status(level1[0]["id"].as_str().unwrap(), "indexed").await;
    assert_eq!(
        crowded["family_note"],
        "3 member(s) not made evidence: f7.txt (past the family's limit of members (INGEST_FAMILY_MAX_MEMBERS)); \
         f8.txt (past the family's limit of members (INGEST_FAMILY_MAX_MEMBERS)); \
         f9.txt (past the family's limit of members (INGEST_FAMILY_MAX_MEMBERS))"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn raising_a_family_limit_and_reindexing_adds_only_the_members_missing(pool: PgPool) {
    let small = evidence::config::FamilySettings { max_members: 2, ..Default::default() };
    let app = TestApp::start(pool.clone(), Options { family: small, ..Options::default() }).await;
    let files: Vec<(String, Vec<u8>)> =
        (1..=4).map(|n| (format!("p{n}.txt"), format!("page {n}").into_bytes())).collect();
    let archive = samples::zip_of(files.iter().map(|(name, bytes)| (name.as_str(), bytes.as_slice())));
    let id = app.upload(&zip_sample("pages.zip", archive), json!({})).await;
    let first = members_of(&app, &id, 2).await;
    let note = app.wait_status(&id, "indexed").await["family_note"].clone();
    assert!(note.as_str().is_some_and(|n| n.starts_with("2 member(s) not made evidence: p3.txt")), "{note}");
    let bucket = app.bucket.clone();
    app.stop().await;

    let large = evidence::config::FamilySettings { max_members: 10, ..Default::default() };
    let app = TestApp::start(pool.clone(), Options { family: large, bucket: Some(bucket), ..Options::default() }).await;
    let (status, body) = app.post(&format!("/v1/evidence/{id}/reindex"), json!({})).await;
    assert_eq!(status, 202, "{body}");
    let all = members_of(&app, &id, 4).await;
    assert_eq!(&all[..2], &first[..], "the members made before are the same evidence, untouched");
    let parent = app.wait_status(&id, "indexed").await;
    assert!(parent["family_note"].is_null(), "{parent}");
    assert_eq!(count(&pool, "SELECT count(*) FROM evidence").await, 5);
    app.stop().await;
}

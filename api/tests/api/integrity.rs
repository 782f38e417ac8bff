//! Integrity: verified bytes stored where no client can write, the verified hash never
//! rewritten, and the three hashes of one pass.

use evidence::samples::{self, Sample};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::sync::Arc;

use evidence::storage::Storage;
use evidence::{UploadDeleter, UploadsDeleted};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::support::{Options, TENANT, TestApp, WAIT, hex, poll_for, s3_settings};

fn sample(name: &str) -> Sample {
    samples::named("1ntegr1ty", name)
}

async fn search(app: &TestApp, q: &str) -> Vec<Value> {
    let (status, body) = app.send(app.http.get(format!("{}/v1/search", app.base)).query(&[("q", q)])).await;
    assert_eq!(status, 200, "{body}");
    body["hits"].as_array().unwrap().clone()
}

async fn download(app: &TestApp, id: &str) -> Vec<u8> {
    let (status, link) = app.get(&format!("/v1/evidence/{id}/download")).await;
    assert_eq!(status, 200, "{link}");
    let got = reqwest::get(link["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(got.status(), 200);
    got.bytes().await.unwrap().to_vec()
}

async fn upload_key(app: &TestApp, id: &str) -> String {
    sqlx::query_scalar("SELECT object_key FROM evidence WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Wait until the worker has deleted the upload at `key` (after its commit, in a batch).
async fn upload_deleted(app: &TestApp, key: &str) {
    poll_for(WAIT, &format!("the upload {key} to be deleted"), || async {
        app.storage.head(key).await.ok()?.is_none().then_some(())
    })
    .await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn bytes_put_again_through_the_old_url_change_nothing_served_or_searched(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let s = sample("interview-notes.txt");
    let created = app.create(&s, json!({})).await;
    let id = created["evidence"]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.put(&created, &s.bytes).await, 200);
    app.post(&format!("/v1/evidence/{id}/complete"), json!({})).await;
    let indexed = app.wait_status(&id, "indexed").await;
    let sha256 = indexed["sha256"].as_str().unwrap().to_owned();

    // The verified bytes are at the tenant's content key; the upload is deleted soon after.
    let content_key = format!("{TENANT}/content/{sha256}");
    assert_eq!(app.storage.head(&content_key).await.unwrap(), Some(s.bytes.len() as u64));
    let upload = upload_key(&app, &id).await;
    upload_deleted(&app, &upload).await;

    // The upload URL still works for its 15 minutes: other bytes of the same size go in...
    let mut other = b"replacement forgery ".to_vec();
    other.resize(s.bytes.len(), b'x');
    assert_eq!(app.put(&created, &other).await, 200);
    assert_eq!(app.storage.head(&upload).await.unwrap(), Some(other.len() as u64));
    // ...and change nothing that is served, searched or recorded.
    assert_eq!(download(&app, &id).await, s.bytes);
    assert!(search(&app, "forgery").await.is_empty(), "the replacement is not indexed");
    assert_eq!(search(&app, "courier").await.len(), 1);
    let (status, again) = app.post(&format!("/v1/evidence/{id}/complete"), json!({})).await;
    assert_eq!((status, &again["status"]), (200, &json!("indexed")), "complete again is a no-op: {again}");
    let (status, _) = app.post(&format!("/v1/evidence/{id}/reindex"), json!({})).await;
    assert_eq!(status, 202);
    let reindexed = app.wait_status(&id, "indexed").await;
    assert_eq!(reindexed["sha256"], sha256, "a reindex reads the stored bytes, not the upload");
    assert_eq!(download(&app, &id).await, s.bytes);
    assert!(search(&app, "forgery").await.is_empty());

    // The same bytes as new evidence are stored once: the second upload is deleted too.
    let second = app.upload(&s, json!({"filename": "copy.txt"})).await;
    let copy = app.wait_status(&second, "indexed").await;
    assert_eq!((copy["sha256"].as_str(), &copy["duplicate"]), (Some(sha256.as_str()), &json!(true)));
    upload_deleted(&app, &upload_key(&app, &second).await).await;
    assert_eq!(download(&app, &second).await, s.bytes);
    app.stop().await;
}

/// Uploads are deleted many to a request: the keys handed over while the deleter was busy go in
/// one request, a key already gone is not refused, and a burst of uploads leaves none behind.
#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn uploads_are_deleted_in_batches_and_a_key_already_gone_is_no_error(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let keys: Vec<String> = (0..3).map(|i| format!("{TENANT}/uploads/batch-{i}")).collect();
    for key in &keys[1..] {
        app.storage.put(key, b"bytes", "text/plain").await.unwrap();
    }
    // The test's runtime has one thread: the deleter's task first runs at the `await` below,
    // with all three keys waiting for it.
    let (deleter, deleting) = UploadDeleter::start(app.storage.clone(), CancellationToken::new());
    for key in &keys {
        deleter.delete(key.clone());
    }
    drop(deleter);
    let done = tokio::time::timeout(WAIT, deleting).await.expect("the deleter ends").unwrap();
    assert_eq!(done, UploadsDeleted { keys: 3, requests: 1, left: 0 }, "one request, nothing refused");
    for key in &keys {
        assert_eq!(app.storage.head(key).await.unwrap(), None, "{key} is deleted");
    }

    let s = sample("interview-notes.txt");
    let uploads = (0..12).map(|i| app.upload(&s, json!({"filename": format!("copy-{i}.txt")})));
    let ids = futures_util::future::join_all(uploads).await;
    for id in &ids {
        app.wait_status(id, "indexed").await;
        upload_deleted(&app, &upload_key(&app, id).await).await;
    }
    app.stop().await;
}

/// An upload handed over while the store is unreachable is kept in hand and deleted once the
/// store answers again; the deleter's task ends when its last handle is dropped.
#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn an_upload_handed_over_during_a_store_outage_is_deleted_once_it_answers(pool: PgPool) {
    let app = TestApp::start(pool, Options { proxy: true, ..Options::default() }).await;
    let proxy = app.proxy.as_ref().unwrap();
    let key = format!("{TENANT}/uploads/outage");
    app.storage.put(&key, b"bytes", "text/plain").await.unwrap();
    // Its own store client: a connection the app's worker opened would still go through.
    let through_proxy = Storage::new(&s3_settings(&app.bucket, Some(format!("http://{}", proxy.addr)))).unwrap();
    proxy.set_up(false);
    let (deleter, deleting) = UploadDeleter::start(Arc::new(through_proxy), CancellationToken::new());
    deleter.delete(key.clone());
    poll_for(WAIT, "the deleter to find the store unreachable", || async { (proxy.refused() > 0).then_some(()) }).await;
    assert_eq!(app.storage.head(&key).await.unwrap(), Some(5), "not deleted while the store is down");
    proxy.set_up(true);
    upload_deleted(&app, &key).await;
    drop(deleter);
    tokio::time::timeout(WAIT, deleting).await.expect("the deleter ends with its last handle").unwrap();
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_reindex_of_bytes_altered_behind_the_service_fails_and_keeps_the_hash(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let s = sample("interview-notes.txt");
    let id = app.upload(&s, json!({})).await;
    let sha256 = app.wait_status(&id, "indexed").await["sha256"].as_str().unwrap().to_owned();

    // Someone with access to the bucket replaces the stored bytes (same size).
    let mut altered = s.bytes.clone();
    altered[0] ^= 0x20;
    app.storage.put(&format!("{TENANT}/content/{sha256}"), &altered, "text/plain").await.unwrap();
    let (status, _) = app.post(&format!("/v1/evidence/{id}/reindex"), json!({})).await;
    assert_eq!(status, 202);
    let failed = app.wait_status(&id, "index_error").await;
    let reason = failed["last_error"].as_str().unwrap();
    assert!(reason.starts_with(&format!("stored bytes differ from the verified sha256 {sha256}")), "{reason}");
    assert!(reason.contains(&hex(&Sha256::digest(&altered))), "the reason names what was found: {reason}");
    assert_eq!(failed["sha256"], sha256, "the verified hash is kept");
    assert_eq!(failed["attempts"], 1, "a mismatch is permanent: no retries");

    // Nobody rewrites it by hand either, not even the owner.
    let rewrite = sqlx::query("UPDATE evidence SET sha256 = repeat('0', 64) WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert!(rewrite.to_string().contains("cannot be changed"), "{rewrite}");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn sha1_and_md5_are_kept_shown_and_found_within_the_tenant(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let s = sample("board-minutes.docx");
    let id = app.upload(&s, json!({})).await;
    let e = app.wait_status(&id, "indexed").await;
    let (sha1, md5) = (hex(&Sha1::digest(&s.bytes)), hex(&md5::Md5::digest(&s.bytes)));
    assert_eq!((e["sha1"].as_str(), e["md5"].as_str()), (Some(sha1.as_str()), Some(md5.as_str())), "{e}");

    for (param, value) in [("sha1", &sha1), ("md5", &md5), ("sha256", &e["sha256"].as_str().unwrap().to_owned())] {
        let (status, page) = app.get(&format!("/v1/evidence?{param}={value}")).await;
        assert_eq!(status, 200, "{page}");
        let ids: Vec<_> = page["items"].as_array().unwrap().iter().map(|i| i["id"].clone()).collect();
        assert_eq!(ids, vec![json!(id)], "found by {param}");
    }
    let (_, none) = app.get(&format!("/v1/evidence?md5={}", "0".repeat(32))).await;
    assert_eq!(none["items"], json!([]));
    let other_tenant = app.client_for("t2", evidence::Role::Admin, None).await;
    let (_, theirs) = app.send(other_tenant.get(format!("{}/v1/evidence?md5={md5}", app.base))).await;
    assert_eq!(theirs["items"], json!([]), "another tenant does not learn of these bytes");
    let (status, bad) = app.get("/v1/evidence?sha1=ABC").await;
    assert_eq!((status, bad["code"].as_str()), (422, Some("invalid_request")), "{bad}");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn the_fixity_sweep_rehashes_stored_bytes_and_flags_a_mismatch(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let (kept, altered) = (sample("interview-notes.txt"), sample("board-minutes.docx"));
    let (a, b) = (app.upload(&kept, json!({})).await, app.upload(&altered, json!({})).await);
    let a_indexed = app.wait_status(&a, "indexed").await;
    let b_sha = app.wait_status(&b, "indexed").await["sha256"].as_str().unwrap().to_owned();
    assert_eq!(a_indexed["fixity_ok"], true, "verification at ingest is the first check");
    let first_check = a_indexed["fixity_checked_at"].as_str().unwrap().to_owned();

    // Both checks are due; b's stored bytes are changed behind the service's back.
    sqlx::query("UPDATE content SET fixity_checked_at = now() - interval '30 days'").execute(&pool).await.unwrap();
    let mut bytes = altered.bytes.clone();
    bytes[10] ^= 0x01;
    app.storage.put(&format!("{TENANT}/content/{b_sha}"), &bytes, "application/octet-stream").await.unwrap();
    evidence::fixity::schedule_fixity(&app.app_pool, &Default::default()).await.unwrap();
    poll_for(WAIT, "the fixity sweep to finish", || async {
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM job WHERE kind = 'fixity_sweep' AND state = 'completed'")
                .fetch_one(&pool)
                .await
                .unwrap();
        (done == 1).then_some(())
    })
    .await;

    let (_, a_now) = app.get(&format!("/v1/evidence/{a}")).await;
    assert_eq!(a_now["fixity_ok"], true);
    assert!(a_now["fixity_checked_at"].as_str().unwrap() > first_check.as_str(), "checked again: {a_now}");
    let (_, b_now) = app.get(&format!("/v1/evidence/{b}")).await;
    assert_eq!((&b_now["fixity_ok"], &b_now["status"]), (&json!(false), &json!("indexed")), "flagged: {b_now}");
    assert_eq!(b_now["sha256"], b_sha, "the verified hash is kept");

    for (id, ok, found) in
        [(&a, true, a_indexed["sha256"].as_str().unwrap().to_owned()), (&b, false, hex(&Sha256::digest(&bytes)))]
    {
        let (_, log) = app.get(&format!("/v1/evidence/{id}/custody")).await;
        let checks: Vec<Value> = log["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "fixity_checked")
            .map(|e| serde_json::from_str(e["details"].as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(checks.len(), 1, "one entry per check: {checks:?}");
        assert_eq!((&checks[0]["ok"], checks[0]["found_sha256"].as_str()), (&json!(ok), Some(found.as_str())));
    }
    // The next sweep is scheduled, not run at once: everything was checked.
    let next: bool = sqlx::query_scalar(
        "SELECT run_at > now() + interval '30 minutes' FROM job WHERE kind = 'fixity_sweep' AND state = 'available'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(next, "the next sweep waits for the interval");
    app.stop().await;
}

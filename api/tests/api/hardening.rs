//! Bad input and overload, as a careless or hostile client would send them: each answers its own
//! 4xx (or a 503 for searches only) with a `{code, message}` that says what was wrong, and the
//! service keeps serving everyone else.

use evidence::SearchLimits;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::Duration;

use crate::support::{Options, TENANT, TestApp, WAIT, count, poll_for};

fn declared(filename: &str, content_type: &str) -> Value {
    json!({"filename": filename, "content_type": content_type, "size_bytes": 10})
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn each_kind_of_bad_input_gets_its_own_4xx(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let post = |body: Vec<u8>| {
        app.http.post(format!("{}/v1/evidence", app.base)).header("content-type", "application/json").body(body)
    };
    let big = serde_json::to_vec(&json!({"filename": "a.txt", "content_type": "text/plain", "size_bytes": 1,
        "description": "x".repeat(200_000)}))
    .unwrap();
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str, &str)> = vec![
        ("a 200 KB body", post(big.clone()), 413, "payload_too_large", "larger than 65536 bytes"),
        (
            "a 200 KB body without a length",
            app.http
                .post(format!("{}/v1/evidence", app.base))
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(futures_util::stream::iter([Ok::<_, std::io::Error>(big)]))),
            413,
            "payload_too_large",
            "larger than",
        ),
        (
            "invalid UTF-8 in the body",
            post(b"{\"filename\": \"\xff\"}".to_vec()),
            422,
            "invalid_utf8",
            "not valid UTF-8",
        ),
        (
            "a misspelt field",
            app.http
                .post(format!("{}/v1/evidence", app.base))
                .json(&json!({"filename": "a.txt", "content_type": "text/plain", "size_bytes": 1, "sha_256": "ab"})),
            422,
            "unknown_field",
            "unknown field `sha_256`",
        ),
        (
            "a NUL in the filename",
            app.http.post(format!("{}/v1/evidence", app.base)).json(&declared("a\u{0}b.txt", "text/plain")),
            422,
            "invalid_request",
            "control",
        ),
        (
            "a NUL in the description",
            app.http.post(format!("{}/v1/evidence", app.base)).json(
                &json!({"filename": "a.txt", "content_type": "text/plain", "size_bytes": 1, "description": "a\u{0}b"}),
            ),
            422,
            "invalid_request",
            "NUL",
        ),
        (
            "a non-ASCII content type",
            app.http.post(format!("{}/v1/evidence", app.base)).json(&declared("a.txt", "téxt/plain")),
            422,
            "invalid_request",
            "field `content_type` does not meet the pattern given for it",
        ),
        (
            "a content type without a subtype",
            app.http.post(format!("{}/v1/evidence", app.base)).json(&declared("a.txt", "text")),
            422,
            "invalid_request",
            "field `content_type` does not meet the pattern given for it",
        ),
        (
            "a right-to-left override in the filename",
            app.http.post(format!("{}/v1/evidence", app.base)).json(&declared("invoice\u{202E}fdp.exe", "text/plain")),
            422,
            "invalid_request",
            "U+202E",
        ),
        (
            "a filename of 256 characters",
            app.http.post(format!("{}/v1/evidence", app.base)).json(&declared(&"é".repeat(256), "text/plain")),
            422,
            "invalid_request",
            "field `filename` does not meet maxLength(255)",
        ),
        (
            "a NUL in a query parameter",
            app.http.get(format!("{}/v1/search?q=a%00b", app.base)),
            422,
            "invalid_text",
            "\"q\"",
        ),
        (
            "invalid UTF-8 in a query parameter",
            app.http.get(format!("{}/v1/evidence?case_id=%FF", app.base)),
            422,
            "invalid_utf8",
            "\"case_id\"",
        ),
    ];
    for (what, request, status, code, says) in cases {
        let resp = request.send().await.expect(what);
        let got = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{what}: {body}");
        assert!(body["message"].as_str().unwrap_or_default().contains(says), "{what}: {body}");
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM evidence").await, 0, "nothing refused left a row");
    // 255 characters of two bytes each is a good name.
    let (status, _) = app.post("/v1/evidence", declared(&"é".repeat(255), "text/plain; charset=utf-8")).await;
    assert_eq!(status, 201);
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn the_upload_url_takes_exactly_the_declared_bytes(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let (status, created) = app.post("/v1/evidence", declared("ten.txt", "text/plain")).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["upload"]["headers"]["content-length"], "10", "{created}");
    let put = |bytes: Vec<u8>, with_length_header: bool| {
        let upload = &created["upload"];
        let mut req = app.plain.put(upload["url"].as_str().unwrap()).body(bytes);
        for (k, v) in upload["headers"].as_object().unwrap() {
            if k != "content-length" || with_length_header {
                req = req.header(k, v.as_str().unwrap());
            }
        }
        // The store may answer 403 or close the connection before reading a body it refuses.
        async move { req.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    let key = format!("{TENANT}/uploads/{}", created["evidence"]["id"].as_str().unwrap());
    let refused = put(vec![b'x'; 20 << 20], false).await;
    assert!(refused == 403 || refused == 0, "20 MiB against a URL signed for 10 bytes: {refused}");
    assert_eq!(put(vec![b'x'; 5], false).await, 403, "fewer bytes than signed");
    assert_eq!(app.storage.head(&key).await.unwrap(), None, "nothing was stored");
    assert_eq!(put(vec![b'x'; 10], true).await, 200, "exactly the declared bytes");
    assert_eq!(app.storage.head(&key).await.unwrap(), Some(10));
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_burst_of_searches_is_refused_without_starving_uploads_or_ready(pool: PgPool) {
    let searches = SearchLimits::new(2, Duration::from_secs(30), 1000);
    let app = TestApp::start(pool.clone(), Options { searches, ..Options::default() }).await;
    let s = evidence::samples::named("burst", "interview-notes.txt");
    let indexed = app.upload(&s, json!({})).await;
    app.wait_status(&indexed, "indexed").await;

    // Searches read content_chunk: while a transaction holds it exclusively, every search that
    // gets a permit waits, as an expensive one would run.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE content_chunk IN ACCESS EXCLUSIVE MODE").execute(&mut *holder).await.unwrap();
    let search = |q: &'static str| {
        let req = app.http.get(format!("{}/v1/search", app.base)).query(&[("q", q)]);
        async move {
            let resp = req.send().await.unwrap();
            let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            (resp.status().as_u16(), retry_after, resp.json::<Value>().await.unwrap())
        }
    };
    let running: Vec<_> = (0..2).map(|_| tokio::spawn(search("courier"))).collect();
    poll_for(WAIT, "two searches waiting on the lock", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
             WHERE c.relname = 'content_chunk' AND NOT l.granted",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (waiting >= 2).then_some(())
    })
    .await;
    for (status, retry_after, body) in futures_util::future::join_all((0..8).map(|_| search("courier"))).await {
        assert_eq!((status, body["code"].as_str()), (503, Some("search_busy")), "{body}");
        assert_eq!(retry_after.as_deref(), Some("1"));
    }
    // Meanwhile everything else answers.
    assert_eq!(app.get("/ready").await.0, 200);
    let other = evidence::samples::named("burst", "chain-of-custody.json");
    let created = app.create(&other, json!({})).await;
    assert_eq!(app.put(&created, &other.bytes).await, 200);
    let id = created["evidence"]["id"].as_str().unwrap();
    assert_eq!(app.post(&format!("/v1/evidence/{id}/complete"), json!({})).await.0, 202);
    assert_eq!(app.get(&format!("/v1/evidence/{indexed}")).await.0, 200);

    holder.rollback().await.unwrap();
    for task in running {
        assert_eq!(task.await.unwrap().0, 200, "the searches that had a permit finish");
    }
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_search_past_its_time_is_cancelled_by_the_server(pool: PgPool) {
    let searches = SearchLimits::new(4, Duration::from_millis(300), 1000);
    let app = TestApp::start(pool.clone(), Options { searches, ..Options::default() }).await;
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE content_chunk IN ACCESS EXCLUSIVE MODE").execute(&mut *holder).await.unwrap();
    let request = app.http.get(format!("{}/v1/search?q=anything", app.base)).send();
    let resp = tokio::time::timeout(WAIT, request).await.expect("the server ends a search past its time").unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "search_busy", "{body}");
    holder.rollback().await.unwrap();
    assert_eq!(app.get("/v1/search?q=anything").await.0, 200, "the next one runs");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn answers_carry_security_headers(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let api = app.http.get(format!("{}/v1/evidence", app.base)).send().await.unwrap();
    assert_eq!(api.headers()["x-content-type-options"], "nosniff");
    assert_eq!(api.headers()["cache-control"], "no-store");
    let error = app.http.get(format!("{}/no/such/route", app.base)).send().await.unwrap();
    assert_eq!(error.headers()["x-content-type-options"], "nosniff", "errors too");
    let docs = app.http.get(format!("{}/docs", app.base)).send().await.unwrap();
    assert_eq!(docs.headers()["content-security-policy"], "frame-ancestors 'none'");
    assert_eq!(docs.headers()["x-content-type-options"], "nosniff");
    app.stop().await;
}

//! Access control: which role may call which endpoint, tenants that never see each other, case
//! scopes, revocation, and row-level security holding even for a query without its filter.

use evidence::Role;
use evidence::samples::{self, Sample};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{Options, TENANT, TestApp, client, count};

fn sample(name: &str) -> Sample {
    samples::named("acc355", name)
}

#[derive(Clone, Copy, Debug)]
enum Who {
    Admin,
    Uploader,
    Viewer,
    Auditor,
    /// An admin key of another tenant.
    OtherTenant,
    /// A viewer key limited to a case the evidence is not in.
    OtherCase,
    Revoked,
    /// An admin key revoked after this process checked it (and remembered it for a minute).
    RevokedInUse,
    Malformed,
    NoKey,
}

const EVERYONE: [Who; 10] = [
    Who::Admin,
    Who::Uploader,
    Who::Viewer,
    Who::Auditor,
    Who::OtherTenant,
    Who::OtherCase,
    Who::Revoked,
    Who::RevokedInUse,
    Who::Malformed,
    Who::NoKey,
];

/// The role × endpoint matrix: every `/v1` operation (a test below checks that none is left
/// out), against evidence `E` of case `c1`, indexed, and its completed ingest job, in a tenant
/// that is the operator tenant. Every cell is the status that endpoint must answer that caller.
/// Rows run in order: the reindex row is last, as it re-queues `E`.
#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn every_role_gets_exactly_its_endpoints(pool: PgPool) {
    let operator = Some(evidence::TenantId::new(TENANT).unwrap());
    let app = TestApp::start(pool, Options { operator_tenant: operator, ..Options::default() }).await;
    let s = sample("interview-notes.txt");
    let e = app.upload(&s, json!({"case_id": "c1"})).await;
    let job = app.wait_status(&e, "indexed").await["job_id"].as_i64().expect("an indexed evidence names its job");
    let spare = app.key_for(TENANT, Role::Viewer, None).await;
    let spare = &spare[4..16];

    let revoked = app.key_for(TENANT, Role::Viewer, None).await;
    let prefix = &revoked[4..16];
    assert_eq!(app.post(&format!("/v1/keys/{prefix}/revoke"), json!({})).await.0, 200);
    let in_use = app.key_for(TENANT, Role::Admin, None).await;
    assert_eq!(app.send(client(&in_use).get(format!("{}/v1/evidence", app.base))).await.0, 200);
    assert_eq!(app.post(&format!("/v1/keys/{}/revoke", &in_use[4..16]), json!({})).await.0, 200);
    let clients = [
        app.http.clone(),
        app.client_for(TENANT, Role::Uploader, None).await,
        app.client_for(TENANT, Role::Viewer, None).await,
        app.client_for(TENANT, Role::Auditor, None).await,
        app.client_for("t2", Role::Admin, None).await,
        app.client_for(TENANT, Role::Viewer, Some(&["c2"])).await,
        client(&revoked),
        client(&in_use),
        client("evk_not-a-key"),
        app.plain.clone(),
    ];

    let rows = matrix(&e, job, spare);
    use Who::*;
    // The reindex row's callers run in a different order: admin last (it changes the state).
    let reindex_order =
        [Uploader, Viewer, Auditor, OtherTenant, OtherCase, Revoked, RevokedInUse, Malformed, NoKey, Admin];

    let mut wrong = Vec::new();
    for (method, path, body, expected) in &rows {
        let one_reindex = path.starts_with("/v1/evidence/") && path.ends_with("/reindex");
        let order: &[Who] = if one_reindex { &reindex_order } else { &EVERYONE };
        for (who, want) in order.iter().zip(expected) {
            let http = &clients[*who as usize];
            let url = format!("{}{path}", app.base);
            let req =
                if *method == "GET" { http.get(url) } else { http.post(url).json(body.as_ref().unwrap_or(&json!({}))) };
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if status != *want {
                wrong.push(format!("{method} {path} as {who:?}: {status}, expected {want}: {body}"));
                continue;
            }
            let code = body["code"].as_str().unwrap_or_default();
            match status {
                401 if challenge.as_deref() != Some("Bearer realm=\"evidence\"") || code != "unauthorized" => {
                    wrong.push(format!("{method} {path} as {who:?}: 401 without its challenge or code: {body}"))
                }
                403 if !["role_not_allowed", "case_out_of_scope", "operator_only"].contains(&code) => {
                    wrong.push(format!("{method} {path} as {who:?}: 403 with code {code:?}"))
                }
                404 if code != "not_found" => wrong.push(format!("{method} {path} as {who:?}: 404 with {body}")),
                _ => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{} cells differ:\n{}", wrong.len(), wrong.join("\n"));
    app.stop().await;
}

/// One row of the matrix: method, path, body, and the status for each caller of [`EVERYONE`].
type Row = (&'static str, String, Option<Value>, [u16; 10]);

/// The matrix's rows for evidence `e`, its job `job` and a key to revoke (`spare`, its prefix).
fn matrix(e: &str, job: i64, spare: &str) -> Vec<Row> {
    let new_evidence = json!({"filename": "m.txt", "content_type": "text/plain", "size_bytes": 1, "case_id": "c1"});
    let new_key = json!({"name": "made in the matrix", "role": "viewer"});
    #[rustfmt::skip]
    let rows = vec![
        //                                                          Adm  Upl  Vie  Aud  Ten  Cas  Rev  RvU  Mal  No
        ("POST", "/v1/evidence".into(), Some(new_evidence),         [201, 201, 403, 403, 201, 403, 401, 401, 401, 401]),
        ("GET", format!("/v1/evidence/{e}"), None,                  [200, 200, 200, 200, 404, 403, 401, 401, 401, 401]),
        ("GET", "/v1/evidence".into(), None,                        [200, 200, 200, 200, 200, 200, 401, 401, 401, 401]),
        ("POST", format!("/v1/evidence/{e}/complete"), None,        [200, 200, 403, 403, 404, 403, 401, 401, 401, 401]),
        ("GET", format!("/v1/evidence/{e}/download"), None,         [200, 403, 200, 403, 404, 403, 401, 401, 401, 401]),
        ("GET", "/v1/search?q=courier".into(), None,                [200, 403, 200, 403, 200, 200, 401, 401, 401, 401]),
        ("GET", "/v1/keys".into(), None,                            [200, 403, 403, 403, 200, 403, 401, 401, 401, 401]),
        ("POST", "/v1/keys".into(), Some(new_key),                  [201, 403, 403, 403, 201, 403, 401, 401, 401, 401]),
        ("POST", format!("/v1/keys/{spare}/revoke"), None,          [200, 403, 403, 403, 404, 403, 401, 401, 401, 401]),
        ("GET", format!("/v1/evidence/{e}/custody"), None,          [200, 403, 200, 200, 404, 403, 401, 401, 401, 401]),
        ("GET", "/v1/custody/verify".into(), None,                  [200, 403, 403, 200, 200, 403, 401, 401, 401, 401]),
        ("POST", format!("/v1/evidence/{e}/complete-multipart"), Some(json!({"parts": [{"part_number": 1, "etag": "\"e\""}]})),
                                                                    [200, 200, 403, 403, 404, 403, 401, 401, 401, 401]),
        ("GET", "/v1/jobs".into(), None,                            [200, 403, 403, 403, 200, 403, 401, 401, 401, 401]),
        ("GET", format!("/v1/jobs/{job}"), None,                    [200, 403, 403, 403, 404, 403, 401, 401, 401, 401]),
        ("POST", format!("/v1/jobs/{job}/cancel"), None,            [409, 403, 403, 403, 404, 403, 401, 401, 401, 401]),
        ("POST", format!("/v1/jobs/{job}/retry"), None,             [409, 403, 403, 403, 404, 403, 401, 401, 401, 401]),
        ("GET", "/v1/queues".into(), None,                          [200, 403, 403, 403, 403, 403, 401, 401, 401, 401]),
        ("POST", "/v1/queues/default/pause".into(), None,           [200, 403, 403, 403, 403, 403, 401, 401, 401, 401]),
        ("POST", "/v1/queues/default/resume".into(), None,          [200, 403, 403, 403, 403, 403, 401, 401, 401, 401]),
        ("POST", "/v1/reindex".into(), Some(json!({"case_id": "no-such-case"})),
                                                                    [200, 403, 403, 403, 200, 403, 401, 401, 401, 401]),
        ("POST", format!("/v1/evidence/{e}/reindex"), None,         [403, 403, 403, 404, 403, 401, 401, 401, 401, 202]),
    ];
    rows
}

/// Every operation under `/v1` in the API's spec has its row in the matrix: a new endpoint
/// cannot be added without saying who may call it.
#[test]
fn the_matrix_has_a_row_for_every_v1_operation() {
    let spec: Value = serde_json::from_str(&api::spec_json()).unwrap();
    let rows = matrix("e", 1, "p");
    let covers = |method: &str, template: &str, (m, path, _, _): &Row| {
        let path = path.split('?').next().unwrap_or_default();
        let (want, have): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
        m.eq_ignore_ascii_case(method)
            && want.len() == have.len()
            && want.iter().zip(&have).all(|(w, h)| w == h || w.starts_with('{'))
    };
    let mut missing = Vec::new();
    let mut operations = 0;
    for (template, methods) in spec["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys().filter(|_| template.starts_with("/v1/")) {
            operations += 1;
            if !rows.iter().any(|row| covers(method, template, row)) {
                missing.push(format!("{method} {template}"));
            }
        }
    }
    assert!(operations >= 21, "the spec lists only {operations} /v1 operations");
    assert!(missing.is_empty(), "operations without a row in the matrix:\n{}", missing.join("\n"));
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn two_tenants_with_the_same_bytes_never_learn_of_each_other(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let other = app.client_for("t2", Role::Admin, None).await;
    let s = sample("board-minutes.docx");
    let mine = app.upload(&s, json!({})).await;
    let theirs = app.upload_as(&other, &s, json!({})).await;
    let mine = app.wait_status(&mine, "indexed").await;
    let theirs = app.wait_status_as(&other, &theirs, "indexed").await;
    assert_eq!((&mine["duplicate"], &theirs["duplicate"]), (&json!(false), &json!(false)), "dedup is per tenant");
    assert_eq!(mine["sha256"], theirs["sha256"]);
    let sha = mine["sha256"].as_str().unwrap();
    assert_eq!(count(&pool, "SELECT count(*) FROM content").await, 2, "one content row per tenant");

    // Lookup by sha256 and search find only the tenant's own evidence.
    let (_, by_hash) = app.get(&format!("/v1/evidence?sha256={sha}")).await;
    let ids: Vec<&Value> = by_hash["items"].as_array().unwrap().iter().map(|e| &e["id"]).collect();
    assert_eq!(ids, vec![&mine["id"]], "{by_hash}");
    let (_, hits) = app.get("/v1/search?q=acquisition%20Globex").await;
    let hit_ids: Vec<&Value> = hits["hits"].as_array().unwrap().iter().map(|h| &h["id"]).collect();
    assert_eq!(hit_ids, vec![&mine["id"]], "{hits}");

    // Another tenant's id answers exactly as an id that does not exist.
    let theirs_id = theirs["id"].as_str().unwrap();
    let missing = uuid::Uuid::new_v4().to_string();
    for suffix in ["", "/download", "/complete", "/reindex"] {
        let get = suffix.is_empty() || suffix == "/download";
        let ask = |id: &str| {
            let url = format!("{}/v1/evidence/{id}{suffix}", app.base);
            if get { app.http.get(url) } else { app.http.post(url).json(&json!({})) }
        };
        let (s1, b1) = app.send(ask(theirs_id)).await;
        let (s2, b2) = app.send(ask(&missing)).await;
        assert_eq!((s1, &b1["code"]), (404, &json!("not_found")), "{suffix}: {b1}");
        assert_eq!(
            (s2, b2["message"].as_str().unwrap().replace(&missing, theirs_id)),
            (404, b1["message"].as_str().unwrap().to_owned())
        );
    }

    // Each tenant's objects live under its own prefix.
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT object_key FROM evidence ORDER BY tenant_id").fetch_all(&pool).await.unwrap();
    assert!(keys[0].starts_with("t1/uploads/") && keys[1].starts_with("t2/uploads/"), "{keys:?}");
    app.stop().await;
}

/// The key is checked before anything else of the request is read: without a valid key, a
/// malformed path, query or body answers 401 as a good one would, so that such a client learns
/// nothing of the API but that it needs a key. With a valid key the same requests are refused
/// for what is wrong with them.
#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn without_a_valid_key_nothing_of_the_request_is_read(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let revoked = app.key_for(TENANT, Role::Admin, None).await;
    assert_eq!(app.post(&format!("/v1/keys/{}/revoke", &revoked[4..16]), json!({})).await.0, 200);
    let id = uuid::Uuid::new_v4();
    let bad: [(&str, String, Value, u16); 4] = [
        ("POST", "/v1/evidence".into(), json!({"filename": ""}), 422),
        ("POST", format!("/v1/evidence/{id}/complete-multipart"), json!({"parts": []}), 422),
        ("POST", "/v1/evidence/not-a-uuid/complete".into(), json!({}), 400),
        ("GET", "/v1/search?q=%20".into(), Value::Null, 422),
    ];
    let callers = [
        (app.http.clone(), "a valid key"),
        (client(&revoked), "a revoked key"),
        (client("evk_x"), "a malformed key"),
        (app.plain.clone(), "no key"),
    ];
    for (http, who) in &callers {
        for (method, path, body, refused) in &bad {
            let url = format!("{}{path}", app.base);
            let req = if *method == "GET" { http.get(url) } else { http.post(url).json(body) };
            let (status, answer) = app.send(req).await;
            let want = if *who == "a valid key" { *refused } else { 401 };
            assert_eq!(status, want, "{method} {path} with {who}: {answer}");
        }
    }
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_revoked_key_is_refused_at_once(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let (status, made) = app.post("/v1/keys", json!({"name": "laptop", "role": "viewer"})).await;
    assert_eq!(status, 201, "{made}");
    let secret = made["secret"].as_str().unwrap();
    let prefix = made["key"]["prefix"].as_str().unwrap();
    assert!(secret.starts_with(&format!("evk_{prefix}_")) && secret.len() == 81, "{secret}");
    let viewer = client(secret);
    assert_eq!(app.send(viewer.get(format!("{}/v1/evidence", app.base))).await.0, 200);

    let (status, revoked) = app.post(&format!("/v1/keys/{prefix}/revoke"), json!({})).await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    assert!(revoked["last_used_at"].is_string(), "its use was recorded: {revoked}");
    let (status, refused) = app.send(viewer.get(format!("{}/v1/evidence", app.base))).await;
    assert_eq!((status, refused["message"].as_str()), (401, Some("this API key was revoked")));

    // The listing shows it (never a secret); revoking again keeps the first time.
    let (_, keys) = app.get("/v1/keys").await;
    let listed = keys["items"].as_array().unwrap().iter().find(|k| k["prefix"] == prefix).unwrap();
    assert_eq!(listed["revoked_at"], revoked["revoked_at"]);
    assert!(!keys.to_string().contains(&secret[17..]), "no secret in listings");
    let (_, again) = app.post(&format!("/v1/keys/{prefix}/revoke"), json!({})).await;
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);
    assert_eq!(app.post("/v1/keys/0123456789ab/revoke", json!({})).await.0, 404);
    let me = keys["items"].as_array().unwrap().iter().find(|k| k["name"] == "test admin").unwrap();
    let (status, err) = app.post(&format!("/v1/keys/{}/revoke", me["prefix"].as_str().unwrap()), json!({})).await;
    assert_eq!((status, err["code"].as_str()), (409, Some("own_key")), "a key cannot revoke itself: {err}");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_key_limited_to_cases_reaches_only_those(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let s = sample("interview-notes.txt");
    let in_c1 = app.upload(&s, json!({"case_id": "c1"})).await;
    let in_c2 = app.upload(&sample("access-log.csv"), json!({"case_id": "c2"})).await;
    let no_case = app.upload(&sample("press-release.html"), json!({})).await;
    for id in [&in_c1, &in_c2, &no_case] {
        app.wait_status(id, "indexed").await;
    }
    let scoped = app.client_for(TENANT, Role::Admin, Some(&["c1"])).await;
    let ask = |path: &str| app.send(scoped.get(format!("{}{path}", app.base)));

    let (_, page) = ask("/v1/evidence").await;
    let ids: Vec<&str> = page["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![in_c1.as_str()], "a listing shows the key's cases only");
    assert_eq!(ask(&format!("/v1/evidence/{in_c2}")).await.0, 403);
    assert_eq!(ask(&format!("/v1/evidence/{no_case}")).await.0, 403);
    let (status, err) = ask("/v1/evidence?case_id=c2").await;
    assert_eq!((status, err["code"].as_str()), (403, Some("case_out_of_scope")), "{err}");
    assert_eq!(ask("/v1/search?q=vault&case_id=c2").await.0, 403);
    let (_, hits) = ask("/v1/search?q=vault%20or%20courier").await;
    let hit_ids: Vec<&str> = hits["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(hit_ids, vec![in_c1.as_str()], "{hits}");

    let create = |case: Value| {
        let body = json!({"filename": "x.txt", "content_type": "text/plain", "size_bytes": 1, "case_id": case});
        app.send(scoped.post(format!("{}/v1/evidence", app.base)).json(&body))
    };
    assert_eq!(create(json!("c1")).await.0, 201);
    assert_eq!(create(json!("c2")).await.0, 403);
    assert_eq!(create(Value::Null).await.0, 403, "evidence without a case is outside every case scope");

    // It makes keys within its cases only, and sees only those.
    let make = |body: Value| app.send(scoped.post(format!("{}/v1/keys", app.base)).json(&body));
    assert_eq!(make(json!({"name": "n", "role": "viewer"})).await.0, 403);
    assert_eq!(make(json!({"name": "n", "role": "viewer", "case_ids": ["c2"]})).await.0, 403);
    assert_eq!(make(json!({"name": "n", "role": "viewer", "case_ids": ["c1"]})).await.0, 201);
    let (_, keys) = app.send(scoped.get(format!("{}/v1/keys", app.base))).await;
    assert!(keys["items"].as_array().unwrap().iter().all(|k| k["case_ids"] == json!(["c1"])), "{keys}");
    app.stop().await;
}

/// A function that runs with its owner's rights reads the tables it was written for, never a
/// temporary table of its caller's with the same name (PostgreSQL searches the session's
/// temporary schema first unless the function's search path puts it last).
#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_temporary_table_of_the_callers_cannot_stand_in_for_the_keys(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let mut tx = app.app_pool.begin().await.unwrap();
    sqlx::query(
        "CREATE TEMP TABLE api_key (id uuid, tenant_id text, prefix text, secret_sha256 bytea, name text,
                                    role text, case_ids text[], created_by uuid, created_at timestamptz,
                                    last_used_at timestamptz, revoked_at timestamptz) ON COMMIT DROP",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("INSERT INTO api_key VALUES (gen_random_uuid(), 'victim', 'forged', '\\x00', 'forged', 'admin')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let tenant: Option<String> = sqlx::query_scalar("SELECT tenant_id FROM authenticate_api_key('forged', '\\x00')")
        .fetch_optional(&mut *tx)
        .await
        .unwrap();
    assert_eq!(tenant, None, "the forged row in the caller's temporary table was taken for a key");
    drop(tx);
    app.stop().await;
}

/// Row-level security is the second wall: as the application role, a query that names no tenant
/// still sees one tenant's rows only, and none at all when the transaction names no tenant.
#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn row_level_security_holds_for_a_query_without_its_tenant_filter(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let other = app.client_for("t2", Role::Admin, None).await;
    let s = sample("interview-notes.txt");
    let mine = app.upload(&s, json!({})).await;
    let theirs = app.upload_as(&other, &sample("access-log.csv"), json!({})).await;
    app.wait_status(&mine, "indexed").await;
    app.wait_status_as(&other, &theirs, "indexed").await;
    assert_eq!(count(&pool, "SELECT count(*) FROM evidence").await, 2, "the owner sees both");

    // The statements forget their tenant; only the transaction's setting is there.
    let unfiltered = [
        "SELECT count(*) FROM evidence",
        "SELECT count(*) FROM content",
        "SELECT count(*) FROM content_chunk",
        "SELECT count(*) FROM api_key",
    ];
    for sql in unfiltered {
        let mut tx = app.app_pool.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', 't1', true)").execute(&mut *tx).await.unwrap();
        let seen: i64 = sqlx::query_scalar(sql).fetch_one(&mut *tx).await.unwrap();
        let all: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        tx.commit().await.unwrap();
        let none: i64 = sqlx::query_scalar(sql).fetch_one(&app.app_pool).await.unwrap();
        assert!(seen >= 1 && seen < all, "{sql}: tenant t1 sees {seen} of {all}");
        assert_eq!(none, 0, "{sql}: a transaction without a tenant sees nothing");
    }
    let ids: Vec<uuid::Uuid> = {
        let mut tx = app.app_pool.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', 't1', true)").execute(&mut *tx).await.unwrap();
        sqlx::query_scalar("SELECT id FROM evidence").fetch_all(&mut *tx).await.unwrap()
    };
    assert_eq!(ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(), vec![mine.clone()]);

    // Writes are held to the tenant too, and key hashes are out of reach.
    let mut tx = app.app_pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', 't1', true)").execute(&mut *tx).await.unwrap();
    let moved = sqlx::query("UPDATE evidence SET tenant_id = 't2'").execute(&mut *tx).await;
    assert!(format!("{:?}", moved.unwrap_err()).contains("row-level security"), "a row cannot be moved out");
    drop(tx);
    let hashes = sqlx::query("SELECT secret_sha256 FROM api_key").execute(&app.app_pool).await;
    assert!(format!("{:?}", hashes.unwrap_err()).contains("permission denied"));

    // A connection that would escape the policies is refused rather than used: at start, with
    // the reason, and by the pool for every connection it makes.
    let owner = (*pool.connect_options()).clone();
    let err = evidence::startup::check_app_role(&owner, None).await.unwrap_err();
    assert!(format!("{err:#}").contains("bypasses row-level security"), "{err:#}");
    evidence::startup::check_app_role(&owner, Some("evidence_app")).await.expect("the application role passes");
    let escaping = evidence::startup::app_pool(owner, None, 1, std::time::Duration::from_millis(500));
    assert!(sqlx::query("SELECT 1").execute(&escaping).await.is_err(), "no connection as the owner");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn keys_made_through_the_api_are_checked_and_work(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    for (body, code) in [
        (json!({"name": "", "role": "viewer"}), "invalid_request"),
        (json!({"name": "n", "role": "root"}), "bad_request"),
        (json!({"name": "n", "role": "viewer", "scope": "all"}), "unknown_field"),
        (json!({"name": "n", "role": "viewer", "case_ids": []}), "invalid_request"),
    ] {
        let (status, err) = app.post("/v1/keys", body.clone()).await;
        assert!(status == 422 || status == 400, "{body}: {status} {err}");
        assert_eq!(err["code"], code, "{body}: {err}");
    }
    let (_, made) = app.post("/v1/keys", json!({"name": "scanner", "role": "uploader"})).await;
    let (_, admin) = app.get("/v1/keys").await;
    let me = admin["items"].as_array().unwrap().iter().find(|k| k["name"] == "test admin").unwrap();
    assert_eq!(made["key"]["created_by"], me["id"], "{made}");
    let uploader = client(made["secret"].as_str().unwrap());
    let id = app.upload_as(&uploader, &sample("interview-notes.txt"), json!({})).await;
    app.wait_status_as(&uploader, &id, "indexed").await;
    app.stop().await;
}

//! The custody log: one entry per event, written with the change it records, chained per tenant,
//! and every kind of tampering found at the entry where it happened.

use evidence::Role;
use evidence::samples::{self, Sample};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::ops::database_url;
use crate::support::{Options, TENANT, TestApp, WAIT, binary, poll_for};

fn sample(name: &str) -> Sample {
    samples::named("cust0dy", name)
}

/// Wait for a status by reading the database, not the API: a GET would be a custody event.
async fn wait_status(app: &TestApp, id: &str, want: &str) {
    poll_for(WAIT, &format!("evidence {id} to be {want}"), || async {
        let status: String = sqlx::query_scalar("SELECT status FROM evidence WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        (status == want).then_some(())
    })
    .await
}

async fn upload(app: &TestApp, http: &reqwest::Client, s: &Sample, extra: Value) -> String {
    let created = app.create_as(http, s, extra).await;
    assert_eq!(app.put(&created, &s.bytes).await, 200);
    let id = created["evidence"]["id"].as_str().unwrap().to_owned();
    let (status, body) = app.send(http.post(format!("{}/v1/evidence/{id}/complete", app.base))).await;
    assert_eq!(status, 202, "{body}");
    id
}

async fn events(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, log) = app.get(&format!("/v1/evidence/{id}/custody")).await;
    assert_eq!(status, 200, "{log}");
    log["items"].as_array().unwrap().clone()
}

/// The tenant's chain verified once the sealer has caught up (no entry pending).
async fn verify(app: &TestApp) -> Value {
    verify_as(app, &app.http).await
}

async fn verify_as(app: &TestApp, http: &reqwest::Client) -> Value {
    poll_for(WAIT, "every custody entry to be sealed", || async {
        let (status, verdict) = app.send(http.get(format!("{}/v1/custody/verify", app.base))).await;
        assert_eq!(status, 200, "{verdict}");
        (verdict["intact"] == false || verdict["pending"] == 0).then_some(verdict)
    })
    .await
}

/// The id of the entry at `seq` in the chain, as SQL.
fn entry_at(seq: i64) -> String {
    format!("(SELECT entry_id FROM custody_link WHERE seq = {seq})")
}

/// SQL that appends a `viewed` entry to the test tenant's log, by an actor named `name`.
fn appended(name: &str) -> String {
    format!("SELECT custody_append('{TENANT}', NULL, 'viewed', 'api_key', 'k', '{name}', NULL, '{{}}')")
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn every_event_is_recorded_once_with_who_and_the_chain_verifies(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let s = sample("interview-notes.txt");
    let custody =
        json!({"custodian": "J. Doe, IR team", "collected_at": "2026-11-30T09:15:00Z", "source": "laptop LT-0042"});
    let id = upload(&app, &app.http, &s, custody).await;
    wait_status(&app, &id, "indexed").await;

    let (status, e) = app.get(&format!("/v1/evidence/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!((e["custodian"].as_str(), e["source"].as_str()), (Some("J. Doe, IR team"), Some("laptop LT-0042")));
    assert_eq!(e["collected_at"], "2026-11-30T09:15:00+00:00");
    app.get(&format!("/v1/evidence/{id}")).await;
    assert_eq!(app.get(&format!("/v1/evidence/{}", uuid::Uuid::new_v4())).await.0, 404, "a 404 records nothing");
    let other_case = app.client_for(TENANT, Role::Viewer, Some(&["elsewhere"])).await;
    assert_eq!(app.send(other_case.get(format!("{}/v1/evidence/{id}", app.base))).await.0, 403, "nor does a 403");
    assert_eq!(app.get(&format!("/v1/evidence/{id}/download")).await.0, 200);
    assert_eq!(app.post(&format!("/v1/evidence/{id}/reindex"), json!({})).await.0, 202);
    wait_status(&app, &id, "indexed").await;

    let verdict = verify(&app).await;
    let log = events(&app, &id).await;
    let names: Vec<_> = log.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "created",
            "upload_completed",
            "verified",
            "indexed",
            "viewed",
            "viewed",
            "download_url_issued",
            "reindexed",
            "verified",
            "indexed"
        ]
    );
    let admin_key: String =
        sqlx::query_scalar("SELECT id::text FROM api_key WHERE name = 'test admin' AND tenant_id = $1")
            .bind(TENANT)
            .fetch_one(&pool)
            .await
            .unwrap();
    for entry in &log {
        let by_worker = ["verified", "indexed"].contains(&entry["event"].as_str().unwrap());
        let (kind, actor) = if by_worker { ("worker", None) } else { ("api_key", Some(admin_key.as_str())) };
        assert_eq!(entry["actor_kind"], kind, "{entry}");
        if let Some(actor) = actor {
            assert_eq!((entry["actor_id"].as_str(), entry["actor_name"].as_str()), (Some(actor), Some("test admin")));
        }
        assert!(entry["request_id"].is_string(), "every entry names its request: {entry}");
    }
    let created: Value = serde_json::from_str(log[0]["details"].as_str().unwrap()).unwrap();
    assert_eq!(
        (created["custodian"].as_str(), created["filename"].as_str()),
        (Some("J. Doe, IR team"), Some(s.filename.as_str()))
    );
    let verified: Value = serde_json::from_str(log[2]["details"].as_str().unwrap()).unwrap();
    assert_eq!(verified["sha256"], e["sha256"]);
    assert_eq!((verified["sha1"].as_str().map(str::len), verified["md5"].as_str().map(str::len)), (Some(40), Some(32)));
    assert_eq!(log[2]["request_id"], log[1]["request_id"], "the worker's entries carry the complete's request id");

    // The whole chain: these ten plus nothing else, intact, ending where the last entry ends.
    assert_eq!((&verdict["intact"], &verdict["count"]), (&json!(true), &json!(10)), "{verdict}");
    assert_eq!(verdict["head"], log[9]["hash"]);
    let seqs: Vec<_> = log.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());

    // The command-line verifier agrees, from the database alone.
    let url = database_url(&pool, None, "custody-cli").await;
    let out = std::process::Command::new(binary("api"))
        .args(["custody", "verify", "--tenant", TENANT])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("intact: 10 entries, head {}", log[9]["hash"].as_str().unwrap())), "{stdout}");

    // An uploader may not read custody, an auditor may read and verify it.
    let uploader = app.client_for(TENANT, Role::Uploader, None).await;
    assert_eq!(app.send(uploader.get(format!("{}/v1/evidence/{id}/custody", app.base))).await.0, 403);
    let auditor = app.client_for(TENANT, Role::Auditor, None).await;
    assert_eq!(app.send(auditor.get(format!("{}/v1/custody/verify", app.base))).await.0, 200);
    app.stop().await;
}

/// Runs `sql` as the superuser with triggers off (what it takes to get past the append-only
/// trigger), then verifies the chain.
async fn tamper(app: &TestApp, sql: &[&str]) -> Value {
    let mut conn = app.pool.acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica").execute(&mut *conn).await.unwrap();
    for statement in sql {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_string())).execute(&mut *conn).await.unwrap();
    }
    sqlx::query("RESET session_replication_role").execute(&mut *conn).await.unwrap();
    drop(conn);
    verify(app).await
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn an_edited_deleted_or_reordered_entry_is_found_where_it_happened(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let id = upload(&app, &app.http, &sample("interview-notes.txt"), json!({})).await;
    wait_status(&app, &id, "indexed").await;
    assert_eq!(verify(&app).await["count"], 4);

    // Nobody changes an entry or its place in the chain without disabling the triggers first, not
    // even the owner; the application role may not at all, nor write a place itself.
    for statement in [
        format!("UPDATE custody_entry SET actor_name = 'someone else' WHERE id = {}", entry_at(2)),
        "DELETE FROM custody_entry".into(),
        "UPDATE custody_link SET hash = repeat('0', 64) WHERE seq = 2".into(),
        "DELETE FROM custody_link".into(),
    ] {
        let refused = sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone())).execute(&pool).await.unwrap_err();
        assert!(refused.to_string().contains("cannot be changed or removed"), "{statement}: {refused}");
    }
    for statement in [
        "UPDATE custody_entry SET actor_name = 'x'",
        "UPDATE custody_link SET seq = seq",
        "INSERT INTO custody_link VALUES (0, 't1', 99, now(), '', '')",
        "INSERT INTO custody_entry (tenant_id, event, actor_kind, actor_id, actor_name, details, xid) \
         VALUES ('t1', 'viewed', 'api_key', 'k', 'n', '{}', '1')",
    ] {
        let refused = sqlx::query(statement).execute(&app.app_pool).await.unwrap_err();
        assert!(
            refused.to_string().contains("permission denied"),
            "the application role may not: {statement}: {refused}"
        );
    }

    // Each case starts from the untouched chain, kept aside.
    const RESTORE: &str = "DELETE FROM custody_link; DELETE FROM custody_entry; DELETE FROM custody_head;
         INSERT INTO custody_entry SELECT * FROM kept; INSERT INTO custody_link SELECT * FROM kept_links;
         INSERT INTO custody_head SELECT * FROM kept_head";
    tamper(
        &app,
        &[
            "CREATE TABLE kept AS SELECT * FROM custody_entry",
            "CREATE TABLE kept_links AS SELECT * FROM custody_link",
            "CREATE TABLE kept_head AS SELECT * FROM custody_head",
        ],
    )
    .await;
    let edited = format!("UPDATE custody_entry SET actor_name = 'someone else' WHERE id = {}", entry_at(2));
    let deleted = format!("DELETE FROM custody_entry WHERE id = {}", entry_at(3));
    let last_deleted = format!("DELETE FROM custody_entry WHERE id = {}", entry_at(4));
    let cases: [(&str, &[&str], i64, &str); 7] = [
        ("edited", &[&edited], 2, "hash"),
        ("deleted", &[&deleted], 3, "seq"),
        ("the last one deleted", &[&last_deleted], 4, "head"),
        ("its place deleted", &["DELETE FROM custody_link WHERE seq = 3"], 3, "seq"),
        ("its place rehashed", &["UPDATE custody_link SET hash = repeat('0', 64) WHERE seq = 2"], 2, "hash"),
        ("the head removed", &["DELETE FROM custody_head"], 5, "head"),
        (
            "reordered",
            &[
                "UPDATE custody_link SET seq = -1 WHERE seq = 2",
                "UPDATE custody_link SET seq = 2 WHERE seq = 3",
                "UPDATE custody_link SET seq = 3 WHERE seq = -1",
            ],
            2,
            "prev_hash",
        ),
    ];
    for (what, sql, at, field) in cases {
        let verdict = tamper(&app, sql).await;
        assert_eq!(
            (&verdict["intact"], &verdict["broken_at"], &verdict["field"]),
            (&json!(false), &json!(at), &json!(field)),
            "{what}: {verdict}"
        );
        assert_eq!(tamper(&app, &[RESTORE]).await["intact"], true, "restored after {what}");
    }
    app.stop().await;
}

/// The sealer takes entries in the order of the transactions that wrote them, and only those
/// older than every transaction still running: an entry whose transaction commits after a later
/// one's is sealed once it commits, never passed over.
#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn an_entry_committed_after_a_later_one_is_sealed_not_passed_over(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let mut first = pool.begin().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(appended("first"))).execute(&mut *first).await.unwrap();
    let first_xid: i64 =
        sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint").fetch_one(&mut *first).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(appended("second"))).execute(&pool).await.unwrap();
    // The sealer runs all along; once more by hand, so that a call has surely seen "second"
    // committed while "first" was open.
    sqlx::query("SELECT custody_seal(1000)").execute(&pool).await.unwrap();
    let linked = "SELECT count(*) FROM custody_link l JOIN custody_entry e ON e.id = l.entry_id
                  WHERE e.actor_name IN ('first', 'second')";
    let sealed: i64 = sqlx::query_scalar(linked).fetch_one(&pool).await.unwrap();
    assert_eq!(sealed, 0, "the second entry waits for the transaction of the first");
    // What the workers' gauge and warning read: one entry waiting, held back by the oldest
    // transaction on the server: that one, or one older still (tests share the server).
    let unsealed = "SELECT waiting, held, held_by::text::bigint FROM custody_unsealed()";
    let (waiting, held, held_by): (i64, i64, Option<i64>) =
        sqlx::query_as(unsealed).fetch_one(&app.app_pool).await.unwrap();
    assert_eq!((waiting, held), (1, 1));
    assert!(held_by.is_some_and(|by| by <= first_xid), "held by {held_by:?}, the first is {first_xid}");

    first.commit().await.unwrap();
    let verdict = verify(&app).await;
    assert_eq!((&verdict["intact"], &verdict["pending"]), (&json!(true), &json!(0)), "{verdict}");
    let order: Vec<String> = sqlx::query_scalar(
        "SELECT e.actor_name FROM custody_link l JOIN custody_entry e ON e.id = l.entry_id
         WHERE e.actor_name IN ('first', 'second') ORDER BY l.seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(order, ["first", "second"], "in the order their transactions began to write");
    let (waiting, held, held_by): (i64, i64, Option<i64>) =
        sqlx::query_as(unsealed).fetch_one(&app.app_pool).await.unwrap();
    assert_eq!((waiting, held, held_by), (0, 0, None));
    app.stop().await;
}

/// Transaction ids belong to one server: a log restored onto another (pg_dump, logical
/// replication) brings the sealer's position and entries with ids the new server has not given
/// out. The sealer finds that out, seals every entry without a place, and goes on from the new
/// server's ids.
#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_log_restored_from_another_server_is_sealed_and_sealing_goes_on(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(appended("before"))).execute(&pool).await.unwrap();
    assert_eq!(verify(&app).await["count"], 1);
    // As a restore leaves it, in one transaction: the old server's position, and an entry it had
    // not sealed, both past every id this server has given out.
    sqlx::raw_sql(
        "UPDATE custody_sealer SET last_xid = (pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000000)::text::xid8;
         INSERT INTO custody_entry (tenant_id, event, actor_kind, actor_id, actor_name, details, xid)
         VALUES ('t1', 'viewed', 'api_key', 'k', 'restored', '{}',
                 (pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000001)::text::xid8)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(appended("after"))).execute(&pool).await.unwrap();
    let verdict = verify(&app).await;
    assert_eq!((&verdict["intact"], &verdict["count"]), (&json!(true), &json!(3)), "{verdict}");

    sqlx::raw_sql(sqlx::AssertSqlSafe(appended("later"))).execute(&pool).await.unwrap();
    let verdict = verify(&app).await;
    assert_eq!((&verdict["intact"], &verdict["count"]), (&json!(true), &json!(4)), "sealing goes on: {verdict}");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn two_tenants_uploading_at_once_keep_two_intact_chains(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let other = app.client_for("t2", Role::Admin, None).await;
    let s = sample("interview-notes.txt");
    let uploads = (0..6).map(|i| {
        let (app, s) = (&app, &s);
        let http = if i % 2 == 0 { app.http.clone() } else { other.clone() };
        async move { upload(app, &http, s, json!({"filename": format!("n{i}.txt")})).await }
    });
    let ids = futures_util::future::join_all(uploads).await;
    for id in &ids {
        wait_status(&app, id, "indexed").await;
    }
    for http in [&app.http, &other] {
        let verdict = verify_as(&app, http).await;
        assert_eq!((&verdict["intact"], &verdict["count"]), (&json!(true), &json!(12)), "{verdict}");
    }
    let (status, _) = app.send(other.get(format!("{}/v1/evidence/{}/custody", app.base, ids[0]))).await;
    assert_eq!(status, 404, "another tenant's custody does not exist for t2");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn an_entry_and_the_change_it_records_commit_or_roll_back_together(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    // The append of `upload_completed` fails (a trigger standing in for any failure there).
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_entry() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.event = 'upload_completed' THEN RAISE EXCEPTION 'refused for the test'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER refuse_entry BEFORE INSERT ON custody_entry FOR EACH ROW EXECUTE FUNCTION refuse_entry();",
    )
    .execute(&pool)
    .await
    .unwrap();
    let s = sample("interview-notes.txt");
    let created = app.create(&s, json!({})).await;
    let id = created["evidence"]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.put(&created, &s.bytes).await, 200);
    let (status, _) = app.post(&format!("/v1/evidence/{id}/complete"), json!({})).await;
    assert_eq!(status, 500);
    let (status, jobs): (String, i64) =
        sqlx::query_as("SELECT status, (SELECT count(*) FROM job) FROM evidence WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), jobs), ("awaiting_upload", 0), "no change without its entry");

    sqlx::query("DROP TRIGGER refuse_entry ON custody_entry").execute(&pool).await.unwrap();
    assert_eq!(app.post(&format!("/v1/evidence/{id}/complete"), json!({})).await.0, 202);
    wait_status(&app, &id, "indexed").await;
    assert_eq!(verify(&app).await["intact"], true);
    let names: Vec<_> = events(&app, &id).await.iter().map(|e| e["event"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["created", "upload_completed", "verified", "indexed"], "no entry without its change");
    assert_eq!(verify(&app).await["intact"], true);
    app.stop().await;
}

//! Queue operations over the API: admin keys list, read, cancel and retry their tenant's jobs,
//! the operator tenant's admin keys pause and resume queues, and the evidence follows each
//! change in the same transaction.

use evidence::{Role, TenantId, samples};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{Options, TENANT, TestApp};

const OPERATOR: &str = "ops";

fn with_operator() -> Options {
    Options { operator_tenant: Some(TenantId::new(OPERATOR).unwrap()), ..Options::default() }
}

/// The custody entries of one evidence the database holds: (event, actor kind, actor name,
/// request id).
async fn custody(pool: &PgPool, id: &str) -> Vec<(String, String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT event, actor_kind, actor_name, request_id FROM custody_entry WHERE evidence_id = $1::uuid ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn admins_cancel_and_retry_their_jobs_and_the_evidence_follows(pool: PgPool) {
    let app = TestApp::start(pool.clone(), with_operator()).await;
    let operator = app.client_for(OPERATOR, Role::Admin, None).await;
    // Paused, the in-process worker claims nothing: the job stays available for as long as the
    // test needs.
    let (status, paused) = app.send(operator.post(format!("{}/v1/queues/default/pause", app.base))).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(
        (paused["paused"].as_bool(), paused["paused_by"].as_str().map(|s| s.contains("test admin"))),
        (Some(true), Some(true))
    );

    let sample = samples::named("jobsapi", "interview-notes.txt");
    let id = app.upload(&sample, json!({})).await;
    let (_, evidence) = app.get(&format!("/v1/evidence/{id}")).await;
    let job = evidence["job_id"].as_i64().expect("the evidence names its job");

    let (status, page) = app.get("/v1/jobs?state=available&kind=ingest_evidence").await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<i64> = page["items"].as_array().unwrap().iter().map(|j| j["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![job]);
    assert_eq!(page["items"][0]["payload"]["evidence_id"], id.as_str());

    // Another tenant's admin: the job does not exist for it.
    let other = app.client_for("t2", Role::Admin, None).await;
    let (status, page) = app.send(other.get(format!("{}/v1/jobs", app.base))).await;
    assert_eq!((status, page["items"].as_array().map(Vec::len)), (200, Some(0)), "{page}");
    for req in
        [other.get(format!("{}/v1/jobs/{job}", app.base)), other.post(format!("{}/v1/jobs/{job}/cancel", app.base))]
    {
        let (status, body) = app.send(req).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{body}");
    }
    // Other roles, keys limited to cases, and admins outside the operator tenant are refused.
    let viewer = app.client_for(TENANT, Role::Viewer, None).await;
    let (status, body) = app.send(viewer.get(format!("{}/v1/jobs", app.base))).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("role_not_allowed")), "{body}");
    let scoped = app.client_for(TENANT, Role::Admin, Some(&["case-a"])).await;
    let (status, body) = app.send(scoped.get(format!("{}/v1/jobs/{job}", app.base))).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("case_out_of_scope")), "{body}");
    let (status, body) = app.post("/v1/queues/default/resume", json!({})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("operator_only")), "{body}");
    let (status, body) = app.get("/v1/queues").await;
    assert_eq!((status, body["code"].as_str()), (403, Some("operator_only")), "{body}");

    // Cancel: the evidence ends in index_error in the same transaction, the custody entry
    // names the key and the request.
    let req = app.http.post(format!("{}/v1/jobs/{job}/cancel", app.base)).header("x-request-id", "cancel-1");
    let (status, cancelled) = app.send(req).await;
    assert_eq!((status, cancelled["state"].as_str()), (200, Some("cancelled")), "{cancelled}");
    let (_, evidence) = app.get(&format!("/v1/evidence/{id}")).await;
    assert_eq!(evidence["status"], "index_error");
    assert!(evidence["last_error"].as_str().unwrap().contains("cancelled by an operator"), "{evidence}");
    let (status, body) = app.post(&format!("/v1/jobs/{job}/cancel"), json!({})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("wrong_state")), "{body}");

    // Retry: queued again.
    let req = app.http.post(format!("{}/v1/jobs/{job}/retry", app.base)).header("x-request-id", "retry-1");
    let (status, retried) = app.send(req).await;
    assert_eq!((status, retried["state"].as_str(), retried["attempt"].as_i64()), (200, Some("available"), Some(0)));
    let (_, evidence) = app.get(&format!("/v1/evidence/{id}")).await;
    assert_eq!(evidence["status"], "queued");
    let entries = custody(&app.pool, &id).await;
    let by_key = |event: &str, request: &str| {
        entries.iter().any(|(e, kind, name, r)| {
            e == event && kind == "api_key" && name == "test admin" && r.as_deref() == Some(request)
        })
    };
    assert!(by_key("failed", "cancel-1") && by_key("reindexed", "retry-1"), "{entries:?}");

    // The operator sees the queue paused with the job waiting, and every tenant's jobs.
    let (status, queues) = app.send(operator.get(format!("{}/v1/queues", app.base))).await;
    assert_eq!(status, 200, "{queues}");
    let default = queues["items"].as_array().unwrap().iter().find(|q| q["queue"] == "default").cloned();
    let default = default.unwrap_or(Value::Null);
    assert_eq!((default["paused"].as_bool(), default["available"].as_i64()), (Some(true), Some(1)), "{queues}");
    let (_, all) = app.send(operator.get(format!("{}/v1/jobs?limit=1", app.base))).await;
    assert_eq!(all["items"][0]["id"].as_i64(), Some(job), "{all}");

    // Resumed, the worker runs it.
    let (status, resumed) = app.send(operator.post(format!("{}/v1/queues/default/resume", app.base))).await;
    assert_eq!((status, resumed["paused"].as_bool()), (200, Some(false)), "{resumed}");
    app.wait_status(&id, "indexed").await;
    let (_, done) = app.get(&format!("/v1/jobs/{job}")).await;
    assert_eq!(done["state"], "completed", "{done}");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn job_listings_page_by_id_and_refuse_bad_filters(pool: PgPool) {
    let app = TestApp::start(pool.clone(), with_operator()).await;
    let operator = app.client_for(OPERATOR, Role::Admin, None).await;
    assert_eq!(app.send(operator.post(format!("{}/v1/queues/default/pause", app.base))).await.0, 200);
    let mut jobs = Vec::new();
    for n in 0..3 {
        let id = app.upload(&samples::named(&format!("page{n}"), "interview-notes.txt"), json!({})).await;
        let (_, evidence) = app.get(&format!("/v1/evidence/{id}")).await;
        jobs.push(evidence["job_id"].as_i64().unwrap());
    }
    let (_, first) = app.get("/v1/jobs?limit=2").await;
    let ids =
        |page: &Value| page["items"].as_array().unwrap().iter().map(|j| j["id"].as_i64().unwrap()).collect::<Vec<_>>();
    assert_eq!(ids(&first), vec![jobs[2], jobs[1]], "{first}");
    let before = first["next_before"].as_i64().expect("a next page");
    let (_, second) = app.get(&format!("/v1/jobs?limit=2&before={before}")).await;
    assert_eq!(ids(&second), vec![jobs[0]]);
    assert!(second["next_before"].is_null(), "{second}");
    for (query, code) in [
        ("state=stuck", "invalid_request"),
        ("limit=0", "invalid_request"),
        ("limit=501", "invalid_request"),
        ("before=x", "invalid_request"),
    ] {
        let (status, body) = app.get(&format!("/v1/jobs?{query}")).await;
        assert_eq!((status, body["code"].as_str()), (422, Some(code)), "{query}: {body}");
    }
    let (status, body) = app.get("/v1/jobs/abc").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_id")), "{body}");
    let (status, body) = app.send(operator.post(format!("{}/v1/queues/%07bell/pause", app.base))).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid_request")), "{body}");
    app.stop().await;
}

//! The command-line client (`evidence`, in `tools/`) run as a process against the API and a
//! worker: a folder uploaded once, a second run that sends nothing, search, status and a
//! checked download.

use std::process::Output;

use evidence::{Role, samples};
use serde_json::Value;
use sqlx::PgPool;

use crate::support::{Options, TENANT, TestApp, binary, sha256_hex};

async fn evidence(app: &TestApp, key: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(binary("evidence"))
        .args(args)
        .env("EVIDENCE_API_URL", &app.base)
        .env("EVIDENCE_API_KEY", key)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run evidence")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The result column of the table's line for a file name.
fn result_of(stdout: &str, filename: &str) -> String {
    let line = stdout.lines().find(|l| l.split_whitespace().next().is_some_and(|f| f.ends_with(filename)));
    let line = line.unwrap_or_else(|| panic!("no line for {filename} in\n{stdout}"));
    line.split_whitespace().skip(2).collect::<Vec<_>>().join(" ")
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn the_uploader_sends_a_folder_once_and_tells_how_each_file_ended(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let key = app.key_for(TENANT, Role::Uploader, None).await;
    let dir = tempfile::tempdir().unwrap();
    let all = samples::all("cli");
    for (i, s) in all.iter().enumerate() {
        let folder = if i % 2 == 0 { dir.path().to_owned() } else { dir.path().join("nested").join("deeper") };
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(&s.filename), &s.bytes).unwrap();
    }
    // The same bytes as the first sample, under another name.
    std::fs::write(dir.path().join("zz-copy.bin"), &all[0].bytes).unwrap();
    let folder = dir.path().to_str().unwrap();

    let upload = ["upload", folder, "--case", "case-cli", "--custodian", "J. Doe", "--tag", "cli", "--wait"];
    let first = evidence(&app, &key, &upload).await;
    let stdout = text(&first.stdout);
    assert!(first.status.success(), "{stdout}\n{}", text(&first.stderr));
    for s in &all[1..] {
        assert_eq!(result_of(&stdout, &s.filename), "indexed", "{stdout}");
    }
    // Whichever of the two copies was indexed second is the duplicate.
    let mut copies = [result_of(&stdout, &all[0].filename), result_of(&stdout, "zz-copy.bin")];
    copies.sort();
    assert_eq!(copies, ["duplicate", "indexed"], "{stdout}");
    let files = all.len() + 1;
    assert!(stdout.contains(&format!("sent {files} files")), "{stdout}");
    // The files sent (their members, an archive's file and an e-mail's attachment, are the
    // worker's, made as they are read).
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws(' ', status, case_id, custodian, array_to_string(tags, ',')) FROM evidence
         WHERE parent_id IS NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows, vec!["indexed case-cli J. Doe cli"; files]);
    let declared: i64 =
        sqlx::query_scalar("SELECT count(*) FROM evidence WHERE declared_sha256 = sha256 AND parent_id IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(declared, files as i64, "every upload declared its sha256");

    // Again over the same folder: the same evidence, and no bytes sent.
    let second = evidence(&app, &key, &upload).await;
    let again = text(&second.stdout);
    assert!(second.status.success(), "{again}\n{}", text(&second.stderr));
    assert!(again.contains("sent 0 files"), "{again}");
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM evidence WHERE parent_id IS NULL").fetch_one(&pool).await.unwrap();
    assert_eq!(count, files as i64, "nothing created twice");
    let id_of = |out: &str, name: &str| {
        let line = out.lines().find(|l| l.split_whitespace().next().is_some_and(|f| f.ends_with(name))).unwrap();
        line.split_whitespace().nth(1).unwrap().to_owned()
    };
    let docx = all.iter().find(|s| s.filename.ends_with(".docx")).unwrap();
    assert_eq!(id_of(&stdout, &docx.filename), id_of(&again, &docx.filename));

    // Search, status and a download checked against the sha256, with a key that reads.
    let viewer = app.key_for(TENANT, Role::Viewer, None).await;
    // A container's members, made as the archive was indexed.
    let archive = all.iter().find(|s| s.filename.ends_with(".zip")).unwrap();
    let members = evidence(&app, &viewer, &["members", &id_of(&stdout, &archive.filename)]).await;
    let listed = text(&members.stdout);
    assert!(listed.trim_end().ends_with("1  statements/witness-statement-cli.txt"), "{listed}");
    assert!(text(&members.stderr).contains("1 member(s) of seized-archive.zip"), "{}", text(&members.stderr));
    let found = evidence(&app, &viewer, &["search", &docx.find_with, "--case", "case-cli"]).await;
    let hits = text(&found.stdout);
    assert!(hits.contains(&id_of(&stdout, &docx.filename)), "{hits}\n{}", text(&found.stderr));
    // Every hit, two a page, or one page of two.
    let every = evidence(&app, &viewer, &["search", "cli", "--case", "case-cli", "--all", "--limit", "2"]).await;
    let lines = text(&every.stdout).lines().count();
    assert!(lines > 4, "more than two pages: {}", text(&every.stdout));
    assert!(text(&every.stderr).contains(&format!("{lines} of {lines} hits")), "{}", text(&every.stderr));
    let first = evidence(&app, &viewer, &["search", "cli", "--case", "case-cli", "--limit", "2"]).await;
    assert_eq!(text(&first.stdout).lines().count(), 2);
    assert!(text(&first.stderr).contains(&format!("2 of {lines} hits")), "{}", text(&first.stderr));
    let status = evidence(&app, &key, &["status", &id_of(&stdout, &docx.filename)]).await;
    let view: Value = serde_json::from_slice(&status.stdout).expect("status prints the evidence as JSON");
    assert_eq!((view["status"].as_str(), view["custodian"].as_str()), (Some("indexed"), Some("J. Doe")));
    let elsewhere = tempfile::tempdir().unwrap();
    let out = elsewhere.path().join("downloaded.docx");
    let got =
        evidence(&app, &viewer, &["download", &id_of(&stdout, &docx.filename), "-o", out.to_str().unwrap()]).await;
    assert!(got.status.success(), "{}", text(&got.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), docx.bytes);

    // A file whose earlier upload expired unfinished (made so here): the next run creates it
    // anew under the next key of its sequence, and the run after finds that one.
    let photo = all.iter().find(|s| s.filename.ends_with(".png")).unwrap();
    sqlx::query("UPDATE evidence SET status = 'expired' WHERE filename = $1")
        .bind(&photo.filename)
        .execute(&pool)
        .await
        .unwrap();
    let third = text(&evidence(&app, &key, &upload).await.stdout);
    assert!(third.contains("sent 1 files"), "{third}");
    assert_ne!(id_of(&third, &photo.filename), id_of(&stdout, &photo.filename));
    let fourth = text(&evidence(&app, &key, &upload).await.stdout);
    assert!(fourth.contains("sent 0 files"), "{fourth}");
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM evidence WHERE parent_id IS NULL").fetch_one(&pool).await.unwrap();
    assert_eq!(count, files as i64 + 1);

    // A key that may not upload: every file fails with the API's reason, and the exit says so.
    let refused = evidence(&app, &viewer, &["upload", folder]).await;
    let table = text(&refused.stdout);
    assert_eq!(refused.status.code(), Some(1), "{table}");
    assert!(result_of(&table, &docx.filename).starts_with("failed: create: 403 role_not_allowed"), "{table}");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_file_larger_than_the_part_size_goes_up_in_parts_and_comes_back_the_same(pool: PgPool) {
    let part = 5u64 << 20;
    let app = TestApp::start(pool.clone(), Options { upload_part_bytes: part, ..Options::default() }).await;
    let key = app.key_for(TENANT, Role::Admin, None).await;
    let http = crate::support::client(&key);
    // 11 MiB and a few bytes of noise (no two parts alike): parts of 5, 5 and 1 MiB + 3 bytes.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..(11 << 20) + 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let sha256 = sha256_hex(&bytes);

    // By hand: three part URLs, a plain complete is refused, and parts out of order are refused.
    let body = serde_json::json!({"filename": "image.dd", "content_type": "application/octet-stream",
        "size_bytes": bytes.len(), "sha256": sha256});
    let (status, created) = app.send(http.post(format!("{}/v1/evidence", app.base)).json(&body)).await;
    assert_eq!(status, 201, "{created}");
    assert!(created["upload"].is_null(), "{created}");
    let multipart = &created["multipart_upload"];
    assert_eq!(multipart["part_size_bytes"], part);
    let parts = multipart["parts"].as_array().unwrap();
    assert_eq!(parts.iter().map(|p| p["part_number"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(parts[2]["headers"]["content-length"], ((1 << 20) + 3).to_string());
    let id = created["evidence"]["id"].as_str().unwrap().to_owned();
    let (status, refused) = app.send(http.post(format!("{}/v1/evidence/{id}/complete", app.base))).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("parts_required")), "{refused}");
    let shuffled =
        serde_json::json!({"parts": [{"part_number": 2, "etag": "\"a\""}, {"part_number": 1, "etag": "\"b\""}]});
    let url = format!("{}/v1/evidence/{id}/complete-multipart", app.base);
    let (status, refused) = app.send(http.post(&url).json(&shuffled)).await;
    assert_eq!((status, refused["code"].as_str()), (422, Some("parts_rejected")), "{refused}");
    // A part longer than its URL admits is refused by the store.
    let too_long = app.plain.put(parts[2]["url"].as_str().unwrap()).body(vec![0u8; (1 << 20) + 4]);
    assert!(too_long.send().await.map(|r| !r.status().is_success()).unwrap_or(true));

    // The uploader: parts, complete-multipart, indexed, and the download is the same bytes.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("image.dd");
    std::fs::write(&file, &bytes).unwrap();
    let up = evidence(&app, &key, &["upload", file.to_str().unwrap(), "--wait"]).await;
    let stdout = text(&up.stdout);
    assert!(up.status.success(), "{stdout}\n{}", text(&up.stderr));
    assert_eq!(result_of(&stdout, "image.dd"), "indexed", "{stdout}");
    let (uploaded, part_bytes): (Option<String>, Option<i64>) = sqlx::query_as(
        "SELECT sha256, upload_part_bytes FROM evidence WHERE status = 'indexed' AND upload_id IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((uploaded.as_deref(), part_bytes), (Some(sha256.as_str()), Some(part as i64)));
    let out = dir.path().join("back.dd");
    let indexed: String =
        sqlx::query_scalar("SELECT id::text FROM evidence WHERE status = 'indexed'").fetch_one(&pool).await.unwrap();
    let got = evidence(&app, &key, &["download", &indexed, "-o", out.to_str().unwrap()]).await;
    assert!(got.status.success(), "{}", text(&got.stderr));
    assert!(std::fs::read(&out).unwrap() == bytes, "the download differs from the upload");
    app.stop().await;
}

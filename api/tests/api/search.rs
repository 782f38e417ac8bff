//! Search matches each evidence as a whole: words in different chunks of its text, or in its
//! metadata, satisfy one query together; an excluded word anywhere in it excludes it; phrases
//! across a chunk cut, prefixes, and queries with nothing to search for.

use std::time::Duration;

use evidence::SearchLimits;
use evidence::samples::Sample;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{Options, TENANT, TestApp};

fn text(filename: &str, body: String) -> Sample {
    Sample {
        filename: filename.into(),
        content_type: "text/plain".into(),
        bytes: body.into_bytes(),
        find_with: String::new(),
        has_text: true,
    }
}

/// Words that no query of these tests asks for, `bytes` of them or a little more.
fn filler(bytes: usize) -> String {
    let words = "the auditor reviewed ledger entries for the quarter and signed each page ";
    words.repeat(bytes / words.len() + 1)
}

async fn search(app: &TestApp, q: &str) -> (u16, Value) {
    app.send(app.http.get(format!("{}/v1/search", app.base)).query(&[("q", q)])).await
}

/// The ids that `q` finds, best first.
async fn found(app: &TestApp, q: &str) -> Vec<String> {
    let (status, body) = search(app, q).await;
    assert_eq!(status, 200, "{q}: {body}");
    body["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_owned()).collect()
}

async fn indexed(app: &TestApp, sample: &Sample) -> String {
    let id = app.upload(sample, json!({})).await;
    app.wait_status(&id, "indexed").await;
    id
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn words_in_different_chunks_are_found_and_excluded_together(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    // About 40 KB: chunks of 8 KiB put each marked word in a chunk of its own.
    let transcript = indexed(
        &app,
        &text(
            "transcript.txt",
            format!("zeppelin {} the witness mentioned the hangar {} kangaroo", filler(20_000), filler(20_000)),
        ),
    )
    .await;
    let memo = indexed(&app, &text("memo.txt", format!("the witness mentioned the hangar {}", filler(500)))).await;

    assert_eq!(found(&app, "zeppelin kangaroo").await, [transcript.as_str()], "each word is in another chunk");
    assert_eq!(found(&app, "zeppelin hangar kangaroo").await, [transcript.as_str()]);
    assert_eq!(
        found(&app, r#""witness mentioned" -kangaroo"#).await,
        [memo.as_str()],
        "the excluded word is in another chunk"
    );
    assert_eq!(found(&app, "zeppelin -hangar").await, Vec::<String>::new());
    assert_eq!(found(&app, "kangaroo or memo").await.len(), 2, "either is enough");
    let mut both = found(&app, r#""witness mentioned""#).await;
    both.sort();
    let mut want = vec![transcript.clone(), memo.clone()];
    want.sort();
    assert_eq!(both, want);

    // Prefixes, alone and with words, across chunks too.
    assert_eq!(found(&app, "kanga*").await, [transcript.as_str()]);
    assert_eq!(found(&app, "zeppel* -kang*").await, Vec::<String>::new());
    assert_eq!(found(&app, "hang* -zep*").await, [memo.as_str()]);

    // The snippet comes from a chunk that matches, with the words marked.
    let (_, body) = search(&app, "zeppelin kangaroo").await;
    let snippet = body["hits"][0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("«zeppelin»") || snippet.contains("«kangaroo»"), "{snippet}");
    assert_eq!(body["hits"][0]["matched_text"], true);
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn an_excluded_word_in_the_metadata_excludes_and_the_body_outranks_the_filename(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let deck = indexed(&app, &text("incident-passwords-deck.txt", "incident review of the outage".into())).await;
    let notes = indexed(&app, &text("notes.txt", "incident timeline; the vault was opened at noon".into())).await;
    let vault = indexed(&app, &text("vault.txt", "an inventory of the room".into())).await;

    assert_eq!(found(&app, "incident -passwords").await, [notes.as_str()], "the filename holds the excluded word");
    assert_eq!(found(&app, "passwords").await, [deck.as_str()]);
    let (_, body) = search(&app, "passwords").await;
    assert_eq!((body["hits"][0]["matched_text"].as_bool(), &body["hits"][0]["snippet"]), (Some(false), &Value::Null));
    // A word required in the text and one in the filename: found together.
    assert_eq!(found(&app, "inventory vault").await, [vault.as_str()]);
    assert_eq!(found(&app, "vault").await, [notes, vault], "a match in the text ranks above one in the filename");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_phrase_across_a_chunk_cut_is_found(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    // Chunks are cut at the last space before byte 8,192: "amber" fills bytes 8,185 to 8,189
    // and "falcon" starts at 8,191, so the cut falls between them.
    let mut body = filler(8_100);
    body.truncate(8_100);
    body = format!("{body}{} amber falcon {}", "x".repeat(8_185 - body.len() - 1), filler(4_000));
    assert_eq!(body.find("amber falcon"), Some(8_185));
    let id = indexed(&app, &text("report.txt", body)).await;
    assert_eq!(found(&app, r#""amber falcon""#).await, [id]);
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_query_with_nothing_to_search_for_is_refused_and_says_why(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let id = indexed(&app, &text("notes.txt", "the courier left the parcel".into())).await;
    for q in ["the of and", r#""to be" or not"#, "... !!", r#""""#, "-courier", "-courier -the"] {
        let (status, err) = search(&app, q).await;
        assert_eq!((status, err["code"].as_str()), (422, Some("query_empty")), "{q}: {err}");
    }
    let (_, err) = search(&app, "the of").await;
    let want =
        r#"the query has nothing to search for: "the", "of": words this common, and punctuation, are not indexed"#;
    assert_eq!(err["message"], want);
    let (_, err) = search(&app, "-courier").await;
    assert!(err["message"].as_str().unwrap().contains("only excludes"), "{err}");
    // Stop words beside a real word are dropped, not fatal.
    assert_eq!(found(&app, "the courier").await, [id.as_str()]);
    assert_eq!(found(&app, "courier -the").await, [id]);
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn results_carry_a_total_and_page_by_cursor_in_rank_order(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    // Ranks differ with the number of times the word occurs; two tie, and order by age then id.
    let mut ids = Vec::new();
    for (n, times) in [1, 3, 2, 2, 5].into_iter().enumerate() {
        ids.push(indexed(&app, &text(&format!("parcel-{n}.txt"), "courier ".repeat(times) + &filler(200))).await);
    }
    let get = |query: Vec<(&'static str, String)>| {
        let req = app.http.get(format!("{}/v1/search", app.base)).query(&query);
        app.send(req)
    };
    let (status, all) = get(vec![("q", "courier".into())]).await;
    assert_eq!((status, all["total"].as_i64(), all["next_cursor"].as_str()), (200, Some(5), None), "{all}");
    let best_first: Vec<&str> = all["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!((best_first[0], best_first[4]), (ids[4].as_str(), ids[0].as_str()), "{all}");

    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let mut query = vec![("q", "courier".to_owned()), ("limit", "2".to_owned())];
        query.extend(cursor.clone().map(|c| ("cursor", c)));
        let (status, page) = get(query).await;
        assert_eq!((status, page["total"].as_i64()), (200, Some(5)), "{page}");
        paged.extend(page["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_owned()));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(paged, best_first, "pages of two, in order, make the one page of all");

    // Past the last hit the page is empty and the total still counts them all.
    let past = format!("0_0_{}", uuid::Uuid::nil());
    let (status, page) = get(vec![("q", "courier".into()), ("cursor", past)]).await;
    assert_eq!(
        (status, page["total"].as_i64(), page["hits"].as_array().map(Vec::len)),
        (200, Some(5), Some(0)),
        "{page}"
    );
    let nan = format!("4294967295_0_{}", uuid::Uuid::nil());
    let (status, err) = get(vec![("q", "courier".into()), ("cursor", nan)]).await;
    assert_eq!((status, err["code"].as_str()), (400, Some("bad_cursor")), "{err}");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn past_its_bound_a_search_ranks_the_first_hits_found_and_says_there_are_more(pool: PgPool) {
    let searches = SearchLimits::new(4, Duration::from_secs(5), 3);
    let app = TestApp::start(pool, Options { searches, ..Options::default() }).await;
    // Five hold `courier` in their text, the first three `satchel` too; one has `courier` in
    // its filename only.
    let mut ids = Vec::new();
    for n in 0..5 {
        let satchel = if n < 3 { "satchel " } else { "" };
        ids.push(indexed(&app, &text(&format!("parcel-{n}.txt"), format!("courier {satchel}{}", filler(200)))).await);
    }
    let named = indexed(&app, &text("courier-route.txt", filler(200))).await;
    let total = |body: &Value| (body["total"].as_i64(), body["total_exact"].as_bool());

    // Six match, three are counted and ranked: a metadata match among them (found first).
    let (status, body) = search(&app, "courier").await;
    assert_eq!((status, total(&body)), (200, (Some(3), Some(false))), "{body}");
    let hits: Vec<&str> = body["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(hits.len(), 3, "{body}");
    assert!(hits.contains(&named.as_str()), "{body}");
    let faceted: i64 = body["facets"]["type"].as_array().unwrap().iter().map(|f| f["count"].as_i64().unwrap()).sum();
    assert_eq!(faceted, 3, "facets count the hits counted: {body}");
    // Pages of two make the same three.
    let req = app.http.get(format!("{}/v1/search", app.base)).query(&[("q", "courier"), ("limit", "2")]);
    let (_, first) = app.send(req).await;
    let cursor = first["next_cursor"].as_str().expect("a second page").to_owned();
    let req =
        app.http.get(format!("{}/v1/search", app.base)).query(&[("q", "courier"), ("limit", "2"), ("cursor", &cursor)]);
    let (_, second) = app.send(req).await;
    let paged: Vec<&str> = [&first, &second]
        .iter()
        .flat_map(|p| p["hits"].as_array().unwrap())
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!((paged, total(&second)), (hits.clone(), (Some(3), Some(false))), "{second}");

    // Exactly the bound is exact; so are fewer, whichever clause leads.
    for (q, want) in [
        ("satchel", &ids[..3]),
        ("courier satchel", &ids[..3]),
        ("satchel courier", &ids[..3]),
        ("courier -satchel", &[ids[3].clone(), ids[4].clone(), named.clone()][..]),
        ("route", &[named.clone()][..]),
    ] {
        let (status, body) = search(&app, q).await;
        assert_eq!((status, total(&body)), (200, (Some(want.len() as i64), Some(true))), "{q}: {body}");
        let mut hits: Vec<&str> = body["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap()).collect();
        let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
        hits.sort_unstable();
        want.sort_unstable();
        assert_eq!(hits, want, "{q}");
    }
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn past_its_bound_a_search_reads_more_of_the_index_until_it_has_enough(pool: PgPool) {
    let searches = SearchLimits::new(4, Duration::from_secs(5), 1);
    let app = TestApp::start(pool, Options { searches, ..Options::default() }).await;
    // Six files with `courier` and `satchel` first, then two with `courier` alone (the second
    // in case c9): the first chunks the index gives for `courier` are all excluded by `satchel`.
    for n in 0..6 {
        indexed(&app, &text(&format!("bag-{n}.txt"), format!("courier satchel {n} {}", filler(200)))).await;
    }
    let alone = indexed(&app, &text("alone.txt", format!("courier {}", filler(300)))).await;
    let sample = text("c9.txt", format!("courier {}", filler(400)));
    let in_c9 = app.upload(&sample, json!({"case_id": "c9"})).await;
    app.wait_status(&in_c9, "indexed").await;
    let (status, body) = search(&app, "courier -satchel").await;
    let total = (body["total"].as_i64(), body["total_exact"].as_bool());
    assert_eq!((status, total), (200, (Some(1), Some(false))), "{body}");
    let hit = body["hits"][0]["id"].as_str().unwrap_or_default();
    assert!(hit == alone || hit == in_c9, "{body}");
    // Narrowed to a case, found through its text.
    let req = app.http.get(format!("{}/v1/search", app.base)).query(&[("q", "courier"), ("case_id", "c9")]);
    let (status, body) = app.send(req).await;
    assert_eq!(
        (status, body["hits"][0]["id"].as_str(), body["total_exact"].as_bool()),
        (200, Some(in_c9.as_str()), Some(true)),
        "{body}"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_case_of_few_evidence_against_a_common_word_is_read_newest_first(pool: PgPool) {
    let searches = SearchLimits::new(4, Duration::from_secs(5), 3);
    let app = TestApp::start(pool, Options { searches, ..Options::default() }).await;
    // `courier` in every chunk of a long file of case c2 (about 100 chunks), and in four short
    // ones of case c1, uploaded one after the other; a fifth of c1 lacks it.
    let long = "courier ".to_owned() + &filler(4000);
    let big = app.upload(&text("big.txt", long.repeat(200)), json!({"case_id": "c2"})).await;
    let mut c1 = Vec::new();
    for n in 0..4 {
        let sample = text(&format!("note-{n}.txt"), format!("courier {n} {}", filler(200)));
        let id = app.upload(&sample, json!({"case_id": "c1"})).await;
        app.wait_status(&id, "indexed").await;
        c1.push(id);
    }
    let other = app.upload(&text("other.txt", filler(300)), json!({"case_id": "c1"})).await;
    app.wait_status(&other, "indexed").await;
    app.wait_status(&big, "indexed").await;
    let search = |q: &'static str, case: &'static str| {
        let req = app.http.get(format!("{}/v1/search", app.base)).query(&[("q", q), ("case_id", case)]);
        app.send(req)
    };
    let ids = |body: &Value| -> Vec<String> {
        let mut ids: Vec<String> =
            body["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_owned()).collect();
        ids.sort_unstable();
        ids
    };
    // Five evidence in c1 against a word in over a hundred chunks: the case is read, newest
    // first, and the bound keeps the three newest.
    let (status, body) = search("courier", "c1").await;
    let mut newest = c1[1..].to_vec();
    newest.sort_unstable();
    assert_eq!((status, body["total"].as_i64(), body["total_exact"].as_bool()), (200, Some(3), Some(false)), "{body}");
    assert_eq!(ids(&body), newest, "{body}");
    // All of a case within the bound, with another clause each way.
    let (status, body) = search("courier 2", "c1").await;
    assert_eq!((status, ids(&body), body["total_exact"].as_bool()), (200, vec![c1[2].clone()], Some(true)), "{body}");
    let (status, body) = search("courier", "c2").await;
    assert_eq!((status, ids(&body), body["total_exact"].as_bool()), (200, vec![big.clone()], Some(true)), "{body}");
    let (status, body) = search("auditor -courier", "c1").await;
    assert_eq!((status, ids(&body)), (200, vec![other]), "{body}");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn the_index_lookup_past_row_security_finds_only_the_tenant_the_transaction_set(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    let id = indexed(&app, &text("notes.txt", "the courier left the parcel".into())).await;
    // As the application role: no tenant set, another tenant, the evidence's own.
    for (tenant, want) in [(None, vec![]), (Some("someone-else"), vec![]), (Some(TENANT), vec![id])] {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SET LOCAL ROLE evidence_app").execute(&mut *tx).await.unwrap();
        if let Some(tenant) = tenant {
            sqlx::query("SELECT set_config('app.tenant_id', $1, true)").bind(tenant).execute(&mut *tx).await.unwrap();
        }
        let found: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT evidence_id FROM search_matches('{courier}', '{false}', NULL, NULL, NULL, NULL, 10)",
        )
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        let found: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(found, want, "tenant {tenant:?}");
    }
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn identifiers_and_hashes_match_whole(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let sha256 = "b976db55456267e414a317518b7e72301a6886d14737fe1a3ea16caed701cac0";
    let md5 = "9e107d9d372bb6826bd81d3542a419d6";
    let sha1 = "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12";
    let body = format!(
        "Mail from john.doe@example.com at 10.20.30.40 about ticket INV-2024-0042.\n\
         Attachment sha256 {sha256}, md5 {md5}, sha1 {sha1}; see https://portal.example.org/case/7"
    );
    let id = indexed(&app, &text("mail-log.txt", body)).await;
    for q in ["john.doe@example.com", "10.20.30.40", "INV-2024-0042", sha256, md5, sha1, "portal.example.org"] {
        assert_eq!(found(&app, q).await, [id.as_str()], "{q}");
    }
    // A part of one is not the whole: another address, another host, another ticket, a hash cut short.
    for q in ["jane.doe@example.com", "10.20.30.41", "INV-2024-0043", &sha256[..40], "example.org"] {
        assert!(found(&app, q).await.is_empty(), "{q}");
    }
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_file_is_found_by_its_name_with_or_without_the_extension(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let invoice = indexed(&app, &text("INV-2024-0042.txt", filler(300))).await;
    let parcel = indexed(&app, &text("parcel-4.csv", filler(300))).await;
    let backup = indexed(&app, &text("backup-2024.tar.gz", filler(300))).await;
    for (q, id) in [
        ("INV-2024-0042", &invoice),
        ("INV-2024-0042.txt", &invoice),
        ("parcel-4", &parcel),
        ("parcel-4.csv", &parcel),
        ("backup-2024", &backup),
        ("backup-2024.tar.gz", &backup),
    ] {
        assert_eq!(found(&app, q).await, [id.as_str()], "{q}");
    }
    for q in ["INV-2024-0043", "parcel-5", "backup-2025"] {
        assert!(found(&app, q).await.is_empty(), "{q}");
    }
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_run_of_japanese_or_chinese_is_found_by_any_part_of_it(pool: PgPool) {
    let app = TestApp::start(pool.clone(), Options::default()).await;
    // Written without spaces, as these scripts are; the last run is past the 2 KiB a word of
    // the text search parser may have, with the words asked for in its middle.
    let long_run = format!("{}押収令状{}", "証拠".repeat(600), "物件".repeat(600));
    let body = format!("東京地方裁判所は証拠物件の押収を命じた。证人证词：查获笔记本电脑。\n{long_run}\n");
    let ja = indexed(&app, &text("order.txt", body)).await;
    let other = indexed(&app, &text("other.txt", "京都の天気。".to_owned())).await;
    for q in ["裁判所", "地方裁判", "押収", "笔记本", "押収令状", "東京*", "押", "\"証拠物件\""]
    {
        assert_eq!(found(&app, q).await, vec![ja.clone()], "{q}");
    }
    // Characters of the text that do not follow each other there are not a match.
    for q in ["京都", "裁判地方"] {
        assert!(!found(&app, q).await.contains(&ja), "{q}");
    }
    assert_eq!(found(&app, "京都").await, vec![other]);
    // Text indexed before runs were cut into pairs (extractor version 1) is still found by a
    // whole run until it is read again.
    sqlx::query("UPDATE content_chunk SET tsv = to_tsvector('english', body)").execute(&pool).await.unwrap();
    assert_eq!(found(&app, "東京地方裁判所は証拠物件の押収を命じた").await, vec![ja.clone()]);
    // Filenames and descriptions too.
    let named =
        app.upload(&text("大阪支店の監査報告.txt", "audit".to_owned()), json!({"description": "経理部の調査"})).await;
    app.wait_status(&named, "indexed").await;
    for q in ["監査", "支店", "経理"] {
        assert_eq!(found(&app, q).await, vec![named.clone()], "{q}");
    }
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn a_hit_in_a_pdf_says_which_page_its_snippet_is_on(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let pdf = Sample {
        filename: "deposition.pdf".into(),
        content_type: "application/pdf".into(),
        bytes: evidence::samples::pdf_pages(&[
            "Exhibit cover sheet",
            "Testimony of the harbour master",
            "Seal of Quentara county",
        ]),
        find_with: String::new(),
        has_text: true,
    };
    let id = indexed(&app, &pdf).await;
    let notes = indexed(&app, &text("notes.txt", "the harbour master again".to_owned())).await;
    for (q, page) in [("exhibit cover", 1), ("harbour master", 2), ("Quentara", 3)] {
        let (_, body) = search(&app, q).await;
        let hit = body["hits"].as_array().unwrap().iter().find(|h| h["id"] == id.as_str()).cloned();
        let hit = hit.unwrap_or_else(|| panic!("{q}: {body}"));
        assert_eq!(hit["page"], page, "{q}: {hit}");
        assert!(!hit["snippet"].as_str().unwrap().contains('\u{c}'), "{hit}");
    }
    let (_, body) = search(&app, "harbour master").await;
    let text_hit = body["hits"].as_array().unwrap().iter().find(|h| h["id"] == notes.as_str()).cloned().unwrap();
    assert!(text_hit.get("page").is_none(), "text without pages has none: {text_hit}");
    app.stop().await;
}

#[sqlx::test(migrator = "evidence::MIGRATOR")]
async fn facets_count_every_hit_by_case_type_and_tag(pool: PgPool) {
    let app = TestApp::start(pool, Options::default()).await;
    let upload = |name: &'static str, case: &'static str, tags: &'static [&'static str], custodian: &'static str| {
        let sample = text(name, format!("the courier signed for parcel {name}"));
        let app = &app;
        async move {
            let id = app.upload(&sample, json!({"case_id": case, "tags": tags, "custodian": custodian})).await;
            app.wait_status(&id, "indexed").await;
        }
    };
    upload("a.txt", "c1", &["seized", "phone"], "J. Smith").await;
    upload("b.txt", "c1", &["seized"], "J. Smith").await;
    upload("c.csv", "c2", &[], "A. Jones").await;
    upload("d.txt", "c3", &["phone"], "J. Smith").await;
    let pairs = |v: &Value| -> Vec<(String, i64)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|f| (f["value"].as_str().unwrap().to_owned(), f["count"].as_i64().unwrap()))
            .collect()
    };
    let owned = |v: &[(&str, i64)]| -> Vec<(String, i64)> { v.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect() };
    // A page of one: the facets still count all four hits.
    let (status, body) =
        app.send(app.http.get(format!("{}/v1/search", app.base)).query(&[("q", "courier"), ("limit", "1")])).await;
    assert_eq!((status, body["total"].as_i64()), (200, Some(4)), "{body}");
    let facets = &body["facets"];
    assert_eq!(pairs(&facets["case_id"]), owned(&[("c1", 2), ("c2", 1), ("c3", 1)]), "{facets}");
    assert_eq!(pairs(&facets["type"]), owned(&[("text/plain", 3), ("text/csv", 1)]), "{facets}");
    assert_eq!(pairs(&facets["tag"]), owned(&[("phone", 2), ("seized", 2)]), "{facets}");
    assert_eq!(pairs(&facets["custodian"]), owned(&[("J. Smith", 3), ("A. Jones", 1)]), "{facets}");
    // Filters narrow them; an exclusion too.
    let (_, body) = search(&app, "courier -seized").await;
    assert_eq!(pairs(&body["facets"]["case_id"]), owned(&[("c2", 1), ("c3", 1)]), "{body}");
    let (_, body) =
        app.send(app.http.get(format!("{}/v1/search", app.base)).query(&[("q", "courier"), ("case_id", "c1")])).await;
    assert_eq!(pairs(&body["facets"]["tag"]), owned(&[("seized", 2), ("phone", 1)]), "{body}");
    app.stop().await;
}

//! Search benchmark, run by `scripts/bench-search` against a running api: loads documents of
//! generated text straight into the evidence tables (cut and indexed as the worker does), then
//! times `GET /v1/search` for several query shapes, with and without a case filter.
//!
//! The generator: words drawn from a vocabulary of 65,536 made-up words (four syllables each,
//! no English stop words) with Zipf frequencies (exponent 1, the first word about 9 % of all
//! words), a line break every 12 words or so. Sizes: 90 % of documents log-uniform from 1 to
//! 8 KiB, 9 % from 8 to 128 KiB, 1 % from 128 KiB to 1 MiB (11 KiB on average: about 1.1 GB
//! for 100,000). Planted words, each at a random place unless said: `quorvant` in 2.5 % of the
//! documents (the rare word), `ostrelin` at the start of 2 % and `vendaqui` at the end of 2 %
//! (both in 0.04 %: the two words in different chunks of a long document), and the phrase of
//! vocabulary words 5 and 6 in 1 %. Every document is in one of 100 cases, `case-0` to
//! `case-99`. The same BENCH_SEARCH_SEED makes the same documents (two loaders, each with a
//! seed of its own).
//!
//! Prints figures; asserts nothing. BENCH_SEARCH_DOCS (100000), BENCH_SEARCH_RUNS (30 per
//! shape), BENCH_SEARCH_SEED (1), BENCH_SEARCH_TENANT (bench), BENCH_SEARCH_LOAD (true; false
//! searches what the last run loaded), DEMO_API_URL, EVIDENCE_API_KEY, DATABASE_URL (the
//! owner's: the load writes every tenant's tables directly).

use std::time::{Duration, Instant};

use anyhow::ensure;
use evidence::extract::{INDEX_CHUNKING, chunks};
use serde_json::Value;
use sqlx::PgPool;
use tools::config::{api_key, database_url, demo_api_url, first_set, var_or};
use tools::percentile;

const SYLLABLES: [&str; 16] =
    ["ka", "lo", "mi", "ne", "ru", "ta", "vi", "so", "de", "fa", "gu", "pe", "zo", "ba", "chi", "ro"];
const CASES: u64 = 100;
const BATCH: usize = 100;

/// splitmix64: small, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

fn word(rank: usize) -> String {
    (0..4).map(|i| SYLLABLES[(rank >> (4 * i)) & 15]).collect()
}

struct Generator {
    vocabulary: Vec<String>,
    /// Cumulative Zipf weights, for drawing a rank by binary search.
    cumulative: Vec<f64>,
}

impl Generator {
    fn new() -> Self {
        let vocabulary: Vec<String> = (0..1 << 16).map(word).collect();
        let mut sum = 0.0;
        let cumulative = (1..=vocabulary.len())
            .map(|r| {
                sum += 1.0 / r as f64;
                sum
            })
            .collect();
        Generator { vocabulary, cumulative }
    }

    fn size(rng: &mut Rng) -> usize {
        let (lo, hi): (f64, f64) = match rng.unit() {
            u if u < 0.90 => (1024.0, 8192.0),
            u if u < 0.99 => (8192.0, 131_072.0),
            _ => (131_072.0, 1_048_576.0),
        };
        (lo * (hi / lo).powf(rng.unit())) as usize
    }

    fn document(&self, rng: &mut Rng) -> String {
        let size = Self::size(rng);
        let total = *self.cumulative.last().unwrap_or(&1.0);
        let mut text = String::with_capacity(size + 64);
        if rng.chance(0.02) {
            text.push_str("ostrelin ");
        }
        let mut rare_at = rng.chance(0.025).then(|| (rng.unit() * size as f64) as usize);
        let mut phrase_at = rng.chance(0.01).then(|| (rng.unit() * size as f64) as usize);
        let mut n = 0u32;
        while text.len() < size {
            let draw = rng.unit() * total;
            let r = self.cumulative.partition_point(|&c| c < draw);
            text.push_str(&self.vocabulary[r.min(self.vocabulary.len() - 1)]);
            n += 1;
            text.push(if n.is_multiple_of(12) { '\n' } else { ' ' });
            if rare_at.is_some_and(|at| text.len() >= at) {
                text.push_str("quorvant ");
                rare_at = None;
            }
            if phrase_at.is_some_and(|at| text.len() >= at) {
                text.push_str(&self.phrase());
                text.push(' ');
                phrase_at = None;
            }
        }
        if rng.chance(0.02) {
            text.push_str(" vendaqui");
        }
        text
    }

    fn phrase(&self) -> String {
        format!("{} {}", self.vocabulary[5], self.vocabulary[6])
    }
}

/// Write documents `from..to` of `tenant`, `BATCH` per transaction: content, chunks, evidence.
async fn load(pool: &PgPool, tenant: &str, from: usize, to: usize, seed: u64) -> anyhow::Result<u64> {
    let generator = Generator::new();
    let mut rng = Rng(seed);
    let mut bytes = 0u64;
    let mut n = from;
    while n < to {
        let batch = BATCH.min(to - n);
        let texts: Vec<String> = (0..batch).map(|_| generator.document(&mut rng)).collect();
        bytes += texts.iter().map(|t| t.len() as u64).sum::<u64>();
        let ids: Vec<uuid::Uuid> = (0..batch).map(|_| uuid::Uuid::new_v4()).collect();
        // Not the bytes' real hashes: the load writes no objects, and search reads none.
        let shas: Vec<String> = ids.iter().map(|id| format!("{0}{0}", id.simple())).collect();
        let sizes: Vec<i64> = texts.iter().map(|t| t.len() as i64).collect();
        let cases: Vec<String> = (0..batch).map(|_| format!("case-{}", rng.next() % CASES)).collect();
        let names: Vec<String> = (n..n + batch).map(|i| format!("document-{i}.txt")).collect();
        let (mut chunk_sha, mut chunk_seq, mut chunk_body) = (Vec::new(), Vec::new(), Vec::new());
        for (sha, text) in shas.iter().zip(&texts) {
            for (seq, body) in chunks(text, INDEX_CHUNKING).into_iter().enumerate() {
                chunk_sha.push(sha.as_str());
                chunk_seq.push(seq as i32);
                chunk_body.push(body);
            }
        }
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO content (tenant_id, sha256, size_bytes, media_type, extractor, text_bytes)
             SELECT $1, s, z, 'text/plain', 'text', z FROM unnest($2::text[], $3::int8[]) AS t(s, z)",
        )
        .bind(tenant)
        .bind(&shas)
        .bind(&sizes)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO content_chunk (tenant_id, sha256, seq, body, tsv)
             SELECT $1, s, q, b, to_tsvector('english', b) FROM unnest($2::text[], $3::int4[], $4::text[]) AS t(s, q, b)",
        )
        .bind(tenant)
        .bind(&chunk_sha)
        .bind(&chunk_seq)
        .bind(&chunk_body)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO evidence (id, tenant_id, filename, content_type, size_bytes, case_id, status, object_key,
                                   sha256, stored_key, meta_tsv)
             SELECT i, $1, f, 'text/plain', z, c, 'indexed', $1 || '/uploads/' || i::text, s, $1 || '/content/' || s,
                    to_tsvector('english', f || ' ' || regexp_replace(f, '[^[:alnum:]]+', ' ', 'g'))
             FROM unnest($2::uuid[], $3::text[], $4::int8[], $5::text[], $6::text[]) AS t(i, s, z, c, f)",
        )
        .bind(tenant)
        .bind(&ids)
        .bind(&shas)
        .bind(&sizes)
        .bind(&cases)
        .bind(&names)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        n += batch;
        if (n - from).is_multiple_of(10_000) {
            eprintln!("bench-search: {} documents of {from}..{to} loaded", n - from);
        }
    }
    Ok(bytes)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = demo_api_url();
    let docs: usize = var_or("BENCH_SEARCH_DOCS", 100_000);
    let runs: usize = var_or("BENCH_SEARCH_RUNS", 30);
    let seed: u64 = var_or("BENCH_SEARCH_SEED", 1);
    let tenant = first_set(&["BENCH_SEARCH_TENANT"]).unwrap_or_else(|| "bench".into());
    let pool = PgPool::connect(&database_url()?).await?;
    let (http, _) = tools::clients(&api_key()?, Duration::from_secs(120))?;

    if var_or("BENCH_SEARCH_LOAD", true) {
        load_all(&pool, &tenant, docs, seed).await?;
    } else {
        eprintln!("bench-search: BENCH_SEARCH_LOAD=false: searching the documents loaded before");
    }
    search_all(&base, &http, runs).await
}

/// `docs` documents in two loaders (Postgres's to_tsvector is the cost), each with its own seed;
/// then the statistics, and what the load took.
async fn load_all(pool: &PgPool, tenant: &str, docs: usize, seed: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let half = docs / 2;
    let loaders = [(0, half, seed), (half, docs, seed ^ 0x5eed)].map(|(from, to, seed)| {
        let (pool, tenant) = (pool.clone(), tenant.to_owned());
        tokio::spawn(async move { load(&pool, &tenant, from, to, seed).await })
    });
    let mut bytes = 0;
    for loader in loaders {
        bytes += loader.await??;
    }
    let load_secs = started.elapsed().as_secs_f64();
    // Autovacuum may be off: the planner gets its statistics here, and GIN its pending list merged.
    for table in ["content_chunk", "evidence", "content"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}"))).execute(pool).await?;
    }
    let (chunks, index_bytes, table_bytes): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM content_chunk),
                pg_relation_size('content_chunk_tsv_idx') + pg_relation_size('evidence_meta_tsv_idx'),
                pg_total_relation_size('content_chunk')",
    )
    .fetch_one(pool)
    .await?;
    println!(
        "loaded {docs} documents, {:.0} MB of text, {chunks} chunks, in {load_secs:.0} s ({:.1} MB/s); \
         GIN indexes {:.0} MB, content_chunk with its indexes and TOAST {:.0} MB",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / load_secs,
        index_bytes as f64 / 1e6,
        table_bytes as f64 / 1e6,
    );
    Ok(())
}

/// p50/p95/p99 of `runs` searches of each shape, with and without a case filter.
async fn search_all(base: &str, http: &reqwest::Client, runs: usize) -> anyhow::Result<()> {
    let g = Generator::new();
    let common = g.vocabulary[0].clone();
    let prefix: String = "quorv*".into();
    let shapes = [
        ("one rare word", "quorvant".to_owned()),
        ("one common word", common.clone()),
        ("two words in different chunks", "ostrelin vendaqui".to_owned()),
        ("a phrase", format!("\"{}\"", g.phrase())),
        ("a negation", "quorvant -ostrelin".to_owned()),
        ("a prefix", prefix),
    ];
    println!("{:<32} {:>8} {:>8} {:>8} {:>8} {:>8}", "query", "case", "total", "p50 ms", "p95 ms", "p99 ms");
    for (name, q) in &shapes {
        for case in [None, Some("case-7")] {
            let mut query = vec![("q", q.as_str())];
            query.extend(case.map(|c| ("case_id", c)));
            let mut ms = Vec::with_capacity(runs);
            let mut total = String::new();
            for _ in 0..runs {
                let t = Instant::now();
                let resp = http.get(format!("{base}/v1/search")).query(&query).send().await?;
                let status = resp.status();
                let body: Value = resp.json().await?;
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
                ensure!(status.is_success(), "{q}: {status} {body}");
                let at_least = if body["total_exact"] == false { ">=" } else { "" };
                total = format!("{at_least}{}", body["total"].as_i64().unwrap_or(-1));
            }
            ms.sort_by(f64::total_cmp);
            println!(
                "{name:<32} {:>8} {total:>8} {:>8.1} {:>8.1} {:>8.1}",
                case.unwrap_or("-"),
                percentile(&ms, 0.5),
                percentile(&ms, 0.95),
                percentile(&ms, 0.99)
            );
        }
    }
    Ok(())
}

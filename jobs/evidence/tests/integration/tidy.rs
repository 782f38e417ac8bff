//! Rules of the layout that the compiler does not hold, checked over the workspace's sources
//! (every `src/` folder; tests may do as they like):
//!
//! - SQL lives in the store modules. The benchmarks are the one exception: they prepare and
//!   measure scratch databases (TRUNCATE, VACUUM, counts by the database clock) and are not
//!   part of the service.
//! - The environment is read in the config modules only.
//! - The queue depends on nothing of the domain or of HTTP.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// Every `.rs` file under a `src/` folder of the workspace, as paths relative to its root.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable folder").flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if name != "target" && name != ".git" && name != "tests" {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = workspace_root();
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut sources: Vec<(String, String)> = files
        .into_iter()
        .filter_map(|path| {
            let rel = path.strip_prefix(&root).ok()?.to_string_lossy().replace('\\', "/");
            rel.contains("/src/").then(|| (rel, std::fs::read_to_string(&path).expect("readable source")))
        })
        .collect();
    sources.sort();
    assert!(sources.len() > 20, "found only {} sources under {}", sources.len(), root.display());
    sources
}

/// `file:line: text` for every line of a file outside `allowed` that contains one of `needles`.
fn offenders(needles: &[&str], allowed: impl Fn(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for (file, text) in sources() {
        if allowed(&file) {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if needles.iter().any(|needle| code.contains(needle)) {
                found.push(format!("{file}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn sql_appears_only_in_store_modules() {
    let sql = [
        "sqlx::query",
        "query_as(",
        "query_as::<",
        "query_scalar(",
        "query_scalar::<",
        "raw_sql(",
        "sqlx::AssertSqlSafe",
    ];
    let allowed = |file: &str| {
        file.ends_with("/src/store.rs")
            || file.ends_with("jobs/queue/src/table.rs") // renders the store's statements
            || (file.starts_with("tools/src/bin/bench-"))
    };
    let found = offenders(&sql, allowed);
    assert!(found.is_empty(), "SQL outside the store modules:\n{}", found.join("\n"));
}

#[test]
fn the_job_table_has_one_owner() {
    // Outside the queue, jobs are read and written through `queue::store` only.
    let found = offenders(&["FROM job", "JOIN job", "UPDATE job", "INTO job"], |file| {
        file.starts_with("jobs/queue/") || file.starts_with("tools/src/bin/bench-")
    });
    assert!(found.is_empty(), "SQL on the job table outside the queue:\n{}", found.join("\n"));
}

#[test]
fn the_environment_is_read_only_by_config_modules() {
    let env = ["env::var", "env::vars", "from_default_env", "dotenv"];
    let found = offenders(&env, |file| file.ends_with("/src/config.rs"));
    assert!(found.is_empty(), "environment read outside a config module:\n{}", found.join("\n"));
}

#[test]
fn the_queue_depends_on_nothing_of_the_domain_or_of_http() {
    let manifest = std::fs::read_to_string(workspace_root().join("jobs/queue/Cargo.toml")).unwrap();
    let dependencies = manifest.split("[dependencies]").nth(1).unwrap_or_default();
    let dependencies = dependencies.split("\n[").next().unwrap_or_default();
    for forbidden in ["evidence", "poem", "rust-s3", "reqwest", "zip", "pdf-extract", "quick-xml", "metrics-exporter"] {
        assert!(
            !dependencies.lines().any(|l| l.trim_start().starts_with(forbidden)),
            "jobs/queue depends on {forbidden}"
        );
    }
    let found = offenders(&["evidence"], |file| !file.starts_with("jobs/queue/"));
    assert!(found.is_empty(), "the queue's sources speak of evidence:\n{}", found.join("\n"));
}

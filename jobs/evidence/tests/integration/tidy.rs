//! Rules of the layout that the compiler does not hold, checked over the workspace's sources
//! (every `src/` folder; tests may do as they like):
//!
//! - SQL lives in the store modules. The benchmarks are the one exception: they prepare and
//!   measure scratch databases (TRUNCATE, VACUUM, counts by the database clock) and are not
//!   part of the service.
//! - The environment is read in the config modules only.
//! - The queue depends on nothing of the domain or of HTTP.
//! - No two modules of a crate depend on each other, directly or around a circle.

use std::collections::{BTreeMap, BTreeSet};
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

/// The modules of each crate (a file or folder under `src/`; the crate root and `src/bin` are not
/// modules of the library) and, for each, the modules it names as `crate::<module>`, in
/// `use crate::{…}` groups too. Code under `#[cfg(test)]` is left out: tests may reach anywhere.
fn module_imports() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut crates: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (file, text) in sources() {
        let (krate, rest) = file.split_once("/src/").expect("a source under src/");
        let module = rest.split('/').next().unwrap_or_default().trim_end_matches(".rs").to_owned();
        if rest.starts_with("bin/") || module == "lib" || module == "main" {
            continue;
        }
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: String =
            code.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
        let mut named = BTreeSet::new();
        let ident = |s: &str| {
            s.chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect::<String>()
        };
        for (i, _) in code.match_indices("crate::") {
            let after = &code[i + "crate::".len()..];
            match after.strip_prefix('{') {
                // `use crate::{a, b::c, d::{e, f}}`: each name at the group's top level.
                Some(group) => {
                    let mut depth = 0;
                    let mut start = true;
                    for (j, c) in group.char_indices() {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => break,
                            '}' => depth -= 1,
                            ',' if depth == 0 => start = true,
                            c if start && !c.is_whitespace() => {
                                named.insert(ident(&group[j..]));
                                start = false;
                            }
                            _ => {}
                        }
                    }
                }
                None => {
                    named.insert(ident(after));
                }
            }
        }
        let modules = crates.entry(krate.to_owned()).or_default();
        modules.entry(module.clone()).or_default().extend(named.into_iter().filter(|n| *n != module));
    }
    for modules in crates.values_mut() {
        let known: BTreeSet<String> = modules.keys().cloned().collect();
        for named in modules.values_mut() {
            named.retain(|n| known.contains(n));
        }
    }
    crates
}

#[test]
fn no_two_modules_of_a_crate_depend_on_each_other() {
    let crates = module_imports();
    assert!(crates["jobs/evidence"]["store"].contains("custody"), "the reading of imports finds nothing: {crates:?}");
    let mut circles = Vec::new();
    for (krate, modules) in &crates {
        // A module is on a circle when it can reach itself.
        for start in modules.keys() {
            let mut path = vec![start.clone()];
            let mut seen = BTreeSet::new();
            if let Some(circle) = reach(modules, start, start, &mut path, &mut seen) {
                let smallest = circle.iter().min().cloned();
                if smallest.as_ref() == Some(start) {
                    circles.push(format!("{krate}: {}", circle.join(" -> ")));
                }
            }
        }
    }
    assert!(circles.is_empty(), "modules that depend on each other:\n{}", circles.join("\n"));
}

/// A path of imports from `from` back to `to`, if there is one.
fn reach(
    modules: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
    path: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    for next in &modules[from] {
        if next == to {
            let mut circle = path.clone();
            circle.push(to.to_owned());
            return Some(circle);
        }
        if seen.insert(next.clone()) {
            path.push(next.clone());
            if let Some(circle) = reach(modules, next, to, path, seen) {
                return Some(circle);
            }
            path.pop();
        }
    }
    None
}

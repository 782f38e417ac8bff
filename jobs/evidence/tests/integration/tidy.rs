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
/// `use crate::{…}` groups too, or through a name the crate root re-exports (`crate::Service`
/// is `service`'s). Code under `#[cfg(test)]` is left out: tests may reach anywhere. Modules
/// inside a module's folder are the module's own business and are not told apart.
fn module_imports() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut crates: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut roots: BTreeMap<String, String> = BTreeMap::new();
    let mut texts: BTreeMap<(String, String), String> = BTreeMap::new();
    for (file, text) in sources() {
        let (krate, rest) = file.split_once("/src/").expect("a source under src/");
        let module = rest.split('/').next().unwrap_or_default().trim_end_matches(".rs").to_owned();
        let code = without_tests_and_comments(&text);
        if rest == "lib.rs" {
            roots.insert(krate.to_owned(), code);
            continue;
        }
        if rest.starts_with("bin/") || module == "main" {
            continue;
        }
        let mut named = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let after = &code[i + "crate::".len()..];
            match after.strip_prefix('{') {
                // `use crate::{a, b::c, d::{e, f}}`: each name at the group's top level.
                Some(group) => named.extend(top_level_names(group)),
                None => {
                    named.insert(ident(after));
                }
            }
        }
        texts.entry((krate.to_owned(), module.clone())).or_default().push_str(&code);
        crates.entry(krate.to_owned()).or_default().entry(module).or_default().extend(named);
    }
    for (krate, modules) in crates.iter_mut() {
        let known: BTreeSet<String> = modules.keys().cloned().collect();
        // What the root re-exports, by the module it comes from.
        let mut reexported: BTreeMap<String, String> = BTreeMap::new();
        let root = roots.get(krate).cloned().unwrap_or_default();
        for (i, _) in root.match_indices("pub use ") {
            let path = &root[i + "pub use ".len()..];
            let from = ident(path);
            let Some(rest) = path.strip_prefix(&format!("{from}::")) else { continue };
            let names = match rest.chars().next() {
                Some('{') => top_level_names(&rest[1..]),
                Some('*') => public_items(texts.get(&(krate.clone(), from.clone())).map_or("", |t| t.as_str())),
                _ => vec![ident(rest)],
            };
            for name in names {
                reexported.insert(name, from.clone());
            }
        }
        for (module, named) in modules.iter_mut() {
            let resolved: BTreeSet<String> = named
                .iter()
                .filter_map(|n| if known.contains(n) { Some(n.clone()) } else { reexported.get(n).cloned() })
                .filter(|n| n != module)
                .collect();
            *named = resolved;
        }
    }
    crates
}

/// The code before a file's `#[cfg(test)]`, without `//` comments.
fn without_tests_and_comments(text: &str) -> String {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// The identifier `s` starts with.
fn ident(s: &str) -> String {
    s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

/// The first name of each item of a `{a, b::c, d::{e, f}}` group, `s` starting after its `{`.
fn top_level_names(s: &str) -> Vec<String> {
    let (mut names, mut depth, mut start) = (Vec::new(), 0, true);
    for (j, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => start = true,
            c if start && !c.is_whitespace() => {
                names.push(ident(&s[j..]));
                start = false;
            }
            _ => {}
        }
    }
    names
}

/// The names of the `pub` items a module's code defines (for a `pub use module::*`).
fn public_items(code: &str) -> Vec<String> {
    let kinds = [
        "pub struct ",
        "pub enum ",
        "pub fn ",
        "pub async fn ",
        "pub type ",
        "pub trait ",
        "pub const ",
        "pub static ",
    ];
    kinds.iter().flat_map(|kind| code.match_indices(kind).map(move |(i, _)| ident(&code[i + kind.len()..]))).collect()
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

/// poem-openapi extracts an operation's arguments in the order they are declared, and the key's
/// checker is what answers 401: every API operation takes its key first (after its state), so
/// that nothing else of a request without a valid key is read.
#[test]
fn every_operation_takes_its_key_before_the_rest_of_the_request() {
    let mut operations = 0;
    let mut wrong = Vec::new();
    for (file, text) in sources().into_iter().filter(|(f, _)| f.starts_with("api/src/")) {
        for (i, _) in text.match_indices("key: ApiKey") {
            let start = text[..i].rfind("async fn ").expect("an operation");
            let name = ident(&text[start + "async fn ".len()..]);
            let before: Vec<&str> = text[start..i]
                .split_once('(')
                .map_or("", |(_, args)| args)
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .collect();
            operations += 1;
            if before != ["&self", "state: Data<&AppState>"] {
                wrong.push(format!("{file}: {name} takes {before:?} before its key"));
            }
        }
    }
    assert!(operations >= 21, "found only {operations} operations that take a key");
    assert!(wrong.is_empty(), "operations that read something before the key:\n{}", wrong.join("\n"));
}

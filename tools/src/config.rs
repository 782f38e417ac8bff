//! The tools' settings from the environment (`DEMO_*`, `BENCH_*`, `DATABASE_URL`): the one place
//! the tools read it. Each binary's header lists the variables it uses.

use std::str::FromStr;

/// A variable parsed as `T`, or `default` when unset, empty or unparsable.
pub fn var_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// The first of `names` that is set and not empty.
pub fn first_set(names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

/// `DEMO_API_URL`: the API the demo client, the benchmarks and the fault load talk to.
pub fn demo_api_url() -> String {
    first_set(&["DEMO_API_URL"]).unwrap_or_else(|| "http://127.0.0.1:8080".into())
}

/// `DATABASE_URL`, which the benchmarks need.
pub fn database_url() -> anyhow::Result<String> {
    first_set(&["DATABASE_URL"]).ok_or_else(|| anyhow::anyhow!("DATABASE_URL must be set"))
}

/// `EVIDENCE_API_KEY`: the key the clients send (`api keys create` makes one).
pub fn api_key() -> anyhow::Result<String> {
    first_set(&["EVIDENCE_API_KEY"]).ok_or_else(|| {
        anyhow::anyhow!(
            "EVIDENCE_API_KEY must be set: make a key with `api keys create --tenant <tenant> --role admin --name <name>`"
        )
    })
}

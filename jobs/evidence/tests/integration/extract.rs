//! The `extract` child as the worker runs it: what it says on failure reaches API clients as the
//! evidence's note, so it must be a sentence for a person, not a panic report.

use std::process::Command;

#[test]
fn a_parser_panic_is_reported_in_one_line_without_build_paths() {
    // ledger.xls with 8 bytes changed, on which calamine 0.38 panics (a slice index out of range).
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/calamine-panics.xls");
    let out = Command::new(env!("CARGO_BIN_EXE_extract"))
        .args([fixture, "application/vnd.ms-excel", "ledger.xls"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // What makes the default panic hook print the most.
        .env("RUST_BACKTRACE", "1")
        .env("EXTRACT_MAX_TEXT_BYTES", "100000")
        .env("EXTRACT_MAX_PARSE_BYTES", "1000000")
        .env("EXTRACT_MEMORY_BYTES", "1073741824")
        .env("EXTRACT_CPU_SECONDS", "10")
        .output()
        .expect("run extract");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(stderr.starts_with("the parser crashed on this file"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    for leak in ["panicked at", ".rs:", "RUST_BACKTRACE", "registry", "stack backtrace"] {
        assert!(!stderr.contains(leak), "{leak:?} in {stderr}");
    }
}

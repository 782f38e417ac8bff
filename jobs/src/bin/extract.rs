//! The extraction child process: `extract FILE DECLARED_TYPE FILENAME` prints one JSON object
//! (`jobs::extract::Extracted`) on stdout. It caps its own address space and CPU time first, so
//! a hostile file can at worst kill this process, never the worker that started it.
//! Limits come from the worker through EXTRACT_* variables.

use std::path::PathBuf;
use std::process::ExitCode;

use jobs::extract::{Limits, extract_file};
use rlimit::Resource;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, declared_type, filename] = args.as_slice() else {
        eprintln!("usage: extract FILE DECLARED_TYPE FILENAME");
        return ExitCode::from(64);
    };
    let memory = env_u64("EXTRACT_MEMORY_BYTES", 1 << 30);
    let cpu = env_u64("EXTRACT_CPU_SECONDS", 60);
    if let Err(e) = Resource::AS.set(memory, memory).and_then(|_| Resource::CPU.set(cpu, cpu)) {
        eprintln!("cannot set resource limits: {e}");
        return ExitCode::from(70);
    }
    let defaults = Limits::default();
    let limits = Limits {
        max_text_bytes: env_u64("EXTRACT_MAX_TEXT_BYTES", defaults.max_text_bytes as u64) as usize,
        max_parse_bytes: env_u64("EXTRACT_MAX_PARSE_BYTES", defaults.max_parse_bytes),
    };
    // Parsers may panic on malformed input: report it as a failure with the panic's message.
    let result = std::panic::catch_unwind(|| extract_file(&PathBuf::from(file), declared_type, filename, &limits));
    match result {
        Ok(Ok(extracted)) => match serde_json::to_writer(std::io::stdout().lock(), &extracted) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cannot write the result: {e}");
                ExitCode::from(74)
            }
        },
        Ok(Err(reason)) => {
            eprintln!("{reason}");
            ExitCode::from(65)
        }
        Err(_) => {
            eprintln!("the parser crashed on this file (malformed or unsupported content)");
            ExitCode::from(65)
        }
    }
}

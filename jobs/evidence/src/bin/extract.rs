//! The extraction child process: `extract FILE DECLARED_TYPE FILENAME` prints one JSON object
//! (`evidence::extract::Extracted`) on stdout. It caps its own address space and CPU time first, so
//! a hostile file can at worst kill this process, never the worker that started it.
//! Limits come from the worker through EXTRACT_* variables (`config::ExtractChildSettings`).

use std::path::PathBuf;
use std::process::ExitCode;

use evidence::config::ExtractChildSettings;
use evidence::extract::extract_file;
use rlimit::Resource;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, declared_type, filename] = args.as_slice() else {
        eprintln!("usage: extract FILE DECLARED_TYPE FILENAME");
        return ExitCode::from(64);
    };
    let settings = match ExtractChildSettings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(64);
        }
    };
    let (memory, cpu, limits) = (settings.memory_bytes, settings.cpu_seconds, settings.limits);
    if let Err(e) = Resource::AS.set(memory, memory).and_then(|_| Resource::CPU.set(cpu, cpu)) {
        eprintln!("cannot set resource limits: {e}");
        return ExitCode::from(70);
    }
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

//! The extraction child process: `extract FILE DECLARED_TYPE FILENAME` prints one JSON object
//! (`evidence::extract::Extracted`) on stdout. It caps its own address space and CPU time first, so
//! a hostile file can at worst kill this process, never the worker that started it.
//! Limits come from the worker through EXTRACT_* variables (`config::ExtractChildSettings`).
//! The programs it runs (pdftotext, pdftoppm, Tesseract) inherit those limits.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use evidence::config::ExtractChildSettings;
use evidence::extract::{extract_file, programs};
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
    let (memory, cpu, mut limits) = (settings.memory_bytes, settings.cpu_seconds, settings.limits);
    // OCR starts no page after three quarters of the time the worker gives this process (its CPU
    // limit is the same figure), so what it read is kept and the rest said to be unread.
    limits.deadline = Some(Instant::now() + Duration::from_secs(cpu) * 3 / 4);
    let missing = programs::missing(limits.ocr_languages.is_some(), &settings.program_path);
    if !missing.is_empty() {
        // EX_UNAVAILABLE: the installation lacks them, which is no fault of the file.
        eprintln!("{} not found on PATH (Debian: poppler-utils, tesseract-ocr)", missing.join(", "));
        return ExitCode::from(69);
    }
    // The CPU limit's soft value sends SIGXCPU (which ends the process: the worker reads it as a
    // timeout), a second before the hard one would SIGKILL it (which reads as a crash).
    if let Err(e) = Resource::AS.set(memory, memory).and_then(|_| Resource::CPU.set(cpu, cpu + 1)) {
        eprintln!("cannot set resource limits: {e}");
        return ExitCode::from(70);
    }
    // Parsers may panic on malformed input: report it as a failure in one line of our own. The
    // default hook would print the panic's source location (a path on the build machine) and a
    // note about RUST_BACKTRACE, and the worker shows what this process writes to its users.
    std::panic::set_hook(Box::new(|_| {}));
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
        Err(panic) => {
            let what = panic.downcast_ref::<&str>().copied().or(panic.downcast_ref::<String>().map(String::as_str));
            let what: String = what.unwrap_or_default().lines().next().unwrap_or_default().chars().take(200).collect();
            if what.is_empty() {
                eprintln!("the parser crashed on this file (malformed or unsupported content)");
            } else {
                eprintln!("the parser crashed on this file (malformed or unsupported content): {what}");
            }
            ExitCode::from(65)
        }
    }
}

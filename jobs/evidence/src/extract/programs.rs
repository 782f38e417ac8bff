//! The programs extraction runs: poppler's `pdftotext`, `pdfinfo` and `pdftoppm` (Debian's
//! poppler-utils) and Tesseract (tesseract-ocr). They run as children of the `extract` child,
//! so each inherits its address-space and CPU limits (each process has its own: one extraction
//! may use the memory limit twice over, the child's and a program's), and the worker ends the
//! whole process group at its time-out (`ingest::run_extractor_child`).
//!
//! Why pdftotext rather than a Rust PDF crate: on PDFs from six producers it read every word the
//! reader sees where pdf-extract missed lines or whole files (ARCHITECTURE.md, "Extraction";
//! `scripts/pdf-recall` measures it).

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The programs every extraction may need, and those OCR needs besides.
pub const PDF_PROGRAMS: [&str; 2] = ["pdftotext", "pdfinfo"];
pub const OCR_PROGRAMS: [&str; 2] = ["pdftoppm", OCR_PROGRAM];
const OCR_PROGRAM: &str = "tesseract";

/// Where `name` is on `path` (a PATH), as a shell would find it.
pub fn find(name: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path).map(|dir| dir.join(name)).find(|candidate| {
        use std::os::unix::fs::PermissionsExt;
        candidate.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The programs missing from `path` for extraction, with OCR or without.
pub fn missing(ocr: bool, path: &OsStr) -> Vec<&'static str> {
    let ocr = if ocr { &OCR_PROGRAMS[..] } else { &[] };
    PDF_PROGRAMS.iter().chain(ocr).copied().filter(|name| find(name, path).is_none()).collect()
}

/// What the worker checks at start: every program on `path` (its PATH), and Tesseract's data
/// for each of `ocr_languages` (`None`: no OCR). The error says what to install.
pub fn check_installation(ocr_languages: Option<&str>, path: &OsStr) -> Result<(), String> {
    let missing = missing(ocr_languages.is_some(), path);
    if !missing.is_empty() {
        return Err(format!(
            "{} not found on PATH: PDFs are read by poppler's pdftotext and scans by Tesseract \
             (Debian: apt-get install poppler-utils tesseract-ocr tesseract-ocr-eng, or scripts/install-tools system; \
             INGEST_OCR_LANGUAGES=off runs without Tesseract)",
            missing.join(", ")
        ));
    }
    let Some(languages) = ocr_languages else { return Ok(()) };
    let installed = installed_languages(path)?;
    let absent: Vec<&str> = languages.split('+').filter(|code| !installed.iter().any(|i| i == code)).collect();
    if !absent.is_empty() {
        return Err(format!(
            "Tesseract has no data for {} (INGEST_OCR_LANGUAGES={languages}; it has {}): \
             install tesseract-ocr-<code>, e.g. tesseract-ocr-deu",
            absent.join(", "),
            installed.join(", ")
        ));
    }
    Ok(())
}

/// The languages Tesseract has data for (`tesseract --list-langs`), asked in the environment
/// the `extract` child gets (`path` and nothing else), so that what passes here works there.
fn installed_languages(path: &OsStr) -> Result<Vec<String>, String> {
    let out = Command::new(OCR_PROGRAM)
        .arg("--list-langs")
        .env_clear()
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {OCR_PROGRAM}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{OCR_PROGRAM} --list-langs failed: {}", last_lines(&out.stderr)));
    }
    // The first line is a heading ("List of available languages in "/usr/share/…" (3):").
    Ok(String::from_utf8_lossy(&out.stdout).lines().skip(1).map(|l| l.trim().to_owned()).collect())
}

/// What a program wrote and how it ended. `cut`: it wrote more than asked for, and was killed.
pub struct Ran {
    pub stdout: Vec<u8>,
    pub cut: bool,
    pub success: bool,
    pub code: Option<i32>,
    /// The last two lines it wrote on stderr (programs say what went wrong last, after any
    /// warnings).
    pub message: String,
}

/// Run `command`, keeping at most `max_stdout` bytes of what it writes; past that it is killed.
pub fn run(mut command: Command, max_stdout: usize) -> Result<Ran, String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    // stderr is read on a thread of its own, so a program that writes much of it (pdftotext
    // reports each syntax error of a damaged file) never blocks on a full pipe.
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let (mut kept, mut buf) = (Vec::new(), [0u8; 4096]);
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            kept.extend_from_slice(&buf[..n]);
            let excess = kept.len().saturating_sub(4096);
            kept.drain(..excess);
        }
        kept
    });
    let mut stdout = Vec::new();
    let read = child.stdout.take().expect("piped").take(max_stdout as u64 + 1).read_to_end(&mut stdout);
    let cut = stdout.len() > max_stdout;
    if cut {
        stdout.truncate(max_stdout);
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| format!("{program}: {e}"))?;
    read.map_err(|e| format!("cannot read what {program} wrote: {e}"))?;
    let message = last_lines(&errors.join().unwrap_or_default());
    Ok(Ran { stdout, cut, success: status.success(), code: status.code(), message })
}

fn last_lines(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines.dedup();
    let from = lines.len().saturating_sub(2);
    lines[from..].join("; ").chars().take(300).collect()
}

/// The text of a PDF by pdftotext, in reading order, each page ended by a form feed; at most
/// `max` bytes.
pub fn pdf_text(pdf: &Path, max: usize) -> Result<Ran, String> {
    let mut command = Command::new("pdftotext");
    command.args(["-enc", "UTF-8", "-eol", "unix"]).arg(pdf).arg("-");
    run(command, max)
}

/// Page `page` (from 1) of a PDF as a grey PNG at `dpi`, written into `dir`.
pub fn render_page(pdf: &Path, page: usize, dpi: u32, dir: &Path) -> Result<PathBuf, String> {
    let prefix = dir.join(format!("page-{page}"));
    let mut command = Command::new("pdftoppm");
    let page = page.to_string();
    command.args(["-f", &page, "-l", &page, "-r", &dpi.to_string(), "-gray", "-png", "-singlefile"]);
    command.arg(pdf).arg(&prefix);
    let ran = run(command, 0)?;
    if !ran.success {
        return Err(format!("pdftoppm could not draw page {page}: {}", ran.message));
    }
    Ok(prefix.with_extension("png"))
}

/// The text Tesseract reads in an image, in `languages` (its form: `eng`, `deu+eng`), at most
/// `max` bytes. One thread: the worker runs several extractions at once.
pub fn ocr(image: &Path, languages: &str, max: usize) -> Result<String, String> {
    let mut command = Command::new(OCR_PROGRAM);
    command.arg(image).arg("stdout").args(["-l", languages]).env("OMP_THREAD_LIMIT", "1");
    let ran = run(command, max)?;
    // Cut at `max`: the text so far is the caller's to keep (it marks the text truncated).
    if !ran.success && !ran.cut {
        let message = if ran.message.is_empty() { format!("exit {:?}", ran.code) } else { ran.message };
        return Err(format!("Tesseract could not read it: {message}"));
    }
    Ok(String::from_utf8_lossy(&ran.stdout).into_owned())
}

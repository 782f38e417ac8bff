//! Text extraction: sniff what the bytes really are, then pull their text within limits.
//!
//! This code parses untrusted files with third-party parsers that can panic, loop or overflow
//! their stack on crafted input, so the worker runs [`extract_file`] only inside the `extract`
//! binary (src/bin/extract.rs), a child with memory, CPU and wall-clock limits. The one thing it
//! calls in its own process is [`extract_plain_text`]: plain text, read with no third-party
//! parser (decoding, see [`text_encoding`], and a cap), which costs less than starting the child.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::time::Instant;

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE};
use serde::{Deserialize, Serialize};

pub mod family;
pub mod programs;
pub mod properties;
mod rtf;
mod xml;

pub use family::{FamilyLimits, Member};
pub use properties::Properties;

/// The version of what extraction makes of a file, stored with each content row
/// (`content.extractor_version`). Raise it when a file already indexed would now yield other
/// text or notes: a reindex of bytes whose row is older extracts them again
/// (`POST /v1/reindex` with `below_extractor_version` does it in bulk).
/// 1: up to 2026-12-03. 2: spreadsheets, ODT, ODP and e-mail read, HTML by html5ever, tabs and line
/// breaks of Office files as spaces, legacy code pages detected, encrypted files told apart,
/// `text_reason`, runs of Chinese, Japanese and Korean indexed as pairs, PDF chunks by page.
/// 3: PDFs read by pdftotext instead of pdf-extract, RTF read (it was taken for plain text),
/// images and PDF pages without text read by OCR, documents' properties.
/// 4: ZIP archives' files and e-mails' attachments are members (evidence of their own) instead
/// of text of the container: an archive's text is its entries' paths, an e-mail's its headers,
/// bodies and a line per attachment; an HTML page's title and author as its properties; a file
/// without text found by its properties.
pub const EXTRACTOR_VERSION: i32 = 4;

/// What one file yielded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extracted {
    /// The type sniffed from the bytes.
    pub media_type: String,
    /// `text`, `html`, `pdf`, `pdf+ocr` (some pages read by OCR), `ocr` (an image), `rtf`,
    /// `docx`, `pptx`, `opendocument`, `spreadsheet`, `email`, `zip`, or `none`.
    pub extractor: String,
    pub text: String,
    /// The text went past `max_text_bytes` and only a prefix is kept.
    pub truncated: bool,
    /// Why there is no text, or why it is partial.
    pub note: Option<String>,
    /// The same, as one of a fixed set: set whenever the file may hold text that was not
    /// indexed (never for a file that simply has none, such as an empty text file).
    pub reason: Option<TextReason>,
    /// The text has pages, each ended by [`PAGE_BREAK`] (a PDF): its chunks record the page
    /// they start on.
    #[serde(default)]
    pub paged: bool,
    /// What the document says of itself (title, author, dates, pages, …).
    #[serde(default)]
    pub properties: Properties,
    /// A container's members (a ZIP's files, an e-mail's attachments) written to
    /// [`FamilyLimits::dir`], in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
    /// Members not written: past a limit, unreadable, or all of them when there were no
    /// [`Limits::family`].
    #[serde(default)]
    pub members_left: usize,
    /// Which members were not written and why (`None` without [`Limits::family`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_note: Option<String>,
    /// Members could not be written to [`FamilyLimits::dir`] (a full disk): the machine's
    /// fault, not the file's; the worker tries again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_error: Option<String>,
}

/// Whether a file of this (sniffed) type is a container whose members become evidence of their
/// own: a ZIP archive, an e-mail.
pub fn is_container(media_type: &str) -> bool {
    matches!(media_type, "application/zip" | "message/rfc822")
}

/// What ends a page in extracted text: the form feed, as pdftotext writes it too.
pub const PAGE_BREAK: char = '\x0c';

/// Why a file yielded less text than it may hold. Stored as `content.text_reason` (the
/// migration's check lists the same names) and filterable in the listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum TextReason {
    /// A PDF with no text a reader could find: a scan, text drawn as shapes, or a structure the
    /// reader could not follow; and OCR off, or finding no text either.
    NoTextLayer,
    /// OCR of an image or of a PDF page without text failed.
    OcrFailed,
    /// Protected by a password (a PDF, or an Office file encrypted as a whole).
    Encrypted,
    /// No extractor for the type: archives, executables, Office 97–2003 files; images while OCR
    /// is off.
    UnsupportedType,
    /// The parser failed or crashed: malformed, or a structure it does not support.
    Corrupt,
    /// The extraction ran out of its time (`INGEST_EXTRACT_TIMEOUT_SECS`), or OCR stopped short
    /// of it with pages left unread.
    Timeout,
    /// Over the parsing limit (`INGEST_MAX_PARSE_BYTES`), or the extraction ran out of its
    /// memory (`INGEST_EXTRACT_MEMORY_BYTES`).
    TooLarge,
    /// Text past `INGEST_MAX_TEXT_BYTES` was dropped.
    Truncated,
}

impl TextReason {
    pub const ALL: [TextReason; 8] = [
        TextReason::NoTextLayer,
        TextReason::OcrFailed,
        TextReason::Encrypted,
        TextReason::UnsupportedType,
        TextReason::Corrupt,
        TextReason::Timeout,
        TextReason::TooLarge,
        TextReason::Truncated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TextReason::NoTextLayer => "no_text_layer",
            TextReason::OcrFailed => "ocr_failed",
            TextReason::Encrypted => "encrypted",
            TextReason::UnsupportedType => "unsupported_type",
            TextReason::Corrupt => "corrupt",
            TextReason::Timeout => "timeout",
            TextReason::TooLarge => "too_large",
            TextReason::Truncated => "truncated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Why the text of a file could not be extracted at all: the reason and the words.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: TextReason,
    pub message: String,
}

impl Failure {
    pub fn new(reason: TextReason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into() }
    }

    /// What the file is indexed with instead: its metadata, and why.
    pub fn metadata_only(self, media_type: &str) -> Extracted {
        Extracted {
            media_type: media_type.to_owned(),
            extractor: "none".into(),
            text: String::new(),
            truncated: false,
            note: Some(format!("text extraction failed: {}; indexed by filename, tags and description", self.message)),
            reason: Some(self.reason),
            paged: false,
            properties: Properties::default(),
            members: Vec::new(),
            members_left: 0,
            family_note: None,
            family_error: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Text kept per file; the rest is dropped and `truncated` set.
    pub max_text_bytes: usize,
    /// Largest file parsed at all (any but plain text: PDF, Office, RTF, e-mail, HTML, images),
    /// and largest decompressed part of a zip-based Office file.
    pub max_parse_bytes: u64,
    /// The languages OCR reads, in Tesseract's form (`eng`, `deu+eng`); `None`: no OCR.
    pub ocr_languages: Option<String>,
    /// After this, OCR starts no other page: what it has read is kept, and the rest said to be
    /// left unread, before the worker's time-out would lose it all.
    pub deadline: Option<Instant>,
    /// Where and how many of a container's members are written; `None`: none are (the
    /// container is as deep in its family as members may be).
    pub family: Option<FamilyLimits>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_text_bytes: 4 << 20,
            max_parse_bytes: 64 << 20,
            ocr_languages: Some("eng".into()),
            deadline: None,
            family: None,
        }
    }
}

/// Images Tesseract reads (through Leptonica), by the type their signature gives.
const OCR_IMAGES: [&str; 6] = ["image/png", "image/jpeg", "image/tiff", "image/bmp", "image/gif", "image/webp"];

/// The resolution PDF pages are drawn at for OCR: Tesseract's own advice for print.
const OCR_DPI: u32 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pdf,
    Docx,
    Pptx,
    /// OpenDocument text or presentation (ODT, ODP): the paragraphs and headings of `content.xml`.
    OpenDocument,
    /// An e-mail message (RFC 5322, MIME): headers and bodies; its attachments are members.
    Email,
    /// A ZIP archive (not an Office or OpenDocument file): its files are members.
    Archive,
    Html,
    /// Rich Text Format: read by [`rtf::text`].
    Rtf,
    Text,
    Sheet(Workbook),
    /// An image: read by OCR, when it is on.
    Image,
    /// An OLE compound file: Office 97–2003, or an Office file encrypted as a whole.
    Compound,
    Opaque,
}

/// The workbook formats the spreadsheet reader (calamine) opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workbook {
    Xlsx,
    Xlsb,
    Xls,
    Ods,
}

const XLS: &str = "application/vnd.ms-excel";

/// What an OLE compound file holds, from the stream names in its directory.
enum Compound {
    /// An Office file encrypted as a whole (MS-OFFCRYPTO's `EncryptedPackage`).
    Encrypted,
    /// An Excel 97–2003 workbook (a `Workbook` stream, and no Word, PowerPoint or Outlook one;
    /// Excel 5's `Book` is not looked for, a word too common in other files' text).
    Xls,
    /// Anything else: Word and PowerPoint 97–2003, Outlook messages, thumbnails.
    Other,
}

/// Sniff the file and extract its text. Errors are I/O errors or parser failures: the file is
/// `corrupt` (the caller records them as the reason the file has no text).
pub fn extract_file(path: &Path, declared_type: &str, filename: &str, limits: &Limits) -> Result<Extracted, String> {
    let head = read_head(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let sniffed = sniff(path, &head, declared_type, filename);
    extract_sniffed(path, &head, sniffed, limits)
}

/// The first 8 KiB of the file, which the type and the encoding are read from.
fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(8192);
    File::open(path)?.take(8192).read_to_end(&mut head)?;
    Ok(head)
}

/// [`extract_file`] once the file's head is read and sniffed.
fn extract_sniffed(
    path: &Path,
    head: &[u8],
    (kind, media_type, encoding): Sniffed,
    limits: &Limits,
) -> Result<Extracted, String> {
    let size = std::fs::metadata(path).map_err(|e| format!("cannot read the file: {e}"))?.len();
    // An OLE compound file says what it holds in its directory.
    let (kind, media_type, encrypted) = match kind {
        Kind::Compound => match compound_content(path, limits)? {
            Compound::Encrypted => (Kind::Compound, media_type, true),
            Compound::Xls => (Kind::Sheet(Workbook::Xls), XLS, false),
            Compound::Other => (Kind::Compound, media_type, false),
        },
        kind => (kind, media_type, false),
    };
    let mut out = Extracted {
        media_type: media_type.to_owned(),
        extractor: match kind {
            Kind::Pdf => "pdf",
            Kind::Docx => "docx",
            Kind::Pptx => "pptx",
            Kind::OpenDocument => "opendocument",
            Kind::Email => "email",
            Kind::Archive => "zip",
            Kind::Html => "html",
            Kind::Rtf => "rtf",
            Kind::Text => "text",
            Kind::Sheet(_) => "spreadsheet",
            Kind::Image => "ocr",
            Kind::Compound | Kind::Opaque => "none",
        }
        .to_owned(),
        text: String::new(),
        truncated: false,
        note: None,
        reason: None,
        paged: false,
        properties: Properties::default(),
        members: Vec::new(),
        members_left: 0,
        family_note: None,
        family_error: None,
    };
    if encrypted {
        out.note = Some(
            "an encrypted Office file (password-protected): its text cannot be read without the password; \
             indexed by filename, tags and description"
                .into(),
        );
        out.reason = Some(TextReason::Encrypted);
        return Ok(out);
    }
    if matches!(kind, Kind::Compound | Kind::Opaque) {
        out.note = Some(format!("no text extractor for {media_type}; indexed by filename, tags and description"));
        out.reason = Some(TextReason::UnsupportedType);
        return Ok(out);
    }
    // An archive's entries are read from the file one at a time, each through the members'
    // byte limit: it is opened whatever its size.
    if !matches!(kind, Kind::Text | Kind::Archive) && size > limits.max_parse_bytes {
        if kind == Kind::Email && limits.family.is_some() {
            out.family_note = Some(format!(
                "its attachments were not opened: the message is over the {} byte parsing limit \
                 (INGEST_MAX_PARSE_BYTES)",
                limits.max_parse_bytes
            ));
        }
        out.extractor = "none".into();
        out.note = Some(format!(
            "{media_type} of {size} bytes is over the {} byte parsing limit; indexed by filename, tags and description",
            limits.max_parse_bytes
        ));
        out.reason = Some(TextReason::TooLarge);
        return Ok(out);
    }
    let guessed = Encoding::for_bom(head).is_none() && encoding != UTF_8 && !is_utf16(encoding);
    if matches!(kind, Kind::Text | Kind::Html) && guessed {
        out.note = Some(format!(
            "the text is not UTF-8 and has no byte-order mark: read as {} (a statistical guess from its first 8 KiB)",
            encoding.name().to_ascii_lowercase()
        ));
    }
    // A PDF the reader could not open without its password.
    let mut locked = false;
    let mut ocr = Ocr::default();
    let mut family = family::Writer::new(limits.family.as_ref());
    let raw = match kind {
        // UTF-16 takes two bytes or more for each character of the text that is kept.
        Kind::Text => read_text(path, (limits.max_text_bytes + 1) * if is_utf16(encoding) { 2 } else { 1 }, encoding)?,
        Kind::Html => {
            let (text, properties) = html_document(&read_text(path, limits.max_parse_bytes as usize, encoding)?);
            out.properties = properties;
            text
        }
        Kind::Rtf => {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
            let (text, properties) =
                rtf::text(&bytes, limits.max_text_bytes + 1).map_err(|e| format!("RTF text extraction failed: {e}"))?;
            out.properties = properties;
            text
        }
        Kind::Pdf => match pdf_text(path, limits)? {
            Some((text, read)) => {
                out.paged = true;
                ocr = read;
                text
            }
            None => {
                locked = true;
                String::new()
            }
        },
        Kind::Image => match &limits.ocr_languages {
            None => {
                out.extractor = "none".into();
                String::new()
            }
            Some(languages) => match programs::ocr(path, languages, limits.max_text_bytes + 1) {
                Ok(text) => {
                    ocr.pages.push(1);
                    text
                }
                Err(e) => {
                    ocr.failed = Some(format!("the image: {e}"));
                    String::new()
                }
            },
        },
        Kind::Docx => office_text(path, &["word/document.xml"], &OOXML, limits)?,
        Kind::Pptx => office_text(path, &slide_names(path)?, &OOXML, limits)?,
        Kind::OpenDocument => office_text(path, &["content.xml"], &OPEN_DOCUMENT, limits)?,
        Kind::Email => {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
            let message = mail_parser::MessageParser::default()
                .parse(&bytes)
                .ok_or_else(|| "not a readable e-mail message".to_owned())?;
            out.properties = properties::email(&message);
            email_text(&message, &mut family)
        }
        Kind::Archive => family::zip(path, &mut family)?,
        Kind::Sheet(format) => spreadsheet_text(path, format, limits)?,
        Kind::Compound | Kind::Opaque => String::new(),
    };
    match kind {
        Kind::Pdf if !locked => out.properties = properties::pdf(path),
        Kind::Docx | Kind::Pptx | Kind::Sheet(Workbook::Xlsx) => out.properties = properties::ooxml(path),
        Kind::OpenDocument | Kind::Sheet(Workbook::Ods) => out.properties = properties::open_document(path),
        _ => {}
    }
    out.family_note = family.note();
    (out.members, out.members_left, out.family_error) = (family.members, family.left_count, family.error);
    let (text, truncated) = clean(&raw, limits.max_text_bytes);
    out.text = text;
    out.truncated = truncated;
    let languages = limits.ocr_languages.as_deref().unwrap_or_default();
    if kind == Kind::Pdf && !ocr.pages.is_empty() {
        out.extractor = "pdf+ocr".into();
    }
    let empty = out.text.trim().is_empty();
    (out.note, out.reason) = if truncated {
        let note = format!("text longer than {} bytes; only the beginning is indexed", limits.max_text_bytes);
        (Some(note), Some(TextReason::Truncated))
    } else if ocr.skipped > 0 {
        let note = format!(
            "{}; {} page(s) without a text layer were left unread by OCR when the extraction's time ran short \
             (INGEST_EXTRACT_TIMEOUT_SECS)",
            ocr.said(languages, out.paged),
            ocr.skipped
        );
        (Some(note), Some(TextReason::Timeout))
    } else if let Some(failure) = &ocr.failed {
        let note = match ocr.pages.is_empty() {
            true => format!("OCR failed on {failure}"),
            false => format!("{}; OCR failed on {failure}", ocr.said(languages, out.paged)),
        };
        (Some(note), Some(TextReason::OcrFailed))
    } else if kind == Kind::Pdf && empty && locked {
        let note = "an encrypted PDF (password-protected): its text cannot be read without the password";
        (Some(note.to_owned()), Some(TextReason::Encrypted))
    } else if kind == Kind::Pdf && empty {
        let ocr = if limits.ocr_languages.is_none() {
            "OCR is off (INGEST_OCR_LANGUAGES=off)".to_owned()
        } else {
            format!("OCR ({languages}) found no text either")
        };
        let note = format!(
            "no text found in this application/pdf: it has no text layer (a scan, or text drawn as shapes), or \
             the reader could not follow its structure; {ocr}"
        );
        (Some(note), Some(TextReason::NoTextLayer))
    } else if kind == Kind::Image && limits.ocr_languages.is_none() {
        let note = format!("{media_type} is read by OCR only, which is off (INGEST_OCR_LANGUAGES=off)");
        (Some(note), Some(TextReason::UnsupportedType))
    } else if empty {
        let by = if kind == Kind::Image { format!(" by OCR ({languages})") } else { String::new() };
        (Some(format!("no text found in this {media_type}{by}")), None)
    } else if !ocr.pages.is_empty() {
        (Some(ocr.said(languages, out.paged)), None)
    } else {
        (out.note, out.reason)
    };
    Ok(out)
}

/// What OCR did for one file.
#[derive(Debug, Default)]
struct Ocr {
    /// Pages (from 1) it read; `[1]` for an image.
    pages: Vec<usize>,
    /// The first page (or image) it failed on, and why.
    failed: Option<String>,
    /// Pages without text it did not start on: the extraction's time ran short.
    skipped: usize,
}

impl Ocr {
    /// What it read, in words (of a PDF's pages when `paged`): marks the text it made as OCR's.
    fn said(&self, languages: &str, paged: bool) -> String {
        let list: Vec<String> = self.pages.iter().map(usize::to_string).collect();
        match (list.is_empty(), paged) {
            (true, _) => "no page was read by OCR".to_owned(),
            (false, false) => format!("read by OCR (Tesseract, {languages})"),
            (false, true) => {
                format!("page(s) {} have no text layer and were read by OCR (Tesseract, {languages})", list.join(", "))
            }
        }
    }
}

/// The text of a PDF by pdftotext, pages ended by [`PAGE_BREAK`], with its pages that have no
/// text read by OCR; `None` for a PDF that cannot be read without its password.
fn pdf_text(path: &Path, limits: &Limits) -> Result<Option<(String, Ocr)>, String> {
    // A byte more than is kept, so that `clean` sees the text was cut.
    let ran = programs::pdf_text(path, limits.max_text_bytes + 1)?;
    if !ran.success && !ran.cut {
        // A PDF with a user password fails; one with an owner password only (printing
        // restricted, common for court filings) reads as usual.
        if ran.message.contains("Incorrect password") || pdf_is_encrypted(path) {
            return Ok(None);
        }
        return Err(format!("PDF text extraction failed: {}", ran.message));
    }
    let text = String::from_utf8_lossy(&ran.stdout).into_owned();
    if ran.cut {
        return Ok(Some((text, Ocr::default())));
    }
    let mut pages: Vec<String> = text.split(PAGE_BREAK).map(str::to_owned).collect();
    // pdftotext ends every page with a form feed: nothing follows the last one.
    if pages.len() > 1 && pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    let ocr = read_blank_pages(path, &mut pages, limits);
    Ok(Some((pages.join(&PAGE_BREAK.to_string()), ocr)))
}

/// Fewer letters and digits than this on a page and it is taken for a scan: a page stamp or a
/// Bates number is often the only text a scanned production carries.
const SCANNED_PAGE_CHARS: usize = 20;

fn letters_and_digits(text: &str) -> usize {
    text.chars().filter(|c| c.is_alphanumeric()).count()
}

/// OCR of each page with (almost) no text, until the text is full or the deadline passes. A
/// page keeps its own text when OCR reads less of it.
fn read_blank_pages(path: &Path, pages: &mut [String], limits: &Limits) -> Ocr {
    let mut ocr = Ocr::default();
    let blank: Vec<usize> = (0..pages.len()).filter(|&i| letters_and_digits(&pages[i]) < SCANNED_PAGE_CHARS).collect();
    if blank.is_empty() {
        return ocr;
    }
    let Some(languages) = &limits.ocr_languages else { return ocr };
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            ocr.failed = Some(format!("its pages: cannot make a folder for their images: {e}"));
            return ocr;
        }
    };
    let mut room = limits.max_text_bytes.saturating_sub(pages.iter().map(String::len).sum());
    for (done, &i) in blank.iter().enumerate() {
        if room == 0 {
            break;
        }
        if limits.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            ocr.skipped = blank.len() - done;
            break;
        }
        let read = programs::render_page(path, i + 1, OCR_DPI, dir.path()).and_then(|image| {
            let text = programs::ocr(&image, languages, room + 1);
            let _ = std::fs::remove_file(&image);
            text
        });
        match read {
            Ok(text) => {
                if letters_and_digits(&text) >= letters_and_digits(&pages[i]) {
                    room = room.saturating_sub(text.len().saturating_sub(pages[i].len()));
                    pages[i] = text;
                }
                ocr.pages.push(i + 1);
            }
            Err(e) => {
                ocr.failed.get_or_insert(format!("page {}: {e}", i + 1));
            }
        }
    }
    ocr
}

/// A PDF whose trailer names an encryption dictionary (`/Encrypt`): readable by a reader only
/// with its password unless the user password is empty.
fn pdf_is_encrypted(path: &Path) -> bool {
    use std::io::{Seek, SeekFrom};
    // The trailer (or, in PDF 1.5+, the cross-reference stream that replaces it) is near the end.
    let mut tail = Vec::new();
    let read = File::open(path).and_then(|mut file| {
        let size = file.metadata()?.len();
        file.seek(SeekFrom::Start(size.saturating_sub(64 << 10)))?;
        file.read_to_end(&mut tail)
    });
    read.is_ok() && tail.windows(8).any(|w| w == b"/Encrypt")
}

/// What an OLE compound file holds, from the stream names (UTF-16LE) in its directory, which
/// may lie anywhere in the file (read up to the parsing limit).
fn compound_content(path: &Path, limits: &Limits) -> Result<Compound, String> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(limits.max_parse_bytes).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read the file: {e}"))?;
    let names = |name: &str| {
        let name: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        bytes.windows(name.len()).any(|w| w == name.as_slice())
    };
    Ok(if names("EncryptedPackage") {
        Compound::Encrypted
    } else if names("WordDocument") || names("PowerPoint Document") || names("__substg1.0_") {
        Compound::Other
    } else if names("Workbook") {
        Compound::Xls
    } else {
        Compound::Other
    })
}

/// Every sheet of a workbook, in workbook order: a line with the sheet's name, then a line per
/// row with its cells' values separated by tabs (a formula's value as last computed; dates as
/// ISO 8601). Stops once past `max_text_bytes`.
fn spreadsheet_text(path: &Path, format: Workbook, limits: &Limits) -> Result<String, String> {
    use calamine::{Reader, Sheets, open_workbook_from_rs};
    let file = BufReader::new(File::open(path).map_err(|e| format!("cannot read the file: {e}"))?);
    let unreadable = |e: &dyn std::fmt::Display| format!("not a readable spreadsheet: {e}");
    let mut book = match format {
        Workbook::Xlsx => Sheets::Xlsx(open_workbook_from_rs(file).map_err(|e| unreadable(&e))?),
        Workbook::Xlsb => Sheets::Xlsb(open_workbook_from_rs(file).map_err(|e| unreadable(&e))?),
        Workbook::Xls => Sheets::Xls(open_workbook_from_rs(file).map_err(|e| unreadable(&e))?),
        Workbook::Ods => Sheets::Ods(open_workbook_from_rs(file).map_err(|e| unreadable(&e))?),
    };
    let mut text = String::new();
    if let Sheets::Xlsx(xlsx) = &mut book {
        // XLSX cell by cell, so a huge sheet is read only up to the text limit.
        for name in xlsx.sheet_names() {
            text.push_str(&name);
            text.push('\n');
            let unreadable = |e: calamine::XlsxError| format!("sheet {name:?} is not readable: {e}");
            let mut cells = xlsx.worksheet_cells_reader(&name).map_err(unreadable)?;
            let mut row = None;
            while let Some(cell) = cells.next_cell().map_err(unreadable)? {
                let value = cell_text(&calamine::Data::from(cell.get_value().clone()));
                if value.trim().is_empty() {
                    continue;
                }
                let at = cell.get_position().0;
                match row {
                    Some(r) if r == at => text.push('\t'),
                    Some(_) => text.push('\n'),
                    None => {}
                }
                row = Some(at);
                text.push_str(value.trim_end());
                if text.len() > limits.max_text_bytes {
                    return Ok(text);
                }
            }
            text.push_str(if row.is_some() { "\n\n" } else { "\n" });
        }
        return Ok(text);
    }
    for name in book.sheet_names() {
        let range = book.worksheet_range(&name).map_err(|e| format!("sheet {name:?} is not readable: {e}"))?;
        text.push_str(&name);
        text.push('\n');
        for row in range.rows() {
            let cells: Vec<String> = row.iter().map(cell_text).collect();
            let line = cells.join("\t");
            if !line.trim().is_empty() {
                text.push_str(line.trim_end());
                text.push('\n');
            }
            if text.len() > limits.max_text_bytes {
                return Ok(text);
            }
        }
        text.push('\n');
    }
    Ok(text)
}

/// A cell's value as text: dates and times as ISO 8601 (`2024-03-31`, `2024-03-31 09:30:00`),
/// numbers as Rust prints them (`1200.5`, `42`), a duration as its number of days.
fn cell_text(cell: &calamine::Data) -> String {
    match cell {
        calamine::Data::DateTime(d) if d.is_datetime() => match d.as_datetime() {
            Some(t) if t.time() == chrono::NaiveTime::MIN => t.date().to_string(),
            Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            None => d.to_string(),
        },
        other => other.to_string(),
    }
}

/// Plain text (text, Markdown, CSV, JSON, …) goes through no third-party parser, only decoding
/// (UTF-8, UTF-16 or a guessed legacy code page) and our own cleaning, so the worker may extract it in its own process and save a
/// process start per file. `None` for anything else: run the sandboxed `extract` child.
pub fn extract_plain_text(
    path: &Path,
    declared_type: &str,
    filename: &str,
    limits: &Limits,
) -> Option<Result<Extracted, String>> {
    let head = read_head(path).ok()?;
    // Zip containers and PDFs are never plain text; checking first keeps sniff() off the zip reader.
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"%PDF-") {
        return None;
    }
    let sniffed = sniff(path, &head, declared_type, filename);
    (sniffed.0 == Kind::Text).then(|| extract_sniffed(path, &head, sniffed, limits))
}

/// What [`sniff`] makes of a file: its kind, its media type, and for text the encoding it is
/// read in (UTF-8 for anything else).
type Sniffed = (Kind, &'static str, &'static Encoding);

fn sniff(path: &Path, head: &[u8], declared_type: &str, filename: &str) -> Sniffed {
    let ext = filename.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    let declared = declared_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if head.starts_with(b"%PDF-") {
        return (Kind::Pdf, "application/pdf", UTF_8);
    }
    if head.starts_with(b"PK\x03\x04") {
        // DOCX, PPTX and XLSX are zip files: the entry names say which.
        let names = zip_names(path).unwrap_or_default();
        if names.iter().any(|n| n == "word/document.xml") {
            return (Kind::Docx, "application/vnd.openxmlformats-officedocument.wordprocessingml.document", UTF_8);
        }
        if names.iter().any(|n| n == "ppt/presentation.xml") {
            return (Kind::Pptx, "application/vnd.openxmlformats-officedocument.presentationml.presentation", UTF_8);
        }
        if names.iter().any(|n| n == "xl/workbook.xml") {
            return (
                Kind::Sheet(Workbook::Xlsx),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                UTF_8,
            );
        }
        if names.iter().any(|n| n == "xl/workbook.bin") {
            return (Kind::Sheet(Workbook::Xlsb), "application/vnd.ms-excel.sheet.binary.macroenabled.12", UTF_8);
        }
        match zip_mimetype(path).as_deref() {
            Some(ODS) => return (Kind::Sheet(Workbook::Ods), ODS, UTF_8),
            Some(ODT) => return (Kind::OpenDocument, ODT, UTF_8),
            Some(ODP) => return (Kind::OpenDocument, ODP, UTF_8),
            _ => {}
        }
        return (Kind::Archive, "application/zip", UTF_8);
    }
    if head.starts_with(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") {
        return (Kind::Compound, "application/x-ole-storage", UTF_8);
    }
    if head.starts_with(b"{\\rtf") {
        return (Kind::Rtf, "application/rtf", UTF_8);
    }
    // Bytes that are not text are named by their signature (images, audio, video, archives,
    // executables, fonts, databases: the `infer` crate's table). Only then: some signatures are
    // short runs of letters ("ID3", "BM", "MZ") that text may start with.
    let Some(encoding) = text_encoding(head) else {
        let media = infer::get(head).map_or("application/octet-stream", |t| t.mime_type());
        let kind = if OCR_IMAGES.contains(&media) { Kind::Image } else { Kind::Opaque };
        return (kind, media, UTF_8);
    };
    let lower_head = encoding.decode(&head[..head.len().min(512)]).0.to_ascii_lowercase();
    let lower_head = lower_head.trim_start();
    if declared == "message/rfc822" || ext == "eml" || looks_like_email(&encoding.decode(head).0) {
        return (Kind::Email, "message/rfc822", encoding);
    }
    if declared == "text/html"
        || ext == "html"
        || ext == "htm"
        || lower_head.starts_with("<!doctype html")
        || lower_head.starts_with("<html")
    {
        return (Kind::Html, "text/html", encoding);
    }
    let media = match (declared.as_str(), ext.as_str()) {
        ("application/json", _) | (_, "json") => "application/json",
        ("text/csv", _) | (_, "csv") => "text/csv",
        ("text/markdown", _) | (_, "md" | "markdown") => "text/markdown",
        _ => "text/plain",
    };
    (Kind::Text, media, encoding)
}

/// Text that starts as an e-mail does: a header on its first line, and a `From:` header
/// with `Subject:`, `Date:` or `MIME-Version:` before the first blank line.
fn looks_like_email(head: &str) -> bool {
    let head = head.replace("\r\n", "\n");
    let headers = head.split("\n\n").next().unwrap_or_default();
    let header_line = |line: &str| {
        line.split_once(':')
            .is_some_and(|(name, _)| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    let has = |name: &str| {
        let prefix = format!("{name}:");
        headers.lines().any(|l| l.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(&prefix)))
    };
    headers.lines().next().is_some_and(header_line)
        && has("From")
        && (has("Subject") || has("Date") || has("MIME-Version"))
}

/// How the bytes of a text file are read, from its first bytes; `None`: not text. A byte-order
/// mark says (UTF-8, UTF-16LE as PowerShell writes by default, UTF-16BE); else UTF-16 without
/// one (every other byte NUL); else UTF-8 (a character cut at the end of the sample is fine;
/// NULs between words are read as spaces); else a legacy code page, guessed by chardetng
/// (Firefox's detector: Windows-1252, 1250, 1251, Shift_JIS, GBK, Big5, EUC-KR and the rest,
/// from how often letters and pairs of letters occur in each; the extract note says it was a
/// guess). Never text: more than 1 % control bytes, or more than a quarter NULs.
fn text_encoding(head: &[u8]) -> Option<&'static Encoding> {
    if let Some((encoding, _)) = Encoding::for_bom(head) {
        return Some(encoding);
    }
    let pairs = head.len() / 2;
    let nul_at = |parity: usize| head.chunks_exact(2).filter(|pair| pair[parity] == 0).count();
    let (even, odd) = (nul_at(0), nul_at(1));
    if pairs >= 2 && odd * 10 >= pairs * 4 && even * 20 < pairs {
        return Some(UTF_16LE);
    }
    if pairs >= 2 && even * 10 >= pairs * 4 && odd * 20 < pairs {
        return Some(UTF_16BE);
    }
    let nuls = head.iter().filter(|&&b| b == 0).count();
    let controls = head.iter().filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c | 0)).count();
    if controls * 100 > head.len() || nuls * 4 > head.len() {
        return None;
    }
    let utf8 = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && e.valid_up_to() + 4 > head.len(),
    };
    match (utf8, nuls) {
        (true, _) => Some(UTF_8),
        (false, 0) => Some(legacy_encoding(head)),
        (false, _) => None,
    }
}

/// The legacy encoding these bytes most likely are in (never UTF-8: the caller ruled it out).
fn legacy_encoding(head: &[u8]) -> &'static Encoding {
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(head, true);
    detector.guess(None, chardetng::Utf8Detection::Deny)
}

fn is_utf16(encoding: &'static Encoding) -> bool {
    encoding == UTF_16LE || encoding == UTF_16BE
}

/// The first `max` bytes of the file as text in `encoding` (a byte-order mark wins and is
/// dropped; bytes that do not decode become U+FFFD), NULs read as spaces.
fn read_text(path: &Path, max: usize, encoding: &'static Encoding) -> Result<String, String> {
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|f| f.take(max as u64).read_to_end(&mut buf))
        .map_err(|e| format!("cannot read the file: {e}"))?;
    Ok(encoding.decode(&buf).0.replace('\0', " "))
}

const ODS: &str = "application/vnd.oasis.opendocument.spreadsheet";
const ODT: &str = "application/vnd.oasis.opendocument.text";
const ODP: &str = "application/vnd.oasis.opendocument.presentation";

/// The `mimetype` entry of an OpenDocument file (a zip whose first entry names its type).
fn zip_mimetype(path: &Path) -> Option<String> {
    let mut archive = zip::ZipArchive::new(BufReader::new(File::open(path).ok()?)).ok()?;
    let mut kind = String::new();
    archive.by_name("mimetype").ok()?.take(200).read_to_string(&mut kind).ok()?;
    Some(kind.trim().to_owned())
}

fn zip_names(path: &Path) -> Result<Vec<String>, String> {
    let archive = zip::ZipArchive::new(BufReader::new(File::open(path).map_err(|e| e.to_string())?))
        .map_err(|e| format!("not a readable zip file: {e}"))?;
    Ok(archive.file_names().filter_map(|name| name.ok().map(|n| n.into_owned())).collect())
}

fn slide_names(path: &Path) -> Result<Vec<String>, String> {
    let mut slides: Vec<(u32, String)> = zip_names(path)?
        .into_iter()
        .filter_map(|n| {
            let num = n.strip_prefix("ppt/slides/slide")?.strip_suffix(".xml")?.parse().ok()?;
            Some((num, n))
        })
        .collect();
    slides.sort();
    Ok(slides.into_iter().map(|(_, n)| n).collect())
}

/// An e-mail as text: its From, To, Cc, Subject and Date, its bodies (plain text, or HTML read
/// as HTML is), then a line per attachment with its name, type and size. The attachments
/// themselves are members, evidence of their own (an attached e-mail as its whole message).
fn email_text(message: &mail_parser::Message, family: &mut family::Writer) -> String {
    use mail_parser::{MimeHeaders, PartType};
    let mut text = String::new();
    let headers = [
        ("From", properties::addresses(message.from())),
        ("To", properties::addresses(message.to())),
        ("Cc", properties::addresses(message.cc())),
        ("Subject", message.subject().map(str::to_owned)),
        ("Date", message.date().map(|d| d.to_rfc3339())),
    ];
    for (name, value) in headers {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            text.push_str(&format!("{name}: {value}\n"));
        }
    }
    text.push('\n');
    for part in message.text_bodies() {
        match &part.body {
            PartType::Html(html) => text.push_str(&html_to_text(html)),
            PartType::Text(plain) => text.push_str(plain),
            _ => {}
        }
        text.push('\n');
    }
    for (n, attachment) in message.attachments().enumerate() {
        let name = match attachment.attachment_name() {
            Some(name) if !name.trim().is_empty() => name.to_owned(),
            _ if attachment.message().is_some() => format!("attachment-{}.eml", n + 1),
            _ => format!("attachment-{}", n + 1),
        };
        let declared = attachment.content_type().map_or("application/octet-stream".to_owned(), |t| match t.subtype() {
            Some(sub) => format!("{}/{sub}", t.ctype()),
            None => t.ctype().to_owned(),
        });
        let bytes = attachment.contents();
        text.push_str(&format!("\nAttachment: {name} ({declared}, {} bytes)\n", bytes.len()));
        family.write(n, &name, &declared, bytes.len() as u64, bytes);
    }
    text
}

/// Which elements of an office format's XML hold text (local names, without the namespace).
struct Markup {
    /// Text inside these is kept (they may nest: an ODF footnote's paragraph inside a paragraph).
    text: &'static [&'static str],
    /// Each of these ends a line.
    paragraph: &'static [&'static str],
    /// Each of these empty elements stands for a space (tabs, line breaks, runs of spaces).
    space: &'static [&'static str],
}

/// WordprocessingML and PresentationML: runs of text in `t`, paragraphs `p`.
const OOXML: Markup = Markup { text: &["t"], paragraph: &["p"], space: &["tab", "br", "cr"] };
/// OpenDocument: text in paragraphs and headings, spaces, tabs and line breaks as elements.
const OPEN_DOCUMENT: Markup = Markup { text: &["p", "h"], paragraph: &["p", "h"], space: &["s", "tab", "line-break"] };

/// The text of some parts of an Office file, as `markup` says where it is, one line per
/// paragraph. Each part is decompressed through a size cap, so a zip bomb stops at the limit.
fn office_text(path: &Path, parts: &[impl AsRef<str>], markup: &Markup, limits: &Limits) -> Result<String, String> {
    use quick_xml::events::Event;
    let mut archive = zip::ZipArchive::new(BufReader::new(File::open(path).map_err(|e| e.to_string())?))
        .map_err(|e| format!("not a readable Office file: {e}"))?;
    let mut text = String::new();
    for part in parts {
        let mut xml = Vec::new();
        archive
            .by_name(part.as_ref())
            .map_err(|e| format!("Office file without {}: {e}", part.as_ref()))?
            .take(limits.max_parse_bytes)
            .read_to_end(&mut xml)
            .map_err(|e| format!("cannot decompress {}: {e}", part.as_ref()))?;
        let mut reader = quick_xml::Reader::from_reader(xml.as_slice());
        let is = |names: &[&str], name: quick_xml::name::LocalName| names.contains(&name.into_inner());
        let mut depth = 0usize;
        let mut buf = Vec::new();
        loop {
            match reader.read_event_into(&mut buf) {
                Ok(Event::Start(e)) => {
                    if is(markup.text, e.local_name()) {
                        depth += 1;
                    }
                    // PowerPoint writes a line break with content (`<a:br><a:rPr/></a:br>`).
                    if is(markup.space, e.local_name()) {
                        text.push(' ');
                    }
                    // A paragraph that starts inside another (an ODF footnote) is a word apart.
                    if is(markup.paragraph, e.local_name()) && !text.is_empty() && !text.ends_with(char::is_whitespace)
                    {
                        text.push('\n');
                    }
                }
                Ok(Event::End(e)) => {
                    if is(markup.text, e.local_name()) {
                        depth = depth.saturating_sub(1);
                    }
                    if is(markup.paragraph, e.local_name()) {
                        text.push('\n');
                    }
                }
                Ok(Event::Empty(e)) if is(markup.space, e.local_name()) => text.push(' '),
                Ok(Event::Text(t)) if depth > 0 => text.push_str(&t.xml10_content()),
                Ok(Event::GeneralRef(r)) if depth > 0 => xml::reference(r, &mut text),
                Ok(Event::Eof) => break,
                Err(e) => return Err(format!("malformed XML in {}: {e}", part.as_ref())),
                _ => {}
            }
            buf.clear();
            if text.len() > limits.max_text_bytes {
                return Ok(text);
            }
        }
        text.push('\n');
    }
    Ok(text)
}

/// Visible text of an HTML page (see [`html_document`]).
pub fn html_to_text(html: &str) -> String {
    html_document(html).0
}

/// Visible text of an HTML page, read by html5ever's tokenizer (the WHATWG one browsers use, so
/// quoted attributes, comments, CDATA and every named character reference are read as a
/// browser reads them): the text between tags, a space for each tag, and nothing of what
/// script, style, noscript and the other raw-text elements hold. And what the page says of
/// itself: its first `<title>` (also kept in the text, as a browser shows it in its tab) and
/// `<meta name="author">`.
fn html_document(html: &str) -> (String, Properties) {
    use html5ever::tendril::StrTendril;
    use html5ever::tokenizer::states::RawKind;
    use html5ever::tokenizer::{BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts};
    use std::cell::{Cell, RefCell};

    #[derive(Default)]
    struct Text {
        out: RefCell<String>,
        /// Inside an element whose content is not shown.
        hidden: Cell<bool>,
        /// Inside the first `<title>`: its text is gathered here too.
        title: RefCell<Option<String>>,
        in_title: Cell<bool>,
        author: RefCell<Option<String>>,
    }
    impl TokenSink for Text {
        type Handle = ();
        fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
            match token {
                Token::TagToken(tag) => {
                    let mut out = self.out.borrow_mut();
                    if !out.ends_with(char::is_whitespace) {
                        out.push(' ');
                    }
                    let attr = |name: &str| tag.attrs.iter().find(|a| &*a.name.local == name).map(|a| &*a.value);
                    if &*tag.name == "meta"
                        && attr("name").is_some_and(|n| n.eq_ignore_ascii_case("author"))
                        && self.author.borrow().is_none()
                    {
                        *self.author.borrow_mut() = attr("content").and_then(properties::value);
                    }
                    match (tag.kind, &*tag.name) {
                        (TagKind::StartTag, "title") if self.title.borrow().is_none() && !tag.self_closing => {
                            self.in_title.set(true);
                            *self.title.borrow_mut() = Some(String::new());
                        }
                        (TagKind::EndTag, "title") => self.in_title.set(false),
                        _ => {}
                    }
                    // The tokenizer reads an element's content as raw text only when told to,
                    // as a browser's tree builder tells it.
                    let raw = match &*tag.name {
                        "script" => Some((RawKind::ScriptData, true)),
                        "style" | "noscript" | "xmp" | "iframe" | "noembed" | "noframes" => {
                            Some((RawKind::Rawtext, true))
                        }
                        "title" | "textarea" => Some((RawKind::Rcdata, false)),
                        _ => None,
                    };
                    match (tag.kind, raw) {
                        (TagKind::StartTag, Some((kind, hidden))) if !tag.self_closing => {
                            self.hidden.set(hidden);
                            return TokenSinkResult::RawData(kind);
                        }
                        (TagKind::EndTag, Some(_)) => self.hidden.set(false),
                        _ => {}
                    }
                }
                Token::CharacterTokens(text) if !self.hidden.get() => {
                    if self.in_title.get()
                        && let Some(title) = self.title.borrow_mut().as_mut()
                    {
                        title.push_str(&text);
                    }
                    self.out.borrow_mut().push_str(&text)
                }
                _ => {}
            }
            TokenSinkResult::Continue
        }
    }

    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let tokenizer = Tokenizer::new(Text::default(), TokenizerOpts::default());
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    let sink = tokenizer.sink;
    // A no-break space (`&nbsp;`) separates words as a space does; a title's runs of white
    // space are one space, as a browser shows it.
    let title = sink.title.take().map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "));
    let properties = Properties {
        title: title.as_deref().and_then(properties::value),
        author: sink.author.take(),
        ..Properties::default()
    };
    (sink.out.take().replace('\u{a0}', " "), properties)
}

/// Drop NUL and other control characters (Postgres text cannot hold NUL) and cut the text at
/// `max` bytes on a character boundary. Returns the text and whether it was cut.
/// Characters that stand for a hyphen (Unicode's hyphen and non-breaking hyphen, and the minus
/// sign, which PostScript's Latin-1 encoding gives for `-`) become `-` and soft hyphens go, so
/// that `INV-2024-0042` is found as typed whatever wrote it.
pub fn clean(raw: &str, max: usize) -> (String, bool) {
    let mut text: String = raw
        .chars()
        .filter(|c| (!c.is_control() || matches!(*c, '\n' | '\t' | PAGE_BREAK)) && *c != '\u{ad}')
        .map(|c| if matches!(c, '\u{2010}' | '\u{2011}' | '\u{2212}') { '-' } else { c })
        .collect();
    if text.len() <= max {
        return (text, false);
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    (text, true)
}

/// How text is cut for indexing.
#[derive(Debug, Clone, Copy)]
pub struct Chunking {
    /// Each piece of the text is at most this long...
    pub bytes: usize,
    /// ...and each chunk after the first starts up to this much earlier, at a word, so that a
    /// phrase this long that straddles a cut is whole in one chunk.
    pub overlap: usize,
}

/// How the worker cuts text for indexing: chunks of about 8 KiB (see the content_chunk
/// migration), each sharing its first 256 bytes or less with the one before, so a phrase across
/// a cut is still found.
pub const INDEX_CHUNKING: Chunking = Chunking { bytes: 8 * 1024, overlap: 256 };

/// Split text into pieces of at most `c.bytes`, cut at whitespace where there is some and
/// after every [`PAGE_BREAK`], each chunk after the first starting `c.overlap` bytes or less
/// before its piece.
pub fn chunks(text: &str, c: Chunking) -> Vec<&str> {
    pieces(text, c).into_iter().map(|(_, chunk)| chunk).collect()
}

/// [`chunks`], each with the page its own piece starts on: 1 and a page more after each
/// [`PAGE_BREAK`] before it (the overlap it repeats may lie on the page before).
pub fn paged_chunks(text: &str, c: Chunking) -> Vec<(&str, i32)> {
    let (mut page, mut counted) = (1, 0);
    pieces(text, c)
        .into_iter()
        .map(|(start, chunk)| {
            page += text[counted..start].matches(PAGE_BREAK).count() as i32;
            counted = start;
            (chunk, page)
        })
        .collect()
}

/// The chunks of `text`, each with where its own piece starts.
fn pieces(text: &str, c: Chunking) -> Vec<(usize, &str)> {
    let mut starts = vec![0];
    let mut at = 0;
    loop {
        let rest = &text[at..];
        let mut window = rest.len().min(c.bytes);
        while !rest.is_char_boundary(window) {
            window -= 1;
        }
        // A page break ends a piece; the next begins right after it.
        if let Some(brk) = rest[..window].find(PAGE_BREAK).filter(|&i| at + i + 1 < text.len()) {
            at += brk + 1;
            starts.push(at);
            continue;
        }
        if rest.len() <= c.bytes {
            break;
        }
        at += rest[..window].rfind(char::is_whitespace).filter(|&w| w > c.bytes / 2).unwrap_or(window);
        starts.push(at);
    }
    // Blanks after the last cut make no chunk of their own.
    let end = if starts.len() > 1 && text[at..].trim().is_empty() { starts.pop().unwrap_or(at) } else { text.len() };
    let ends = starts.iter().skip(1).copied().chain([end]);
    starts
        .iter()
        .zip(ends)
        .map(|(&start, end)| {
            let mut from = start.saturating_sub(c.overlap);
            while !text.is_char_boundary(from) {
                from += 1;
            }
            // Start after a space in the overlap, so the chunk begins with a whole word.
            let from = text[from..start].find(char::is_whitespace).map_or(start, |w| from + w);
            (start, &text[from.min(start)..end])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn html_keeps_visible_text_only() {
        let html = "<html><head><style>p{color:red}</style><script>var x = '<b>';</script></head>\
                    <body><p>Invoice&nbsp;#42 &amp; receipt</p><p>Paid</p></body></html>";
        let text = html_to_text(html);
        assert_eq!(text.split_whitespace().collect::<Vec<_>>(), ["Invoice", "#42", "&", "receipt", "Paid"]);
        // What a hand-written tag scanner got wrong: a `>` inside a quoted attribute, markup
        // inside a comment, an end tag inside a script's string, named references beyond the
        // commonest, CDATA, an unquoted attribute with a slash.
        let html = "<p><a title=\"1 > 0\" href='x>y'>Exhibit</a> <!-- <b>draft</b> --> A</p>\
                    <script>document.write(\"</p><p>injected</p>\")</script>\
                    <p>Caf&eacute; &euro;12 &#x41;&#66; <![CDATA[ignored]]> <img src=a/b.png>Signed</p>";
        let words: Vec<String> = html_to_text(html).split_whitespace().map(str::to_owned).collect();
        assert_eq!(words, ["Exhibit", "A", "Café", "€12", "AB", "Signed"], "{words:?}");
        // What the page says of itself: its first title (white space as a browser shows it)
        // and its author.
        let page = "<html><head><title>Board\n  minutes &amp; votes</title><meta name=\"Author\" content=\" R. Quist \">\
                    </head><body><title>second</title>x</body></html>";
        let (text, properties) = html_document(page);
        assert_eq!(
            (properties.title.as_deref(), properties.author.as_deref()),
            (Some("Board minutes & votes"), Some("R. Quist"))
        );
        assert!(text.contains("minutes & votes"), "the title is text too, as a browser shows it: {text}");
        assert!(html_document("<p>no head</p>").1.is_empty());
    }

    #[test]
    fn clean_strips_nul_and_cuts_on_a_char_boundary() {
        assert_eq!(clean("a\0b\u{1}c\nd", 100), ("abc\nd".into(), false));
        assert_eq!(clean("INV\u{2212}2024\u{2011}0042 discrep\u{ad}ancy", 100).0, "INV-2024-0042 discrepancy");
        assert_eq!(clean("ééé", 3), ("é".into(), true));
    }

    #[test]
    fn chunks_split_at_whitespace_and_cover_all_text() {
        let flat = Chunking { bytes: 64, overlap: 0 };
        let text = "alpha beta gamma delta epsilon ".repeat(100);
        let parts = chunks(&text, flat);
        assert!(parts.iter().all(|c| c.len() <= 64));
        assert_eq!(parts.concat(), text);
        assert_eq!(chunks("", flat), vec![""]);
        let unbroken = "x".repeat(200);
        assert_eq!(chunks(&unbroken, flat).len(), 4);
        assert_eq!(chunks("some words   \n ", flat), vec!["some words   \n "]);
    }

    #[test]
    fn a_pdf_is_read_page_by_page() {
        let pages = ["Exhibit A cover sheet", "Deposition of the harbour master", "Signed and sealed"];
        let x = extract_with("deposition.pdf", &crate::samples::pdf_pages(&pages), &Limits::default()).unwrap();
        assert!(x.paged, "{x:?}");
        let read: Vec<&str> = x.text.split(PAGE_BREAK).map(str::trim).collect();
        assert_eq!(read, pages, "{:?}", x.text);
    }

    /// The words of a text: runs of letters and digits, in lower case.
    fn words(text: &str) -> std::collections::BTreeSet<String> {
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
    }

    #[test]
    fn pdfs_from_every_producer_are_read_whole() {
        // The same two pages written by six producers (tests/fixtures/make-pdfs.sh); the scanned
        // one with an OCR layer holds page 1 only. pdf-extract, the reader before, lost lines or
        // whole files of these (scripts/pdf-recall).
        let pages = include_str!("../tests/fixtures/producers.txt");
        let source = pages.replace("\\f\n", "");
        let first_page = pages.split("\\f\n").next().unwrap();
        let ocr_layer = first_page.replace("Müller in Köln", "Muller in Koln");
        let producers: [(&str, &[u8], &str); 6] = [
            ("libreoffice", include_bytes!("../tests/fixtures/producer-libreoffice.pdf"), &source),
            ("chromium", include_bytes!("../tests/fixtures/producer-chromium.pdf"), &source),
            ("ghostscript", include_bytes!("../tests/fixtures/producer-ghostscript.pdf"), &source),
            ("cairo", include_bytes!("../tests/fixtures/producer-cairo.pdf"), &source),
            // Tesseract wrote "Muller in Koln" into this layer: what the reader sees is that.
            ("ocr-layer", include_bytes!("../tests/fixtures/producer-ocr-layer.pdf"), &ocr_layer),
            ("pdf-samples", &crate::samples::pdf_pages(&[first_page, "Signed, Quentin Ravensworth"]), ""),
        ];
        for (producer, bytes, text) in producers {
            let x = extract_with(&format!("{producer}.pdf"), bytes, &Limits::default()).unwrap();
            assert_eq!((x.extractor.as_str(), x.reason, x.paged), ("pdf", None, true), "{producer}: {x:?}");
            let read = words(&x.text);
            let mut missed: Vec<String> = words(text).difference(&read).cloned().collect();
            // Chromium breaks the line inside INV-2024-0042 after "2024-", and pdftotext joins
            // a line that ends with a hyphen to the next without it: "INV-20240042".
            if producer == "chromium" {
                assert!(read.contains("20240042"), "{:?}", x.text);
                missed.retain(|w| w != "0042");
            } else if !text.is_empty() {
                // Ghostscript's text has minus signs for its hyphens: indexed as hyphens.
                assert!(x.text.contains("INV-2024-0042"), "{producer}: {:?}", x.text);
            }
            assert!(missed.is_empty(), "{producer} lost {missed:?} of {:?}", x.text);
        }
    }

    #[test]
    fn rtf_is_read_as_its_writers_write_it() {
        // LibreOffice's RTF (tests/fixtures/make-deposition.sh): every character past ASCII as \uN,
        // paragraphs, a tab, a table; its style sheet and info block (title, author) are not text.
        let lo = extract_with("deposition.rtf", include_bytes!("../tests/fixtures/deposition.rtf"), &Limits::default())
            .unwrap();
        assert_eq!((lo.media_type.as_str(), lo.extractor.as_str(), lo.reason), ("application/rtf", "rtf", None));
        let lines: Vec<&str> = lo.text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines,
            [
                "Deposition of Zebulon Quist",
                "Müller in Köln paid €1,250 to Łukasz Żółć on 14 March 2024; invoice INV-2024-0042.",
                "The witness said “no comment”\ttwice.",
                "laptop\tsealed bag 7",
                "東京地方裁判所 hearing.",
            ],
            "{:?}",
            lo.text
        );
        assert!(!lo.text.contains("Hidden Author Name") && !lo.text.contains("Heading"), "{:?}", lo.text);
        // WordPad's and Word's form: \'hh bytes in the document's code page (1252: \'80 is €)
        // or in a font's (\fcharset238, 1250: \'a3 is Ł), a field's result but not its
        // instruction, a picture's hex data left out, \uN followed by its stand-in.
        let word =
            extract_with("wordpad.rtf", include_bytes!("../tests/fixtures/wordpad.rtf"), &Limits::default()).unwrap();
        let lines: Vec<&str> = word.text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines,
            [
                "Deposition of Zebulon Quist",
                "Müller in Köln paid €1,250 to Łukasz on 14 March 2024; invoice INV-2024-0042.",
                "The witness said “no comment”\ttwice.",
                "exhibit link",
                "Bookmarked text.",
                "東京地方 court.",
            ],
            "{:?}",
            word.text
        );
        // A double-byte code page's bytes are decoded together, and a character past U+FFFF
        // written as two \uN (a surrogate pair) is one character.
        let cjk =
            extract_with("j.rtf", b"{\\rtf1\\ansi\\ansicpg932 \\'83\\'65\\'83\\'58\\'83\\'67}", &Limits::default());
        assert_eq!(cjk.unwrap().text, "\u{30c6}\u{30b9}\u{30c8}");
        let emoji = extract_with("e.rtf", b"{\\rtf1 seal \\u-10179?\\u-8704? intact}", &Limits::default());
        assert_eq!(emoji.unwrap().text, "seal \u{1f600} intact");
        // Nesting is a loop, not recursion: deep groups cost no stack, and past the bound the
        // file is refused.
        let deep = format!("{{\\rtf1 {}text{}}}", "{".repeat(5000), "}".repeat(5000));
        assert!(extract_with("deep.rtf", deep.as_bytes(), &Limits::default()).unwrap().text.contains("text"));
        let deeper = format!("{{\\rtf1 {}", "{".repeat(20_000));
        let refused = extract_with("deeper.rtf", deeper.as_bytes(), &Limits::default()).unwrap_err();
        assert!(refused.contains("nested deeper than"), "{refused}");
    }

    #[test]
    fn documents_say_what_they_state_of_themselves() {
        let read = |name: &str, bytes: &[u8]| extract_with(name, bytes, &Limits::default()).unwrap();
        // One document with a title and an author, as LibreOffice writes it in three formats
        // (tests/fixtures/make-deposition.sh); pages only where the format counts them.
        let formats: [(&str, &[u8], Option<i32>, bool); 3] = [
            ("deposition.docx", include_bytes!("../tests/fixtures/deposition.docx"), None, true),
            ("deposition.odt", include_bytes!("../tests/fixtures/deposition.odt"), Some(1), true),
            ("deposition.rtf", include_bytes!("../tests/fixtures/deposition.rtf"), None, false),
        ];
        for (name, bytes, pages, application) in formats {
            let x = read(name, bytes);
            assert!(x.text.contains("Deposition of Zebulon Quist"), "{name}: {:?}", x.text);
            let p = &x.properties;
            assert_eq!(
                (p.title.as_deref(), p.author.as_deref(), p.pages),
                (Some("Deposition summary"), Some("Hidden Author Name"), pages),
                "{name}: {p:?}"
            );
            assert_eq!(
                p.application.as_deref().is_some_and(|a| a.starts_with("LibreOffice/7.4")),
                application,
                "{p:?}"
            );
        }
        // A PDF's info dictionary, by pdfinfo.
        let writer = read("exhibit.pdf", include_bytes!("../tests/fixtures/producer-libreoffice.pdf")).properties;
        assert_eq!(
            (writer.pages, writer.application.as_deref(), writer.title.as_deref()),
            (Some(2), Some("Writer"), None)
        );
        assert!(writer.created.as_deref().is_some_and(|d| d.starts_with("2026-12-06T")), "{writer:?}");
        let chromium = read("exhibit.pdf", include_bytes!("../tests/fixtures/producer-chromium.pdf")).properties;
        assert_eq!(chromium.title.as_deref(), Some("Exhibit 27"), "{chromium:?}");
        // An e-mail's headers.
        let eml = crate::samples::eml("Dana Whitfield <dana@example.org>", "Fwd: exhibit 14", "Attached.", &[]);
        let mail = read("fwd.eml", &eml).properties;
        assert_eq!(
            (mail.title.as_deref(), mail.author.as_deref(), mail.to.as_deref()),
            (
                Some("Fwd: exhibit 14"),
                Some("Dana Whitfield <dana@example.org>"),
                Some("Legal Hold <hold@example.org>, records@example.org")
            ),
            "{mail:?}"
        );
        assert_eq!(mail.created.as_deref(), Some("2024-03-12T09:15:00+01:00"), "{mail:?}");
        // Plain text states nothing.
        assert!(read("notes.txt", b"just words").properties.is_empty());
    }

    #[test]
    fn scans_are_read_by_ocr_and_say_so() {
        let scan = include_bytes!("../tests/fixtures/scan-page.png");
        let image_only = include_bytes!("../tests/fixtures/scan-image-only.pdf");
        let expected = ["affidavit", "marguerite", "olander", "reconciled", "inv", "0042", "marsh", "flagged"];
        let image = extract_with("scan.png", scan, &Limits::default()).unwrap();
        assert_eq!((image.media_type.as_str(), image.extractor.as_str()), ("image/png", "ocr"), "{image:?}");
        assert_eq!(image.note.as_deref(), Some("read by OCR (Tesseract, eng)"));
        let pdf = extract_with("scan.pdf", image_only, &Limits::default()).unwrap();
        assert_eq!((pdf.extractor.as_str(), pdf.reason), ("pdf+ocr", None), "{pdf:?}");
        assert!(
            pdf.note.as_deref().is_some_and(|n| n.starts_with("page(s) 1 have no text layer and were read by OCR"))
        );
        for x in [&image, &pdf] {
            let read = words(&x.text);
            assert!(expected.iter().all(|w| read.contains(*w)), "{:?}", x.text);
        }
        // Only the pages without text are read by OCR: page 1 here has text, page 2 draws nothing.
        let mixed = crate::samples::pdf_pages(&["Typed cover sheet of the deposition", ""]);
        let x = extract_with("mixed.pdf", &mixed, &Limits::default()).unwrap();
        assert!(x.text.starts_with("Typed cover sheet of the deposition") && x.extractor == "pdf+ocr", "{x:?}");
        assert!(x.note.as_deref().is_some_and(|n| n.starts_with("page(s) 2 have")), "{x:?}");
        // A page whose only text is a stamp (a Bates number) is taken for a scan too; it keeps
        // its own text when OCR reads no more of it.
        let stamped = crate::samples::pdf_pages(&["Bates ABC000123"]);
        let x = extract_with("stamped.pdf", &stamped, &Limits::default()).unwrap();
        assert!(x.text.contains("ABC000123") && x.extractor == "pdf+ocr", "{x:?}");
    }

    #[test]
    fn without_ocr_or_past_its_time_a_scan_says_why_it_has_no_text() {
        let scan = include_bytes!("../tests/fixtures/scan-page.png");
        let image_only = include_bytes!("../tests/fixtures/scan-image-only.pdf");
        let off = Limits { ocr_languages: None, ..Limits::default() };
        let image = extract_with("scan.png", scan, &off).unwrap();
        assert_eq!((image.text.as_str(), image.reason), ("", Some(TextReason::UnsupportedType)), "{image:?}");
        let pdf = extract_with("scan.pdf", image_only, &off).unwrap();
        assert_eq!(pdf.reason, Some(TextReason::NoTextLayer), "{pdf:?}");
        assert!(pdf.note.as_deref().is_some_and(|n| n.ends_with("OCR is off (INGEST_OCR_LANGUAGES=off)")), "{pdf:?}");
        // The time ran short before OCR could start on the page.
        let late = Limits { deadline: Some(Instant::now()), ..Limits::default() };
        let pdf = extract_with("scan.pdf", image_only, &late).unwrap();
        assert_eq!((pdf.text.as_str(), pdf.reason), ("", Some(TextReason::Timeout)), "{pdf:?}");
        assert!(pdf.note.as_deref().is_some_and(|n| n.contains("1 page(s) without a text layer were left unread")));
        // Tesseract has no data for the language: OCR fails, and says so.
        let unknown = Limits { ocr_languages: Some("qqq".into()), ..Limits::default() };
        for (name, bytes) in [("scan.png", &scan[..]), ("scan.pdf", &image_only[..])] {
            let x = extract_with(name, bytes, &unknown).unwrap();
            assert_eq!(x.reason, Some(TextReason::OcrFailed), "{x:?}");
            assert!(x.note.as_deref().is_some_and(|n| n.contains("Tesseract could not read it")), "{x:?}");
        }
    }

    #[test]
    fn chunks_end_at_page_breaks_and_know_their_page() {
        let c = Chunking { bytes: 64, overlap: 8 };
        let page = |n: usize| format!("page{n} ").repeat(4);
        let text = format!("{}\x0c{}\x0c\x0c{}", page(1), page(2), "long ".repeat(30));
        let chunked = paged_chunks(&text, c);
        let pages: Vec<i32> = chunked.iter().map(|(_, p)| *p).collect();
        assert_eq!(pages, [1, 2, 3, 4, 4, 4], "{chunked:?}");
        assert!(
            chunked[1].0.contains(&page(2)) && chunked[1].0.contains("page1"),
            "the overlap reaches back: {chunked:?}"
        );
        assert!(chunked[3].0.trim_start().starts_with("long"), "{chunked:?}");
        assert!(chunked.iter().all(|(t, _)| t.len() <= 64 + 8), "{chunked:?}");
        // Text without page breaks is cut as before, all on page 1.
        let flat = "alpha beta gamma delta ".repeat(20);
        assert_eq!(paged_chunks(&flat, c).iter().map(|(t, _)| *t).collect::<Vec<_>>(), chunks(&flat, c));
        assert!(paged_chunks(&flat, c).iter().all(|(_, p)| *p == 1));
        assert_eq!(clean("a\x0cb", 10).0, "a\x0cb", "a page break is kept");
    }

    #[test]
    fn chunks_overlap_so_a_phrase_across_a_cut_is_whole_in_one() {
        let c = Chunking { bytes: 64, overlap: 20 };
        // Words that occur once each, so that a phrase found is the one meant.
        let text: String = (0..300).map(|n| format!("wörd{n} ")).collect();
        let parts = chunks(&text, c);
        assert!(parts.len() > 10 && parts.iter().all(|p| p.len() <= 64 + 20), "{parts:?}");
        // Every phrase of 10 bytes or so (from one word's start to a later word's end) lies
        // whole in some chunk; without the overlap, some are cut.
        let starts: Vec<usize> = text.match_indices(' ').map(|(i, _)| i + 1).filter(|&i| i < text.len()).collect();
        let phrases: Vec<&str> = starts
            .iter()
            .filter_map(|&from| Some(&text[from..starts.iter().copied().find(|&w| w >= from + 10)? - 1]))
            .collect();
        let whole_in = |parts: &[&str], phrase: &str| parts.iter().any(|p| p.contains(phrase));
        assert!(phrases.iter().all(|phrase| whole_in(&parts, phrase)), "{parts:?}");
        let flat = chunks(&text, Chunking { overlap: 0, ..c });
        assert!(phrases.iter().any(|phrase| !whole_in(&flat, phrase)), "{flat:?}");
        assert_eq!(chunks("", c), vec![""]);
    }

    fn extract_sample(sample: &crate::samples::Sample) -> Extracted {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &sample.bytes).unwrap();
        extract_file(file.path(), &sample.content_type, &sample.filename, &Limits::default()).unwrap()
    }

    #[test]
    fn every_sample_kind_is_sniffed_and_extracted() {
        for sample in crate::samples::all("m4rk3r") {
            let x = extract_sample(&sample);
            if sample.has_text {
                assert!(x.text.contains("m4rk3r"), "{}: {x:?}", sample.filename);
                assert!(x.note.is_none() && x.reason.is_none(), "{}: {x:?}", sample.filename);
            } else {
                // The photo: read by OCR, which finds no text in it.
                assert_eq!((x.extractor.as_str(), x.text.trim(), x.reason), ("ocr", "", None), "{}", sample.filename);
                let note = x.note.clone().unwrap_or_default();
                assert_eq!(note, format!("no text found in this {} by OCR (eng)", x.media_type), "{}", sample.filename);
            }
        }
    }

    #[test]
    fn types_come_from_the_bytes_not_the_claim() {
        let pdf = crate::samples::Sample {
            content_type: "text/plain".into(),
            filename: "renamed.txt".into(),
            ..crate::samples::all("x").into_iter().find(|s| s.filename.ends_with(".pdf")).unwrap()
        };
        let x = extract_sample(&pdf);
        assert_eq!((x.media_type.as_str(), x.extractor.as_str()), ("application/pdf", "pdf"));
    }

    #[test]
    fn text_past_the_cap_is_cut_and_noted() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "word ".repeat(1000)).unwrap();
        let limits = Limits { max_text_bytes: 100, ..Limits::default() };
        let x = extract_file(file.path(), "text/plain", "big.txt", &limits).unwrap();
        assert_eq!((x.text.len(), x.truncated, x.reason), (100, true, Some(TextReason::Truncated)));
        assert!(x.note.unwrap().contains("only the beginning is indexed"));
    }

    #[test]
    fn only_plain_text_is_extracted_in_process() {
        for sample in crate::samples::all("m") {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), &sample.bytes).unwrap();
            let in_process =
                extract_plain_text(file.path(), &sample.content_type, &sample.filename, &Limits::default());
            let plain = matches!(
                sample.content_type.as_str(),
                "text/plain" | "text/markdown" | "text/csv" | "application/json"
            );
            assert_eq!(in_process.is_some(), plain, "{}", sample.filename);
        }
    }

    #[test]
    fn text_detection() {
        assert_eq!(text_encoding(b"plain words\nand lines"), Some(UTF_8));
        assert_eq!(text_encoding("caf\u{e9}".as_bytes()), Some(UTF_8));
        assert_eq!(text_encoding(b"\x00\x01\x02binary"), None);
        assert_eq!(text_encoding(&"é".as_bytes()[..1]), Some(UTF_8), "a character cut at the end of the sample");
        assert_eq!(text_encoding(b"word0\0word1\0word2"), Some(UTF_8), "NULs between words");
        assert_eq!(text_encoding(&[0u8; 64]), None);
        assert_eq!(text_encoding(b"caf\xe9 \x80100"), Some(encoding_rs::WINDOWS_1252));
    }

    /// A file of `bytes`, extracted as the worker would (declared as text/plain).
    fn extract_bytes(filename: &str, bytes: &[u8]) -> Extracted {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        extract_file(file.path(), "text/plain", filename, &Limits::default()).unwrap()
    }

    fn utf16(text: &str, le: bool, bom: bool) -> Vec<u8> {
        let mut out = if bom { vec![0xff, 0xfe] } else { vec![] };
        if !le && bom {
            out = vec![0xfe, 0xff];
        }
        for unit in text.encode_utf16() {
            out.extend(if le { unit.to_le_bytes() } else { unit.to_be_bytes() });
        }
        out
    }

    #[test]
    fn utf16_and_legacy_code_pages_are_read_as_text() {
        let text = "Get-Process | Out-File: Überprüfung der Zugänge, 東京\r\n";
        for (le, bom) in [(true, true), (true, false), (false, true), (false, false)] {
            let x = extract_bytes("processes.txt", &utf16(&text.repeat(50), le, bom));
            assert_eq!((x.media_type.as_str(), x.extractor.as_str()), ("text/plain", "text"), "le {le} bom {bom}");
            assert!(
                x.text.starts_with("Get-Process | Out-File: Überprüfung der Zugänge, 東京"),
                "le {le} bom {bom}: {x:?}"
            );
            assert_eq!(x.note, None);
        }
        // Windows-1252: é is 0xE9, ü 0xFC, € 0x80.
        let csv = b"name;city;amount\nJos\xe9 M\xfcller;K\xf6ln;\x80 1.200\n".repeat(20);
        let x = extract_bytes("ledger.csv", &csv);
        assert_eq!(x.media_type, "text/csv");
        assert!(x.text.contains("José Müller;Köln;€ 1.200"), "{x:?}");
        assert!(x.note.as_deref().is_some_and(|n| n.contains("windows-1252")), "{x:?}");
        // Other legacy code pages, told apart by what their bytes look like as text.
        let samples = [
            ("Протокол допроса свидетеля: изъят ноутбук, опечатан пакет №7.\n", encoding_rs::WINDOWS_1251),
            ("Zeznanie świadka: zabezpieczono laptopa, źródło żądania — sąd.\n", encoding_rs::WINDOWS_1250),
            ("東京地方裁判所　証拠物件の押収に関する報告書。\n", encoding_rs::SHIFT_JIS),
            ("证人证词：查获笔记本电脑一台，封存证物袋七号。\n", encoding_rs::GBK),
        ];
        for (text, encoding) in samples {
            let text = text.repeat(8);
            let (bytes, _, unmappable) = encoding.encode(&text);
            assert!(!unmappable, "{}", encoding.name());
            let x = extract_bytes("statement.txt", &bytes);
            assert_eq!(x.text, text, "{}: {:?}", encoding.name(), x.note);
            let name = encoding.name().to_ascii_lowercase();
            assert!(x.note.as_deref().is_some_and(|n| n.contains(&format!("read as {name}"))), "{x:?}");
        }
        // NULs between the words are spaces, not glue.
        let x = extract_bytes("nul-bytes.txt", b"word1\0word2\0word3");
        assert_eq!(x.text, "word1 word2 word3");
        let x = extract_bytes("blank.txt", b" \n\n ");
        assert_eq!(x.note.as_deref(), Some("no text found in this text/plain"));
        assert_eq!(x.reason, None, "an empty text file holds no text that was missed");
    }

    #[test]
    fn an_email_is_read_with_its_headers_and_bodies_and_its_attachments_are_members() {
        use crate::samples::{eml, pdf};
        let inner = eml("Ops <ops@example.org>", "Re: Tarnwick relay logs", "Logs from the relay.", &[]);
        let affidavit = pdf("Affidavit of Marguerite Olander");
        let attached = format!("Attachment: exhibit-14.pdf (application/pdf, {} bytes)", affidavit.len());
        let outer = eml(
            "=?UTF-8?Q?Dana_Whitfi=C3=A9ld?= <dana@example.org>",
            "=?UTF-8?B?w4lsw6hhbm9yJ3MgZXhoaWJpdA==?=",
            "Please find the signed exhibit attached.",
            &[("exhibit-14.pdf", "application/pdf", affidavit.clone()), ("thread.eml", "message/rfc822", inner)],
        );
        let dir = tempfile::tempdir().unwrap();
        let family = FamilyLimits { dir: dir.path().to_owned(), max_members: 10, max_bytes: 1 << 20 };
        let limits = Limits { family: Some(family), ..Limits::default() };
        let x = extract_with("mail.bin", &outer, &limits).unwrap();
        assert_eq!((x.media_type.as_str(), x.extractor.as_str(), x.reason), ("message/rfc822", "email", None), "{x:?}");
        let lines: Vec<&str> = x.text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        for line in [
            "From: Dana Whitfiéld <dana@example.org>",
            "To: Legal Hold <hold@example.org>, records@example.org",
            "Subject: Élèanor's exhibit",
            "Date: 2024-03-12T09:15:00+01:00",
            "Please find the signed exhibit attached.",
            &attached,
        ] {
            assert!(lines.contains(&line), "no line {line:?} in {lines:#?}");
        }
        assert_eq!(lines.iter().filter(|l| **l == "Please find the signed exhibit attached.").count(), 1, "{lines:#?}");
        assert!(
            !x.text.contains("b0undary") && !x.text.contains("JVBERi"),
            "MIME structure or base64 leaked: {lines:#?}"
        );
        // The attachments are members, written out whole: the PDF as it was sent, the attached
        // e-mail as its message. Their text is theirs, not the message's.
        assert!(!x.text.contains("Olander") && !x.text.contains("Logs from the relay"), "{lines:#?}");
        let members: Vec<(&str, &str)> = x.members.iter().map(|m| (m.path.as_str(), m.content_type.as_str())).collect();
        assert_eq!(members, [("exhibit-14.pdf", "application/pdf"), ("thread.eml", "message/rfc822")]);
        assert_eq!(std::fs::read(dir.path().join("0")).unwrap(), affidavit);
        let thread = std::fs::read_to_string(dir.path().join("1")).unwrap();
        assert!(
            thread.contains("Subject: Re: Tarnwick relay logs") && thread.contains("Logs from the relay."),
            "{thread}"
        );
        assert_eq!((x.members_left, x.family_note), (0, None));
        // Plain text that only mentions headers is not taken for an e-mail.
        let notes = extract_with("notes.txt", b"From: the witness\nwe heard nothing.\n", &Limits::default()).unwrap();
        assert_eq!(notes.extractor, "text");
    }

    #[test]
    fn a_zip_lists_its_entries_and_writes_its_files_as_members() {
        let inner = crate::samples::zip_of([("deep/readme.txt", &b"inner words"[..])]);
        let bytes = crate::samples::zip_of([
            ("exhibits/", &b""[..]),
            ("exhibits/2024/ledger.csv", b"date,amount\n2024-03-01,120\n"),
            ("inner.zip", &inner),
            ("notes.txt", b"Quorvant was seen at the depot."),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let family = FamilyLimits { dir: dir.path().to_owned(), max_members: 2, max_bytes: 1 << 20 };
        let limits = Limits { family: Some(family), ..Limits::default() };
        let x = extract_with("bundle.zip", &bytes, &limits).unwrap();
        assert_eq!((x.media_type.as_str(), x.extractor.as_str(), x.reason), ("application/zip", "zip", None), "{x:?}");
        // Its text is its entries' paths (folders too) and their words, not the members' text.
        assert_eq!(
            x.text.lines().collect::<Vec<_>>(),
            [
                "exhibits/ (exhibits)",
                "exhibits/2024/ledger.csv (exhibits 2024 ledger csv)",
                "inner.zip (inner zip)",
                "notes.txt (notes txt)"
            ]
        );
        let paths: Vec<&str> = x.members.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(paths, ["exhibits/2024/ledger.csv", "inner.zip"]);
        assert_eq!(std::fs::read(dir.path().join("1")).unwrap(), inner, "a nested archive is written whole");
        assert_eq!(x.members_left, 1);
        assert_eq!(
            x.family_note.as_deref(),
            Some(
                "1 member(s) not made evidence: notes.txt (past the family's limit of members (INGEST_FAMILY_MAX_MEMBERS))"
            )
        );
        // Each knows its place in the archive (the folder entry is 0).
        assert_eq!(x.members.iter().map(|m| m.index).collect::<Vec<_>>(), [1, 2]);
        // Without a place to write them (the family is as deep as it may be) none is written.
        let listed = extract_with("bundle.zip", &bytes, &Limits::default()).unwrap();
        assert_eq!((listed.members.len(), listed.members_left, listed.family_note), (0, 3, None));
    }

    #[test]
    fn binary_formats_are_named_by_their_signatures() {
        let media = |bytes: &[u8]| extract_with("upload.bin", bytes, &Limits::default()).unwrap();
        let cases: [(&[u8], &str); 9] = [
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "image/png"),
            (b"\xff\xd8\xff\xe0\0\x10JFIF\0", "image/jpeg"),
            (b"RIFF\x24\0\0\0WEBPVP8 ", "image/webp"),
            (b"RIFF\x24\0\0\0WAVEfmt ", "audio/x-wav"),
            (b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom", "video/mp4"),
            (b"II*\0\x08\0\0\0", "image/tiff"),
            (b"Rar!\x1a\x07\x01\0", "application/vnd.rar"),
            (b"SQLite format 3\0", "application/vnd.sqlite3"),
            (b"\x7fELF\x02\x01\x01\0", "application/x-executable"),
        ];
        for (bytes, want) in cases {
            let mut bytes = bytes.to_vec();
            bytes.resize(512, 0);
            let x = media(&bytes);
            // Images go to OCR, which cannot read these headers without a picture.
            let reason = if OCR_IMAGES.contains(&want) { TextReason::OcrFailed } else { TextReason::UnsupportedType };
            assert_eq!((x.media_type.as_str(), x.reason), (want, Some(reason)), "{want}");
        }
        // Text that starts as a signature does is text: an MP3's "ID3". An RTF is read as RTF.
        let csv = media(b"ID3,owner,seal\n7,Ramirez,intact\n");
        assert_eq!((csv.extractor.as_str(), csv.reason), ("text", None), "{csv:?}");
        let rtf = media(b"{\\rtf1\\ansi Deposition of the harbour master}");
        assert!(rtf.text.contains("Deposition of the harbour master"), "{rtf:?}");
    }

    #[test]
    fn opendocument_text_and_slides_are_read() {
        // Made by odfpy (tests/fixtures/make-opendocument.py): a heading, a span, a tab, a run
        // of spaces, a footnote inside the paragraph, a table; a slide's text box.
        let odt = extract_with("statement.odt", include_bytes!("../tests/fixtures/statement.odt"), &Limits::default());
        let odt = odt.unwrap();
        assert_eq!((odt.media_type.as_str(), odt.extractor.as_str()), (ODT, "opendocument"), "{odt:?}");
        let words: Vec<&str> = odt.text.split_whitespace().collect();
        assert_eq!(
            words.join(" "),
            "Witness statement The courier Zebulon Quist arrived at 21:40 with the parcel.1 Confirmed by camera \
             footage. Signed on arrival. laptop sealed bag 7",
            "{:?}",
            odt.text
        );
        let odp = extract_with("briefing.odp", include_bytes!("../tests/fixtures/briefing.odp"), &Limits::default());
        let odp = odp.unwrap();
        assert_eq!(odp.media_type, ODP);
        // PowerPoint's line break has content (`<a:br><a:rPr/></a:br>`): the words on either
        // side stay apart.
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut zip = zip::ZipWriter::new(std::fs::File::create(file.path()).unwrap());
        zip.start_file("ppt/slides/slide1.xml", zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(
            b"<p:sld xmlns:a=\"a\" xmlns:p=\"p\"><a:p><a:r><a:t>first line</a:t></a:r><a:br><a:rPr/></a:br>\
              <a:r><a:t>second line</a:t></a:r></a:p></p:sld>",
        )
        .unwrap();
        zip.finish().unwrap();
        let slide = office_text(file.path(), &["ppt/slides/slide1.xml"], &OOXML, &Limits::default()).unwrap();
        assert_eq!(slide.split_whitespace().collect::<Vec<_>>(), ["first", "line", "second", "line"]);
        assert_eq!(odp.text.trim(), "Incident briefing: exfiltration via Tarnwick relay");
    }

    #[test]
    fn every_sheet_of_a_workbook_is_read_with_its_values() {
        // XLSX made in code (shared and inline strings, a number, a date), XLS and ODS made by
        // other writers (tests/fixtures/make-spreadsheets.py), each with the same two sheets.
        let xlsx = crate::samples::named("m4rk3r", "expense-ledger.xlsx");
        let x = extract_with(&xlsx.filename, &xlsx.bytes, &Limits::default()).unwrap();
        assert_eq!((x.extractor.as_str(), x.reason), ("spreadsheet", None), "{x:?}");
        assert_eq!(
            x.text,
            "Ledger\nvendor\tamount\tbooked\nQuorvant Holdings\t1200.5\t2024-03-31\n\n\
             Findings\nfinding\trun m4rk3r\nkickback\tduplicate invoices\n\n"
        );
        let files: [(&str, &[u8], &str); 2] = [
            ("ledger.xls", include_bytes!("../tests/fixtures/ledger.xls"), "application/vnd.ms-excel"),
            (
                "ledger.ods",
                include_bytes!("../tests/fixtures/ledger.ods"),
                "application/vnd.oasis.opendocument.spreadsheet",
            ),
        ];
        for (name, bytes, media_type) in files {
            let x = extract_with(name, bytes, &Limits::default()).unwrap();
            assert_eq!(
                (x.media_type.as_str(), x.extractor.as_str(), x.reason),
                (media_type, "spreadsheet", None),
                "{x:?}"
            );
            for line in
                ["Ledger", "Quorvant Holdings\t1200.5\t2024-03-31", "Brightwater LLC\t42\t2024-04-02", "Findings"]
            {
                assert!(x.text.lines().any(|l| l == line), "{name}: no line {line:?} in {:?}", x.text);
            }
            assert!(x.text.contains("segregation of duties breach\thigh"), "{name}: {:?}", x.text);
        }
        // Cut at the text limit like any other text.
        let small = Limits { max_text_bytes: 20, ..Limits::default() };
        let cut = extract_with(&xlsx.filename, &xlsx.bytes, &small).unwrap();
        assert_eq!((cut.text.len(), cut.reason), (20, Some(TextReason::Truncated)));
    }

    fn extract_with(filename: &str, bytes: &[u8], limits: &Limits) -> Result<Extracted, String> {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        extract_file(file.path(), "application/octet-stream", filename, limits)
    }

    #[test]
    fn less_text_than_the_file_may_hold_says_why_in_one_of_a_fixed_set() {
        let reason = |filename: &str, bytes: &[u8]| extract_with(filename, bytes, &Limits::default()).unwrap().reason;
        // Password-protected (tests/fixtures/make-encrypted.py): a PDF with a user password, and a
        // DOCX encrypted as a whole, which is an OLE compound file.
        let pdf =
            extract_with("sealed.pdf", include_bytes!("../tests/fixtures/encrypted.pdf"), &Limits::default()).unwrap();
        assert_eq!((pdf.media_type.as_str(), pdf.reason), ("application/pdf", Some(TextReason::Encrypted)), "{pdf:?}");
        assert!(pdf.note.as_deref().is_some_and(|n| n.contains("password")), "{pdf:?}");
        let docx =
            extract_with("draft.docx", include_bytes!("../tests/fixtures/encrypted.docx"), &Limits::default()).unwrap();
        assert_eq!((docx.media_type.as_str(), docx.reason), ("application/x-ole-storage", Some(TextReason::Encrypted)));
        // An owner password alone restricts printing, not reading: the text is there.
        let open =
            extract_with("memo.pdf", include_bytes!("../tests/fixtures/owner-only.pdf"), &Limits::default()).unwrap();
        assert!(open.text.contains("Restricted printing memo") && open.reason.is_none(), "{open:?}");
        // Another compound file (an Office 97-2003 document, say) has no extractor.
        let mut ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1".to_vec();
        ole.resize(4096, 0);
        assert_eq!(reason("minutes.doc", &ole), Some(TextReason::UnsupportedType));
        // A PDF without text (here: a page that draws nothing).
        assert_eq!(reason("scan.pdf", &crate::samples::pdf("")), Some(TextReason::NoTextLayer));
        // Over the parsing limit.
        let small = Limits { max_parse_bytes: 100, ..Limits::default() };
        let big = extract_with("report.pdf", &crate::samples::pdf(&"words ".repeat(50)), &small).unwrap();
        assert_eq!(big.reason, Some(TextReason::TooLarge));
        // A malformed PDF is a failure, which the worker records as corrupt.
        assert!(extract_with("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", &Limits::default()).is_err());
        // Every name is the one the migration's check allows, and reads back as itself.
        for r in TextReason::ALL {
            assert_eq!(TextReason::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }
}

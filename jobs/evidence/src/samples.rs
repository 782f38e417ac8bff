//! Small evidence files of every supported kind, made in code: the demo uploads them and the
//! tests use them, so neither depends on fixture files or on anything downloaded.

use std::io::{Cursor, Write};

/// One sample file and a word its text (or, for opaque types, its name) can be found by.
#[derive(Debug, Clone)]
pub struct Sample {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    /// A query that must find this file once it is indexed.
    pub find_with: String,
    /// Whether the query matches extracted text (false: filename/tags only).
    pub has_text: bool,
}

fn sample(filename: &str, content_type: &str, bytes: Vec<u8>, find_with: &str, has_text: bool) -> Sample {
    Sample {
        filename: filename.into(),
        content_type: content_type.into(),
        bytes,
        find_with: find_with.into(),
        has_text,
    }
}

/// The sample called `filename` from [`all`].
pub fn named(marker: &str, filename: &str) -> Sample {
    all(marker).into_iter().find(|s| s.filename == filename).unwrap_or_else(|| panic!("no sample named {filename}"))
}

/// The demo's set: one of each kind the pipeline handles, `marker` woven into every text so a
/// run's own files can be told apart.
pub fn all(marker: &str) -> Vec<Sample> {
    vec![
        sample(
            "interview-notes.txt",
            "text/plain",
            format!("Interview notes {marker}.\nThe witness saw the courier at the loading dock at 21:40.\n")
                .into_bytes(),
            "courier loading dock",
            true,
        ),
        sample(
            "incident-timeline.md",
            "text/markdown",
            format!("# Incident timeline {marker}\n\n- 09:12 phishing email opened\n- 09:30 credentials rotated\n")
                .into_bytes(),
            "phishing credentials",
            true,
        ),
        sample(
            "access-log.csv",
            "text/csv",
            format!("user,door,time,run\nalice,vault,08:00,{marker}\nbob,archive,08:05,{marker}\n").into_bytes(),
            "vault archive",
            true,
        ),
        sample(
            "chain-of-custody.json",
            "application/json",
            format!("{{\"item\":\"laptop\",\"custodian\":\"Detective Ramirez\",\"run\":\"{marker}\"}}").into_bytes(),
            "Ramirez custodian",
            true,
        ),
        sample(
            "press-release.html",
            "text/html",
            format!(
                "<html><head><style>.x{{}}</style></head><body><h1>Statement {marker}</h1>\
                 <p>The company confirms the data breach was contained.</p></body></html>"
            )
            .into_bytes(),
            "breach contained",
            true,
        ),
        sample(
            "audit-report.pdf",
            "application/pdf",
            pdf(&format!("Quarterly audit findings {marker} reconciliation variance")),
            "reconciliation variance",
            true,
        ),
        sample(
            "board-minutes.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            docx(&[&format!("Board minutes {marker}"), "The acquisition of Globex was approved unanimously."]),
            "acquisition Globex",
            true,
        ),
        sample("crime-scene-photo.png", "image/png", png(marker), "crime scene photo", false),
    ]
}

/// A one-page PDF with a real text layer (Helvetica, WinAnsi).
pub fn pdf(text: &str) -> Vec<u8> {
    let escaped = text.replace('\\', "\\\\").replace('(', "\\(").replace(')', "\\)");
    let stream = format!("BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_owned(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    out
}

/// A minimal DOCX (a zip with the parts Word needs), one paragraph per entry.
pub fn docx(paragraphs: &[&str]) -> Vec<u8> {
    let body: String = paragraphs
        .iter()
        .map(|p| {
            let p = p.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            format!("<w:p><w:r><w:t xml:space=\"preserve\">{p}</w:t></w:r></w:p>")
        })
        .collect();
    let parts = [
        (
            "[Content_Types].xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
             <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
             <Default Extension=\"xml\" ContentType=\"application/xml\"/>\
             <Override PartName=\"/word/document.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/></Types>"
                .to_owned(),
        ),
        (
            "_rels/.rels",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
             <Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"word/document.xml\"/></Relationships>"
                .to_owned(),
        ),
        (
            "word/document.xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}</w:body></w:document>"
            ),
        ),
    ];
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in parts {
        zip.start_file(name, options).expect("zip entry");
        zip.write_all(content.as_bytes()).expect("zip write");
    }
    zip.finish().expect("zip finish").into_inner()
}

/// Bytes that sniff as PNG (signature and a header chunk); there is no text to extract.
pub fn png(marker: &str) -> Vec<u8> {
    let mut bytes =
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00".to_vec();
    bytes.extend_from_slice(marker.as_bytes());
    bytes
}

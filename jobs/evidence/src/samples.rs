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
        sample(
            "expense-ledger.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            xlsx(&[
                ("Ledger", &[&["vendor", "amount", "booked"], &["Quorvant Holdings", "=1200.5", "#2024-03-31"]]),
                ("Findings", &[&["finding", &format!("run {marker}")], &["kickback", "duplicate invoices"]]),
            ]),
            "kickback duplicate invoices",
            true,
        ),
        sample(
            "forwarded-exhibit.eml",
            "message/rfc822",
            eml(
                "Dana Whitfield <dana@example.org>",
                &format!("Fwd: exhibit {marker}"),
                "Please find the signed exhibit attached.",
                &[("exhibit-14.pdf", "application/pdf", pdf("Affidavit of Marguerite Olander, notarised"))],
            ),
            // Its own words: the attachment is evidence of its own (a member).
            "signed exhibit attached",
            true,
        ),
        sample(
            "seized-archive.zip",
            "application/zip",
            zip_of([
                ("statements/", &b""[..]),
                (
                    format!("statements/witness-statement-{marker}.txt").as_str(),
                    format!("Statement {marker}: the van left the yard before midnight.").as_bytes(),
                ),
            ]),
            // Its text is its entries' paths; the statement is a member, evidence of its own.
            "witness statement",
            true,
        ),
        sample("crime-scene-photo.png", "image/png", png(marker), "crime scene photo", false),
    ]
}

/// A one-page PDF with a real text layer (Helvetica, WinAnsi).
pub fn pdf(text: &str) -> Vec<u8> {
    pdf_pages(&[text])
}

/// A PDF of one page per text, each with a real text layer (Helvetica, WinAnsi).
pub fn pdf_pages(pages: &[&str]) -> Vec<u8> {
    // Objects: 1 catalog, 2 page tree, 3 font, then a page and its content stream per page.
    let kids: Vec<String> = (0..pages.len()).map(|n| format!("{} 0 R", 4 + 2 * n)).collect();
    let mut objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), pages.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_owned(),
    ];
    for (n, text) in pages.iter().enumerate() {
        let escaped = text.replace('\\', "\\\\").replace('(', "\\(").replace(')', "\\)");
        let stream = format!("BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET");
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {} 0 R /Resources << /Font << /F1 3 0 R >> >> >>",
            5 + 2 * n
        ));
        objects.push(format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()));
    }
    pdf_of(&objects)
}

/// A PDF of these objects (numbered from 1; the first must be the catalog), with its
/// cross-reference table and trailer.
pub fn pdf_of(objects: &[String]) -> Vec<u8> {
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
    zip_of(parts.iter().map(|(name, content)| (*name, content.as_bytes())))
}

/// A minimal XLSX: sheets of rows of cells. A cell is a shared string, unless it starts with
/// `=` (a number: the rest) or `#` (a date, `#YYYY-MM-DD`, stored as Excel's day number with a
/// date format). The last sheet's first cell is an inline string rather than a shared one.
pub fn xlsx(sheets: &[(&str, &[&[&str]])]) -> Vec<u8> {
    let escape = |t: &str| t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let mut strings: Vec<String> = Vec::new();
    let mut parts: Vec<(String, String)> = Vec::new();
    for (n, (_, rows)) in sheets.iter().enumerate() {
        let mut data = String::new();
        for (r, row) in rows.iter().enumerate() {
            data.push_str(&format!("<row r=\"{}\">", r + 1));
            for (c, cell) in row.iter().enumerate() {
                let at = format!("{}{}", (b'A' + c as u8) as char, r + 1);
                let inline = n + 1 == sheets.len() && r == 0 && c == 0;
                data.push_str(&if let Some(number) = cell.strip_prefix('=') {
                    format!("<c r=\"{at}\"><v>{number}</v></c>")
                } else if let Some(date) = cell.strip_prefix('#') {
                    let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("#YYYY-MM-DD");
                    let epoch = chrono::NaiveDate::from_ymd_opt(1899, 12, 30).expect("a date");
                    format!("<c r=\"{at}\" s=\"1\"><v>{}</v></c>", (date - epoch).num_days())
                } else if inline {
                    format!("<c r=\"{at}\" t=\"inlineStr\"><is><t>{}</t></is></c>", escape(cell))
                } else {
                    strings.push(escape(cell));
                    format!("<c r=\"{at}\" t=\"s\"><v>{}</v></c>", strings.len() - 1)
                });
            }
            data.push_str("</row>");
        }
        parts.push((
            format!("xl/worksheets/sheet{}.xml", n + 1),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><worksheet xmlns=\"{MAIN}\"><sheetData>{data}</sheetData></worksheet>"
            ),
        ));
    }
    const MAIN: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
    const REL: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
    let sheet_list: String = (1..=sheets.len())
        .map(|n| format!("<sheet name=\"{}\" sheetId=\"{n}\" r:id=\"rId{n}\"/>", escape(sheets[n - 1].0)))
        .collect();
    let sheet_rels: String = (1..=sheets.len())
        .map(|n| format!("<Relationship Id=\"rId{n}\" Type=\"{REL}/worksheet\" Target=\"worksheets/sheet{n}.xml\"/>"))
        .collect();
    let overrides: String = (1..=sheets.len())
        .map(|n| {
            format!(
                "<Override PartName=\"/xl/worksheets/sheet{n}.xml\" \
                 ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>"
            )
        })
        .collect();
    let k = sheets.len();
    let shared: String = strings.iter().map(|t| format!("<si><t>{t}</t></si>")).collect();
    parts.extend([
        (
            "[Content_Types].xml".to_owned(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
                 <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
                 <Default Extension=\"xml\" ContentType=\"application/xml\"/>\
                 <Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>\
                 <Override PartName=\"/xl/sharedStrings.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml\"/>\
                 <Override PartName=\"/xl/styles.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml\"/>\
                 {overrides}</Types>"
            ),
        ),
        (
            "_rels/.rels".to_owned(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
                 <Relationship Id=\"rId1\" Type=\"{REL}/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>"
            ),
        ),
        (
            "xl/workbook.xml".to_owned(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><workbook xmlns=\"{MAIN}\" xmlns:r=\"{REL}\"><sheets>{sheet_list}</sheets></workbook>"
            ),
        ),
        (
            "xl/_rels/workbook.xml.rels".to_owned(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
                 {sheet_rels}<Relationship Id=\"rId{}\" Type=\"{REL}/sharedStrings\" Target=\"sharedStrings.xml\"/>\
                 <Relationship Id=\"rId{}\" Type=\"{REL}/styles\" Target=\"styles.xml\"/></Relationships>",
                k + 1,
                k + 2
            ),
        ),
        (
            "xl/sharedStrings.xml".to_owned(),
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><sst xmlns=\"{MAIN}\">{shared}</sst>"),
        ),
        (
            // Style 1 uses built-in number format 14, a date.
            "xl/styles.xml".to_owned(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><styleSheet xmlns=\"{MAIN}\"><cellXfs count=\"2\">\
                 <xf numFmtId=\"0\"/><xf numFmtId=\"14\" applyNumberFormat=\"1\"/></cellXfs></styleSheet>"
            ),
        ),
    ]);
    zip_of(parts.iter().map(|(name, content)| (name.as_str(), content.as_bytes())))
}

/// An e-mail (multipart/mixed) from `from` to two people, its body in plain text and HTML
/// (quoted-printable), and each attachment (name, type, bytes) in base64.
pub fn eml(from: &str, subject: &str, body: &str, attachments: &[(&str, &str, Vec<u8>)]) -> Vec<u8> {
    use base64::Engine as _;
    let boundary = "=_b0undary_7f3a";
    let mut out = format!(
        "From: {from}\r\nTo: Legal Hold <hold@example.org>, records@example.org\r\nSubject: {subject}\r\n\
         Date: Tue, 12 Mar 2024 09:15:00 +0100\r\nMessage-ID: <a1@example.org>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\nThis is a multi-part message in MIME format.\r\n\
         --{boundary}\r\nContent-Type: multipart/alternative; boundary=\"alt_{boundary}\"\r\n\r\n\
         --alt_{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
         {body}\r\n--alt_{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>{body}</p>\r\n--alt_{boundary}--\r\n"
    );
    for (name, content_type, bytes) in attachments {
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        let lines: Vec<&str> = encoded.as_bytes().chunks(76).map(|l| std::str::from_utf8(l).expect("base64")).collect();
        out.push_str(&format!(
            "--{boundary}\r\nContent-Type: {content_type}; name=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n{}\r\n",
            lines.join("\r\n")
        ));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out.into_bytes()
}

/// A zip of these (name, content) entries, deflated.
/// A ZIP archive of these entries (a name ending in `/` is a folder), deflated.
pub fn zip_of<'a>(parts: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in parts {
        if name.ends_with('/') {
            zip.add_directory(name, options).expect("zip folder");
            continue;
        }
        zip.start_file(name, options).expect("zip entry");
        zip.write_all(content).expect("zip write");
    }
    zip.finish().expect("zip finish").into_inner()
}

/// A blank 16×16 PNG, a picture with no text in it (OCR finds none), with the marker after its
/// end, where readers of PNG stop.
pub fn png(marker: &str) -> Vec<u8> {
    let mut bytes = include_bytes!("../tests/fixtures/blank.png").to_vec();
    bytes.extend_from_slice(marker.as_bytes());
    bytes
}

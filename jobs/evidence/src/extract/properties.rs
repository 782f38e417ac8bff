//! What a document says of itself: title, author, dates, pages, the program that wrote it, and
//! an e-mail's addressees, as its format records them (PDF's info dictionary by `pdfinfo`,
//! Office Open XML's `docProps`, OpenDocument's `meta.xml`, an e-mail's headers). Kept as the
//! file states them: a document's own claims, shown beside the custody fields, not facts
//! the service vouches for.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// A document's properties; each is there only when the file states it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Properties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The author (PDF, Office: its creator; an e-mail: From).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// When it was made, as ISO 8601 where the format allows (an e-mail: its Date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    /// Pages (PDF, word processing), or slides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<i32>,
    /// The program that wrote it (PDF: its creator, else its producer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// An e-mail's To and Cc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cc: Option<String>,
}

impl Properties {
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }

    /// What search finds the document by besides its text: title, author and addressees, a
    /// line each (not dates, pages or the program).
    pub fn searchable_text(&self) -> String {
        let fields = [&self.title, &self.author, &self.to, &self.cc];
        fields.into_iter().flatten().map(String::as_str).collect::<Vec<_>>().join("\n")
    }
}

/// A value as kept: trimmed, without control characters, at most 1,000 characters; `None`
/// when nothing is left.
pub(super) fn value(raw: &str) -> Option<String> {
    let kept: String = raw.trim().chars().filter(|c| !c.is_control()).take(1000).collect();
    (!kept.is_empty()).then_some(kept)
}

/// A PDF's info dictionary, by `pdfinfo` (dates as ISO 8601).
pub fn pdf(path: &Path) -> Properties {
    let mut command = Command::new("pdfinfo");
    command.args(["-isodates", "-enc", "UTF-8"]).arg(path);
    let Ok(ran) = super::programs::run(command, 64 << 10) else { return Properties::default() };
    if !ran.success && !ran.cut {
        return Properties::default();
    }
    let info = String::from_utf8_lossy(&ran.stdout);
    let field = |key: &str| info.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(':').and_then(value));
    Properties {
        title: field("Title"),
        author: field("Author"),
        created: field("CreationDate"),
        modified: field("ModDate"),
        pages: field("Pages").and_then(|p| p.parse().ok()),
        application: field("Creator").or_else(|| field("Producer")),
        ..Properties::default()
    }
}

/// Office Open XML (DOCX, PPTX, XLSX): `docProps/core.xml` and `docProps/app.xml`.
pub fn ooxml(path: &Path) -> Properties {
    let core = xml_fields(path, "docProps/core.xml");
    let app = xml_fields(path, "docProps/app.xml");
    let get = |fields: &HashMap<String, String>, key: &str| fields.get(key).and_then(|v| value(v));
    Properties {
        title: get(&core, "title"),
        author: get(&core, "creator"),
        created: get(&core, "created"),
        modified: get(&core, "modified"),
        pages: get(&app, "Pages").or_else(|| get(&app, "Slides")).and_then(|p| p.parse().ok()),
        application: get(&app, "Application"),
        ..Properties::default()
    }
}

/// OpenDocument (ODT, ODP, ODS): `meta.xml`.
pub fn open_document(path: &Path) -> Properties {
    let meta = xml_fields(path, "meta.xml");
    let get = |key: &str| meta.get(key).and_then(|v| value(v));
    Properties {
        title: get("title"),
        author: get("initial-creator").or_else(|| get("creator")),
        created: get("creation-date"),
        modified: get("date"),
        pages: get("document-statistic@page-count").and_then(|p| p.parse().ok()),
        application: get("generator"),
        ..Properties::default()
    }
}

/// An e-mail's headers: Subject as its title, From as its author, Date as when it was made.
pub fn email(message: &mail_parser::Message) -> Properties {
    Properties {
        title: message.subject().and_then(value),
        author: addresses(message.from()).as_deref().and_then(value),
        created: message.date().map(|d| d.to_rfc3339()),
        to: addresses(message.to()).as_deref().and_then(value),
        cc: addresses(message.cc()).as_deref().and_then(value),
        application: message.header_raw("X-Mailer").and_then(value),
        ..Properties::default()
    }
}

/// The first text of each element of one small XML part of a zip, by local name, and each
/// attribute as `element@attribute`. A missing or unreadable part has none.
fn xml_fields(path: &Path, part: &str) -> HashMap<String, String> {
    use quick_xml::events::Event;
    let mut fields = HashMap::new();
    let Ok(file) = File::open(path) else { return fields };
    let Ok(mut archive) = zip::ZipArchive::new(BufReader::new(file)) else { return fields };
    let mut xml = Vec::new();
    // Properties are a few hundred bytes; a part of more than 1 MiB is not read further.
    let Ok(_) = archive.by_name(part).and_then(|entry| Ok(entry.take(1 << 20).read_to_end(&mut xml)?)) else {
        return fields;
    };
    let mut reader = quick_xml::Reader::from_reader(xml.as_slice());
    let (mut buf, mut current, mut text) = (Vec::new(), String::new(), String::new());
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                current = e.local_name().into_inner().to_owned();
                text.clear();
                for attribute in e.attributes().flatten() {
                    let name = attribute.key.local_name().into_inner().to_owned();
                    let value = attribute.value.clone().into_owned();
                    fields.entry(format!("{current}@{name}")).or_insert(value);
                }
            }
            Ok(Event::Text(t)) => text.push_str(&t.xml10_content()),
            Ok(Event::GeneralRef(r)) => super::xml::reference(r, &mut text),
            Ok(Event::End(_)) => {
                if !current.is_empty() && !text.trim().is_empty() {
                    fields.entry(std::mem::take(&mut current)).or_insert(std::mem::take(&mut text));
                }
                current.clear();
                text.clear();
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    fields
}

/// An address header's addresses, `Name <address>` each, joined by commas.
pub(super) fn addresses(a: Option<&mail_parser::Address>) -> Option<String> {
    a.map(|a| {
        a.iter()
            .map(|one| match (one.name.as_deref(), one.address.as_deref()) {
                (Some(name), Some(address)) => format!("{name} <{address}>"),
                (name, address) => name.or(address).unwrap_or_default().to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    })
}

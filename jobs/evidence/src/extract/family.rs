//! Containers' members: the files of a ZIP archive and the attachments of an e-mail, written out
//! by the `extract` child so that the worker can make each one evidence of its own, a child of
//! the container's evidence (its "family"). The child only writes and lists them; the worker
//! hashes what it finds, stores it and records the children (`ingest.rs`).

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One member as the child wrote it: the `n`-th member of [`Extracted::members`] is the file
/// named `n` in [`FamilyLimits::dir`].
///
/// [`Extracted::members`]: super::Extracted::members
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Where it is inside its container: a ZIP entry's path, or an attachment's file name.
    pub path: String,
    /// The type the container gives it (an attachment's `Content-Type`); ZIP entries have none
    /// and say `application/octet-stream` (the member's own extraction sniffs its bytes).
    pub content_type: String,
    pub size: u64,
}

/// How many members, and how many bytes of them, one container may write out.
#[derive(Debug, Clone)]
pub struct FamilyLimits {
    /// Where the members are written, as files `0`, `1`, …
    pub dir: PathBuf,
    /// Members written at most (`INGEST_FAMILY_MAX_MEMBERS`).
    pub max_members: usize,
    /// Bytes written at most, all members together, as they are once inflated
    /// (`INGEST_FAMILY_MAX_BYTES`).
    pub max_bytes: u64,
}

/// Members named at most in a family note; the rest are counted.
const NOTE_NAMES: usize = 10;

/// Writes a container's members within its [`FamilyLimits`], and remembers which were left out
/// and why. With no limits (the container is as deep in its family as members may be, or the
/// extraction runs outside the worker) it writes nothing and counts the members.
pub(super) struct Writer<'a> {
    limits: Option<&'a FamilyLimits>,
    pub members: Vec<Member>,
    written: u64,
    /// The byte limit was reached: nothing more is written (so a bomb is inflated once only).
    full: bool,
    /// Members not written, with why (written out for the first [`NOTE_NAMES`]).
    left: Vec<String>,
    /// Members not written.
    pub left_count: usize,
}

impl<'a> Writer<'a> {
    pub fn new(limits: Option<&'a FamilyLimits>) -> Self {
        Self { limits, members: Vec::new(), written: 0, full: false, left: Vec::new(), left_count: 0 }
    }

    /// Write one member, `declared_size` bytes by its container's word (checked as it is read).
    pub fn write(&mut self, path: &str, content_type: &str, declared_size: u64, bytes: impl Read) {
        let path = clean_path(path);
        let Some(limits) = self.limits else {
            self.left_count += 1;
            return;
        };
        if self.members.len() >= limits.max_members {
            return self.leave(&path, &format!("past the limit of {} members", limits.max_members));
        }
        let room = limits.max_bytes - self.written;
        if self.full || declared_size > room {
            self.full = true;
            let limit = limits.max_bytes;
            return self.leave(&path, &format!("past the limit of {limit} bytes for all members together"));
        }
        let file = limits.dir.join(self.members.len().to_string());
        match copy_capped(bytes, &file, room) {
            Ok(Some(size)) => {
                self.written += size;
                let content_type = content_type.to_owned();
                self.members.push(Member { path, content_type, size });
            }
            Ok(None) => {
                let _ = std::fs::remove_file(&file);
                self.full = true;
                let limit = limits.max_bytes;
                self.leave(&path, &format!("past the limit of {limit} bytes for all members together"));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&file);
                self.leave(&path, &format!("could not be read: {e}"));
            }
        }
    }

    /// A member that is not written, and why.
    pub fn leave(&mut self, path: &str, why: &str) {
        self.left_count += 1;
        if self.left.len() < NOTE_NAMES {
            self.left.push(format!("{path} ({why})"));
        }
    }

    /// What the family's note says of the members left out; `None` when none were, or when
    /// none could be written (the worker says why: the family's depth).
    pub fn note(&self) -> Option<String> {
        if self.left_count == 0 || self.limits.is_none() {
            return None;
        }
        let more = self.left_count - self.left.len();
        let more = if more > 0 { format!("; and {more} more") } else { String::new() };
        Some(format!("{} member(s) not made evidence: {}{more}", self.left_count, self.left.join("; ")))
    }
}

/// Copy at most `room` bytes to a new file; `None` when there were more.
fn copy_capped(bytes: impl Read, file: &Path, room: u64) -> std::io::Result<Option<u64>> {
    let mut out = std::io::BufWriter::new(File::create(file)?);
    let copied = std::io::copy(&mut bytes.take(room.saturating_add(1)), &mut out)?;
    out.flush()?;
    Ok((copied <= room).then_some(copied))
}

/// A member's path as it is shown and stored: control characters (a NUL, a newline) replaced by
/// `?`, at most 1,024 characters.
fn clean_path(path: &str) -> String {
    path.chars().map(|c| if c.is_control() { '?' } else { c }).take(1024).collect()
}

/// The text of a ZIP archive, a line per entry (see [`entry_line`]), so that a search for a
/// member's name finds the archive too; and its files written as members. Folders are not
/// members; an encrypted file, a link, or one whose compression method is not read is left out
/// with the reason.
pub(super) fn zip(path: &Path, family: &mut Writer) -> Result<String, String> {
    let mut archive = zip::ZipArchive::new(BufReader::new(File::open(path).map_err(|e| e.to_string())?))
        .map_err(|e| format!("not a readable zip file: {e}"))?;
    let mut text = String::new();
    for index in 0..archive.len() {
        let name = match archive.name_for_index(index) {
            Some(Ok(name)) => name.into_owned(),
            _ => format!("entry {index}"),
        };
        text.push_str(&entry_line(&name));
        let entry = match archive.by_index(index) {
            Ok(entry) => entry,
            Err(e) => {
                family.leave(&name, &e.to_string());
                continue;
            }
        };
        if entry.is_dir() {
            continue;
        }
        if entry.is_symlink() {
            family.leave(&name, "a symbolic link, not a file");
            continue;
        }
        let size = entry.size();
        family.write(&name, "application/octet-stream", size, entry);
    }
    Ok(text)
}

/// An entry's line in its archive's text: its path, then the path's words in parentheses.
/// Postgres's parser takes a whole path with an extension (`exhibits/2024/ledger.csv`) for a
/// single token, which no search for `ledger` matches; the words alone are matched.
fn entry_line(path: &str) -> String {
    let words: Vec<&str> = path.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    format!("{} ({})\n", clean_path(path), words.join(" "))
}

/// The file name a member's evidence gets: the last part of its path, or `member-<n>` when
/// that is empty; at most 255 characters, with no `/`, `\` or control character (the rules of
/// a client's file name).
pub fn member_filename(path: &str, index: usize) -> String {
    let last = path.rsplit(['/', '\\']).find(|part| !part.trim().is_empty()).unwrap_or_default();
    let name: String =
        last.trim().chars().filter(|c| !c.is_control() && !crate::model::is_bidi_control(*c)).take(255).collect();
    if name.trim().is_empty() { format!("member-{index}") } else { name.trim().to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_members_name_is_the_last_part_of_its_path_as_a_client_could_send_it() {
        assert_eq!(member_filename("exhibits/2024/ledger.xlsx", 0), "ledger.xlsx");
        assert_eq!(member_filename("C:\\scans\\page 1.png", 1), "page 1.png");
        assert_eq!(member_filename("folder/", 2), "folder");
        assert_eq!(member_filename("", 3), "member-3");
        assert_eq!(member_filename("a/\u{202e}gpj.exe", 4), "gpj.exe");
        assert_eq!(member_filename(&"x".repeat(300), 5).chars().count(), 255);
    }

    #[test]
    fn members_past_the_limits_are_left_out_and_named_in_the_note() {
        let dir = tempfile::tempdir().unwrap();
        let limits = FamilyLimits { dir: dir.path().to_owned(), max_members: 2, max_bytes: 10 };
        let mut family = Writer::new(Some(&limits));
        family.write("a.txt", "text/plain", 4, &b"four"[..]);
        // Its container claims 3 bytes; it has 7: past the 6 left, so it is not written, and
        // nothing after it is (a bomb is inflated once).
        family.write("liar.bin", "application/octet-stream", 3, &b"sevenby"[..]);
        family.write("b.txt", "text/plain", 1, &b"b"[..]);
        assert_eq!(family.members, vec![Member { path: "a.txt".into(), content_type: "text/plain".into(), size: 4 }]);
        assert_eq!(std::fs::read(dir.path().join("0")).unwrap(), b"four");
        assert!(!dir.path().join("1").exists());
        let note = family.note().unwrap();
        assert!(note.starts_with("2 member(s) not made evidence: liar.bin (past the limit of 10 bytes"), "{note}");

        let limits = FamilyLimits { max_members: 1, max_bytes: 100, ..limits };
        let mut family = Writer::new(Some(&limits));
        family.write("a.txt", "text/plain", 4, &b"four"[..]);
        family.write("new\nline.txt", "text/plain", 1, &b"b"[..]);
        assert_eq!(family.note().unwrap(), "1 member(s) not made evidence: new?line.txt (past the limit of 1 members)");

        // Without limits nothing is written: the members are only counted.
        let mut family = Writer::new(None);
        family.write("a.txt", "text/plain", 4, &b"four"[..]);
        assert_eq!((family.members.len(), family.left_count, family.note()), (0, 1, None));
    }
}

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
    /// Its place in its container (a ZIP entry's index, an attachment's number, from 0): with
    /// its path, what its evidence's id is made from, whichever members before it were written.
    pub index: usize,
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
    /// Members written at most: what is left of the family's `INGEST_FAMILY_MAX_MEMBERS`.
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
    /// Why members could not be written to the folder (a full disk): a fault of the worker's
    /// machine, not of the file, so the worker tries again. Nothing is written after it.
    pub error: Option<String>,
    /// Said of the container as a whole (entries named twice, entries sharing their bytes).
    pub remarks: Vec<String>,
}

impl<'a> Writer<'a> {
    pub fn new(limits: Option<&'a FamilyLimits>) -> Self {
        Self {
            limits,
            members: Vec::new(),
            written: 0,
            full: false,
            left: Vec::new(),
            left_count: 0,
            error: None,
            remarks: Vec::new(),
        }
    }

    /// Write the member at `index` in its container, `declared_size` bytes by the container's
    /// word (checked as it is read).
    pub fn write(&mut self, index: usize, path: &str, content_type: &str, declared_size: u64, bytes: impl Read) {
        let path = clean_path(path);
        let Some(limits) = self.limits.filter(|_| self.error.is_none()) else {
            self.left_count += 1;
            return;
        };
        if self.members.len() >= limits.max_members {
            return self.leave(&path, "past the family's limit of members (INGEST_FAMILY_MAX_MEMBERS)");
        }
        let room = limits.max_bytes - self.written;
        let past_bytes =
            format!("past the limit of {} bytes for all members together (INGEST_FAMILY_MAX_BYTES)", limits.max_bytes);
        if self.full || declared_size > room {
            self.full = true;
            return self.leave(&path, &past_bytes);
        }
        let file = limits.dir.join(self.members.len().to_string());
        match copy_capped(bytes, &file, room) {
            Ok(Some(size)) => {
                self.written += size;
                let content_type = content_type.to_owned();
                self.members.push(Member { index, path, content_type, size });
            }
            Ok(None) => {
                let _ = std::fs::remove_file(&file);
                self.full = true;
                self.leave(&path, &past_bytes);
            }
            Err(Copy::Read(e)) => {
                let _ = std::fs::remove_file(&file);
                self.leave(&path, &format!("could not be read: {e}"));
            }
            Err(Copy::Write(e)) => {
                let _ = std::fs::remove_file(&file);
                self.error = Some(format!("cannot write member {path:?} to {}: {e}", limits.dir.display()));
                self.left_count += 1;
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

    /// What the family's note says of the members left out and of the container; `None` when
    /// there is nothing to say, or when no member could be written (the worker says why).
    pub fn note(&self) -> Option<String> {
        if self.limits.is_none() || (self.left_count == 0 && self.remarks.is_empty()) {
            return None;
        }
        let mut parts = self.remarks.clone();
        if self.left_count > 0 {
            let more = self.left_count - self.left.len();
            let listed = match (self.left.is_empty(), more) {
                (true, _) => String::new(),
                (false, 0) => format!(": {}", self.left.join("; ")),
                (false, more) => format!(": {}; and {more} more", self.left.join("; ")),
            };
            parts.push(format!("{} member(s) not made evidence{listed}", self.left_count));
        }
        Some(parts.join(". "))
    }
}

/// Why a member could not be copied: its bytes could not be read (the container's fault), or
/// the copy could not be written (the machine's).
enum Copy {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Copy at most `room` bytes to a new file; `None` when there were more.
fn copy_capped(mut bytes: impl Read, file: &Path, room: u64) -> Result<Option<u64>, Copy> {
    let mut out = std::io::BufWriter::new(File::create(file).map_err(Copy::Write)?);
    let mut buffer = vec![0u8; 64 << 10];
    let mut copied = 0u64;
    loop {
        let n = match bytes.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e)),
        };
        copied += n as u64;
        if copied > room {
            return Ok(None);
        }
        out.write_all(&buffer[..n]).map_err(Copy::Write)?;
    }
    out.flush().map_err(Copy::Write)?;
    Ok(Some(copied))
}

/// A member's path as it is shown and stored: control characters (a NUL, a newline) replaced by
/// `?`, at most 1,024 characters.
pub fn clean_path(path: &str) -> String {
    path.chars().map(|c| if c.is_control() { '?' } else { c }).take(1024).collect()
}

/// The text of a ZIP archive, a line per entry (see [`entry_line`]), so that a search for a
/// member's name finds the archive too; and its files written as members. Folders are not
/// members; an encrypted file, a link, or one whose compression method is not read is left out
/// with the reason. An archive whose entries share their bytes (a way to make a small file
/// inflate to many large ones) has none of them written; one that names an entry twice is read
/// as the zip reader keeps it (one entry per name), and the note says so.
pub(super) fn zip(path: &Path, family: &mut Writer) -> Result<String, String> {
    let mut archive = zip::ZipArchive::new(BufReader::new(File::open(path).map_err(|e| e.to_string())?))
        .map_err(|e| format!("not a readable zip file: {e}"))?;
    if archive.has_duplicate_names() {
        family.remarks.push("the archive names some entries twice: one entry of each name was read".into());
    }
    let overlapping = archive.has_overlapping_files().unwrap_or(true);
    if overlapping {
        family
            .remarks
            .push("entries of the archive share their bytes (an archive bomb's form): none was opened".into());
    }
    let mut text = String::new();
    for index in 0..archive.len() {
        let name = match archive.name_for_index(index) {
            Some(Ok(name)) => name.into_owned(),
            _ => format!("entry {index}"),
        };
        text.push_str(&entry_line(&name));
        if overlapping {
            family.left_count += 1;
            continue;
        }
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
        family.write(index, &name, "application/octet-stream", size, entry);
    }
    Ok(text)
}

/// An entry's line in its archive's text: its path, then the path's words in parentheses.
/// Postgres's parser takes a whole path with an extension (`exhibits/2024/ledger.csv`) for a
/// single token, which no search for `ledger` matches; the words alone are matched.
fn entry_line(path: &str) -> String {
    format!("{} ({})\n", clean_path(path), path_words(path))
}

/// The words of a path (its runs of letters and digits), space-separated.
pub fn path_words(path: &str) -> String {
    path.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_past_the_limits_are_left_out_and_named_in_the_note() {
        let dir = tempfile::tempdir().unwrap();
        let limits = FamilyLimits { dir: dir.path().to_owned(), max_members: 2, max_bytes: 10 };
        let mut family = Writer::new(Some(&limits));
        family.write(0, "a.txt", "text/plain", 4, &b"four"[..]);
        // Its container claims 3 bytes; it has 7: past the 6 left, so it is not written, and
        // nothing after it is (a bomb is inflated once).
        family.write(1, "liar.bin", "application/octet-stream", 3, &b"sevenby"[..]);
        family.write(2, "b.txt", "text/plain", 1, &b"b"[..]);
        let a = Member { index: 0, path: "a.txt".into(), content_type: "text/plain".into(), size: 4 };
        assert_eq!(family.members, vec![a]);
        assert_eq!(std::fs::read(dir.path().join("0")).unwrap(), b"four");
        assert!(!dir.path().join("1").exists());
        let note = family.note().unwrap();
        assert!(note.starts_with("2 member(s) not made evidence: liar.bin (past the limit of 10 bytes"), "{note}");

        let limits = FamilyLimits { max_members: 1, max_bytes: 100, ..limits };
        let mut family = Writer::new(Some(&limits));
        family.write(0, "a.txt", "text/plain", 4, &b"four"[..]);
        family.write(1, "new\nline.txt", "text/plain", 1, &b"b"[..]);
        assert_eq!(
            family.note().unwrap(),
            "1 member(s) not made evidence: new?line.txt (past the family's limit of members (INGEST_FAMILY_MAX_MEMBERS))"
        );

        // Without limits nothing is written: the members are only counted.
        let mut family = Writer::new(None);
        family.write(0, "a.txt", "text/plain", 4, &b"four"[..]);
        assert_eq!((family.members.len(), family.left_count, family.note()), (0, 1, None));
    }

    #[test]
    fn a_member_that_cannot_be_read_is_left_out_but_one_that_cannot_be_written_is_an_error() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("invalid deflate stream"))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let limits = FamilyLimits { dir: dir.path().to_owned(), max_members: 10, max_bytes: 100 };
        let mut family = Writer::new(Some(&limits));
        family.write(0, "bad.bin", "application/octet-stream", 4, Broken);
        family.write(1, "good.txt", "text/plain", 4, &b"good"[..]);
        assert_eq!((family.members.len(), family.members[0].index, family.error.as_deref()), (1, 1, None));
        assert!(family.note().unwrap().contains("bad.bin (could not be read: invalid deflate stream)"));
        // Its folder gone (a full disk would do the same): nothing more is written, and the
        // worker is told.
        let gone = FamilyLimits { dir: dir.path().join("gone"), ..limits };
        let mut family = Writer::new(Some(&gone));
        family.write(0, "a.txt", "text/plain", 4, &b"four"[..]);
        family.write(1, "b.txt", "text/plain", 1, &b"b"[..]);
        assert!(
            family.error.as_deref().is_some_and(|e| e.starts_with("cannot write member \"a.txt\"")),
            "{:?}",
            family.error
        );
        assert_eq!((family.members.len(), family.left_count), (0, 2));
    }
}

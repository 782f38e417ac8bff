//! The text of an RTF document (RTF 1.9.1, as Word, WordPad, LibreOffice and TextEdit write it).
//!
//! Hand-written, because the crate there is (rtf-parser 0.4) lost what search needs on the test
//! documents: no break between paragraphs or table cells ("QuistMüller"), `\'80` (€) dropped,
//! `\uN` (CJK) dropped, a picture's hex data and the document's info block read as text. RTF
//! is small to read for text alone: groups, control words and the characters between them.
//! The reader loops over the bytes once with a stack of groups (no recursion), so depth costs
//! no stack.

use std::collections::HashMap;

use encoding_rs::{Encoding, WINDOWS_1252};

use super::properties::{Properties, value};

/// Deeper than any document writes; a file nested past it is refused as corrupt.
const MAX_DEPTH: usize = 10_000;

/// Where a group's characters go.
#[derive(Clone, Copy, PartialEq)]
enum Dest {
    Text,
    Skip,
    /// The info block's `{\title …}` and `{\author …}`.
    Title,
    Author,
}

/// What the reader makes: the text, and the title and author of the info block.
#[derive(Default)]
struct Read {
    text: String,
    title: String,
    author: String,
}

impl Read {
    fn put(&mut self, into: Dest, ch: char) {
        // A property is kept to 1,000 characters (`properties::value`): a few KiB is plenty.
        match into {
            Dest::Text => self.text.push(ch),
            Dest::Title if self.title.len() < 4096 => self.title.push(ch),
            Dest::Author if self.author.len() < 4096 => self.author.push(ch),
            Dest::Title | Dest::Author | Dest::Skip => {}
        }
    }

    /// `\'hh` bytes waiting to be decoded together (a double-byte code page's character is two).
    fn flush(&mut self, bytes: &mut Vec<u8>, group: &Group) {
        if !bytes.is_empty() {
            for ch in group.encoding.decode_without_bom_handling(bytes).0.chars() {
                self.put(group.into, ch);
            }
        }
        bytes.clear();
    }
}

/// What a group changes: where its characters go, how many characters follow a `\uN` for
/// readers without Unicode (`\ucN`), and the code page of its `\'hh` bytes (from `\fN`).
#[derive(Clone, Copy)]
struct Group {
    into: Dest,
    unicode_skip: usize,
    encoding: &'static Encoding,
    /// Inside the font table: `\fN` and `\fcharsetN` there name each font's code page.
    font_table: bool,
}

/// Destinations whose content is not the document's text: tables, metadata, pictures,
/// objects' data, field instructions. (`{\*\…}` groups are skipped whatever they are.)
/// (The font table, skipped too, has an arm of its own: its fonts' character sets are read.)
const SKIPPED: [&str; 15] = [
    "colortbl",
    "stylesheet",
    "info",
    "pict",
    "objdata",
    "fldinst",
    "listtable",
    "listoverridetable",
    "revtbl",
    "rsidtbl",
    "xmlnstbl",
    "themedata",
    "colorschememapping",
    "datastore",
    "latentstyles",
];

/// The text of `rtf`, at most about `max` bytes (the caller cuts it exactly), and the title
/// and author its info block states.
pub fn text(rtf: &[u8], max: usize) -> Result<(String, Properties), String> {
    if !rtf.starts_with(b"{\\rtf") {
        return Err("not an RTF document".into());
    }
    let mut out = Read::default();
    let mut fonts: HashMap<i32, &'static Encoding> = HashMap::new();
    let mut document = WINDOWS_1252;
    let mut stack: Vec<Group> = Vec::new();
    let mut group = Group { into: Dest::Text, unicode_skip: 1, encoding: WINDOWS_1252, font_table: false };
    // `\'hh` bytes waiting to be decoded, and how many characters after a `\uN` are still to
    // be skipped.
    let mut bytes: Vec<u8> = Vec::new();
    let mut to_skip = 0usize;
    // The first half of a character past U+FFFF, which `\uN` writes as two UTF-16 units.
    let mut high_surrogate: Option<u32> = None;
    // The font a font-table entry defines.
    let mut defining: Option<i32> = None;
    let mut i = 0;
    while i < rtf.len() && out.text.len() <= max {
        let c = rtf[i];
        // Bytes of the code page (`\'hh`, or written as they are) are decoded together: a
        // double-byte code page's character is two.
        if c.is_ascii() && (c != b'\\' || rtf.get(i + 1) != Some(&b'\'')) {
            out.flush(&mut bytes, &group);
        }
        match c {
            b'{' => {
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("groups nested deeper than {MAX_DEPTH}"));
                }
                stack.push(group);
                i += 1;
                // `{\*\destination …}`: one this reader does not know; skip it whole.
                if rtf[i..].starts_with(b"\\*") {
                    group.into = Dest::Skip;
                }
            }
            b'}' => {
                group = stack.pop().ok_or("a group closed that was never opened")?;
                to_skip = 0;
                i += 1;
            }
            b'\\' => {
                let (word, param, next) = control(rtf, i + 1);
                i = next;
                // `'hh`: a byte of the group's code page.
                let mut byte = None;
                if word == "'" {
                    let hex = rtf.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                    byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                    i += if byte.is_some() { 2 } else { 0 };
                }
                // The stand-ins after a `\uN` are characters: plain ones, `\'hh` or symbols.
                if to_skip > 0 && word != "u" {
                    to_skip -= 1;
                    continue;
                }
                match word {
                    "'" => bytes.extend(byte),
                    "u" => {
                        let unit = param.map_or(0, |n| if n < 0 { n + 65536 } else { n }) as u32;
                        let code = match (high_surrogate.take(), unit) {
                            (_, 0xD800..=0xDBFF) => {
                                high_surrogate = Some(unit);
                                None
                            }
                            (Some(high), 0xDC00..=0xDFFF) => Some(0x10000 + ((high - 0xD800) << 10) + (unit - 0xDC00)),
                            (_, unit) => Some(unit),
                        };
                        if let Some(ch) = code.and_then(char::from_u32) {
                            out.put(group.into, ch);
                        }
                        to_skip = group.unicode_skip;
                    }
                    "uc" => group.unicode_skip = param.unwrap_or(1).max(0) as usize,
                    "bin" => i += param.unwrap_or(0).max(0) as usize,
                    "ansicpg" => {
                        document = code_page(param.unwrap_or(1252)).unwrap_or(WINDOWS_1252);
                        group.encoding = document;
                    }
                    "fonttbl" => {
                        group.into = Dest::Skip;
                        group.font_table = true;
                    }
                    "title" => group.into = Dest::Title,
                    "author" => group.into = Dest::Author,
                    "f" if group.font_table => defining = param,
                    "fcharset" if group.font_table => {
                        if let (Some(font), Some(encoding)) = (defining, param.and_then(charset)) {
                            fonts.insert(font, encoding);
                        }
                    }
                    "f" => {
                        group.encoding = param.and_then(|n| fonts.get(&n).copied()).unwrap_or(document);
                    }
                    "par" | "line" | "row" | "sect" | "page" => out.put(group.into, '\n'),
                    "tab" | "cell" => out.put(group.into, '\t'),
                    "~" => out.put(group.into, ' '),
                    "_" => out.put(group.into, '-'),
                    "emdash" => out.put(group.into, '—'),
                    "endash" => out.put(group.into, '–'),
                    "bullet" => out.put(group.into, '•'),
                    "lquote" => out.put(group.into, '‘'),
                    "rquote" => out.put(group.into, '’'),
                    "ldblquote" => out.put(group.into, '“'),
                    "rdblquote" => out.put(group.into, '”'),
                    "\\" | "{" | "}" => out.put(group.into, word.chars().next().unwrap_or(' ')),
                    word if SKIPPED.contains(&word) => group.into = Dest::Skip,
                    _ => {}
                }
            }
            b'\r' | b'\n' => i += 1,
            _ => {
                i += 1;
                if to_skip > 0 {
                    to_skip -= 1;
                } else if c.is_ascii() {
                    out.put(group.into, c as char);
                } else {
                    // A byte past ASCII written as is (not as \'hh): the group's code page.
                    bytes.push(c);
                }
            }
        }
    }
    out.flush(&mut bytes, &group);
    let properties = Properties { title: value(&out.title), author: value(&out.author), ..Properties::default() };
    Ok((out.text, properties))
}

/// The control word at `rtf[at..]` (after its backslash): its name, its number, and where
/// what follows it starts (a space ending it is part of it). A control symbol (`\'`, `\~`,
/// `\{`) is its one character.
fn control(rtf: &[u8], at: usize) -> (&str, Option<i32>, usize) {
    let letters = rtf[at..].iter().take_while(|b| b.is_ascii_alphabetic()).count();
    if letters == 0 {
        let end = (at + 1).min(rtf.len());
        return (std::str::from_utf8(&rtf[at..end]).unwrap_or(""), None, end);
    }
    let word = std::str::from_utf8(&rtf[at..at + letters]).unwrap_or("");
    let mut end = at + letters;
    let sign = usize::from(rtf.get(end) == Some(&b'-'));
    let digits = rtf[end + sign..].iter().take_while(|b| b.is_ascii_digit()).count().min(10);
    let param = (digits > 0)
        .then(|| std::str::from_utf8(&rtf[end..end + sign + digits]).ok()?.parse::<i64>().ok())
        .flatten()
        .map(|n| n.clamp(i32::MIN.into(), i32::MAX.into()) as i32);
    if digits > 0 {
        end += sign + digits;
    }
    if rtf.get(end) == Some(&b' ') {
        end += 1;
    }
    (word, param, end)
}

/// The encoding of a Windows code page (`\ansicpgN`).
fn code_page(n: i32) -> Option<&'static Encoding> {
    let label = match n {
        932 => "shift_jis",
        936 => "gbk",
        949 => "euc-kr",
        950 => "big5",
        10000 => "macintosh",
        n => return Encoding::for_label(format!("windows-{n}").as_bytes()),
    };
    Encoding::for_label(label.as_bytes())
}

/// The encoding of a font's character set (`\fcharsetN`); `None` where the document's
/// code page applies (0, ANSI) or there is none (2, symbol).
fn charset(n: i32) -> Option<&'static Encoding> {
    code_page(match n {
        77 => 10000,
        128 => 932,
        129 => 949,
        134 => 936,
        136 => 950,
        161 => 1253,
        162 => 1254,
        163 => 1258,
        177 => 1255,
        178 => 1256,
        186 => 1257,
        204 => 1251,
        222 => 874,
        238 => 1250,
        _ => return None,
    })
}

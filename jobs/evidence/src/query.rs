//! A search query as the user wrote it, cut into clauses that are matched per evidence, not per
//! chunk: every required clause must occur somewhere in the evidence (any chunk of its text, or
//! its metadata), and no excluded clause may occur anywhere in it.
//!
//! The syntax is web-search's: `word`, `"a phrase"`, `prefix*`, `-excluded`, `-"excluded
//! phrase"`, and `a or b` (either is enough). Postgres turns each term into a tsquery
//! (`phraseto_tsquery` for words and phrases, `to_tsquery('…:*')` for prefixes) with the same
//! dictionary that indexed the text, so stemming and stop words are its own.

/// One term: what Postgres is asked to find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A word, or several joined by punctuation (`INV-2024-0042`): matched as a phrase of its parts.
    Word(String),
    /// Words that must follow each other.
    Phrase(String),
    /// Letters and digits only: any word that starts with them.
    Prefix(String),
}

impl Term {
    /// The kind, as the search statement spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Term::Word(_) => "word",
            Term::Phrase(_) => "phrase",
            Term::Prefix(_) => "prefix",
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Term::Word(t) | Term::Phrase(t) | Term::Prefix(t) => t,
        }
    }
}

/// Terms joined by `or`, required or excluded as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub excluded: bool,
    pub any_of: Vec<Term>,
}

/// A clause as Postgres matches it: the tsquery of its terms joined by OR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClauseQuery {
    pub excluded: bool,
    /// In Postgres's own text form, which it reads back as the same tsquery.
    pub tsquery: String,
}

/// Whether `c` belongs to a script written without spaces between words, which the text
/// search parser would read as one word per run: Han (Chinese, Japanese kanji), Hiragana,
/// Katakana (with its half-width forms), and Hangul syllables.
fn unspaced(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30ff}' | '\u{31f0}'..='\u{31ff}' | '\u{3400}'..='\u{4dbf}' | '\u{4e00}'..='\u{9fff}'
        | '\u{ac00}'..='\u{d7af}' | '\u{f900}'..='\u{faff}' | '\u{ff66}'..='\u{ff9f}' | '\u{20000}'..='\u{2ffff}')
}

/// Text as it is indexed and searched: each run of [`unspaced`] characters becomes its
/// overlapping pairs, as words (`東京地裁` → ` 東京 京地 地裁 `; a run of one stays as it is),
/// so that any two characters or more of a run are found as the phrase of their pairs
/// (`京地` is in `東京地裁`). The parser would make the whole run one word (and drop it past
/// 2 KiB), found only whole. Other text is left as it is.
pub fn index_form(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(unspaced) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() * 2);
    let mut run: Vec<char> = Vec::new();
    let flush = |run: &mut Vec<char>, out: &mut String| {
        if run.is_empty() {
            return;
        }
        out.push(' ');
        if run.len() == 1 {
            out.push(run[0]);
        }
        for pair in run.windows(2) {
            out.extend(pair);
            out.push(' ');
        }
        if run.len() == 1 {
            out.push(' ');
        }
        run.clear();
    };
    for c in text.chars() {
        if unspaced(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out.into()
}

/// Tsqueries (each in Postgres's text form) joined by OR, in that form too.
pub fn any_of<S: AsRef<str>>(tsqueries: &[S]) -> String {
    tsqueries.iter().map(|q| format!("({})", q.as_ref())).collect::<Vec<_>>().join(" | ")
}

/// Cut `q` into clauses. Quotes left open run to the end; a `-` or `*` alone, and `or` at
/// either end or after an exclusion, are words like any other (Postgres drops them as stop words
/// or punctuation); an `or` before an exclusion is dropped.
pub fn parse(q: &str) -> Vec<Clause> {
    let mut clauses: Vec<Clause> = Vec::new();
    let mut or_pending = false;
    let mut rest = q.trim_start();
    while !rest.is_empty() {
        let excluded = rest.len() > 1 && rest.starts_with('-') && !rest[1..].starts_with(char::is_whitespace);
        if excluded {
            rest = &rest[1..];
        }
        let (term, tail) = if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (Term::Phrase(quoted[..end].trim().to_owned()), quoted.get(end + 1..).unwrap_or(""))
        } else {
            let end = rest.find(|c: char| c.is_whitespace() || c == '"').unwrap_or(rest.len());
            (word(&rest[..end]), &rest[end..])
        };
        rest = tail.trim_start();
        if term.text().is_empty() {
            continue;
        }
        let is_or = !excluded && matches!(&term, Term::Word(w) if w.eq_ignore_ascii_case("or"));
        let joinable = clauses.last().is_some_and(|c| !c.excluded) && !rest.is_empty();
        if is_or && joinable && !or_pending {
            or_pending = true;
            continue;
        }
        match clauses.last_mut() {
            Some(last) if or_pending && !excluded => last.any_of.push(term),
            _ => clauses.push(Clause { excluded, any_of: vec![term] }),
        }
        or_pending = false;
    }
    clauses
}

fn word(token: &str) -> Term {
    let stem = token.trim_end_matches('*');
    if stem.len() < token.len() && !stem.is_empty() && stem.chars().all(char::is_alphanumeric) {
        Term::Prefix(stem.to_owned())
    } else {
        Term::Word(token.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_without_spaces_are_indexed_as_pairs() {
        assert_eq!(index_form("東京地裁"), " 東京 京地 地裁 ");
        assert_eq!(index_form("証拠A-7は東"), " 証拠 A-7 は東 ");
        assert_eq!(index_form("report: 東"), "report:  東 ");
        assert_eq!(index_form("ÄÖÜ plain text"), "ÄÖÜ plain text");
        assert!(matches!(index_form("plain"), std::borrow::Cow::Borrowed(_)));
    }

    fn required(terms: &[Term]) -> Clause {
        Clause { excluded: false, any_of: terms.to_vec() }
    }
    fn excluded(terms: &[Term]) -> Clause {
        Clause { excluded: true, any_of: terms.to_vec() }
    }
    fn w(s: &str) -> Term {
        Term::Word(s.into())
    }
    fn p(s: &str) -> Term {
        Term::Phrase(s.into())
    }

    #[test]
    fn words_phrases_prefixes_and_exclusions_become_clauses() {
        assert_eq!(
            parse(r#"  zeppelin "witness  mentioned" glob* -kangaroo -"red fox" INV-2024-0042 "#),
            vec![
                required(&[w("zeppelin")]),
                required(&[p("witness  mentioned")]),
                required(&[Term::Prefix("glob".into())]),
                excluded(&[w("kangaroo")]),
                excluded(&[p("red fox")]),
                required(&[w("INV-2024-0042")]),
            ]
        );
    }

    #[test]
    fn or_joins_its_neighbours_into_one_clause() {
        assert_eq!(
            parse("breach or leak OR spill memo"),
            vec![required(&[w("breach"), w("leak"), w("spill")]), required(&[w("memo")])]
        );
        assert_eq!(parse(r#""a b" or c*"#), vec![required(&[p("a b"), Term::Prefix("c".into())])]);
        // At an end, or before an exclusion, `or` is a word (a stop word, which Postgres drops).
        assert_eq!(parse("or breach or"), vec![required(&[w("or")]), required(&[w("breach")]), required(&[w("or")])]);
        assert_eq!(parse("breach or -leak"), vec![required(&[w("breach")]), excluded(&[w("leak")])]);
        assert_eq!(
            parse("-leak or breach"),
            vec![excluded(&[w("leak")]), required(&[w("or")]), required(&[w("breach")])]
        );
    }

    #[test]
    fn odd_input_is_kept_as_words_not_lost_or_made_into_operators() {
        assert_eq!(parse(r#"open "quote runs"#), vec![required(&[w("open")]), required(&[p("quote runs")])]);
        assert_eq!(parse(r#"a""b"#), vec![required(&[w("a")]), required(&[w("b")])]);
        assert_eq!(
            parse("- * ** x-ray* o'brien*"),
            vec![
                required(&[w("-")]),
                required(&[w("*")]),
                required(&[w("**")]),
                required(&[w("x-ray*")]),
                required(&[w("o'brien*")])
            ]
        );
        assert_eq!(parse(r#""" -"" --x"#), vec![excluded(&[w("-x")])]);
        assert_eq!(parse("東京*"), vec![required(&[Term::Prefix("東京".into())])]);
        assert!(parse("   ").is_empty());
    }
}

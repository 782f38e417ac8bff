//! What XML readers of office formats share.

/// Append what an XML reference stands for: a character, or one of XML's five named entities
/// (office formats declare no others).
pub(super) fn reference(r: quick_xml::events::BytesRef, text: &mut String) {
    match r.resolve_char_ref() {
        Ok(Some(c)) => text.push(c),
        _ => text.push_str(match r.into_inner().as_ref() {
            "amp" => "&",
            "lt" => "<",
            "gt" => ">",
            "quot" => "\"",
            "apos" => "'",
            _ => "",
        }),
    }
}

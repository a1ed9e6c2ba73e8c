//! Text that came from outside (scenario files, drivers) shown to a person:
//! control characters escaped, so that nothing in a file or a driver's answer
//! can move the cursor, recolour, retitle or clear a terminal, or split one
//! message line into two; and bounded, so that a runaway string cannot fill
//! a terminal, a report or memory.

use std::borrow::Cow;

/// `text` with every control character (C0, DEL, C1) and every bidirectional
/// or zero-width formatting character shown as a Rust escape (`\u{1b}`,
/// `\n`, `\r`, `\t`); anything else as it is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            shown.extend(c.escape_debug());
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// Whether `c` could act on a terminal or reorder what is shown.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` cut to at most `max` characters, saying how much was left out.
pub fn bounded(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!(
            "{}... [{} more bytes]",
            &text[..cut],
            text.len() - cut
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::plain("web-a: 203.0.113.10", "web-a: 203.0.113.10")]
    #[case::colour("\u{1b}[31mred\u{1b}[0m", r"\u{1b}[31mred\u{1b}[0m")]
    #[case::title("\u{1b}]0;owned\u{7}", r"\u{1b}]0;owned\u{7}")]
    #[case::lines("one\ntwo\r", r"one\ntwo\r")]
    #[case::c1("a\u{9b}2J", r"a\u{9b}2J")]
    #[case::bidi("abc\u{202e}fed", r"abc\u{202e}fed")]
    #[case::unicode_kept("naïve — 例", "naïve — 例")]
    fn control_characters_are_escaped(#[case] text: &str, #[case] shown: &str) {
        assert_eq!(printable(text), shown);
    }

    #[test]
    fn long_text_is_cut_and_says_so() {
        assert_eq!(bounded("short", 10), "short");
        let long = "x".repeat(1000);
        assert_eq!(bounded(&long, 4), "xxxx... [996 more bytes]");
        // On a character boundary.
        assert_eq!(bounded("ééé", 1), "é... [4 more bytes]");
    }
}

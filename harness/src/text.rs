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

/// `secs` after the Unix epoch as `2026-12-05 18:40:12 UTC`.
pub fn utc(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
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

    #[test]
    fn utc_spells_a_time_as_date_does() {
        // `date -u -d @1796494812 '+%F %T'`; and a leap day.
        assert_eq!(utc(1_796_494_812), "2026-12-05 18:20:12 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    }
}

//! `json.Unmarshal(data, &[]string)` as Go's encoding/json v1 does it, for the
//! error texts Calico shows about a floating-IP annotation.
//!
//! Calico 3.x is built with Go 1.26 (go.mod `go 1.26.5`), where encoding/json
//! is still v1 (`!goexperiment.jsonv2`). Unmarshal first runs `checkValid` over
//! the whole input (src/encoding/json/scanner.go), so a syntax error always wins;
//! only then does it decode (decode.go), remembering the *first* type error and
//! carrying on. serde_json's messages and positions differ from Go's, so the
//! scanner below follows Go's state functions one for one: the context words
//! and the character quoting are Go's.

/// The state functions of Go's scanner (scanner.go `stateXxx`), as data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    BeginValueOrEmpty,
    BeginValue,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    /// After `\u` and this many hex digits (0..=3).
    InStringEscU(u8),
    Neg,
    One,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    /// Inside `true`, `false` or `null`; `next` is the index of the byte expected.
    Literal {
        word: &'static str,
        next: usize,
    },
    Error,
}

/// What the parse stack holds (scanner.go `parseObjectKey` ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Parse {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

/// scanner.go `maxNestingDepth`.
const MAX_NESTING_DEPTH: usize = 10_000;

struct Scanner {
    step: State,
    end_top: bool,
    stack: Vec<Parse>,
    err: Option<String>,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl Scanner {
    fn new() -> Self {
        Scanner {
            step: State::BeginValue,
            end_top: false,
            stack: Vec::new(),
            err: None,
        }
    }

    /// scanner.go `(*scanner).error`.
    fn error(&mut self, c: u8, context: &str) {
        self.step = State::Error;
        self.err = Some(format!("invalid character {} {context}", quote_char(c)));
    }

    fn push(&mut self, c: u8, parse: Parse) {
        self.stack.push(parse);
        if self.stack.len() > MAX_NESTING_DEPTH {
            self.error(c, "exceeded max depth");
        }
    }

    fn pop(&mut self) {
        self.stack.pop();
        if self.stack.is_empty() {
            self.step = State::EndTop;
            self.end_top = true;
        } else {
            self.step = State::EndValue;
        }
    }

    fn step(&mut self, c: u8) {
        match self.step {
            State::BeginValueOrEmpty => {
                if is_space(c) {
                } else if c == b']' {
                    self.end_value(c)
                } else {
                    self.begin_value(c)
                }
            }
            State::BeginValue => self.begin_value(c),
            State::BeginStringOrEmpty => {
                if is_space(c) {
                } else if c == b'}' {
                    if let Some(top) = self.stack.last_mut() {
                        *top = Parse::ObjectValue;
                    }
                    self.end_value(c)
                } else {
                    self.begin_string(c)
                }
            }
            State::BeginString => self.begin_string(c),
            State::EndValue => self.end_value(c),
            State::EndTop => {
                if !is_space(c) {
                    self.error(c, "after top-level value")
                }
            }
            State::InString => match c {
                b'"' => self.step = State::EndValue,
                b'\\' => self.step = State::InStringEsc,
                c if c < 0x20 => self.error(c, "in string literal"),
                _ => {}
            },
            State::InStringEsc => match c {
                b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => {
                    self.step = State::InString
                }
                b'u' => self.step = State::InStringEscU(0),
                _ => self.error(c, "in string escape code"),
            },
            State::InStringEscU(seen) => {
                if c.is_ascii_hexdigit() {
                    self.step = if seen == 3 {
                        State::InString
                    } else {
                        State::InStringEscU(seen + 1)
                    };
                } else {
                    self.error(c, "in \\u hexadecimal character escape")
                }
            }
            State::Neg => match c {
                b'0' => self.step = State::Zero,
                b'1'..=b'9' => self.step = State::One,
                _ => self.error(c, "in numeric literal"),
            },
            State::One => {
                if !c.is_ascii_digit() {
                    self.zero(c)
                }
            }
            State::Zero => self.zero(c),
            State::Dot => {
                if c.is_ascii_digit() {
                    self.step = State::Dot0
                } else {
                    self.error(c, "after decimal point in numeric literal")
                }
            }
            State::Dot0 => {
                if c.is_ascii_digit() {
                } else if c == b'e' || c == b'E' {
                    self.step = State::E
                } else {
                    self.end_value(c)
                }
            }
            State::E => {
                if c == b'+' || c == b'-' {
                    self.step = State::ESign
                } else {
                    self.e_sign(c)
                }
            }
            State::ESign => self.e_sign(c),
            State::E0 => {
                if !c.is_ascii_digit() {
                    self.end_value(c)
                }
            }
            State::Literal { word, next } => {
                let expected = word.as_bytes()[next];
                if c == expected {
                    self.step = if next + 1 == word.len() {
                        State::EndValue
                    } else {
                        State::Literal {
                            word,
                            next: next + 1,
                        }
                    };
                } else {
                    let context = format!("in literal {word} (expecting {})", quote_char(expected));
                    self.error(c, &context)
                }
            }
            State::Error => {}
        }
    }

    /// scanner.go `stateBeginValue`.
    fn begin_value(&mut self, c: u8) {
        if is_space(c) {
            return;
        }
        self.step = match c {
            b'{' => {
                self.step = State::BeginStringOrEmpty;
                return self.push(c, Parse::ObjectKey);
            }
            b'[' => {
                self.step = State::BeginValueOrEmpty;
                return self.push(c, Parse::ArrayValue);
            }
            b'"' => State::InString,
            b'-' => State::Neg,
            b'0' => State::Zero,
            b't' => State::Literal {
                word: "true",
                next: 1,
            },
            b'f' => State::Literal {
                word: "false",
                next: 1,
            },
            b'n' => State::Literal {
                word: "null",
                next: 1,
            },
            b'1'..=b'9' => State::One,
            _ => return self.error(c, "looking for beginning of value"),
        };
    }

    /// scanner.go `stateBeginString`.
    fn begin_string(&mut self, c: u8) {
        if is_space(c) {
        } else if c == b'"' {
            self.step = State::InString
        } else {
            self.error(c, "looking for beginning of object key string")
        }
    }

    /// scanner.go `state0`.
    fn zero(&mut self, c: u8) {
        match c {
            b'.' => self.step = State::Dot,
            b'e' | b'E' => self.step = State::E,
            _ => self.end_value(c),
        }
    }

    /// scanner.go `stateESign`.
    fn e_sign(&mut self, c: u8) {
        if c.is_ascii_digit() {
            self.step = State::E0
        } else {
            self.error(c, "in exponent of numeric literal")
        }
    }

    /// scanner.go `stateEndValue`.
    fn end_value(&mut self, c: u8) {
        let Some(top) = self.stack.last().copied() else {
            self.step = State::EndTop;
            self.end_top = true;
            return self.step(c);
        };
        if is_space(c) {
            self.step = State::EndValue;
            return;
        }
        match (top, c) {
            (Parse::ObjectKey, b':') => {
                *self.stack.last_mut().expect("non-empty") = Parse::ObjectValue;
                self.step = State::BeginValue;
            }
            (Parse::ObjectKey, _) => self.error(c, "after object key"),
            (Parse::ObjectValue, b',') => {
                *self.stack.last_mut().expect("non-empty") = Parse::ObjectKey;
                self.step = State::BeginString;
            }
            (Parse::ObjectValue, b'}') | (Parse::ArrayValue, b']') => self.pop(),
            (Parse::ObjectValue, _) => self.error(c, "after object key:value pair"),
            (Parse::ArrayValue, b',') => self.step = State::BeginValue,
            (Parse::ArrayValue, _) => self.error(c, "after array element"),
        }
    }

    /// scanner.go `(*scanner).eof`: a space flushes a number or literal in
    /// progress, which is why `[1.` reports the space rather than the end.
    fn eof(&mut self) -> Result<(), String> {
        if let Some(err) = &self.err {
            return Err(err.clone());
        }
        if self.end_top {
            return Ok(());
        }
        self.step(b' ');
        if self.end_top {
            return Ok(());
        }
        Err(self
            .err
            .clone()
            .unwrap_or_else(|| "unexpected end of JSON input".to_owned()))
    }
}

/// scanner.go `quoteChar`: Go converts the *byte* to a rune, so a byte of a
/// multi-byte UTF-8 sequence shows as its Latin-1 character (`é` reports 'Ã'),
/// then quotes it as strconv.Quote would.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => return r"'\''".to_owned(),
        b'"' => return "'\"'".to_owned(),
        _ => {}
    }
    let inner = match c {
        b'\\' => r"\\".to_owned(),
        0x07 => r"\a".to_owned(),
        0x08 => r"\b".to_owned(),
        0x0c => r"\f".to_owned(),
        b'\n' => r"\n".to_owned(),
        b'\r' => r"\r".to_owned(),
        b'\t' => r"\t".to_owned(),
        0x0b => r"\v".to_owned(),
        // strconv.IsPrint over Latin-1.
        0x20..=0x7e | 0xa1..=0xac | 0xae..=0xff => char::from(c).to_string(),
        c if c < 0x20 || c == 0x7f => format!(r"\x{c:02x}"),
        c => format!(r"\u{c:04x}"),
    };
    format!("'{inner}'")
}

/// `json.Unmarshal([]byte(raw), &ips)` with `ips []string`. `null` leaves the
/// slice nil (no entries, no error); a `null` element leaves that entry `""`.
/// The error is Go's text.
pub fn unmarshal_string_list(raw: &str) -> Result<Vec<String>, String> {
    let mut scanner = Scanner::new();
    for &c in raw.as_bytes() {
        scanner.step(c);
        if let Some(err) = &scanner.err {
            return Err(err.clone());
        }
    }
    scanner.eof()?;
    Decoder {
        data: raw.as_bytes(),
        off: 0,
    }
    .string_list()
}

/// decode.go over input the scanner accepted: nothing here can be a syntax error.
struct Decoder<'a> {
    data: &'a [u8],
    off: usize,
}

/// decode.go `UnmarshalTypeError.Error` without struct context (a plain
/// `[]string` target never has one).
fn type_error(value: &str, go_type: &str) -> String {
    format!("json: cannot unmarshal {value} into Go value of type {go_type}")
}

impl Decoder<'_> {
    fn skip_space(&mut self) {
        while self.off < self.data.len() && is_space(self.data[self.off]) {
            self.off += 1;
        }
    }

    fn peek(&mut self) -> u8 {
        self.skip_space();
        self.data[self.off]
    }

    /// The word decode.go puts in an UnmarshalTypeError for the value at `c`.
    fn kind(c: u8) -> &'static str {
        match c {
            b'"' => "string",
            b't' | b'f' => "bool",
            b'[' => "array",
            b'{' => "object",
            _ => "number",
        }
    }

    fn string_list(mut self) -> Result<Vec<String>, String> {
        let c = self.peek();
        match c {
            b'n' => return Ok(Vec::new()),
            b'[' => self.off += 1,
            _ => return Err(type_error(Self::kind(c), "[]string")),
        }
        let mut first_error = None;
        let mut items = Vec::new();
        loop {
            match self.peek() {
                b']' => break,
                b',' => {
                    self.off += 1;
                    continue;
                }
                b'"' => items.push(self.string()),
                b'n' => {
                    // Go ignores null for a string: the element stays "".
                    self.off += 4;
                    items.push(String::new());
                }
                c => {
                    first_error.get_or_insert_with(|| type_error(Self::kind(c), "string"));
                    self.skip_value();
                    items.push(String::new());
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(items),
        }
    }

    /// decode.go `unquote`: escapes resolved, a lone surrogate becomes U+FFFD.
    fn string(&mut self) -> String {
        self.off += 1;
        let mut out: Vec<u16> = Vec::new();
        let mut text = String::new();
        loop {
            let c = self.data[self.off];
            if c == b'"' {
                self.off += 1;
                break;
            }
            if c != b'\\' {
                // Plain bytes: copy the whole UTF-8 character.
                let rest = std::str::from_utf8(&self.data[self.off..]).unwrap_or("");
                let ch = rest.chars().next().unwrap_or('\u{fffd}');
                flush_utf16(&mut out, &mut text);
                text.push(ch);
                self.off += ch.len_utf8().max(1);
                continue;
            }
            let e = self.data[self.off + 1];
            self.off += 2;
            let simple = match e {
                b'b' => Some('\u{8}'),
                b'f' => Some('\u{c}'),
                b'n' => Some('\n'),
                b'r' => Some('\r'),
                b't' => Some('\t'),
                b'u' => None,
                other => Some(char::from(other)),
            };
            match simple {
                Some(ch) => {
                    flush_utf16(&mut out, &mut text);
                    text.push(ch);
                }
                None => {
                    let hex = std::str::from_utf8(&self.data[self.off..self.off + 4])
                        .expect("the scanner checked four hex digits");
                    out.push(u16::from_str_radix(hex, 16).expect("hex"));
                    self.off += 4;
                }
            }
        }
        flush_utf16(&mut out, &mut text);
        text
    }

    /// Past one whole value (already known to be well formed).
    fn skip_value(&mut self) {
        match self.data[self.off] {
            b'"' => {
                self.string();
            }
            b'[' | b'{' => {
                let mut depth = 0usize;
                loop {
                    match self.data[self.off] {
                        b'"' => {
                            self.string();
                            continue;
                        }
                        b'[' | b'{' => depth += 1,
                        b']' | b'}' => depth -= 1,
                        _ => {}
                    }
                    self.off += 1;
                    if depth == 0 {
                        return;
                    }
                }
            }
            _ => {
                while self.off < self.data.len()
                    && !matches!(self.data[self.off], b',' | b']' | b'}')
                    && !is_space(self.data[self.off])
                {
                    self.off += 1;
                }
            }
        }
    }
}

/// Appends pending `\u` code units, pairing surrogates as Go does.
fn flush_utf16(units: &mut Vec<u16>, text: &mut String) {
    text.extend(char::decode_utf16(units.drain(..)).map(|r| r.unwrap_or('\u{fffd}')));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of texts from Go 1.26 encoding/json v1 (issue 10 and
    /// /work/notes/calico-facts.md §1.b), plus the scanner's rarer states.
    const CASES: &[&str] = &[
        r#"["203.0.113.10""#,
        r#"["a"].x"#,
        "x",
        "[1]",
        "{}",
        r#""a""#,
        "[true]",
        "1",
        "[[]]",
        "[203.0.113.10]",
        "['203.0.113.10']",
        " ",
        "",
        r#"["a",]"#,
        r#"["a" "b"]"#,
        "[1.]",
        "[1.",
        "[-]",
        "[1e]",
        "tru",
        "[nul]",
        "[fals]",
        r#"{"a" 1}"#,
        r#"{"a":1 "b":2}"#,
        "{a:1}",
        r#"["\x"]"#,
        r#"["\u12g4"]"#,
        "[\"a\u{1}\"]",
        "[é]",
        "[\u{a0}]",
        "[\\]",
        r#"["a",1,{}]"#,
        r#"[{"a":[1,"b"]},"c"]"#,
        "[] []",
        "[01]",
    ];

    #[test]
    fn go_texts() {
        let table: String = CASES
            .iter()
            .map(|raw| {
                let got = match unmarshal_string_list(raw) {
                    Ok(items) => format!("ok {items:?}"),
                    Err(e) => e,
                };
                format!("{:<26} => {got}\n", format!("{raw:?}"))
            })
            .collect();
        insta::assert_snapshot!(table);
    }

    #[test]
    fn the_issue_texts_are_exact() {
        let err = |raw| unmarshal_string_list(raw).unwrap_err();
        assert_eq!(err(r#"["203.0.113.10""#), "unexpected end of JSON input");
        assert_eq!(
            err(r#"["a"].x"#),
            "invalid character '.' after top-level value"
        );
        assert_eq!(
            err("x"),
            "invalid character 'x' looking for beginning of value"
        );
        assert_eq!(
            err("[1]"),
            "json: cannot unmarshal number into Go value of type string"
        );
        assert_eq!(
            err("['a']"),
            r"invalid character '\'' looking for beginning of value"
        );
    }

    #[test]
    fn lists_decode_with_go_null_rules() {
        assert_eq!(unmarshal_string_list("null"), Ok(vec![]));
        assert_eq!(unmarshal_string_list(" [ ] "), Ok(vec![]));
        assert_eq!(
            unmarshal_string_list(r#"[null, "a\/b", "\u00e9\ud83d\ude00", "\ud800"]"#),
            Ok(vec![
                String::new(),
                "a/b".to_owned(),
                "é😀".to_owned(),
                "\u{fffd}".to_owned()
            ])
        );
    }

    #[test]
    fn syntax_errors_win_over_type_errors() {
        assert_eq!(
            unmarshal_string_list("[1] x").unwrap_err(),
            "invalid character 'x' after top-level value"
        );
    }

    #[test]
    fn nesting_is_bounded_like_go() {
        let deep = "[".repeat(MAX_NESTING_DEPTH + 1);
        assert_eq!(
            unmarshal_string_list(&deep).unwrap_err(),
            "invalid character '[' exceeded max depth"
        );
    }
}

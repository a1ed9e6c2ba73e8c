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

mod scanner;
#[cfg(test)]
mod tests;

#[cfg(test)]
use scanner::MAX_NESTING_DEPTH;
use scanner::{is_space, Scanner};

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

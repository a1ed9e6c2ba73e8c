//! Go's encoding/json scanner (src/encoding/json/scanner.go), state for state:
//! the syntax check `json.Unmarshal` runs over the whole input before decoding,
//! with Go's context words and character quoting in its errors.

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
pub(super) const MAX_NESTING_DEPTH: usize = 10_000;

pub(super) struct Scanner {
    step: State,
    end_top: bool,
    stack: Vec<Parse>,
    pub(super) err: Option<String>,
}

pub(super) fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl Scanner {
    pub(super) fn new() -> Self {
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

    pub(super) fn step(&mut self, c: u8) {
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
    pub(super) fn eof(&mut self) -> Result<(), String> {
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

//! Positions for checks that run after deserialisation (cross-references,
//! duplicates, Calico's verdict on an annotation).
//!
//! yaml_serde reports a position only for errors raised while it deserialises a
//! node. Every [`Spanned`] value takes a sequence number, in document order,
//! while the file is read. To place an error on one of them, the same text is
//! deserialised again with that number marked: when the marked value is reached
//! it fails on purpose, and yaml_serde fills in the line, column and key path of
//! exactly that node. Deserialisation is deterministic, so the numbers match.

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;

/// A value read from a scenario file that later checks can point at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    /// Sequence number of this value in its document (see module docs).
    pub(crate) index: usize,
}

impl<T> Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

struct Session {
    next: usize,
    fail_at: Option<(usize, String)>,
}

thread_local! {
    static SESSION: RefCell<Option<Session>> = const { RefCell::new(None) };
}

/// Deserialises `text`, numbering [`Spanned`] values from zero; when `fail_at`
/// is given, the value with that number fails with the message instead.
pub(crate) fn deserialize_numbered<T: DeserializeOwned>(
    text: &str,
    fail_at: Option<(usize, String)>,
) -> Result<T, yaml_serde::Error> {
    struct Reset(Option<Session>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let previous = self.0.take();
            SESSION.with(|s| *s.borrow_mut() = previous);
        }
    }
    let previous = SESSION.with(|s| s.borrow_mut().replace(Session { next: 0, fail_at }));
    let _reset = Reset(previous);
    yaml_serde::from_str(text)
}

/// Where a [`Spanned`] value sits: (line, column, message with yaml_serde's key
/// path in front, e.g. `steps[2].send.to: unknown name`).
pub(crate) fn locate<T: DeserializeOwned>(
    text: &str,
    index: usize,
    message: &str,
) -> (usize, usize, String) {
    match deserialize_numbered::<T>(text, Some((index, message.to_owned()))) {
        Err(error) => split_yaml_error(&error),
        // Cannot happen for a value read from this text; keep the message anyway.
        Ok(_) => (1, 1, message.to_owned()),
    }
}

/// yaml_serde's error as (line, column, message without the trailing position).
pub(crate) fn split_yaml_error(error: &yaml_serde::Error) -> (usize, usize, String) {
    let (line, column) = error.location().map_or((1, 1), |l| (l.line(), l.column()));
    let text = error.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    };
    (line, column, message)
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (index, fail) = SESSION.with(|s| match s.borrow_mut().as_mut() {
            Some(session) => {
                let index = session.next;
                session.next += 1;
                let fail = session
                    .fail_at
                    .as_ref()
                    .filter(|(at, _)| *at == index)
                    .map(|(_, message)| message.clone());
                (index, fail)
            }
            None => (usize::MAX, None),
        });
        if let Some(message) = fail {
            return deserializer
                .deserialize_any(FailHere(message))
                .map(|never| match never {});
        }
        T::deserialize(deserializer).map(|value| Spanned { value, index })
    }
}

/// Fails on whatever node it is given, so the deserializer marks that node.
struct FailHere(String);

macro_rules! fail_on {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method<E: de::Error>(self, $(_: $arg),*) -> Result<Self::Value, E> {
            Err(E::custom(self.0))
        })*
    };
}

impl<'de> Visitor<'de> for FailHere {
    type Value = std::convert::Infallible;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }

    fail_on!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_i128(i128),
        visit_u128(u128),
        visit_f64(f64),
        visit_str(&str),
        visit_bytes(&[u8]),
        visit_unit(),
        visit_none(),
    );

    fn visit_some<D: Deserializer<'de>>(self, _: D) -> Result<Self::Value, D::Error> {
        Err(de::Error::custom(self.0))
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, _: D) -> Result<Self::Value, D::Error> {
        Err(de::Error::custom(self.0))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(self.0))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(self.0))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Doc {
        a: Spanned<String>,
        list: Vec<Spanned<Inner>>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        x: Spanned<u32>,
    }

    const TEXT: &str = "a: hello\nlist:\n  - x: 1\n  - x: 2\n";

    #[test]
    fn values_are_numbered_in_document_order_and_located() {
        let doc: Doc = deserialize_numbered(TEXT, None).unwrap();
        assert_eq!(doc.a.index, 0);
        assert_eq!(doc.list[1].index, 3);
        assert_eq!(doc.list[1].x.index, 4);
        assert_eq!(
            locate::<Doc>(TEXT, 4, "too big"),
            (4, 8, "list[1].x: too big".to_owned())
        );
        assert_eq!(
            locate::<Doc>(TEXT, 3, "bad item"),
            (4, 5, "list[1]: bad item".to_owned())
        );
    }
}

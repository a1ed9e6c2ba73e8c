//! How a lab names what it makes: the lab name, its members' names and the
//! namespaces `fiph-<lab>-<member>` they become. Pure rules, shared by the
//! scenario language (so `validate` refuses what `run` would) and the lab.

use crate::text::printable;

/// Prefix of every namespace the harness creates. Cleanup never touches anything else.
pub const LAB_PREFIX: &str = "fiph-";

/// Longest lab name. Keeps `fiph-<lab>-<member>` within the 64 characters
/// a namespace pin may have, with room for a DNS-label member name.
pub const MAX_LAB_NAME: usize = 12;

/// The member name of the data-centre network; no node, pod or external may use it.
pub const FABRIC: &str = "fabric";

/// A lab or member name the lab cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    // Names are escaped: one with a newline or an escape code must not
    // split the message or drive the terminal (crate::text).
    #[error("lab name '{}' is not usable: it must be 1-{MAX_LAB_NAME} characters of [a-z0-9] (no '-', which separates the lab from its members)", printable(.0))]
    BadLabName(String),
    #[error("lab '{}': member name '{}' is not usable: it must be a DNS label of at most {max} characters, and not '{FABRIC}'", printable(lab), printable(name))]
    BadMemberName {
        lab: String,
        name: String,
        max: usize,
    },
}

/// `fiph-<lab>-<member>`.
pub fn namespace_name(lab: &str, member: &str) -> String {
    format!("{LAB_PREFIX}{lab}-{member}")
}

/// Prefix of every namespace of `lab`. Because lab names have no '-', this
/// prefix cannot match a namespace of another lab (`a` vs `ab`).
pub fn namespace_prefix(lab: &str) -> String {
    format!("{LAB_PREFIX}{lab}-")
}

/// The lab a harness namespace belongs to, from its name alone.
pub fn lab_of_namespace(namespace: &str) -> Option<&str> {
    let rest = namespace.strip_prefix(LAB_PREFIX)?;
    let (lab, member) = rest.split_once('-')?;
    (valid_lab_name(lab) && !member.is_empty()).then_some(lab)
}

pub fn valid_lab_name(name: &str) -> bool {
    (1..=MAX_LAB_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

pub fn check_lab_name(name: &str) -> Result<(), NameError> {
    if valid_lab_name(name) {
        Ok(())
    } else {
        Err(NameError::BadLabName(name.to_string()))
    }
}

fn max_member_len(lab: &str) -> usize {
    (64 - namespace_prefix(lab).len()).min(63)
}

/// A member name is a DNS label, not `fabric`, short enough for its
/// namespace name to fit a pin.
pub fn check_member_name(lab: &str, name: &str) -> Result<(), NameError> {
    let max = max_member_len(lab);
    let bytes = name.as_bytes();
    let ok = !name.is_empty()
        && name.len() <= max
        && name != FABRIC
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-';
    if ok {
        Ok(())
    } else {
        Err(NameError::BadMemberName {
            lab: lab.to_string(),
            name: name.to_string(),
            max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_prefix_cannot_catch_a_lab_with_a_longer_name() {
        let a = namespace_prefix("a");
        assert!(namespace_name("a", "node-1").starts_with(&a));
        assert!(!namespace_name("ab", "node-1").starts_with(&a));
        assert_eq!(lab_of_namespace("fiph-ab-node-1"), Some("ab"));
        assert_eq!(lab_of_namespace("fiph-a-b-c"), Some("a"));
        assert_eq!(lab_of_namespace("fiph-A-x"), None);
        assert_eq!(lab_of_namespace("other-a-x"), None);
    }

    #[test]
    fn lab_names_are_short_lowercase_alphanumerics() {
        for good in ["a", "lab1", "abcdefghijkl"] {
            check_lab_name(good).unwrap();
        }
        for bad in ["", "a-b", "Lab", "abcdefghijklm", "a_b", "a.b"] {
            assert!(check_lab_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn member_names_are_dns_labels_that_fit_a_namespace_pin() {
        check_member_name("lab", "node-a").unwrap();
        let longest = "x".repeat(64 - "fiph-lab-".len());
        check_member_name("lab", &longest).unwrap();
        let too_long = format!("{longest}x");
        for bad in ["", "-a", "a-", "Node", "fabric", "a_b", too_long.as_str()] {
            assert!(check_member_name("lab", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_thing_at_fault() {
        insta::assert_snapshot!(check_lab_name("Lab-1").unwrap_err(), @"lab name 'Lab-1' is not usable: it must be 1-12 characters of [a-z0-9] (no '-', which separates the lab from its members)");
        insta::assert_snapshot!(check_member_name("lab", "fabric").unwrap_err(), @"lab 'lab': member name 'fabric' is not usable: it must be a DNS label of at most 55 characters, and not 'fabric'");
    }
}

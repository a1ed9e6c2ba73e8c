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

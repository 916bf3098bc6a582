//! The fast path against serde_json: on every line the fast path accepts, the
//! slots must be those serde_json's path reads, floats to the bit; and it must
//! accept the common shapes, or it buys nothing.

use arrayvec::ArrayVec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

use super::json::{self, Slot, TopLevel};
use super::scan::scan;
use crate::schema::{Catalog, FeedSchema, MAX_FIELDS};

fn opinion() -> std::sync::Arc<FeedSchema> {
    Catalog::embedded()
        .unwrap()
        .get("public_opinion")
        .unwrap()
        .clone()
}

fn empty<'de>(schema: &FeedSchema) -> ArrayVec<Slot<'de>, MAX_FIELDS> {
    schema.fields.iter().map(|_| Slot::Missing).collect()
}

/// The fast path's slots, if it accepts the line; checked against serde_json's.
fn both(text: &str, schema: &FeedSchema, build: &[bool]) -> Option<String> {
    let mut fast = empty(schema);
    scan(text, schema, build, &mut fast)?;
    let mut slow = empty(schema);
    let top = json::read(text, schema, build, &mut slow);
    assert!(
        matches!(top, Ok(TopLevel::Object)),
        "fast path accepted what serde_json refuses: {text:?}: {top:?}"
    );
    let (fast, slow) = (format!("{fast:?}"), format!("{slow:?}"));
    assert_eq!(fast, slow, "{text:?}");
    // Debug prints floats shortest-round-trip, but not their sign bit for NaN; no NaN in JSON.
    Some(fast)
}

#[test]
fn accepts_the_common_shapes() {
    let schema = opinion();
    let build = vec![true; schema.fields.len()];
    let lines = [
        r#"{"event_id":"o1","event_time":"2026-03-01T00:00:00Z","district":"西湖区","platform":"weibo","author_id":"weibo:1","topic":"t","keywords":["a","b"],"text":"说 \"引号\" \\ 和 \n 换行 \u4e2d","sentiment":-0.5,"reach":10,"reposts":1}"#,
        r#" { "event_id" : "o2" , "sentiment" : 0.125 , "reach" : 0 , "keywords" : [ ] , "x" : null , "y" : true , "z" : [ "q" ] } "#,
        r#"{}"#,
        r#"{"reach":-12,"sentiment":3,"unknown":"v","keywords":[]}"#,
    ];
    for line in lines {
        assert!(both(line, &schema, &build).is_some(), "not taken: {line}");
    }
    let checked = vec![false; schema.fields.len()];
    let kept = both(lines[0], &schema, &build).unwrap();
    assert!(kept.contains(r#"List(["a", "b"])"#), "{kept}");
    let unkept = both(lines[0], &schema, &checked).unwrap();
    assert!(unkept.contains("CheckedList(2)"), "{unkept}");
}

#[test]
fn leaves_the_rest_to_serde_json() {
    let schema = opinion();
    let build = vec![true; schema.fields.len()];
    for line in [
        r#"{"reach":1,}"#,
        r#"{"reach":01}"#,
        r#"{"reach":-0}"#,
        r#"{"reach":123456789012345678901}"#,
        r#"{"reach":1.}"#,
        r#"{"reach":1e}"#,
        r#"{"sentiment":1e400}"#,
        r#"{"text":"\ud83d\u0041"}"#,
        r#"{"text":"\ude00"}"#,
        r#"{"text":"\x"}"#,
        "{\"text\":\"a\tb\"}",
        r#"{"extra":{"x":[1]}}"#,
        r#"{"keywords":["a",1]}"#,
        r#"{"reach":[1]}"#,
        r#"{"re\"ach":1}"#,
        r#"{"reach":1} x"#,
        r#"{"reach":tru}"#,
        r#"[1]"#,
        r#"{"reach""#,
    ] {
        let mut fast = empty(&schema);
        assert!(scan(line, &schema, &build, &mut fast).is_none(), "{line}");
    }
}

/// A JSON number as producers write it, now and then an odd or ill-formed one.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<i64>().prop_map(|v| v.to_string()),
        3 => (-1e6f64..1e6).prop_map(|v| format!("{v}")),
        2 => (-1.0f64..1.0).prop_map(|v| format!("{v:.3}")),
        1 => (-1e6f64..1e6).prop_map(|v| format!("{v:e}")),
        1 => any::<u64>().prop_map(|v| v.to_string()),
        1 => any::<f64>().prop_map(|v| v.to_string()),
        1 => ("-?[0-9]{1,17}", "[0-9]{0,20}", "([eE][+-]?[0-9]{1,3})?")
            .prop_map(|(i, f, e)| format!("{i}.{f}{e}")),
        1 => "-?[0-9]{1,21}",
    ]
}

/// A string value: text as serde_json writes it, or escapes by hand (every
/// kind, surrogate pairs, now and then a bad one).
fn string() -> impl Strategy<Value = String> {
    let text = "(\\PC|[\"\\\\/\t\n]){0,12}".prop_map(|s| serde_json::to_string(&s).unwrap());
    let escape = r#"[a-z ]|\\["\\/bfnrt]|\\u00[0-9a-fA-F]{2}|\\u[4-9][0-9a-fA-F]{3}|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"#;
    let raw = proptest::string::string_regex(&format!(r#""({escape}){{0,6}}""#)).unwrap();
    let bad = r#""[a-z]{0,3}(\\x|\\u[dD][89abAB][0-9a-fA-F]{2}|\\)[a-z]{0,3}""#;
    prop_oneof![
        30 => text,
        20 => raw,
        1 => bad.prop_map(String::from),
    ]
}

/// A value of the common shape for a field: a scalar, or an array of strings
/// for the list field.
fn common(list: bool) -> BoxedStrategy<String> {
    if list {
        return prop::collection::vec(string(), 0..4)
            .prop_map(|v| format!("[{}]", v.join(",")))
            .boxed();
    }
    let literal = prop::sample::select(vec!["true", "false", "null"]).prop_map(String::from);
    prop_oneof![4 => number(), 4 => string(), 1 => literal].boxed()
}

/// A value of any shape, nested ones included.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        common(false),
        common(true),
        prop::sample::select(vec!["{}", r#"{"a":[1,{"b":2}]}"#, "[[]]"]).prop_map(String::from),
        prop::collection::vec(number(), 1..3).prop_map(|v| format!("[{}]", v.join(","))),
    ]
}

/// A record: mostly known keys with values of their common shape, now and
/// then an unknown key, an escaped one, or a value of another shape.
fn record() -> impl Strategy<Value = String> {
    let schema = opinion();
    let mut keys: Vec<String> = schema.fields.iter().map(|f| f.name.clone()).collect();
    keys.extend(["extra".to_string(), "re\\u0061ch".to_string()]);
    let ws = prop::sample::select(vec!["", "", "", " ", "\t", "\n "]);
    let field = prop::sample::select(keys).prop_flat_map(|k| {
        let list = k == "keywords" || k == "extra";
        let v = prop_oneof![12 => common(list), 1 => any_value()];
        (Just(k), v)
    });
    prop::collection::vec((field, ws), 0..16).prop_map(|fields| {
        let body: Vec<String> = fields
            .into_iter()
            .map(|((k, v), w)| format!("{w}\"{k}\"{w}:{w}{v}{w}"))
            .collect();
        format!("{{{}}}", body.join(","))
    })
}

#[test]
fn takes_most_records_of_the_common_shape() {
    let schema = opinion();
    let build = vec![true; schema.fields.len()];
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut taken, n) = (0, 2000);
    for _ in 0..n {
        let line = record().new_tree(&mut runner).unwrap().current();
        taken += usize::from(both(&line, &schema, &build).is_some());
    }
    // A record has up to 16 fields and each may hold a shape the fast path
    // leaves alone; if it took few, the agreement tests would test little.
    assert!(taken * 4 > n, "the fast path took {taken} of {n}");
}

/// A record with a few characters replaced, inserted or removed.
fn mutated() -> impl Strategy<Value = String> {
    let edit = (
        any::<prop::sample::Index>(),
        "[\"\\\\,:\\[\\]{}0-9eE.+ -]",
        0u8..3,
    );
    (record(), prop::collection::vec(edit, 0..3)).prop_map(|(line, edits)| {
        let mut chars: Vec<char> = line.chars().collect();
        for (at, with, op) in edits {
            let c = with.chars().next().unwrap_or(' ');
            if chars.is_empty() {
                chars.push(c);
                continue;
            }
            let at = at.index(chars.len());
            match op {
                0 => chars[at] = c,
                1 => chars.insert(at, c),
                _ => {
                    chars.remove(at);
                }
            }
        }
        chars.into_iter().collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_serde_json_on_records(line in record(), keep in any::<bool>()) {
        let schema = opinion();
        both(&line, &schema, &vec![keep; schema.fields.len()]);
    }

    #[test]
    fn agrees_with_serde_json_on_broken_records(line in mutated()) {
        let schema = opinion();
        both(&line, &schema, &vec![true; schema.fields.len()]);
    }

    #[test]
    fn reads_numbers_as_serde_json(n in number()) {
        let schema = opinion();
        let build = vec![true; schema.fields.len()];
        both(&format!("{{\"sentiment\":{n}}}"), &schema, &build);
        both(&format!("{{\"reach\":{n}}}"), &schema, &build);
    }
}

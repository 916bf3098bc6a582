//! Unit tests of the parent module.

use super::*;
use crate::schema::Catalog;
use crate::source::SourceName;
use arrow::array::{Array, AsArray};

fn decode(feed: &str, lines: &[&str]) -> Decoded {
    let catalog = Catalog::embedded().unwrap();
    let mut d = Decoder::new(
        catalog.get(feed).unwrap().clone(),
        DecodeOptions::with_secret("test"),
    );
    d.decode(&chunk_of(feed, lines))
}

fn chunk_of(feed: &str, lines: &[&str]) -> Chunk {
    let mut chunk = Chunk::new(feed.into(), SourceName::File("t.jsonl".into()));
    for (i, l) in lines.iter().enumerate() {
        chunk.push_line(l.as_bytes(), i as u64 + 1);
    }
    chunk
}

#[test]
fn decodes_valid_rows_and_hashes_pii() {
    let out = decode(
        "petition",
        &[
            r#"{"event_id":"e1","event_time":"2026-03-01T08:00:00+08:00","district":"西湖区","persons":6,"repeat":true,"petitioner_id":"张三-330106","extra":{"x":[1]}}"#,
        ],
    );
    assert!(out.dead.is_empty(), "{:?}", out.dead);
    assert_eq!(out.batch.num_rows(), 1);
    let pid = out
        .batch
        .column_by_name("petitioner_id")
        .unwrap()
        .as_string::<i32>();
    assert_eq!(pid.value(0).len(), 32);
    assert!(!pid.value(0).contains("张三"));
    let street = out.batch.column_by_name("street").unwrap();
    assert!(street.is_null(0));
}

#[test]
fn each_reason_is_reported() {
    let cases = [
        ("{not json", Reason::InvalidJson, None),
        ("", Reason::InvalidJson, None),
        ("[1,2]", Reason::NotObject, None),
        (
            r#"{"event_id":"e","district":"d"}"#,
            Reason::MissingField,
            Some("event_time"),
        ),
        (
            r#"{"event_id":"e","event_time":"2026-03-01T00:00:00Z","district":"d","persons":"5"}"#,
            Reason::BadType,
            Some("persons"),
        ),
        (
            r#"{"event_id":"e","event_time":"2026-03-01T00:00:00Z","district":"d","persons":0}"#,
            Reason::OutOfRange,
            Some("persons"),
        ),
        (
            r#"{"event_id":"e","event_time":"01/03/2026","district":"d"}"#,
            Reason::BadTime,
            Some("event_time"),
        ),
        (
            r#"{"event_id":"e","event_time":"2026-03-01T00:00:00Z","district":null}"#,
            Reason::MissingField,
            Some("district"),
        ),
    ];
    for (line, reason, field) in cases {
        let out = decode("petition", &[line]);
        assert_eq!(out.batch.num_rows(), 0, "{line}");
        assert_eq!(out.dead.len(), 1, "{line}");
        assert_eq!(out.dead[0].reason, reason, "{line}: {}", out.dead[0].detail);
        assert_eq!(out.dead[0].field.as_deref(), field, "{line}");
    }
}

#[test]
fn too_large_and_dead_letters_keep_no_pii() {
    let big = format!(
        r#"{{"event_id":"e","text":"{}"}}"#,
        "x".repeat(DEFAULT_MAX_RECORD_BYTES)
    );
    let out = decode("public_opinion", &[&big]);
    assert_eq!(out.dead[0].reason, Reason::TooLarge);
    assert!(out.dead[0].raw.len() <= 4096);
    let out = decode(
        "public_opinion",
        &[r#"{"event_id":"e","event_time":"bad","district":"d","author_id":"weibo:12345"}"#],
    );
    assert_eq!(out.dead[0].reason, Reason::BadTime);
    assert_eq!(out.dead[0].event_id.as_deref(), Some("e"));
    assert!(!out.dead[0].raw.contains("weibo:12345"));
}

#[test]
fn good_rows_after_bad_ones_keep_their_line() {
    let out = decode(
        "police_incident",
        &[
            "oops",
            r#"{"event_id":"a","event_time":"2026-03-01T00:00:00Z","district":"d","deaths":0,"keywords":1}"#,
            r#"{"event_id":"b","event_time":"2026-03-01T00:00:00Z","district":"d","deaths":-1}"#,
        ],
    );
    assert_eq!(out.rows, vec![1]);
    assert_eq!(out.dead.len(), 2);
}

#[test]
fn a_task_commands_note_never_reaches_its_dead_letter() {
    let raw = redacted_command(r#"{"task_id":"t","action":"note","note":"张三 13912345678"}"#);
    assert!(!raw.contains("13912345678"), "{raw}");
    assert!(raw.contains(r#""task_id":"t""#), "{raw}");
    let cut = "{\"note\":\"张三 1391";
    assert_eq!(
        redacted_command(cut),
        format!("[withheld: {} bytes]", cut.len())
    );
}

/// Decodes with only the columns of `build` (by field name) built.
fn decode_building(feed: &str, build: &[&str], lines: &[&str]) -> Decoded {
    let catalog = Catalog::embedded().unwrap();
    let schema = catalog.get(feed).unwrap().clone();
    let read: std::collections::BTreeSet<usize> =
        build.iter().map(|c| schema.index_of(c).unwrap()).collect();
    let mut d = Decoder::new(schema.clone(), DecodeOptions::with_secret("test"))
        .building(columns_to_build(&schema, &[Some(read)]));
    d.decode(&chunk_of(feed, lines))
}

#[test]
fn unbuilt_columns_are_validated_as_strictly_and_come_out_null() {
    let head = r#""event_id":"e1","event_time":"2026-03-01T08:00:00+08:00","district":"西湖区""#;
    let long = format!("\"{}\"", "词".repeat(30_000));
    let lines = [
        format!(r#"{{{head},"topic":"t","author_id":"u1","keywords":["a","b"],"reach":3}}"#),
        format!(r#"{{{head},"topic":"t","keywords":["a",1]}}"#),
        format!(r#"{{{head},"topic":"t","keywords":[{long},{long}]}}"#),
        format!(r#"{{{head},"topic":"t","reach":-1}}"#),
        format!(r#"{{{head},"topic":"t","author_id":7}}"#),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let out = decode_building("public_opinion", &["topic"], &lines);
    let reasons: Vec<(Reason, Option<&str>)> = out
        .dead
        .iter()
        .map(|d| (d.reason, d.field.as_deref()))
        .collect();
    assert_eq!(
        reasons,
        [
            (Reason::BadType, Some("keywords")),
            (Reason::TooLarge, Some("keywords")),
            (Reason::OutOfRange, Some("reach")),
            (Reason::BadType, Some("author_id")),
        ]
    );
    // The same lines with every column built give the same verdicts.
    let all = decode("public_opinion", &lines);
    let all_reasons: Vec<(Reason, Option<&str>)> = all
        .dead
        .iter()
        .map(|d| (d.reason, d.field.as_deref()))
        .collect();
    assert_eq!(reasons, all_reasons);
    assert_eq!(out.batch.num_rows(), 1);
    assert_eq!(
        out.batch
            .column_by_name("topic")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "t"
    );
    for unread in ["keywords", "author_id", "reach"] {
        assert!(
            out.batch.column_by_name(unread).unwrap().is_null(0),
            "{unread}"
        );
    }
    assert!(!all.batch.column_by_name("keywords").unwrap().is_null(0));
}

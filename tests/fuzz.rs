//! Fuzz targets on stable Rust, driven by proptest: the decoder, task commands,
//! and the pipeline, compound, routing and config loaders get arbitrary bytes and
//! mutated valid inputs. None may panic, hang or accept what it must refuse; every
//! decoded record is either a row or one dead letter with its reason, and a dead
//! letter's `raw` stays small.
//!
//! CI runs a short pass (`FUZZ_CASES`, default 64 per target);
//! `scripts/fuzz.sh MINUTES` runs them for longer. Crashes found are kept as
//! regression cases in `tests/fuzz.proptest-regressions` and below.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use yujing::decode::{DecodeOptions, Decoder, MAX_RAW_BYTES};
use yujing::schema::Catalog;
use yujing::source::{Chunk, SourceName};
use yujing::task::command::{Command, Limits};

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A valid record of each feed's shape, for mutation.
const SEEDS: [&str; 4] = [
    r#"{"event_id":"p1","event_time":"2026-03-01T08:00:00+08:00","district":"西湖区","street":"北山街道","persons":6,"repeat":true,"skip_level":false,"channel":"visit","category":"wage_arrears","petitioner_id":"张三-330106"}"#,
    r#"{"event_id":"i1","event_time":"2026-03-01T00:00:00Z","district":"d","kind":"homicide","deaths":3,"injuries":0,"severity":2}"#,
    r#"{"event_id":"o1","event_time":"2026-03-01T00:00:00Z","district":"d","platform":"weibo","author_id":"weibo:1","topic":"t","keywords":["a","b"],"sentiment":-0.5,"reach":10,"reposts":1}"#,
    r#"{"event_id":"l1","event_time":"2026-03-01T00:00:00Z","district":"d","enterprise_id":"e","industry":"x","workers":30,"amount_owed":1e6,"kind":"wage_arrears"}"#,
];

/// A seed with a few bytes replaced, inserted or removed.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        0usize..SEEDS.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..8),
    )
        .prop_map(|(i, edits)| {
            let mut b = SEEDS[i].as_bytes().to_vec();
            for (at, byte, op) in edits {
                if b.is_empty() {
                    b.push(byte);
                    continue;
                }
                let at = at.index(b.len());
                match op {
                    0 => b[at] = byte,
                    1 => b.insert(at, byte),
                    _ => {
                        b.remove(at);
                    }
                }
            }
            b
        })
}

fn decode_all(lines: &[Vec<u8>]) {
    let catalog = Catalog::embedded().expect("catalog");
    let mut options = DecodeOptions::with_secret("fuzz");
    options.max_field_bytes = 256;
    for (feed, schema) in &catalog.feeds {
        let mut decoder = Decoder::new(Arc::clone(schema), options.clone());
        let mut chunk = Chunk::new(feed.as_str().into(), SourceName::Generated("fuzz".into()));
        for (i, l) in lines.iter().enumerate() {
            chunk.push_line(l, i as u64);
        }
        let decoded = decoder.decode(&chunk);
        assert_eq!(
            decoded.rows.len() + decoded.dead.len(),
            lines.len(),
            "every record is a row or one dead letter"
        );
        for d in &decoded.dead {
            assert!(d.raw.len() <= MAX_RAW_BYTES, "raw of {} bytes", d.raw.len());
            assert!(!d.detail.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decoder_takes_arbitrary_bytes(lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..8)) {
        decode_all(&lines);
    }

    #[test]
    fn decoder_takes_mutated_records(lines in prop::collection::vec(mutated(), 1..8)) {
        decode_all(&lines);
    }

    #[test]
    fn task_commands_take_anything(text in ".{0,300}", seed in mutated()) {
        let limits = Limits { max_bytes: 200, max_text_bytes: 50, latest: 0 };
        for line in [text, String::from_utf8_lossy(&seed).into_owned()] {
            if let Ok(c) = Command::parse_within(&line, limits) {
                prop_assert!(line.len() <= 200);
                prop_assert!(c.time <= 0);
                prop_assert!(c.note.as_ref().is_none_or(|n| n.len() <= 50));
            }
        }
    }

    #[test]
    fn pipeline_loader_takes_anything(text in "(name|sql|lateness|\\[detect\\]|\\[\\[rule\\]\\]|when|level|method|=|\"|\\n|[a-z0-9 '()*,_]){0,120}") {
        let _ = yujing::pipeline::parse_pipeline(Path::new("f.toml"), &text);
        let _ = yujing::detect::compound::parse(Path::new("c.toml"), &text);
    }

    #[test]
    fn routing_loader_takes_anything(text in "(\\[default\\]|\\[deadlines\\]|\\[escalation\\]|\\[\\[route\\]\\]|feed|track|department|legal|red|=|\"|\\n|[a-z0-9 _{}])*") {
        let feeds: BTreeSet<String> = ["petition".to_string()].into();
        let _ = yujing::task::routing::RoutingTable::parse(Path::new("r.toml"), &text, &feeds);
    }

    #[test]
    fn config_loader_takes_anything(text in "(\\[kafka\\]|\\[state\\]|\\[http\\]|brokers|group_id|idle_timeout|max_future|dir|=|\"|\\n|[a-z0-9 .:])*") {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("yujing.toml");
        std::fs::write(&path, &text).expect("write");
        let _ = yujing::config::Config::load(&path);
    }
}

/// Crashes found by fuzzing, kept as they were found.
#[test]
fn regression_cases() {
    decode_all(&[
        b"[".repeat(100_000),
        b"{\"event_id\":".to_vec(),
        vec![0xff, 0xfe, b'{'],
        format!(
            "{{\"event_id\":\"e\",\"district\":\"{}\"}}",
            "x".repeat(1000)
        )
        .into_bytes(),
    ]);
}

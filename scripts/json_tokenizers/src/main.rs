//! Deserializes every line of an opinion-shaped file (`bench_feed N opinion`)
//! into one borrowed struct of its 13 fields with serde_json, sonic-rs and
//! simd-json, and prints each one's time per round. The struct stands in for
//! yujing's visitor: strings borrowed from the line, the keyword list kept.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use serde::Deserialize;

#[allow(dead_code)] // read only to be parsed
#[derive(Deserialize)]
struct Post<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    event_time: Cow<'a, str>,
    #[serde(borrow)]
    district: Cow<'a, str>,
    #[serde(borrow)]
    street: Cow<'a, str>,
    #[serde(borrow)]
    community: Cow<'a, str>,
    #[serde(borrow)]
    grid_id: Cow<'a, str>,
    #[serde(borrow)]
    platform: Cow<'a, str>,
    #[serde(borrow)]
    author_id: Cow<'a, str>,
    #[serde(borrow)]
    topic: Cow<'a, str>,
    #[serde(borrow)]
    keywords: Vec<Cow<'a, str>>,
    sentiment: f64,
    reach: i64,
    reposts: i64,
}

fn timed(lines: &[&str], mut parse: impl FnMut(&str) -> i64) -> (Duration, i64) {
    let start = Instant::now();
    let sum = lines.iter().map(|l| parse(l)).sum();
    (start.elapsed(), sum)
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: json_tokenizers FILE.jsonl");
    let data = std::fs::read_to_string(&path).expect("readable UTF-8 file");
    let lines: Vec<&str> = data.lines().collect();
    let mut scratch = Vec::new();
    let mut buffers = simd_json::Buffers::default();
    for round in 1..=3 {
        let (serde_json, a) = timed(&lines, |l| {
            let mut de = serde_json::Deserializer::from_str(l);
            let post = Post::deserialize(&mut de).expect("valid line");
            de.end().expect("one value");
            post.reach
        });
        let (sonic, b) = timed(&lines, |l| {
            let mut de = sonic_rs::Deserializer::from_str(l);
            let post = Post::deserialize(&mut de).expect("valid line");
            de.end().expect("one value");
            post.reach
        });
        // simd-json parses in place: each line is copied to a scratch buffer.
        let (simd, c) = timed(&lines, |l| {
            scratch.clear();
            scratch.extend_from_slice(l.as_bytes());
            let mut de =
                simd_json::Deserializer::from_slice_with_buffers(&mut scratch, &mut buffers)
                    .expect("valid line");
            Post::deserialize(&mut de).expect("valid line").reach
        });
        assert!(a == b && b == c, "the three read different values");
        let per_line = |d: Duration| d.as_nanos() as f64 / lines.len() as f64;
        println!(
            "round {round}: ns per line: serde_json {:.0}, sonic-rs {:.0}, simd-json {:.0}",
            per_line(serde_json),
            per_line(sonic),
            per_line(simd)
        );
    }
}

//! The benchmark feeds, with a fixed key space and 1 000 events per second of
//! event time with a few seconds of disorder, so that memory can be compared at 1M
//! and 10M events with the same keys: the narrow `bench_event` (12 districts × 8
//! categories, ~130 bytes a line) and an opinion-shaped `public_opinion` feed of the
//! shipped schema (~270 bytes, a PII `author_id`, a keyword list, Chinese text).

use std::io::Write;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::core::time::format_rfc3339;

pub const DISTRICTS: usize = 12;
pub const CATEGORIES: [&str; 8] = [
    "land_acquisition",
    "wage_arrears",
    "housing",
    "environment",
    "social_security",
    "traffic",
    "public_order",
    "other",
];

/// The `i`th event's time: one event per millisecond of event time from
/// 2026-03-01T00:00:00Z, up to 5 s early or late.
fn event_time(rng: &mut ChaCha8Rng, i: u64) -> i64 {
    1_772_323_200_000 + i as i64 + rng.random_range(-5_000..5_000)
}

/// A sentiment in [-1, 1] with three decimals.
fn sentiment(rng: &mut ChaCha8Rng) -> f64 {
    (((rng.random::<f64>() * 2.0 - 1.0) * 1000.0).round() / 1000.0).clamp(-1.0, 1.0)
}

/// Writes `n` benchmark events as JSON lines.
pub fn write_lines(out: &mut impl Write, n: u64, seed: u64) -> std::io::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in 0..n {
        let t = event_time(&mut rng, i);
        let district = rng.random_range(0..DISTRICTS);
        let category = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
        let persons = if rng.random::<f64>() < 0.03 {
            rng.random_range(5..30)
        } else {
            1
        };
        let sentiment = sentiment(&mut rng);
        writeln!(
            out,
            r#"{{"event_id":"b{i}","event_time":"{}","district":"区{district:02}","category":"{category}","persons":{persons},"sentiment":{}}}"#,
            format_rfc3339(t),
            sentiment
        )?;
    }
    Ok(())
}

/// Topics of the opinion-shaped feed (the shipped pipelines' vocabulary).
pub const TOPICS: [(&str, [&str; 3]); 8] = [
    ("征地拆迁", ["拆迁", "补偿", "强拆"]),
    ("欠薪讨薪", ["欠薪", "工资", "讨薪"]),
    ("物业纠纷", ["物业费", "停车", "电梯"]),
    ("环境污染", ["异味", "排污", "噪音"]),
    ("食品安全", ["过期", "卫生", "中毒"]),
    ("教育", ["学位", "收费", "校车"]),
    ("医疗", ["挂号", "医保", "纠纷"]),
    ("交通", ["拥堵", "事故", "停运"]),
];

const PLATFORMS: [&str; 4] = ["weibo", "douyin", "wechat", "toutiao"];

/// Writes `n` opinion-shaped events (`public_opinion` of `schemas/`) as JSON lines.
pub fn write_opinion_lines(out: &mut impl Write, n: u64, seed: u64) -> std::io::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in 0..n {
        let t = event_time(&mut rng, i);
        let district = rng.random_range(0..DISTRICTS);
        let street = rng.random_range(0..8);
        let community = rng.random_range(0..6);
        let (topic, words) = TOPICS[rng.random_range(0..TOPICS.len())];
        let platform = PLATFORMS[rng.random_range(0..PLATFORMS.len())];
        let author = rng.random_range(0..2_000_000);
        let first = words[rng.random_range(0..words.len())];
        let keywords = if rng.random::<f64>() < 0.4 {
            format!(r#""{first}","{}""#, words[rng.random_range(0..words.len())])
        } else {
            format!(r#""{first}""#)
        };
        let sentiment = sentiment(&mut rng);
        let reach: u32 = rng.random_range(0..5_000);
        let reposts: u32 = rng.random_range(0..40);
        writeln!(
            out,
            r#"{{"event_id":"PO-{i:010}","event_time":"{}","district":"区{district:02}","street":"街道{street}","community":"街道{street}第{community}社区","grid_id":"G-{district:02}-{street}-{community}","platform":"{platform}","author_id":"u{author}","topic":"{topic}","keywords":[{keywords}],"sentiment":{},"reach":{reach},"reposts":{reposts}}}"#,
            format_rfc3339(t),
            sentiment
        )?;
    }
    Ok(())
}

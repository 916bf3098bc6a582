//! The benchmark feed: `bench_event` lines with a fixed key space (12 districts ×
//! 8 categories), 1 000 events per second of event time and a few seconds of
//! disorder, so that memory can be compared at 1M and 10M events with the same keys.

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

/// Writes `n` benchmark events as JSON lines.
pub fn write_lines(out: &mut impl Write, n: u64, seed: u64) -> std::io::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = 1_772_323_200_000i64; // 2026-03-01T00:00:00Z
    for i in 0..n {
        // One event per millisecond of event time, up to 5 s early or late.
        let t = start + i as i64 + rng.random_range(-5_000..5_000);
        let district = rng.random_range(0..DISTRICTS);
        let category = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
        let persons = if rng.random::<f64>() < 0.03 {
            rng.random_range(5..30)
        } else {
            1
        };
        let sentiment = ((rng.random::<f64>() * 2.0 - 1.0) * 1000.0).round() / 1000.0;
        writeln!(
            out,
            r#"{{"event_id":"b{i}","event_time":"{}","district":"区{district:02}","category":"{category}","persons":{persons},"sentiment":{}}}"#,
            format_rfc3339(t),
            sentiment.clamp(-1.0, 1.0)
        )?;
    }
    Ok(())
}

//! Event-time helpers: RFC 3339 parsing and formatting in milliseconds since the
//! Unix epoch, and the human durations (`"5m"`, `"1 hour"`) used by pipelines.
//!
//! Parsing is hand-written because it runs once per event on the hot path; it
//! accepts exactly RFC 3339 `date-time` (with `T`, `t` or a space as separator).

use std::fmt::Write as _;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// Parses an RFC 3339 timestamp such as `2026-03-01T08:15:00+08:00` into UTC
/// milliseconds. Sub-millisecond digits are truncated.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    let year = digits(b, 0, 4)? as i64;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // RFC 3339 allows a leap second (60); we fold it into the next second.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_minutes: i64 = match b.get(i)? {
        b'Z' | b'z' => {
            i += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            let oh = digits(b, i + 1, 2)? as i64;
            let om = digits(b, i + 4, 2)? as i64;
            if b.get(i + 3) != Some(&b':') || oh > 23 || om > 59 {
                return None;
            }
            i += 6;
            let m = oh * 60 + om;
            if *sign == b'-' { -m } else { m }
        }
        _ => return None,
    };
    if i != b.len() {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour as i64 * 3600 + minute as i64 * 60 + second as i64
        - offset_minutes * 60;
    Some(secs * 1000 + millis)
}

/// Formats UTC milliseconds as RFC 3339 with a `Z` suffix, e.g. `2026-03-01T00:00:00Z`;
/// milliseconds are written only when they are not zero.
pub fn format_rfc3339(ms: Millis) -> String {
    let mut out = String::with_capacity(24);
    let days = ms.div_euclid(DAY);
    let rem = ms.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = rem / 1000;
    let frac = rem % 1000;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
    out.push('Z');
    out
}

/// The districts' local time, UTC+8 (China Standard Time): what people read.
pub const LOCAL_OFFSET: Millis = 8 * HOUR;

/// A time in local time to the minute: `2026-03-14 10:20`.
pub fn format_local(ms: Millis) -> String {
    let s = format_rfc3339(ms + LOCAL_OFFSET);
    s.get(..16)
        .map_or_else(|| s.clone(), |m| m.replace('T', " "))
}

/// The processing clock: what "now" is for judging records dated in the future
/// and, in the daemon, for task deadlines and acknowledgements (processing-time
/// timers). The daemon reads the wall clock; replay reads it too unless `--now`
/// fixes it, so a backtest can be repeated byte for byte. `File` is the wall
/// clock a test drives: the time written in a file (`yujing run --clock-file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clock {
    Wall,
    Fixed(Millis),
    File(std::sync::Arc<std::path::Path>),
}

impl Clock {
    pub fn now(&self) -> Millis {
        match self {
            Clock::Wall => wall_now(),
            Clock::Fixed(t) => *t,
            Clock::File(path) => read_clock_file(path).unwrap_or_else(wall_now),
        }
    }
}

/// The system's wall clock, in milliseconds since the epoch.
pub fn wall_now() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// A driven clock's time: RFC 3339 or milliseconds since the epoch; the wall
/// clock while the file is missing or unreadable.
fn read_clock_file(path: &std::path::Path) -> Option<Millis> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    text.parse::<Millis>().ok().or_else(|| parse_rfc3339(text))
}

/// Day of the week of a time, Monday = 0 … Sunday = 6 (1970-01-01 was a Thursday).
pub fn weekday(ms: Millis) -> i64 {
    (ms.div_euclid(DAY) + 3).rem_euclid(7)
}

/// Parses a duration: compact (`"90s"`, `"5m"`, `"1h30m"`, `"2d"`, `"500ms"`) or
/// spelled out (`"10 minutes"`, `"1 hour"`, `"1 day 2 hours"`), as SQL intervals are.
pub fn parse_duration(text: &str) -> Result<Millis, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: Millis = 0;
    let mut parts = 0;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!("`{text}`: expected a number at `{}`", &s[start..]));
        }
        let n: i64 = s[start..i]
            .parse()
            .map_err(|_| format!("`{text}`: number too large"))?;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = s[ustart..i].to_ascii_lowercase();
        let scale = match unit.as_str() {
            "ms" | "millisecond" | "milliseconds" => 1,
            "s" | "sec" | "secs" | "second" | "seconds" => SECOND,
            "m" | "min" | "mins" | "minute" | "minutes" => MINUTE,
            "h" | "hr" | "hrs" | "hour" | "hours" => HOUR,
            "d" | "day" | "days" => DAY,
            "w" | "week" | "weeks" => 7 * DAY,
            "" => {
                return Err(format!(
                    "`{text}`: missing unit after {n} (use ms, s, m, h, d or w)"
                ));
            }
            other => {
                return Err(format!(
                    "`{text}`: unknown unit `{other}` (use ms, s, m, h, d or w; months and years vary in length)"
                ));
            }
        };
        total = n
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("`{text}`: duration too large"))?;
        parts += 1;
    }
    if parts == 0 {
        return Err(format!("`{text}`: no duration"));
    }
    Ok(total)
}

/// Formats a duration compactly, e.g. `1h30m`.
pub fn format_duration(ms: Millis) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, scale) in [
        ("d", DAY),
        ("h", HOUR),
        ("m", MINUTE),
        ("s", SECOND),
        ("ms", 1),
    ] {
        if rest >= scale {
            let _ = write!(out, "{}{unit}", rest / scale);
            rest %= scale;
        }
    }
    out
}

/// Serde for a time in milliseconds written as RFC 3339 text, for task records.
pub mod rfc3339 {
    use super::{Millis, format_rfc3339, parse_rfc3339};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_rfc3339(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        let text = String::deserialize(d)?;
        parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_and_offsets() {
        let t = parse_rfc3339("2026-03-01T08:15:00+08:00").unwrap();
        assert_eq!(format_rfc3339(t), "2026-03-01T00:15:00Z");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.5Z"), Some(500));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999Z"), Some(-1));
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.123456Z").map(|t| t % 1000),
            Some(123)
        );
    }

    #[test]
    fn rfc3339_rejects_malformed() {
        for bad in [
            "",
            "2026-03-01",
            "2026-03-01T08:15:00",
            "2026-02-30T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-03-01T24:00:00Z",
            "2026-03-01T08:15:00+0800",
            "2026-03-01T08:15:00Zjunk",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn agrees_with_chrono_on_many_dates() {
        for days in (-700_000..2_000_000).step_by(997) {
            let ms = days as i64 * DAY + 12_345_678;
            let ours = format_rfc3339(ms);
            let theirs = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            assert_eq!(ours, theirs);
            assert_eq!(parse_rfc3339(&ours), Some(ms));
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(5 * MINUTE));
        assert_eq!(parse_duration("1h30m"), Ok(90 * MINUTE));
        assert_eq!(parse_duration("10 minutes"), Ok(10 * MINUTE));
        assert_eq!(parse_duration("1 day 2 hours"), Ok(26 * HOUR));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("1 month").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(format_duration(90 * MINUTE), "1h30m");
    }
}

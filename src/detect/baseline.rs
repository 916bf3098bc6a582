//! Which past windows form a baseline: the most recent `baseline` windows of the
//! same season as the current one, after skipping the `guard` most recent ones (so
//! an outbreak's first windows do not raise its own baseline). Seasons follow
//! local time (the pipeline's UTC offset).

use serde::{Deserialize, Serialize};

use crate::core::time::{DAY, HOUR, Millis, weekday};

/// How windows are matched with earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seasonality {
    /// Every earlier window.
    #[default]
    None,
    /// Windows at the same hour of the day.
    HourOfDay,
    /// Windows on the same day of the week.
    DayOfWeek,
    /// Windows at the same hour of the same day of the week.
    HourOfWeek,
}

impl Seasonality {
    /// How long one cycle of seasons lasts (`None`: no seasons).
    pub fn period(self) -> Option<Millis> {
        match self {
            Seasonality::None => None,
            Seasonality::HourOfDay => Some(DAY),
            Seasonality::DayOfWeek | Seasonality::HourOfWeek => Some(7 * DAY),
        }
    }

    /// The season a window start falls in, in local time.
    pub fn slot(self, start: Millis, utc_offset: Millis) -> i64 {
        let local = start + utc_offset;
        match self {
            Seasonality::None => 0,
            Seasonality::HourOfDay => local.rem_euclid(DAY) / HOUR,
            Seasonality::DayOfWeek => weekday(local),
            Seasonality::HourOfWeek => weekday(local) * 24 + local.rem_euclid(DAY) / HOUR,
        }
    }
}

/// Picks the baseline for the window starting at `start` from `history` (window
/// start, value), oldest first and not including the current window.
pub fn select(
    history: &[(Millis, f64)],
    start: Millis,
    seasonality: Seasonality,
    utc_offset: Millis,
    baseline: usize,
    guard: usize,
) -> Vec<f64> {
    let slot = seasonality.slot(start, utc_offset);
    let mut picked: Vec<f64> = history
        .iter()
        .rev()
        .filter(|(t, _)| seasonality.slot(*t, utc_offset) == slot)
        .skip(guard)
        .take(baseline)
        .map(|(_, v)| *v)
        .collect();
    picked.reverse();
    picked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::time::parse_rfc3339;

    #[test]
    fn seasons_in_local_time() {
        // Monday 2026-03-02 09:00 in UTC+8 is 01:00 UTC.
        let t = parse_rfc3339("2026-03-02T09:00:00+08:00").unwrap();
        let tz = 8 * HOUR;
        assert_eq!(Seasonality::HourOfDay.slot(t, tz), 9);
        assert_eq!(Seasonality::DayOfWeek.slot(t, tz), 0);
        assert_eq!(Seasonality::HourOfWeek.slot(t + DAY, tz), 24 + 9);
        assert_eq!(Seasonality::HourOfDay.slot(t, 0), 1);
    }

    #[test]
    fn same_season_most_recent_after_the_guard() {
        // Hourly windows over three days; values = hour index.
        let h: Vec<(Millis, f64)> = (0..72).map(|i| (i * HOUR, i as f64)).collect();
        let now = 72 * HOUR; // hour of day 0
        assert_eq!(
            select(&h, now, Seasonality::HourOfDay, 0, 5, 0),
            vec![0.0, 24.0, 48.0]
        );
        assert_eq!(
            select(&h, now, Seasonality::HourOfDay, 0, 5, 1),
            vec![0.0, 24.0]
        );
        assert_eq!(
            select(&h, now, Seasonality::None, 0, 3, 2),
            vec![67.0, 68.0, 69.0]
        );
    }
}

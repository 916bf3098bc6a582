//! Where bins and windows fall in time. Fixed windows (tumble, hop) cut time
//! into bins `slide` wide and a window is `width / slide` consecutive bins;
//! calendar windows are one bin a month, quarter or year of local time; a
//! cumulating window is every bin from its period's start to its end. The
//! operator asks the grid, never does the arithmetic itself.

use crate::core::calendar::{period_end, period_start};
use crate::core::time::Millis;
use crate::query::{Period, WindowSpec};

#[derive(Debug, Clone, Copy)]
pub(super) enum Grid {
    /// Bins `slide` wide starting at `offset + k * slide`; windows `width` wide.
    Fixed {
        slide: Millis,
        width: Millis,
        offset: Millis,
    },
    /// Bins and windows are calendar periods of `months` at `utc_offset`.
    Calendar { months: u32, utc_offset: Millis },
    /// Bins `step` wide; windows run from their period's start to each bin's end.
    Cumulate {
        step: Millis,
        offset: Millis,
        period: Period,
        utc_offset: Millis,
    },
}

impl Grid {
    /// The grid of a window spec; `utc_offset` is the pipeline's timezone.
    pub(super) fn new(spec: WindowSpec, utc_offset: Millis) -> Grid {
        let fixed = |slide: Millis, width: Millis| Grid::Fixed {
            slide,
            width,
            offset: (-utc_offset).rem_euclid(slide),
        };
        match spec {
            WindowSpec::Tumble { width } => fixed(width, width),
            WindowSpec::Hop { slide, width } => fixed(slide, width),
            WindowSpec::Session { gap } => fixed(gap, gap),
            WindowSpec::Calendar { months } => Grid::Calendar { months, utc_offset },
            WindowSpec::Cumulate { step, period } => Grid::Cumulate {
                step,
                offset: (-utc_offset).rem_euclid(step),
                period,
                utc_offset,
            },
        }
    }

    /// Start of the bin holding `t`.
    pub(super) fn bin_start(&self, t: Millis) -> Millis {
        match *self {
            Grid::Fixed { slide, offset, .. }
            | Grid::Cumulate {
                step: slide,
                offset,
                ..
            } => (t - offset).div_euclid(slide) * slide + offset,
            Grid::Calendar { months, utc_offset } => period_start(t, months, utc_offset),
        }
    }

    /// End of the bin starting at `bin`; the earliest window holding it ends here.
    pub(super) fn bin_end(&self, bin: Millis) -> Millis {
        match *self {
            Grid::Fixed { slide, .. } | Grid::Cumulate { step: slide, .. } => {
                bin.saturating_add(slide)
            }
            Grid::Calendar { months, utc_offset } => period_end(bin, months, utc_offset),
        }
    }

    /// End of the last window holding the bin starting at `bin`: past it, an
    /// event of that bin is late for every window.
    pub(super) fn last_end(&self, bin: Millis) -> Millis {
        match *self {
            Grid::Fixed { width, .. } => bin.saturating_add(width),
            Grid::Calendar { .. } => self.bin_end(bin),
            Grid::Cumulate { .. } => self.period_end(self.period_start(bin)),
        }
    }

    /// Start of the window ending at `end` (a window end of this grid).
    pub(super) fn window_start(&self, end: Millis) -> Millis {
        match *self {
            Grid::Fixed { width, .. } => end - width,
            Grid::Calendar { months, utc_offset } => period_start(end - 1, months, utc_offset),
            Grid::Cumulate { .. } => self.period_start(end - 1),
        }
    }

    /// The first window end after `end` (a window end of this grid).
    pub(super) fn next_end(&self, end: Millis) -> Millis {
        match *self {
            Grid::Fixed { slide, .. } | Grid::Cumulate { step: slide, .. } => {
                end.saturating_add(slide)
            }
            Grid::Calendar { .. } => self.bin_end(self.bin_start(end)),
        }
    }

    /// Earliest bin a window ending after `end` holds: bins before it are done
    /// once the window ending at `end` has closed.
    pub(super) fn first_kept(&self, end: Millis) -> Millis {
        match *self {
            Grid::Fixed { slide, width, .. } => end - width + slide,
            Grid::Calendar { .. } => end,
            Grid::Cumulate { .. } => self.period_start(end),
        }
    }

    /// Where closing stops once every input has ended or gone idle: the end
    /// of time, but for cumulating windows the step of the latest event — the
    /// rest of their period would repeat the same totals for days no event has
    /// reached, and the running totals go on when events come again.
    pub(super) fn end_of_time(&self, latest: Option<Millis>) -> Millis {
        match (self, latest) {
            (Grid::Cumulate { .. }, Some(t)) => self.bin_end(self.bin_start(t)),
            _ => Millis::MAX,
        }
    }

    /// Cumulating windows: start of the period holding `t`.
    fn period_start(&self, t: Millis) -> Millis {
        match *self {
            Grid::Cumulate {
                period: Period::Fixed(width),
                utc_offset,
                ..
            } => {
                let offset = (-utc_offset).rem_euclid(width);
                (t - offset).div_euclid(width) * width + offset
            }
            Grid::Cumulate {
                period: Period::Months(months),
                utc_offset,
                ..
            } => period_start(t, months, utc_offset),
            _ => self.bin_start(t),
        }
    }

    fn period_end(&self, start: Millis) -> Millis {
        match *self {
            Grid::Cumulate {
                period: Period::Fixed(width),
                ..
            } => start.saturating_add(width),
            Grid::Cumulate {
                period: Period::Months(months),
                utc_offset,
                ..
            } => period_end(start, months, utc_offset),
            _ => self.bin_end(start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::time::{DAY, HOUR, parse_rfc3339};

    fn t(s: &str) -> Millis {
        parse_rfc3339(s).expect("time")
    }

    #[test]
    fn fixed_windows_keep_the_hop_arithmetic() {
        let g = Grid::new(
            WindowSpec::Hop {
                slide: HOUR,
                width: 3 * HOUR,
            },
            8 * HOUR,
        );
        let bin = g.bin_start(t("2026-03-01T01:30:00Z"));
        assert_eq!(bin, t("2026-03-01T01:00:00Z"));
        assert_eq!(g.bin_end(bin), bin + HOUR);
        assert_eq!(g.last_end(bin), bin + 3 * HOUR);
        assert_eq!(g.window_start(bin + 3 * HOUR), bin);
        assert_eq!(g.first_kept(bin + 3 * HOUR), bin + HOUR);
        // A day in +08:00 starts at 16:00 UTC.
        let day = Grid::new(WindowSpec::Tumble { width: DAY }, 8 * HOUR);
        assert_eq!(
            day.bin_start(t("2026-03-01T15:59:00Z")),
            t("2026-02-28T16:00:00Z")
        );
    }

    #[test]
    fn a_cumulating_year_grows_by_the_day_and_starts_again_in_january() {
        let g = Grid::new(
            WindowSpec::Cumulate {
                step: DAY,
                period: Period::Months(12),
            },
            8 * HOUR,
        );
        let bin = g.bin_start(t("2028-06-15T12:00:00+08:00"));
        assert_eq!(bin, t("2028-06-15T00:00:00+08:00"));
        // Every window of the year holds the bin; the last ends with the year.
        assert_eq!(g.last_end(bin), t("2029-01-01T00:00:00+08:00"));
        let end = g.bin_end(bin);
        assert_eq!(g.window_start(end), t("2028-01-01T00:00:00+08:00"));
        assert_eq!(g.next_end(end), end + DAY);
        // Within the year every bin is kept; at its end none of the year is.
        assert_eq!(g.first_kept(end), t("2028-01-01T00:00:00+08:00"));
        let new_year = t("2029-01-01T00:00:00+08:00");
        assert_eq!(g.first_kept(new_year), new_year);
        assert_eq!(g.window_start(new_year), t("2028-01-01T00:00:00+08:00"));
    }

    #[test]
    fn a_calendar_month_is_one_bin_and_one_window() {
        let g = Grid::new(WindowSpec::Calendar { months: 1 }, 8 * HOUR);
        let bin = g.bin_start(t("2028-02-29T23:59:00+08:00"));
        assert_eq!(bin, t("2028-02-01T00:00:00+08:00"));
        let end = g.bin_end(bin);
        assert_eq!(end, t("2028-03-01T00:00:00+08:00"));
        assert_eq!(g.last_end(bin), end);
        assert_eq!(g.window_start(end), bin);
        assert_eq!(g.next_end(end), t("2028-04-01T00:00:00+08:00"));
        assert_eq!(g.first_kept(end), end);
    }
}

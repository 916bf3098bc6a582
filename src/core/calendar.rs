//! Calendar periods — months, quarters, years — in a fixed UTC offset, for
//! windows that follow the calendar rather than a fixed width (the seed's
//! monthly and annual figures). A period of `n` months starts on the first of a
//! month whose index since year 0 is a multiple of `n`, at local midnight, so
//! quarters start in January, April, July and October, and years in January.

use super::time::{DAY, Millis, civil_from_days, days_from_civil};

/// Start of the `months`-long period holding `t`, at local midnight of `utc_offset`.
pub fn period_start(t: Millis, months: u32, utc_offset: Millis) -> Millis {
    let (y, m, _) = civil_from_days((t + utc_offset).div_euclid(DAY));
    let index = y * 12 + (m as i64 - 1);
    let first = index - index.rem_euclid(months.max(1) as i64);
    month_start(first, utc_offset)
}

/// The start of the period after the one starting at `start`.
pub fn period_end(start: Millis, months: u32, utc_offset: Millis) -> Millis {
    let (y, m, _) = civil_from_days((start + utc_offset).div_euclid(DAY));
    month_start(y * 12 + (m as i64 - 1) + months.max(1) as i64, utc_offset)
}

/// Local midnight of the first day of month `index` (year × 12 + month − 1).
fn month_start(index: i64, utc_offset: Millis) -> Millis {
    let (y, m) = (index.div_euclid(12), index.rem_euclid(12) as u32 + 1);
    days_from_civil(y, m, 1) * DAY - utc_offset
}

/// Reads a calendar interval — `1 month`, `3 months`, `1 quarter`, `1 year` —
/// as a number of months; `None` when the text names no calendar unit.
pub fn parse_months(text: &str) -> Option<Result<u32, String>> {
    let t = text.trim().to_ascii_lowercase();
    let (n, unit) = match t.split_once(char::is_whitespace) {
        Some((n, unit)) => (n.trim(), unit.trim()),
        None => {
            let split = t.find(|c: char| !c.is_ascii_digit())?;
            (&t[..split], &t[split..])
        }
    };
    let per = match unit {
        "mon" | "mons" | "month" | "months" => 1,
        "quarter" | "quarters" => 3,
        "y" | "year" | "years" => 12,
        _ => return None,
    };
    Some(match n.parse::<u32>().map(|n| n.saturating_mul(per)) {
        Ok(months) if months > 0 && (12 % months == 0 || months % 12 == 0) => Ok(months),
        Ok(_) => Err(format!(
            "`{text}`: a calendar window divides the year (1, 2, 3, 4 or 6 months) or is whole years"
        )),
        Err(_) => Err(format!(
            "`{text}`: expected a whole number of months or years"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::time::{HOUR, parse_rfc3339};

    fn t(s: &str) -> Millis {
        parse_rfc3339(s).expect("time")
    }

    #[test]
    fn months_follow_the_calendar_in_local_time() {
        let cst = 8 * HOUR;
        // 29 February 2028 (leap) and 28 February 2027.
        let feb28 = period_start(t("2028-02-29T23:00:00+08:00"), 1, cst);
        assert_eq!(feb28, t("2028-02-01T00:00:00+08:00"));
        assert_eq!(period_end(feb28, 1, cst), t("2028-03-01T00:00:00+08:00"));
        let feb27 = period_start(t("2027-02-10T00:00:00+08:00"), 1, cst);
        assert_eq!(period_end(feb27, 1, cst) - feb27, 28 * DAY);
        // 31 March 23:30 local is still March, though it is 15:30 UTC.
        assert_eq!(
            period_start(t("2026-03-31T15:30:00Z"), 1, cst),
            t("2026-03-01T00:00:00+08:00")
        );
        // 31 March 16:30 UTC is 1 April 00:30 local.
        assert_eq!(
            period_start(t("2026-03-31T16:30:00Z"), 1, cst),
            t("2026-04-01T00:00:00+08:00")
        );
        let q = period_start(t("2026-08-15T00:00:00Z"), 3, cst);
        assert_eq!(q, t("2026-07-01T00:00:00+08:00"));
        let y = period_start(t("2028-06-01T00:00:00Z"), 12, cst);
        assert_eq!(y, t("2028-01-01T00:00:00+08:00"));
        assert_eq!(period_end(y, 12, cst) - y, 366 * DAY);
        // December rolls over into the next year.
        let dec = period_start(t("2026-12-05T00:00:00Z"), 1, 0);
        assert_eq!(period_end(dec, 1, 0), t("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn calendar_intervals_are_read_as_months() {
        assert_eq!(parse_months("1 month"), Some(Ok(1)));
        assert_eq!(parse_months("3 months"), Some(Ok(3)));
        assert_eq!(parse_months("1 quarter"), Some(Ok(3)));
        assert_eq!(parse_months("1 year"), Some(Ok(12)));
        assert_eq!(parse_months("1 day"), None);
        assert!(matches!(parse_months("5 months"), Some(Err(_))));
    }
}

//! Detectors for bursty, heavy-tailed counts, where a mean and a standard
//! deviation are dragged by the very bursts they should judge: a robust z-score
//! on the median and MAD, a seasonal-hybrid ESD test (Twitter's S-H-ESD: robust
//! seasonal medians, then Rosner's generalized ESD on the residuals with median
//! and MAD in place of mean and sd), and `glrnb`, the window-limited generalized
//! likelihood ratio for a rise of a negative-binomial mean (Höhle & Paul 2008, R
//! `surveillance::glrnb`), which accumulates evidence over several windows and so
//! finds a sustained shift earlier than a test of one window.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::Verdict;
use super::baseline::Seasonality;
use crate::core::time::Millis;

/// The constant that makes the MAD estimate σ for normal data (R's `mad`).
pub const MAD_SCALE: f64 = 1.4826;

/// The median of `xs` (reordered in place); NaN when empty.
pub fn median(xs: &mut [f64]) -> f64 {
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    let (_, hi, _) = xs.select_nth_unstable_by(n / 2, f64::total_cmp);
    let hi = *hi;
    if n % 2 == 1 {
        return hi;
    }
    let lo = xs[..n / 2]
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    (lo + hi) / 2.0
}

/// The median and the scaled median absolute deviation (R's `mad`).
pub fn median_mad(xs: &[f64]) -> (f64, f64) {
    let mut v = xs.to_vec();
    let m = median(&mut v);
    for x in &mut v {
        *x = (*x - m).abs();
    }
    (m, MAD_SCALE * median(&mut v))
}

/// A spread that is never zero while the data vary: the MAD, else the mean absolute
/// deviation scaled for normal data (Iglewicz & Hoaglin's fallback for a MAD of
/// zero, common in sparse counts), else `min_sigma`.
fn robust_spread(xs: &[f64], center: f64, mad: f64, min_sigma: f64) -> f64 {
    let spread = if mad > 0.0 {
        mad
    } else {
        let mean_ad = xs.iter().map(|x| (x - center).abs()).sum::<f64>() / xs.len().max(1) as f64;
        mean_ad * (std::f64::consts::PI / 2.0).sqrt()
    };
    spread.max(min_sigma)
}

/// MAD's efficiency relative to the standard deviation for normal data (≈ 0.37):
/// a MAD from n values is about as precise as a standard deviation from 0.37 n.
const MAD_EFFICIENCY: f64 = 0.37;

/// Two-sided robust z-score, (y − median) / (1.4826 · MAD) over the baseline. Its
/// p-value is that of a prediction: Student's t with the MAD's effective degrees
/// of freedom, 0.37 (n − 1), on the score divided by √(1 + 1/n) — the normal
/// quantile would trust a MAD from a week of windows far too much.
pub fn robust_z(baseline: &[f64], y: f64, alpha: f64, min_sigma: f64) -> Option<Verdict> {
    let n = baseline.len();
    if n < 3 {
        return None;
    }
    let (m, mad) = median_mad(baseline);
    let s = robust_spread(baseline, m, mad, min_sigma);
    let score = if s > 0.0 {
        (y - m) / s
    } else if y == m {
        0.0
    } else {
        f64::INFINITY.copysign(y - m)
    };
    let df = (MAD_EFFICIENCY * (n - 1) as f64).max(1.0);
    let t = StudentsT::new(0.0, 1.0, df).ok()?;
    let widen = (1.0 + 1.0 / n as f64).sqrt();
    let limit = t.inverse_cdf(1.0 - alpha / 2.0) * widen;
    Some(Verdict {
        expected: m,
        threshold: m + limit * s * if score >= 0.0 { 1.0 } else { -1.0 },
        score,
        p_value: Some(2.0 * t.sf(score.abs() / widen)),
        alarm: score.abs() > limit,
    })
}

/// Rosner's (1983) critical value λ_i of the generalized ESD test for the i-th
/// (1-based) most extreme of n values at significance `alpha`.
pub fn esd_critical(n: usize, i: usize, alpha: f64) -> f64 {
    let df = n as f64 - i as f64 - 1.0;
    if df < 1.0 {
        return f64::INFINITY;
    }
    let p = 1.0 - alpha / (2.0 * (n - i + 1) as f64);
    let t = StudentsT::new(0.0, 1.0, df).map_or(f64::INFINITY, |d| d.inverse_cdf(p));
    (n - i) as f64 * t / ((df + t * t) * (n - i + 1) as f64).sqrt()
}

/// The outcome of a generalized ESD test: per step, the index (into the input) of
/// the value removed, its statistic R_i and the critical value λ_i; and how many of
/// the first steps are outliers (the largest i with R_i > λ_i).
#[derive(Debug, Clone, PartialEq)]
pub struct Esd {
    pub steps: Vec<(usize, f64, f64)>,
    pub outliers: usize,
}

/// Rosner's generalized ESD test for up to `max_outliers` outliers, two-sided. With
/// `hybrid` (Twitter's S-H-ESD) each step uses the median and MAD of the values left
/// instead of their mean and standard deviation.
pub fn gesd(values: &[f64], max_outliers: usize, alpha: f64, hybrid: bool) -> Esd {
    let n = values.len();
    // The value farthest from any centre between the extremes is the smallest or the
    // largest, so the values left are always a run of the sorted order.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    let (mut lo, mut hi) = (0usize, n);
    let mut steps = Vec::new();
    let mut outliers = 0;
    for i in 1..=max_outliers.min(n.saturating_sub(2)) {
        let left: Vec<f64> = order[lo..hi].iter().map(|&j| values[j]).collect();
        let (center, spread) = if hybrid {
            median_mad(&left)
        } else {
            super::mean_sd(&left)
        };
        let (first, last) = (values[order[lo]], values[order[hi - 1]]);
        let take_low = (center - first) > (last - center);
        let (index, x) = if take_low {
            (order[lo], first)
        } else {
            (order[hi - 1], last)
        };
        if take_low {
            lo += 1;
        } else {
            hi -= 1;
        }
        let r = if spread > 0.0 {
            (x - center).abs() / spread
        } else if x == center {
            0.0
        } else {
            f64::INFINITY
        };
        let lambda = esd_critical(n, i, alpha);
        if r > lambda {
            outliers = i;
        }
        steps.push((index, r, lambda));
    }
    Esd { steps, outliers }
}

/// Seasonal-hybrid ESD on the last `baseline` windows and the current one: the
/// seasonal part of each window is the median of its slot (hour of day, day of
/// week, …; the overall median without seasons), the residuals are tested by the
/// hybrid generalized ESD for up to `max_anoms` of the values, and the current
/// window alarms when it is one of the outliers. The score is its R statistic, the
/// threshold the value at which it would be the first outlier.
#[allow(clippy::too_many_arguments)]
pub fn shesd(
    history: &[(Millis, f64)],
    start: Millis,
    y: f64,
    seasonality: Seasonality,
    utc_offset: Millis,
    baseline: usize,
    max_anoms: f64,
    alpha: f64,
) -> Option<Verdict> {
    if history.len() < baseline || baseline < 3 {
        return None;
    }
    let mut points: Vec<(Millis, f64)> = history[history.len() - baseline..].to_vec();
    points.push((start, y));
    let slot_of = |t: Millis| seasonality.slot(t, utc_offset);
    let mut by_slot: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
    for (t, v) in &points {
        by_slot.entry(slot_of(*t)).or_default().push(*v);
    }
    let seasonal: std::collections::BTreeMap<i64, f64> = by_slot
        .into_iter()
        .map(|(s, mut vs)| (s, median(&mut vs)))
        .collect();
    let residuals: Vec<f64> = points
        .iter()
        .map(|(t, v)| v - seasonal[&slot_of(*t)])
        .collect();
    let n = residuals.len();
    let (center, mad) = median_mad(&residuals);
    let current = n - 1;
    let r_now = residuals[current];
    let k = ((max_anoms * n as f64).floor() as usize).max(1);
    // Cheap test first: a value not among the k most extreme cannot be an outlier.
    let rank_from_ends = {
        let below = residuals.iter().filter(|r| **r < r_now).count();
        let above = residuals.iter().filter(|r| **r > r_now).count();
        below.min(above)
    };
    let expected = seasonal[&slot_of(start)] + center;
    let spread = robust_spread(&residuals, center, mad, 0.0);
    let threshold = expected + esd_critical(n, 1, alpha) * spread;
    let plain_score = if spread > 0.0 {
        (r_now - center) / spread
    } else {
        0.0
    };
    if rank_from_ends >= k {
        return Some(Verdict {
            expected,
            threshold,
            score: plain_score,
            p_value: None,
            alarm: false,
        });
    }
    let esd = gesd(&residuals, k, alpha, true);
    let at = esd.steps.iter().position(|(i, _, _)| *i == current);
    let (score, alarm) = match at {
        Some(step) => (
            esd.steps[step].1.copysign(r_now - center),
            step < esd.outliers,
        ),
        None => (plain_score, false),
    };
    Some(Verdict {
        expected,
        threshold,
        score,
        p_value: None,
        alarm,
    })
}

/// `glrnb` state of one key: the windows since the last alarm (at most `M` + 1),
/// each with its count and its in-control mean.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Glr {
    pub points: VecDeque<(f64, f64)>,
}

/// Σ_t l_t(κ) and its first two derivatives for a rise κ of the log-mean of
/// negative-binomial counts with dispersion `a` (variance μ + aμ²; 0 is Poisson).
fn glr_terms(points: &[(f64, f64)], a: f64, kappa: f64) -> (f64, f64, f64) {
    let e = kappa.exp();
    let (mut l, mut d1, mut d2) = (0.0, 0.0, 0.0);
    for &(x, mu) in points {
        if a > 0.0 {
            let r = 1.0 / a;
            let q = a * mu * e;
            l += x * kappa - (x + r) * ((1.0 + q) / (1.0 + a * mu)).ln();
            d1 += x - (a * x + 1.0) * mu * e / (1.0 + q);
            d2 -= (a * x + 1.0) * mu * e / ((1.0 + q) * (1.0 + q));
        } else {
            l += x * kappa - mu * (e - 1.0);
            d1 += x - mu * e;
            d2 -= mu * e;
        }
    }
    (l, d1, d2)
}

/// sup over κ ≥ 0 of Σ l_t(κ): the log-likelihood ratio of a rise against none.
fn glr_sup(points: &[(f64, f64)], a: f64) -> f64 {
    let (_, d0, _) = glr_terms(points, a, 0.0);
    if d0 <= 0.0 {
        return 0.0; // the likelihood falls for any rise: none is the best fit
    }
    let (sx, smu): (f64, f64) = points
        .iter()
        .fold((0.0, 0.0), |(s, m), (x, mu)| (s + x, m + mu));
    if a <= 0.0 {
        let k = (sx / smu).ln();
        return sx * k - smu * (sx / smu - 1.0);
    }
    // The sum is concave in κ: Newton inside a bracket [lo, hi] with f'(lo) > 0 > f'(hi).
    let (mut lo, mut hi) = (0.0, (sx / smu.max(1e-12)).ln().max(0.0) + 1.0);
    while glr_terms(points, a, hi).1 > 0.0 && hi < 50.0 {
        lo = hi;
        hi *= 2.0;
    }
    let mut k = (lo + hi) / 2.0;
    for _ in 0..100 {
        let (_, d1, d2) = glr_terms(points, a, k);
        if d1 > 0.0 {
            lo = k;
        } else {
            hi = k;
        }
        let newton = k - d1 / d2;
        let next = if newton > lo && newton < hi && d2 < 0.0 {
            newton
        } else {
            (lo + hi) / 2.0
        };
        if (next - k).abs() < 1e-12 {
            k = next;
            break;
        }
        k = next;
    }
    glr_terms(points, a, k).0
}

impl Glr {
    /// The window-limited GLR statistic after adding count `y` with in-control mean
    /// `mu`: the largest log-likelihood ratio of a rise starting at any of the last
    /// `window` + 1 windows (since the last alarm). An alarm when it reaches `h`
    /// (`c.ARL`), after which the statistic starts afresh, as in `surveillance`.
    pub fn update(&mut self, mu: f64, dispersion: f64, y: f64, h: f64, window: usize) -> Verdict {
        self.points.push_back((y, mu.max(1e-9)));
        while self.points.len() > window + 1 {
            self.points.pop_front();
        }
        let all: Vec<(f64, f64)> = self.points.iter().copied().collect();
        let glr = (0..all.len())
            .map(|k| glr_sup(&all[k..], dispersion))
            .fold(0.0, f64::max);
        let alarm = glr >= h;
        if alarm {
            self.points.clear();
        }
        Verdict {
            expected: mu,
            threshold: f64::NAN,
            score: glr,
            p_value: None,
            alarm,
        }
    }
}

/// The dispersion a of a negative binomial (variance μ + aμ²) by the method of
/// moments; 0 (Poisson) when the baseline is not over-dispersed.
pub fn dispersion(baseline: &[f64]) -> f64 {
    if baseline.len() < 2 {
        return 0.0;
    }
    let (m, sd) = super::mean_sd(baseline);
    if m <= 0.0 {
        return 0.0;
    }
    ((sd * sd - m) / (m * m)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() < tol, "{a} vs {b}");
    }

    #[test]
    fn median_and_mad_as_r() {
        // R 4.2: median(c(1,2,3,4,100,7,9)) = 4, mad(...) = 4.4478.
        let (m, mad) = median_mad(&[1.0, 2.0, 3.0, 4.0, 100.0, 7.0, 9.0]);
        assert_eq!(m, 4.0);
        close(mad, 4.4478, 1e-12);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        // One burst does not move the robust z-score's centre or spread.
        let v = robust_z(&[1.0, 2.0, 3.0, 4.0, 100.0, 7.0, 9.0], 30.0, 0.01, 0.0).unwrap();
        close(v.score, 26.0 / 4.4478, 1e-12);
        // R 4.2: 2 * pt(26 / 4.4478 / sqrt(8/7), df = 0.37 * 6, lower.tail = FALSE)
        // = 0.0251933902704, and the limit qt(0.995, 2.22) * sqrt(8/7) = 9.00272569725.
        close(v.p_value.unwrap(), 0.0251933902704, 1e-9);
        close(v.threshold, 4.0 + 9.00272569725 * 4.4478, 1e-6);
        assert!(!v.alarm, "5.85 is within a week's MAD");
        let far = robust_z(&[1.0, 2.0, 3.0, 4.0, 100.0, 7.0, 9.0], 80.0, 0.01, 0.0);
        assert!(far.unwrap().alarm);
        // A flat baseline (MAD 0) falls back to the mean absolute deviation.
        let v = robust_z(&[3.0, 3.0, 3.0, 3.0, 5.0], 4.0, 0.01, 0.0).unwrap();
        close(
            v.score,
            1.0 / (0.4 * (std::f64::consts::PI / 2.0).sqrt()),
            1e-12,
        );
    }

    #[test]
    fn esd_critical_values_as_rosner() {
        // Rosner (1983) λ_i for n = 54, α = 0.05, computed in R 4.2 with qt();
        // NIST/SEMATECH e-Handbook §1.3.5.17.3 lists λ_1 = 3.158 for the same n.
        let want = [
            3.1587939409,
            3.1514300233,
            3.1438896850,
            3.1361649561,
            3.1282473343,
            3.1201277383,
            3.1117964543,
            3.1032430776,
            3.0944564470,
            3.0854245712,
        ];
        for (i, w) in want.iter().enumerate() {
            close(esd_critical(54, i + 1, 0.05), *w, 1e-8);
        }
    }

    #[test]
    fn gesd_finds_planted_outliers_in_order() {
        let mut xs: Vec<f64> = (0..40).map(|i| 10.0 + ((i * 7) % 5) as f64).collect();
        xs[5] = 60.0;
        xs[20] = -30.0;
        xs[33] = 45.0;
        for hybrid in [false, true] {
            let e = gesd(&xs, 6, 0.05, hybrid);
            assert_eq!(e.outliers, 3, "hybrid {hybrid}: {e:?}");
            assert_eq!(e.steps[0].0, 5);
            let mut first: Vec<usize> = e.steps[..3].iter().map(|s| s.0).collect();
            first.sort();
            assert_eq!(first, vec![5, 20, 33]);
        }
    }

    #[test]
    fn shesd_judges_against_the_seasonal_median() {
        use crate::core::time::HOUR;
        // Three days of hourly values with a daily rhythm: 10 at night, 100 by day.
        let rhythm = |h: i64| {
            if (8..20).contains(&(h % 24)) {
                100.0
            } else {
                10.0
            }
        };
        let history: Vec<(Millis, f64)> = (0..72).map(|h| (h * HOUR, rhythm(h))).collect();
        let now = 72 * HOUR + 9 * HOUR; // 09:00, a day-time slot
        let s = Seasonality::HourOfDay;
        // 100 by day is normal; 100 at 02:00 would not be, nor 400 by day.
        let day = shesd(&history, now, 100.0, s, 0, 72, 0.05, 0.01).unwrap();
        assert!(!day.alarm);
        assert_eq!(day.expected, 100.0);
        let burst = shesd(&history, now, 400.0, s, 0, 72, 0.05, 0.01).unwrap();
        assert!(burst.alarm, "{burst:?}");
        // 100 at 02:00 is out of season; without seasons it is like half the values.
        let night = now - 7 * HOUR;
        assert!(
            shesd(&history, night, 100.0, s, 0, 72, 0.05, 0.01)
                .unwrap()
                .alarm
        );
        let flat = shesd(&history, night, 100.0, Seasonality::None, 0, 72, 0.05, 0.01).unwrap();
        assert!(!flat.alarm, "{flat:?}");
        assert!(shesd(&history[..10], now, 1.0, s, 0, 72, 0.05, 0.01).is_none());
    }

    /// R `surveillance` 1.20.3:
    /// `glrnb(sts(observed = x), control = list(range = 1:15, mu0 = rep(4.5, 15),
    /// alpha = A, c.ARL = 5, M = M, Mtilde = 1, change = "intercept", dir = "inc",
    /// ret = "value"))`, `upperbound()` and `alarms()` (scripts/reference/glrnb.R).
    #[rustfmt::skip]
    const GLRNB_X: [f64; 15] = [4.0, 5.0, 3.0, 6.0, 4.0, 5.0, 9.0, 11.0, 12.0, 4.0, 3.0, 5.0, 14.0, 13.0, 4.0];
    /// A = 0.2, M = -1 (all windows since the last alarm).
    #[rustfmt::skip]
    const GLRNB_NB: [f64; 15] = [0.0, 0.0138696344, 0.0, 0.1134542186, 0.0277392688, 0.0416089032,
        0.8096071909, 2.2674018495, 4.1060337769, 3.2384287637, 2.3699913114, 2.1724987109,
        4.2144452228, 6.1739750657, 0.0];
    /// A = 0 (Poisson), M = -1.
    #[rustfmt::skip]
    const GLRNB_POISSON: [f64; 15] = [0.0, 0.0268025783, 0.0, 0.2260924347, 0.0536051566,
        0.0804077349, 1.7383246250, 4.9701539244, 9.1174789554, 0.0, 0.0, 0.0268025783,
        6.3897190597, 5.2913354889, 0.0];
    /// A = 0.2, M = 4: from t = 12 the window limit bites.
    #[rustfmt::skip]
    const GLRNB_NB_M4: [f64; 15] = [0.0, 0.0138696344, 0.0, 0.1134542186, 0.0277392688, 0.0416089032,
        0.8096071909, 2.2674018495, 4.1060337769, 3.2384287637, 2.3699913114, 1.4472552589,
        2.7199226291, 5.0028112554, 0.0];

    #[test]
    fn glrnb_as_surveillance() {
        let cases = [
            (0.2, 1000, GLRNB_NB),
            (0.0, 1000, GLRNB_POISSON),
            (0.2, 4, GLRNB_NB_M4),
        ];
        for (a, window, want) in cases {
            let mut g = Glr::default();
            for (t, (y, w)) in GLRNB_X.iter().zip(want).enumerate() {
                let v = g.update(4.5, a, *y, 5.0, window);
                close(v.score, w, 1e-8);
                assert_eq!(v.alarm, w >= 5.0, "a = {a}, t = {}", t + 1);
            }
        }
        close(
            dispersion(&[0.0, 8.0, 4.0, 4.0, 4.0]),
            (8.0 - 4.0) / 16.0,
            1e-12,
        );
    }
}

//! Detectors: compare a window's value with a baseline built from the same key's
//! earlier windows and say how unusual it is. Each method returns a [`Verdict`] —
//! expected value, alarm threshold, score, p-value where one is defined, and
//! whether the value is beyond the method's 1 − alpha limit — or `None` while the
//! history is too short (warming up). Methods follow the definitions of the R
//! `surveillance` package and the CDC where those exist.
//!
//! This module holds the statistics only; series state, levels and alert lifecycle
//! build on it.

pub mod baseline;
pub mod compound;
pub mod config;
pub mod farrington;
pub mod robust;
pub mod rule;
pub mod runner;
pub mod sensitive;
pub mod series;

use serde::{Deserialize, Serialize};
use statrs::distribution::{
    Binomial, ContinuousCDF, DiscreteCDF, NegativeBinomial, Normal, Poisson,
};

/// What a detector says about one value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Verdict {
    pub expected: f64,
    /// The upper alarm limit (the lower one for a value below the baseline).
    pub threshold: f64,
    pub score: f64,
    pub p_value: Option<f64>,
    pub alarm: bool,
}

fn z(p: f64) -> f64 {
    Normal::standard().inverse_cdf(p)
}

/// Mean and sample standard deviation.
pub(crate) fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// Fixed bounds: an alarm above `upper` or below `lower`.
pub fn threshold(y: f64, upper: Option<f64>, lower: Option<f64>) -> Verdict {
    let above = upper.is_some_and(|u| y > u);
    let below = lower.is_some_and(|l| y < l);
    let limit = if below { lower } else { upper }.unwrap_or(f64::NAN);
    Verdict {
        expected: f64::NAN,
        threshold: limit,
        score: y - limit,
        p_value: None,
        alarm: above || below,
    }
}

/// Two-sided z-score against the baseline's mean and sample standard deviation.
pub fn zscore(baseline: &[f64], y: f64, alpha: f64, min_sigma: f64) -> Option<Verdict> {
    if baseline.len() < 2 {
        return None;
    }
    let (mean, sd) = mean_sd(baseline);
    let sd = sd.max(min_sigma);
    let score = if sd > 0.0 { (y - mean) / sd } else { 0.0 };
    Some(two_sided(mean, sd, score, alpha))
}

/// The verdict of a two-sided normal test of `score` = (y − center) / spread: the
/// limit on the side of the value, a normal p-value, an alarm beyond 1 − alpha/2.
fn two_sided(center: f64, spread: f64, score: f64, alpha: f64) -> Verdict {
    let limit = z(1.0 - alpha / 2.0);
    Verdict {
        expected: center,
        threshold: center + limit * spread * if score >= 0.0 { 1.0 } else { -1.0 },
        score,
        p_value: Some(2.0 * Normal::standard().sf(score.abs())),
        alarm: score.abs() > limit,
    }
}

/// EWMA control chart state: z_t = λ y_t + (1 − λ) z_{t−1}, started at the in-control mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    pub z: f64,
}

impl Ewma {
    /// Updates with `y` and judges against two-sided asymptotic limits
    /// μ ± L σ √(λ / (2 − λ)), with μ and σ from the baseline.
    pub fn update(
        state: &mut Option<Ewma>,
        baseline: &[f64],
        y: f64,
        lambda: f64,
        l: f64,
    ) -> Option<Verdict> {
        if baseline.len() < 2 {
            return None;
        }
        let (mean, sd) = mean_sd(baseline);
        let prev = state.map_or(mean, |s| s.z);
        let zt = lambda * y + (1.0 - lambda) * prev;
        *state = Some(Ewma { z: zt });
        let half = l * sd * (lambda / (2.0 - lambda)).sqrt();
        let score = if half > 0.0 {
            (zt - mean) / half * l
        } else {
            0.0
        };
        Some(Verdict {
            expected: mean,
            threshold: if zt >= mean { mean + half } else { mean - half },
            score,
            p_value: None,
            alarm: (zt - mean).abs() > half,
        })
    }
}

/// Poisson CUSUM (Page; Lucas 1985): S_t = max(0, S_{t−1} + y_t − k) with
/// k = (λ₁ − λ₀) / (ln λ₁ − ln λ₀) for an in-control mean λ₀ and a shift to λ₁;
/// an alarm when S_t > h, after which S resets to 0.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Cusum {
    pub s: f64,
}

impl Cusum {
    pub fn update(&mut self, lambda0: f64, lambda1: f64, h: f64, y: f64) -> Verdict {
        let k = if lambda1 > lambda0 && lambda0 > 0.0 {
            (lambda1 - lambda0) / (lambda1.ln() - lambda0.ln())
        } else {
            lambda0
        };
        self.s = (self.s + y - k).max(0.0);
        let alarm = self.s > h;
        let v = Verdict {
            expected: lambda0,
            threshold: h,
            score: self.s,
            p_value: None,
            alarm,
        };
        if alarm {
            self.s = 0.0;
        }
        v
    }
}

/// Exceedance against a discrete distribution: p = P(X ≥ y), the threshold its
/// 1 − alpha quantile, an alarm when p < alpha, and the score −log₁₀ p.
fn exceedance<D: DiscreteCDF<u64, f64>>(d: &D, expected: f64, y: f64, alpha: f64) -> Verdict {
    let p = upper_tail(d, y);
    Verdict {
        expected,
        threshold: d.inverse_cdf(1.0 - alpha) as f64,
        score: -p.max(f64::MIN_POSITIVE).log10(),
        p_value: Some(p),
        alarm: p < alpha,
    }
}

/// Upper-tail P(X ≥ y) of a discrete distribution.
fn upper_tail<D: DiscreteCDF<u64, f64>>(d: &D, y: f64) -> f64 {
    if y <= 0.0 {
        return 1.0;
    }
    let k = y.ceil() as u64;
    d.sf(k - 1)
}

/// Poisson exceedance: λ is the baseline mean; p = P(X ≥ y); the threshold is the
/// 1 − alpha quantile; an alarm when p < alpha.
pub fn poisson(baseline: &[f64], y: f64, alpha: f64) -> Option<Verdict> {
    if baseline.is_empty() {
        return None;
    }
    let lambda = (baseline.iter().sum::<f64>() / baseline.len() as f64).max(1e-9);
    let d = Poisson::new(lambda).ok()?;
    Some(exceedance(&d, lambda, y, alpha))
}

/// Negative-binomial exceedance with mean and variance from the baseline (method of
/// moments; falls back to Poisson when the baseline is not over-dispersed).
pub fn negbin(baseline: &[f64], y: f64, alpha: f64) -> Option<Verdict> {
    if baseline.len() < 2 {
        return None;
    }
    let (mean, sd) = mean_sd(baseline);
    let var = sd * sd;
    if var <= mean || mean <= 0.0 {
        return poisson(baseline, y, alpha);
    }
    let r = mean * mean / (var - mean);
    let d = NegativeBinomial::new(r, r / (r + mean)).ok()?;
    Some(exceedance(&d, mean, y, alpha))
}

/// Bayes (`algo.bayes`): with a Poisson likelihood and the Jeffreys-like gamma prior,
/// the predictive distribution of the next count after n windows summing to Σ is
/// NB(Σ + ½, n / (n + 1)); the threshold is its 1 − alpha quantile.
pub fn bayes(baseline: &[f64], y: f64, alpha: f64) -> Option<Verdict> {
    if baseline.is_empty() {
        return None;
    }
    let n = baseline.len() as f64;
    let sum: f64 = baseline.iter().sum();
    let d = NegativeBinomial::new(sum + 0.5, n / (n + 1.0)).ok()?;
    // algo.bayes alarms above the predictive quantile.
    let v = exceedance(&d, (sum + 0.5) / n, y, alpha);
    Some(Verdict {
        alarm: y > v.threshold,
        ..v
    })
}

/// Binomial exceedance for shares: `k` of `n` this window against the baseline
/// share p₀ = Σk / Σn; p = P(X ≥ k).
pub fn binomial(baseline: &[(f64, f64)], k: f64, n: f64, alpha: f64) -> Option<Verdict> {
    let (bk, bn) = baseline
        .iter()
        .fold((0.0, 0.0), |(a, b), (k, n)| (a + k, b + n));
    if bn <= 0.0 || n < 1.0 {
        return None;
    }
    let p0 = (bk / bn).clamp(1e-9, 1.0 - 1e-9);
    let d = Binomial::new(p0, n as u64).ok()?;
    Some(exceedance(&d, p0 * n, k, alpha))
}

/// Which CDC EARS statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ears {
    C1,
    C2,
    C3,
}

/// CDC EARS. C1: baseline t−7…t−1; C2: t−9…t−3 (two-window guard); C3 = Σ over
/// t−2…t of max(0, C2 − 1) (the CDC definition; R's `earsC` differs). `history`
/// holds past values, oldest first, not including `y`. σ is at least `min_sigma`.
/// Alarm when the statistic exceeds `limit` (CDC: 3 for C1 and C2, 2 for C3).
pub fn ears(kind: Ears, history: &[f64], y: f64, limit: f64, min_sigma: f64) -> Option<Verdict> {
    let c2_at = |series: &[f64], t: usize| -> Option<(f64, f64, f64)> {
        // Statistic for value series[t] with baseline t−9..t−3.
        if t < 9 {
            return None;
        }
        let (m, s) = mean_sd(&series[t - 9..t - 2]);
        let s = s.max(min_sigma);
        Some(((series[t] - m) / s.max(f64::MIN_POSITIVE), m, s))
    };
    let mut series = history.to_vec();
    series.push(y);
    let t = series.len() - 1;
    let (score, mean, sd) = match kind {
        Ears::C1 => {
            if t < 7 {
                return None;
            }
            let (m, s) = mean_sd(&series[t - 7..t]);
            let s = s.max(min_sigma);
            ((y - m) / s.max(f64::MIN_POSITIVE), m, s)
        }
        Ears::C2 => c2_at(&series, t)?,
        Ears::C3 => {
            let mut c3 = 0.0;
            for i in t.checked_sub(2)?..=t {
                c3 += (c2_at(&series, i)?.0 - 1.0).max(0.0);
            }
            let (_, m, s) = c2_at(&series, t)?;
            (c3, m, s)
        }
    };
    let threshold = match kind {
        Ears::C3 => limit,
        _ => mean + limit * sd,
    };
    Some(Verdict {
        expected: mean,
        threshold,
        score,
        p_value: None,
        alarm: score > limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values computed with SciPy 1.17 (scipy.stats), independently of statrs.
    const BASE: [f64; 7] = [3.0, 5.0, 4.0, 6.0, 2.0, 4.0, 5.0];

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() < tol, "{a} vs {b}");
    }

    #[test]
    fn poisson_tail_and_quantile() {
        let v = poisson(&[4.0; 5], 10.0, 0.01).unwrap();
        close(v.p_value.unwrap(), 0.008132242796933871, 1e-12);
        assert_eq!(v.threshold, 9.0);
        assert!(v.alarm);
        assert!(!poisson(&[4.0; 5], 9.0, 0.01).unwrap().alarm);
        assert!(poisson(&[], 9.0, 0.01).is_none(), "warming up");
    }

    #[test]
    fn negbin_tail_and_quantile() {
        // mean 4, sample variance 32 / 4 = 8 → r = 4, p = 0.5
        let b = [0.0, 8.0, 4.0, 4.0, 4.0];
        let (m, sd) = mean_sd(&b);
        assert_eq!(m, 4.0);
        close(sd * sd, 8.0, 1e-12);
        let v = negbin(&b, 12.0, 0.01).unwrap();
        close(v.p_value.unwrap(), 0.017578125, 1e-12);
        assert_eq!(v.threshold, 13.0);
        assert!(!v.alarm);
    }

    #[test]
    fn bayes_predictive_quantile() {
        let v = bayes(&BASE, 12.0, 0.01).unwrap();
        assert_eq!(v.threshold, 10.0);
        close(v.p_value.unwrap(), 0.003077968384048358, 1e-12);
        assert!(v.alarm);
        assert!(!bayes(&BASE, 10.0, 0.01).unwrap().alarm);
    }

    #[test]
    fn binomial_share() {
        let v = binomial(&[(20.0, 100.0), (40.0, 200.0)], 30.0, 100.0, 0.01).unwrap();
        close(v.p_value.unwrap(), 0.011248978720991648, 1e-12);
        assert_eq!(v.threshold, 30.0);
        assert!(!v.alarm);
    }

    #[test]
    fn ears_c1_c2_c3_by_hand() {
        let v = ears(Ears::C1, &BASE, 9.0, 3.0, 0.0).unwrap();
        close(v.score, 3.6107608595644214, 1e-12);
        assert!(v.alarm);
        assert!(
            ears(Ears::C1, &BASE[1..], 9.0, 3.0, 0.0).is_none(),
            "needs seven windows"
        );
        // C2 ignores the two most recent windows: a rise in them does not move the baseline.
        let mut h = vec![4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 20.0, 20.0];
        let c2 = ears(Ears::C2, &h, 4.0, 3.0, 1.0).unwrap();
        assert_eq!((c2.expected, c2.score), (4.0, 0.0));
        // min_sigma guards a flat baseline: (6 − 4) / 1 = 2.
        assert_eq!(ears(Ears::C2, &h, 6.0, 3.0, 1.0).unwrap().score, 2.0);
        // C3 sums max(0, C2 − 1) over t−2..t: here (C2 of 20 at t−2) + (20 at t−1) + (y).
        h = vec![4.0; 11];
        h.extend([7.0, 6.0]);
        let c3 = ears(Ears::C3, &h, 5.0, 2.0, 1.0).unwrap();
        assert_eq!(c3.score, (3.0 - 1.0) + (2.0 - 1.0) + 0.0);
        assert!(c3.alarm);
    }

    #[test]
    fn zscore_ewma_cusum() {
        let v = zscore(&BASE, 9.0, 0.01, 0.0).unwrap();
        close(v.score, 3.6107608595644214, 1e-12);
        assert!(v.alarm);
        let mut s = None;
        let flat = [10.0, 12.0, 8.0, 10.0, 12.0, 8.0];
        let (_, sd) = mean_sd(&flat);
        let v = Ewma::update(&mut s, &flat, 10.0, 0.3, 3.0).unwrap();
        assert!(!v.alarm);
        let v = Ewma::update(&mut s, &flat, 20.0, 0.3, 3.0).unwrap();
        close(s.unwrap().z, 13.0, 1e-12);
        close(v.threshold, 10.0 + 3.0 * sd * (0.3f64 / 1.7).sqrt(), 1e-12);
        assert_eq!(v.alarm, 3.0 > 3.0 * sd * (0.3f64 / 1.7).sqrt());
        let mut c = Cusum::default();
        let k = (8.0 - 4.0) / (8.0f64.ln() - 4.0f64.ln());
        assert!(!c.update(4.0, 8.0, 4.0, 8.0).alarm);
        close(c.s, 8.0 - k, 1e-12);
        assert!(c.update(4.0, 8.0, 4.0, 8.0).alarm, "2 (8 − k) = 4.46 > 4");
        assert_eq!(c.s, 0.0, "resets after an alarm");
        assert!(threshold(5.0, Some(4.0), None).alarm);
        assert!(!threshold(3.0, Some(4.0), Some(1.0)).alarm);
    }
}

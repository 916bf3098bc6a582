//! Farrington flexible with the Noufaily improvements (`farringtonFlexible` of R's
//! `surveillance`): a quasi-Poisson log-linear GLM, fitted by IRLS, on an intercept,
//! an optional linear trend and a seasonal factor over `b` past periods; dispersion
//! φ = max(1, Pearson χ² / df); past outbreaks down-weighted by their Anscombe
//! residuals; the trend kept only when significant; the upper limit from the
//! prediction's delta-method interval (on a power scale) or from a negative-binomial
//! plug-in quantile; and no alarm unless the last few windows hold enough cases
//! (`limit54`).
//!
//! Where the reference leaves a series without an answer (the GLM of an all-zero
//! baseline does not converge), this module answers: nothing was expected, so any
//! count past the volume floor alarms.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use statrs::distribution::{
    ContinuousCDF, DiscreteCDF, NegativeBinomial, Normal, Poisson, StudentsT,
};

use super::Verdict;

/// Scale on which the delta-method prediction interval is symmetric (`powertrans`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Transform {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "1/2")]
    Half,
    #[default]
    #[serde(rename = "2/3")]
    TwoThirds,
}

impl Transform {
    fn exponent(self) -> f64 {
        match self {
            Transform::None => 1.0,
            Transform::Half => 0.5,
            Transform::TwoThirds => 2.0 / 3.0,
        }
    }
}

/// How the upper limit is computed (`thresholdMethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMethod {
    /// Farrington's delta method on the `powertrans` scale.
    Delta,
    /// Noufaily: the negative-binomial quantile with the predicted mean plugged in.
    #[default]
    NbPlugin,
    /// Noufaily: as `nb_plugin`, with the mean's own 1 − alpha quantile.
    Muan,
}

/// What a threshold function returns, as the reference does: lower and upper
/// limits, P(Y ≥ y) under the prediction, and the score (y − fit) / (upper − fit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub lower: f64,
    pub upper: f64,
    pub prob: f64,
    pub score: f64,
}

/// Farrington's limits from the predicted mean μ₀ (response scale) and its standard
/// error: τ = φ + se²/μ₀, and on the transformed scale h(y) = y^e the interval
/// h(μ₀) ± z √var, with var = μ₀τ, τ/4 or 4/9 μ₀^{1/3} τ for e = 1, 1/2, 2/3.
pub fn delta_limits(
    mu0: f64,
    se_fit: f64,
    phi: f64,
    alpha: f64,
    transform: Transform,
    y: f64,
) -> Limits {
    let tau = phi + se_fit * se_fit / mu0;
    let sd = match transform {
        Transform::None => (mu0 * tau).sqrt(),
        Transform::Half => (0.25 * tau).sqrt(),
        Transform::TwoThirds => (4.0 / 9.0 * mu0.powf(1.0 / 3.0) * tau).sqrt(),
    };
    let e = transform.exponent();
    let z = Normal::standard().inverse_cdf(1.0 - alpha);
    let back = |v: f64| if v < 0.0 { f64::NAN } else { v.powf(1.0 / e) };
    let (a, b) = (back(mu0.powf(e) - z * sd), back(mu0.powf(e) + z * sd));
    let (lower, upper) = if a.is_nan() {
        (0.0, b)
    } else {
        (a.max(0.0), b)
    };
    let prob = 1.0 - Normal::new(mu0.powf(e), sd).map_or(f64::NAN, |n| n.cdf(y.powf(e)));
    Limits {
        lower,
        upper,
        prob,
        score: (y - mu0) / (upper - mu0),
    }
}

/// Noufaily's limits from the linear predictor η₀ and its standard error: the
/// negative-binomial (Poisson when φ = 1) quantiles with mean exp(η₀) (`nb_plugin`)
/// or exp of η₀'s 1 − alpha quantile (`muan`), variance φ × mean. The score keeps
/// the reference's (y − η₀) / (upper − η₀).
pub fn noufaily_limits(
    eta0: f64,
    se_eta: f64,
    phi: f64,
    alpha: f64,
    method: ThresholdMethod,
    y: f64,
) -> Limits {
    let mu = match method {
        ThresholdMethod::Muan => {
            (eta0 + se_eta * Normal::standard().inverse_cdf(1.0 - alpha)).exp()
        }
        _ => eta0.exp(),
    };
    let nan = Limits {
        lower: f64::NAN,
        upper: f64::NAN,
        prob: f64::NAN,
        score: f64::NAN,
    };
    if !mu.is_finite() || mu <= 0.0 {
        return nan;
    }
    let k = (y.ceil().max(1.0) - 1.0) as u64;
    let (lower, upper, prob) = if phi > 1.0 {
        let Ok(d) = NegativeBinomial::new(mu / (phi - 1.0), 1.0 / phi) else {
            return nan;
        };
        (d.inverse_cdf(alpha), d.inverse_cdf(1.0 - alpha), d.sf(k))
    } else {
        let Ok(d) = Poisson::new(mu) else { return nan };
        (d.inverse_cdf(alpha), d.inverse_cdf(1.0 - alpha), d.sf(k))
    };
    let prob = if y <= 0.0 { 1.0 } else { prob };
    let upper = upper as f64;
    Limits {
        lower: lower as f64,
        upper,
        prob,
        score: (y - eta0) / (upper - eta0),
    }
}

/// Weights from Anscombe residuals (`algo.farrington.assign.weights`): residuals
/// above the threshold get s⁻², the others 1, all scaled so they average 1.
pub fn assign_weights(s: &[f64], threshold: f64) -> Vec<f64> {
    let raw: Vec<f64> = s
        .iter()
        .map(|&r| if r > threshold { r.powi(-2) } else { 1.0 })
        .collect();
    let gamma = s.len() as f64 / raw.iter().sum::<f64>();
    raw.into_iter().map(|w| gamma * w).collect()
}

/// A fitted quasi-Poisson GLM with log link.
#[derive(Debug, Clone)]
pub struct Glm {
    pub beta: DVector<f64>,
    /// (XᵀWX)⁻¹ at convergence; times the dispersion, the coefficients' covariance.
    pub unscaled_cov: DMatrix<f64>,
    pub mu: Vec<f64>,
    /// Leverages, diag of W^½ X (XᵀWX)⁻¹ Xᵀ W^½.
    pub hat: Vec<f64>,
    /// Pearson χ² / residual degrees of freedom (`summary(model)$dispersion`).
    pub dispersion: f64,
    pub df: f64,
}

/// Fits log μ = Xβ by iteratively reweighted least squares, as R's `glm.fit` for the
/// quasi-Poisson family (start μ = y + 0.1; converged when the deviance changes by
/// less than 1e-8 relatively; at most 25 iterations). `None` if it does not converge.
pub fn fit_glm(x: &DMatrix<f64>, y: &[f64], prior: &[f64]) -> Option<Glm> {
    let (n, p) = x.shape();
    if n <= p {
        return None;
    }
    let mut mu: Vec<f64> = y.iter().map(|v| v + 0.1).collect();
    let mut eta: Vec<f64> = mu.iter().map(|m| m.ln()).collect();
    let deviance = |mu: &[f64]| -> f64 {
        y.iter()
            .zip(mu)
            .zip(prior)
            .map(|((&y, &m), &w)| {
                let t = if y > 0.0 { y * (y / m).ln() } else { 0.0 };
                2.0 * w * (t - (y - m))
            })
            .sum()
    };
    let mut dev_old = deviance(&mu);
    for _ in 0..25 {
        let w: Vec<f64> = mu.iter().zip(prior).map(|(m, p)| m * p).collect();
        let z: Vec<f64> = (0..n).map(|i| eta[i] + (y[i] - mu[i]) / mu[i]).collect();
        let (xtwx, xtwz) = normal_equations(x, &w, &z);
        let beta = xtwx.clone().cholesky()?.solve(&xtwz);
        let lin = x * &beta;
        eta = lin.iter().copied().collect();
        mu = eta.iter().map(|e| e.exp()).collect();
        let dev = deviance(&mu);
        if !dev.is_finite() {
            return None;
        }
        if (dev - dev_old).abs() / (dev.abs() + 0.1) < 1e-8 {
            let w: Vec<f64> = mu.iter().zip(prior).map(|(m, p)| m * p).collect();
            let (xtwx, _) = normal_equations(x, &w, &z);
            let unscaled_cov = xtwx.cholesky()?.inverse();
            let hat = (0..n)
                .map(|i| {
                    let xi = x.row(i).transpose();
                    w[i] * (xi.transpose() * &unscaled_cov * &xi)[(0, 0)]
                })
                .collect();
            let df = (n - p) as f64;
            let pearson: f64 = (0..n)
                .map(|i| prior[i] * (y[i] - mu[i]).powi(2) / mu[i])
                .sum();
            return Some(Glm {
                beta,
                unscaled_cov,
                mu,
                hat,
                dispersion: pearson / df,
                df,
            });
        }
        dev_old = dev;
    }
    None
}

fn normal_equations(x: &DMatrix<f64>, w: &[f64], z: &[f64]) -> (DMatrix<f64>, DVector<f64>) {
    let p = x.ncols();
    let mut xtwx = DMatrix::zeros(p, p);
    let mut xtwz = DVector::zeros(p);
    for (i, (&wi, &zi)) in w.iter().zip(z).enumerate() {
        let row = x.row(i);
        for a in 0..p {
            let xa = row[a] * wi;
            xtwz[a] += xa * zi;
            for b in 0..=a {
                xtwx[(a, b)] += xa * row[b];
            }
        }
    }
    xtwx.fill_upper_triangle_with_lower_triangle();
    (xtwx, xtwz)
}

/// Anscombe residuals of a Poisson fit, standardised by φ and the leverages.
pub fn anscombe_residuals(y: &[f64], glm: &Glm, phi: f64) -> Vec<f64> {
    y.iter()
        .zip(&glm.mu)
        .zip(&glm.hat)
        .map(|((&y, &m), &h)| {
            let raw = 1.5 * (y.powf(2.0 / 3.0) * m.powf(-1.0 / 6.0) - m.sqrt());
            let scale = (phi * (1.0 - h)).sqrt();
            if scale > 1e-12 { raw / scale } else { 0.0 }
        })
        .collect()
}

/// Settings of `farringtonFlexible`; the defaults are the Noufaily et al. (2013)
/// settings, counted in windows where the reference counts weeks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Past periods (years, for weekly data) in the baseline.
    pub b: usize,
    /// Half-width of the reference windows around the same point of each past period.
    pub w: usize,
    /// Seasonal factor levels per period; 1 uses the reference windows only.
    pub no_periods: usize,
    /// Most recent windows left out of the fit (reference: weeks); default 26, or
    /// `w` with one period.
    #[serde(alias = "past_weeks_not_included")]
    pub past_windows_not_included: Option<usize>,
    pub reweight: bool,
    pub weights_threshold: f64,
    pub trend: bool,
    pub p_threshold_trend: f64,
    /// No alarm unless the last `limit54[1]` windows (this one included) hold at least
    /// `limit54[0]` cases.
    pub limit54: (f64, usize),
    pub powertrans: Transform,
    pub threshold_method: ThresholdMethod,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            b: 5,
            w: 3,
            no_periods: 10,
            past_windows_not_included: None,
            reweight: true,
            weights_threshold: 2.58,
            trend: true,
            p_threshold_trend: 0.05,
            limit54: (5.0, 4),
            powertrans: Transform::TwoThirds,
            threshold_method: ThresholdMethod::NbPlugin,
        }
    }
}

impl Settings {
    fn past_excluded(&self) -> usize {
        self.past_windows_not_included
            .unwrap_or(if self.no_periods == 1 { self.w } else { 26 })
    }

    /// How many past windows a judgement needs (`freq` windows per period).
    pub fn required_history(&self, freq: usize) -> usize {
        self.b * freq + self.w
    }

    /// Settings that cannot work with `freq` windows per period, in words.
    pub fn problems(&self, freq: usize) -> Vec<String> {
        let mut out = Vec::new();
        if self.b == 0 {
            out.push("`b` must be at least 1".to_string());
        }
        if self.no_periods == 0 {
            out.push("`no_periods` must be at least 1".to_string());
        }
        if freq < 2 * self.w + 1 + self.no_periods.saturating_sub(1) {
            out.push(format!(
                "a period of {freq} windows is too short for w = {} and no_periods = {}",
                self.w, self.no_periods
            ));
        }
        if self.past_excluded() + 1 >= self.required_history(freq) {
            out.push("`past_windows_not_included` leaves no baseline".to_string());
        }
        out
    }

    /// The seasonal level of the window `lag` windows back: `no_periods` inside a
    /// reference window (± w around a whole number of periods back), else the block
    /// of the stretch between reference windows it falls in; `None` outside the
    /// baseline.
    pub fn level(&self, lag: usize, freq: usize) -> Option<usize> {
        let (b, w, p) = (self.b, self.w, self.no_periods);
        if lag > b * freq + w {
            return None;
        }
        for j in 1..=b {
            if lag.abs_diff(j * freq) <= w {
                return Some(p);
            }
        }
        if p == 1 {
            return None;
        }
        let j = lag.div_ceil(freq).max(1);
        if lag <= (j - 1) * freq + w || lag >= j * freq - w {
            return None;
        }
        // Blocks run forward in time from just after the reference window; the
        // first `rest` of them are one window longer.
        let pos = j * freq - w - 1 - lag;
        let period = freq - 2 * w - 1;
        let (len, rest) = (period / (p - 1), period % (p - 1));
        let long = rest * (len + 1);
        Some(if pos < long {
            pos / (len + 1) + 1
        } else {
            rest + (pos - long) / len + 1
        })
    }

    /// Judges `y` against `history` (one value per window, oldest first, the last
    /// just before `y`) with `freq` windows per period. `None` while the history is
    /// shorter than `b` periods and `w` windows, or when the GLM does not converge.
    pub fn judge(&self, history: &[f64], y: f64, freq: usize, alpha: f64) -> Option<Verdict> {
        let n = history.len();
        if n < self.required_history(freq) || !self.problems(freq).is_empty() {
            return None;
        }
        let recent: f64 = history[n + 1 - self.limit54.1.clamp(1, n + 1)..]
            .iter()
            .sum::<f64>()
            + y;
        let enough = recent >= self.limit54.0;
        let mut rows = Vec::new();
        for lag in self.past_excluded() + 1..=self.required_history(freq) {
            if let Some(level) = self.level(lag, freq) {
                rows.push((history[n - lag], -(lag as f64) / freq as f64, level));
            }
        }
        let ys: Vec<f64> = rows.iter().map(|r| r.0).collect();
        if ys.iter().all(|&v| v == 0.0) {
            // Nothing in the baseline: nothing expected; the volume floor decides.
            return Some(Verdict {
                expected: 0.0,
                threshold: 0.0,
                score: f64::INFINITY,
                p_value: Some(if y > 0.0 { 0.0 } else { 1.0 }),
                alarm: enough && y > 0.0,
            });
        }
        let model = self
            .fit(&rows, self.trend)
            .or_else(|| self.fit(&rows, false))?;
        let max_y = ys.iter().copied().fold(0.0, f64::max);
        let model = match model {
            (glm, phi, true) => {
                let t = glm.beta[1] / (glm.dispersion * glm.unscaled_cov[(1, 1)]).sqrt();
                let p =
                    StudentsT::new(0.0, 1.0, glm.df).map_or(1.0, |d| 2.0 * (1.0 - d.cdf(t.abs())));
                let keep = self.b >= 3 && p < self.p_threshold_trend && glm.beta[0].exp() <= max_y;
                if keep {
                    (glm, phi, true)
                } else {
                    self.fit(&rows, false)?
                }
            }
            m => m,
        };
        let (glm, phi, _) = model;
        // The prediction is at wtime 0 in the reference level: the intercept alone.
        let eta0 = glm.beta[0];
        let se_eta = (glm.dispersion * glm.unscaled_cov[(0, 0)]).sqrt();
        let limits = match self.threshold_method {
            ThresholdMethod::Delta => {
                let mu0 = eta0.exp();
                delta_limits(mu0, se_eta * mu0, phi, alpha, self.powertrans, y)
            }
            m => noufaily_limits(eta0, se_eta, phi, alpha, m, y),
        };
        Some(Verdict {
            expected: eta0.exp(),
            threshold: limits.upper,
            score: limits.score,
            p_value: Some(limits.prob).filter(|p| p.is_finite()),
            alarm: enough && limits.score > 1.0 && y != 0.0,
        })
    }

    /// Fits the model (intercept, optional trend, a dummy per non-reference level
    /// present) and, if asked, refits with Anscombe weights. Returns the fit, φ, and
    /// whether it has the trend.
    fn fit(&self, rows: &[(f64, f64, usize)], trend: bool) -> Option<(Glm, f64, bool)> {
        let mut levels: Vec<usize> = rows
            .iter()
            .map(|r| r.2)
            .filter(|&l| l != self.no_periods)
            .collect();
        levels.sort_unstable();
        levels.dedup();
        let cols = 1 + trend as usize + levels.len();
        let x = DMatrix::from_fn(rows.len(), cols, |i, c| {
            let (_, wtime, level) = rows[i];
            match c {
                0 => 1.0,
                1 if trend => wtime,
                c => (levels[c - 1 - trend as usize] == level) as u8 as f64,
            }
        });
        let y: Vec<f64> = rows.iter().map(|r| r.0).collect();
        let ones = vec![1.0; y.len()];
        let glm = fit_glm(&x, &y, &ones)?;
        let mut phi = glm.dispersion.max(1.0);
        if !self.reweight {
            return Some((glm, phi, trend));
        }
        let s = anscombe_residuals(&y, &glm, phi);
        let weights = assign_weights(&s, self.weights_threshold);
        let glm = fit_glm(&x, &y, &weights)?;
        phi = glm.dispersion.max(1.0);
        Some((glm, phi, trend))
    }
}

#[cfg(test)]
mod tests;

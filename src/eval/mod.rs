//! `yujing eval`: how the detectors behave on count series of known truth, in the
//! design of Noufaily et al. (2013): weekly negative-binomial counts with trend and
//! seasonality, outbreaks of k standard deviations injected at random, and for each
//! method the false-positive rate (alarms in weeks without outbreak cases), the
//! probability of detection (outbreaks with an alarm in one of their weeks) and the
//! delay to the first alarm.

use std::fmt::Write as _;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Poisson};

use crate::detect::baseline::Seasonality;
use crate::detect::farrington::{Settings, ThresholdMethod};
use crate::detect::robust::{self, Glr};
use crate::detect::{self, Ears, Verdict};

pub mod backtest;
pub mod labels;
pub mod nab;
pub mod real;

/// One simulated scenario: log-mean θ + β·t + seasonal harmonics, dispersion φ.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub theta: f64,
    pub beta: f64,
    pub gamma: (f64, f64),
    pub harmonics: u32,
    pub phi: f64,
}

/// A subset of Noufaily et al.'s scenarios: low and high counts, flat and seasonal, over-dispersed.
pub const SCENARIOS: [Scenario; 6] = [
    Scenario {
        theta: 0.5,
        beta: 0.0,
        gamma: (0.0, 0.0),
        harmonics: 0,
        phi: 1.0,
    },
    Scenario {
        theta: 2.5,
        beta: 0.0,
        gamma: (0.0, 0.0),
        harmonics: 0,
        phi: 1.0,
    },
    Scenario {
        theta: 0.5,
        beta: 0.0,
        gamma: (1.5, 1.4),
        harmonics: 1,
        phi: 2.0,
    },
    Scenario {
        theta: 2.5,
        beta: 0.0,
        gamma: (0.6, 0.6),
        harmonics: 1,
        phi: 1.5,
    },
    Scenario {
        theta: 3.75,
        beta: 0.0,
        gamma: (0.2, -0.4),
        harmonics: 2,
        phi: 3.0,
    },
    Scenario {
        theta: 2.5,
        beta: 0.0025,
        gamma: (0.0, 0.0),
        harmonics: 0,
        phi: 2.0,
    },
];

const WEEKS: usize = 624;
const EVAL_FROM: usize = 575;

fn mean_at(s: &Scenario, t: usize) -> f64 {
    let t = t as f64;
    let mut lin = s.theta + s.beta * t;
    for j in 1..=s.harmonics {
        let w = 2.0 * std::f64::consts::PI * j as f64 * t / 52.0;
        lin += s.gamma.0 * w.cos() + s.gamma.1 * w.sin();
    }
    lin.exp()
}

fn draw(rng: &mut ChaCha8Rng, mu: f64, phi: f64) -> f64 {
    let lambda = if phi > 1.0 {
        // Negative binomial as a gamma mixture with variance φμ.
        let shape = mu / (phi - 1.0);
        Gamma::new(shape, mu / shape).map_or(mu, |g| g.sample(rng))
    } else {
        mu
    };
    Poisson::new(lambda.max(1e-9)).map_or(0.0, |p| p.sample(rng))
}

/// The methods compared, with the parameters the shipped pipelines would use.
pub const METHODS: [&str; 12] = [
    "farrington",
    "farrington_delta",
    "poisson",
    "negbin",
    "bayes",
    "zscore",
    "ears_c1",
    "ears_c2",
    "ears_c3",
    "robust_z",
    "shesd",
    "glrnb",
];

/// Weeks in `shesd`'s window: it needs more than a short baseline to call outliers.
const SHESD_WEEKS: usize = 28;

fn judge(
    method: &str,
    history: &[f64],
    y: f64,
    alpha: f64,
    baseline: usize,
    glr: &mut Glr,
) -> Option<Verdict> {
    let base = &history[history.len().saturating_sub(baseline)..];
    let farrington = |m| {
        let s = Settings {
            threshold_method: m,
            ..Settings::default()
        };
        s.judge(history, y, 52, alpha)
    };
    match method {
        "farrington" => farrington(ThresholdMethod::NbPlugin),
        "farrington_delta" => farrington(ThresholdMethod::Delta),
        "poisson" => detect::poisson(base, y, alpha),
        "negbin" => detect::negbin(base, y, alpha),
        "bayes" => detect::bayes(base, y, alpha),
        "zscore" => detect::zscore(base, y, alpha, 0.5),
        "ears_c1" => detect::ears(Ears::C1, history, y, 3.0, 0.5),
        "ears_c2" => detect::ears(Ears::C2, history, y, 3.0, 0.5),
        "robust_z" => robust::robust_z(base, y, alpha, 0.5),
        "shesd" => {
            let week = 7 * crate::core::time::DAY;
            // Only the window shesd reads, each at its week.
            let from = history.len().saturating_sub(SHESD_WEEKS);
            let timed: Vec<(i64, f64)> = (from..history.len())
                .map(|t| (t as i64 * week, history[t]))
                .collect();
            let at = history.len() as i64 * week;
            robust::shesd(
                &timed,
                at,
                y,
                Seasonality::None,
                0,
                SHESD_WEEKS,
                0.05,
                alpha,
            )
        }
        "glrnb" => {
            if base.len() < baseline {
                return None;
            }
            let mu = base.iter().sum::<f64>() / base.len() as f64;
            Some(glr.update(mu, robust::dispersion(base), y, 5.0, baseline))
        }
        _ => detect::ears(Ears::C3, history, y, 2.0, 0.5),
    }
}

/// Upper-side alarm (detection looks for rises, not drops).
fn alarms(v: Option<Verdict>, y: f64) -> bool {
    v.is_some_and(|v| v.alarm && y > v.expected)
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    quiet_weeks: u64,
    false_alarms: u64,
    outbreaks: u64,
    detected: u64,
    delay: u64,
}

impl Tally {
    fn add(&mut self, t: &Tally) {
        self.quiet_weeks += t.quiet_weeks;
        self.false_alarms += t.false_alarms;
        self.outbreaks += t.outbreaks;
        self.detected += t.detected;
        self.delay += t.delay;
    }

    /// `FPR | POD | mean delay` as table cells.
    fn cells(&self) -> String {
        format!(
            "{:.3} | {:.2} | {:.2}",
            self.false_alarms as f64 / self.quiet_weeks.max(1) as f64,
            self.detected as f64 / self.outbreaks.max(1) as f64,
            self.delay as f64 / self.detected.max(1) as f64,
        )
    }
}

/// One simulated series: the counts, the outbreak added to them (per week),
/// its first week and its size.
struct Series {
    counts: Vec<f64>,
    outbreak: Vec<f64>,
    start: usize,
    size: f64,
}

/// Draws a scenario's series with one outbreak in the evaluated weeks: k·sd
/// cases spread over up to three weeks.
fn simulate(rng: &mut ChaCha8Rng, s: &Scenario, k: f64) -> Series {
    let mut counts: Vec<f64> = (0..WEEKS)
        .map(|t| draw(rng, mean_at(s, t), s.phi))
        .collect();
    let start = rng.random_range(EVAL_FROM..WEEKS - 3);
    let mu = mean_at(s, start);
    let sd = (s.phi.max(1.0) * mu).sqrt();
    let size = Poisson::new((k * sd).max(1e-9)).map_or(0.0, |p| p.sample(rng));
    let mut outbreak = vec![0.0; WEEKS];
    for _ in 0..size as u64 {
        let w = start + rng.random_range(0..3usize);
        outbreak[w] += 1.0;
    }
    for (c, o) in counts.iter_mut().zip(&outbreak) {
        *c += o;
    }
    Series {
        counts,
        outbreak,
        start,
        size,
    }
}

/// Runs `method` over the evaluated weeks of a series and counts its alarms.
fn score(method: &str, series: &Series, alpha: f64, baseline: usize, tally: &mut Tally) {
    let Series {
        counts,
        outbreak,
        start,
        size,
    } = series;
    let start = *start;
    let mut first_alarm = None;
    let mut glr = Glr::default();
    for t in EVAL_FROM..WEEKS {
        let alarm = alarms(
            judge(method, &counts[..t], counts[t], alpha, baseline, &mut glr),
            counts[t],
        );
        if outbreak[t] > 0.0 {
            if alarm && first_alarm.is_none() {
                first_alarm = Some(t - start);
            }
        } else if !(start..start + 3).contains(&t) {
            tally.quiet_weeks += 1;
            tally.false_alarms += alarm as u64;
        }
    }
    if *size > 0.0 {
        tally.outbreaks += 1;
        if let Some(d) = first_alarm {
            tally.detected += 1;
            tally.delay += d as u64;
        }
    }
}

/// Runs the evaluation of `methods` (names from [`METHODS`]) and returns a Markdown report.
pub fn run(
    seed: u64,
    runs: usize,
    k: f64,
    alpha: f64,
    baseline: usize,
    methods: &[&str],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Outbreaks of {k} standard deviations, alpha = {alpha}, baseline {baseline} weeks (EARS: its own; Farrington: 5 years, Noufaily settings), {runs} series per scenario, weeks {EVAL_FROM}–{WEEKS}, seed {seed}.\n"
    );
    let _ = writeln!(
        out,
        "| scenario (θ, β, γ, m, φ) | method | FPR | POD | mean delay (weeks) |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|");
    let mut overall: Vec<Tally> = vec![Tally::default(); methods.len()];
    for s in SCENARIOS {
        let mut tallies = vec![Tally::default(); methods.len()];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for _ in 0..runs {
            let series = simulate(&mut rng, &s, k);
            for (m, method) in methods.iter().enumerate() {
                score(method, &series, alpha, baseline, &mut tallies[m]);
            }
        }
        for (m, method) in methods.iter().enumerate() {
            let t = tallies[m];
            let _ = writeln!(
                out,
                "| {}, {}, ({}, {}), {}, {} | {method} | {} |",
                s.theta,
                s.beta,
                s.gamma.0,
                s.gamma.1,
                s.harmonics,
                s.phi,
                t.cells(),
            );
            overall[m].add(&t);
        }
    }
    let _ = writeln!(
        out,
        "\nAll scenarios together:\n\n| method | FPR | POD | mean delay (weeks) |\n|---|---:|---:|---:|"
    );
    for (m, method) in methods.iter().enumerate() {
        let _ = writeln!(out, "| {method} | {} |", overall[m].cells());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_outbreaks_are_found_and_reports_are_repeatable() {
        // Farrington is left to its own tests: its GLM is slow in a debug build.
        let methods = ["poisson", "ears_c1"];
        let a = run(3, 4, 50.0, 0.01, 7, &methods);
        assert_eq!(a, run(3, 4, 50.0, 0.01, 7, &methods));
        let overall = a.split("All scenarios together").nth(1).unwrap();
        let poisson = overall
            .lines()
            .find(|l| l.starts_with("| poisson |"))
            .unwrap();
        let pod: f64 = poisson.split('|').nth(3).unwrap().trim().parse().unwrap();
        assert!(pod >= 0.9, "{poisson}");
    }
}

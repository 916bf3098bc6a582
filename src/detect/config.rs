//! The `[detect]` and `[[rule]]` sections of a pipeline file: which column is
//! watched, per which key, by which method with which parameters, how alarms are
//! graded into levels, and fixed rules written as SQL conditions on the window row.

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::baseline::Seasonality;
use super::farrington::{Settings, ThresholdMethod, Transform};
use crate::core::level::Level;
use crate::core::time::{Millis, parse_duration};

/// Detection methods; the names are a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Threshold,
    Zscore,
    Ewma,
    Cusum,
    Poisson,
    Negbin,
    Bayes,
    EarsC1,
    EarsC2,
    EarsC3,
    Farrington,
    Binomial,
    RobustZ,
    Shesd,
    Glrnb,
}

impl Method {
    /// The name pipelines write, as in `method = "ears_c1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Threshold => "threshold",
            Method::Zscore => "zscore",
            Method::Ewma => "ewma",
            Method::Cusum => "cusum",
            Method::Poisson => "poisson",
            Method::Negbin => "negbin",
            Method::Bayes => "bayes",
            Method::EarsC1 => "ears_c1",
            Method::EarsC2 => "ears_c2",
            Method::EarsC3 => "ears_c3",
            Method::Farrington => "farrington",
            Method::Binomial => "binomial",
            Method::RobustZ => "robust_z",
            Method::Shesd => "shesd",
            Method::Glrnb => "glrnb",
        }
    }

    /// Methods whose alarms carry a p-value; their levels are p-value cut-offs.
    pub fn has_p_value(self) -> bool {
        matches!(
            self,
            Method::Zscore
                | Method::Poisson
                | Method::Negbin
                | Method::Bayes
                | Method::Binomial
                | Method::Farrington
                | Method::RobustZ
        )
    }
}

/// Cut-offs that grade an alarm: for methods with a p-value, the largest p-value of
/// each level; for the others, the smallest score. A window beyond the alarm line
/// that meets no cut-off is blue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    pub yellow: Option<f64>,
    pub orange: Option<f64>,
    pub red: Option<f64>,
}

impl Levels {
    /// The level of an alarm with this p-value (or score).
    pub fn grade(&self, method: Method, p_value: Option<f64>, score: f64) -> Level {
        let meets = |cut: Option<f64>| match (cut, method.has_p_value(), p_value) {
            (Some(c), true, Some(p)) => p <= c,
            (Some(c), false, _) => score >= c,
            _ => false,
        };
        [
            (Level::Red, self.red),
            (Level::Orange, self.orange),
            (Level::Yellow, self.yellow),
        ]
        .into_iter()
        .find(|(_, cut)| meets(*cut))
        .map_or(Level::Blue, |(level, _)| level)
    }
}

fn default_alpha() -> f64 {
    0.01
}

/// `[detect]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// The column watched.
    pub value: Spanned<String>,
    /// Columns that identify a series; default: the other non-window columns.
    pub key: Option<Vec<Spanned<String>>>,
    pub method: Spanned<Method>,
    /// The alarm line: nothing is raised unless beyond the method's 1 − alpha limit.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// How many past windows form the baseline.
    pub baseline: Option<usize>,
    /// How many of the most recent windows to leave out of the baseline.
    #[serde(default)]
    pub guard: usize,
    #[serde(default)]
    pub seasonality: Seasonality,
    #[serde(default)]
    pub min_sigma: f64,
    /// EWMA smoothing λ and limit width L.
    pub lambda: Option<f64>,
    #[serde(rename = "L")]
    pub l: Option<f64>,
    /// `threshold` bounds.
    pub upper: Option<f64>,
    pub lower: Option<f64>,
    /// CUSUM: the shift to detect (as a ratio of the in-control mean) and the decision
    /// limit; `glrnb`: `h` is the limit of the GLR statistic (R's `c.ARL`).
    pub shift: Option<f64>,
    pub h: Option<f64>,
    /// `glrnb`: how many windows back a rise may have started (R's `M`).
    #[serde(rename = "M")]
    pub m: Option<usize>,
    /// `glrnb`: the negative binomial's dispersion a (variance μ + aμ²; R's `alpha`);
    /// estimated from the baseline when unset.
    pub dispersion: Option<f64>,
    /// `shesd`: the largest share of the baseline that may be outliers.
    pub max_anoms: Option<f64>,
    /// EARS: the statistic's alarm limit (CDC: 3 for C1 and C2, 2 for C3).
    pub limit: Option<f64>,
    /// `binomial`: the column holding the number of trials.
    pub trials: Option<Spanned<String>>,
    /// `farrington`: the length of one seasonal cycle (reference: a year of weeks),
    /// a whole number of windows; default the seasonality's cycle, else 52 weeks.
    pub period: Option<Spanned<String>>,
    /// `farrington` settings, named as in R's `farringtonFlexible`; unset ones take
    /// the Noufaily defaults of [`Settings`].
    pub b: Option<usize>,
    pub w: Option<usize>,
    pub no_periods: Option<usize>,
    #[serde(alias = "past_weeks_not_included")]
    pub past_windows_not_included: Option<usize>,
    pub reweight: Option<bool>,
    pub weights_threshold: Option<f64>,
    pub trend: Option<bool>,
    pub p_threshold_trend: Option<f64>,
    pub limit54: Option<(f64, usize)>,
    pub powertrans: Option<Transform>,
    pub threshold_method: Option<ThresholdMethod>,
    #[serde(default)]
    pub levels: Levels,
    /// No alarm below this value, however unusual (a volume floor, like Farrington's
    /// `limit54`): one post on a topic that had none is not a burst.
    #[serde(default)]
    pub min_value: f64,
    /// No alarm unless the value is at least this many times the expected one (or,
    /// below it, at most its inverse): a rise from 1 to 3 is not a burst at 2.
    #[serde(default)]
    pub min_ratio: f64,
    /// Consecutive anomalous windows before an alert fires.
    #[serde(rename = "for", default = "one")]
    pub for_windows: usize,
    /// Normal windows an alert keeps firing for before it resolves.
    #[serde(default)]
    pub keep_firing_for: usize,
    /// Windows after a resolution in which the key raises nothing new unless its
    /// level is higher than the resolved one (then the same incident reopens).
    #[serde(default)]
    pub cooldown: usize,
    /// Language of alert summaries: "en" or "zh".
    #[serde(default)]
    pub language: crate::core::level::Language,
}

fn one() -> usize {
    1
}

/// `[[rule]]`: a fixed line, e.g. `when = "persons >= 5"`, `level = "yellow"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub when: Spanned<String>,
    pub level: Level,
    /// Names the rule in alerts; default: its condition.
    pub name: Option<String>,
}

/// `[sensitive]` as written (see [`super::sensitive`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensitiveConfig {
    /// A reference table with `start` and `end` timestamp columns.
    pub calendar: Spanned<String>,
    /// Levels up on those dates (blue → yellow …, red stays red).
    #[serde(default = "one_level")]
    pub raise: u8,
    /// `[detect]` alpha × this on those dates.
    #[serde(default = "unit")]
    pub alpha_factor: f64,
}

fn one_level() -> u8 {
    1
}

fn unit() -> f64 {
    1.0
}

/// The detection sections of a pipeline file.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Sections {
    pub detect: Option<DetectConfig>,
    #[serde(default)]
    pub rule: Vec<RuleConfig>,
    /// Closer watch on the dates of a reference calendar.
    pub sensitive: Option<SensitiveConfig>,
}

impl DetectConfig {
    /// The Farrington settings and the number of windows per period, for windows
    /// starting every `slide`; an error says what does not fit.
    pub fn farrington(&self, slide: Millis) -> Result<(Settings, usize), String> {
        let d = Settings::default();
        let settings = Settings {
            b: self.b.unwrap_or(d.b),
            w: self.w.unwrap_or(d.w),
            no_periods: self.no_periods.unwrap_or(d.no_periods),
            past_windows_not_included: self.past_windows_not_included,
            reweight: self.reweight.unwrap_or(d.reweight),
            weights_threshold: self.weights_threshold.unwrap_or(d.weights_threshold),
            trend: self.trend.unwrap_or(d.trend),
            p_threshold_trend: self.p_threshold_trend.unwrap_or(d.p_threshold_trend),
            limit54: self.limit54.unwrap_or(d.limit54),
            powertrans: self.powertrans.unwrap_or(d.powertrans),
            threshold_method: self.threshold_method.unwrap_or(d.threshold_method),
        };
        let period = match &self.period {
            Some(p) => parse_duration(p.get_ref())?,
            None => self
                .seasonality
                .period()
                .unwrap_or(52 * 7 * crate::core::time::DAY),
        };
        if slide <= 0 || period % slide != 0 {
            return Err(format!(
                "the period ({}) must be a whole number of windows ({})",
                crate::core::time::format_duration(period),
                crate::core::time::format_duration(slide)
            ));
        }
        let freq = (period / slide) as usize;
        match settings.problems(freq).first() {
            Some(p) => Err(p.clone()),
            None => Ok((settings, freq)),
        }
    }

    /// Parameters a method needs that the section does not give.
    pub fn missing_parameters(&self) -> Vec<&'static str> {
        let m = *self.method.get_ref();
        let mut missing = Vec::new();
        if m == Method::Threshold && self.upper.is_none() && self.lower.is_none() {
            missing.push("upper or lower");
        }
        if m == Method::Binomial && self.trials.is_none() {
            missing.push("trials");
        }
        if self.for_windows == 0 {
            missing.push("`for` of at least 1");
        }
        missing
    }

    /// Settings out of their range, said as the fix.
    pub fn bad_settings(&self) -> Vec<String> {
        let mut bad = Vec::new();
        if let Some(a) = self
            .max_anoms
            .filter(|a| a.is_nan() || *a <= 0.0 || *a > 0.5)
        {
            bad.push(format!(
                "max_anoms must be above 0 and at most 0.5, not {a}"
            ));
        }
        if self.min_ratio.is_nan() || self.min_ratio < 0.0 {
            bad.push(format!(
                "min_ratio must be 0 or more, not {}",
                self.min_ratio
            ));
        }
        if let Some(d) = self.dispersion.filter(|d| d.is_nan() || *d < 0.0) {
            bad.push(format!("dispersion must be 0 or more, not {d}"));
        }
        if let Some(h) = self.h.filter(|h| h.is_nan() || *h <= 0.0) {
            bad.push(format!("h must be above 0, not {h}"));
        }
        if *self.method.get_ref() == Method::Shesd && self.baseline.is_some_and(|b| b < 3) {
            bad.push("shesd needs a baseline of at least 3 windows".into());
        }
        bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_grade_by_p_value_or_score() {
        let l = Levels {
            yellow: Some(1e-3),
            orange: Some(1e-4),
            red: Some(1e-6),
        };
        assert_eq!(l.grade(Method::Poisson, Some(5e-3), 0.0), Level::Blue);
        assert_eq!(l.grade(Method::Poisson, Some(5e-4), 0.0), Level::Yellow);
        assert_eq!(l.grade(Method::Poisson, Some(1e-7), 0.0), Level::Red);
        let s = Levels {
            yellow: Some(4.0),
            orange: Some(6.0),
            red: None,
        };
        assert_eq!(s.grade(Method::EarsC1, None, 5.0), Level::Yellow);
        assert_eq!(s.grade(Method::EarsC1, None, 60.0), Level::Orange);
        assert!(Level::Red > Level::Orange && Level::Blue < Level::Yellow);
    }
}

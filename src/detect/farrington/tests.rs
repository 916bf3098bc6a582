//! Unit tests of the parent module.

use super::*;

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() < tol, "{a} vs {b}");
}

fn all_close(l: Limits, want: [f64; 4]) {
    for (got, want) in [l.lower, l.upper, l.prob, l.score].into_iter().zip(want) {
        close(got, want, 1e-6);
    }
}

#[test]
fn delta_limits_reproduce_the_reference_package_tests() {
    // surveillance's test-farringtonFlexible.R: μ₀ = 5, se = 0.2, φ = 1, α = 0.05, y = 8.
    let t = |tr| delta_limits(5.0, 0.2, 1.0, 0.05, tr, 8.0);
    all_close(
        t(Transform::None),
        [1.3073128, 8.6926872, 0.0907246, 0.8124165],
    );
    all_close(
        t(Transform::Half),
        [1.9891097, 9.3744842, 0.1189986, 0.6857951],
    );
    all_close(
        t(Transform::TwoThirds),
        [1.8084477, 9.1154825, 0.1094727, 0.7289546],
    );
}

#[test]
fn noufaily_limits_reproduce_the_reference_package_tests() {
    // η₀ = log 5, se = log 2, α = 0.05, y = 11.
    let t = |phi, m| noufaily_limits(5f64.ln(), 2f64.ln(), phi, 0.05, m, 11.0);
    use ThresholdMethod::{Muan, NbPlugin};
    let cases = [
        (1.5, Muan, [8.0, 24.0, 0.8597797, 0.4193982]),
        (1.0, Muan, [9.0, 22.0, 0.9093099, 0.4605347]),
        (1.5, NbPlugin, [1.0, 10.0, 0.03763657, 1.11918153]),
        (1.0, NbPlugin, [2.0, 9.0, 0.01369527, 1.27061541]),
    ];
    for (phi, method, want) in cases {
        all_close(t(phi, method), want);
    }
}

#[test]
fn weights_as_the_reference_package_tests() {
    assert_eq!(assign_weights(&[0.0; 10], 0.0), vec![1.0; 10]);
    let mut s = vec![2.0; 10];
    s[..5].fill(0.0);
    let w = assign_weights(&s, 0.0);
    for (i, w) in w.iter().enumerate() {
        close(*w, if i < 5 { 1.6 } else { 0.4 }, 1e-12);
    }
}

#[test]
fn blocks_as_the_reference_package_tests() {
    // Weekly data, b = 3, w = 3: the reference level covers w + 1 + b (2w + 1)
    // weeks including the current ones; the other levels split each year's
    // remainder into blocks whose sizes differ by at most one per year.
    for p in [1, 8] {
        let s = Settings {
            b: 3,
            w: 3,
            no_periods: p,
            ..Settings::default()
        };
        let levels: Vec<Option<usize>> = (0..=3 * 52 + 3).map(|l| s.level(l, 52)).collect();
        let reference = levels.iter().filter(|l| **l == Some(p)).count();
        // The reference counts w + 1 + b (2w + 1), the first w + 1 being the current
        // windows, which are never in a fit and have no level here.
        assert_eq!(reference, 3 * 7, "p = {p}");
        let mut sizes = vec![0usize; p];
        for l in levels.iter().flatten() {
            sizes[l - 1] += 1;
        }
        if p > 1 {
            assert_eq!(sizes.iter().sum::<usize>(), 3 * 52 + 4 - 4);
            let blocks = &sizes[..p - 1];
            let (lo, hi) = (blocks.iter().min().unwrap(), blocks.iter().max().unwrap());
            assert!(hi - lo <= 3, "{sizes:?}");
        }
    }
    let s = Settings::default();
    assert_eq!(s.level(52, 52), Some(10));
    assert_eq!(s.level(55, 52), Some(10));
    assert_eq!(s.level(56, 52), Some(9), "just before the reference window");
    assert_eq!(s.level(48, 52), Some(1), "just after it");
    assert_eq!(s.level(4, 52), Some(9));
    assert_eq!(s.level(5 * 52 + 4, 52), None);
}

/// Reference values from statsmodels 0.15 (GLM, Poisson family, scale = "X2",
/// var_weights), computed independently of this code; see the test below.
#[test]
fn glm_matches_statsmodels() {
    let y = [3.0, 5.0, 2.0, 8.0, 6.0, 4.0, 9.0, 7.0, 5.0, 11.0];
    let x = DMatrix::from_fn(10, 2, |i, c| if c == 0 { 1.0 } else { i as f64 });
    let g = fit_glm(&x, &y, &[1.0; 10]).unwrap();
    close(g.beta[0], 1.297308302717618, 1e-8);
    close(g.beta[1], 0.10066671240574798, 1e-8);
    close(g.dispersion, 0.8518136341179313, 1e-8);
    close(g.hat[0], 0.28077295681007813, 1e-8);
    let s = anscombe_residuals(&y, &g, g.dispersion.max(1.0));
    close(s[3], 1.3567127225216487, 1e-8);
}

/// A weekly series with seasonality, optional trend, over-dispersion and past
/// outbreaks every 97 weeks.
fn series(slope: f64) -> Vec<f64> {
    (0..400u64)
        .map(|t| {
            let tf = t as f64;
            let v = (8.0
                + 4.0 * (2.0 * std::f64::consts::PI * tf / 52.0).sin()
                + slope * tf
                + ((t * 7919) % 23) as f64 * 0.8)
                .floor();
            v + if t % 97 == 0 { 25.0 } else { 0.0 }
        })
        .collect()
}

/// The whole algorithm against an independent implementation of the reference's
/// R code in Python (statsmodels GLM with var_weights and X² scale, t-test for the
/// trend, SciPy quantiles): Noufaily settings, α = 0.01.
// layout: long — the independent implementation is written out in one piece,
// so that it shares nothing with the code it checks.
#[test]
fn whole_algorithm_matches_an_independent_implementation() {
    // (slope, week, method, trend kept, expected, upper, P(Y ≥ y))
    let cases = [
        (
            0.02,
            388,
            ThresholdMethod::NbPlugin,
            25.69024326292314,
            41.0,
            0.006586286859309598,
        ),
        (
            0.02,
            388,
            ThresholdMethod::Delta,
            25.69024326292314,
            41.69171216846339,
            0.0061773622508432355,
        ),
        (
            0.02,
            399,
            ThresholdMethod::NbPlugin,
            20.68389100612105,
            35.0,
            0.5644959745273281,
        ),
        (
            0.02,
            399,
            ThresholdMethod::Delta,
            20.68389100612105,
            34.969240963162875,
            0.5489531600778282,
        ),
        (
            0.0,
            388,
            ThresholdMethod::NbPlugin,
            17.600000000000044,
            33.0,
            0.006739983865129099,
        ),
        (
            0.0,
            388,
            ThresholdMethod::Delta,
            17.600000000000044,
            33.11731615157844,
            0.004934957729594262,
        ),
        (
            0.0,
            399,
            ThresholdMethod::NbPlugin,
            13.099634702877683,
            27.0,
            0.5935872417307719,
        ),
        (
            0.0,
            399,
            ThresholdMethod::Delta,
            13.099634702877683,
            26.45491471781638,
            0.5874455537235939,
        ),
    ];
    for (slope, k, method, expected, upper, p) in cases {
        let obs = series(slope);
        let s = Settings {
            threshold_method: method,
            ..Settings::default()
        };
        let v = s.judge(&obs[..k], obs[k], 52, 0.01).unwrap();
        let what = format!("slope {slope}, week {k}, {method:?}: {v:?}");
        assert!((v.expected - expected).abs() < 1e-6 * expected, "{what}");
        assert!((v.threshold - upper).abs() < 1e-6 * upper, "{what}");
        assert!(
            (v.p_value.unwrap() - p).abs() < 1e-6 * p.max(1e-3),
            "{what}"
        );
        assert_eq!(v.alarm, obs[k] > upper, "{what}");
    }
    assert!(
        Settings::default()
            .judge(&series(0.0)[..262], 5.0, 52, 0.01)
            .is_none(),
        "warming up until b periods and w windows of history"
    );
}

#[test]
fn an_empty_baseline_alarms_past_the_volume_floor_only() {
    let s = Settings::default();
    let zeros = vec![0.0; 300];
    assert!(
        !s.judge(&zeros, 4.0, 52, 0.01).unwrap().alarm,
        "4 < limit54's 5"
    );
    assert!(s.judge(&zeros, 5.0, 52, 0.01).unwrap().alarm);
}

//! The Farrington threshold (`algo.farrington.threshold` of R's `surveillance`):
//! given the GLM's predicted mean μ₀, its standard error and the dispersion φ, the
//! upper limit of a 1 − alpha prediction interval, on the original scale or after
//! the 2/3-power transform that makes Poisson-like counts nearly symmetric.

use statrs::distribution::{ContinuousCDF, Normal};

/// Scale on which the prediction interval is symmetric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    None,
    TwoThirds,
}

/// Upper limit: τ = φ + se²/μ₀; on the original scale μ₀ + z √(μ₀ τ); with the 2/3
/// power, (μ₀^{2/3} + z √(4/9 μ₀^{1/3} τ))^{3/2}; z is the 1 − alpha normal quantile.
pub fn upper_limit(mu0: f64, se_fit: f64, phi: f64, alpha: f64, transform: Transform) -> f64 {
    let tau = phi + se_fit * se_fit / mu0;
    let z = Normal::standard().inverse_cdf(1.0 - alpha);
    match transform {
        Transform::None => mu0 + z * (mu0 * tau).sqrt(),
        Transform::TwoThirds => {
            let se = (4.0 / 9.0 * mu0.powf(1.0 / 3.0) * tau).sqrt();
            (mu0.powf(2.0 / 3.0) + z * se).powf(1.5)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_the_reference_package_values() {
        // surveillance's own test: μ₀ = 5, se = 0.2, φ = 1, α = 0.05.
        let none = upper_limit(5.0, 0.2, 1.0, 0.05, Transform::None);
        let two_thirds = upper_limit(5.0, 0.2, 1.0, 0.05, Transform::TwoThirds);
        assert!((none - 8.6926872).abs() < 1e-6, "{none}");
        assert!((two_thirds - 9.1154825).abs() < 1e-6, "{two_thirds}");
    }
}

//! `yujing eval`: how the detectors score — on simulated negative-binomial series
//! of known truth (the Noufaily design), or on NAB's labelled real series.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Eval {
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Simulated series per scenario.
    #[arg(long, default_value_t = 100)]
    pub runs: usize,
    /// Outbreak size in standard deviations of the baseline count.
    #[arg(long, default_value_t = 5.0)]
    pub k: f64,
    #[arg(long, default_value_t = 0.01)]
    pub alpha: f64,
    /// Past windows in the baseline of poisson, negbin, bayes and zscore.
    #[arg(long, default_value_t = 7)]
    pub baseline: usize,
    /// Instead: score the methods on NAB's labelled real series in DIR (its
    /// `combined_windows.json` and data folders), e.g. tests/fixtures/nab.
    #[arg(long, value_name = "DIR")]
    pub nab: Option<PathBuf>,
    /// With --nab: score this `[detect]` section (TOML; `{day}` and `{hour}` are
    /// the windows in a day and an hour) instead of the built-in list; repeatable.
    #[arg(long, requires = "nab")]
    pub detect: Vec<String>,
    /// Only these methods of the simulation (comma-separated; default all).
    #[arg(long, value_delimiter = ',', conflicts_with = "nab")]
    pub methods: Vec<String>,
}

/// Runs the simulation, or the NAB scoring when `--nab` is given.
pub fn run(e: Eval) -> anyhow::Result<ExitCode> {
    match &e.nab {
        Some(dir) => eval_nab(dir, &e.detect),
        None => eval(e.seed, e.runs, e.k, e.alpha, e.baseline, &e.methods),
    }
}

/// `yujing eval`: the detectors scored on simulated series.
fn eval(
    seed: u64,
    runs: usize,
    k: f64,
    alpha: f64,
    baseline: usize,
    methods: &[String],
) -> anyhow::Result<ExitCode> {
    let all = yujing::eval::METHODS;
    if let Some(m) = methods.iter().find(|m| !all.contains(&m.as_str())) {
        anyhow::bail!(
            "no method {m:?} in the simulation (it has {})",
            all.join(", ")
        );
    }
    let chosen: Vec<&str> = match methods {
        [] => all.to_vec(),
        given => given.iter().map(String::as_str).collect(),
    };
    print!(
        "{}",
        yujing::eval::run(seed, runs, k, alpha, baseline, &chosen)
    );
    Ok(ExitCode::SUCCESS)
}

/// `yujing eval --nab DIR`: NAB scores of every method on the real data sets.
fn eval_nab(dir: &Path, detect: &[String]) -> anyhow::Result<ExitCode> {
    use yujing::eval::real::{Candidate, SETS, candidates, run};
    let series = yujing::eval::nab::load(dir, &SETS)?;
    let chosen = match detect {
        [] => candidates(),
        given => given.iter().map(|d| Candidate::from_text(d)).collect(),
    };
    let report = run(&series, &chosen).map_err(anyhow::Error::msg)?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

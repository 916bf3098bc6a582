//! `yujing report`: reports over a run's output — the monthly assessment of
//! departments (`report tasks`), from a tasks file or the daemon's tasks topic.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use yujing::config::Config;

#[derive(Subcommand)]
pub enum Report {
    /// Assessment (考核督导): per department, tasks received, acknowledged and
    /// done on time, overdue, escalated, median times — for one month (UTC+8).
    Tasks {
        /// The month, e.g. 2026-03.
        #[arg(long)]
        month: String,
        /// Task events: a run's tasks.jsonl (replay, demo --out).
        #[arg(long, value_name = "PATH", required_unless_present = "config")]
        input: Option<PathBuf>,
        /// Or read the daemon's tasks topic, with the [kafka] of this config.
        #[arg(long, value_name = "PATH", conflicts_with = "input")]
        config: Option<PathBuf>,
        /// Also write the table as CSV here.
        #[arg(long, value_name = "PATH")]
        csv: Option<PathBuf>,
    },
}

/// Runs a report.
pub fn run(r: Report) -> anyhow::Result<ExitCode> {
    match r {
        Report::Tasks {
            month,
            input,
            config,
            csv,
        } => report_tasks(&month, input, config, csv),
    }
}

/// `yujing report tasks`: from a file, or read out of the tasks topic.
fn report_tasks(
    month: &str,
    input: Option<PathBuf>,
    config: Option<PathBuf>,
    csv: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let text = match (input, config) {
        (Some(path), _) => {
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
        }
        (None, Some(path)) => {
            let config = Config::load(&path)?;
            let k = config
                .kafka
                .context("the config has no [kafka] section")?
                .with_secrets()?;
            yujing::daemon::outbox::read_out(&k, &k.topics.tasks)?
        }
        (None, None) => bail!("give --input or --config"),
    };
    print!(
        "{}",
        yujing::task::assessment::report(&text, month, csv.as_deref())?
    );
    Ok(ExitCode::SUCCESS)
}

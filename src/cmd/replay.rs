//! `yujing replay`'s options beyond its inputs: how it runs and what it
//! writes besides its JSON lines.

use std::path::PathBuf;

use anyhow::bail;
use yujing::http::console::Lang;

/// How a replay runs and what it writes besides its JSON lines.
#[derive(clap::Args)]
pub struct ReplayHow {
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// The processing clock (RFC 3339) against which future-dated events are
    /// judged; default: the wall clock. Fix it to repeat a backtest exactly.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// Threads that read and decode ahead of the windows (default: the
    /// config's `decode_threads`, else one per core; 1 decodes inline).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Also write report.html: per pipeline its alerts over time and by
    /// district and the series of the keys that alerted; one file, nothing fetched.
    #[arg(long)]
    pub report: bool,
    /// Score the alerts against known incidents (JSON lines of key columns,
    /// start, end, optional level and pipelines; or gen's manifest.json):
    /// scores.json and a section of the report. Implies --report.
    #[arg(long, value_name = "PATH")]
    pub labels: Option<PathBuf>,
    /// A key to plot in the report whether or not it alerted:
    /// COLUMN=VALUE[,COLUMN=VALUE…] (e.g. grid_id=XH-01-21); repeatable. Implies --report.
    #[arg(long = "plot", value_name = "KEY")]
    pub plot: Vec<String>,
    /// The report's language: zh (default) or en.
    #[arg(long, value_name = "LANG", default_value = "zh")]
    pub lang: String,
    /// Also write the engine's state at the end here (JSON): put it in the
    /// daemon's state dir as warm.json, and pipelines a redeploy starts afresh
    /// take their series from it instead of warming up again.
    #[arg(long, value_name = "PATH")]
    pub save_state: Option<PathBuf>,
}

impl ReplayHow {
    /// The keys `--plot` asks for.
    pub fn plotted(&self) -> anyhow::Result<Vec<Vec<(String, String)>>> {
        self.plot
            .iter()
            .map(|p| {
                p.split(',')
                    .map(|pair| match pair.split_once('=') {
                        Some((c, v)) if !c.trim().is_empty() => {
                            Ok((c.trim().to_string(), v.trim().to_string()))
                        }
                        _ => bail!("--plot {p}: expected COLUMN=VALUE[,COLUMN=VALUE…]"),
                    })
                    .collect()
            })
            .collect()
    }

    /// The report's language.
    pub fn lang(&self) -> anyhow::Result<Lang> {
        match self.lang.as_str() {
            "zh" => Ok(Lang::Zh),
            "en" => Ok(Lang::En),
            other => bail!("--lang {other}: expected zh or en"),
        }
    }
}

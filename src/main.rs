//! The `yujing` command line: demo, replay, check and gen.

mod cmd;
use cmd::load::{decode_options, load};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

use yujing::config::{Config, KeyPolicy};
use yujing::decode::DecodeOptions;
use yujing::error::Error;
use yujing::pipeline;
use yujing::schema::Catalog;
use yujing::sink::alertmanager::Notifier;
use yujing::sink::observe::Observers;
use yujing::synth::{self, GenOptions};

#[derive(Parser)]
#[command(
    name = "yujing",
    version,
    about = "yujing (预警): streaming risk early warning on Apache DataFusion"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct Sources {
    /// Configuration file (yujing.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory of pipeline files (default: the shipped pipelines).
    #[arg(long)]
    pipelines: Option<PathBuf>,
    /// Directory of schema files that add to or replace the shipped ones.
    #[arg(long)]
    schemas: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a week of feeds in memory, run the shipped pipelines, print what the windows show.
    Demo {
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Days of data: two weeks give the daily baselines a week of history.
        #[arg(long, default_value_t = 14)]
        days: u32,
        /// Serve /metrics and the JSON API on this address while the demo runs.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Keep serving after the report, until SIGTERM or Ctrl-C.
        #[arg(long, requires = "listen")]
        hold: bool,
        /// Push the demo's alerts to this Alertmanager (e.g. http://127.0.0.1:9093).
        #[arg(long, value_name = "URL")]
        alertmanager: Option<String>,
        /// Also write the run's alerts.jsonl and tasks.jsonl here.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Reports over a run's output.
    #[command(subcommand)]
    Report(cmd::report::Report),
    /// Replay one pipeline once per combination of settings (--set alpha=1e-3,1e-5)
    /// and score each against labels: detections, misses, delay, false alarms per week.
    Tune(cmd::tune::Tune),
    /// Run the pipelines over JSON-lines files.
    Replay {
        #[command(flatten)]
        sources: Sources,
        /// FEED=PATH, once per input file.
        #[arg(long = "input", value_name = "FEED=PATH")]
        inputs: Vec<String>,
        /// Output directory for windows.jsonl, alerts.jsonl, tasks.jsonl and dead_letters.jsonl.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Task updates (JSON lines: time, task_id, action, actor), applied in event time.
        #[arg(long, value_name = "PATH")]
        task_updates: Option<PathBuf>,
        #[command(flatten)]
        how: cmd::replay::ReplayHow,
    },
    /// The daemon: consume the feed topics of `[kafka]` in a consumer group, write alerts, tasks and dead letters to their topics, serve /metrics and the API.
    Run {
        #[command(flatten)]
        sources: Sources,
        /// When no checkpoint in the state dir can be read, set the bad files aside
        /// and start afresh (without it the daemon refuses to start).
        #[arg(long)]
        reset_state: bool,
        /// Run without a PII key, on the public development key: for trials on
        /// test data only, never on real feeds.
        #[arg(long)]
        insecure_dev_key: bool,
        /// Read the processing clock from this file (RFC 3339 or epoch
        /// milliseconds) instead of the wall clock: for tests that drive task
        /// deadlines; never in production.
        #[arg(long, hide = true)]
        clock_file: Option<PathBuf>,
    },
    /// Validate configuration, schemas and pipelines without running them.
    Check {
        #[command(flatten)]
        sources: Sources,
    },
    /// Score the detectors: on simulated count series with known outbreaks, or
    /// (`--nab DIR`) on NAB's labelled real series.
    Eval(cmd::eval::Eval),
    /// Write synthetic feeds with injected incidents (one FEED.jsonl per feed, plus manifest.json).
    Gen {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// Events delivered a day or more late.
        #[arg(long, default_value_t = 0)]
        late: usize,
        /// Malformed records.
        #[arg(long, default_value_t = 0)]
        bad: usize,
        /// Multiplies all background rates.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            // Located diagnostics are printed as they are, one per line.
            match e.downcast_ref::<Error>() {
                Some(Error::Invalid(d)) => say(&d.to_string()),
                _ => say(&format!("error: {e:#}")),
            }
            ExitCode::FAILURE
        }
    }
}

/// Set once logging is JSON: then messages for people go through the log too.
static JSON_LOGS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// A line for the person at the terminal; with `--log-format json`, a log event.
fn say(line: &str) {
    if JSON_LOGS.get().copied().unwrap_or(false) {
        tracing::info!(target: "yujing", "{line}");
    } else {
        eprintln!("{line}");
    }
}

fn init_logging(format: LogFormat) {
    let _ = JSON_LOGS.set(matches!(format, LogFormat::Json));
    // Machines reading JSON filter for themselves: they get yujing's info events.
    let default = match format {
        LogFormat::Json => "warn,yujing=info",
        LogFormat::Text => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("YUJING_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn runtime() -> anyhow::Result<Arc<tokio::runtime::Runtime>> {
    Ok(Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?,
    ))
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Demo {
            seed,
            days,
            listen,
            hold,
            alertmanager,
            out,
        } => demo(seed, days, listen, hold, alertmanager, out),
        Command::Report(r) => cmd::report::run(r),
        Command::Tune(t) => cmd::tune::run(t),
        Command::Replay {
            sources,
            inputs,
            out,
            task_updates,
            how,
        } => replay(sources, inputs, out, task_updates, how),
        Command::Run {
            sources,
            reset_state,
            insecure_dev_key,
            clock_file,
        } => run_daemon(sources, reset_state, insecure_dev_key, clock_file),
        Command::Check { sources } => check(sources),
        Command::Eval(e) => cmd::eval::run(e),
        Command::Gen {
            out,
            seed,
            days,
            late,
            bad,
            scale,
        } => generate(out, seed, days, late, bad, scale),
    }
}

/// The secret that fixes the demo's viewer token (a random one when unset).
const DEMO_TOKEN: &str = "YUJING_DEMO_TOKEN";

/// The demo takes no task updates: one viewer token, its own unless given.
fn demo_guard() -> anyhow::Result<(yujing::http::Guard, String)> {
    let token = match yujing::secret::read(DEMO_TOKEN)? {
        Some((t, _)) => t.expose().to_string(),
        None => {
            use rand::Rng;
            let bytes: [u8; 16] = rand::rng().random();
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
    };
    let viewer = yujing::http::access::Caller {
        name: "demo".into(),
        role: yujing::config::Role::Viewer,
        department: None,
    };
    let access = yujing::http::access::Access::single(&token, viewer);
    let guard = yujing::http::Guard::with_access(access, &Config::default().http)?;
    Ok((guard, token))
}

/// `yujing demo`: generated feeds through the shipped pipelines, a report.
fn demo(
    seed: u64,
    days: u32,
    listen: Option<String>,
    hold: bool,
    alertmanager: Option<String>,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let catalog = Catalog::embedded()?;
    let compiled = rt
        .block_on(pipeline::compile_embedded(&catalog))
        .map_err(Error::Invalid)?;
    let gen_options = GenOptions {
        seed,
        days,
        late: 20,
        bad: 20,
        ..GenOptions::default()
    };
    let metrics =
        Arc::new(yujing::metrics::Metrics::new().with_departments(compiled.routing.departments()));
    let observers = Observers {
        alertmanager: match alertmanager {
            Some(url) => Some(Arc::new(Notifier::start(
                yujing::sink::alertmanager::Target::plain(&url),
                Duration::from_secs(60),
                Duration::from_secs(5),
                metrics.clone(),
            )?)),
            None => None,
        },
        metrics,
        view: Default::default(),
    };
    // The demo's "now" is the end of the days it generates, however many.
    let now = yujing::core::time::Clock::Fixed(
        gen_options.start + i64::from(gen_options.days) * yujing::core::time::DAY,
    );
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(addr) = &listen {
        let (mut guard, token) = demo_guard()?;
        guard.clock = now.clone();
        let (ready, _) = yujing::http::serve(addr, &observers, guard, stop.clone())?;
        ready.set(true);
        say(&format!(
            "serving /metrics, /api and the console on http://{addr} (API: Authorization: Bearer {token}; console: http://{addr}/console, sign in with that token)"
        ));
    }
    let report = yujing::demo::run(
        catalog,
        compiled,
        {
            // Generated data holds no real personal data: no key needed.
            let mut o = DecodeOptions::with_secret(
                &std::env::var(yujing::config::PII_KEY_ENV).unwrap_or_else(|_| "demo".into()),
            );
            o.clock = now;
            o
        },
        rt,
        &gen_options,
        &observers,
        out.as_deref(),
    )?;
    print!("{report}");
    if hold {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        say(&format!(
            "holding: still serving on http://{}; SIGTERM or Ctrl-C stops",
            listen.as_deref().unwrap_or_default()
        ));
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `yujing replay`: the pipelines over JSON-lines files into a directory.
fn replay(
    sources: Sources,
    inputs: Vec<String>,
    out: Option<PathBuf>,
    task_updates: Option<PathBuf>,
    how: cmd::replay::ReplayHow,
) -> anyhow::Result<ExitCode> {
    let loaded = load(&sources)?;
    let mut files: Vec<(String, PathBuf)> = loaded
        .config
        .replay
        .inputs
        .iter()
        .map(|(f, p)| (f.clone(), p.clone()))
        .collect();
    for i in &inputs {
        let Some((feed, path)) = i.split_once('=') else {
            bail!("--input {i}: expected FEED=PATH");
        };
        files.push((feed.to_string(), PathBuf::from(path)));
    }
    if files.is_empty() {
        bail!(
            "no input: give --input FEED=PATH (feeds: {})",
            loaded.catalog.names().join(", ")
        );
    }
    let Some(out) = out.or(loaded.config.replay.out.clone()) else {
        bail!("no output directory: give --out DIR");
    };
    let rt = runtime()?;
    let (config, catalog, compiled) = loaded.compile(&rt)?;
    compiled.warn_of_dead_routes();
    let mut options = decode_options(&config, KeyPolicy::DevelopmentAllowed)?;
    if let Some(now) = &how.now {
        let t = yujing::core::time::parse_rfc3339(now)
            .with_context(|| format!("--now {now}: expected an RFC 3339 time"))?;
        options.clock = yujing::core::time::Clock::Fixed(t);
    }
    let task_updates = task_updates.or(config.replay.task_updates.clone());
    let lang = how.lang()?;
    let plot = how.plotted()?;
    let summary = yujing::replay::replay_to_dir(
        catalog,
        compiled,
        yujing::replay::Inputs {
            feeds: &files,
            task_updates: task_updates.as_deref(),
            decode_threads: how.threads.or(config.decode_threads),
        },
        options,
        rt,
        yujing::replay::Outputs {
            dir: &out,
            progress: !how.quiet,
            report: (how.report || how.labels.is_some() || !plot.is_empty()).then_some(
                yujing::replay::Report {
                    labels: how.labels.as_deref(),
                    lang,
                    plot: &plot,
                },
            ),
            save_state: how.save_state.as_deref(),
        },
    )?;
    say(&summary.to_string());
    Ok(ExitCode::SUCCESS)
}

/// `yujing run`: the daemon.
fn run_daemon(
    sources: Sources,
    reset_state: bool,
    insecure_dev_key: bool,
    clock_file: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let policy = if insecure_dev_key {
        KeyPolicy::DevelopmentAllowed
    } else {
        KeyPolicy::Required
    };
    let loaded = load(&sources)?;
    // Before anything is compiled or connected: a missing key is the operator's to fix.
    let mut options = decode_options(&loaded.config, policy)?;
    if let Some(path) = clock_file {
        tracing::warn!(file = %path.display(), "the processing clock is driven by a file");
        options.clock = yujing::core::time::Clock::File(path.into());
    }
    tracing::info!(
        pii_key = %yujing::decode::key_fingerprint(&options.pii_key),
        "PII pseudonyms by this key"
    );
    let rt = runtime()?;
    let (config, catalog, compiled) = loaded.compile(&rt)?;
    compiled.warn_of_dead_routes();
    // SIGHUP: the pipelines and routing table read again from where they came from.
    // Reference tables are read again in place, so every pipeline sees the new rows.
    let again = rt.clone();
    let tables = catalog.tables.clone();
    let recompile = Box::new(move || -> yujing::error::Result<pipeline::Compiled> {
        let failed = |e: anyhow::Error| Error::Other(format!("{e:#}"));
        let (_, _, compiled) = cmd::load::reload(&sources, &tables)
            .map_err(failed)?
            .compile(&again)
            .map_err(failed)?;
        Ok(compiled)
    });
    yujing::daemon::run(
        config,
        catalog,
        compiled,
        options,
        rt,
        reset_state,
        recompile,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `yujing check`: configuration, schemas and pipelines, planned but not run.
fn check(sources: Sources) -> anyhow::Result<ExitCode> {
    let loaded = load(&sources)?;
    let rt = runtime()?;
    let (_, catalog, compiled) = loaded.compile(&rt)?;
    let dead = compiled.routes_never_matched();
    if !dead.is_empty() {
        return Err(Error::Invalid(yujing::error::Diagnostics(dead)).into());
    }
    println!(
        "ok: {} pipelines and {} compound, {} feeds ({}), {} reference tables ({})",
        compiled.pipelines.len(),
        compiled.compounds.len(),
        catalog.feeds.len(),
        catalog.names().join(", "),
        catalog.tables.len(),
        catalog
            .tables
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    print_partitioning(&compiled);
    Ok(ExitCode::SUCCESS)
}

/// Which pipelines keep each key's state within one partition when producers
/// key the feed topics by district (see docs/scaling.md).
fn print_partitioning(compiled: &yujing::pipeline::Compiled) {
    let (mut by_district, mut other) = (Vec::new(), Vec::new());
    for p in &compiled.pipelines {
        match p.query.keys_without("district") {
            keys if keys.is_empty() => by_district.push(p.def.name.clone()),
            keys => other.push(format!("{} (by {})", p.def.name, keys.join(", "))),
        }
    }
    println!("co-partitioned by district: {}", by_district.join(", "));
    if !other.is_empty() {
        println!(
            "not co-partitioned, pinned to one task with [state] per_partition: {}",
            other.join(", ")
        );
    }
}

/// `yujing gen`: synthetic feeds and their manifest.
fn generate(
    out: PathBuf,
    seed: u64,
    days: u32,
    late: usize,
    bad: usize,
    scale: f64,
) -> anyhow::Result<ExitCode> {
    let generated = synth::generate(&GenOptions {
        seed,
        days,
        late,
        bad,
        scale,
        ..GenOptions::default()
    });
    synth::write(&generated, &out).with_context(|| format!("writing {}", out.display()))?;
    let total: usize = generated.manifest.events.values().sum();
    say(&format!(
        "gen: {total} events, {} late, {} malformed, {} incidents → {}",
        generated.manifest.late.len(),
        generated.manifest.bad.len(),
        generated.manifest.incidents.len(),
        out.display()
    ));
    Ok(ExitCode::SUCCESS)
}

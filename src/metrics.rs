//! The engine's Prometheus metrics, defined in one place. Labels are bounded sets
//! (feeds, reasons, pipelines, levels, task changes); never event ids or free text.

use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    pub events: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub windows: IntCounterVec,
    pub alerts: IntCounterVec,
    pub incidents_firing: IntGauge,
    pub task_events: IntCounterVec,
    pub ready: IntGauge,
    pub checkpoint_seconds: prometheus::Histogram,
    pub checkpoint_failures: prometheus::IntCounter,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    // Names and labels are constants of this module, so this cannot fail.
    IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{name}: {e}"))
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let m = Metrics {
            events: counter(
                "yujing_events_total",
                "Records decoded into events, per feed.",
                &["feed"],
            ),
            dead_letters: counter(
                "yujing_dead_letters_total",
                "Records sent to the dead letters, per feed and reason.",
                &["feed", "reason"],
            ),
            windows: counter(
                "yujing_windows_closed_total",
                "Windows closed with rows, per pipeline.",
                &["pipeline"],
            ),
            alerts: counter(
                "yujing_alerts_total",
                "Alert events raised, per pipeline, level and status.",
                &["pipeline", "level", "status"],
            ),
            incidents_firing: IntGauge::new("yujing_incidents_firing", "Incidents firing now.")
                .unwrap_or_else(|e| panic!("{e}")),
            task_events: counter(
                "yujing_task_events_total",
                "Task changes, per kind of change.",
                &["change"],
            ),
            ready: IntGauge::new(
                "yujing_ready",
                "1 once state is restored and partitions are assigned.",
            )
            .unwrap_or_else(|e| panic!("{e}")),
            checkpoint_seconds: prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(
                "yujing_checkpoint_duration_seconds",
                "Time to write a checkpoint and commit its offsets.",
            ))
            .unwrap_or_else(|e| panic!("{e}")),
            checkpoint_failures: prometheus::IntCounter::new(
                "yujing_checkpoint_failures_total",
                "Checkpoints that could not be written.",
            )
            .unwrap_or_else(|e| panic!("{e}")),
            registry,
        };
        let _ = m.registry.register(Box::new(m.checkpoint_seconds.clone()));
        let _ = m.registry.register(Box::new(m.checkpoint_failures.clone()));
        let build = IntGaugeVec::new(
            Opts::new("yujing_build_info", "Version of the running build."),
            &["version"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for c in [
            &m.events,
            &m.dead_letters,
            &m.windows,
            &m.alerts,
            &m.task_events,
        ] {
            let _ = m.registry.register(Box::new(c.clone()));
        }
        let _ = m.registry.register(Box::new(m.incidents_firing.clone()));
        let _ = m.registry.register(Box::new(m.ready.clone()));
        let _ = m.registry.register(Box::new(build));
        m
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

//! The engine's Prometheus metrics, defined in one place. Labels are bounded sets
//! (feeds, reasons, pipelines, levels, tracks, departments of the routing table,
//! topics and partitions); never event ids, incident ids or free text.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::core::time::Millis;

pub struct Metrics {
    registry: Registry,
    /// Every family's name, for [`Metrics::names`].
    names: Vec<String>,
    pub events: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub windows: IntCounterVec,
    pub window_close_latency: HistogramVec,
    pub watermark: IntGaugeVec,
    pub watermark_lag: prometheus::GaugeVec,
    pub alerts: IntCounterVec,
    pub incidents_firing: IntGaugeVec,
    pub detector_warming_up: IntGaugeVec,
    pub task_events: IntCounterVec,
    pub tasks_open: IntGaugeVec,
    pub tasks_overdue: IntGaugeVec,
    pub task_acknowledge_seconds: HistogramVec,
    pub task_complete_seconds: HistogramVec,
    pub consumer_lag: IntGaugeVec,
    pub ready: IntGauge,
    pub checkpoint_seconds: Histogram,
    pub checkpoint_failures: IntCounter,
    pub checkpoint_bytes: IntGauge,
    /// With state per partition: the tasks this instance runs, and those that failed.
    pub partition_tasks: IntGauge,
    pub partition_task_failures: IntCounter,
    pub alertmanager_posts: IntCounterVec,
    pub outputs_truncated: IntCounterVec,
    pub outputs_failed: IntCounterVec,
    pub pipeline_errors: IntCounterVec,
    pub pipeline_state_discarded: IntCounterVec,
    pub checkpoints_set_aside: IntCounter,
    pub reloads: IntCounterVec,
    pub pipeline_definition: IntGaugeVec,
    pub reference_version: IntGaugeVec,
    pub reference_rows: IntGaugeVec,
    pub reference_reloads: IntCounterVec,
    /// Watermarks in event-time milliseconds, so the lag is computed when scraped.
    watermarks: Mutex<BTreeMap<String, Millis>>,
    /// The departments a `department` label may name (the routing table's).
    departments: std::collections::BTreeSet<String>,
}

impl Metrics {
    /// The definitions running now, replacing those before; for a redeploy,
    /// also its result (`applied`, `refused`).
    pub fn definitions(&self, running: &[(String, String)], result: Option<&str>) {
        if let Some(result) = result {
            self.reloads.with_label_values(&[result]).inc();
        }
        if result != Some("refused") {
            self.pipeline_definition.reset();
            for (pipeline, definition) in running {
                self.pipeline_definition
                    .with_label_values(&[pipeline.as_str(), definition.as_str()])
                    .set(1);
            }
        }
    }
}

impl Metrics {
    /// The version and size of each reference table in use now.
    pub fn reference_tables(&self, tables: &crate::reference::Tables) {
        for (name, t) in tables {
            self.reference_version
                .with_label_values(&[name.as_str()])
                .set(t.version() as i64);
            self.reference_rows
                .with_label_values(&[name.as_str()])
                .set(t.rows() as i64);
            // Present from the start, so a rule sees the first failure as an increase.
            for result in ["changed", "failed"] {
                self.reference_reloads
                    .with_label_values(&[name.as_str(), result]);
            }
        }
    }
}

// Names, help and labels are constants of this module, so creating a metric
// cannot fail; a mistake in them shows in the first test that builds `Metrics`.
trait Made<T> {
    fn made(self, name: &str) -> T;
}

impl<T> Made<T> for prometheus::Result<T> {
    fn made(self, name: &str) -> T {
        self.unwrap_or_else(|e| panic!("metric {name}: {e}"))
    }
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).made(name)
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).made(name)
}

fn histogram(name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).made(name)
}

/// Seconds from 1 ms to 10 s.
fn latency_buckets() -> Vec<f64> {
    vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
}

/// Seconds from 5 minutes to 15 days: the span of task deadlines.
fn response_buckets() -> Vec<f64> {
    [
        5.0, 15.0, 30.0, 60.0, 120.0, 240.0, 480.0, 1440.0, 4320.0, 10080.0, 21600.0,
    ]
    .iter()
    .map(|minutes| minutes * 60.0)
    .collect()
}

impl Metrics {
    // layout: long — one entry per metric family, a table read top to bottom;
    // the names are a contract with the dashboards and the alerting rules.
    pub fn new() -> Self {
        let checkpoint_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "yujing_checkpoint_duration_seconds",
                "Time to write a checkpoint and commit its offsets.",
            )
            .buckets(latency_buckets()),
        )
        .made("checkpoint");
        let m = Metrics {
            registry: Registry::new(),
            names: Vec::new(),
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
            window_close_latency: histogram(
                "yujing_window_close_latency_seconds",
                "From the watermark passing a window's end to its alerts emitted, per pipeline.",
                &["pipeline"],
                latency_buckets(),
            ),
            watermark: gauge(
                "yujing_watermark_timestamp_seconds",
                "A pipeline's watermark: event time up to which its windows are complete.",
                &["pipeline"],
            ),
            watermark_lag: prometheus::GaugeVec::new(
                Opts::new(
                    "yujing_watermark_lag_seconds",
                    "Wall-clock time minus the pipeline's watermark, when scraped.",
                ),
                &["pipeline"],
            )
            .made("watermark_lag"),
            alerts: counter(
                "yujing_alerts_total",
                "Alert events raised, per pipeline, level and status.",
                &["pipeline", "level", "status"],
            ),
            incidents_firing: gauge(
                "yujing_incidents_firing",
                "Incidents firing now, per pipeline and level.",
                &["pipeline", "level"],
            ),
            detector_warming_up: gauge(
                "yujing_detector_series_warming_up",
                "Series of the pipeline's last closed window whose baseline was still too short to judge.",
                &["pipeline"],
            ),
            task_events: counter(
                "yujing_task_events_total",
                "Task changes, per kind of change.",
                &["change"],
            ),
            tasks_open: gauge(
                "yujing_tasks_open",
                "Tasks not yet done, per track and department.",
                &["track", "department"],
            ),
            tasks_overdue: gauge(
                "yujing_tasks_overdue",
                "Tasks not acknowledged by their deadline (overdue or escalated), per track and department.",
                &["track", "department"],
            ),
            task_acknowledge_seconds: histogram(
                "yujing_task_acknowledge_seconds",
                "From a task opening to its first acknowledgement, per department it opened for (task clock).",
                &["department"],
                response_buckets(),
            ),
            task_complete_seconds: histogram(
                "yujing_task_complete_seconds",
                "From a task opening to its being done, per department it opened for (task clock).",
                &["department"],
                response_buckets(),
            ),
            consumer_lag: gauge(
                "yujing_kafka_consumer_lag_messages",
                "Messages on a partition not yet consumed (high watermark minus position).",
                &["topic", "partition"],
            ),
            ready: IntGauge::new(
                "yujing_ready",
                "1 once state is restored and partitions are assigned.",
            )
            .made("ready"),
            checkpoint_seconds,
            checkpoint_failures: IntCounter::new(
                "yujing_checkpoint_failures_total",
                "Checkpoints that could not be written.",
            )
            .made("checkpoint_failures"),
            checkpoint_bytes: IntGauge::new(
                "yujing_checkpoint_bytes",
                "Size of the latest checkpoint (open windows' states included).",
            )
            .made("checkpoint_bytes"),
            partition_tasks: IntGauge::new(
                "yujing_partition_tasks_running",
                "With [state] per_partition: the tasks (partitions' engines) this instance runs.",
            )
            .made("partition_tasks"),
            partition_task_failures: IntCounter::new(
                "yujing_partition_task_failures_total",
                "With [state] per_partition: tasks that stopped on an error (started again after 5 s).",
            )
            .made("partition_task_failures"),
            alertmanager_posts: counter(
                "yujing_alertmanager_posts_total",
                "Posts of alerts to Alertmanager, per outcome (ok, error).",
                &["outcome"],
            ),
            outputs_truncated: counter(
                "yujing_outputs_truncated_total",
                "Alerts, task events and dead letters whose long values were cut to fit max_output_bytes, per output.",
                &["output"],
            ),
            outputs_failed: counter(
                "yujing_outputs_failed_total",
                "Output records the broker refused or that could not be made to fit, per output and reason.",
                &["output", "reason"],
            ),
            pipeline_errors: counter(
                "yujing_pipeline_errors_total",
                "Windows a pipeline's SQL failed on at run time (the other pipelines went on), per pipeline.",
                &["pipeline"],
            ),
            pipeline_state_discarded: counter(
                "yujing_pipeline_state_discarded_total",
                "Pipelines whose checkpointed state was not restored because their definition changed.",
                &["pipeline"],
            ),
            checkpoints_set_aside: IntCounter::new(
                "yujing_checkpoints_set_aside_total",
                "Corrupt or incompatible checkpoint files moved aside at start-up.",
            )
            .made("checkpoints_set_aside"),
            reloads: counter(
                "yujing_reloads_total",
                "Live redeploys of the pipelines and routing table (SIGHUP), applied or refused.",
                &["result"],
            ),
            pipeline_definition: gauge(
                "yujing_pipeline_definition",
                "1 for each running pipeline with the fingerprint of its definition.",
                &["pipeline", "definition"],
            ),
            reference_version: gauge(
                "yujing_reference_table_version",
                "Version of each reference table in use: 1 when first read, one more each time its file is read with new contents.",
                &["table"],
            ),
            reference_rows: gauge(
                "yujing_reference_table_rows",
                "Rows of each reference table's version in use.",
                &["table"],
            ),
            reference_reloads: counter(
                "yujing_reference_table_reloads_total",
                "Reference files read again after a change (file watch or SIGHUP): changed, or failed (the version before stays in use).",
                &["table", "result"],
            ),
            watermarks: Mutex::new(BTreeMap::new()),
            departments: Default::default(),
        };
        let mut m = m;
        m.register_all();
        m
    }

    /// Registers every family (and the build info) with the registry.
    fn register_all(&mut self) {
        let build = gauge(
            "yujing_build_info",
            "Version of the running build.",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(self.events.clone()),
            Box::new(self.dead_letters.clone()),
            Box::new(self.windows.clone()),
            Box::new(self.window_close_latency.clone()),
            Box::new(self.watermark.clone()),
            Box::new(self.watermark_lag.clone()),
            Box::new(self.alerts.clone()),
            Box::new(self.incidents_firing.clone()),
            Box::new(self.detector_warming_up.clone()),
            Box::new(self.task_events.clone()),
            Box::new(self.tasks_open.clone()),
            Box::new(self.tasks_overdue.clone()),
            Box::new(self.task_acknowledge_seconds.clone()),
            Box::new(self.task_complete_seconds.clone()),
            Box::new(self.consumer_lag.clone()),
            Box::new(self.ready.clone()),
            Box::new(self.checkpoint_seconds.clone()),
            Box::new(self.checkpoint_failures.clone()),
            Box::new(self.checkpoint_bytes.clone()),
            Box::new(self.partition_tasks.clone()),
            Box::new(self.partition_task_failures.clone()),
            Box::new(self.alertmanager_posts.clone()),
            Box::new(self.outputs_truncated.clone()),
            Box::new(self.outputs_failed.clone()),
            Box::new(self.pipeline_errors.clone()),
            Box::new(self.pipeline_state_discarded.clone()),
            Box::new(self.checkpoints_set_aside.clone()),
            Box::new(self.reloads.clone()),
            Box::new(self.pipeline_definition.clone()),
            Box::new(self.reference_version.clone()),
            Box::new(self.reference_rows.clone()),
            Box::new(self.reference_reloads.clone()),
            Box::new(build),
        ];
        for c in collectors {
            let names: Vec<String> = c.desc().iter().map(|d| d.fq_name.clone()).collect();
            self.registry
                .register(c)
                .unwrap_or_else(|e| panic!("registering {names:?}: {e}"));
            self.names.extend(names);
        }
        // process_cpu_seconds_total, process_resident_memory_bytes and the other
        // standard process_* families: CPU per event and memory without a node exporter.
        #[cfg(target_os = "linux")]
        if let Err(e) = self.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )) {
            tracing::warn!(error = %e, "no process metrics");
        }
    }

    /// Bounds the `department` label to these names (the routing table's).
    pub fn with_departments(mut self, departments: std::collections::BTreeSet<String>) -> Self {
        // Every department's response-time series exists from the start (empty),
        // so a dashboard shows who has not answered yet, not nothing.
        for d in departments.iter().map(String::as_str).chain(["other"]) {
            self.task_acknowledge_seconds.with_label_values(&[d]);
            self.task_complete_seconds.with_label_values(&[d]);
        }
        self.departments = departments;
        self
    }

    /// The `department` label for a task's department: itself if the routing
    /// table names it, else `other` — a department filled in from data or given
    /// by a reassignment never becomes a series of its own.
    pub fn department_label<'a>(&self, department: &'a str) -> &'a str {
        if self.departments.contains(department) {
            department
        } else {
            "other"
        }
    }

    /// A pipeline's watermark moved to `ms` (event time).
    pub fn set_watermark(&self, pipeline: &str, ms: Millis) {
        self.watermark
            .with_label_values(&[pipeline])
            .set(ms.div_euclid(1000));
        if let Ok(mut w) = self.watermarks.lock() {
            w.insert(pipeline.to_string(), ms);
        }
    }

    /// The name of every metric family, including those with no series yet.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let now = crate::core::time::wall_now();
        if let Ok(w) = self.watermarks.lock() {
            for (pipeline, ms) in w.iter() {
                self.watermark_lag
                    .with_label_values(&[pipeline])
                    .set((now - ms) as f64 / 1000.0);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_named_and_rendered_once_it_has_a_series() {
        let m = Metrics::new();
        assert!(m.names().iter().any(|n| n == "yujing_tasks_overdue"));
        assert!(m.names().iter().all(|n| n.starts_with("yujing_")));
        #[cfg(target_os = "linux")]
        assert!(m.render().contains("process_cpu_seconds_total"));
        m.set_watermark("p", 1_000_000);
        let text = m.render();
        assert!(text.contains("yujing_watermark_timestamp_seconds{pipeline=\"p\"} 1000"));
        // Lag is now minus 1970-01-01T00:16:40Z: large and positive.
        let lag: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("yujing_watermark_lag_seconds{pipeline=\"p\"} "))
            .and_then(|v| v.parse().ok())
            .expect("lag");
        assert!(lag > 1.7e9, "{lag}");
        assert!(text.contains("yujing_build_info{version="));
    }
}

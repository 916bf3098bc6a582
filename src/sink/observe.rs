//! A sink in front of another that makes the run observable: it counts what passes
//! into the Prometheus metrics, keeps the HTTP API's view of open incidents and
//! tasks, and hands alerts and task events to Alertmanager when one is configured.
//! The daemon and the demo put it in front of their own sinks, so both serve the
//! same metrics and API.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use super::{Progress, Sink};
use crate::alert::{Alert, Finding, Status};
use crate::core::deadletter::DeadLetter;
use crate::error::Result;
use crate::metrics::Metrics;
use crate::sink::alertmanager::Notifier;
use crate::task::{Change, Task, TaskEvent, TaskStatus};
use crate::window::WindowResult;

pub use super::view::ApiView;

pub struct Observed<S> {
    pub inner: S,
    pub metrics: Arc<Metrics>,
    pub view: Arc<Mutex<ApiView>>,
    pub alertmanager: Option<Arc<Notifier>>,
    /// The incidents firing and the tasks this sink put in the view: several
    /// engines (a daemon's tasks) may share one view.
    own_incidents: BTreeSet<String>,
    own_tasks: BTreeSet<String>,
}

/// What an [`Observed`] sink reports to: shared with the HTTP server.
#[derive(Clone, Default)]
pub struct Observers {
    pub metrics: Arc<Metrics>,
    pub view: Arc<Mutex<ApiView>>,
    pub alertmanager: Option<Arc<Notifier>>,
}

impl<S: Sink> Observed<S> {
    pub fn new(inner: S, o: &Observers) -> Self {
        Observed {
            inner,
            metrics: o.metrics.clone(),
            view: o.view.clone(),
            alertmanager: o.alertmanager.clone(),
            own_incidents: BTreeSet::new(),
            own_tasks: BTreeSet::new(),
        }
    }
}

impl<S> Observed<S> {
    /// After a restart: the open incidents and tasks the checkpoint remembers go
    /// back into the API's view, the gauges and Alertmanager (which would
    /// otherwise let them time out while they still fire). Counters stay as they are.
    pub fn restore(&mut self, incidents: Vec<Alert>, tasks: Vec<Task>) {
        let Ok(mut view) = self.view.lock() else {
            return;
        };
        for a in incidents {
            self.metrics
                .incidents_firing
                .with_label_values(&[a.pipeline.as_str(), a.level.as_str()])
                .inc();
            if let Some(am) = &self.alertmanager {
                am.alert(&a);
            }
            self.own_incidents.insert(a.incident_id.clone());
            view.incidents.insert(a.incident_id.clone(), a);
        }
        for t in tasks {
            count_task(&self.metrics, &t, 1);
            if let Some(am) = &self.alertmanager {
                am.task(&t);
            }
            self.own_tasks.insert(t.task_id.clone());
            view.tasks.insert(t.task_id.clone(), t);
        }
    }

    /// The incidents firing and the tasks not done that this sink reported, as
    /// the view holds them now: what a checkpoint keeps. Tasks the view no
    /// longer keeps are forgotten here too.
    pub fn own_view(&mut self) -> (Vec<Alert>, Vec<Task>) {
        let Ok(view) = self.view.lock() else {
            return Default::default();
        };
        self.own_tasks.retain(|id| view.tasks.contains_key(id));
        let incidents = (self.own_incidents.iter())
            .filter_map(|id| view.incidents.get(id).cloned())
            .collect();
        // Done tasks are history: the tasks topic has them.
        let tasks = (self.own_tasks.iter())
            .filter_map(|id| view.tasks.get(id))
            .filter(|t| t.status != TaskStatus::Done)
            .cloned()
            .collect();
        (incidents, tasks)
    }

    /// Takes what this sink reported out of the shared view and the gauges:
    /// its engine stopped here (a task moved to another instance).
    pub fn withdraw(&mut self) {
        let Ok(mut view) = self.view.lock() else {
            return;
        };
        for id in std::mem::take(&mut self.own_incidents) {
            if let Some(a) = view.incidents.remove(&id) {
                self.metrics
                    .incidents_firing
                    .with_label_values(&[a.pipeline.as_str(), a.level.as_str()])
                    .dec();
            }
        }
        for id in std::mem::take(&mut self.own_tasks) {
            if let Some(t) = view.tasks.remove(&id) {
                count_task(&self.metrics, &t, -1);
            }
            view.history.remove(&id);
        }
    }
}

/// Time to acknowledge (a task is acknowledged once) and to complete, per the
/// department the task opened for, on the task clock.
fn respond_time(m: &Metrics, e: &TaskEvent) {
    let t = &e.task;
    let histogram = match e.change {
        Change::Acknowledged => &m.task_acknowledge_seconds,
        Change::Done => &m.task_complete_seconds,
        _ => return,
    };
    let seconds = (e.time - t.opened_at).max(0) as f64 / 1000.0;
    histogram
        .with_label_values(&[m.department_label(t.owner())])
        .observe(seconds);
}

/// Adds `step` (1 or -1) for `t` to the open and overdue gauges of its track and
/// department. Both series exist (at 0) for every track and department seen.
fn count_task(m: &Metrics, t: &Task, step: i64) {
    let labels = [t.track.as_str(), m.department_label(&t.department)];
    let (open, late) = (
        m.tasks_open.with_label_values(&labels),
        m.tasks_overdue.with_label_values(&labels),
    );
    if t.status != TaskStatus::Done {
        open.add(step);
    }
    // Past a deadline without acknowledgement: overdue, or moved on by escalation.
    if matches!(t.status, TaskStatus::Overdue | TaskStatus::Escalated) {
        late.add(step);
    }
}

impl<S: Sink> Sink for Observed<S> {
    fn window(&mut self, window: &WindowResult, ordered: bool) -> Result<()> {
        self.metrics
            .windows
            .with_label_values(&[window.pipeline.as_ref()])
            .inc();
        self.inner.window(window, ordered)
    }

    fn dead_letter(&mut self, dead: &DeadLetter) -> Result<()> {
        self.metrics
            .dead_letters
            .with_label_values(&[dead.feed.as_str(), dead.reason.as_str()])
            .inc();
        if dead.reason == crate::core::deadletter::Reason::PipelineError
            && let Some(p) = &dead.pipeline
        {
            self.metrics.pipeline_errors.with_label_values(&[p]).inc();
        }
        self.inner.dead_letter(dead)
    }

    fn alert(&mut self, alert: &Alert) -> Result<()> {
        let status = match alert.status {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        };
        self.metrics
            .alerts
            .with_label_values(&[alert.pipeline.as_str(), alert.level.as_str(), status])
            .inc();
        if let Ok(mut view) = self.view.lock() {
            let firing = &self.metrics.incidents_firing;
            let before = match alert.status {
                Status::Firing => view
                    .incidents
                    .insert(alert.incident_id.clone(), alert.clone()),
                Status::Resolved => view.incidents.remove(&alert.incident_id),
            };
            match alert.status {
                Status::Firing => self.own_incidents.insert(alert.incident_id.clone()),
                Status::Resolved => self.own_incidents.remove(&alert.incident_id),
            };
            if let Some(b) = before {
                firing
                    .with_label_values(&[b.pipeline.as_str(), b.level.as_str()])
                    .dec();
            }
            if alert.status == Status::Firing {
                firing
                    .with_label_values(&[alert.pipeline.as_str(), alert.level.as_str()])
                    .inc();
            }
        }
        if let Some(am) = &self.alertmanager {
            am.alert(alert);
        }
        self.inner.alert(alert)
    }

    fn task(&mut self, event: &TaskEvent) -> Result<()> {
        let change = crate::task::wire_name(event.change);
        self.metrics
            .task_events
            .with_label_values(&[change.as_str()])
            .inc();
        respond_time(&self.metrics, event);
        if let Ok(mut view) = self.view.lock() {
            let t = &event.task;
            self.own_tasks.insert(t.task_id.clone());
            let before = view.task_event(event);
            // Move the task between the gauges' series: its department and status
            // may both have changed.
            if let Some(b) = &before {
                count_task(&self.metrics, b, -1);
            }
            count_task(&self.metrics, t, 1);
        }
        if let Some(am) = &self.alertmanager {
            am.task(&event.task);
        }
        self.inner.task(event)
    }

    fn points(&mut self, pipeline: &str, findings: &[Finding]) -> Result<()> {
        if let Ok(mut view) = self.view.lock() {
            view.points(pipeline, findings);
        }
        self.inner.points(pipeline, findings)
    }

    fn ingested(&mut self, feed: &str, events: u64) -> Result<()> {
        if let Ok(mut view) = self.view.lock() {
            view.ingested(feed, events);
        }
        self.metrics
            .events
            .with_label_values(&[feed])
            .inc_by(events);
        self.inner.ingested(feed, events)
    }

    fn definitions(&mut self, running: &[(String, String)], result: Option<&str>) {
        self.metrics.definitions(running, result);
        self.inner.definitions(running, result);
    }

    fn progress(&mut self, p: &Progress) -> Result<()> {
        let m = &self.metrics;
        if let Some(w) = p.watermark {
            m.set_watermark(p.pipeline, w);
            if let Ok(mut view) = self.view.lock() {
                view.watermarks.insert(p.pipeline.to_string(), w);
            }
        }
        for _ in 0..p.closed {
            m.window_close_latency
                .with_label_values(&[p.pipeline])
                .observe(p.latency.as_secs_f64());
        }
        if let Some(n) = p.warming_up {
            m.detector_warming_up
                .with_label_values(&[p.pipeline])
                .set(n as i64);
        }
        self.inner.progress(p)
    }
}

//! Pushes alerts to Alertmanager's `POST /api/v2/alerts`, as Prometheus does.
//!
//! Labels: `alertname` (the pipeline), `severity` (the level), `feed`, and the
//! alert's key columns; annotations carry the summary, the measure, the incident
//! and the dispatch's task ids. Alertmanager identifies an alert by its labels, so
//! a change of level ends the old alert (`endsAt`) and starts the new one; a
//! resolution sends `endsAt`. Firing alerts are sent again every
//! `resend_interval`, before Alertmanager's `resolve_timeout` would end them.
//!
//! Each open task is an alert of its own (`alertname="yujing_task"`), labelled
//! with its `department`, `track`, `task_id` and `dispatch_id` (and the key's
//! place), so a routing tree sends each to its department's receiver; it fires
//! until the task is done. An escalation moves it to another department: a new
//! label set, so the old department's alert ends and the next one's starts.
//!
//! The posting runs on a thread of its own, so a slow or absent Alertmanager
//! never holds the engine back; a failed post is retried with the next one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::alert::{Alert, Status};
use crate::core::key::Cell;
use crate::core::time::{Millis, format_rfc3339, parse_rfc3339, wall_now};
use crate::metrics::Metrics;
use crate::task::Task;

/// One alert as Alertmanager's API takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AmAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

/// A label name Alertmanager accepts: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn text(v: &Cell) -> String {
    match v {
        Cell::Text(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The Alertmanager form of an alert, without `endsAt`. `startsAt` is the end of
/// the alert's window (when it could first be known), but never in the future.
pub fn to_alertmanager(alert: &Alert, now: Millis) -> AmAlert {
    let mut labels = BTreeMap::new();
    for (k, v) in alert.key.iter() {
        let mut name = label_name(k);
        if matches!(name.as_str(), "alertname" | "severity" | "feed") {
            name = format!("key_{name}");
        }
        labels.insert(name, text(v));
    }
    labels.insert("alertname".into(), alert.pipeline.clone());
    labels.insert("severity".into(), alert.level.as_str().into());
    labels.insert("feed".into(), alert.feeds.join(","));
    let m = &alert.measure;
    let mut annotations = BTreeMap::new();
    annotations.insert("summary".into(), alert.summary.clone());
    annotations.insert("value".into(), m.value.to_string());
    for (name, v) in [
        ("expected", m.expected),
        ("threshold", m.threshold),
        ("p_value", m.p_value),
        ("score", m.score),
    ] {
        if let Some(v) = v {
            annotations.insert(name.into(), v.to_string());
        }
    }
    annotations.insert("method".into(), m.method.clone());
    annotations.insert("incident_id".into(), alert.incident_id.clone());
    annotations.insert("alert_id".into(), alert.alert_id.clone());
    annotations.insert("window_start".into(), format_rfc3339(alert.window_start));
    annotations.insert("window_end".into(), format_rfc3339(alert.window_end));
    let starts = alert.window_end.min(now);
    AmAlert {
        labels,
        annotations,
        starts_at: format_rfc3339(starts),
        ends_at: None,
    }
}

/// The `alertname` of task alerts.
pub const TASK_ALERTNAME: &str = "yujing_task";

/// The Alertmanager form of an open task: its department, track and ids as
/// labels (with the key's columns), what to do by when as annotations.
pub fn task_to_alertmanager(t: &Task, now: Millis) -> AmAlert {
    let mut labels = BTreeMap::new();
    for (k, v) in t.key.iter() {
        labels.insert(format!("key_{}", label_name(k)), text(v));
        if matches!(k, "district" | "street" | "category") {
            labels.insert(k.to_string(), text(v));
        }
    }
    for (name, value) in [
        ("alertname", TASK_ALERTNAME),
        ("severity", t.level.as_str()),
        ("department", &t.department),
        ("track", t.track.as_str()),
        ("task_id", &t.task_id),
        ("dispatch_id", &t.dispatch_id),
        ("pipeline", &t.pipeline),
    ] {
        labels.insert(name.into(), value.to_string());
    }
    let status = crate::task::wire_name(t.status);
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "summary".into(),
        format!(
            "【{}】{}任务：{}，请于 {} 前签收，{} 前办结",
            t.level.zh(),
            t.track.zh(),
            t.department,
            format_rfc3339(t.deadline),
            format_rfc3339(t.complete_by)
        ),
    );
    annotations.insert("status".into(), status);
    annotations.insert("deadline".into(), format_rfc3339(t.deadline));
    annotations.insert("complete_by".into(), format_rfc3339(t.complete_by));
    annotations.insert("escalations".into(), t.escalations.to_string());
    annotations.insert("incident_id".into(), t.incident_id.clone());
    annotations.insert("alert_id".into(), t.alert_id.clone());
    AmAlert {
        labels,
        annotations,
        starts_at: format_rfc3339(t.opened_at.min(now)),
        ends_at: None,
    }
}

/// What the notifier remembers: the firing alerts, the tasks of each incident
/// and the open tasks' own alerts.
#[derive(Debug, Default)]
pub struct Book {
    firing: BTreeMap<String, AmAlert>,
    tasks: BTreeMap<String, BTreeSet<String>>,
    /// Task id → its alert, while the task is not done.
    open_tasks: BTreeMap<String, AmAlert>,
    /// Alerts to post, the latest version per label set.
    pending: BTreeMap<BTreeMap<String, String>, AmAlert>,
}

impl Book {
    pub fn alert(&mut self, alert: &Alert, now: Millis) {
        let id = &alert.incident_id;
        match alert.status {
            Status::Firing => {
                let mut next = to_alertmanager(alert, now);
                if let Some(tasks) = self.tasks.get(id) {
                    next.annotations.insert("task_ids".into(), join(tasks));
                }
                if let Some(prev) = self.firing.get(id)
                    && prev.labels != next.labels
                {
                    // A new level is a new alert for Alertmanager: end the old one.
                    let old = ended(prev, now);
                    self.queue(old);
                }
                self.pending.insert(next.labels.clone(), next.clone());
                self.firing.insert(id.clone(), next);
            }
            Status::Resolved => {
                if let Some(prev) = self.firing.remove(id) {
                    self.queue(ended(&prev, now));
                }
                self.tasks.remove(id);
            }
        }
    }

    pub fn task(&mut self, t: &Task, now: Millis) {
        self.task_alert(t, now);
        let ids = self.tasks.entry(t.incident_id.clone()).or_default();
        if !ids.insert(t.task_id.clone()) {
            return;
        }
        if let Some(a) = self.firing.get_mut(&t.incident_id) {
            a.annotations.insert("task_ids".into(), join(ids));
            a.annotations
                .insert("dispatch_id".into(), t.dispatch_id.clone());
            self.pending.insert(a.labels.clone(), a.clone());
        }
    }

    /// The task's own alert: fired (again, with its new state) while it is not
    /// done, ended when it is; a new department ends the old one's.
    fn task_alert(&mut self, t: &Task, now: Millis) {
        let before = self.open_tasks.remove(&t.task_id);
        if t.status == crate::task::TaskStatus::Done {
            if let Some(old) = before {
                self.queue(ended(&old, now));
            }
            return;
        }
        let mut next = task_to_alertmanager(t, now);
        if let Some(old) = before {
            if old.labels == next.labels {
                next.starts_at = old.starts_at;
            } else {
                self.queue(ended(&old, now));
                next.starts_at = format_rfc3339(now);
            }
        }
        self.queue(next.clone());
        self.open_tasks.insert(t.task_id.clone(), next);
    }

    /// To be posted: the latest version per label set.
    fn queue(&mut self, a: AmAlert) {
        self.pending.insert(a.labels.clone(), a);
    }

    /// Every firing alert, to be sent again.
    pub fn resend_all(&mut self) {
        for a in self.open_tasks.values() {
            self.pending.insert(a.labels.clone(), a.clone());
        }
        for a in self.firing.values() {
            self.pending.insert(a.labels.clone(), a.clone());
        }
    }

    pub fn pending(&self) -> Vec<AmAlert> {
        self.pending.values().cloned().collect()
    }
}

/// `a` ended now (never before it started).
fn ended(a: &AmAlert, now: Millis) -> AmAlert {
    AmAlert {
        ends_at: Some(format_rfc3339(
            now.max(parse_rfc3339(&a.starts_at).unwrap_or(now)),
        )),
        ..a.clone()
    }
}

fn join(ids: &BTreeSet<String>) -> String {
    ids.iter().cloned().collect::<Vec<_>>().join(",")
}

enum Notice {
    Alert(Box<Alert>),
    Task(Box<Task>),
}

/// The handle the sink holds; dropping it (or [`Notifier::close`]) sends what is
/// pending and stops the thread.
pub struct Notifier {
    tx: Option<Sender<Notice>>,
    thread: Option<JoinHandle<()>>,
    /// Closed by the thread when it ends. (In a mutex so the handle can be shared.)
    done: std::sync::Mutex<Receiver<()>>,
}

/// How long shutdown waits for the last post.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// Where alerts go and how the notifier proves who it is there.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    /// CA certificates (PEM) to trust for `https://`; Mozilla's roots when absent.
    pub ca_pem: Option<Vec<u8>>,
    /// The whole `Authorization` header value (`Basic …` or `Bearer …`).
    authorization: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        f.debug_struct("Target")
            .field("url", &self.url)
            .field("ca", &self.ca_pem.is_some())
            .field("auth", &self.authorization.is_some())
            .finish()
    }
}

impl Target {
    /// No TLS roots of our own, no credentials.
    pub fn plain(url: &str) -> Self {
        Target {
            url: url.to_string(),
            ca_pem: None,
            authorization: None,
        }
    }

    /// From `[alertmanager]`, with the password or token read from its secret.
    pub fn from_config(am: &crate::config::AlertmanagerConfig) -> crate::error::Result<Self> {
        use base64::Engine;
        let ca_pem = match &am.ca_file {
            Some(p) => Some(std::fs::read(p).map_err(|e| crate::error::Error::io(p, e))?),
            None => None,
        };
        let authorization = match (&am.username, &am.password_secret, &am.bearer_secret) {
            (Some(user), Some(secret), None) => {
                let password = crate::secret::require(secret, "the Alertmanager password")?;
                let pair = format!("{user}:{}", password.expose());
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            (None, None, Some(secret)) => {
                let token = crate::secret::require(secret, "the Alertmanager bearer token")?;
                Some(format!("Bearer {}", token.expose()))
            }
            (None, None, None) => None,
            _ => {
                return Err(crate::error::Error::Other(
                    "[alertmanager]: give `username` with `password_secret`, or `bearer_secret`, or neither"
                        .into(),
                ));
            }
        };
        Ok(Target {
            url: am.url.clone(),
            ca_pem,
            authorization,
        })
    }

    fn agent(&self, timeout: Duration) -> crate::error::Result<ureq::Agent> {
        let mut config = ureq::Agent::config_builder().timeout_global(Some(timeout));
        if let Some(pem) = &self.ca_pem {
            let certs = ureq::tls::parse_pem(pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| crate::error::Error::Other(format!("Alertmanager CA file: {e}")))?;
            if certs.is_empty() {
                return Err(crate::error::Error::Other(
                    "Alertmanager CA file holds no certificate".into(),
                ));
            }
            let tls = ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build();
            config = config.tls_config(tls);
        }
        Ok(config.build().into())
    }
}

impl Notifier {
    /// Starts the notifier's thread; an error if `target`'s CA file is not usable.
    pub fn start(
        target: Target,
        resend: Duration,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> crate::error::Result<Self> {
        let (tx, rx) = channel();
        let (done_tx, done) = channel::<()>();
        let agent = target.agent(timeout)?;
        let endpoint = Endpoint {
            url: format!("{}/api/v2/alerts", target.url.trim_end_matches('/')),
            authorization: target.authorization,
        };
        let thread = std::thread::Builder::new()
            .name("alertmanager".into())
            .spawn(move || {
                run(rx, &agent, &endpoint, resend, &metrics);
                drop(done_tx);
            })
            .ok();
        Ok(Notifier {
            tx: Some(tx),
            thread,
            done: std::sync::Mutex::new(done),
        })
    }

    pub fn alert(&self, alert: &Alert) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Notice::Alert(Box::new(alert.clone())));
        }
    }

    pub fn task(&self, task: &Task) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Notice::Task(Box::new(task.clone())));
        }
    }

    /// Sends what is pending (one attempt, for at most a few seconds) and stops.
    pub fn close(&mut self) {
        self.tx = None;
        let Some(t) = self.thread.take() else {
            return;
        };
        // Shutdown must not hang on an Alertmanager that does not answer.
        let waited = match self.done.lock() {
            Ok(done) => done.recv_timeout(CLOSE_WAIT),
            Err(_) => Err(RecvTimeoutError::Disconnected),
        };
        match waited {
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!("Alertmanager did not take the last alerts in time");
            }
            _ => {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.close();
    }
}

/// The alerts endpoint and the credentials sent to it.
struct Endpoint {
    url: String,
    authorization: Option<String>,
}

fn run(
    rx: Receiver<Notice>,
    agent: &ureq::Agent,
    endpoint: &Endpoint,
    resend: Duration,
    metrics: &Metrics,
) {
    let mut book = Book::default();
    let mut next_resend = Instant::now() + resend;
    let mut retry_at: Option<Instant> = None;
    loop {
        let wait = retry_at
            .unwrap_or(next_resend)
            .min(next_resend)
            .saturating_duration_since(Instant::now());
        let closed = receive(&rx, wait, &mut book);
        if Instant::now() >= next_resend {
            book.resend_all();
            next_resend = Instant::now() + resend;
        }
        let waiting = retry_at.is_some_and(|t| Instant::now() < t);
        if closed || !waiting {
            retry_at = if post(agent, endpoint, &mut book, metrics) {
                None
            } else {
                Some(Instant::now() + Duration::from_secs(1))
            };
        }
        if closed {
            return;
        }
    }
}

/// Takes what arrives within `wait`, and whatever else is queued, into the
/// book: one post carries it all. True once the sender has gone.
fn receive(rx: &Receiver<Notice>, wait: Duration, book: &mut Book) -> bool {
    let mut closed = false;
    match rx.recv_timeout(wait.max(Duration::from_millis(1))) {
        Ok(n) => apply(book, n),
        Err(RecvTimeoutError::Timeout) => {}
        Err(RecvTimeoutError::Disconnected) => closed = true,
    }
    loop {
        match rx.try_recv() {
            Ok(n) => apply(book, n),
            Err(std::sync::mpsc::TryRecvError::Empty) => return closed,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return true,
        }
    }
}

/// Posts what is pending; true if there was nothing to post or it was taken.
fn post(agent: &ureq::Agent, endpoint: &Endpoint, book: &mut Book, metrics: &Metrics) -> bool {
    let batch = book.pending();
    if batch.is_empty() {
        return true;
    }
    let Ok(body) = serde_json::to_vec(&batch) else {
        return false;
    };
    let mut request = agent
        .post(&endpoint.url)
        .header("content-type", "application/json");
    if let Some(auth) = &endpoint.authorization {
        request = request.header("authorization", auth);
    }
    match request.send(&body[..]) {
        Ok(_) => {
            metrics.alertmanager_posts.with_label_values(&["ok"]).inc();
            book.pending.clear();
            true
        }
        Err(e) => {
            metrics
                .alertmanager_posts
                .with_label_values(&["error"])
                .inc();
            tracing::warn!(error = %e, alerts = batch.len(), "posting to Alertmanager; will retry");
            false
        }
    }
}

fn apply(book: &mut Book, notice: Notice) {
    match notice {
        Notice::Alert(a) => book.alert(&a, wall_now()),
        Notice::Task(t) => book.task(&t, wall_now()),
    }
}

#[cfg(test)]
mod tests;

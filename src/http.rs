//! The daemon's HTTP server (axum): `/metrics` in the Prometheus text format,
//! `/healthz`, `/readyz` (ready once partitions are assigned), `GET /api/alerts`
//! (open incidents), `GET /api/tasks`, and `POST /api/tasks/{id}` (acknowledge,
//! done, reassign, note) guarded by a bearer token.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::sink::observe::{ApiView, Observers};
use crate::task::Action;
use crate::task::command::Update;

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub view: Arc<Mutex<ApiView>>,
    pub ready: Arc<AtomicBool>,
    pub token: Option<String>,
    pub updates: Sender<Update>,
}

#[derive(Debug, Deserialize)]
struct UpdateBody {
    action: Action,
    actor: String,
    department: Option<String>,
    note: Option<String>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/alerts", get(alerts))
        .route("/api/tasks", get(tasks))
        .route("/api/tasks/{id}", post(update_task))
        .with_state(state)
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        s.metrics.render(),
    )
        .into_response()
}

async fn readyz(State(s): State<AppState>) -> Response {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn alerts(State(s): State<AppState>) -> Response {
    let view = s
        .view
        .lock()
        .map(|v| v.incidents.values().cloned().collect::<Vec<_>>());
    match view {
        Ok(list) => Json(list).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn tasks(State(s): State<AppState>) -> Response {
    let view = s
        .view
        .lock()
        .map(|v| v.tasks.values().cloned().collect::<Vec<_>>());
    match view {
        Ok(list) => Json(list).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn update_task(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Option<Json<UpdateBody>>,
) -> Response {
    let Some(token) = &s.token else {
        return (StatusCode::FORBIDDEN, "no API token is configured\n").into_response();
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given != Some(token.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required\n",
        )
            .into_response();
    }
    let Some(Json(body)) = body else {
        return (
            StatusCode::BAD_REQUEST,
            "expected a JSON body with action and actor\n",
        )
            .into_response();
    };
    let known = s
        .view
        .lock()
        .map(|v| v.tasks.contains_key(&id))
        .unwrap_or(false);
    if !known {
        return (StatusCode::NOT_FOUND, format!("no task `{id}`\n")).into_response();
    }
    let update = Update {
        task_id: id,
        action: body.action,
        actor: body.actor,
        department: body.department,
        note: body.note,
    };
    match s.updates.send(update) {
        Ok(()) => (StatusCode::ACCEPTED, "queued\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
    }
}

/// Whether the run is ready (`/readyz`, `yujing_ready`); changes are logged.
#[derive(Clone)]
pub struct Readiness {
    flag: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl Readiness {
    pub fn set(&self, now: bool) {
        if self.flag.swap(now, Ordering::Relaxed) != now {
            self.metrics.ready.set(i64::from(now));
            tracing::info!(ready = now, "readiness");
        }
    }
}

/// Serves the observers' metrics and API view on `listen` (see [`spawn`]).
/// Returns the readiness to set and the task updates the API accepts (with a
/// `token` only: without one it refuses them).
pub fn serve(
    listen: &str,
    observers: &Observers,
    token: Option<String>,
    stop: Arc<AtomicBool>,
) -> Result<(Readiness, Receiver<Update>)> {
    let ready = Arc::new(AtomicBool::new(false));
    let (updates, received) = mpsc::channel();
    spawn(
        listen,
        AppState {
            metrics: observers.metrics.clone(),
            view: observers.view.clone(),
            ready: ready.clone(),
            token,
            updates,
        },
        stop,
    )?;
    let readiness = Readiness {
        flag: ready,
        metrics: observers.metrics.clone(),
    };
    Ok((readiness, received))
}

/// Starts the HTTP server and the signal handlers on a thread of their own;
/// SIGTERM or SIGINT sets `stop`. Returns once the server listens.
pub fn spawn(listen: &str, state: AppState, stop: Arc<AtomicBool>) -> Result<()> {
    let (bound_tx, bound_rx) = mpsc::channel::<std::result::Result<(), String>>();
    let listen = listen.to_string();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = bound_tx.send(Err(e.to_string()));
                return;
            }
        };
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::bind(&listen).await {
                Ok(l) => l,
                Err(e) => {
                    let _ = bound_tx.send(Err(format!("listening on {listen}: {e}")));
                    return;
                }
            };
            let _ = bound_tx.send(Ok(()));
            let signals = stop.clone();
            tokio::spawn(async move {
                let term = async {
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(mut s) => {
                            s.recv().await;
                        }
                        Err(_) => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = term => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                signals.store(true, Ordering::Relaxed);
            });
            if let Err(e) = axum::serve(listener, router(state)).await {
                tracing::error!(error = %e, "http server");
            }
        });
    });
    match bound_rx.recv() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Other(e)),
        Err(_) => Err(Error::Other("the HTTP server did not start".into())),
    }
}

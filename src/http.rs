//! The daemon's HTTP server (axum): `/metrics` in the Prometheus text format,
//! `/healthz`, `/readyz` (ready once partitions are assigned), `GET /api/alerts`
//! (open incidents), `GET /api/tasks`, and `POST /api/tasks/{id}` (acknowledge,
//! done, reassign, note) guarded by a bearer token.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::metrics::Metrics;
use crate::sink::kafka::ApiView;
use crate::task::Action;

/// A task update from the API, for the engine loop to apply at its current time.
#[derive(Debug, Clone)]
pub struct ApiUpdate {
    pub task_id: String,
    pub action: Action,
    pub actor: String,
    pub department: Option<String>,
    pub note: Option<String>,
}

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub view: Arc<Mutex<ApiView>>,
    pub ready: Arc<AtomicBool>,
    pub token: Option<String>,
    pub updates: Sender<ApiUpdate>,
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
    let update = ApiUpdate {
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

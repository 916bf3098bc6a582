//! The HTTP server (axum, HTTPS with rustls when given a certificate):
//! `/healthz` and `/readyz` for probes, open to all; `/metrics` in the
//! Prometheus text format, behind its own bearer token when one is configured;
//! `GET /api/alerts` (open incidents), `GET /api/tasks`, and
//! `POST /api/tasks/{id}` (acknowledge, done, reassign, note), every `/api/*`
//! route behind a token of [`access`]; the duty console under `/console`
//! ([`console`]), signed in with the same tokens. Tokens are checked before a
//! body is read; bodies are capped and requests time out.

pub mod access;
pub mod console;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, OptionalFromRequest, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use self::access::{Access, Caller};
use crate::driver::ReloadRequests;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::sink::observe::{ApiView, Observers};
use crate::task::Action;
use crate::task::command::Update;

/// How the server guards what it serves.
#[derive(Debug)]
pub struct Guard {
    pub access: Arc<Access>,
    /// Departments a task may be reassigned to (those of the routing table); any
    /// when empty.
    pub departments: BTreeSet<String>,
    /// HTTPS certificate chain and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// The processing clock: "now" on the console's pages.
    pub clock: crate::core::time::Clock,
    /// Live redeploys (`POST /api/reload`), where the daemon offers them.
    pub reload: Option<Arc<ReloadRequests>>,
}

impl Guard {
    /// From `[http]`: tokens read from their secrets, the timeout parsed.
    pub fn from_config(http: &crate::config::HttpConfig) -> Result<Self> {
        Self::with_access(Access::from_config(http)?, http)
    }

    /// `access`, with the rest of `http` (limits, HTTPS).
    pub fn with_access(access: Access, http: &crate::config::HttpConfig) -> Result<Self> {
        let timeout =
            crate::core::time::parse_duration(&http.request_timeout).map_err(Error::Other)?;
        Ok(Guard {
            access: Arc::new(access),
            departments: BTreeSet::new(),
            tls: http.tls_cert.clone().zip(http.tls_key.clone()),
            request_timeout: Duration::from_millis(timeout.max(1) as u64),
            max_body_bytes: http.max_body_bytes,
            clock: crate::core::time::Clock::Wall,
            reload: None,
        })
    }
}

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub view: Arc<Mutex<ApiView>>,
    pub ready: Arc<AtomicBool>,
    pub access: Arc<Access>,
    pub departments: Arc<BTreeSet<String>>,
    pub updates: Sender<Update>,
    pub clock: crate::core::time::Clock,
    /// Console cookies only over HTTPS.
    pub secure_cookies: bool,
    pub reload: Option<Arc<ReloadRequests>>,
}

/// A task action. The actor is the token's name; an `actor` in the body is ignored.
#[derive(Debug, Deserialize)]
struct UpdateBody {
    action: Action,
    department: Option<String>,
    note: Option<String>,
}

pub fn router(state: AppState, guard: &Guard) -> Router {
    let api = Router::new()
        .route("/api/alerts", get(alerts))
        .route("/api/tasks", get(tasks))
        .route("/api/tasks/{id}", post(update_task))
        .route("/api/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let console = Router::new()
        .route("/console", get(console::overview))
        .route("/console/incidents/{id}", get(console::incident))
        .route("/console/tasks", get(console::tasks))
        .route("/console/tasks/{id}", post(console::act))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            console::signed_in,
        ))
        .route(
            "/console/login",
            get(console::login_page).post(console::login),
        )
        .route("/console/logout", get(console::logout));
    let metrics = Router::new()
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), metrics_auth));
    let timeout = guard.request_timeout;
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(api)
        .merge(console)
        .merge(metrics)
        .layer(DefaultBodyLimit::max(guard.max_body_bytes))
        .layer(middleware::from_fn(
            move |req: Request, next: Next| async move {
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(response) => response,
                    Err(_) => (StatusCode::REQUEST_TIMEOUT, "request timed out\n").into_response(),
                }
            },
        ))
        .with_state(state)
}

fn authorization(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"yujing\"")],
        "a valid bearer token is required\n",
    )
        .into_response()
}

/// Names the caller before any handler, and so before any body is read.
async fn authenticate(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    match s.access.caller(authorization(&req)) {
        Some(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        None => unauthorized(),
    }
}

async fn metrics_auth(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if s.access.metrics_allowed(authorization(&req)) {
        next.run(req).await
    } else {
        unauthorized()
    }
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
    listed(&s, |v| {
        Json(v.incidents.values().collect::<Vec<_>>()).into_response()
    })
}

async fn tasks(State(s): State<AppState>) -> Response {
    listed(&s, |v| {
        Json(v.tasks.values().collect::<Vec<_>>()).into_response()
    })
}

/// A list out of the API view, answered while the view is locked.
fn listed(s: &AppState, answer: impl FnOnce(&ApiView) -> Response) -> Response {
    match s.view.lock() {
        Ok(v) => answer(&v),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Checks, in order: the caller may act at all (403), the task exists (404),
/// it is the caller's department's (403); only then is the body read (413,
/// 400), so a caller who may not act never has a body buffered.
async fn update_task(
    State(s): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    if let Err(refused) = may_act(&s, &caller, &id, None) {
        return refused.into_response();
    }
    let body = match <Json<UpdateBody> as OptionalFromRequest<AppState>>::from_request(request, &s)
        .await
    {
        Ok(Some(Json(body))) => body,
        Ok(None) => {
            return (
                StatusCode::BAD_REQUEST,
                "expected a JSON body with an action\n",
            )
                .into_response();
        }
        Err(rejection) => return rejection.into_response(),
    };
    if let Some(to) = &body.department
        && let Err(refused) = reassignable(&s, to)
    {
        return refused.into_response();
    }
    let update = Update {
        task_id: id,
        action: body.action,
        actor: caller.name.clone(),
        department: body.department,
        note: body.note,
    };
    match s.updates.send(update) {
        Ok(()) => (StatusCode::ACCEPTED, "queued\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
    }
}

/// `POST /api/reload`: redeploys the pipelines and the routing table as SIGHUP
/// does, for an operator token bound to no department, and answers with what
/// it did (200) or the located errors of a refused set (422).
async fn reload(State(s): State<AppState>, Extension(caller): Extension<Arc<Caller>>) -> Response {
    if caller.role != crate::config::Role::Operator || caller.department.is_some() {
        let why = format!(
            "token `{}` may not redeploy: an operator token of no department may\n",
            caller.name
        );
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    let Some(requests) = s.reload.clone() else {
        return (StatusCode::NOT_FOUND, "no live redeploy here\n").into_response();
    };
    let tried = requests.tried();
    requests.request();
    tracing::info!(actor = %caller.name, "redeploy asked for over HTTP");
    // The driver takes it up between two steps: within a poll.
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        match requests.outcome_after(tried) {
            Some(Ok(done)) => return (StatusCode::OK, done + "\n").into_response(),
            Some(Err(why)) => {
                return (StatusCode::UNPROCESSABLE_ENTITY, why + "\n").into_response();
            }
            None => {}
        }
    }
    (
        StatusCode::ACCEPTED,
        "asked for; not taken up yet (see yujing_reloads_total)\n",
    )
        .into_response()
}

/// Why a request may not do what it asks: the status and a line of words.
pub type Refused = (StatusCode, String);

/// Whether `caller` may act on task `id` (and reassign it to `to`): a viewer
/// may not (403), an unknown task is 404, a department's token acts only on
/// its own department's tasks (403), a reassignment names a department of the
/// routing table (400). The API and the console answer alike.
pub fn may_act(
    s: &AppState,
    caller: &Caller,
    id: &str,
    to: Option<&str>,
) -> std::result::Result<(), Refused> {
    if let Some(why) = caller.read_only() {
        return Err((StatusCode::FORBIDDEN, why + "\n"));
    }
    let department = s
        .view
        .lock()
        .ok()
        .and_then(|v| v.tasks.get(id).map(|t| t.department.clone()));
    let Some(department) = department else {
        return Err((StatusCode::NOT_FOUND, "no such task\n".into()));
    };
    if let Some(why) = caller.bound_elsewhere(&department) {
        return Err((StatusCode::FORBIDDEN, why + "\n"));
    }
    match to {
        Some(to) => reassignable(s, to),
        None => Ok(()),
    }
}

fn reassignable(s: &AppState, to: &str) -> std::result::Result<(), Refused> {
    if !s.departments.is_empty() && !s.departments.contains(to) {
        return Err((
            StatusCode::BAD_REQUEST,
            "reassign names a department the routing table does not know\n".into(),
        ));
    }
    Ok(())
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

/// Serves the observers' metrics and API view on `listen`, guarded by `guard`
/// (see [`spawn`]). Returns the readiness to set and the task updates the API accepts.
pub fn serve(
    listen: &str,
    observers: &Observers,
    guard: Guard,
    stop: Arc<AtomicBool>,
) -> Result<(Readiness, Receiver<Update>)> {
    let ready = Arc::new(AtomicBool::new(false));
    let (updates, received) = mpsc::channel();
    if guard.access.is_empty() {
        tracing::warn!("no [[http.tokens]]: every /api request will be refused");
    }
    let state = AppState {
        metrics: observers.metrics.clone(),
        view: observers.view.clone(),
        ready: ready.clone(),
        access: guard.access.clone(),
        departments: Arc::new(guard.departments.clone()),
        updates,
        clock: guard.clock.clone(),
        secure_cookies: guard.tls.is_some(),
        reload: guard.reload.clone(),
    };
    spawn(listen, state, guard, stop)?;
    let readiness = Readiness {
        flag: ready,
        metrics: observers.metrics.clone(),
    };
    Ok((readiness, received))
}

/// Starts the HTTP(S) server and the signal handlers on a thread of their own;
/// SIGTERM or SIGINT sets `stop`, SIGHUP asks `guard.reload` for a redeploy. Returns once the server listens, or the
/// error that keeps it from listening (address in use, unreadable certificate).
pub fn spawn(listen: &str, state: AppState, guard: Guard, stop: Arc<AtomicBool>) -> Result<()> {
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
            let app = router(state, &guard).into_make_service_with_connect_info::<SocketAddr>();
            let listener = match std::net::TcpListener::bind(&listen) {
                Ok(l) => l,
                Err(e) => {
                    let _ = bound_tx.send(Err(format!("listening on {listen}: {e}")));
                    return;
                }
            };
            // SIGHUP asks the daemon for a redeploy; in place before the server
            // says it listens, as SIGHUP's default action ends the process.
            let hangup = match on_hangup(guard.reload.clone()) {
                Ok(h) => h,
                Err(e) => return drop(bound_tx.send(Err(format!("SIGHUP handler: {e}")))),
            };
            let served = match &guard.tls {
                Some((cert, key)) => {
                    let config =
                        match axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await
                        {
                            Ok(c) => c,
                            Err(e) => {
                                let _ = bound_tx.send(Err(format!(
                                    "HTTPS certificate {} or key {}: {e}",
                                    cert.display(),
                                    key.display()
                                )));
                                return;
                            }
                        };
                    axum_server::from_tcp_rustls(listener, config).map(|server| {
                        let _ = bound_tx.send(Ok(()));
                        tokio::spawn(server.serve(app))
                    })
                }
                None => axum_server::from_tcp(listener).map(|server| {
                    let _ = bound_tx.send(Ok(()));
                    tokio::spawn(server.serve(app))
                }),
            };
            let server = match served {
                Ok(s) => s,
                Err(e) => {
                    let _ = bound_tx.send(Err(format!("listening on {listen}: {e}")));
                    return;
                }
            };
            wait_for_signal(hangup).await;
            stop.store(true, Ordering::Relaxed);
            // Serve on while the daemon checkpoints and exits.
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "http server"),
                Err(e) => tracing::error!(error = %e, "http server task"),
            }
        });
    });
    match bound_rx.recv() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Other(e)),
        Err(_) => Err(Error::Other("the HTTP server did not start".into())),
    }
}

/// The SIGHUP stream and where its redeploy requests go, when there is a
/// daemon to redeploy.
type Hangup = Option<(tokio::signal::unix::Signal, Arc<ReloadRequests>)>;

fn on_hangup(reload: Option<Arc<ReloadRequests>>) -> std::io::Result<Hangup> {
    use tokio::signal::unix::{SignalKind, signal};
    reload
        .map(|r| signal(SignalKind::hangup()).map(|s| (s, r)))
        .transpose()
}

/// Until SIGTERM or SIGINT; meanwhile each SIGHUP asks for a redeploy.
async fn wait_for_signal(hangup: Hangup) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let redeploys = async {
        if let Some((mut signals, requests)) = hangup {
            while signals.recv().await.is_some() {
                tracing::info!("SIGHUP: redeploying the pipelines and the routing table");
                requests.request();
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = redeploys => {}
    }
}

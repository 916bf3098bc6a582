//! The duty console (值守台): pages for the people who act on alerts, served by
//! the daemon and by `yujing demo --listen` under `/console`. Server-rendered
//! HTML, Chinese by default with an English switch, no script and nothing
//! fetched from elsewhere. Signing in takes an API token of `[[http.tokens]]`
//! (kept in an HttpOnly, SameSite=Strict cookie), so the console grants
//! exactly what the API grants that token; every form carries a token derived
//! from the session, so another site cannot act in its name. No PII is shown:
//! what the pages read (alerts, tasks, series) never holds any.
//!
//! - overview: open incidents by district × level, overdue tasks, the feeds'
//!   freshness and the pipelines' watermarks;
//! - incident: why it fired (value, expected, threshold, p-value, method), the
//!   key's recent series with the alert marked, sample event ids, related
//!   incidents of the same district, its dispatch and tasks;
//! - tasks: a department's board with acknowledge, done, reassign and note,
//!   overdue highlighted, and every task's history.

mod page;
mod plot;
pub mod report;
mod views;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::AppState;
use super::access::Caller;
use crate::task::Action;
use crate::task::command::Update;
pub use page::Lang;

const SESSION: &str = "yujing_session";
const LANG: &str = "yujing_lang";

/// Who is looking, in which language, and the form token of their session.
#[derive(Clone)]
pub struct Viewer {
    pub caller: Arc<Caller>,
    pub lang: Lang,
    csrf: String,
}

impl Viewer {
    /// A signed-in page: the frame with the viewer's name around `body`.
    pub fn page(&self, title: &str, nav: page::Nav, here: &str, body: &str) -> String {
        page::page(self.lang, title, nav, Some(&self.caller.name), here, body)
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The form token of a session: derived from its API token, so only a page
/// served to that session knows it.
fn csrf_of(token: &str) -> String {
    let key = blake3::derive_key("yujing duty console form token v1", token.as_bytes());
    key[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn lang_of(headers: &HeaderMap, query: Option<&str>) -> Lang {
    let asked = query
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("lang=")))
        .or_else(|| cookie(headers, LANG));
    Lang::from_code(asked)
}

/// Signed-in pages only: the caller from the session cookie (or a bearer
/// header); others are sent to the sign-in page.
pub async fn signed_in(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    let token = cookie(headers, SESSION).map(str::to_string).or_else(|| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string())
    });
    let query = req.uri().query().map(str::to_string);
    let lang = lang_of(headers, query.as_deref());
    let Some((token, caller)) = token.and_then(|t| s.access.caller_of(&t).map(|c| (t, c))) else {
        return Redirect::to(&format!("/console/login?lang={}", lang.code())).into_response();
    };
    req.extensions_mut().insert(Viewer {
        caller,
        lang,
        csrf: csrf_of(&token),
    });
    let mut response = next.run(req).await;
    // A language picked by link stays picked.
    if query.as_deref().is_some_and(|q| q.contains("lang="))
        && let Ok(v) = format!("{LANG}={}; Path=/console; SameSite=Strict", lang.code()).parse()
    {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

pub async fn login_page(headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let lang = lang_of(
        &headers,
        q.get("lang").map(|l| format!("lang={l}")).as_deref(),
    );
    Html(views::login(lang, None)).into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    #[serde(default)]
    lang: Option<String>,
}

pub async fn login(State(s): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    let lang = Lang::from_code(f.lang.as_deref());
    let token = f.token.trim();
    if s.access.caller_of(token).is_none() {
        let msg = lang.t("令牌无效。", "That token is not valid.");
        return (
            StatusCode::UNAUTHORIZED,
            Html(views::login(lang, Some(msg))),
        )
            .into_response();
    }
    let secure = if s.secure_cookies { "; Secure" } else { "" };
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/console".to_string()),
            (
                header::SET_COOKIE,
                format!("{SESSION}={token}; Path=/console; HttpOnly; SameSite=Strict{secure}"),
            ),
        ],
    )
        .into_response()
}

pub async fn logout() -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/console/login".to_string()),
            (
                header::SET_COOKIE,
                format!("{SESSION}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"),
            ),
        ],
    )
        .into_response()
}

fn with_view(
    s: &AppState,
    render: impl FnOnce(&crate::sink::view::ApiView) -> Response,
) -> Response {
    match s.view.lock() {
        Ok(v) => render(&v),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

pub async fn overview(
    State(s): State<AppState>,
    axum::Extension(v): axum::Extension<Viewer>,
) -> Response {
    let now = s.clock.now();
    with_view(&s, |view| {
        Html(views::overview(&v, view, now)).into_response()
    })
}

pub async fn incident(
    State(s): State<AppState>,
    axum::Extension(v): axum::Extension<Viewer>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let now = s.clock.now();
    let queued = q.contains_key("queued");
    with_view(&s, |view| {
        match views::incident(&v, view, &id, now, queued) {
            Some(html) => Html(html).into_response(),
            None => (StatusCode::NOT_FOUND, Html(views::gone(&v, &id))).into_response(),
        }
    })
}

pub async fn tasks(
    State(s): State<AppState>,
    axum::Extension(v): axum::Extension<Viewer>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let now = s.clock.now();
    // A department's token sees its own board first.
    let department = q
        .get("department")
        .cloned()
        .or_else(|| v.caller.department.clone())
        .filter(|d| !d.is_empty());
    let queued = q.contains_key("queued");
    let departments: Vec<String> = s.departments.iter().cloned().collect();
    with_view(&s, |view| {
        Html(views::board(
            &v,
            view,
            department.as_deref(),
            &departments,
            now,
            queued,
        ))
        .into_response()
    })
}

#[derive(Deserialize)]
pub struct ActionForm {
    action: Action,
    csrf: String,
    #[serde(default)]
    department: Option<String>,
    #[serde(default)]
    note: Option<String>,
    /// The console page to go back to.
    #[serde(default)]
    back: Option<String>,
}

/// A task action from a form: the same checks as the API's, then back to the
/// page it came from.
pub async fn act(
    State(s): State<AppState>,
    axum::Extension(v): axum::Extension<Viewer>,
    Path(id): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    if !bool::from(f.csrf.as_bytes().ct_eq(v.csrf.as_bytes())) {
        return (
            StatusCode::FORBIDDEN,
            "the form has expired: reload the page\n",
        )
            .into_response();
    }
    let department = f.department.filter(|d| !d.trim().is_empty());
    if let Err(refused) = super::may_act(&s, &v.caller, &id, department.as_deref()) {
        return refused.into_response();
    }
    let update = Update {
        task_id: id,
        action: f.action,
        actor: v.caller.name.clone(),
        department,
        note: f.note.filter(|n| !n.trim().is_empty()),
    };
    if s.updates.send(update).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let back = f
        .back
        .filter(|b| b.starts_with("/console") && !b.contains("//"))
        .unwrap_or_else(|| "/console/tasks".into());
    let sep = if back.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{back}{sep}queued=1")).into_response()
}

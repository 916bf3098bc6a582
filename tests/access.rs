//! Who may do what on the HTTP API (docs/security.md, "Access"): every route ×
//! (no token, a wrong token, a viewer, an operator, an operator of another
//! department) against the server the daemon runs, over real HTTP; the body
//! limit and the order of the checks; the recorded actor; and `yujing run`
//! refusing to start without a PII key.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;

use yujing::config::HttpConfig;
use yujing::http::Guard;
use yujing::sink::observe::Observers;
use yujing::task::command::Update;

mod broker;
mod common;
use broker::{free_port, http};

const POLICE: &str = "西湖公安分局";
const PETITIONS: &str = "区委信访局";

/// Four tokens: a viewer, an operator for every department, and one operator
/// for each of two departments.
const TOKENS: &str = r#"
listen = "127.0.0.1:0"
metrics_token = "ACCESS_TEST_METRICS"
[[tokens]]
name = "wall"
role = "viewer"
secret = "ACCESS_TEST_VIEWER"
[[tokens]]
name = "duty"
role = "operator"
secret = "ACCESS_TEST_OPERATOR"
[[tokens]]
name = "police-desk"
role = "operator"
department = "西湖公安分局"
secret = "ACCESS_TEST_POLICE"
[[tokens]]
name = "petition-desk"
role = "operator"
department = "区委信访局"
secret = "ACCESS_TEST_PETITIONS"
"#;

fn task(id: &str, department: &str) -> yujing::task::Task {
    serde_json::from_value(serde_json::json!({
        "task_id": id, "dispatch_id": "D-1", "incident_id": "inc-1",
        "track": "legal", "department": department, "level": "red",
        "status": "open", "pipeline": "grid_rules", "key": {}, "alert_id": "a-1",
        "opened_at": "2026-03-14T03:00:00Z", "deadline": "2026-03-14T03:30:00Z",
        "escalations": 0, "incident_firing": true, "version": 1
    }))
    .expect("task")
}

/// The API on a free port with [`TOKENS`], one police task `T-police`.
fn serve() -> (u16, Receiver<Update>) {
    // SAFETY: each test runs in a process of its own (nextest), before any thread reads them.
    unsafe {
        for (name, value) in [
            ("ACCESS_TEST_VIEWER", "viewer-token-0123456789"),
            ("ACCESS_TEST_OPERATOR", "operator-token-0123456789"),
            ("ACCESS_TEST_POLICE", "police-token-0123456789"),
            ("ACCESS_TEST_PETITIONS", "petition-token-0123456789"),
            ("ACCESS_TEST_METRICS", "metrics-token-0123456789"),
        ] {
            std::env::set_var(name, value);
        }
    }
    let config: HttpConfig = toml::from_str(TOKENS).expect("config");
    let mut guard = Guard::from_config(&config).expect("guard");
    guard.departments = BTreeSet::from([POLICE.to_string(), PETITIONS.to_string()]);
    guard.max_body_bytes = 1024;
    let observers = Observers::default();
    observers
        .view
        .lock()
        .expect("view")
        .tasks
        .insert("T-police".into(), task("T-police", POLICE));
    let port = free_port();
    let (ready, updates) = yujing::http::serve(
        &format!("127.0.0.1:{port}"),
        &observers,
        guard,
        Arc::new(AtomicBool::new(false)),
    )
    .expect("serve");
    ready.set(true);
    (port, updates)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn every_route_answers_each_kind_of_caller_as_documented() {
    let (port, updates) = serve();
    let callers: [(&str, Option<&str>); 6] = [
        ("none", None),
        ("wrong", Some("not-a-token-0123456789")),
        ("viewer", Some("viewer-token-0123456789")),
        ("operator", Some("operator-token-0123456789")),
        ("department", Some("police-token-0123456789")),
        ("other department", Some("petition-token-0123456789")),
    ];
    let act = r#"{"action":"note","note":"on our way","actor":"forged"}"#;
    // route, then the status for each caller above: the table of docs/security.md.
    let table: [(&str, &str, &str, [u16; 6]); 8] = [
        ("GET", "/healthz", "", [200; 6]),
        ("GET", "/readyz", "", [200; 6]),
        ("GET", "/metrics", "", [401; 6]),
        ("GET", "/api/alerts", "", [401, 401, 200, 200, 200, 200]),
        ("GET", "/api/tasks", "", [401, 401, 200, 200, 200, 200]),
        (
            "POST",
            "/api/tasks/T-police",
            act,
            [401, 401, 403, 202, 202, 403],
        ),
        (
            "POST",
            "/api/tasks/T-none",
            act,
            [401, 401, 403, 404, 404, 404],
        ),
        // Redeploys are for operators of no department; this server (not a
        // daemon) has none to offer, so the one who may gets 404.
        ("POST", "/api/reload", "", [401, 401, 403, 404, 403, 403]),
    ];
    for (method, path, body, want) in table {
        for ((who, token), want) in callers.iter().zip(want) {
            let auth = token.map(bearer);
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(a) = &auth {
                headers.push(("Authorization", a));
            }
            let (status, text) = http(port, method, path, &headers, body);
            assert_eq!(status, want, "{method} {path} by {who}: {text}");
        }
    }
    // Two actions went through, each recorded under its token's name, whatever the body said.
    let actors: Vec<String> = updates.try_iter().map(|u| u.actor).collect();
    assert_eq!(actors, ["duty", "police-desk"]);
    // /metrics opens to its own token only.
    let auth = bearer("metrics-token-0123456789");
    assert_eq!(
        http(port, "GET", "/metrics", &[("Authorization", &auth)], "").0,
        200
    );
}

#[test]
fn the_token_is_checked_before_the_body_and_the_body_is_bounded() {
    let (port, updates) = serve();
    let big = format!(r#"{{"action":"note","note":"{}"}}"#, "x".repeat(4096));
    let json = ("Content-Type", "application/json");
    // Without a token, neither a huge nor a broken body is read: 401, not 413 or 400.
    assert_eq!(
        http(port, "POST", "/api/tasks/T-police", &[json], &big).0,
        401
    );
    assert_eq!(
        http(port, "POST", "/api/tasks/T-police", &[json], "{").0,
        401
    );
    let auth = bearer("operator-token-0123456789");
    let with = [json, ("Authorization", auth.as_str())];
    assert_eq!(
        http(port, "POST", "/api/tasks/T-police", &with, &big).0,
        413
    );
    assert_eq!(http(port, "POST", "/api/tasks/T-police", &with, "{").0, 400);
    // A reassignment names a department of the routing table, or is refused.
    let to = |d: &str| format!(r#"{{"action":"reassign","department":"{d}"}}"#);
    assert_eq!(
        http(port, "POST", "/api/tasks/T-police", &with, &to("某某街道")).0,
        400
    );
    assert_eq!(
        http(port, "POST", "/api/tasks/T-police", &with, &to(PETITIONS)).0,
        202
    );
    let taken: Vec<Update> = updates.try_iter().collect();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].department.as_deref(), Some(PETITIONS));
}

#[test]
fn a_daemon_will_not_start_with_an_unset_or_short_token() {
    // SAFETY: a process of its own (nextest).
    unsafe { std::env::set_var("ACCESS_TEST_SHORT", "short") };
    let short: HttpConfig = toml::from_str(
        "listen = \"127.0.0.1:0\"\n[[tokens]]\nname = \"x\"\nrole = \"viewer\"\nsecret = \"ACCESS_TEST_SHORT\"\n",
    )
    .expect("config");
    let e = Guard::from_config(&short).expect_err("short").to_string();
    assert!(e.contains("at least 16"), "{e}");
    let unset = TOKENS.replace("ACCESS_TEST_VIEWER", "ACCESS_TEST_NEVER_SET");
    let e = Guard::from_config(&toml::from_str(&unset).expect("config"))
        .expect_err("unset")
        .to_string();
    assert!(e.contains("ACCESS_TEST_NEVER_SET"), "{e}");
}

#[test]
fn yujing_run_refuses_to_start_without_a_long_enough_pii_key() {
    let run = |key: Option<&str>, extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_yujing"));
        c.arg("run").args(extra).env_remove("YUJING_PII_KEY");
        if let Some(k) = key {
            c.env("YUJING_PII_KEY", k);
        }
        c.output().expect("run")
    };
    for key in [None, Some("short-key")] {
        let o = run(key, &[]);
        assert!(!o.status.success(), "{key:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("PII key"), "{key:?}: {err}");
        assert!(err.contains("32"), "{key:?}: {err}");
    }
    // With a good key (or the explicit flag) it gets past the key, to the missing [kafka].
    for (key, flag) in [
        (Some("a-pii-key-of-at-least-thirty-two-bytes"), &[][..]),
        (None, &["--insecure-dev-key"][..]),
    ] {
        let o = run(key, flag);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("[kafka]"), "{err}");
        assert!(!err.contains("no PII key"), "{err}");
    }
}

/// The form token on a console page, as the browser would send it back.
fn form_token(page: &str) -> Option<String> {
    let at = page.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(page[at..].split('"').next()?.to_string())
}

#[test]
fn the_console_grants_what_the_api_grants_and_refuses_forged_forms() {
    let (port, updates) = serve();
    let session = |token: &str| format!("yujing_session={token}");
    // No session, or a wrong one: to the sign-in page.
    for cookie in [None, Some(session("not-a-token-0123456789"))] {
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
        let (status, _) = http(port, "GET", "/console/tasks", &headers, "");
        assert_eq!(status, 303, "{cookie:?}");
    }
    let board = |token: &str| {
        let cookie = session(token);
        // All departments' tasks (a department's desk sees its own by default).
        http(
            port,
            "GET",
            "/console/tasks?department=",
            &[("Cookie", &cookie)],
            "",
        )
    };
    // A viewer sees the task and no action; so does another department's desk.
    for token in ["viewer-token-0123456789", "petition-token-0123456789"] {
        let (status, page) = board(token);
        assert_eq!(status, 200);
        assert!(page.contains("task-T-police"), "{page}");
        assert!(!page.contains("value=\"acknowledge\""), "{token}: {page}");
    }
    // The police desk and the all-department operator may act, with their form token.
    for (token, name) in [
        ("police-token-0123456789", "police-desk"),
        ("operator-token-0123456789", "duty"),
    ] {
        let (_, page) = board(token);
        let csrf = form_token(&page).expect("a form token on an operator's board");
        let cookie = session(token);
        let form = ("Content-Type", "application/x-www-form-urlencoded");
        let post = |body: &str| {
            http(
                port,
                "POST",
                "/console/tasks/T-police",
                &[("Cookie", &cookie), form],
                body,
            )
        };
        let (status, _) = post(&format!("action=acknowledge&csrf={csrf}"));
        assert_eq!(status, 303, "{name}");
        let taken: Vec<Update> = updates.try_iter().collect();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].actor, name, "the session's token names the actor");
        // A form without the session's own form token is refused, and nothing is queued.
        assert_eq!(post("action=acknowledge&csrf=0000").0, 403);
        assert_eq!(post("action=acknowledge").0, 422, "no form token at all");
        // A reassignment outside the routing table is refused as by the API.
        let (status, _) = post(&format!("action=reassign&department=%E6%9F%90&csrf={csrf}"));
        assert_eq!(status, 400);
        assert!(updates.try_iter().next().is_none());
    }
}

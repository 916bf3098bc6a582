//! The duty console in a real browser: Debian's `chromium`, headless, driven
//! through `chromedriver` (scripts/deps.sh installs both). A daemon on the
//! broker with the shipped petition pipeline raises an orange incident; the
//! test signs in with an operator token, opens the incident from the overview,
//! acknowledges its legal task by clicking, and sees the change on the page,
//! in the API and on the tasks topic. Screenshots of each page go to
//! `$YUJING_SCREENSHOTS` when set (docs/console/ holds the ones looked at).

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::Value;

mod broker;
mod browser;
mod common;
use broker::{AUTH, OPERATOR_NAME, OPERATOR_TOKEN, Setup, eventually, http, read_topic, stop};
use browser::{browser, chromedriver, click, shot, text, wait_for};
use yujing::core::time::{HOUR, wall_now};

const PETITIONS: &str = include_str!("../pipelines/petition_collective.toml");

#[test]
fn a_duty_officer_opens_an_incident_and_acknowledges_its_task_in_a_browser() {
    let s = Setup::with(&[("petition_collective", PETITIONS)], "");
    s.add_feed("petition", "petition");
    let daemon = s.start();
    let now = wall_now();
    // Collective petitions growing through the morning (yellow), one of 60
    // people (orange, tasks open), then a single petition that closes its window.
    let records: Vec<String> = [(9, 6), (8, 7), (6, 9), (5, 8), (4, 12), (3, 60), (1, 1)]
        .iter()
        .map(|(ago, persons)| common::petition(now - ago * HOUR, &format!("p-{ago}"), *persons))
        .collect();
    s.produce_to("petition", "西湖区", &records);
    let legal: Value = eventually(60, "the incident's tasks are open", || {
        let (_, body) = http(s.port, "GET", "/api/tasks", &[AUTH], "");
        let tasks: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
        let legal = tasks.into_iter().find(|t| t["track"] == "legal");
        (legal, body)
    });
    let task_id = legal["task_id"].as_str().expect("id").to_string();
    assert_eq!(legal["department"], "区委信访局");

    // Without a session the console sends you to sign in; a form without its
    // token is refused.
    let (status, _) = http(s.port, "GET", "/console", &[], "");
    assert_eq!(status, 303);
    let cookie = format!("yujing_session={OPERATOR_TOKEN}");
    let (status, _) = http(
        s.port,
        "POST",
        &format!("/console/tasks/{task_id}"),
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "action=acknowledge&csrf=forged",
    );
    assert_eq!(status, 403, "a forged form is refused");

    let (_driver, driver_port) = chromedriver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let base = format!("http://127.0.0.1:{}", s.port);
    rt.block_on(async {
        let c = browser(driver_port).await;
        c.goto(&format!("{base}/console")).await.expect("goto");
        assert!(
            c.current_url()
                .await
                .expect("url")
                .path()
                .ends_with("/console/login")
        );
        shot(&c, "login").await;
        c.find(Locator::Css("#token"))
            .await
            .expect("token field")
            .send_keys(OPERATOR_TOKEN)
            .await
            .expect("type");
        click(&c, "#sign-in").await;
        // The click submits the form; wait for the page it leads to.
        wait_for(&c, "#incidents").await;
        let page = text(&c).await;
        assert!(page.contains("在办事件"), "{page}");
        assert!(page.contains(OPERATOR_NAME), "{page}");
        assert!(page.contains("西湖区"), "{page}");
        assert!(!page.contains("110101199001011234"), "no PII");
        shot(&c, "overview").await;

        click(&c, "a.incident").await;
        wait_for(&c, "svg").await;
        let page = text(&c).await;
        assert!(page.contains("为何预警"), "{page}");
        assert!(page.contains("区委信访局"), "{page}");
        assert!(
            c.find(Locator::Css("svg circle")).await.is_ok(),
            "the series is plotted"
        );
        shot(&c, "incident").await;
        let incident_url = c.current_url().await.expect("url");

        let ack = format!("#task-{task_id} button.ack");
        click(&c, &ack).await;
        // Back on the incident, which says the action is queued.
        wait_for(&c, "#queued").await;
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let status = c
                .find(Locator::Css(&format!("#task-{task_id} .status")))
                .await
                .expect("status")
                .text()
                .await
                .expect("text");
            if status == "已签收" {
                break;
            }
            assert!(Instant::now() < end, "the page shows {status}");
            tokio::time::sleep(Duration::from_millis(500)).await;
            c.goto(incident_url.as_str()).await.expect("reload");
        }
        shot(&c, "incident-acknowledged").await;

        c.goto(&format!("{base}/console/tasks?lang=en"))
            .await
            .expect("goto");
        let page = text(&c).await;
        assert!(page.contains("Task board"), "{page}");
        assert!(page.contains("acknowledged"), "{page}");
        shot(&c, "tasks-en").await;
        c.set_window_size(390, 844).await.expect("phone size");
        c.goto(&format!("{base}/console?lang=zh"))
            .await
            .expect("goto");
        shot(&c, "overview-phone").await;
        c.close().await.expect("close");
    });

    // The click reached the engine: the API and the tasks topic say so.
    let (_, body) = http(s.port, "GET", "/api/tasks", &[AUTH], "");
    let tasks: Vec<Value> = serde_json::from_str(&body).expect("tasks");
    let task = tasks
        .iter()
        .find(|t| t["task_id"] == task_id.as_str())
        .expect("task");
    assert_eq!(task["status"], "acknowledged");
    let events = read_topic(
        &s.topic("tasks"),
        &format!("c{}", s.id),
        Duration::from_secs(30),
        |v| v.iter().any(|e| e["change"] == "acknowledged"),
    );
    let ack = events
        .iter()
        .find(|e| e["change"] == "acknowledged" && e["task"]["task_id"] == task_id.as_str())
        .expect("acknowledged on the topic");
    assert_eq!(ack["actor"], OPERATOR_NAME, "the token's name is the actor");
    stop(daemon);
}

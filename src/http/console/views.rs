//! The console's pages, rendered from the run's view.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::Viewer;
use super::page::{Lang, Nav, badge, esc, local, page, relative};
use super::plot::{series, trim};
use crate::alert::Alert;
use crate::core::key::{Cell, Key};
use crate::core::level::Level;
use crate::core::time::Millis;
use crate::sink::view::ApiView;
use crate::task::{Task, TaskStatus};

fn cell(c: &Cell) -> String {
    match c {
        Cell::Text(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The key's values joined: `西湖区 / 北山街道`.
fn place(key: &Key) -> String {
    let parts: Vec<String> = key.iter().map(|(_, v)| cell(v)).collect();
    parts.join(" / ")
}

fn district(key: &Key) -> String {
    key.get("district").map(cell).unwrap_or_else(|| "—".into())
}

/// Past a deadline: to acknowledge (overdue, escalated) or to complete.
fn late(t: &Task, now: Millis) -> bool {
    matches!(t.status, TaskStatus::Overdue | TaskStatus::Escalated)
        || (t.status.awaiting() && t.deadline <= now)
        || t.completion_overdue
}

pub fn login(lang: Lang, error: Option<&str>) -> String {
    let mut body = format!("<h1>{}</h1>", lang.t("登录", "Sign in"));
    if let Some(e) = error {
        let _ = write!(body, "<p class=\"err\">{}</p>", esc(e));
    }
    let _ = write!(
        body,
        "<div class=\"card\"><form method=\"post\" action=\"/console/login\">\
         <p><label>{}<br><input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"off\" size=\"40\" required></label></p>\
         <input type=\"hidden\" name=\"lang\" value=\"{}\"><button type=\"submit\" id=\"sign-in\">{}</button></form>\
         <p class=\"muted\">{}</p></div>",
        lang.t("访问令牌", "Access token"),
        lang.code(),
        lang.t("登录", "Sign in"),
        lang.t(
            "使用值班室或本部门的 API 令牌；权限与 API 相同。",
            "Use your duty desk's or department's API token; it grants what the API grants."
        ),
    );
    page(
        lang,
        lang.t("登录", "Sign in"),
        Nav::None,
        None,
        "/console/login",
        &body,
    )
}

pub fn gone(v: &Viewer, id: &str) -> String {
    let lang = v.lang;
    let body = format!(
        "<h1>{}</h1><p>{} <code>{}</code></p><p><a href=\"/console\">{}</a></p>",
        lang.t("事件已解除", "Incident not open"),
        lang.t(
            "该事件已解除或不存在：",
            "This incident has resolved or does not exist:"
        ),
        esc(id),
        lang.t("返回总览", "Back to the overview")
    );
    v.page(lang.t("事件", "Incident"), Nav::None, "/console", &body)
}

pub fn overview(v: &Viewer, view: &ApiView, now: Millis) -> String {
    let lang = v.lang;
    let late_tasks: Vec<&Task> = view
        .tasks
        .values()
        .filter(|t| t.status != TaskStatus::Done && late(t, now))
        .collect();
    let mut body = format!("<h1>{}</h1>", lang.t("总览", "Overview"));
    stats(&mut body, lang, view, late_tasks.len());
    // District × level.
    let mut grid: BTreeMap<String, BTreeMap<Level, usize>> = BTreeMap::new();
    for a in view.incidents.values() {
        *grid
            .entry(district(&a.key))
            .or_default()
            .entry(a.level)
            .or_default() += 1;
    }
    let _ = write!(
        body,
        "<h2>{}</h2><div class=\"scroll\"><table id=\"by-district\"><tr><th>{}</th>",
        lang.t(
            "在办事件：区域 × 等级",
            "Open incidents by district and level"
        ),
        lang.t("区域", "District")
    );
    for l in Level::ALL.iter().rev() {
        let _ = write!(body, "<th class=\"num\">{}</th>", badge(lang, *l));
    }
    body.push_str("</tr>");
    if grid.is_empty() {
        let _ = write!(
            body,
            "<tr><td colspan=\"5\" class=\"muted\">{}</td></tr>",
            lang.t("暂无在办事件", "No open incidents")
        );
    }
    for (d, levels) in &grid {
        let _ = write!(body, "<tr><td>{}</td>", esc(d));
        for l in Level::ALL.iter().rev() {
            let _ = write!(
                body,
                "<td class=\"num\">{}</td>",
                levels.get(l).copied().unwrap_or(0)
            );
        }
        body.push_str("</tr>");
    }
    body.push_str("</table></div>");
    incidents_table(&mut body, lang, view.incidents.values().collect());
    let _ = write!(body, "<h2>{}</h2>", lang.t("超时任务", "Overdue tasks"));
    task_table(&mut body, v, view, &late_tasks, now, None, "/console");
    feeds(&mut body, lang, view, now);
    v.page(lang.t("总览", "Overview"), Nav::Overview, "/console", &body)
}

/// The counts at the top of the overview.
fn stats(body: &mut String, lang: Lang, view: &ApiView, late: usize) {
    let open_tasks = view
        .tasks
        .values()
        .filter(|t| t.status != TaskStatus::Done)
        .count();
    body.push_str("<div class=\"cards\">");
    for (label, n) in [
        (lang.t("在办事件", "Open incidents"), view.incidents.len()),
        (lang.t("未办结任务", "Open tasks"), open_tasks),
        (lang.t("超时任务", "Overdue tasks"), late),
    ] {
        let _ = write!(
            body,
            "<div class=\"card stat\"><div class=\"muted\">{label}</div><div style=\"font-size:1.8em\">{n}</div></div>"
        );
    }
    body.push_str("</div>");
}

/// A section's title and the head of its table (closed by `</table></div>`).
fn table_head(body: &mut String, title: &str, id: &str, columns: &[&str]) {
    let _ = write!(
        body,
        "<h2>{}</h2><div class=\"scroll\"><table id=\"{id}\"><tr>",
        esc(title)
    );
    for c in columns {
        let _ = write!(body, "<th>{}</th>", esc(c));
    }
    body.push_str("</tr>");
}

fn incidents_table(body: &mut String, lang: Lang, mut list: Vec<&Alert>) {
    list.sort_by(|a, b| b.level.cmp(&a.level).then(b.window_end.cmp(&a.window_end)));
    table_head(
        body,
        lang.t("在办事件", "Open incidents"),
        "incidents",
        &[
            lang.t("等级", "Level"),
            lang.t("对象", "Where"),
            lang.t("监测项", "Pipeline"),
            lang.t("观测 / 期望", "Value / expected"),
            lang.t("窗口结束", "Window end"),
        ],
    );
    for a in list {
        let expected = a.measure.expected.map_or("—".into(), trim);
        let _ = write!(
            body,
            "<tr><td>{}</td><td><a class=\"incident\" href=\"/console/incidents/{}\">{}</a></td><td>{}</td><td class=\"num\">{} / {}</td><td>{}</td></tr>",
            badge(lang, a.level),
            esc(&a.incident_id),
            esc(&place(&a.key)),
            esc(&a.pipeline),
            trim(a.measure.value),
            expected,
            local(a.window_end)
        );
    }
    body.push_str("</table></div>");
}

fn feeds(body: &mut String, lang: Lang, view: &ApiView, now: Millis) {
    table_head(
        body,
        lang.t("数据接入", "Feeds"),
        "feeds",
        &[
            lang.t("数据源", "Feed"),
            lang.t("事件数", "Events"),
            lang.t("最近到达", "Last arrival"),
        ],
    );
    for (feed, seen) in &view.feeds {
        let last = seen
            .last_arrival
            .map_or("—".into(), |t| relative(lang, t, now.max(t)));
        let _ = write!(
            body,
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(feed),
            seen.events,
            last
        );
    }
    body.push_str("</table></div>");
    table_head(
        body,
        lang.t(
            "监测项进度（事件时间水位）",
            "Pipelines (event-time watermark)",
        ),
        "watermarks",
        &[lang.t("监测项", "Pipeline"), lang.t("水位", "Watermark")],
    );
    for (p, w) in &view.watermarks {
        let _ = write!(body, "<tr><td>{}</td><td>{}</td></tr>", esc(p), local(*w));
    }
    body.push_str("</table></div>");
}

pub fn incident(v: &Viewer, view: &ApiView, id: &str, now: Millis, queued: bool) -> Option<String> {
    let lang = v.lang;
    let a = view.incidents.get(id)?;
    let here = format!("/console/incidents/{id}");
    let mut body = format!("<h1>{} {}</h1>", badge(lang, a.level), esc(&place(&a.key)));
    if queued {
        let _ = write!(
            body,
            "<p class=\"note\" id=\"queued\">{}</p>",
            lang.t(
                "已提交，处理后刷新可见。",
                "Submitted; it shows once applied."
            )
        );
    }
    why(&mut body, lang, a);
    let _ = write!(
        body,
        "<h2>{}</h2>{}",
        lang.t("近期序列", "Recent series"),
        series(
            lang,
            &view
                .series_of(a)
                .map(|s| s.iter().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        )
    );
    related(&mut body, lang, view, a);
    let tasks: Vec<&Task> = view
        .tasks
        .values()
        .filter(|t| t.incident_id == a.incident_id)
        .collect();
    let dispatch = tasks
        .first()
        .map(|t| t.dispatch_id.clone())
        .unwrap_or_else(|| "—".into());
    let _ = write!(
        body,
        "<h2>{} <span class=\"muted\">{}</span></h2>",
        lang.t("三同步任务", "Three-synchronous tasks"),
        esc(&dispatch)
    );
    task_table(&mut body, v, view, &tasks, now, None, &here);
    Some(v.page(lang.t("事件", "Incident"), Nav::None, &here, &body))
}

/// Why it fired: the measure, the method, the window, the samples.
fn why(body: &mut String, lang: Lang, a: &Alert) {
    let _ = write!(
        body,
        "<div class=\"cards\"><div class=\"card\"><h2>{}</h2><dl>",
        lang.t("为何预警", "Why it fired")
    );
    let m = &a.measure;
    let opt = |v: Option<f64>| v.map_or("—".into(), trim);
    let rows = [
        (lang.t("监测项", "Pipeline"), esc(&a.pipeline)),
        (lang.t("观测值", "Value"), trim(m.value)),
        (lang.t("期望值", "Expected"), opt(m.expected)),
        (lang.t("阈值", "Threshold"), opt(m.threshold)),
        (
            lang.t("p 值", "p-value"),
            m.p_value.map_or("—".into(), |p| format!("{p:.2e}")),
        ),
        (lang.t("方法", "Method"), esc(&m.method)),
        (
            lang.t("窗口", "Window"),
            format!("{} – {}", local(a.window_start), local(a.window_end)),
        ),
        (lang.t("摘要", "Summary"), esc(&a.summary)),
        (
            lang.t("样本事件", "Sample events"),
            esc(&a.event_ids.join(", ")),
        ),
    ];
    for (k, val) in rows {
        let _ = write!(body, "<dt>{k}</dt><dd>{val}</dd>");
    }
    body.push_str("</dl></div></div>");
}

/// Other open incidents of the same district (compound ones among them).
fn related(body: &mut String, lang: Lang, view: &ApiView, a: &Alert) {
    let d = district(&a.key);
    let related: Vec<&Alert> = view
        .incidents
        .values()
        .filter(|o| o.incident_id != a.incident_id && district(&o.key) == d)
        .collect();
    let _ = write!(
        body,
        "<h2>{}</h2>",
        lang.t("同区域相关事件", "Related incidents in the district")
    );
    if related.is_empty() {
        let _ = write!(body, "<p class=\"muted\">{}</p>", lang.t("无", "None"));
    } else {
        body.push_str("<ul>");
        for o in related {
            let _ = write!(
                body,
                "<li>{} <a href=\"/console/incidents/{}\">{}</a> · {}</li>",
                badge(lang, o.level),
                esc(&o.incident_id),
                esc(&o.pipeline),
                esc(&place(&o.key))
            );
        }
        body.push_str("</ul>");
    }
}

pub fn board(
    v: &Viewer,
    view: &ApiView,
    department: Option<&str>,
    departments: &[String],
    now: Millis,
    queued: bool,
) -> String {
    let lang = v.lang;
    let here = match department {
        Some(d) => format!("/console/tasks?department={}", url(d)),
        None => "/console/tasks".into(),
    };
    let mut body = format!("<h1>{}</h1>", lang.t("任务看板", "Task board"));
    if queued {
        let _ = write!(
            body,
            "<p class=\"note\" id=\"queued\">{}</p>",
            lang.t(
                "已提交，处理后刷新可见。",
                "Submitted; it shows once applied."
            )
        );
    }
    let seen: BTreeSet<&str> = view
        .tasks
        .values()
        .map(|t| t.department.as_str())
        .chain(departments.iter().map(String::as_str))
        .collect();
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/console/tasks\"><select name=\"department\"><option value=\"\">{}</option>",
        lang.t("全部部门", "All departments")
    );
    for d in seen {
        let sel = if Some(d) == department {
            " selected"
        } else {
            ""
        };
        let _ = write!(body, "<option{sel}>{}</option>", esc(d));
    }
    let _ = write!(
        body,
        "</select> <button class=\"light\">{}</button></form>",
        lang.t("查看", "Show")
    );
    let mut list: Vec<&Task> = view
        .tasks
        .values()
        .filter(|t| department.is_none_or(|d| t.department == d))
        .collect();
    list.sort_by_key(|t| (t.status == TaskStatus::Done, !late(t, now), t.deadline));
    task_table(&mut body, v, view, &list, now, Some(departments), &here);
    v.page(lang.t("任务", "Tasks"), Nav::Tasks, &here, &body)
}

fn url(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Tasks with their deadlines, actions (for those who may act) and history.
fn task_table(
    body: &mut String,
    v: &Viewer,
    view: &ApiView,
    tasks: &[&Task],
    now: Millis,
    departments: Option<&[String]>,
    back: &str,
) {
    let lang = v.lang;
    if tasks.is_empty() {
        let _ = write!(body, "<p class=\"muted\">{}</p>", lang.t("无", "None"));
        return;
    }
    for t in tasks {
        let is_late = late(t, now) && t.status != TaskStatus::Done;
        let _ = write!(
            body,
            "<div class=\"card task{}\" id=\"task-{}\" style=\"margin:.6em 0\"><div>{} <strong>{}</strong> → {} · <span class=\"status\">{}</span>{}</div>",
            if is_late { " late" } else { "" },
            esc(&t.task_id),
            badge(lang, t.level),
            lang.track(t.track),
            esc(&t.department),
            lang.status(t.status),
            if is_late {
                format!(
                    " <span class=\"late-tag\">{}</span>",
                    lang.t("超时", "overdue")
                )
            } else {
                String::new()
            },
        );
        let _ = write!(
            body,
            "<div class=\"muted\">{} {}（{}） · {} {} · <a href=\"/console/incidents/{}\">{}</a></div>",
            lang.t("签收时限", "Acknowledge by"),
            local(t.deadline),
            relative(lang, t.deadline, now),
            lang.t("办结时限", "complete by"),
            if t.complete_by > 0 {
                local(t.complete_by)
            } else {
                "—".into()
            },
            esc(&t.incident_id),
            lang.t("查看事件", "incident"),
        );
        if t.status != TaskStatus::Done
            && v.caller.read_only().is_none()
            && v.caller.bound_elsewhere(&t.department).is_none()
        {
            actions(body, v, t, departments, back);
        }
        if let Some(h) = view.history.get(&t.task_id) {
            let _ = write!(
                body,
                "<details><summary>{}</summary><div class=\"scroll\"><table class=\"history\">",
                lang.t("处理记录", "History")
            );
            for e in h {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    local(e.time),
                    lang.change(e.change),
                    esc(&e.department),
                    esc(&e.actor),
                    esc(e.note.as_deref().unwrap_or(""))
                );
            }
            body.push_str("</table></div></details>");
        }
        body.push_str("</div>");
    }
}

fn actions(body: &mut String, v: &Viewer, t: &Task, departments: Option<&[String]>, back: &str) {
    let lang = v.lang;
    let open = |body: &mut String| {
        let _ = write!(
            body,
            "<form class=\"act\" method=\"post\" action=\"/console/tasks/{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"back\" value=\"{}\">",
            esc(&t.task_id),
            esc(&v.csrf),
            esc(back)
        );
    };
    open(body);
    if t.status != TaskStatus::Acknowledged {
        let _ = write!(
            body,
            "<button name=\"action\" value=\"acknowledge\" class=\"ack\">{}</button>",
            lang.t("签收", "Acknowledge")
        );
    }
    let _ = write!(
        body,
        "<button name=\"action\" value=\"done\" class=\"light done\">{}</button><input name=\"note\" placeholder=\"{}\" maxlength=\"500\"><button name=\"action\" value=\"note\" class=\"light\">{}</button></form>",
        lang.t("办结", "Done"),
        lang.t("备注（可选）", "note (optional)"),
        lang.t("添加备注", "Add note"),
    );
    if let Some(deps) = departments.filter(|d| !d.is_empty()) {
        open(body);
        body.push_str("<select name=\"department\">");
        for d in deps.iter().filter(|d| **d != t.department) {
            let _ = write!(body, "<option>{}</option>", esc(d));
        }
        let _ = write!(
            body,
            "</select><button name=\"action\" value=\"reassign\" class=\"light\">{}</button></form>",
            lang.t("转派", "Reassign")
        );
    }
}

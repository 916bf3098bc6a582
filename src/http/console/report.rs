//! The backtest report (`yujing replay --report`): one self-contained HTML file
//! in the console's frame and plots — nothing fetched from anywhere — with the
//! run's figures, the scores against labels, and per pipeline its alerts by
//! level over time and by district, and the series of the keys that alerted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::page::{Lang, STYLE, badge, esc, local};
use super::plot::{colour, series, trim};
use crate::alert::{Alert, Status};
use crate::core::key::Key;
use crate::core::level::Level;
use crate::core::time::{DAY, Millis};
use crate::eval::backtest::{Backtest, KeySeries, MAX_KEYS, MAX_POINTS};
use crate::eval::labels::{Score, Scores};
use crate::sink::view::Point;

/// Keys plotted per pipeline: those that alerted, the highest level first.
pub const PLOT_KEYS: usize = 24;

/// What the report says of the run beside what the recorder kept.
#[derive(Debug, Clone)]
pub struct RunFigures {
    pub events: u64,
    pub records: u64,
    pub dead_letters: u64,
    pub seconds: f64,
}

/// The whole report.
pub fn render(lang: Lang, run: &Backtest, figures: &RunFigures, scores: Option<&Scores>) -> String {
    let mut body = String::new();
    let _ = write!(body, "<h1>{}</h1>", lang.t("回测报告", "Backtest report"));
    summary(&mut body, lang, run, figures);
    if let Some(scores) = scores {
        scored(&mut body, lang, scores);
    }
    for p in &run.pipelines {
        pipeline(&mut body, lang, run, &p.name);
    }
    dead_letters(&mut body, lang, run);
    frame(
        lang,
        lang.t("预警回测报告", "yujing backtest report"),
        &body,
    )
}

/// A self-contained page in the console's style.
fn frame(lang: Lang, title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><header><strong>{}</strong></header>\
         <main>{body}</main></body></html>",
        lang.t("zh-CN", "en"),
        esc(title),
        esc(title),
    )
}

/// `yujing tune --html`: the scores of each setting as a table and a plot of
/// false alarms a week against incidents detected, one point per setting.
pub fn tune_page(lang: Lang, pipeline: &str, rows: &[(String, Score)]) -> String {
    let mut body = format!("<h1>{} {}</h1>", lang.t("调参", "Tuning"), esc(pipeline));
    let named = rows.iter().map(|(setting, s)| (esc(setting), s));
    score_table(&mut body, lang, lang.t("设置", "setting"), named);
    let (w, h, left, bottom) = (720.0, 300.0, 48.0, 36.0);
    let most_fa = rows
        .iter()
        .map(|r| r.1.false_alarms_per_week)
        .fold(1.0_f64, f64::max)
        * 1.1;
    let labels = rows.iter().map(|r| r.1.labels).max().unwrap_or(1).max(1) as f64;
    let x = |v: f64| left + (w - left - 16.0) * v / most_fa;
    let y = |v: f64| 12.0 + (h - 12.0 - bottom) * (1.0 - v / labels);
    let _ = write!(
        body,
        "<svg class=\"tune\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">\
         <line x1=\"{left}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#b8c2cc\"/>\
         <line x1=\"{left}\" y1=\"12\" x2=\"{left}\" y2=\"{:.1}\" stroke=\"#b8c2cc\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\" fill=\"#66717d\">{} →</text>\
         <text x=\"{}\" y=\"24\" font-size=\"12\" fill=\"#66717d\">↑ {}</text>",
        lang.t("误报与发现", "false alarms against detections"),
        y(0.0),
        w - 16.0,
        y(0.0),
        y(0.0),
        w - 16.0,
        h - 8.0,
        lang.t("误报/周", "false alarms a week"),
        left + 6.0,
        lang.t("发现（共 {} 起）", "detected")
            .replace("{}", &labels.to_string()),
    );
    for (setting, s) in rows {
        let (px, py) = (x(s.false_alarms_per_week), y(s.detected as f64));
        let _ = write!(
            body,
            "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"5\" fill=\"#14324f\"><title>{}</title></circle>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#1d2733\">{}</text>",
            esc(setting),
            px + 8.0,
            py - 6.0,
            esc(setting),
        );
    }
    body.push_str("</svg>");
    frame(lang, lang.t("预警调参", "yujing tuning"), &body)
}

fn summary(body: &mut String, lang: Lang, run: &Backtest, f: &RunFigures) {
    let episodes = run
        .alerts
        .iter()
        .filter(|a| a.status == Status::Firing)
        .map(|a| (&a.pipeline, &a.incident_id))
        .collect::<BTreeSet<_>>()
        .len();
    let cards = [
        (lang.t("事件", "events"), f.events.to_string()),
        (lang.t("记录", "records"), f.records.to_string()),
        (
            lang.t("窗口", "windows"),
            run.windows.values().sum::<u64>().to_string(),
        ),
        (lang.t("预警事件", "alert episodes"), episodes.to_string()),
        (lang.t("死信", "dead letters"), f.dead_letters.to_string()),
        (
            lang.t("事件/秒", "events/s"),
            format!("{:.0}", f.records as f64 / f.seconds.max(1e-9)),
        ),
    ];
    body.push_str("<div class=\"cards\">");
    for (name, value) in cards {
        let _ = write!(
            body,
            "<div class=\"card stat\"><div class=\"muted\">{name}</div><strong>{value}</strong></div>"
        );
    }
    body.push_str("</div>");
    if let (Some(a), Some(b)) = (run.first, run.last) {
        let _ = write!(
            body,
            "<p class=\"muted\">{} {} – {}（{}）</p>",
            lang.t("事件时间", "Event time"),
            esc(&local(a)),
            esc(&local(b)),
            lang.t("北京时间", "UTC+8")
        );
    }
}

/// The scores against labels: overall and per pipeline, then each label.
fn scored(body: &mut String, lang: Lang, scores: &Scores) {
    let _ = write!(
        body,
        "<h2>{}</h2><p class=\"muted\">{} {:.1} {}</p>",
        lang.t("对照已知事件评分", "Scored against known incidents"),
        lang.t("数据跨度", "Data span"),
        scores.weeks,
        lang.t("周", "weeks"),
    );
    let all = format!("<strong>{}</strong>", lang.t("全部", "all"));
    let named = std::iter::once((all, &scores.overall))
        .chain(scores.pipelines.iter().map(|s| (esc(&s.pipeline), s)));
    score_table(body, lang, lang.t("管道", "pipeline"), named);
    let _ = write!(
        body,
        "<div class=\"scroll\"><table id=\"outcomes\"><tr><th>{}</th><th>{}</th><th class=\"num\">{}</th><th>{}</th></tr>",
        lang.t("已知事件", "label"),
        lang.t("发现", "detected"),
        lang.t("延迟（分钟）", "delay (min)"),
        lang.t("最高等级", "highest level"),
    );
    for o in &scores.overall.outcomes {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&o.label),
            if o.detected {
                format!("<span class=\"ok\">{}</span>", lang.t("是", "yes"))
            } else {
                format!("<span class=\"late-tag\">{}</span>", lang.t("否", "no"))
            },
            o.delay_minutes.map(trim).unwrap_or_default(),
            o.level.map(|l| badge(lang, l)).unwrap_or_default(),
        );
    }
    body.push_str("</table></div>");
}

/// A table of scores (`#scores`), a row each: the name (HTML) and its figures;
/// `first` heads the names.
fn score_table<'a>(
    body: &mut String,
    lang: Lang,
    first: &str,
    rows: impl Iterator<Item = (String, &'a Score)>,
) {
    let _ = write!(
        body,
        "<div class=\"scroll\"><table id=\"scores\"><tr><th>{first}</th>\
         <th class=\"num\">{}</th><th class=\"num\">{}</th><th class=\"num\">{}</th><th class=\"num\">{}</th>\
         <th class=\"num\">{}</th><th class=\"num\">{}</th><th class=\"num\">{}</th></tr>",
        lang.t("应发现", "labels"),
        lang.t("发现", "detected"),
        lang.t("漏报", "missed"),
        lang.t("达到预期等级", "at level"),
        lang.t("延迟中位数（分钟）", "median delay (min)"),
        lang.t("误报", "false alarms"),
        lang.t("误报/周", "false alarms/week"),
    );
    for (name, s) in rows {
        let _ = write!(
            body,
            "<tr><td>{name}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.2}</td></tr>",
            s.labels,
            s.detected,
            s.missed,
            s.at_level,
            s.median_delay_minutes.map(trim).unwrap_or_default(),
            s.false_alarms,
            s.false_alarms_per_week,
        );
    }
    body.push_str("</table></div>");
}

/// One pipeline: alerts by level over time and by district, then its keys' series.
fn pipeline(body: &mut String, lang: Lang, run: &Backtest, name: &str) {
    let firing: Vec<&Alert> = run
        .alerts
        .iter()
        .filter(|a| a.pipeline == name && a.status == Status::Firing)
        .collect();
    let _ = write!(
        body,
        "<section class=\"pipeline\" id=\"p-{}\"><h2>{}</h2><p class=\"muted\">{} {} · {} {}</p>",
        esc(name),
        esc(name),
        run.windows.get(name).copied().unwrap_or(0),
        lang.t("个窗口", "windows"),
        firing.len(),
        lang.t("条预警（含升级）", "firing alerts (escalations included)"),
    );
    if !firing.is_empty() {
        by_day(body, lang, run, &firing);
        by_district(body, lang, &firing);
    }
    plots(body, lang, run, name, &firing);
    asked(body, lang, run, name, &firing);
    body.push_str("</section>");
}

/// Firing alerts per day of the run, stacked by level.
fn by_day(body: &mut String, lang: Lang, run: &Backtest, firing: &[&Alert]) {
    let (Some(first), Some(last)) = (run.first, run.last) else {
        return;
    };
    let day = |t: Millis| ((t - first) / DAY) as usize;
    let days = day(last) + 1;
    let mut counts = vec![[0u32; 4]; days];
    for a in firing {
        if let Some(c) = counts.get_mut(day(a.window_end.clamp(first, last))) {
            c[a.level as usize] += 1;
        }
    }
    let top = counts
        .iter()
        .map(|c| c.iter().sum::<u32>())
        .max()
        .unwrap_or(1)
        .max(1);
    let (w, h) = (720.0, 120.0);
    let bar = (w - 44.0) / days as f64;
    let _ = write!(
        body,
        "<svg class=\"by-day\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">\
         <text x=\"40\" y=\"14\" font-size=\"11\" text-anchor=\"end\" fill=\"#66717d\">{top}</text>",
        lang.t("每日预警", "alerts per day")
    );
    for (d, c) in counts.iter().enumerate() {
        let mut y = h - 16.0;
        for l in Level::ALL {
            let n = c[l as usize];
            if n == 0 {
                continue;
            }
            let bh = (h - 30.0) * f64::from(n) / f64::from(top);
            y -= bh;
            let _ = write!(
                body,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{} {} {n}</title></rect>",
                44.0 + bar * d as f64,
                (bar - 1.0).max(0.5),
                colour(l),
                esc(&local(first + d as Millis * DAY)),
                lang.level(l),
            );
        }
    }
    let _ = write!(
        body,
        "<text x=\"44\" y=\"{}\" font-size=\"11\" fill=\"#66717d\">{}</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" fill=\"#66717d\">{}</text></svg>",
        h - 2.0,
        esc(&local(first)),
        w - 8.0,
        h - 2.0,
        esc(&local(last)),
    );
}

/// Firing alerts by district (the first key column where there is none) and level.
fn by_district(body: &mut String, lang: Lang, firing: &[&Alert]) {
    let mut table: BTreeMap<String, [u32; 4]> = BTreeMap::new();
    for a in firing {
        let place = a
            .key
            .get("district")
            .or_else(|| a.key.values().next())
            .map(|c| serde_json::Value::from(c.clone()))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .unwrap_or_default();
        table.entry(place).or_default()[a.level as usize] += 1;
    }
    let _ = write!(
        body,
        "<div class=\"scroll\"><table class=\"by-district\"><tr><th>{}</th>",
        lang.t("区县（或首个键列）", "district (or first key column)")
    );
    for l in Level::ALL.iter().rev() {
        let _ = write!(body, "<th class=\"num\">{}</th>", badge(lang, *l));
    }
    body.push_str("</tr>");
    for (place, counts) in &table {
        let _ = write!(body, "<tr><td>{}</td>", esc(place));
        for l in Level::ALL.iter().rev() {
            let _ = write!(body, "<td class=\"num\">{}</td>", counts[*l as usize]);
        }
        body.push_str("</tr>");
    }
    body.push_str("</table></div>");
}

/// The series of the keys that alerted, the highest level and most alerts first.
fn plots(body: &mut String, lang: Lang, run: &Backtest, name: &str, firing: &[&Alert]) {
    let mut alerted: BTreeMap<String, (Level, usize, &Key)> = BTreeMap::new();
    for a in firing {
        let e = alerted.entry(a.key.id()).or_insert((a.level, 0, &a.key));
        e.0 = e.0.max(a.level);
        e.1 += 1;
    }
    let mut keys: Vec<(&String, &(Level, usize, &Key))> = alerted.iter().collect();
    keys.sort_by(|a, b| (b.1.0, b.1.1).cmp(&(a.1.0, a.1.1)).then(a.0.cmp(b.0)));
    let kept = run.series.get(name);
    if let Some(n) = run.keys_not_kept.get(name) {
        let _ = write!(
            body,
            "<p class=\"note\">{} {MAX_KEYS} {}（{n}）</p>",
            lang.t("序列只保留前", "Series were kept for the first"),
            lang.t(
                "个对象及预警对象；其余未绘制",
                "keys and the alerting ones; others are not drawn"
            ),
        );
    }
    if keys.len() > PLOT_KEYS {
        let _ = write!(
            body,
            "<p class=\"note\">{} {} {} {PLOT_KEYS} {}</p>",
            keys.len(),
            lang.t(
                "个对象有预警，只绘出等级最高的",
                "keys alerted; plotted are the"
            ),
            lang.t("", "top"),
            lang.t("个", "by level and count"),
        );
    }
    for (id, (level, count, key)) in keys.into_iter().take(PLOT_KEYS) {
        let series: Option<&KeySeries> = kept.and_then(|k| k.get(id));
        let title = label(key);
        let _ = write!(
            body,
            "<div class=\"card key\"><h3>{} {} <span class=\"muted\">{count} {}</span></h3>",
            badge(lang, *level),
            esc(&title),
            lang.t("条预警", "alerts"),
        );
        // A key judged by no detector (a compound's) is drawn from its alerts.
        let from_alerts: Vec<Point>;
        let points = match series {
            Some(s) => s.points.as_slice(),
            None => {
                from_alerts = firing
                    .iter()
                    .filter(|a| a.key.id() == *id)
                    .map(|a| Point {
                        start: a.window_start,
                        end: a.window_end,
                        value: a.measure.value,
                        expected: a.measure.expected,
                        threshold: a.measure.threshold,
                        level: Some(a.level),
                    })
                    .collect();
                &from_alerts
            }
        };
        body.push_str(&series_or_note(lang, points, series));
        body.push_str("</div>");
    }
}

/// The series of keys asked for (`replay --plot COLUMN=VALUE,…`) that did not
/// alert, up to [`PLOT_KEYS`] a pipeline.
fn asked(body: &mut String, lang: Lang, run: &Backtest, name: &str, firing: &[&Alert]) {
    if run.asked.is_empty() {
        return;
    }
    let alerted: BTreeSet<String> = firing.iter().map(|a| a.key.id()).collect();
    let wanted = |key: &Key| {
        run.asked.iter().any(|want| {
            want.iter()
                .all(|(column, value)| key.get(column).map(text) == Some(value.clone()))
        })
    };
    let series = run
        .series
        .get(name)
        .into_iter()
        .flat_map(|k| k.iter())
        .filter(|(id, s)| !alerted.contains(*id) && wanted(&s.key))
        .take(PLOT_KEYS);
    for (_, s) in series {
        let _ = write!(
            body,
            "<div class=\"card key asked\"><h3>{} <span class=\"muted\">{}</span></h3>",
            esc(&label(&s.key)),
            lang.t("按要求绘制", "asked for"),
        );
        body.push_str(&series_or_note(lang, &s.points, Some(s)));
        body.push_str("</div>");
    }
}

fn series_or_note(
    lang: Lang,
    points: &[crate::sink::view::Point],
    s: Option<&KeySeries>,
) -> String {
    let mut out = series(lang, points);
    if let Some(s) = s.filter(|s| s.dropped > 0) {
        let _ = write!(
            out,
            "<p class=\"muted\">{} {MAX_POINTS} {}（{} {}）</p>",
            lang.t("只绘出最近", "Only the latest"),
            lang.t("个窗口", "windows are drawn"),
            s.dropped,
            lang.t("个更早的窗口未保留", "earlier ones not kept"),
        );
    }
    out
}

fn label(key: &Key) -> String {
    key.iter()
        .map(|(k, v)| format!("{k}={}", text(v)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// A key value as written: text as it is, others in JSON.
fn text(cell: &crate::core::key::Cell) -> String {
    let v = serde_json::Value::from(cell.clone());
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn dead_letters(body: &mut String, lang: Lang, run: &Backtest) {
    let _ = write!(body, "<h2>{}</h2>", lang.t("死信", "Dead letters"));
    if run.dead_letters.is_empty() {
        let _ = write!(body, "<p class=\"muted\">{}</p>", lang.t("无。", "None."));
        return;
    }
    let _ = write!(
        body,
        "<div class=\"scroll\"><table id=\"dead-letters\"><tr><th>{}</th><th>{}</th><th class=\"num\">{}</th></tr>",
        lang.t("数据源", "feed"),
        lang.t("原因", "reason"),
        lang.t("条数", "count"),
    );
    for ((feed, reason), n) in &run.dead_letters {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{n}</td></tr>",
            esc(feed),
            esc(reason)
        );
    }
    body.push_str("</table></div>");
}

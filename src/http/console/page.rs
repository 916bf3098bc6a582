//! The console's page frame and words: the language (Chinese by default, an
//! English switch), HTML escaping, times on the centre's clock (UTC+8), and a
//! layout that reads on a phone as on a desk screen. Everything is inline:
//! the console fetches nothing from anywhere.

use std::fmt::Write as _;

use crate::core::level::Level;
use crate::core::time::Millis;
use crate::task::{Change, TaskStatus, Track};

/// The language a page is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// From `?lang=` or the `yujing_lang` cookie; Chinese unless English is asked for.
    pub fn from_code(code: Option<&str>) -> Lang {
        match code {
            Some("en") => Lang::En,
            _ => Lang::Zh,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The Chinese or the English words.
    pub fn t<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    pub fn level(self, l: Level) -> &'static str {
        match self {
            Lang::Zh => l.zh(),
            Lang::En => l.as_str(),
        }
    }

    pub fn track(self, t: Track) -> &'static str {
        match self {
            Lang::Zh => t.zh(),
            Lang::En => t.as_str(),
        }
    }

    pub fn status(self, s: TaskStatus) -> &'static str {
        let (zh, en) = match s {
            TaskStatus::Open => ("待签收", "open"),
            TaskStatus::Acknowledged => ("已签收", "acknowledged"),
            TaskStatus::Done => ("已办结", "done"),
            TaskStatus::Overdue => ("已超时", "overdue"),
            TaskStatus::Escalated => ("已升级", "escalated"),
        };
        self.t(zh, en)
    }

    pub fn change(self, c: Change) -> &'static str {
        let (zh, en) = match c {
            Change::Opened => ("派发", "opened"),
            Change::LevelRaised => ("升级预警", "level raised"),
            Change::Acknowledged => ("签收", "acknowledged"),
            Change::Done => ("办结", "done"),
            Change::Overdue => ("超时未签收", "overdue"),
            Change::Escalated => ("逐级上报", "escalated"),
            Change::Reassigned => ("转派", "reassigned"),
            Change::Noted => ("备注", "note"),
            Change::CompletionOverdue => ("超过处置时限", "past time to complete"),
            Change::IncidentResolved => ("事件解除", "incident resolved"),
            Change::DispatchClosed => ("全部办结", "dispatch closed"),
        };
        self.t(zh, en)
    }
}

/// Text made safe for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub use crate::core::time::format_local as local;

/// How long ago, or how long until, `t` is from `now`: `12 分钟前`, `in 3 h`.
pub fn relative(lang: Lang, t: Millis, now: Millis) -> String {
    let d = (now - t).abs() / 60_000;
    let (n, zh_unit, en_unit) = if d < 120 {
        (d, "分钟", "min")
    } else if d < 48 * 60 {
        (d / 60, "小时", "h")
    } else {
        (d / 1440, "天", "d")
    };
    match (lang, t <= now) {
        (Lang::Zh, true) => format!("{n} {zh_unit}前"),
        (Lang::Zh, false) => format!("{n} {zh_unit}后"),
        (Lang::En, true) => format!("{n} {en_unit} ago"),
        (Lang::En, false) => format!("in {n} {en_unit}"),
    }
}

/// A level as a coloured badge.
pub fn badge(lang: Lang, l: Level) -> String {
    format!(
        "<span class=\"lv lv-{}\">{}</span>",
        l.as_str(),
        lang.level(l)
    )
}

pub const STYLE: &str = "
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,'Noto Sans CJK SC','PingFang SC','Microsoft YaHei',sans-serif;color:#1d2733;background:#f3f5f8}
header{display:flex;flex-wrap:wrap;gap:.5em 1.2em;align-items:center;padding:.6em 1em;background:#14324f;color:#fff}
header a{color:#dbe7f5;text-decoration:none}header a.on{color:#fff;font-weight:600;border-bottom:2px solid #fff}
header .who{margin-left:auto;font-size:.9em;opacity:.9}main{padding:1em;max-width:1200px;margin:auto}
h1{font-size:1.3em;margin:.2em 0 .6em}h2{font-size:1.1em;margin:1.2em 0 .5em}
.cards{display:flex;flex-wrap:wrap;gap:.8em}.card{background:#fff;border-radius:6px;padding:.8em 1em;box-shadow:0 1px 2px #0002;flex:1 1 260px}.card.stat{flex:1 1 90px}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;background:#fff}th,td{padding:.45em .6em;border-bottom:1px solid #e3e8ee;text-align:left;white-space:nowrap}
th{background:#eef2f6;font-weight:600}td.num,th.num{text-align:right}tr.late td{background:#fdecea}
.lv{display:inline-block;padding:0 .5em;border-radius:3px;color:#fff;font-size:.9em}.lv-red{background:#c62828}.lv-orange{background:#ef6c00}.lv-yellow{background:#c9a400}.lv-blue{background:#1565c0}
.late-tag{color:#c62828;font-weight:600}.muted{color:#66717d}.ok{color:#2e7d32}
form.act{display:flex;flex-wrap:wrap;gap:.4em;margin:.3em 0}button{font:inherit;padding:.35em .9em;border:1px solid #14324f;background:#14324f;color:#fff;border-radius:4px;cursor:pointer}
button.light{background:#fff;color:#14324f}input,select{font:inherit;padding:.3em;border:1px solid #b8c2cc;border-radius:4px;max-width:100%}
.note{background:#e8f4fd;border-left:4px solid #1565c0;padding:.5em .8em;margin:.5em 0}.err{background:#fdecea;border-left:4px solid #c62828;padding:.5em .8em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em;margin:0}dt{color:#66717d}dd{margin:0}
svg{width:100%;height:auto;max-height:300px;background:#fff}
@media (max-width:600px){main{padding:.5em}th,td{padding:.35em .4em}header{font-size:.9em}}
";

/// Where a page sits in the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Tasks,
    None,
}

/// A whole page: the frame around `body`. `who` is the caller's name (none on
/// the login page); `here` the page's own path, for the language switch.
pub fn page(
    lang: Lang,
    title: &str,
    nav: Nav,
    who: Option<&str>,
    here: &str,
    body: &str,
) -> String {
    let mut out = String::new();
    let other = match lang {
        Lang::Zh => ("en", "English"),
        Lang::En => ("zh", "中文"),
    };
    let sep = if here.contains('?') { '&' } else { '?' };
    let _ = write!(
        out,
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} · {}</title><style>{STYLE}</style></head><body><header>\
         <strong>{}</strong>",
        lang.t("zh-CN", "en"),
        esc(title),
        lang.t("预警值守台", "yujing duty console"),
        lang.t("预警值守台", "yujing duty console"),
    );
    if let Some(who) = who {
        let on = |n: Nav| if n == nav { " class=\"on\"" } else { "" };
        let _ = write!(
            out,
            "<a href=\"/console\"{}>{}</a><a href=\"/console/tasks\"{}>{}</a>\
             <span class=\"who\">{} · <a href=\"{}{sep}lang={}\">{}</a> · \
             <a href=\"/console/logout\">{}</a></span>",
            on(Nav::Overview),
            lang.t("总览", "Overview"),
            on(Nav::Tasks),
            lang.t("任务", "Tasks"),
            esc(who),
            esc(here),
            other.0,
            other.1,
            lang.t("退出", "Sign out"),
        );
    } else {
        let _ = write!(
            out,
            "<span class=\"who\"><a href=\"/console/login?lang={}\">{}</a></span>",
            other.0, other.1
        );
    }
    let _ = write!(out, "</header><main>{body}</main></body></html>");
    out
}

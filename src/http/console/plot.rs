//! A key's series as inline SVG (the incident page, the backtest report): its
//! windows — the value, the expected value and the threshold the detector
//! compared it with — placed by time, so quiet windows (no events, no point)
//! break the lines, with the windows that raised an alert marked in their
//! level's colour.

use std::fmt::Write as _;

use super::page::{Lang, esc, local};
use crate::core::level::Level;
use crate::sink::view::Point;

const W: f64 = 720.0;
const H: f64 = 240.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 12.0;

/// A level's colour, as the badges show it.
pub(super) fn colour(l: Level) -> &'static str {
    match l {
        Level::Red => "#c62828",
        Level::Orange => "#ef6c00",
        Level::Yellow => "#c9a400",
        Level::Blue => "#1565c0",
    }
}

/// Past this many windows only the alerting ones get a dot.
const DOTS: usize = 300;

/// The series as an SVG; a sentence instead when there is nothing to draw.
pub fn series(lang: Lang, points: &[Point]) -> String {
    if points.is_empty() {
        return format!(
            "<p class=\"muted\">{}</p>",
            lang.t(
                "本次运行尚无该对象的序列（重启后从新窗口开始记录）。",
                "No series for this key in this run yet (kept from the first window after a start)."
            )
        );
    }
    let top = points
        .iter()
        .flat_map(|p| [Some(p.value), p.expected, p.threshold])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(1.0_f64, f64::max)
        * 1.1;
    // Placed by time, so windows without a point (quiet) show as gaps.
    let (t0, t1) = (points[0].end, points[points.len() - 1].end);
    let span = (t1 - t0).max(1) as f64;
    let x = |i: usize| match points.get(i) {
        Some(p) if t1 > t0 => LEFT + (W - LEFT - 8.0) * (p.end - t0) as f64 / span,
        _ => LEFT + (W - LEFT - 8.0) / 2.0,
    };
    let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - v / top);
    // A window further from the last than one step and a half follows quiet ones.
    let step = points
        .windows(2)
        .map(|w| w[1].end - w[0].end)
        .filter(|d| *d > 0)
        .min()
        .unwrap_or(1);
    let line = |get: &dyn Fn(&Point) -> Option<f64>| {
        let mut d = String::new();
        let mut pen = 'M';
        for (i, p) in points.iter().enumerate() {
            if i > 0 && 2 * (p.end - points[i - 1].end) > 3 * step {
                pen = 'M';
            }
            match get(p).filter(|v| v.is_finite()) {
                Some(v) => {
                    let _ = write!(d, "{pen}{:.1},{:.1} ", x(i), y(v));
                    pen = 'L';
                }
                None => pen = 'M',
            }
        }
        d
    };
    let mut svg = format!(
        "<svg class=\"series\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
        lang.t("近期序列", "recent series")
    );
    axes(&mut svg, top, &y);
    let _ = write!(
        svg,
        "<path d=\"{}\" fill=\"none\" stroke=\"#c62828\" stroke-dasharray=\"5 4\" stroke-width=\"1.5\"/>\
         <path d=\"{}\" fill=\"none\" stroke=\"#66717d\" stroke-dasharray=\"2 3\" stroke-width=\"1.5\"/>\
         <path d=\"{}\" fill=\"none\" stroke=\"#14324f\" stroke-width=\"2\"/>",
        line(&|p| p.threshold),
        line(&|p| p.expected),
        line(&|p| Some(p.value)),
    );
    markers(&mut svg, points, &x, &y);
    let legend = format!(
        "<p class=\"muted\">— {} · ┈ {} · - - {} · ● {}</p>",
        lang.t("观测值", "value"),
        lang.t("期望值", "expected"),
        lang.t("阈值", "threshold"),
        lang.t("预警窗口（按等级着色）", "alert windows, by level")
    );
    svg + &legend
}

/// The scale's bottom, middle and top.
fn axes(svg: &mut String, top: f64, y: &dyn Fn(f64) -> f64) {
    for v in [0.0, top / 2.0, top / 1.1] {
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#e3e8ee\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#66717d\">{}</text>",
            W - 8.0,
            y(v),
            y(v),
            LEFT - 4.0,
            y(v) + 4.0,
            trim(v)
        );
    }
}

/// A dot per window (larger, in its level's colour, where it alerted) and the
/// first and last windows' times.
fn markers(svg: &mut String, points: &[Point], x: &dyn Fn(usize) -> f64, y: &dyn Fn(f64) -> f64) {
    for (i, p) in points.iter().enumerate() {
        let (r, fill) = match p.level {
            Some(l) => (5.0, colour(l)),
            None if points.len() > DOTS => continue,
            None => (2.5, "#14324f"),
        };
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{r}\" fill=\"{fill}\"><title>{} {}</title></circle>",
            x(i),
            y(p.value),
            esc(&local(p.end)),
            trim(p.value)
        );
    }
    let (first, last) = (&points[0], &points[points.len() - 1]);
    let _ = write!(
        svg,
        "<text x=\"{LEFT}\" y=\"{}\" font-size=\"11\" fill=\"#66717d\">{}</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" fill=\"#66717d\">{}</text></svg>",
        H - 8.0,
        esc(&local(first.end)),
        W - 8.0,
        H - 8.0,
        esc(&local(last.end)),
    );
}

/// A number without trailing zeros.
pub fn trim(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

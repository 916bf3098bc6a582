//! Alerts: what a pipeline raises when a key's window is anomalous, and their
//! lifecycle, in the manner of Prometheus and Grafana — pending until the anomaly
//! has lasted `for` windows, firing, escalated when the level rises, held (no
//! repeat) while it stays anomalous, resolved after `keep_firing_for` normal
//! windows. For `cooldown` windows after resolving, the key raises nothing new at
//! the resolved level or below (a burst that ebbs and flows is one incident, not
//! one per wave); a higher level reopens the same incident.
//!
//! Ids are deterministic: an alert's from pipeline, key and window; an incident's
//! from pipeline, key and the window its episode began in. A replay or a restart
//! therefore never creates a second one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::key::{Cell, Key};
pub use crate::core::level::Language;
use crate::core::level::Level;
use crate::core::time::{Millis, format_rfc3339};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

/// What was measured for a key in a window, and by which method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    pub value: f64,
    pub expected: Option<f64>,
    pub threshold: Option<f64>,
    pub score: Option<f64>,
    pub p_value: Option<f64>,
    pub method: String,
    /// What a reader needs to check the judgement; alerting windows only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Box<Explanation>>,
}

/// The grounds of a judgement: the baseline compared, the seasonal slot, the
/// detector's settings and the window's other numbers for the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub columns: BTreeMap<String, serde_json::Value>,
}

/// The baseline windows a value was compared with: how many, their mean and
/// variance (n − 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub n: usize,
    pub mean: Option<f64>,
    pub variance: Option<f64>,
}

impl Measure {
    /// A value observed without a baseline (a rule, a quiet key): nothing expected.
    pub fn observed(value: f64, method: String) -> Self {
        Measure {
            value,
            expected: None,
            threshold: None,
            score: None,
            p_value: None,
            method,
            explanation: None,
        }
    }
}

/// One alert event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub alert_id: String,
    pub incident_id: String,
    pub status: Status,
    pub level: Level,
    pub pipeline: String,
    pub feeds: Vec<String>,
    pub key: Key,
    #[serde(with = "crate::core::time::rfc3339")]
    pub window_start: Millis,
    #[serde(with = "crate::core::time::rfc3339")]
    pub window_end: Millis,
    #[serde(flatten)]
    pub measure: Measure,
    pub summary: String,
    /// A few ids of the window's events (the pipeline's `sample_ids(event_id)`), never PII.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_ids: Vec<String>,
}

/// What the detector found for one key in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub key: String,
    pub labels: Key,
    pub start: Millis,
    pub end: Millis,
    pub measure: Measure,
    /// `None`: the window is normal for this key.
    pub level: Option<Level>,
    pub event_ids: Vec<String>,
}

/// Lifecycle settings (in windows) and the summaries' language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub for_windows: usize,
    pub keep_firing_for: usize,
    pub cooldown: usize,
    pub language: Language,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            for_windows: 1,
            keep_firing_for: 0,
            cooldown: 0,
            language: Language::En,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Episode {
    incident_id: String,
    level: Level,
    /// Consecutive anomalous windows so far (until firing).
    anomalous: usize,
    firing: bool,
    /// Normal windows since the last anomalous one.
    normal: usize,
    resolved: bool,
    /// Windows since it resolved (the cool-down so far).
    #[serde(default)]
    since_resolved: usize,
}

/// Alert state of one pipeline, per key. Serialisable for checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lifecycle {
    episodes: BTreeMap<String, Episode>,
}

/// A short, stable id from its parts.
pub fn stable_id(parts: &[&str]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(&[0]);
    }
    h.finalize().to_hex()[..24].to_string()
}

impl Lifecycle {
    /// Keys with an open episode (pending, firing or cooling down).
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.episodes.keys()
    }

    /// Whether any episode is open.
    pub fn is_empty(&self) -> bool {
        self.episodes.is_empty()
    }

    /// Counts a window of a resolved episode's cool-down; one that has run out
    /// ends the episode, so what follows is new.
    fn cool_down(&mut self, key: &str, cooldown: usize) {
        if let Some(ep) = self.episodes.get_mut(key)
            && ep.resolved
        {
            ep.since_resolved += 1;
            if ep.since_resolved > cooldown {
                self.episodes.remove(key);
            }
        }
    }

    /// Ends every open episode because the pipeline's definition changed or it
    /// was removed (`why`): a firing one is resolved at `at`, saying so. Each
    /// key's labels come from its id and the key columns.
    pub fn withdraw(
        &mut self,
        pipeline: &str,
        feeds: &[String],
        key_columns: &[String],
        language: Language,
        at: Millis,
        why: &str,
    ) -> Vec<Alert> {
        let episodes = std::mem::take(&mut self.episodes);
        episodes
            .into_iter()
            .filter(|(_, ep)| ep.firing && !ep.resolved)
            .map(|(key, ep)| {
                let f = Finding {
                    labels: crate::core::key::Key::from_id(&key, key_columns),
                    key,
                    start: at,
                    end: at,
                    measure: Measure::observed(0.0, format!("withdrawn: {why}")),
                    level: None,
                    event_ids: Vec::new(),
                };
                let mut a = alert(pipeline, feeds, &f, &ep, Status::Resolved, language);
                a.summary = match language {
                    Language::En => format!("withdrawn {pipeline}: {} ({why})", f.labels.id()),
                    Language::Zh => format!("撤销 {pipeline}：{}（{why}）", f.labels.id()),
                };
                a
            })
            .collect()
    }

    /// Takes the findings of one window (every known key, in key order) and returns the alerts it raises.
    pub fn step(
        &mut self,
        pipeline: &str,
        feeds: &[String],
        timing: Timing,
        findings: &[Finding],
    ) -> Vec<Alert> {
        let mut out = Vec::new();
        for f in findings {
            let raise =
                |ep: &Episode, status| alert(pipeline, feeds, f, ep, status, timing.language);
            self.cool_down(&f.key, timing.cooldown);
            let ep = self.episodes.get_mut(&f.key);
            match (f.level, ep) {
                (Some(level), None) => {
                    let mut ep = Episode {
                        incident_id: stable_id(&[pipeline, &f.key, &f.start.to_string()]),
                        level,
                        anomalous: 1,
                        firing: false,
                        normal: 0,
                        resolved: false,
                        since_resolved: 0,
                    };
                    if ep.anomalous >= timing.for_windows {
                        ep.firing = true;
                        out.push(raise(&ep, Status::Firing));
                    }
                    self.episodes.insert(f.key.clone(), ep);
                }
                (Some(level), Some(ep)) if ep.resolved => {
                    // Within the cool-down only a higher level is news: the same
                    // incident fires again at it.
                    if level > ep.level {
                        ep.resolved = false;
                        ep.firing = true;
                        ep.normal = 0;
                        ep.level = level;
                        out.push(raise(ep, Status::Firing));
                    }
                }
                (Some(level), Some(ep)) => {
                    ep.normal = 0;
                    if !ep.firing {
                        ep.anomalous += 1;
                        ep.level = ep.level.max(level);
                        if ep.anomalous >= timing.for_windows {
                            ep.firing = true;
                            out.push(raise(ep, Status::Firing));
                        }
                    } else if level > ep.level {
                        ep.level = level;
                        out.push(raise(ep, Status::Firing));
                    }
                }
                (None, Some(ep)) => {
                    ep.normal += 1;
                    if ep.resolved {
                        // Cooling down; counted above.
                    } else if !ep.firing {
                        self.episodes.remove(&f.key);
                    } else if ep.normal > timing.keep_firing_for {
                        ep.firing = false;
                        ep.resolved = true;
                        ep.normal = 0;
                        ep.since_resolved = 0;
                        out.push(raise(ep, Status::Resolved));
                        if timing.cooldown == 0 {
                            self.episodes.remove(&f.key);
                        }
                    }
                }
                (None, None) => {}
            }
        }
        out
    }
}

fn alert(
    pipeline: &str,
    feeds: &[String],
    f: &Finding,
    ep: &Episode,
    status: Status,
    language: Language,
) -> Alert {
    let labels: Vec<String> = f
        .labels
        .iter()
        .map(|(k, v)| match v {
            Cell::Text(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    let m = &f.measure;
    let span = format!("{} – {}", format_rfc3339(f.start), format_rfc3339(f.end));
    let summary = match (status, language) {
        (Status::Firing, Language::En) => format!(
            "{} {}: {} is {}{} ({}, {span})",
            ep.level.as_str(),
            pipeline,
            labels.join(", "),
            m.value,
            m.expected
                .map_or(String::new(), |e| format!(", expected {e:.2}")),
            m.method,
        ),
        (Status::Firing, Language::Zh) => format!(
            "{}预警 {}：{} 为 {}{}（{}，{span}）",
            level_zh(ep.level),
            pipeline,
            labels.join("，"),
            m.value,
            m.expected
                .map_or(String::new(), |e| format!("，预期 {e:.2}")),
            m.method,
        ),
        (Status::Resolved, Language::En) => format!(
            "resolved {}: {} back to normal ({})",
            pipeline,
            labels.join(", "),
            m.value
        ),
        (Status::Resolved, Language::Zh) => format!(
            "解除 {}：{} 恢复正常（{}）",
            pipeline,
            labels.join("，"),
            m.value
        ),
    };
    Alert {
        alert_id: stable_id(&[
            pipeline,
            &f.key,
            &f.start.to_string(),
            &format!("{status:?}"),
            ep.level.as_str(),
        ]),
        incident_id: ep.incident_id.clone(),
        status,
        level: ep.level,
        pipeline: pipeline.to_string(),
        feeds: feeds.to_vec(),
        key: f.labels.clone(),
        window_start: f.start,
        window_end: f.end,
        measure: f.measure.clone(),
        summary,
        event_ids: f.event_ids.clone(),
    }
}

/// Level names in Chinese (蓝色 IV … 红色 I).
fn level_zh(level: Level) -> &'static str {
    match level {
        Level::Blue => "蓝色",
        Level::Yellow => "黄色",
        Level::Orange => "橙色",
        Level::Red => "红色",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_in_chinese_on_request() {
        let t = Timing {
            language: Language::Zh,
            ..Timing::default()
        };
        let a = Lifecycle::default().step("p", &[], t, &[finding(0, Some(Level::Red))]);
        assert!(
            a[0].summary.starts_with("红色预警 p：grid_id=a 为 1"),
            "{}",
            a[0].summary
        );
    }

    fn finding(start: Millis, level: Option<Level>) -> Finding {
        Finding {
            key: "[\"a\"]".into(),
            labels: Key::new(vec![("grid_id".to_string(), Cell::Text("a".into()))]),
            start,
            end: start + 10,
            measure: Measure::observed(1.0, "test".into()),
            level,
            event_ids: vec![],
        }
    }

    fn run(timing: Timing, levels: &[Option<Level>]) -> Vec<(Millis, Status, Level, String)> {
        let mut lc = Lifecycle::default();
        let mut out = Vec::new();
        for (i, l) in levels.iter().enumerate() {
            for a in lc.step("p", &[], timing, &[finding(i as Millis * 10, *l)]) {
                out.push((i as Millis * 10, a.status, a.level, a.incident_id));
            }
        }
        out
    }

    const Y: Option<Level> = Some(Level::Yellow);
    const R: Option<Level> = Some(Level::Red);

    #[test]
    fn fires_once_escalates_and_resolves() {
        let a = run(Timing::default(), &[None, Y, Y, R, R, None, None]);
        let shape: Vec<_> = a.iter().map(|(t, s, l, _)| (*t, *s, *l)).collect();
        assert_eq!(
            shape,
            vec![
                (10, Status::Firing, Level::Yellow),
                (30, Status::Firing, Level::Red),
                (50, Status::Resolved, Level::Red),
            ]
        );
        assert!(a.iter().all(|x| x.3 == a[0].3), "one incident");
    }

    #[test]
    fn for_keep_firing_for_and_cooldown() {
        let t = Timing {
            for_windows: 2,
            keep_firing_for: 1,
            cooldown: 2,
            language: Language::En,
        };
        // One anomalous window is not enough; two are.
        let a = run(
            t,
            &[Y, None, Y, Y, None, Y, None, None, None, None, None, Y, Y],
        );
        let shape: Vec<_> = a.iter().map(|(t, s, _, _)| (*t, *s)).collect();
        assert_eq!(
            shape,
            vec![
                (30, Status::Firing), // the second consecutive anomalous window
                // 40 is within keep_firing_for and 50 is anomalous again: no repeat
                (70, Status::Resolved), // two normal windows (60, 70) > keep_firing_for
                (120, Status::Firing), // after more than `cooldown` normal windows: a new incident, again after `for`
            ]
        );
        assert_ne!(a[0].3, a[2].3);
        // Back within the cool-down at the same level: nothing new; once it has
        // run out (two windows after resolving at 30), a new incident after `for`.
        let b = run(t, &[Y, Y, None, None, Y, Y, Y, Y]);
        let shape: Vec<_> = b.iter().map(|(t, s, _, _)| (*t, *s)).collect();
        assert_eq!(
            shape,
            vec![
                (10, Status::Firing),
                (30, Status::Resolved),
                (70, Status::Firing)
            ]
        );
        assert_ne!(b[0].3, b[2].3);
        // A higher level within the cool-down reopens the same incident at once.
        let c = run(t, &[Y, Y, None, None, R]);
        assert_eq!(c.len(), 3);
        assert_eq!((c[2].1, c[2].2), (Status::Firing, Level::Red));
        assert_eq!(c[0].3, c[2].3);
    }
}

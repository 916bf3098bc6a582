//! `yujing gen`: synthetic feeds for demos, tests and benchmarks. Districts →
//! streets → communities → grids, a daily and weekly rhythm, realistic categories,
//! and injected incidents whose ground truth goes to a manifest. Arrival order
//! has bounded disorder; optional late and malformed records test the dead-letter
//! path. The same seed gives the same bytes.

use std::collections::BTreeMap;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal, Poisson};
use serde::Serialize;
use serde_json::{Value, json};

use crate::core::time::{DAY, HOUR, MINUTE, Millis, SECOND, parse_rfc3339, weekday};

/// The feeds `gen` writes, in file order.
pub const FEEDS: [&str; 4] = [
    "public_opinion",
    "petition",
    "labor_dispute",
    "police_incident",
];

#[derive(Debug, Clone)]
pub struct GenOptions {
    pub seed: u64,
    pub days: u32,
    /// First local midnight (UTC+8) of the data.
    pub start: Millis,
    /// Events delivered a day or more after their time.
    pub late: usize,
    /// Malformed records mixed in.
    pub bad: usize,
    /// Multiplies every background rate.
    pub scale: f64,
    /// Largest arrival delay of on-time events.
    pub max_disorder: Millis,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            seed: 7,
            days: 7,
            start: parse_rfc3339("2026-03-02T00:00:00+08:00").unwrap_or_default(),
            late: 0,
            bad: 0,
            scale: 1.0,
            max_disorder: 2 * MINUTE,
        }
    }
}

/// One injected incident: what a detector should find.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub id: String,
    pub feed: String,
    pub kind: String,
    pub description: String,
    pub key: BTreeMap<String, String>,
    pub start: String,
    pub end: String,
    pub events: usize,
    /// The level a district centre expects for it: what a backtest scores
    /// against (`yujing replay --labels manifest.json`).
    pub level: crate::core::level::Level,
}

#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub seed: u64,
    pub days: u32,
    pub start: String,
    pub events: BTreeMap<String, usize>,
    pub late: Vec<LateRecord>,
    pub bad: Vec<BadRecord>,
    pub incidents: Vec<Incident>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LateRecord {
    pub feed: String,
    pub event_id: String,
    pub delay_hours: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BadRecord {
    pub feed: String,
    pub line: usize,
    pub reason: String,
}

/// Generated feeds: lines per feed in arrival order, and the manifest.
#[derive(Debug, Clone)]
pub struct Generated {
    pub feeds: BTreeMap<String, Vec<String>>,
    pub manifest: Manifest,
}

struct Place {
    district: &'static str,
    street: &'static str,
    community: String,
    grid: String,
}

const DISTRICTS: [(&str, &str, [&str; 4]); 3] = [
    (
        "西湖区",
        "XH",
        ["北山街道", "西溪街道", "灵隐街道", "翠苑街道"],
    ),
    (
        "上城区",
        "SC",
        ["湖滨街道", "清波街道", "小营街道", "望江街道"],
    ),
    (
        "拱墅区",
        "GS",
        ["米市巷街道", "湖墅街道", "小河街道", "和睦街道"],
    ),
];

fn places() -> Vec<Place> {
    let mut out = Vec::new();
    for (district, code, streets) in DISTRICTS {
        for (s, street) in streets.iter().enumerate() {
            for c in 1..=3 {
                for g in 1..=3 {
                    out.push(Place {
                        district,
                        street,
                        community: format!("{street}第{c}社区"),
                        grid: format!("{code}-{:02}-{c}{g}", s + 1),
                    });
                }
            }
        }
    }
    out
}

const TOPICS: [(&str, [&str; 3]); 7] = [
    ("物业纠纷", ["物业费", "停车", "维修"]),
    ("交通拥堵", ["堵车", "地铁", "限行"]),
    ("拆迁补偿", ["拆迁", "补偿款", "安置"]),
    ("教育入学", ["学区", "招生", "入学"]),
    ("医疗服务", ["挂号", "医保", "排队"]),
    ("环境污染", ["噪音", "异味", "排污"]),
    ("食品安全", ["外卖", "过期", "卫生"]),
];
const PLATFORMS: [&str; 4] = ["weibo", "douyin", "wechat", "toutiao"];
const PETITION_CATEGORIES: [(&str, f64); 6] = [
    ("land_acquisition", 0.15),
    ("wage_arrears", 0.2),
    ("housing", 0.2),
    ("environment", 0.15),
    ("social_security", 0.15),
    ("other", 0.15),
];
const CHANNELS: [&str; 4] = ["visit", "letter", "online", "hotline"];
const INDUSTRIES: [&str; 6] = [
    "construction",
    "manufacturing",
    "catering",
    "logistics",
    "retail",
    "services",
];
const LABOR_KINDS: [&str; 4] = ["wage_arrears", "social_insurance", "layoff", "contract"];
const POLICE_KINDS: [(&str, f64); 6] = [
    ("dispute", 0.3),
    ("public_order", 0.25),
    ("traffic", 0.2),
    ("criminal", 0.15),
    ("fire", 0.05),
    ("other", 0.05),
];

/// Relative activity by local hour: quiet at night, busy by day.
fn hour_weight(hour: i64) -> f64 {
    let h = hour as f64;
    0.25 + 1.5 * (-((h - 14.0) * (h - 14.0)) / 30.0).exp()
}

fn weighted<'a>(rng: &mut ChaCha8Rng, items: &'a [(&'a str, f64)]) -> &'a str {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (item, w) in items {
        if x < *w {
            return item;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

fn local_time(t: Millis) -> String {
    // Producers in the district write local time (UTC+8).
    let local = t + 8 * HOUR;
    let s = crate::core::time::format_rfc3339(local - local.rem_euclid(SECOND));
    format!("{}+08:00", s.trim_end_matches('Z'))
}

struct Event {
    time: Millis,
    arrival: Millis,
    body: Value,
}

struct Generator {
    rng: ChaCha8Rng,
    places: Vec<Place>,
    enterprises: Vec<(String, &'static str, usize)>,
    seq: BTreeMap<&'static str, u64>,
    events: BTreeMap<&'static str, Vec<Event>>,
    opt: GenOptions,
}

impl Generator {
    fn next_id(&mut self, feed: &'static str, prefix: &str) -> String {
        let n = self.seq.entry(feed).or_insert(0);
        *n += 1;
        format!("{prefix}-{:08}", *n)
    }

    fn header(
        &mut self,
        feed: &'static str,
        prefix: &str,
        t: Millis,
        place: usize,
    ) -> serde_json::Map<String, Value> {
        let id = self.next_id(feed, prefix);
        let p = &self.places[place];
        let mut m = serde_json::Map::new();
        m.insert("event_id".into(), json!(id));
        m.insert("event_time".into(), json!(local_time(t)));
        m.insert("district".into(), json!(p.district));
        m.insert("street".into(), json!(p.street));
        m.insert("community".into(), json!(p.community));
        m.insert("grid_id".into(), json!(p.grid));
        m
    }

    fn push(&mut self, feed: &'static str, t: Millis, body: serde_json::Map<String, Value>) {
        let delay = (self.rng.random::<f64>().powi(3) * self.opt.max_disorder as f64) as Millis;
        self.events.entry(feed).or_default().push(Event {
            time: t,
            arrival: t + delay,
            body: Value::Object(body),
        });
    }

    fn opinion(&mut self, t: Millis, place: usize, topic: usize, negative: bool) {
        let mut m = self.header("public_opinion", "PO", t, place);
        let (name, words) = TOPICS[topic];
        let k = self.rng.random_range(1..=3);
        let keywords: Vec<&str> = words.choose_multiple(&mut self.rng, k).copied().collect();
        let sentiment = if negative {
            -0.4 - 0.6 * self.rng.random::<f64>()
        } else {
            Normal::new(0.15f64, 0.35)
                .map_or(0.0, |n| n.sample(&mut self.rng))
                .clamp(-1.0, 1.0)
        };
        let reach = LogNormal::new(6.0, 1.5).map_or(100.0, |d| d.sample(&mut self.rng)) as i64;
        m.insert(
            "platform".into(),
            json!(*PLATFORMS.choose(&mut self.rng).unwrap_or(&"weibo")),
        );
        m.insert(
            "author_id".into(),
            json!(format!("u{}", self.rng.random_range(0..50_000))),
        );
        m.insert("topic".into(), json!(name));
        m.insert("keywords".into(), json!(keywords));
        if self.rng.random::<f64>() < 0.3 {
            m.insert("text".into(), json!(format!("关于{name}的讨论")));
        }
        m.insert(
            "sentiment".into(),
            json!((sentiment * 1000.0).round() / 1000.0),
        );
        m.insert("reach".into(), json!(reach));
        m.insert(
            "reposts".into(),
            json!(reach / self.rng.random_range(20..200)),
        );
        self.push("public_opinion", t, m);
    }

    fn petition(&mut self, t: Millis, place: usize, category: &str, persons: i64) {
        let mut m = self.header("petition", "PT", t, place);
        let case = self.rng.random_range(0..100_000);
        m.insert("case_id".into(), json!(format!("C{case:06}")));
        m.insert(
            "channel".into(),
            json!(*CHANNELS.choose(&mut self.rng).unwrap_or(&"visit")),
        );
        m.insert("category".into(), json!(category));
        m.insert("persons".into(), json!(persons));
        m.insert("repeat".into(), json!(self.rng.random::<f64>() < 0.2));
        m.insert("skip_level".into(), json!(self.rng.random::<f64>() < 0.05));
        m.insert(
            "petitioner_id".into(),
            json!(format!(
                "330106{:08}",
                self.rng.random_range(0..100_000_000u64)
            )),
        );
        self.push("petition", t, m);
    }

    fn labor(&mut self, t: Millis, enterprise: usize, workers: i64, amount: f64, kind: &str) {
        let (id, industry, place) = self.enterprises[enterprise].clone();
        let mut m = self.header("labor_dispute", "LD", t, place);
        let case = self.rng.random_range(0..100_000);
        m.insert("case_id".into(), json!(format!("L{case:06}")));
        m.insert("enterprise_id".into(), json!(id));
        m.insert("industry".into(), json!(industry));
        m.insert("workers".into(), json!(workers));
        m.insert("amount_owed".into(), json!(amount.round()));
        m.insert("kind".into(), json!(kind));
        self.push("labor_dispute", t, m);
    }

    fn police(&mut self, t: Millis, place: usize, kind: &str, deaths: i64, injuries: i64) {
        let mut m = self.header("police_incident", "PI", t, place);
        let id = self.seq.get("police_incident").copied().unwrap_or_default();
        m.insert("incident_id".into(), json!(format!("JQ{id:09}")));
        m.insert("kind".into(), json!(kind));
        m.insert("deaths".into(), json!(deaths));
        m.insert("injuries".into(), json!(injuries));
        let severity = if deaths > 0 {
            4
        } else if injuries > 0 {
            3
        } else {
            self.rng.random_range(1..=2)
        };
        m.insert("severity".into(), json!(severity));
        self.push("police_incident", t, m);
    }

    fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            return 0;
        }
        Poisson::new(mean).map_or(0, |p| p.sample(&mut self.rng) as u64)
    }

    fn background(&mut self) {
        let s = self.opt.scale;
        for day in 0..self.opt.days as i64 {
            let weekend = weekday(self.opt.start + day * DAY + 8 * HOUR) >= 5;
            for hour in 0..24 {
                let t0 = self.opt.start + day * DAY + hour * HOUR;
                let w = hour_weight(hour);
                let office = if weekend { 0.4 } else { 1.0 };
                let counts = [
                    self.poisson(170.0 * s * w),
                    self.poisson(6.0 * s * w * office),
                    self.poisson(2.5 * s * w * office),
                    self.poisson(60.0 * s * w * if weekend { 1.15 } else { 1.0 }),
                ];
                for (f, &n) in counts.iter().enumerate() {
                    for _ in 0..n {
                        let t = t0 + self.rng.random_range(0..HOUR);
                        let place = self.rng.random_range(0..self.places.len());
                        match f {
                            0 => {
                                let topic = self.rng.random_range(0..TOPICS.len());
                                self.opinion(t, place, topic, false)
                            }
                            1 => {
                                let category =
                                    weighted(&mut self.rng, &PETITION_CATEGORIES).to_string();
                                let persons = if self.rng.random::<f64>() < 0.03 {
                                    self.rng.random_range(5..12)
                                } else {
                                    1
                                };
                                self.petition(t, place, &category, persons)
                            }
                            2 => {
                                let e = self.rng.random_range(0..self.enterprises.len());
                                let workers = self.rng.random_range(1..10);
                                let amount = self.rng.random_range(5_000.0..100_000.0);
                                let kind =
                                    *LABOR_KINDS.choose(&mut self.rng).unwrap_or(&"contract");
                                self.labor(t, e, workers, amount, kind)
                            }
                            _ => {
                                let kind = weighted(&mut self.rng, &POLICE_KINDS).to_string();
                                let injuries = if kind == "traffic" {
                                    self.poisson(0.4) as i64
                                } else {
                                    0
                                };
                                self.police(t, place, &kind, 0, injuries)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Late records: `n` events delivered one to two days after their time.
    fn delay(&mut self, n: usize) -> Vec<LateRecord> {
        let mut late = Vec::new();
        for _ in 0..n {
            let feed = *FEEDS.choose(&mut self.rng).unwrap_or(&"petition");
            let Some(list) = self.events.get_mut(feed) else {
                continue;
            };
            if list.is_empty() {
                continue;
            }
            let i = self.rng.random_range(0..list.len());
            let delay = self.rng.random_range(26 * HOUR..48 * HOUR);
            list[i].arrival = list[i].time + delay;
            late.push(LateRecord {
                feed: feed.into(),
                event_id: list[i].body["event_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                delay_hours: delay as f64 / HOUR as f64,
            });
        }
        late
    }

    /// Malformed records: `n` lines put in at random places of the feeds.
    fn break_lines(
        &mut self,
        feeds: &mut BTreeMap<String, Vec<String>>,
        n: usize,
    ) -> Vec<BadRecord> {
        let mut bad = Vec::new();
        let kinds = [
            "invalid_json",
            "not_object",
            "missing_field",
            "bad_type",
            "bad_time",
        ];
        for k in 0..n {
            let feed = FEEDS[k % FEEDS.len()];
            let reason = kinds[(k / FEEDS.len()) % kinds.len()];
            let Some(lines) = feeds.get_mut(feed) else {
                continue;
            };
            let at = self.rng.random_range(0..=lines.len());
            let t = local_time(
                self.opt.start + self.rng.random_range(0..DAY * self.opt.days.max(1) as i64),
            );
            let line = match reason {
                "invalid_json" => format!("{{\"event_id\": \"BAD-{k}\", \"event_time\": \"{t}\""),
                "not_object" => format!("[\"BAD-{k}\", \"{t}\"]"),
                "missing_field" => format!("{{\"event_id\":\"BAD-{k}\",\"event_time\":\"{t}\"}}"),
                "bad_type" => {
                    format!("{{\"event_id\":\"BAD-{k}\",\"event_time\":\"{t}\",\"district\":42}}")
                }
                _ => format!(
                    "{{\"event_id\":\"BAD-{k}\",\"event_time\":\"yesterday\",\"district\":\"西湖区\"}}"
                ),
            };
            lines.insert(at, line);
            for b in bad
                .iter_mut()
                .filter(|b: &&mut BadRecord| b.feed == feed && b.line > at)
            {
                b.line += 1;
            }
            bad.push(BadRecord {
                feed: feed.into(),
                line: at + 1,
                reason: reason.into(),
            });
        }
        bad.sort_by(|a, b| (&a.feed, a.line).cmp(&(&b.feed, b.line)));
        bad
    }
}

/// An incident's key from (column, value) pairs.
fn key(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The id of the generator's enterprise `i`.
fn enterprise_id(i: usize) -> String {
    format!("E{:05}", 10_000 + i * 37)
}

/// Generates the four feeds.
pub fn generate(opt: &GenOptions) -> Generated {
    let mut rng = ChaCha8Rng::seed_from_u64(opt.seed);
    let places = places();
    let enterprises = (0..120)
        .map(|i| {
            let industry = INDUSTRIES[i % INDUSTRIES.len()];
            let place = rng.random_range(0..places.len());
            (enterprise_id(i), industry, place)
        })
        .collect();
    let mut g = Generator {
        rng,
        places,
        enterprises,
        seq: BTreeMap::new(),
        events: BTreeMap::new(),
        opt: opt.clone(),
    };
    g.background();
    let incidents = g.inject();

    let late = g.delay(opt.late);

    let mut feeds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for feed in FEEDS {
        let mut list = g.events.remove(feed).unwrap_or_default();
        list.sort_by_key(|e| (e.arrival, e.time));
        counts.insert(feed.to_string(), list.len());
        feeds.insert(
            feed.to_string(),
            list.into_iter().map(|e| e.body.to_string()).collect(),
        );
    }

    let bad = g.break_lines(&mut feeds, opt.bad);

    Generated {
        feeds,
        manifest: Manifest {
            seed: opt.seed,
            days: opt.days,
            start: local_time(opt.start),
            events: counts,
            late,
            bad,
            incidents,
        },
    }
}

/// Writes `FEED.jsonl` per feed and `manifest.json` into `dir`.
pub fn write(generated: &Generated, dir: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    for (feed, lines) in &generated.feeds {
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(dir.join(format!("{feed}.jsonl")))?);
        for l in lines {
            f.write_all(l.as_bytes())?;
            f.write_all(b"\n")?;
        }
        f.flush()?;
    }
    let manifest =
        serde_json::to_string_pretty(&generated.manifest).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("manifest.json"), manifest + "\n")?;
    reference::write(dir)
}

mod incidents;
pub mod reference;
#[cfg(test)]
mod tests;

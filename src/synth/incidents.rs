//! The incidents `gen` injects on top of the background: surges, a collective
//! petition, a labour cluster, a night spike, deaths, an opinion burst and unrest
//! in two feeds at once, each with its ground truth for the manifest.

use rand::Rng;

use super::{Generator, Incident, TOPICS, key, local_time};
use crate::core::level::Level;
use crate::core::time::{DAY, HOUR, MINUTE, Millis};

impl Generator {
    /// The injected incidents, one after another: their order is the order of
    /// the random draws, so the same seed gives the same bytes.
    pub(super) fn inject(&mut self) -> Vec<Incident> {
        let mut incidents = Vec::new();
        if self.opt.days < 3 {
            return incidents;
        }
        self.petition_surge(&mut incidents);
        self.collective_petition(&mut incidents);
        self.labour_cluster(&mut incidents);
        self.night_spike(&mut incidents);
        self.deaths(&mut incidents);
        self.opinion_burst(&mut incidents);
        self.street_unrest(&mut incidents);
        incidents
    }

    /// The start of day `d` of the generated days (clamped to them).
    fn day(&self, d: i64) -> Millis {
        let days = i64::from(self.opt.days);
        self.opt.start + d.clamp(0, days - 1) * DAY
    }

    /// A petition surge on one street: land acquisition, many of them collective.
    fn petition_surge(&mut self, incidents: &mut Vec<Incident>) {
        let days = i64::from(self.opt.days);
        let place = 3;
        let t0 = self.day(days - 2) + 9 * HOUR;
        let n = 30;
        for _ in 0..n {
            let t = t0 + self.rng.random_range(0..8 * HOUR);
            let persons = if self.rng.random::<f64>() < 0.4 {
                self.rng.random_range(5..30)
            } else {
                1
            };
            self.petition(t, place, "land_acquisition", persons);
        }
        let p = &self.places[place];
        incidents.push(Incident {
            id: "petition_surge".into(),
            feed: "petition".into(),
            kind: "surge".into(),
            description: format!("{n} land-acquisition petitions in one day on {}", p.street),
            key: key(&[("district", p.district), ("street", p.street)]),
            start: local_time(t0),
            end: local_time(t0 + 8 * HOUR),
            events: n,
            level: Level::Orange,
        });
    }

    /// One large collective petition.
    fn collective_petition(&mut self, incidents: &mut Vec<Incident>) {
        let days = i64::from(self.opt.days);
        let place = 40;
        let t = self.day(days - 3) + 10 * HOUR + 15 * MINUTE;
        self.petition(t, place, "wage_arrears", 60);
        let p = &self.places[place];
        incidents.push(Incident {
            id: "collective_petition".into(),
            feed: "petition".into(),
            kind: "collective".into(),
            description: format!("a collective petition of 60 persons on {}", p.street),
            key: key(&[
                ("district", p.district),
                ("street", p.street),
                ("category", "wage_arrears"),
            ]),
            start: local_time(t),
            end: local_time(t + HOUR),
            events: 1,
            level: Level::Orange,
        });
    }

    /// A labour-dispute cluster at one enterprise.
    fn labour_cluster(&mut self, incidents: &mut Vec<Incident>) {
        let days = i64::from(self.opt.days);
        let e = 7;
        let t0 = self.day(days - 2) + 8 * HOUR;
        let n = 12;
        for _ in 0..n {
            let t = t0 + self.rng.random_range(0..10 * HOUR);
            let workers = self.rng.random_range(20..80);
            let amount = self.rng.random_range(200_000.0..800_000.0);
            self.labor(t, e, workers, amount, "wage_arrears");
        }
        let (eid, industry, _) = self.enterprises[e].clone();
        incidents.push(Incident {
            id: "labor_cluster".into(),
            feed: "labor_dispute".into(),
            kind: "cluster".into(),
            description: format!(
                "{n} wage-arrears disputes at enterprise {eid} ({industry}) in one day"
            ),
            key: key(&[("enterprise_id", &eid), ("industry", industry)]),
            start: local_time(t0),
            end: local_time(t0 + 10 * HOUR),
            events: n,
            level: Level::Orange,
        });
    }

    /// A spike of incidents in one grid at night.
    fn night_spike(&mut self, incidents: &mut Vec<Incident>) {
        let days = i64::from(self.opt.days);
        let place = 77;
        let t0 = self.day(days - 1) + 21 * HOUR;
        let n = 25;
        for _ in 0..n {
            let t = t0 + self.rng.random_range(0..HOUR);
            let kind = if self.rng.random::<f64>() < 0.5 {
                "public_order"
            } else {
                "dispute"
            };
            let injuries = self.poisson(0.3) as i64;
            self.police(t, place, kind, 0, injuries);
        }
        let p = &self.places[place];
        incidents.push(Incident {
            id: "police_spike".into(),
            feed: "police_incident".into(),
            kind: "spike".into(),
            description: format!("{n} public-order incidents in one hour in grid {}", p.grid),
            key: key(&[("district", p.district), ("grid_id", &p.grid)]),
            start: local_time(t0),
            end: local_time(t0 + HOUR),
            events: n,
            level: Level::Orange,
        });
    }

    /// An accident with three deaths, and a homicide (negative list).
    fn deaths(&mut self, incidents: &mut Vec<Incident>) {
        let days = i64::from(self.opt.days);
        let place = 20;
        let t = self.day(days - 1) + 7 * HOUR + 40 * MINUTE;
        self.police(t, place, "traffic", 3, 5);
        let p = &self.places[place];
        incidents.push(Incident {
            id: "three_deaths".into(),
            feed: "police_incident".into(),
            kind: "negative_list".into(),
            description: "a traffic accident with 3 deaths".into(),
            key: key(&[("district", p.district)]),
            start: local_time(t),
            end: local_time(t + HOUR),
            events: 1,
            level: Level::Red,
        });
        let place = 60;
        let t = self.day(days - 2) + 23 * HOUR + 10 * MINUTE;
        self.police(t, place, "homicide", 1, 0);
        let p = &self.places[place];
        incidents.push(Incident {
            id: "homicide".into(),
            feed: "police_incident".into(),
            kind: "negative_list".into(),
            description: "a homicide".into(),
            key: key(&[("district", p.district)]),
            start: local_time(t),
            end: local_time(t + HOUR),
            events: 1,
            level: Level::Orange,
        });
    }

    /// A burst of negative posts on one topic.
    fn opinion_burst(&mut self, incidents: &mut Vec<Incident>) {
        let days = i64::from(self.opt.days);
        let topic = 2;
        let t0 = self.day(days - 2) + 20 * HOUR;
        let n = 400;
        for _ in 0..n {
            let t = t0 + self.rng.random_range(0..30 * MINUTE);
            let place = self.rng.random_range(0..self.places.len());
            self.opinion(t, place, topic, true);
        }
        incidents.push(Incident {
            id: "opinion_burst".into(),
            feed: "public_opinion".into(),
            kind: "burst".into(),
            description: format!(
                "{n} negative posts on {} within 30 minutes",
                TOPICS[topic].0
            ),
            key: key(&[("topic", TOPICS[topic].0)]),
            start: local_time(t0),
            end: local_time(t0 + 30 * MINUTE),
            events: n,
            level: Level::Orange,
        });
    }

    /// Trouble on the petition surge's street the same afternoon: a burst of
    /// disputes in its grid. Two feeds anomalous in one district at once is what
    /// the compound pipeline raises one level up.
    fn street_unrest(&mut self, incidents: &mut Vec<Incident>) {
        let days = i64::from(self.opt.days);
        let place = 3;
        let t0 = self.day(days - 2) + 14 * HOUR;
        let n = 12;
        for _ in 0..n {
            let t = t0 + self.rng.random_range(0..HOUR);
            self.police(t, place, "dispute", 0, 0);
        }
        let p = &self.places[place];
        incidents.push(Incident {
            id: "street_unrest".into(),
            feed: "police_incident".into(),
            kind: "spike".into(),
            description: format!(
                "{n} disputes in one hour in grid {} during the petition surge",
                p.grid
            ),
            key: key(&[("district", p.district), ("grid_id", &p.grid)]),
            start: local_time(t0),
            end: local_time(t0 + HOUR),
            events: n,
            level: Level::Yellow,
        });
    }
}

//! The routing table's unit tests: most specific route, templates, located mistakes.

use super::*;
use crate::alert::{Measure, Status};
use crate::core::key::Cell;

/// The feeds of the shipped schemas.
fn feeds() -> BTreeSet<String> {
    let catalog = crate::schema::Catalog::embedded().expect("schemas");
    catalog.feeds.keys().cloned().collect()
}

fn alert(pipeline: &str, feed: &str, labels: &[(&str, &str)]) -> Alert {
    Alert {
        alert_id: String::new(),
        incident_id: String::new(),
        status: Status::Firing,
        level: Level::Orange,
        pipeline: pipeline.into(),
        feeds: vec![feed.into()],
        key: labels
            .iter()
            .map(|(k, v)| (k.to_string(), Cell::Text(v.to_string())))
            .collect(),
        window_start: 0,
        window_end: 0,
        measure: Measure {
            value: 0.0,
            expected: None,
            threshold: None,
            score: None,
            p_value: None,
            method: String::new(),
            explanation: None,
        },
        summary: String::new(),
        event_ids: vec![],
    }
}

#[test]
fn the_most_specific_route_wins_per_track() {
    let t = RoutingTable::embedded(&feeds()).unwrap();
    let police = alert(
        "police_grid_hour",
        "police_incident",
        &[("district", "西湖区"), ("street", "北山街道")],
    );
    assert_eq!(t.department(&police, Track::Legal), "西湖公安分局");
    assert_eq!(
        t.department(&police, Track::Opinion),
        "区委宣传部（网信办）"
    );
    assert_eq!(
        t.department(&police, Track::Control),
        "北山街道、西湖公安分局"
    );
    let land = alert(
        "petition_collective",
        "petition",
        &[("district", "西湖区"), ("category", "land_acquisition")],
    );
    assert_eq!(t.department(&land, Track::Legal), "区委信访局、区征迁办");
    assert_eq!(
        t.department(&land, Track::Control),
        "属地街道（镇）、西湖公安分局"
    );
    let key = &police.key;
    let first = t.step("西湖公安分局", 0, key).expect("a first step");
    assert_eq!(first.to, "区委政法委");
    let second = t.step("西湖公安分局", 1, key).expect("a second step");
    assert_ne!(second.to, first.to, "the chain climbs");
    assert_eq!(t.step("西湖公安分局", 9, key), None, "the chain ends");
    assert_eq!(t.deadline(Level::Red), HOUR);
    assert!(t.completion(Level::Red) > t.deadline(Level::Red));
    // A pipeline route beats a feed route.
    let compound = alert(
        "district_compound_risk",
        "police_incident",
        &[("district", "西湖区")],
    );
    assert_eq!(t.department(&compound, Track::Legal), "区委政法委");
}

#[test]
fn mistakes_are_located() {
    let text = "open_at = \"purple\"\n[deadlines.acknowledge]\nred = \"1h\"\nmauve = \"2h\"\n[default]\nlegal = \"a\"\nopinion = \"b\"\ncontrol = \"c\"\n[[route]]\nfeed = \"weather\"\nlegal = \"x\"\n[[route]]\nfeed = \"petition\"\nlegal = \"y\"\n[[route]]\nfeed = \"petition\"\nlegal = \"z\"\n";
    let err = RoutingTable::parse(Path::new("r.toml"), text, &feeds()).unwrap_err();
    let shown: Vec<String> = err.iter().map(|d| d.to_string()).collect();
    assert!(
        shown[0].starts_with("r.toml:1:11: unknown level `purple`"),
        "{shown:?}"
    );
    assert!(
        shown[1].starts_with("r.toml:4:1: unknown level `mauve`"),
        "{shown:?}"
    );
    assert!(
        shown[2].starts_with("r.toml:10:8: unknown feed `weather`"),
        "{shown:?}"
    );
    assert!(
        shown[3].starts_with("r.toml:15:1: unreachable route"),
        "{shown:?}"
    );
    assert_eq!(shown.len(), 4, "{shown:?}");
    let unknown_track = "[default]\nlegal = \"a\"\nopinion = \"b\"\ncontrol = \"c\"\n[[route]]\nfeed = \"petition\"\npropaganda = \"x\"\n";
    let err = RoutingTable::parse(Path::new("r.toml"), unknown_track, &feeds()).unwrap_err();
    assert!(err[0].to_string().starts_with("r.toml:"), "{}", err[0]);
    assert!(err[0].to_string().contains("propaganda"), "{}", err[0]);
}

/// A key enterprise's alert goes to the department its reference row names;
/// an enterprise the table does not list falls back to the default; a route on
/// an attribute matches only rows with that value.
#[test]
fn reference_attributes_route_and_fill_departments() {
    let catalog = crate::schema::Catalog::embedded().expect("schemas");
    let text = format!(
        "{}\n[[route]]\npipeline = \"labor_key_enterprise_day\"\nattribute = {{ \"key_enterprises.arrears_history\" = \"true\" }}\ncontrol = \"{{grids.worker}}\"\n\n[[route]]\nfeed = \"labor_dispute\"\ngrid_id = \"XH-01-22\"\nopinion = \"{{grid_id}} 网格舆情员\"\n",
        EMBEDDED
    );
    let t = RoutingTable::parse(Path::new("r.toml"), &text, &feeds())
        .and_then(|r| r.with_tables(&catalog.tables))
        .expect("routing");
    let key = |enterprise: &str| {
        alert(
            "labor_key_enterprise_day",
            "labor_dispute",
            &[
                ("district", "西湖区"),
                ("street", "北山街道"),
                ("grid_id", "XH-01-21"),
                ("enterprise_id", enterprise),
            ],
        )
    };
    // E10000: construction, owed wages before; E10185: services, never.
    assert_eq!(
        t.department(&key("E10000"), Track::Legal),
        "区住建局（建设工程欠薪专班）"
    );
    assert_eq!(
        t.department(&key("E10185"), Track::Legal),
        "区人社局（劳动保障监察大队）"
    );
    assert_eq!(t.department(&key("E99999"), Track::Legal), "区人社局");
    assert_eq!(
        t.department(&key("E10000"), Track::Control),
        "北山街道网格员（XH-01-21）"
    );
    assert_eq!(
        t.department(&key("E10185"), Track::Control),
        "北山街道、西湖公安分局"
    );
    // A route on a grid.
    let elsewhere = alert(
        "labor_key_enterprise_day",
        "labor_dispute",
        &[("street", "北山街道"), ("grid_id", "XH-01-22")],
    );
    assert_eq!(
        t.department(&elsewhere, Track::Opinion),
        "XH-01-22 网格舆情员"
    );
    assert_eq!(
        t.department(&key("E10185"), Track::Opinion),
        "区委宣传部（网信办）"
    );
}

//! What the task and daemon tests share: a rules pipeline over police incidents
//! per street and hour, and the incidents of one street that it turns orange,
//! then red, then resolved.

/// Orange at 3 incidents an hour, red at 6; lateness 0.
pub const GRID_RULES: &str = r#"name = "grid_rules"
lateness = "0s"
sql = """
SELECT district, street, count(*) AS n
FROM police_incident
GROUP BY district, street, tumble(INTERVAL '1 hour')
"""

[[rule]]
when = "n >= 3"
level = "orange"

[[rule]]
when = "n >= 6"
level = "red"
"#;

/// One police incident on 北山街道, 西湖区.
pub fn incident(i: usize, time: &str) -> String {
    format!(
        r#"{{"event_id":"PI-{i:04}","event_time":"{time}","district":"西湖区","street":"北山街道","grid_id":"XH-01-21","kind":"dispute","deaths":0,"injuries":0}}"#
    )
}

/// 3 incidents in 01:00–02:00 (orange), 7 in 02:00–03:00 (red), one at 10:30 and
/// one at 12:10 (normal: the incident resolves at 11:00).
pub fn escalating_incidents() -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    for m in [5, 20, 40] {
        i += 1;
        out.push(incident(i, &format!("2026-03-14T01:{m:02}:00Z")));
    }
    for m in [1, 9, 17, 25, 33, 41, 49] {
        i += 1;
        out.push(incident(i, &format!("2026-03-14T02:{m:02}:00Z")));
    }
    out.push(incident(90, "2026-03-14T10:30:00Z"));
    out.push(incident(91, "2026-03-14T12:10:00Z"));
    out
}

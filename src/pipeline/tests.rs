//! Unit tests of the parent module.

use super::*;

#[test]
fn every_mistake_is_reported_with_its_position() {
    let text = "name = \"x\"\nlateness = \"5 fortnights\"\ncolour = \"red\"\nsql = \"\"\"\nSELECT count(*) FROM petition GROUP BY tumble(INTERVAL '1 hour')\n\"\"\"\n";
    let err = parse_pipeline(Path::new("p.toml"), text).unwrap_err();
    let shown: Vec<String> = err.iter().map(|d| d.to_string()).collect();
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(
        shown[0].starts_with("p.toml:2:12: bad lateness"),
        "{shown:?}"
    );
    assert!(
        shown[1].starts_with("p.toml:3:1: unknown key `colour`"),
        "{shown:?}"
    );
}

#[test]
fn sql_positions_map_into_the_file() {
    let text =
        "name = \"x\"\nlateness = \"5m\"\nsql = \"\"\"\nSELECT nope\nFROM petition\n\"\"\"\n";
    let def = parse_pipeline(Path::new("p.toml"), text).unwrap();
    let d = def.sql_diag(2, 6, "m".into());
    assert_eq!((d.line, d.col), (5, 6));
}

#[test]
fn shipped_pipelines_parse() {
    let defs = embedded().unwrap();
    assert_eq!(defs.len(), 11);
}

#[test]
fn shipped_pipelines_read_only_feeds_not_reference_tables() {
    let catalog = Catalog::embedded().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let compiled = rt.block_on(compile_embedded(&catalog)).unwrap();
    let homicide = compiled
        .pipelines
        .iter()
        .find(|p| p.def.name == "negative_list_homicide_rate")
        .expect("shipped");
    assert_eq!(
        homicide.query.feeds.iter().collect::<Vec<_>>(),
        ["police_incident"]
    );
    for p in &compiled.pipelines {
        for f in &p.query.feeds {
            assert!(catalog.feeds.contains_key(f), "{}: {f}", p.def.name);
        }
    }
}

/// The columns a query reads, by name, as its scans project them.
fn read_columns(sql: &str, feed: &str) -> Option<Vec<String>> {
    let catalog = Catalog::embedded().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let q = rt
        .block_on(crate::query::compile(sql, &catalog))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let schema = &catalog.get(feed).unwrap().fields;
    q.columns[feed].as_ref().map(|set| {
        set.iter()
            .filter_map(|&i| schema.get(i).map(|f| f.name.clone()))
            .collect()
    })
}

#[test]
fn a_query_reads_only_the_columns_it_names() {
    let read = read_columns(
        "SELECT district, topic, count(*) AS n, sum(reach) AS r FROM public_opinion \
         WHERE sentiment < 0 GROUP BY district, topic, tumble(INTERVAL '1 minute')",
        "public_opinion",
    )
    .expect("a projection");
    // The window comes from the operator's window columns, not from event_time.
    for c in ["district", "topic", "reach", "sentiment"] {
        assert!(read.contains(&c.to_string()), "{c} missing from {read:?}");
    }
    for c in ["author_id", "keywords", "text", "street", "platform"] {
        assert!(!read.contains(&c.to_string()), "{c} in {read:?}");
    }
    // Whatever the SQL names anywhere is read: a filter, a distinct count.
    let read = read_columns(
        "SELECT district, count(DISTINCT author_id) AS authors FROM public_opinion \
         WHERE array_has(keywords, '欠薪') GROUP BY district, tumble(INTERVAL '1 hour')",
        "public_opinion",
    )
    .expect("a projection");
    for c in ["district", "author_id", "keywords"] {
        assert!(read.contains(&c.to_string()), "{c} missing from {read:?}");
    }
}

#[test]
fn the_decoder_builds_only_what_some_pipeline_reads() {
    let catalog = Catalog::embedded().unwrap();
    let schema = catalog.get("public_opinion").unwrap();
    let reads = [Some(
        [schema.index_of("topic").unwrap()].into_iter().collect(),
    )];
    let build = crate::decode::columns_to_build(schema, &reads);
    let built: Vec<&str> = schema
        .fields
        .iter()
        .zip(build.iter())
        .filter(|(_, b)| **b)
        .map(|(f, _)| f.name.as_str())
        .collect();
    assert_eq!(built, ["event_id", "event_time", "district", "topic"]);
    // A pipeline reading everything (no projection) builds every column.
    let all = crate::decode::columns_to_build(schema, &[reads[0].clone(), None]);
    assert!(all.iter().all(|b| *b));
}

#[test]
fn the_fingerprint_changes_with_the_sql_and_the_detector_only() {
    let text = "name = \"x\"\nlateness = \"5m\"\nsql = \"\"\"\nSELECT count(*) AS n FROM petition GROUP BY tumble(INTERVAL '1 hour')\n\"\"\"\n";
    let a = parse_pipeline(Path::new("p.toml"), text).unwrap();
    let described = format!("description = \"words\"\n{text}");
    let b = parse_pipeline(Path::new("q.toml"), &described).unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    let sql = text.replace("1 hour", "2 hours");
    let c = parse_pipeline(Path::new("p.toml"), &sql).unwrap();
    assert_ne!(a.fingerprint(), c.fingerprint());
    let rule = format!("{text}[[rule]]\nwhen = \"n >= 3\"\nlevel = \"red\"\n");
    let d = parse_pipeline(Path::new("p.toml"), &rule).unwrap();
    assert_ne!(a.fingerprint(), d.fingerprint());
}

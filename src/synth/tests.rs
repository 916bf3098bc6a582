//! Unit tests of the parent module.

use super::*;

#[test]
fn same_seed_same_bytes_and_bad_lines_where_the_manifest_says() {
    let opt = GenOptions {
        days: 3,
        late: 5,
        bad: 10,
        scale: 0.2,
        ..Default::default()
    };
    let a = generate(&opt);
    let b = generate(&opt);
    assert_eq!(a.feeds, b.feeds);
    assert_eq!(a.manifest.incidents.len(), 8);
    for bad in &a.manifest.bad {
        let line = &a.feeds[&bad.feed][bad.line - 1];
        assert!(
            line.contains("BAD-") || line.contains("yesterday"),
            "{bad:?}: {line}"
        );
    }
    let c = generate(&GenOptions { seed: 8, ..opt });
    assert_ne!(a.feeds, c.feeds);
}

//! The reference files `yujing gen` writes beside its feeds: the shipped tables
//! of the generator's districts (`examples/reference/`, see
//! [`crate::reference::shipped`]), and a `yujing.toml` that declares them and
//! names the feeds as replay inputs, so `yujing replay --config DIR/yujing.toml`
//! runs the generated data with its tables.

use crate::reference::shipped;

/// Writes `dir/reference/*` and `dir/yujing.toml`.
pub fn write(dir: &std::path::Path) -> std::io::Result<()> {
    let reference = dir.join("reference");
    std::fs::create_dir_all(&reference)?;
    for (name, text) in shipped::FILES {
        std::fs::write(reference.join(name), text)?;
    }
    let mut config = String::from(
        "# Written by `yujing gen`: its feeds and reference tables.\n\n[replay.inputs]\n",
    );
    for feed in super::FEEDS {
        config.push_str(&format!("{feed} = \"{feed}.jsonl\"\n"));
    }
    config.push('\n');
    config.push_str(&shipped::DECLARATIONS.replace("file = \"", "file = \"reference/"));
    std::fs::write(dir.join("yujing.toml"), config)
}

#[cfg(test)]
mod tests {
    use super::super::{DISTRICTS, INDUSTRIES, enterprise_id, places};
    use crate::reference::shipped;

    fn file(name: &str) -> &'static str {
        shipped::FILES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .expect("shipped file")
    }

    /// The shipped tables describe the generator's own places and enterprises.
    #[test]
    fn shipped_tables_match_the_generator() {
        let grids: Vec<String> = file("grids.csv")
            .lines()
            .skip(1)
            .map(str::to_string)
            .collect();
        let places = places();
        assert_eq!(grids.len(), places.len());
        for (line, p) in grids.iter().zip(&places) {
            let want = format!(
                "{},{},{},{},{}网格员（{}）",
                p.grid, p.community, p.street, p.district, p.street, p.grid
            );
            assert_eq!(line, &want);
        }
        let enterprises: Vec<&str> = file("key_enterprises.csv").lines().skip(1).collect();
        for (n, line) in enterprises.iter().enumerate() {
            let i = n * 5;
            assert!(
                line.starts_with(&format!("{},{},", enterprise_id(i), INDUSTRIES[i % 6])),
                "{line}"
            );
        }
        let streets: usize = DISTRICTS.iter().map(|d| d.2.len()).sum();
        assert_eq!(file("street_targets.csv").lines().count(), streets + 1);
    }
}

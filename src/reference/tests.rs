//! Reading reference files: types, pseudonyms, located mistakes, versions, reloads.

use super::*;

fn def(file: &Path) -> TableDef {
    toml::from_str(&format!(
        r#"
file = "{}"
key = "enterprise_id"
columns = [
  {{ name = "enterprise_id", type = "string", required = true }},
  {{ name = "owner_department", type = "string" }},
  {{ name = "workers", type = "int" }},
  {{ name = "legal_rep", type = "string", pii = true }},
]
"#,
        file.display()
    ))
    .expect("table definition")
}

const KEY: [u8; 32] = [7; 32];

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn csv_rows_are_typed_and_pii_is_pseudonymised_as_the_feeds_are() {
    let dir = tempfile::tempdir().expect("dir");
    let file = write(
        dir.path(),
        "e.csv",
        "enterprise_id,owner_department,workers,legal_rep\nE1,区人社局,120,张三\nE2,,,\n",
    );
    let t = ReferenceTable::load("e", &def(&file), Path::new(""), KEY).expect("loads");
    assert_eq!(t.rows(), 2);
    assert_eq!(t.version(), 1);
    assert_eq!(
        t.attribute(0, "E1", "owner_department").as_deref(),
        Some("区人社局")
    );
    assert_eq!(t.attribute(0, "E1", "workers").as_deref(), Some("120"));
    assert_eq!(
        t.attribute(0, "E2", "owner_department"),
        None,
        "empty is null"
    );
    let hashed = t.attribute(0, "E1", "legal_rep").expect("pseudonym");
    assert_eq!(hashed, &*crate::core::pseudonym::pseudonym(&KEY, "张三"));
    assert!(!hashed.contains("张三"));
}

#[test]
fn mistakes_name_the_file_and_line() {
    let dir = tempfile::tempdir().expect("dir");
    let file = write(
        dir.path(),
        "e.csv",
        "enterprise_id,owner_department,workers,legal_rep\nE1,a,12,x\nE2,b,many,y\n,c,3,z\nE1,d,4,w\n",
    );
    let err = ReferenceTable::load("e", &def(&file), Path::new(""), KEY).unwrap_err();
    let shown: Vec<String> = err.iter().map(ToString::to_string).collect();
    let at = |line: usize| format!("{}:{line}:", file.display());
    assert!(shown[0].starts_with(&at(3)), "{shown:?}");
    assert!(shown[0].contains("`many` is not an integer"), "{shown:?}");
    assert!(
        shown[1].starts_with(&at(4)) && shown[1].contains("required"),
        "{shown:?}"
    );
    assert!(
        shown[2].starts_with(&at(5)) && shown[2].contains("key `E1` again"),
        "{shown:?}"
    );
    assert_eq!(shown.len(), 3);

    let jsonl = write(
        dir.path(),
        "e.jsonl",
        "{\"enterprise_id\":\"E1\",\"workers\":12}\n\n{\"enterprise_id\":\"E2\",\"workers\":\"12\",\"boss\":1}\n",
    );
    let mut d = def(&jsonl);
    d.file = jsonl.clone();
    let err = ReferenceTable::load("e", &d, Path::new(""), KEY).unwrap_err();
    let shown: Vec<String> = err.iter().map(ToString::to_string).collect();
    let at = format!("{}:3:", jsonl.display());
    assert!(shown.iter().all(|s| s.starts_with(&at)), "{shown:?}");
    assert!(
        shown.iter().any(|s| s.contains("`boss` is not declared")),
        "{shown:?}"
    );
    assert!(
        shown.iter().any(|s| s.contains("expected an integer")),
        "{shown:?}"
    );

    let header = write(dir.path(), "h.csv", "enterprise_id,dept\nE1,x\n");
    let err = ReferenceTable::load("e", &def(&header), Path::new(""), KEY).unwrap_err();
    let shown: Vec<String> = err.iter().map(ToString::to_string).collect();
    assert!(
        shown.iter().any(|s| s.contains("`dept` is not declared")),
        "{shown:?}"
    );
    assert!(
        shown.iter().any(|s| s.contains("no column `workers`")),
        "{shown:?}"
    );
}

#[test]
fn a_dated_version_is_in_force_from_its_time_and_a_changed_file_is_read_again() {
    let dir = tempfile::tempdir().expect("dir");
    let head = "enterprise_id,owner_department,workers,legal_rep\n";
    let first = write(dir.path(), "a.csv", &format!("{head}E1,甲,1,x\n"));
    let later = write(dir.path(), "b.csv", &format!("{head}E1,乙,1,x\n"));
    let mut d = def(&first);
    d.versions.push(VersionDef {
        from: "2026-03-15T00:00:00+08:00".into(),
        file: later,
    });
    let t = ReferenceTable::load("e", &d, Path::new(""), KEY).expect("loads");
    let from = parse_rfc3339("2026-03-15T00:00:00+08:00").expect("time");
    assert_eq!(
        t.attribute(from - 1, "E1", "owner_department").as_deref(),
        Some("甲")
    );
    assert_eq!(
        t.attribute(from, "E1", "owner_department").as_deref(),
        Some("乙")
    );

    assert_eq!(t.reload(), Ok(Reloaded::Unchanged));
    std::fs::write(&first, format!("{head}E1,丙,1,x\nE2,丁,2,y\n")).expect("write");
    assert_eq!(t.reload(), Ok(Reloaded::Changed(2)));
    assert_eq!(t.version(), 2);
    assert_eq!(
        t.attribute(0, "E1", "owner_department").as_deref(),
        Some("丙")
    );
    assert_eq!(
        t.attribute(from, "E1", "owner_department").as_deref(),
        Some("乙")
    );
    // A file that no longer reads leaves the version in use.
    std::fs::write(&first, format!("{head}E1,丙,lots,x\n")).expect("write");
    assert!(t.reload().is_err());
    assert_eq!(
        t.attribute(0, "E2", "owner_department").as_deref(),
        Some("丁")
    );
}

/// A personal key named twice is reported without its value.
#[test]
fn a_personal_key_is_never_repeated_in_a_mistake() {
    let dir = tempfile::tempdir().expect("dir");
    let file = write(dir.path(), "p.csv", "petitioner_id,note\n张三,a\n张三,b\n");
    let d: TableDef = toml::from_str(&format!(
        r#"
file = "{}"
key = "petitioner_id"
columns = [
  {{ name = "petitioner_id", type = "string", required = true, pii = true }},
  {{ name = "note", type = "string" }},
]
"#,
        file.display()
    ))
    .expect("definition");
    let err = ReferenceTable::load("p", &d, Path::new(""), KEY).unwrap_err();
    let shown = err[0].to_string();
    assert!(
        shown.contains(":3:1: key (personal, withheld) again"),
        "{shown}"
    );
    assert!(!shown.contains("张三"), "{shown}");
}

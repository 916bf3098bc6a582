//! Cases as data, in the spirit of DataFusion's sqllogictest: what `yujing
//! check` says about a folder of mistakes (`tests/check/<case>/`, with its
//! `expected.txt`) and how window calls in SQL are rewritten (`tests/sql/*.slt`).
//! A case without its expectation fails; `YUJING_BLESS=1` writes them all, for
//! review.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir)
}

fn bless() -> bool {
    std::env::var_os("YUJING_BLESS").is_some()
}

fn entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| keep(p))
        .collect();
    found.sort();
    found
}

/// `yujing check` on a case folder: its `pipelines/` and `yujing.toml`, as
/// present. Returns what it printed, with the folder's path as `$CASE`.
fn check(case: &Path) -> (bool, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_yujing"));
    c.arg("check");
    if case.join("pipelines").is_dir() {
        c.arg("--pipelines").arg(case.join("pipelines"));
    }
    if case.join("yujing.toml").is_file() {
        c.arg("--config").arg(case.join("yujing.toml"));
    }
    let out = c.output().expect("run check");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (
        out.status.success(),
        text.replace(&case.display().to_string(), "$CASE"),
    )
}

#[test]
fn check_reports_each_case_as_expected() {
    let mut failures = Vec::new();
    for case in entries(&root("check"), |p| p.is_dir()) {
        let (ok, got) = check(&case);
        if ok {
            failures.push(format!("{}: check passed\n{got}", case.display()));
        }
        let expected = case.join("expected.txt");
        if bless() {
            std::fs::write(&expected, &got).expect("write");
            continue;
        }
        match std::fs::read_to_string(&expected) {
            Ok(want) if want == got => {}
            Ok(want) => failures.push(format!("{}:\n got:\n{got}\nwant:\n{want}", case.display())),
            Err(e) => failures.push(format!(
                "{}: {e} (YUJING_BLESS=1 writes it)",
                expected.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// One record of a `.slt` file: `rewrite` or `error`, the SQL up to `----`,
/// then the expected lines up to a blank line.
struct Record {
    /// The `#` lines before it.
    comments: Vec<String>,
    kind: String,
    sql: String,
    expected: Vec<String>,
}

fn records(text: &str) -> Vec<Record> {
    let mut out = Vec::new();
    let mut comments = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with('#') {
            comments.push(line.to_string());
        }
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let kind = line.trim().to_string();
        let mut sql = Vec::new();
        for l in lines.by_ref() {
            if l == "----" {
                break;
            }
            sql.push(l);
        }
        let mut expected = Vec::new();
        while let Some(l) = lines.next_if(|l| !l.trim().is_empty()) {
            expected.push(l.to_string());
        }
        out.push(Record {
            comments: std::mem::take(&mut comments),
            kind,
            sql: sql.join("\n"),
            expected,
        });
    }
    out
}

/// What the rewrite makes of a record's SQL: the window and the SQL, or each
/// mistake as `line:col: message`.
fn outcome(kind: &str, sql: &str) -> Vec<String> {
    match (kind, yujing::query::rewrite::rewrite_sql(sql)) {
        ("rewrite", Ok((window, rewritten))) => vec![window.to_string(), rewritten],
        ("error", Err(errors)) => errors
            .iter()
            .map(|e| format!("{}:{}: {}", e.line, e.col, e.message))
            .collect(),
        (_, Ok((window, rewritten))) => vec![format!("unexpected rewrite: {window} {rewritten}")],
        (_, Err(errors)) => vec![format!("unexpected error: {errors:?}")],
    }
}

#[test]
fn sql_rewrites_match_their_expected_output() {
    let mut failures = Vec::new();
    for file in entries(&root("sql"), |p| p.extension().is_some_and(|e| e == "slt")) {
        let text = std::fs::read_to_string(&file).expect("read");
        let mut blessed = String::new();
        for r in records(&text) {
            let got = outcome(&r.kind, &r.sql);
            for c in &r.comments {
                blessed.push_str(&format!("{c}\n"));
            }
            blessed.push_str(&format!(
                "{}\n{}\n----\n{}\n\n",
                r.kind,
                r.sql,
                got.join("\n")
            ));
            if got != r.expected {
                failures.push(format!(
                    "{}: {}\n got: {got:#?}\nwant: {:#?}",
                    file.display(),
                    r.sql,
                    r.expected
                ));
            }
        }
        if bless() {
            std::fs::write(&file, blessed.trim_end().to_string() + "\n").expect("write");
        }
    }
    assert!(bless() || failures.is_empty(), "{}", failures.join("\n\n"));
}

//! The code's shape, held as tests: no file in `src/` over 600 lines, no function
//! over 80, and no two modules that import each other, directly or in a loop. A
//! file or function may be longer where a comment containing `layout: long`
//! says why, on the file's first lines or just above the function.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 80;

fn sources() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read");
                out.push((path, text));
            }
        }
    }
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The line without its string literals and `//` comment, so braces inside them
/// are not counted.
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '/' if chars.peek() == Some(&'/') => break,
            '\'' => {
                // A char literal such as '{' or '\'' (a lifetime has no closing quote).
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') {
                    chars.nth(2);
                } else if rest.chars().nth(1) == Some('\'') {
                    chars.nth(1);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

fn is_fn_start(code: &str) -> Option<String> {
    let t = code.trim_start();
    let mut words = t.split_whitespace().peekable();
    while let Some(w) = words.peek() {
        if w.starts_with("pub") || ["async", "const", "unsafe", "extern"].contains(w) {
            words.next();
        } else {
            break;
        }
    }
    if words.next() != Some("fn") {
        return None;
    }
    let name = words.next()?;
    Some(name.split(['(', '<']).next().unwrap_or(name).to_string())
}

/// Every function: (name, first line, number of lines).
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<String> = text.lines().map(code_of).collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some(name) = is_fn_start(line) else {
            continue;
        };
        let mut depth = 0i64;
        let mut opened = false;
        for (i, l) in lines.iter().enumerate().skip(start) {
            for c in l.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    ';' if !opened && depth == 0 => break,
                    _ => {}
                }
            }
            if !opened && l.trim_end().ends_with(';') {
                break; // a declaration without a body
            }
            if opened && depth <= 0 {
                found.push((name.clone(), start + 1, i - start + 1));
                break;
            }
        }
    }
    found
}

/// Whether a `layout: long` comment stands in the few lines above `line` (1-based).
fn excused(text: &str, line: usize) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    let from = line.saturating_sub(8);
    lines[from..line.saturating_sub(1)]
        .iter()
        .any(|l| l.contains("layout: long"))
}

#[test]
fn no_file_over_600_lines_and_no_function_over_80() {
    let mut too_long = Vec::new();
    for (path, text) in sources() {
        let n = text.lines().count();
        if n > MAX_FILE_LINES && !text.lines().take(20).any(|l| l.contains("layout: long")) {
            too_long.push(format!("{}: {n} lines", relative(&path)));
        }
        for (name, line, len) in functions(&text) {
            if len > MAX_FN_LINES && !excused(&text, line) {
                too_long.push(format!(
                    "{}:{line}: fn {name} is {len} lines",
                    relative(&path)
                ));
            }
        }
    }
    assert!(too_long.is_empty(), "too long:\n{}", too_long.join("\n"));
}

#[test]
fn the_function_finder_sees_functions() {
    let text = "fn a() {\n    let s = \"}\";\n}\npub(crate) async fn b<T>(x: T)\nwhere T: Copy,\n{\n    if true { }\n}\nfn c();\n";
    assert_eq!(
        functions(text),
        vec![("a".to_string(), 1, 3), ("b".to_string(), 4, 5)]
    );
}

/// The module a file defines: `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`.
fn module_of(path: &Path) -> Option<String> {
    let rel = path
        .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
        .ok()?;
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    if parts == ["main"] || parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    Some(parts.join("::"))
}

/// The modules a file names through `crate::…` and `super::…` paths outside its
/// tests, resolved to the longest module that exists.
fn imports(
    module: &str,
    is_mod_rs: bool,
    text: &str,
    modules: &BTreeSet<String>,
) -> BTreeSet<String> {
    let body = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut found = BTreeSet::new();
    let parent: Vec<&str> = {
        let mut p: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        if !is_mod_rs {
            p.pop();
        }
        p
    };
    for line in body.lines() {
        let code = code_of(line);
        for (prefix, base) in [("crate::", Vec::new()), ("super::", parent.clone())] {
            let mut rest = code.as_str();
            while let Some(at) = rest.find(prefix) {
                let path: String = rest[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let mut parts: Vec<String> = base.iter().map(|s| s.to_string()).collect();
                parts.extend(
                    path.split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                );
                while !parts.is_empty() {
                    let candidate = parts.join("::");
                    if modules.contains(&candidate) {
                        found.insert(candidate);
                        break;
                    }
                    parts.pop();
                }
                rest = &rest[at + prefix.len()..];
            }
        }
    }
    found.remove(module);
    found
}

#[test]
fn no_two_modules_import_each_other_directly_or_in_a_loop() {
    let files: Vec<(String, bool, String)> = sources()
        .into_iter()
        .filter_map(|(path, text)| {
            let is_mod = path
                .file_name()
                .is_some_and(|f| f == "mod.rs" || f == "lib.rs");
            module_of(&path).map(|m| (m, is_mod, text))
        })
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|(m, _, _)| m.clone()).collect();
    let graph: BTreeMap<String, BTreeSet<String>> = files
        .iter()
        .map(|(m, is_mod, text)| {
            // A folder's mod.rs declares its children; that is not an import.
            let mut deps = imports(m, *is_mod, text, &modules);
            deps.retain(|d| !d.starts_with(&format!("{m}::")) || !*is_mod);
            (m.clone(), deps)
        })
        .collect();
    // A loop is a path from a module back to itself.
    let mut loops = Vec::new();
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for next in graph.get(&at).into_iter().flatten() {
                if next == start {
                    loops.push(path.join(" → ") + " → " + start);
                } else if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    assert!(loops.is_empty(), "import loops:\n{}", loops.join("\n"));
}

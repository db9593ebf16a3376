//! kube-sim's top-level modules ("rooms") import each other in one direction only: a room may
//! use a lower one, never a higher one, so no two rooms form a circle. This test reads every
//! `crate::ROOM` path (and every `super::` chain that climbs to the crate root) in `src/` and
//! checks it against the order below; a new top-level module must be placed in it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// Every room with its level: a room may import only rooms of a lower level. `lib.rs` (the
/// crate root: `KubeSim`, `serve`) is above them all.
const ROOMS: &[(&str, u8)] = &[
    // Plain data and helpers every room may use.
    ("config", 0),
    ("json", 0),
    ("resources", 0),
    ("selector", 0),
    // A recording HTTP proxy for tests and benchmarks; it knows nothing of the rest.
    ("recorder", 0),
    ("status", 1),
    // The API machinery: objects, verbs, validation, defaults, field ownership, history.
    ("store", 2),
    // The echo apps (they reach the cluster through a trait the cluster implements).
    ("echo", 2),
    // The deployment controller, kubelet, ingress controller and events, acting on the store.
    ("controllers", 3),
    // The store and controllers behind one lock, the scheduler, the running echo apps.
    ("cluster", 4),
    // The API server's HTTP side.
    ("http", 5),
    // The ingress controller's listener, which forwards as the services proxy does.
    ("ingress_listener", 6),
];

/// One import of a room by a file of another room.
#[derive(Debug)]
struct Import {
    file: PathBuf,
    line: usize,
    from: String,
    to: String,
}

fn level(room: &str) -> Option<u8> {
    ROOMS.iter().find(|(r, _)| *r == room).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src/` (`store/validate/env.rs` -> `[store, validate,
/// env]`, a `mod.rs` is its directory's module, `lib.rs` the root).
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" && stem != "lib" {
            parts.push(stem.to_string());
        }
    }
    parts
}

/// The code of a line: doc and line comments dropped (a `//` after `:` is a URL in a string,
/// and stays).
fn code_of(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'/' && bytes[i + 1] == b'/' && (i == 0 || bytes[i - 1] != b':') {
            return &line[..i];
        }
        i += 1;
    }
    line
}

/// The name of the inline module a line opens (`mod tests {`), if it opens one.
fn inline_module(line: &str) -> Option<String> {
    let mut rest = line.trim_start();
    if let Some(after) = rest.strip_prefix("pub") {
        rest = after.trim_start();
        if rest.starts_with('(') {
            rest = rest.split_once(')')?.1.trim_start();
        }
    }
    let name = ident(rest.strip_prefix("mod ")?);
    rest.strip_prefix("mod ")?[name.len()..]
        .trim_start()
        .starts_with('{')
        .then(|| name.to_string())
}

/// The identifier at the start of `rest`.
fn ident(rest: &str) -> &str {
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The rooms a line of a file in module `module` names: `crate::ROOM`, or `super::`s that
/// climb to the root followed by a room. `Err` for a group (`crate::{...}`), which this check
/// cannot read: write one path per room.
fn rooms_named(code: &str, module: &[String]) -> Result<Vec<String>, String> {
    let mut named = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        // `$crate::` in a macro is not a path of this crate.
        if at > 0 && code.as_bytes()[at - 1].is_ascii_alphanumeric() {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if rest.starts_with('{') {
            return Err("`crate::{...}` groups are not checked: write one path per room".into());
        }
        named.push(ident(rest).to_string());
    }
    let mut search = 0;
    while let Some(found) = code[search..].find("super::") {
        let start = search + found;
        let preceded = start > 0 && {
            let b = code.as_bytes()[start - 1];
            b.is_ascii_alphanumeric() || b == b':'
        };
        let mut rest = &code[start..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r;
        }
        search = code.len() - rest.len();
        if preceded || ups < module.len() {
            // Within the file's own room.
            continue;
        }
        if rest.starts_with('{') {
            return Err(
                "`super::{...}` up to the crate root is not checked: write one path per room"
                    .into(),
            );
        }
        named.push(ident(rest).to_string());
    }
    Ok(named)
}

#[test]
fn rooms_import_only_lower_rooms() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut unknown = Vec::new();
    let mut unreadable = Vec::new();
    let mut upward: Vec<Import> = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = module_path(relative);
        let Some(from) = module.first().cloned() else {
            // lib.rs: the root may use every room.
            continue;
        };
        let Some(from_level) = level(&from) else {
            unknown.push(from);
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        // Inline modules (`mod tests { ... }`) a line is in, by the indentation of their
        // opening line: `super` inside one is the file's module.
        let mut inline: Vec<(usize, String)> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let indent = line.len() - line.trim_start().len();
            let mut current = module.clone();
            current.extend(inline.iter().map(|(_, name)| name.clone()));
            if let Some(name) = inline_module(line) {
                inline.push((indent, name));
            } else if line.trim() == "}" && inline.last().is_some_and(|(i, _)| *i == indent) {
                inline.pop();
            }
            let named = match rooms_named(code_of(line), &current) {
                Ok(named) => named,
                Err(why) => {
                    unreadable.push(format!("{}:{}: {why}", relative.display(), index + 1));
                    continue;
                }
            };
            for to in named.into_iter().filter(|to| *to != from) {
                // An item of the crate root (`crate::SimConfig` through a re-export) counts
                // as the root: above every room.
                let allowed = level(&to).is_some_and(|to_level| to_level < from_level);
                if !allowed {
                    upward.push(Import {
                        file: relative.to_path_buf(),
                        line: index + 1,
                        from: from.clone(),
                        to,
                    });
                }
            }
        }
    }
    unknown.sort();
    unknown.dedup();
    assert!(
        unknown.is_empty(),
        "top-level modules missing from ROOMS in tests/rooms.rs (give each a level): {unknown:?}"
    );
    assert!(unreadable.is_empty(), "{}", unreadable.join("\n"));
    let report: Vec<String> = upward
        .iter()
        .map(|i| {
            format!(
                "{}:{}: {} imports {} (a room may import only lower rooms: {ROOMS:?})",
                i.file.display(),
                i.line,
                i.from,
                i.to
            )
        })
        .collect();
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn the_check_reads_paths_as_the_compiler_does() {
    let module = |p: &str| module_path(Path::new(p));
    let store_env = module("store/validate/env.rs");
    assert_eq!(store_env, ["store", "validate", "env"]);
    assert_eq!(module("http/mod.rs"), ["http"]);
    assert_eq!(module("lib.rs"), Vec::<String>::new());
    // (description, line, rooms named from store/validate/env.rs)
    let cases = [
        ("a crate path", "use crate::json::str_at;", vec!["json"]),
        (
            "a path in an expression",
            "let x = crate::http::f();",
            vec!["http"],
        ),
        (
            "super within the room",
            "use super::super::secrets::check_key;",
            vec![],
        ),
        (
            "super up to the root",
            "use super::super::super::http::x;",
            vec!["http"],
        ),
        ("a comment", "// see crate::http", vec![]),
        ("a doc comment", "/// [`crate::cluster::Shared`]", vec![]),
        (
            "a URL, then a path",
            r#"f("http://x", crate::echo::y)"#,
            vec!["echo"],
        ),
    ];
    for (what, line, want) in cases {
        let got = rooms_named(code_of(line), &store_env).unwrap();
        assert_eq!(got, want, "{what}");
    }
    assert!(
        rooms_named("use crate::{http, store};", &store_env).is_err(),
        "a group is refused, not skipped"
    );
    assert_eq!(inline_module("mod tests {").as_deref(), Some("tests"));
    assert_eq!(
        inline_module("    pub(crate) mod a {").as_deref(),
        Some("a")
    );
    assert_eq!(inline_module("mod routes;"), None);
    // `super::*` in `mod tests` of store/mod.rs is the store itself.
    let tests_of_store = [String::from("store"), String::from("tests")];
    assert_eq!(
        rooms_named("use super::*;", &tests_of_store).unwrap(),
        Vec::<String>::new()
    );
}

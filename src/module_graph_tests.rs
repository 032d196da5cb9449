//! Pins docs/design.md's "dependencies point one way": no file of `src/` uses (through
//! `crate::` or `super::` paths) a file that uses it back, directly or through others. A
//! parent `mod.rs` declaring its children is not a use; test code is left out.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

/// The module a source file defines: `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`.
fn module_of(rel: &Path) -> Module {
    let mut segs: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if matches!(
        segs.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        segs.pop();
    }
    segs
}

fn is_test_file(rel: &Path) -> bool {
    let name = rel.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.as_deref().unwrap_or_default();
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || ["fixture.rs", "test_support.rs"].contains(&name)
}

/// The longest module of `known` that `path` names (a path may go on into an item).
fn resolve(known: &BTreeSet<Module>, path: &[String]) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| known.contains(m))
}

/// `(prefix, segments)` of every `crate::`/`super::` path in `code`, a brace group opened
/// right after the prefix counting as one path per item.
fn paths(code: &str) -> Vec<(String, Vec<String>)> {
    let plain = Regex::new(r"\b(crate|super)((?:::\w+)+)").expect("a valid regex");
    let group = Regex::new(r"\b(crate|super)::\{([^}]*)\}").expect("a valid regex");
    let split = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|seg| seg.trim_matches(|c: char| c == '{' || c.is_whitespace()))
            .filter(|seg| !seg.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut out: Vec<(String, Vec<String>)> = plain
        .captures_iter(code)
        .map(|c| (c[1].to_owned(), split(&c[2])))
        .collect();
    for c in group.captures_iter(code) {
        for item in c[2].split(',') {
            out.push((c[1].to_owned(), split(item)));
        }
    }
    out
}

fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.expect("src/ is readable");
        let rel = entry.path().strip_prefix(&src).expect("under src/");
        if entry.file_type().is_file()
            && rel.extension().is_some_and(|e| e == "rs")
            && !is_test_file(rel)
        {
            let code = std::fs::read_to_string(entry.path()).expect("a source file");
            // Unit tests at the end of a file may use anything.
            let code = code
                .split("#[cfg(test)]\nmod")
                .next()
                .unwrap_or_default()
                .to_owned();
            let is_mod_file = matches!(
                rel.file_stem().and_then(|s| s.to_str()),
                Some("mod" | "lib" | "main")
            );
            files.insert(module_of(rel), (code, is_mod_file));
        }
    }
    let known: BTreeSet<Module> = files.keys().cloned().collect();
    let mut edges = BTreeMap::new();
    for (module, (code, _)) in &files {
        let mut to = BTreeSet::new();
        for (prefix, segs) in paths(code) {
            let mut base: Module = match prefix.as_str() {
                "crate" => Vec::new(),
                _ => module[..module.len().saturating_sub(1)].to_vec(),
            };
            let mut rest = segs.as_slice();
            while let [first, tail @ ..] = rest
                && first == "super"
            {
                base.pop();
                rest = tail;
            }
            base.extend(rest.iter().cloned());
            if let Some(target) = resolve(&known, &base)
                && &target != module
            {
                to.insert(target);
            }
        }
        edges.insert(module.clone(), to);
    }
    edges
}

fn reaches(
    edges: &BTreeMap<Module, BTreeSet<Module>>,
    from: &Module,
    goal: &Module,
) -> Option<Vec<Module>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![vec![from.clone()]];
    while let Some(trail) = stack.pop() {
        let here = trail.last().expect("a trail is never empty");
        if here == goal {
            return Some(trail);
        }
        if !seen.insert(here.clone()) {
            continue;
        }
        for next in edges.get(here).into_iter().flatten() {
            let mut longer = trail.clone();
            longer.push(next.clone());
            stack.push(longer);
        }
    }
    None
}

#[test]
fn no_file_uses_a_file_that_uses_it_back() {
    let edges = graph();
    assert!(edges.len() > 50, "the walk found the source files");
    let mut cycles = Vec::new();
    for (from, targets) in &edges {
        for to in targets {
            if let Some(back) = reaches(&edges, to, from) {
                let names: Vec<String> = std::iter::once(from)
                    .chain(&back)
                    .map(|m| m.join("/"))
                    .collect();
                cycles.push(names.join(" -> "));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_check_sees_a_cycle() {
    let mut edges = BTreeMap::new();
    let m = |s: &str| vec![s.to_owned()];
    edges.insert(m("a"), BTreeSet::from([m("b")]));
    edges.insert(m("b"), BTreeSet::from([m("a")]));
    assert!(reaches(&edges, &m("b"), &m("a")).is_some());
    let found = paths("use crate::{http::reply, storage::Repo};\nuse super::super::x::Y;");
    assert_eq!(found.len(), 3, "{found:?}");
}

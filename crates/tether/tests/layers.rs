//! The engine's layers import one way: `proto` (bytes only, no tokio) ← `conn` (one
//! connection's life) ← `server` (workers, admission, registry, parking, stats, drain), with
//! `lifecycle` and `config` beneath them all, and no two modules import each other.
//!
//! Read from the sources: every `crate::…` path outside comments is an import of the module
//! it names (the longest prefix that is a module file).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Module path (`conn::keepalive`) of each source file, with its text (comments removed).
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(src()).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
                parts.pop();
            }
            let code: String = std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            (parts.join("::"), code)
        })
        .collect()
}

/// The modules a file's code names through `crate::` paths (brace groups included).
fn imports(code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let mut module = String::new();
        for s in &segs {
            let next = if module.is_empty() {
                s.to_string()
            } else {
                format!("{module}::{s}")
            };
            if !known.contains(&next) {
                break;
            }
            module = next;
        }
        // `crate::conn::{self, linger, Parking}`: the items that are modules count too.
        if path.ends_with("::") && rest[path.len()..].starts_with('{') {
            let group = &rest[path.len() + 1..];
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name = item.trim().split("::").next().unwrap_or("");
                let sub = format!("{module}::{name}");
                if known.contains(&sub) {
                    out.insert(sub);
                }
            }
        }
        if !module.is_empty() {
            out.insert(module);
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    mods.iter()
        .map(|(m, code)| {
            let mut deps = imports(code, &known);
            deps.remove(m);
            deps.remove("");
            (m.clone(), deps)
        })
        .collect()
}

fn layer(m: &str) -> &str {
    m.split("::").next().unwrap_or(m)
}

#[test]
fn proto_and_conn_do_not_import_server() {
    for (m, deps) in graph() {
        if matches!(layer(&m), "proto" | "conn") {
            let up: Vec<_> = deps.iter().filter(|d| layer(d) == "server").collect();
            assert!(up.is_empty(), "{m} imports {up:?}");
        }
        if layer(&m) == "proto" {
            let up: Vec<_> = deps.iter().filter(|d| layer(d) == "conn").collect();
            assert!(up.is_empty(), "{m} imports {up:?}");
        }
    }
}

#[test]
fn proto_knows_no_runtime() {
    for (m, code) in modules() {
        if layer(&m) == "proto" {
            assert!(!code.contains("tokio"), "{m} mentions tokio");
        }
    }
}

#[test]
fn the_lifecycle_vocabulary_imports_nothing_of_the_crate() {
    let g = graph();
    assert_eq!(g["lifecycle"], BTreeSet::new());
}

#[test]
fn no_module_imports_another_that_imports_it() {
    let g = graph();
    // Depth-first search for a cycle of any length.
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!("import cycle: {} -> {m}", path[i..].join(" -> "));
        }
        path.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            visit(d, g, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        visit(m, &g, &mut Vec::new(), &mut done);
    }
    // The checker itself sees imports: the connection depends on its policy module.
    assert!(g["conn"].contains("conn::keepalive"), "{:?}", g["conn"]);
}

//! Tidy test: the data plane's top-level modules import each other without cycles, so each can
//! be read (and changed) knowing only what is below it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Cycles still to be broken, each as its sorted set of modules. Nothing may be added here.
const KNOWN_CYCLES: &[&[&str]] = &[];

/// The top-level module a source file belongs to (`pool/mod.rs` -> `pool`), or None for the
/// crate roots and this test.
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main" | "tidy")).then(|| name.to_owned())
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

/// Module -> modules it names through `crate::`, with one place each edge comes from.
fn edges(root: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let Some(from) = module_of(root, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (at, _) in code.match_indices("crate::") {
                assert!(
                    !code[at..].starts_with("crate::{"),
                    "{}:{}: write one `use crate::module::...` per module (this test reads \
                     the module after `crate::`)",
                    file.display(),
                    number + 1
                );
                let to: String = code[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !to.is_empty() && to != from {
                    edges
                        .entry(from.clone())
                        .or_default()
                        .entry(to)
                        .or_insert_with(|| format!("{}:{}", file.display(), number + 1));
                }
            }
        }
    }
    edges
}

/// The strongly connected components with more than one module (Tarjan's algorithm).
fn cycles(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<BTreeSet<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<BTreeSet<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            for next in self.edges.get(node).into_iter().flat_map(|e| e.keys()) {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.stack.contains(&next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = BTreeSet::new();
                while let Some(top) = self.stack.pop() {
                    component.insert(top.to_owned());
                    if top == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for node in edges.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.found
}

#[test]
fn the_modules_import_each_other_without_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = edges(&root);
    // The walk sees the imports it should (a broken parser would find no cycle at all).
    assert!(edges["pool"].contains_key("isolate"), "{edges:?}");
    let known: Vec<BTreeSet<String>> = KNOWN_CYCLES
        .iter()
        .map(|c| c.iter().map(|m| m.to_string()).collect())
        .collect();
    let mut problems = Vec::new();
    for cycle in cycles(&edges) {
        if known.contains(&cycle) {
            continue;
        }
        let via: Vec<String> = cycle
            .iter()
            .flat_map(|from| {
                let edges = &edges[from];
                cycle
                    .iter()
                    .filter_map(move |to| edges.get(to).map(|at| format!("{from} -> {to} ({at})")))
            })
            .collect();
        problems.push(format!(
            "import cycle among {cycle:?}:\n  {}",
            via.join("\n  ")
        ));
    }
    assert!(
        problems.is_empty(),
        "{}\nmove what both sides need into a module below them (as job/ holds the request types \
         shared by pool and isolate)",
        problems.join("\n")
    );
}

#[test]
fn a_cycle_is_found() {
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        edges
            .entry(from.into())
            .or_default()
            .insert(to.into(), String::new());
    }
    let found = cycles(&edges);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0],
        ["a", "b", "c"].iter().map(|s| s.to_string()).collect()
    );
}

//! The shape of the domain crate, checked on its own sources: capabilities
//! depend on each other one way only, no module imports itself through others,
//! and no file grows past what a reader holds in their head.
//!
//! Layers (a folder may use its own modules and any lower layer):
//! `kernel` ← `auth` ← `providers` ← `billing` | `notify` | `storage` ← `jobs`;
//! `health` uses `kernel` only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 500;

fn layer(folder: &str) -> Option<u8> {
    Some(match folder {
        "kernel" => 0,
        "auth" | "health" => 1,
        "providers" => 2,
        "billing" | "notify" | "storage" => 3,
        "jobs" => 4,
        _ => return None,
    })
}

/// `src/jobs/store.rs` → `jobs::store`; `src/notify/mod.rs` → `notify`.
fn module_path(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|p| p != "mod")
        .collect();
    parts.join("::")
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

struct Crate {
    /// module path → (file, its non-test source)
    modules: BTreeMap<String, (PathBuf, String)>,
}

impl Crate {
    fn read() -> Self {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules = files
            .into_iter()
            .filter(|f| !f.ends_with("lib.rs"))
            .map(|f| {
                let text = std::fs::read_to_string(&f).unwrap();
                // Unit tests may reach across layers for fixtures; the rule is
                // about the code that ships (comments may name anything).
                let shipped: String = text
                    .split("#[cfg(test)]")
                    .next()
                    .unwrap()
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                (module_path(&src, &f), (f, shipped))
            })
            .collect();
        Crate { modules }
    }

    /// The longest known module that `path` (`a::b::Item`) starts with.
    fn resolve(&self, path: &str) -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|m| self.modules.contains_key(m))
    }

    /// Which modules each module names (`crate::…` and `super::…` paths).
    fn edges(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut edges = BTreeMap::new();
        for (module, (file, text)) in &self.modules {
            let parent = match file.file_name().unwrap().to_str().unwrap() {
                // `super` of `a/b/mod.rs` is `a`; of `a/b/c.rs` it is `a::b`.
                "mod.rs" => module.rsplit_once("::").map_or("", |(p, _)| p).to_string(),
                _ => module.rsplit_once("::").map_or("", |(p, _)| p).to_string(),
            };
            let mut targets = BTreeSet::new();
            for (prefix, base) in [("crate::", String::new()), ("super::", parent)] {
                for (i, _) in text.match_indices(prefix) {
                    let rest: String = text[i + prefix.len()..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    let full = if base.is_empty() {
                        rest.clone()
                    } else {
                        format!("{base}::{rest}")
                    };
                    if let Some(target) = self.resolve(full.trim_end_matches(':'))
                        && !is_within(&target, module)
                    {
                        targets.insert(target);
                    }
                    // `use crate::a::{b, c}`: the braces name modules of `a`.
                    let after = &text[i + prefix.len() + rest.len()..];
                    if rest.ends_with("::") && after.starts_with('{') {
                        let group = &after[1..after.find('}').unwrap_or(after.len())];
                        for name in group.split(',').map(str::trim) {
                            let name = name.split("::").next().unwrap_or("");
                            let full = format!("{}{}{name}", base_join(&base), rest);
                            if let Some(target) = self.resolve(&full)
                                && !is_within(&target, module)
                            {
                                targets.insert(target);
                            }
                        }
                    }
                }
            }
            edges.insert(module.clone(), targets);
        }
        edges
    }
}

/// Whether `target` is `module` itself or one of its submodules: a module
/// declares and re-exports its children, which is composition, not a
/// dependency (the children's own imports are still checked).
fn is_within(target: &str, module: &str) -> bool {
    target == module || target.starts_with(&format!("{module}::"))
}

fn base_join(base: &str) -> String {
    if base.is_empty() {
        String::new()
    } else {
        format!("{base}::")
    }
}

fn folder(module: &str) -> &str {
    module.split("::").next().unwrap()
}

#[test]
fn capabilities_depend_on_lower_layers_only() {
    let krate = Crate::read();
    let mut wrong = Vec::new();
    for (from, targets) in krate.edges() {
        let from_layer = layer(folder(&from)).unwrap_or_else(|| panic!("{from}: unknown folder"));
        for to in targets {
            let same = folder(&from) == folder(&to);
            let to_layer = layer(folder(&to)).unwrap_or_else(|| panic!("{to}: unknown folder"));
            let health_ok = folder(&from) != "health" || folder(&to) == "kernel";
            if !same && (to_layer >= from_layer || !health_ok) {
                wrong.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layering: {wrong:#?}");
}

#[test]
fn no_module_imports_itself_through_others() {
    let edges = Crate::read().edges();
    // Depth-first search for a back edge; report the cycle it closes.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|s| s == m) {
            let mut cycle = stack[pos..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        stack.push(m.to_string());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn no_file_is_longer_than_a_reader_holds() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .map(|f| (f, std::fs::read_to_string(f).unwrap().lines().count()))
        .filter(|(_, n)| *n > MAX_LINES)
        .map(|(f, n)| format!("{} ({n} lines)", f.strip_prefix(&src).unwrap().display()))
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:#?}");
}

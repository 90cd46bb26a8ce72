//! The documents stay true to the code they describe: the route table of
//! docs/architecture.md lists exactly the routes and components of spin.toml,
//! the variables table of docs/operating.md exactly its variables, and every
//! relative link (and `#anchor`) of README.md, SECURITY.md and docs/ resolves.
//! (The shell blocks they mark `<!-- readme-test: NAME -->` run in served.rs.)
//!
//! Native and quick: nothing is built or served.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    cloudtuner_testhost::workspace_root()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn spin_toml() -> toml::Table {
    read(&root().join("spin.toml"))
        .parse()
        .expect("spin.toml parses")
}

/// The lines of `text` outside fenced code blocks, so that a `# comment` in
/// a shell block is no heading and a YAML line no table or link.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// The rows of the first table after the heading `heading` (its cells,
/// trimmed; the header and separator rows left out).
fn table_after(text: &str, heading: &str) -> Vec<Vec<String>> {
    let lines = prose(text);
    let start = lines
        .iter()
        .position(|l| l.trim_end() == heading)
        .unwrap_or_else(|| panic!("no heading `{heading}`"));
    lines[start + 1..]
        .iter()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|row| {
            let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
            inner.split('|').map(|c| c.trim().to_string()).collect()
        })
        .collect()
}

/// The `code spans` of a table cell.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// What is in `want` and not in `have`, one line each.
fn missing<T: Ord + Clone>(want: &BTreeSet<T>, have: &BTreeSet<T>) -> Vec<T> {
    want.difference(have).cloned().collect()
}

/// (route, component) pairs of spin.toml's `[[trigger.http]]`.
fn spin_routes() -> BTreeSet<(String, String)> {
    let manifest = spin_toml();
    let triggers = manifest["trigger"]["http"]
        .as_array()
        .expect("[[trigger.http]]");
    triggers
        .iter()
        .map(|t| {
            let field = |k: &str| t[k].as_str().unwrap_or_else(|| panic!("{k} in {t}"));
            (field("route").to_string(), field("component").to_string())
        })
        .collect()
}

/// (route, component) pairs of the route table: each row's first cell holds
/// its routes (the code spans that start with `/`), its second one component.
fn documented_routes() -> BTreeSet<(String, String)> {
    let doc = read(&root().join("docs/architecture.md"));
    let rows = table_after(&doc, "## Routes");
    assert!(
        !rows.is_empty(),
        "docs/architecture.md: no route table under `## Routes`"
    );
    let mut pairs = BTreeSet::new();
    for row in rows {
        let [routes, component, ..] = row.as_slice() else {
            panic!("docs/architecture.md: a route table row without a component: {row:?}");
        };
        let components = code_spans(component);
        let [component] = components.as_slice() else {
            panic!("docs/architecture.md: name one component per row, not {component:?}");
        };
        let routes: Vec<String> = code_spans(routes)
            .into_iter()
            .filter(|r| r.starts_with('/'))
            .collect();
        assert!(
            !routes.is_empty(),
            "docs/architecture.md: `{component}` has no route"
        );
        for route in routes {
            pairs.insert((route, component.clone()));
        }
    }
    pairs
}

#[test]
fn the_route_table_lists_every_route_and_component_of_spin_toml() {
    let spin = spin_routes();
    let doc = documented_routes();
    let show = |pairs: Vec<(String, String)>| {
        pairs
            .iter()
            .map(|(route, component)| format!("  `{route}` → `{component}`"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let to_add = missing(&spin, &doc);
    let to_remove = missing(&doc, &spin);
    assert!(
        to_add.is_empty() && to_remove.is_empty(),
        "docs/architecture.md's route table and spin.toml's [[trigger.http]] differ.\n\
         Add to the table (in spin.toml, not in the table):\n{}\n\
         Remove from the table (not in spin.toml):\n{}",
        show(to_add),
        show(to_remove),
    );
}

#[test]
fn the_variables_table_names_every_variable_of_spin_toml() {
    let manifest = spin_toml();
    let declared: BTreeMap<String, Option<String>> = manifest["variables"]
        .as_table()
        .expect("[variables]")
        .iter()
        .map(|(name, v)| {
            let default = v
                .get("default")
                .and_then(|d| d.as_str())
                .map(str::to_string);
            (name.clone(), default)
        })
        .collect();
    let doc = read(&root().join("docs/operating.md"));
    let rows = table_after(&doc, "## Variables");
    let documented: BTreeSet<String> = rows
        .iter()
        .filter_map(|row| code_spans(&row[0]).into_iter().next())
        .collect();
    let names: BTreeSet<String> = declared.keys().cloned().collect();
    let to_add = missing(&names, &documented);
    let to_remove = missing(&documented, &names);
    assert!(
        to_add.is_empty() && to_remove.is_empty(),
        "docs/operating.md's variables table and spin.toml's [variables] differ.\n\
         Add a row for: {to_add:?}\nRemove the row of: {to_remove:?}"
    );
    // A default the table states in code must be spin.toml's.
    for row in &rows {
        let name = &code_spans(&row[0])[0];
        let (Some(Some(default)), Some(said)) =
            (declared.get(name), code_spans(&row[1]).into_iter().next())
        else {
            continue;
        };
        assert_eq!(
            &said, default,
            "docs/operating.md: `{name}`'s default is `{default}` in spin.toml"
        );
    }
}

/// The pages whose links are checked.
fn pages() -> Vec<PathBuf> {
    let root = root();
    let mut pages = vec![root.join("README.md"), root.join("SECURITY.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("a docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The link targets of markdown `[text](target)` in `line`.
fn link_targets(line: &str) -> Vec<String> {
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            rest.find(')').map(|end| rest[..end].to_string())
        })
        .collect()
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, and every
/// character but letters, digits, `-` and `_` dropped.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a markdown page (repeated headings get `-1`, `-2`, ...).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    prose(text)
        .into_iter()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| slug(l.trim_start_matches('#').trim()))
        .map(|s| {
            let n = seen.entry(s.clone()).or_default();
            *n += 1;
            if *n == 1 {
                s
            } else {
                format!("{s}-{}", *n - 1)
            }
        })
        .collect()
}

#[test]
fn every_relative_link_and_anchor_of_the_docs_resolves() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = read(&page);
        let dir = page.parent().expect("a page's folder");
        let name = page.strip_prefix(root()).unwrap().display().to_string();
        for target in prose(&text).into_iter().flat_map(link_targets) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            let linked = if file.is_empty() {
                page.clone()
            } else {
                dir.join(file)
            };
            if !linked.exists() {
                broken.push(format!("{name}: `{target}`: no {}", linked.display()));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if linked.extension().is_some_and(|e| e == "md")
                && !anchors(&read(&linked)).contains(anchor)
            {
                broken.push(format!("{name}: `{target}`: no heading makes `#{anchor}`"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_slug_is_githubs() {
    assert_eq!(slug("`spin up`: one machine"), "spin-up-one-machine");
    assert_eq!(slug("The server's `./datasets`"), "the-servers-datasets");
    assert_eq!(
        slug("Cost: prices, limits, estimates, metrics"),
        "cost-prices-limits-estimates-metrics"
    );
    assert_eq!(slug("The 5-minute tour"), "the-5-minute-tour");
}

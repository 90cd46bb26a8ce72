//! `cloudtuner-host --build`: builds what `spin.toml` says, as `spin up --build`
//! does, before serving. Each component's `[component.<id>.build] command` runs
//! in the manifest's folder; the `cargo build <flags> -p <crate>` commands that
//! share their flags run as one cargo invocation (one dependency graph, built
//! in parallel, instead of 30 cargo runs one after another).

use std::path::Path;
use std::process::Command;

use crate::manifest::Manifest;

/// The commands to run, in order: merged cargo builds first, then the rest.
pub fn plan(manifest: &Manifest) -> Vec<String> {
    let mut cargo: Vec<(String, Vec<String>)> = Vec::new();
    let mut other: Vec<String> = Vec::new();
    for decl in manifest.component.values() {
        let Some(command) = decl
            .build
            .as_ref()
            .and_then(|b| b.get("command"))
            .and_then(|c| c.as_str())
        else {
            continue;
        };
        match split_cargo_package(command) {
            Some((flags, package)) => match cargo.iter_mut().find(|(f, _)| *f == flags) {
                Some((_, packages)) if packages.contains(&package) => {}
                Some((_, packages)) => packages.push(package),
                None => cargo.push((flags, vec![package])),
            },
            None if !other.contains(&command.to_string()) => other.push(command.to_string()),
            None => {}
        }
    }
    cargo
        .into_iter()
        .map(|(flags, packages)| {
            let ps: Vec<String> = packages.iter().map(|p| format!("-p {p}")).collect();
            format!("{flags} {}", ps.join(" "))
        })
        .chain(other)
        .collect()
}

/// `cargo build <flags> -p <crate>` → (`cargo build <flags>`, crate).
fn split_cargo_package(command: &str) -> Option<(String, String)> {
    let words: Vec<&str> = command.split_whitespace().collect();
    if words.len() < 4 || words[..2] != ["cargo", "build"] {
        return None;
    }
    let [.., flag, package] = words.as_slice() else {
        return None;
    };
    if *flag != "-p" || words[2..words.len() - 2].contains(&"-p") {
        return None;
    }
    Some((words[..words.len() - 2].join(" "), package.to_string()))
}

/// Runs the plan in `dir`, adding the Rust target the commands name when
/// rustup can (a fresh machine has only the host target).
pub fn run(dir: &Path, commands: &[String]) -> Result<(), String> {
    for target in ["wasm32-wasip2"] {
        if commands.iter().any(|c| c.contains(target)) {
            ensure_target(target)?;
        }
    }
    for command in commands {
        eprintln!("==> {command}");
        let status = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(dir)
            .status()
            .map_err(|e| format!("cannot run `{command}`: {e}"))?;
        if !status.success() {
            return Err(format!("`{command}` failed ({status})"));
        }
    }
    Ok(())
}

fn ensure_target(target: &str) -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(out)
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l == target) =>
        {
            Ok(())
        }
        Ok(_) => {
            eprintln!("==> rustup target add {target}");
            let ok = Command::new("rustup")
                .args(["target", "add", target])
                .status()
                .is_ok_and(|s| s.success());
            ok.then_some(())
                .ok_or_else(|| format!("`rustup target add {target}` failed"))
        }
        // No rustup: the toolchain may still have the target; cargo will say.
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_builds_with_the_same_flags_merge_and_others_run_as_written() {
        let m = Manifest::parse(
            r#"
spin_manifest_version = 2
[application]
name = "x"
[component.a]
source = "a.wasm"
[component.a.build]
command = "cargo build --target wasm32-wasip2 --release -p a"
[component.b]
source = "b.wasm"
[component.b.build]
command = "cargo build --target wasm32-wasip2 --release -p b"
[component.c]
source = "c.wasm"
[component.c.build]
command = "make c.wasm"
[component.d]
source = "d.wasm"
"#,
        )
        .unwrap();
        assert_eq!(
            plan(&m),
            [
                "cargo build --target wasm32-wasip2 --release -p a -p b",
                "make c.wasm"
            ]
        );
    }

    #[test]
    fn the_real_manifest_builds_every_component_in_one_cargo_run() {
        let root = crate::workspace_root();
        let m = Manifest::load(&root.join("spin.toml")).unwrap();
        let plan = plan(&m);
        assert_eq!(plan.len(), 1, "{plan:?}");
        for id in m.component.keys() {
            assert!(plan[0].contains(&format!("-p {id}")), "{id} is not built");
        }
    }
}

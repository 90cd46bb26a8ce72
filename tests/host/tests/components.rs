//! The built `.wasm` files are Spin-compatible WASIp2 components: they export
//! `wasi:http/incoming-handler@0.2.0` and import nothing Spin 3.x cannot give.

mod common;

use cloudtuner_testhost::app::{compile, interface_names};
use cloudtuner_testhost::manifest::Manifest;

/// Interfaces Spin 3.x offers a spin-sdk 5.2 component (WASIp2 up to 0.2.6).
const ALLOWED: &[&str] = &[
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
    "wasi:http/types@",
    "wasi:http/outgoing-handler@",
    "fermyon:spin/key-value@2.0.0",
    "fermyon:spin/variables@2.0.0",
    // Outbound Redis, for installations that share a Redis (`redis_url`):
    // in Spin since 2.0 (this version of the interface), Fermyon Cloud and
    // SpinKube's shim.
    "fermyon:spin/redis@2.0.0",
    "wasi:keyvalue/store@0.2.0-draft2",
    "wasi:keyvalue/atomics@0.2.0-draft2",
    "wasi:keyvalue/batch@0.2.0-draft2",
    // The cron plugin's world `use`s this interface; it holds only a record
    // and a variant (no functions, no resources), so a host satisfies it
    // structurally without implementing anything (wasmtime's linker accepts
    // it: the live tests load this component and serve HTTP through it).
    "fermyon:spin-cron/cron-types@2.0.0",
];

fn wasi_version_ok(name: &str) -> bool {
    match name.rsplit_once('@') {
        Some((iface, v)) if iface.starts_with("wasi:") && !iface.starts_with("wasi:keyvalue") => {
            let parts: Vec<u32> = v.split('.').filter_map(|p| p.parse().ok()).collect();
            parts.len() == 3 && parts[0] == 0 && parts[1] == 2 && parts[2] <= 6
        }
        _ => true,
    }
}

#[test]
fn every_component_is_a_spin_http_component() {
    let root = cloudtuner_testhost::workspace_root();
    let manifest = Manifest::load(&root.join("spin.toml")).unwrap();
    assert!(!manifest.component.is_empty());
    for (id, c) in &manifest.component {
        let component = compile(&root.join(&c.source)).unwrap();
        let (imports, exports) = interface_names(&component);
        assert!(
            exports
                .iter()
                .any(|e| e == "wasi:http/incoming-handler@0.2.0"),
            "{id} exports {exports:?}"
        );
        for import in &imports {
            assert!(
                ALLOWED.iter().any(|a| import.starts_with(a)) && wasi_version_ok(import),
                "{id} imports {import}, which Spin 3.x does not provide"
            );
        }
        // Glue components stay small (Fermyon Cloud packages ≤ 100 MB in all).
        let size = std::fs::metadata(root.join(&c.source)).unwrap().len();
        assert!(size < 2_000_000, "{id} is {size} bytes");
    }
}

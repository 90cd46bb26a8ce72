//! Shared helpers for the host's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use cloudtuner_testhost::{App, HostConfig, workspace_root};
use fake_replicate::FakeReplicate;

pub fn spin_toml() -> PathBuf {
    workspace_root().join("spin.toml")
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// An app from `manifest` with its own state directory (KV file, logs).
pub fn load(manifest: PathBuf, vars: &[(&str, &str)]) -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = HostConfig::new(manifest, dir.path());
    for (k, v) in vars {
        config = config.variable(k, *v);
    }
    let app = App::load(&config).unwrap_or_else(|e| panic!("load app: {e}"));
    (dir, app)
}

/// The real app, pointed at `fake` with the fake's token.
pub fn cloudtuner(fake: &FakeReplicate) -> (tempfile::TempDir, App) {
    let url = fake.url();
    load(
        spin_toml(),
        &[
            ("replicate_api_base", url.as_str()),
            ("replicate_api_token", fake_replicate::DEFAULT_TOKEN),
        ],
    )
}

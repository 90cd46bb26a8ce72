//! The OpenAPI fuzz pass: schemathesis (PyPI, pinned in `tests/fuzz/requirements.txt`)
//! reads the app's own `/openapi.json` and sends generated requests, valid and
//! malformed, to every operation of the served app (a fake Replicate behind it),
//! as the admin. It holds the app to two promises: no request answers a server
//! error, and every status an operation answers is one its OpenAPI documents.
//!
//! Bounded: `FUZZ_SECONDS` (default 150) of fuzzing after the examples and
//! coverage phases, a fixed seed so a failure reproduces.

mod common;

use std::path::PathBuf;
use std::process::Command;

use cloudtuner_testhost::workspace_root;
use common::{ADMIN_TOKEN, TestApp};

fn install_schemathesis() -> PathBuf {
    let script = workspace_root().join("tests/fuzz/install.sh");
    let out = Command::new(&script)
        .output()
        .expect("run tests/fuzz/install.sh");
    assert!(
        out.status.success(),
        "installing schemathesis from PyPI failed (it needs Python 3.10+ with venv and pip, \
         and access to PyPI):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_only_documented_statuses_and_never_a_server_error() {
    let venv = tokio::task::spawn_blocking(install_schemathesis)
        .await
        .unwrap();
    let t = TestApp::builder().served().start().await;
    let seconds = std::env::var("FUZZ_SECONDS").unwrap_or_else(|_| "150".into());
    let report = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(venv.join("bin/schemathesis"));
    cmd.current_dir(report.path())
        .arg("run")
        .arg(format!("{}/openapi.json", t.url))
        .args(["--url", &t.url])
        .args(["--checks", "not_a_server_error,status_code_conformance"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-time", &seconds])
        .args(["--max-examples", "60"])
        .args(["--seed", "20261203"])
        // One worker: with two, CPython 3.11's `ast` can fail inside hypothesis
        // ("AST constructor recursion depth mismatch"), a crash of the tool, not a finding.
        .args(["--workers", "1"])
        .args(["--request-timeout", "30"])
        .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .args(["--generation-database", "none"])
        .args(["--no-color", "--continue-on-failure"])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .env("HYPOTHESIS_STORAGE_DIRECTORY", report.path());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("schemathesis runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Its summary (operations, test cases, failures) is the figure this pass reports.
    let summary: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("operations") || l.contains("test cases") || l.contains("passed"))
        .collect();
    println!("schemathesis:\n{}", summary.join("\n"));
    // The failures section, bounded: a tool's traceback can run to megabytes.
    let failures = text
        .find("FAILURES")
        .map_or(text.as_str(), |at| &text[at..]);
    let shown: String = failures.chars().take(20_000).collect();
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{shown}"
    );
}

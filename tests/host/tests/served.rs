//! The `cloudtuner-host` binary serves the real app on a port; curl talks to it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn served_binary_answers_health_to_curl() {
    let root = cloudtuner_testhost::workspace_root();
    let state = tempfile::tempdir().unwrap();
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_cloudtuner-host"))
            .args(["--manifest", root.join("spin.toml").to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .args(["--state-dir", state.path().to_str().unwrap()])
            .env("SPIN_VARIABLE_REPLICATE_API_TOKEN", "r8_from_env")
            .env("SPIN_VARIABLE_ADMIN_TOKEN", "served-admin-token-0123456789")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start cloudtuner-host"),
    );
    let mut line = String::new();
    // Keep reading the pipe: the host's stdout must stay open while it runs.
    let mut reader = BufReader::new(child.0.stdout.take().unwrap());
    reader.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let url = line
        .trim()
        .strip_prefix("Serving ")
        .expect("serving line")
        .to_string();

    let out = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            &format!("{url}/api/cloud/health"),
        ])
        .output()
        .expect("curl");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "200", "{text}");
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["status"], "healthy");

    // SPIN_VARIABLE_* reaches components, as with `spin up`.
    let out = Command::new("curl")
        .args([
            "-s",
            "-H",
            "Authorization: Bearer served-admin-token-0123456789",
        ])
        .arg(format!("{url}/api/cloud/providers"))
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["providers"][0]["configured"], true);
    // State lands where Spin puts it: a SQLite file in the state dir.
    assert!(state.path().join("sqlite_key_value.db").exists());
}

#[test]
fn the_binary_prints_its_usage_on_help_and_refuses_unknown_flags() {
    let help = Command::new(env!("CARGO_BIN_EXE_cloudtuner-host"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("usage: cloudtuner-host") && text.contains("--listen"),
        "{text}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_cloudtuner-host"))
        .arg("--nope")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("usage:"));
}

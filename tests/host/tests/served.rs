//! The `cloudtuner-host` binary serves the real app on a port; curl talks to it.
//! The shell blocks of README.md and docs/ marked `<!-- readme-test: NAME -->`
//! (first run, CI, download, datasets) run as written, with bash,
//! curl, jq and the AWS CLI, against the served app and the fake Replicate.

mod common;

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
            // The README's Spin-less line: build what spin.toml lists, then serve
            // (here the components are already built, so cargo finds nothing to do).
            .arg("--build")
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

/// The shell block after `<!-- readme-test: {name} -->`, as written, from
/// README.md or the page of `docs/` it moved to: the marker must be in
/// exactly one of them, so a block cannot be tested in one place and
/// edited in another.
fn readme_block(name: &str) -> String {
    let root = cloudtuner_testhost::workspace_root();
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("a docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    let marker = format!("<!-- readme-test: {name} -->");
    let mut found = pages.iter().filter_map(|page| {
        let text = std::fs::read_to_string(page).expect("a readable page");
        let at = text.find(&marker)?;
        Some((page.display().to_string(), text[at..].to_string()))
    });
    let (page, after) = found
        .next()
        .unwrap_or_else(|| panic!("no {marker} in README.md or docs/*.md"));
    if let Some((other, _)) = found.next() {
        panic!("{marker} is in both {page} and {other}: keep one");
    }
    let body = &after[after
        .find("```sh\n")
        .unwrap_or_else(|| panic!("a sh block follows {marker} in {page}"))
        + 6..];
    body[..body.find("\n```").expect("the block ends")].to_string()
}

/// Runs `script` with bash in `dir`, with `env` and nothing of CI's own
/// GitHub variables: (exit code, stdout + stderr).
async fn bash(script: String, dir: &std::path::Path, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .current_dir(dir)
        .env_remove("GITHUB_RUN_ID")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_MAX_ATTEMPTS", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("bash runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_first_run_ci_download_and_dataset_blocks_run_as_written() {
    use fake_replicate::{Outcome, Script};
    use serde_json::{Value, json};
    let mut t = common::TestApp::builder().served().start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = t.url.clone();

    // First run: the admin, a session, and a scoped key for CI.
    let (code, out) = bash(
        readme_block("first-run") + "\necho \"KEY=$CLOUDTUNER_KEY\"",
        dir.path(),
        &[
            ("CLOUDTUNER_URL", &url),
            ("CLOUDTUNER_ADMIN_TOKEN", common::ADMIN_TOKEN),
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("KEY="))
        .filter(|k| k.starts_with("stk_"))
        .unwrap_or_else(|| panic!("no key made:\n{out}"))
        .to_string();
    let ci = readme_block("ci");
    let ci_env = |run: &'static str| {
        let mut env = vec![
            ("CLOUDTUNER_URL", url.clone()),
            ("CLOUDTUNER_KEY", key.clone()),
            ("POLL_SECONDS", "1".to_string()),
        ];
        if !run.is_empty() {
            env.push(("GITHUB_RUN_ID", run.to_string()));
        }
        env
    };
    let run_ci = async |run: &'static str| {
        let env = ci_env(run);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        bash(ci.clone(), dir.path(), &env).await
    };

    // A run that trains to the end: exit 0, the last log lines printed.
    t.fake.push_script(Script::training(
        1,
        3,
        1,
        Outcome::Succeeded {
            output: json!("https://replicate.delivery/x/lora.safetensors"),
        },
    ));
    t.fake
        .auto_advance(std::time::Duration::from_millis(200), 1);
    let (code, out) = run_ci("101").await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("completed") && out.contains("Training complete"),
        "{out}"
    );
    let job = out
        .lines()
        .find_map(|l| l.strip_prefix("job ")?.strip_suffix(" completed"))
        .unwrap_or_else(|| panic!("no completed line:\n{out}"))
        .to_string();
    // The same CI run again (a retried step) trains nothing new.
    let (code, again) = run_ci("101").await;
    assert_eq!(code, 0, "{again}");
    assert!(again.contains(&format!("job {job} completed")), "{again}");
    let jobs = t.app.request("GET", "/api/cloud/jobs", &[], "").await;
    assert_eq!(jobs.json()["total"], 1, "{}", jobs.text());

    // A run whose training fails: exit 1, with the failure's logs.
    t.fake.push_script(Script::training(
        1,
        2,
        1,
        Outcome::Failed {
            error: "CUDA out of memory".into(),
        },
    ));
    let (code, out) = run_ci("102").await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(" failed") && out.contains("Traceback"),
        "{out}"
    );

    // A refused submit (over a blocking spend limit), outside GitHub Actions:
    // exit 1 at once with the server's words, not a poll of job "null".
    let r = t
        .app
        .request(
            "PUT",
            "/api/cloud/providers/replicate/config",
            &[("content-type", "application/json")],
            json!({"cost_limit_enabled": true, "cost_limit_amount": 0.01,
                   "cost_limit_action": "block"})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let started = std::time::Instant::now();
    let (code, out) = run_ci("").await;
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("submit refused: "), "{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));

    // The model back: the trainer uploads with the job's credentials, you download.
    let pid = common::job(&t.app, &job).await["metadata"]["prediction_id"]
        .as_str()
        .unwrap()
        .to_string();
    let input = t.fake.prediction(&pid).unwrap()["input"].clone();
    let config: Value = serde_json::from_str(input["config_json"].as_str().unwrap()).unwrap();
    let creds = config["publishing_config"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let weights = b"safetensors bytes, as the trainer wrote them".repeat(1000);
    std::fs::write(dir.path().join("weights.safetensors"), &weights).unwrap();
    let (code, out) = bash(
        readme_block("outputs"),
        dir.path(),
        &[
            ("CLOUDTUNER_URL", &url),
            ("CLOUDTUNER_KEY", &key),
            ("JOB", &job),
            ("JOB_SECRET", creds["secret_key"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read(dir.path().join("lora.safetensors")).unwrap(),
        weights,
        "the download is what the trainer uploaded"
    );

    // A dataset synced with the AWS CLI and the S3 pair of a dataset key.
    let login = t
        .app
        .request(
            "POST",
            "/api/cloud/auth/login",
            &[],
            json!({"username": "admin", "password": "at least 12 chars"}).to_string(),
        )
        .await;
    let token = login.json()["token"].as_str().unwrap().to_string();
    let folder = dir.path().join("my-dataset");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("cat.png"), b"\x89PNG not really".repeat(100)).unwrap();
    std::fs::write(folder.join("cat.txt"), b"a photo of a cat").unwrap();
    let (code, out) = bash(
        readme_block("datasets"),
        dir.path(),
        &[("CLOUDTUNER_URL", &url), ("TOKEN", &token)],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("my-dataset: ready, 2 files, 1516 bytes"),
        "{out}"
    );
}

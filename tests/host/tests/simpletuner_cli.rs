//! SimpleTuner's own CLI (`simpletuner cloud ...`, 4.10.1 from PyPI, unmodified, installed by
//! `tests/simpletuner-cli/install.sh`) against the served app and the fake Replicate: the commands
//! a user runs, their exit codes, and the lines they print.

mod common;

use std::path::PathBuf;
use std::process::Command;

use cloudtuner_testhost::workspace_root;
use common::{PASSWORD, SUBMIT, TestApp, post_json};
use serde_json::json;

/// Installs the CLI once (it stays in the user's cache) and returns its virtualenv.
fn install_cli() -> PathBuf {
    let script = workspace_root().join("tests/simpletuner-cli/install.sh");
    let out = Command::new(&script)
        .output()
        .expect("run tests/simpletuner-cli/install.sh");
    assert!(
        out.status.success(),
        "installing SimpleTuner's CLI from PyPI failed (it needs Python 3.11+ with pip and \
         access to PyPI):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

struct Cli {
    bin: PathBuf,
    port: String,
    key: String,
    /// The CLI writes `./debug.log` wherever it runs.
    scratch: tempfile::TempDir,
}

impl Cli {
    /// Runs `simpletuner <args>`: (exit code, stdout and stderr).
    async fn run(&self, args: &[&str]) -> (i32, String) {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .current_dir(self.scratch.path())
            .env("SIMPLETUNER_HOST", "127.0.0.1")
            .env("SIMPLETUNER_PORT", &self.port)
            .env("SIMPLETUNER_API_KEY", &self.key)
            .env("SIMPLETUNER_SKIP_TORCH", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env(
                "PYTHONPATH",
                workspace_root().join("tests/simpletuner-cli/stubs"),
            );
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .expect("run simpletuner");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }
}

/// An API key of the first admin's (who signs in with `PASSWORD`), for the CLI.
async fn api_key(t: &TestApp) -> String {
    let anon = t.app.anonymous();
    let r = post_json(
        &anon,
        "/api/cloud/auth/login",
        &json!({"username": "root", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let session = r.json()["token"].as_str().unwrap().to_string();
    let user = anon.with_header("authorization", &format!("Bearer {session}"));
    let r = post_json(&user, "/api/cloud/auth/api-keys", &json!({"name": "cli"})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["key"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simpletuners_cli_lists_shows_and_sets_what_users_ask() {
    let venv = tokio::task::spawn_blocking(install_cli).await.unwrap();
    // No admin_token: SimpleTuner's CLI sets up the first admin anonymously, as on a fresh install.
    let t = TestApp::builder()
        .var("admin_token", "")
        .served()
        .start()
        .await;
    let port = t.url.rsplit(':').next().unwrap().to_string();
    let bin = venv.join("bin/simpletuner");

    // Headless set-up, as the CLI does it: status, the first admin, status.
    let anonymous = Cli {
        bin: bin.clone(),
        port: port.clone(),
        key: String::new(),
        scratch: tempfile::tempdir().unwrap(),
    };
    let (code, out) = anonymous.run(&["auth", "status"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Authentication is NOT configured"), "{out}");
    let setup = [
        "auth",
        "setup",
        "--email",
        "root@example.com",
        "--username",
        "root",
        "--password",
        PASSWORD,
    ];
    let (code, out) = anonymous.run(&setup).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Admin account created successfully!"), "{out}");
    assert!(out.contains("Username:  root"), "{out}");
    let (code, out) = anonymous.run(&setup).await;
    assert_eq!(code, 1, "a second set-up is refused: {out}");
    assert!(
        out.contains("Setup already completed") && out.contains("1 user(s)"),
        "{out}"
    );
    let (code, out) = anonymous.run(&["auth", "status"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Authentication is ENABLED"), "{out}");
    assert!(out.contains("Users configured:     1"), "{out}");

    let key = api_key(&t).await;
    let cli = Cli {
        bin,
        port,
        key: key.clone(),
        scratch: tempfile::tempdir().unwrap(),
    };

    // `cloud status` prints the health components (it crashed on a list of
    // names before) and Replicate's status page (the fake serves it).
    let (code, out) = cli.run(&["cloud", "status"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Overall Status: [+] HEALTHY"), "{out}");
    assert!(
        out.contains("[+] key_value_store: wrote and read back a probe"),
        "{out}"
    );
    assert!(
        out.contains("[+] key_value_atomics: compare-and-swap holds"),
        "{out}"
    );
    assert!(out.contains("[+] All systems operational"), "{out}");
    t.fake.set_status_summary(json!({
        "page_url": "https://www.replicatestatus.com",
        "ongoing_incidents": [{"name": "Delayed GPU queues"}],
        "in_progress_maintenances": [],
        "scheduled_maintenances": [{"name": "Network upgrade"}],
    }));
    let (code, out) = cli.run(&["cloud", "status"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[!] 1 ongoing incident(s)"), "{out}");
    assert!(out.contains("[i] 1 scheduled maintenance(s)"), "{out}");

    // A fresh installation has no cost limit amount: `show` prints $0.00.
    let (code, out) = cli.run(&["cloud", "cost-limit", "show"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Enabled: False") && out.contains("Amount:  $0.00"),
        "{out}"
    );
    let (code, out) = cli
        .run(&[
            "cloud",
            "cost-limit",
            "set",
            "--amount",
            "25",
            "--period",
            "daily",
        ])
        .await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli.run(&["cloud", "cost-limit", "show"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Enabled: True") && out.contains("Amount:  $25.00") && out.contains("daily"),
        "{out}"
    );
    let (code, out) = cli.run(&["cloud", "cost-limit", "disable"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Cost limit disabled."), "{out}");
    let (code, out) = cli.run(&["cloud", "cost-limit", "show"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Enabled: False") && out.contains("Amount:  $25.00"),
        "the amount is kept for when it is enabled again: {out}"
    );

    // A job submitted with the same key is listed and read by the CLI.
    let keyed = t.app.anonymous().with_header("x-api-key", &key);
    let r = post_json(
        &keyed,
        SUBMIT,
        &json!({"config": {"--max_train_steps": 10}, "config_name": "cli-check"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["job_id"].as_str().unwrap().to_string();
    let (code, out) = cli.run(&["cloud", "jobs", "list"]).await;
    assert_eq!(code, 0, "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with(&id[..12]))
        .unwrap_or_else(|| panic!("no row for {id}:\n{out}"));
    assert!(
        row.contains("cli-check") && row.contains("replicate"),
        "{row}"
    );
    assert!(out.contains("Total: 1 jobs"), "{out}");
    let (code, out) = cli.run(&["cloud", "jobs", "get", &id]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&id), "{out}");

    // `jobs submit --dry-run` previews a saved config: SimpleTuner's shape of
    // it, whose token is valid, the hardware and a rough cost.
    let r = keyed
        .request(
            "PUT",
            "/api/cloud/configs/cli-dry",
            &[("content-type", "application/json")],
            json!({"config": {"--model_family": "flux", "--max_train_steps": 1000}}).to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let (code, out) = cli
        .run(&["cloud", "jobs", "submit", "cli-dry", "--dry-run"])
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Model Family:    flux") && out.contains("Max Steps:       1000"),
        "{out}"
    );
    assert!(out.contains("[REPLICATE] Authenticated as:"), "{out}");
    assert!(
        out.contains("Available Hardware:") && out.contains("Est. Cost:"),
        "{out}"
    );
    let (code, out) = cli
        .run(&["cloud", "jobs", "submit", "no-such-config", "--dry-run"])
        .await;
    assert_ne!(code, 0, "{out}");

    // The token alone, set and deleted as the CLI does it; never answered back.
    let (code, out) = cli
        .run(&[
            "cloud",
            "config",
            "set-token",
            "--token",
            "r8_from_the_cli_4321",
        ])
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("API token saved successfully."), "{out}");
    let token = async || {
        let r = keyed
            .request("GET", "/api/cloud/providers/replicate/config", &[], "")
            .await;
        assert!(!r.text().contains("r8_from_the_cli"), "{}", r.text());
        r.json()["config"]["api_token"].clone()
    };
    let shown = token().await;
    assert_eq!(
        (shown["source"].as_str(), shown["last4"].as_str()),
        (Some("settings"), Some("4321"))
    );
    let (code, out) = cli.run(&["cloud", "config", "delete-token"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("API token deleted successfully."), "{out}");
    assert_eq!(
        token().await["source"],
        "variable",
        "the variable applies again"
    );

    // A bad key is refused, and the CLI says so.
    let stranger = Cli {
        key: "stk_not_a_key".into(),
        bin: cli.bin.clone(),
        port: cli.port.clone(),
        scratch: tempfile::tempdir().unwrap(),
    };
    let (code, out) = stranger.run(&["cloud", "jobs", "list"]).await;
    assert_ne!(code, 0, "{out}");
}

/// The CLI for the first admin of a served app (created through the API).
async fn admin_cli(t: &TestApp) -> Cli {
    let venv = tokio::task::spawn_blocking(install_cli).await.unwrap();
    let r = post_json(
        &t.app.anonymous(),
        "/api/cloud/auth/setup",
        &json!({"username": "root", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    Cli {
        bin: venv.join("bin/simpletuner"),
        port: t.url.rsplit(':').next().unwrap().to_string(),
        key: api_key(t).await,
        scratch: tempfile::tempdir().unwrap(),
    }
}

/// The value after `label` on the line that has it (`  Job ID: abc` → `abc`).
fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simpletuners_cli_submits_follows_cancels_retries_deletes_and_configures() {
    use fake_replicate::{Outcome, Script};
    // No admin_token: the CLI's own set-up makes the first admin.
    let mut t = TestApp::builder()
        .var("admin_token", "")
        .served()
        .start()
        .await;
    let cli = admin_cli(&t).await;
    let keyed = t.app.anonymous().with_header("x-api-key", &cli.key);
    let r = keyed
        .request(
            "PUT",
            "/api/cloud/configs/cli-run",
            &[("content-type", "application/json")],
            json!({"config": {"--model_family": "flux", "--max_train_steps": 3}}).to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // Submit a saved config; the job trains to the end at the fake.
    t.fake.push_script(Script::training(
        1,
        3,
        1,
        Outcome::Succeeded {
            output: json!("https://replicate.delivery/x/lora.safetensors"),
        },
    ));
    let (code, out) = cli
        .run(&[
            "cloud",
            "jobs",
            "submit",
            "cli-run",
            "--idempotency-key",
            "cli-1",
        ])
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Job submitted successfully!"), "{out}");
    let done_id = field(&out, "Job ID:").to_string();
    assert_eq!(field(&out, "Status:"), "queued", "{out}");
    // The same idempotency key returns the same job.
    let (code, again) = cli
        .run(&[
            "cloud",
            "jobs",
            "submit",
            "cli-run",
            "--idempotency-key",
            "cli-1",
        ])
        .await;
    assert_eq!(code, 0, "{again}");
    assert_eq!(field(&again, "Job ID:"), done_id);
    assert!(again.contains("Returned existing job"), "{again}");

    // `simpletuner jobs logs --follow` reads the SSE stream to the end.
    t.fake
        .auto_advance(std::time::Duration::from_millis(200), 1);
    let (code, out) = cli.run(&["jobs", "logs", &done_id, "--follow"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Loading model..."), "{out}");
    assert!(out.contains("epoch 1/1 step 3/3"), "{out}");
    assert!(out.contains("Training complete"), "{out}");
    assert!(out.contains("--- Job completed ---"), "{out}");
    let (code, out) = cli.run(&["cloud", "jobs", "logs", &done_id]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Training complete"), "{out}");

    // A second run: cancelled, retried (the CLI re-submits its config), deleted.
    t.fake.push_script(Script::stuck());
    let (code, out) = cli.run(&["cloud", "jobs", "submit", "cli-run"]).await;
    assert_eq!(code, 0, "{out}");
    let cancel_id = field(&out, "Job ID:").to_string();
    let (code, out) = cli.run(&["cloud", "jobs", "cancel", &cancel_id]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("Job {cancel_id} cancelled successfully.")),
        "{out}"
    );
    assert_eq!(common::job(&keyed, &cancel_id).await["status"], "cancelled");
    t.fake.push_script(Script::stuck());
    let (code, out) = cli.run(&["cloud", "jobs", "retry", &cancel_id]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Retrying job with config 'cli-run'"), "{out}");
    let retried = field(&out, "New Job ID:").to_string();
    assert_ne!(retried, cancel_id);
    assert_eq!(
        common::job(&keyed, &retried).await["config_name"],
        "cli-run"
    );
    // `simpletuner jobs retry` asks the server to re-run: attempt 2 of the cancelled job.
    t.fake.push_script(Script::stuck());
    let (code, out) = cli.run(&["jobs", "retry", &cancel_id]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Job resubmitted successfully!"), "{out}");
    let attempt = common::job(&keyed, field(&out, "New Job ID:")).await;
    assert_eq!(
        (attempt["attempt"].as_u64(), attempt["retry_of"].as_str()),
        (Some(2), Some(cancel_id.as_str()))
    );
    let (code, out) = cli.run(&["jobs", "retry", &retried]).await;
    assert_ne!(code, 0, "an active job cannot re-run: {out}");
    assert!(out.contains("cannot re-run job"), "{out}");
    // Deleting an active job is refused in words the CLI shows; a finished one goes.
    let (code, out) = cli
        .run(&["cloud", "jobs", "delete", &retried, "--force"])
        .await;
    assert_ne!(code, 0, "{out}");
    let (code, out) = cli
        .run(&["cloud", "jobs", "delete", &cancel_id, "--force"])
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("Job {cancel_id} deleted successfully.")),
        "{out}"
    );
    let gone = keyed
        .request("GET", &format!("/api/cloud/jobs/{cancel_id}"), &[], "")
        .await;
    assert_eq!(gone.status, 404);

    // Provider settings, set and shown; the token is never printed.
    let (code, out) = cli
        .run(&["cloud", "config", "set", "hardware_profile", "l40s"])
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Configuration updated: hardware_profile = l40s"),
        "{out}"
    );
    let (code, out) = cli.run(&["cloud", "config", "show"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Configuration for replicate:"), "{out}");
    assert!(out.contains("  hardware_profile: l40s"), "{out}");
    assert!(out.contains("  api_token: ***"), "{out}");
    let (code, out) = cli
        .run(&["cloud", "config", "set", "hardware_profile", "gpu-nope"])
        .await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("Invalid hardware profile"), "{out}");
}

/// Creates researcher `name` as the admin (`keyed`) and answers their
/// integer user id, as SimpleTuner's CLI takes it (`/api/orgs/users`).
async fn new_researcher_number(keyed: &cloudtuner_testhost::App, name: &str) -> String {
    let r = post_json(
        keyed,
        "/api/cloud/auth/users",
        &json!({"username": name, "password": PASSWORD, "role": "researcher"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = keyed.request("GET", "/api/orgs/users", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == name)
        .unwrap()["id"]
        .to_string()
}

/// `simpletuner auth orgs ...` (issue 27, item 1): organizations, teams and
/// their members, with the integer ids the CLI parses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simpletuners_cli_manages_orgs_teams_and_members() {
    let t = TestApp::builder()
        .var("admin_token", "")
        .served()
        .start()
        .await;
    let cli = admin_cli(&t).await;
    let keyed = t.app.anonymous().with_header("x-api-key", &cli.key);
    let alice = new_researcher_number(&keyed, "alice").await;
    let orgs = |args: &[&str]| {
        let mut all = vec!["auth", "orgs"];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let cli = &cli;
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            cli.run(&refs).await
        }
    };

    let (code, out) = run(orgs(&["create", "--name", "Acme", "--slug", "acme"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Organization created:"), "{out}");
    let org = field(&out, "ID:").to_string();
    assert!(org.parse::<u64>().is_ok(), "{out}");
    let (code, out) = run(orgs(&["list"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Acme") && out.contains("acme") && out.contains("yes"),
        "{out}"
    );
    let (code, out) = run(orgs(&["update", &org, "--description", "GPU budget"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("Organization {org} updated.")),
        "{out}"
    );
    let (code, out) = run(orgs(&["get", &org])).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&out, "Name:"), "Acme");
    assert_eq!(field(&out, "Description:"), "GPU budget");

    let (code, out) = run(orgs(&["add-member", &org, &alice])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("User {alice} added to organization {org}.")),
        "{out}"
    );
    let (code, out) = run(orgs(&["members", &org])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Members of Acme") && out.contains("alice"),
        "{out}"
    );

    let (code, out) = run(orgs(&[
        "team-create",
        &org,
        "--name",
        "Vision",
        "--slug",
        "vision",
    ]))
    .await;
    assert_eq!(code, 0, "{out}");
    let team = field(&out, "ID:").to_string();
    let (code, out) = run(orgs(&["teams", &org])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Teams in Acme") && out.contains("vision"),
        "{out}"
    );
    let (code, out) = run(orgs(&["team-update", &org, &team, "--name", "Vision Lab"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("Team {team} updated.")), "{out}");
    let (code, out) = run(orgs(&["team-get", &org, &team])).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&out, "Name:"), "Vision Lab");
    let add = [
        "team-add-member",
        &org,
        &team,
        "--user-id",
        &alice,
        "--role",
        "lead",
    ];
    let (code, out) = run(orgs(&add)).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("User {alice} added to team {team} as lead.")),
        "{out}"
    );
    let (code, out) = run(orgs(&add)).await;
    assert_ne!(code, 0, "already a member: {out}");
    let (code, out) = run(orgs(&["team-members", &org, &team])).await;
    assert_eq!(code, 0, "{out}");
    let row = out
        .lines()
        .find(|l| l.contains("alice"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.starts_with(&alice) && row.contains("lead"), "{out}");
    let (code, out) = run(orgs(&["team-remove-member", &org, &team, &alice])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("User {alice} removed from team {team}.")),
        "{out}"
    );
    let (code, out) = run(orgs(&["remove-member", &org, &alice])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("User {alice} removed from organization {org}.")),
        "{out}"
    );

    let (code, out) = run(orgs(&["team-delete", &org, &team, "--force"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("Team {team} deleted.")), "{out}");
    let (code, out) = run(orgs(&["delete", &org, "--force"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("Organization {org} deleted.")),
        "{out}"
    );
    let (code, out) = run(orgs(&["get", &org])).await;
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(&format!("Organization {org} not found")),
        "{out}"
    );
}

/// `simpletuner quota ...` and `auth orgs quotas/set-quota/team-set-quota`
/// (issue 27, item 2): quotas set, listed, shown with usage and deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simpletuners_cli_sets_lists_shows_and_deletes_quotas() {
    let t = TestApp::builder()
        .var("admin_token", "")
        .served()
        .start()
        .await;
    let cli = admin_cli(&t).await;
    let keyed = t.app.anonymous().with_header("x-api-key", &cli.key);
    let alice = new_researcher_number(&keyed, "alice").await;

    let (code, out) = cli.run(&["quota", "types"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("concurrent_jobs") && out.contains("cost_monthly"),
        "{out}"
    );
    let (code, out) = cli
        .run(&[
            "quota",
            "create",
            "--type",
            "concurrent_jobs",
            "--limit",
            "2",
            "--action",
            "warn",
        ])
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Quota created: concurrent_jobs = 2.0 (warn)"),
        "{out}"
    );
    let (code, out) = cli
        .run(&[
            "quota",
            "create",
            "--type",
            "cost_daily",
            "--limit",
            "10",
            "--user-id",
            &alice,
        ])
        .await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli
        .run(&["quota", "create", "--type", "local_gpus", "--limit", "1"])
        .await;
    assert_ne!(code, 0, "not a quota type here: {out}");
    assert!(out.contains("Invalid quota_type"), "{out}");
    let (code, out) = cli.run(&["quota", "list"]).await;
    assert_eq!(code, 0, "{out}");
    let row = |kind: &str| {
        out.lines()
            .find(|l| l.contains(kind))
            .unwrap_or_else(|| panic!("no {kind} row in:\n{out}"))
            .to_string()
    };
    assert!(row("concurrent_jobs").contains("global"), "{out}");
    assert!(
        row("cost_daily").contains(&format!("user:{alice}")),
        "{out}"
    );
    let (code, out) = cli.run(&["quota", "status"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("concurrent_jobs (warn):") && out.contains("0.00 / 2.00 - OK"),
        "{out}"
    );

    let listed = keyed.request("GET", "/api/quotas", &[], "").await.json();
    let id = listed["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["quota_type"] == "concurrent_jobs")
        .unwrap()["id"]
        .to_string();
    let (code, out) = cli.run(&["quota", "delete", &id, "--force"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("Quota {id} deleted.")), "{out}");
    let (code, out) = cli.run(&["quota", "delete", &id, "--force"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains(&format!("Quota not found: {id}")), "{out}");

    let (code, out) = cli
        .run(&["auth", "orgs", "create", "--name", "Acme", "--slug", "acme"])
        .await;
    assert_eq!(code, 0, "{out}");
    let org = field(&out, "ID:").to_string();
    let (code, out) = cli
        .run(&[
            "auth",
            "orgs",
            "set-quota",
            &org,
            "--type",
            "cost_monthly",
            "--limit",
            "100",
        ])
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "Quota cost_monthly = 100.0 (block) set for organization {org}."
        )),
        "{out}"
    );
    let (code, out) = cli.run(&["auth", "orgs", "quotas", &org]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Quotas for Acme") && out.contains("cost_monthly"),
        "{out}"
    );
    let (code, out) = cli
        .run(&[
            "auth",
            "orgs",
            "team-create",
            &org,
            "--name",
            "Vision",
            "--slug",
            "vision",
        ])
        .await;
    assert_eq!(code, 0, "{out}");
    let team = field(&out, "ID:").to_string();
    let set = |limit: &'static str| {
        let (org, team) = (org.clone(), team.clone());
        let cli = &cli;
        async move {
            cli.run(&[
                "auth",
                "orgs",
                "team-set-quota",
                &org,
                &team,
                "--type",
                "cost_monthly",
                "--limit",
                limit,
            ])
            .await
        }
    };
    let (code, out) = set("500").await;
    assert_ne!(code, 0, "above the organization's: {out}");
    assert!(out.contains("cannot exceed organization ceiling"), "{out}");
    let (code, out) = set("50").await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "Quota cost_monthly = 50.0 (block) set for team {team}."
        )),
        "{out}"
    );
    let (code, out) = cli.run(&["auth", "orgs", "team-quotas", &org, &team]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Quotas for Vision") && out.contains("50.0"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simpletuners_cli_creates_lists_tests_notification_channels_and_reads_their_history() {
    let t = TestApp::builder()
        .var("admin_token", "")
        .served()
        .start()
        .await;
    let cli = admin_cli(&t).await;
    let notif = |args: &[&str]| {
        let mut all = vec!["notifications"];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let cli = &cli;
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            cli.run(&refs).await
        }
    };

    let (code, out) = run(notif(&["channels"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("No notification channels configured."),
        "{out}"
    );
    let slack = "https://hooks.slack.com/services/T0001/B0002/sEcReTtOkEn";
    let (code, out) = run(notif(&[
        "channel-create",
        "--type",
        "slack",
        "--name",
        "Ops",
        "--webhook-url",
        slack,
    ]))
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Channel created:"), "{out}");
    let remote = field(&out, "ID:").to_string();
    assert!(remote.parse::<u64>().is_ok(), "{out}");
    assert_eq!(field(&out, "Type:"), "slack");

    // A receiver on loopback needs an admin's allow_private, which the CLI has no flag for.
    let receiver = fake_replicate::receiver::Receiver::start(0).await;
    let keyed = t.app.anonymous().with_header("x-api-key", &cli.key);
    let r = post_json(
        &keyed,
        "/api/cloud/notifications/channels",
        &json!({"channel_type": "slack", "name": "Local", "webhook_url": receiver.url,
                "allow_private": true}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let local = r.json()["id"].to_string();

    let (code, out) = run(notif(&["channels"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Notification Channels"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with(&remote))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("Ops") && row.contains("slack") && row.contains("yes"),
        "{out}"
    );
    assert!(!out.contains("sEcReT"), "the URL is masked: {out}");

    let (code, out) = run(notif(&["channel-test", &local])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("Channel {local} test successful")),
        "{out}"
    );
    assert_eq!(receiver.count(), 1);
    // This host may send only to loopback: the remote test fails, says why, names
    // the host and nothing of the URL's secret path.
    let (code, out) = run(notif(&["channel-test", &remote])).await;
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(&format!("Channel {remote} test FAILED: ")) && out.contains("hooks.slack.com"),
        "{out}"
    );
    assert!(!out.contains("sEcReT"), "{out}");

    let (code, out) = run(notif(&["history", "--channel-id", &local])).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Notification Delivery History"), "{out}");
    let row = out
        .lines()
        .find(|l| l.contains("delivered"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("test") && row.contains(&local), "{out}");
    assert!(!out.contains("failed"), "only the local channel's: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simpletuners_cli_lists_approves_and_rejects_held_submits() {
    let t = TestApp::builder()
        .var("admin_token", "")
        .served()
        .start()
        .await;
    let cli = admin_cli(&t).await;
    let approval = |args: &[&str]| {
        let mut all = vec!["jobs", "approval"];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let cli = &cli;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli.run(&args).await
        }
    };
    let (code, out) = run(approval(&["rules"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No approval rules configured."), "{out}");

    let keyed = t.app.anonymous().with_header("x-api-key", &cli.key);
    let r = post_json(
        &keyed,
        "/api/approvals/rules",
        &json!({"name": "Expensive runs", "condition": "cost_exceeds", "threshold": "5"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = post_json(
        &keyed,
        "/api/cloud/auth/users",
        &json!({"username": "alice", "password": PASSWORD, "role": "researcher"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = post_json(
        &t.app.anonymous(),
        "/api/cloud/auth/login",
        &json!({"username": "alice", "password": PASSWORD}),
    )
    .await;
    let alice = t.app.anonymous().with_header(
        "authorization",
        &format!("Bearer {}", r.json()["token"].as_str().unwrap()),
    );
    // ~$9 each: an H100 for at most 98 minutes.
    let nine = json!({"config": {"--max_train_steps": 10}, "hardware_profile": "h100",
        "max_runtime_minutes": 98});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = post_json(&alice, SUBMIT, &nine).await;
        assert_eq!(r.status, 202, "{}", r.text());
        ids.push(r.json()["approval_request_id"].to_string());
    }
    let (first, second) = (&ids[0], &ids[1]);

    let (code, out) = run(approval(&["rules"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("[+] Rule 1: Expensive runs (cost_exceeds 5)"),
        "{out}"
    );
    let (code, out) = run(approval(&["pending"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Pending Approvals (2)"), "{out}");
    assert!(
        out.contains("Reason: Estimated cost ($8.97) exceeds threshold ($5)"),
        "{out}"
    );
    assert!(t.fake.prediction_ids().is_empty(), "nothing sent yet");

    let (code, out) = run(approval(&["approve", first, "--reason", "fine"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("Approval {first} approved.")),
        "{out}"
    );
    assert!(out.contains("is now queued for execution"), "{out}");
    assert_eq!(t.fake.prediction_ids().len(), 1);

    let (code, out) = run(approval(&["reject", second])).await;
    assert_ne!(code, 0, "a rejection needs a reason: {out}");
    assert!(out.contains("Rejection reason is required"), "{out}");
    let (code, out) = run(approval(&["reject", second, "--reason", "Cost too high"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("Approval {second} rejected.")),
        "{out}"
    );

    let (code, out) = run(approval(&["list", "--status", "rejected"])).await;
    assert_eq!(code, 0, "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with(second.as_str()))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("rejected"), "{out}");
    let (code, out) = run(approval(&["pending"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No pending approval requests."), "{out}");
    assert_eq!(t.fake.prediction_ids().len(), 1);
}

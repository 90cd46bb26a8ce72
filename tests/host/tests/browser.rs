//! The web UI in a real browser: headless Debian `chromium` driven by
//! `playwright-core` (tests/ui/browser.test.mjs) against the served app and the
//! fake Replicate server, whose clock runs ~8× faster than real time so jobs
//! move while the page watches. Screenshots land in tests/ui/test-output/.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{TestApp, add_trainers};
use fake_replicate::{FakeReplicate, Outcome, Script};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_runs_the_whole_flow_in_chromium() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`; .ci/run does)"
    );
    assert!(
        ui.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci --prefix tests/ui` (tests/run-all.sh does)"
    );
    let mut fake = FakeReplicate::start().await;
    add_trainers(&fake);
    // Job 1 completes with progress; job 2 runs long enough to be cancelled.
    fake.push_script(Script::training(
        4,
        24,
        5,
        Outcome::Succeeded {
            output: json!("https://replicate.delivery/x/lora.safetensors"),
        },
    ));
    fake.push_script(Script::training(4, 5000, 5, Outcome::Aborted));
    // Job 3 re-runs job 2 and runs on.
    fake.push_script(Script::training(4, 5000, 5, Outcome::Aborted));
    // Job 4 is the one built in the tabs with an uploaded folder.
    fake.push_script(Script::training(
        2,
        12,
        5,
        Outcome::Succeeded {
            output: json!("https://replicate.delivery/x/lora.safetensors"),
        },
    ));
    fake.auto_tick(Duration::from_millis(250));

    // No Replicate token: the UI's guided setup stores it. No admin_token: the
    // UI's first run makes the first admin (with one set, only its holder may).
    let served = TestApp::builder()
        .without_token()
        .var("admin_token", "")
        .served()
        .start_against(&fake)
        .await;
    let cats = served.datasets.path().join("cats");
    std::fs::create_dir_all(&cats).unwrap();
    for name in ["1.png", "2.png", "3.png"] {
        std::fs::write(cats.join(name), [9u8; 1024]).unwrap();
    }
    let url = served.url.clone();
    // The folder the browser uploads through the picker, as on the user's machine.
    let picked = tempfile::tempdir().unwrap();
    let folder = picked.path().join("tabs-cats");
    let uploaded = upload_folder(&folder);

    // The fake's clock: 2 s every 250 ms.
    fake.auto_advance(Duration::from_millis(250), 2);

    let out_dir = ui.join("test-output");
    let script = ui.join("browser.test.mjs");
    let token = fake_replicate::DEFAULT_TOKEN.to_string();
    let base = url.clone();
    let folder_arg = folder.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .env("BASE_URL", base)
            .env("REPLICATE_TOKEN", token)
            .env("CHROMIUM", CHROMIUM)
            .env("OUT_DIR", out_dir)
            .env("UPLOAD_DIR", folder_arg)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "browser test failed:\n{stdout}\n{stderr}\n--- app logs ---\n{}\n--- what Replicate saw ---\n{}",
        tail(&served.app.logs(), 4000),
        tail(&replicate_side(&fake), 6000)
    );
    // Replicate received a zip of exactly the uploaded folder's files.
    let zipped = fake
        .file_ids()
        .iter()
        .map(|id| common::unzip(&fake.file_bytes(id).unwrap()))
        .find(|files| files.keys().any(|k| k.starts_with("tabs-cats/")))
        .expect("a zip of the uploaded dataset reached Replicate");
    assert_eq!(
        zipped.keys().collect::<Vec<_>>(),
        uploaded.keys().collect::<Vec<_>>()
    );
    assert!(
        zipped == uploaded,
        "the zipped bytes differ from the folder's"
    );
    drop(fake);
}

/// The fake's side of a failed run: the requests it answered (method, path)
/// and every webhook it tried (prediction status, the app's answer), so a
/// job stuck in one state shows whether the webhooks or the page stalled.
fn replicate_side(fake: &FakeReplicate) -> String {
    let mut out = String::new();
    for r in fake.requests() {
        out.push_str(&format!("{} {}\n", r.method, r.path));
    }
    for d in fake.deliveries() {
        out.push_str(&format!(
            "webhook {} attempt {} ({}): {:?}\n",
            d.prediction_id, d.attempt, d.status, d.response_status
        ));
    }
    for id in fake.prediction_ids() {
        let status = fake.prediction(&id).map(|p| p["status"].clone());
        out.push_str(&format!("prediction {id}: {status:?}\n"));
    }
    out
}

/// A dataset folder with images, captions, a sub-folder, a file large enough
/// to go in parts, and two files the upload must leave behind. Returns what
/// the zip must hold: {"tabs-cats/<path>": bytes}.
fn upload_folder(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert("1.png", common::noise(30_000, 1));
    files.insert("1.txt", b"sks cat on a chair".to_vec());
    files.insert("2.png", common::noise(40_000, 2));
    files.insert("2.txt", b"sks cat asleep".to_vec());
    files.insert("big.jpg", common::noise(10 * 1024 * 1024, 3));
    files.insert("sub/3.webp", common::noise(20_000, 4));
    files.insert("sub/3.txt", b"sks cat outside".to_vec());
    for (path, bytes) in &files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    std::fs::write(dir.join(".DS_Store"), b"finder").unwrap();
    std::fs::write(dir.join("key.pem"), b"-----BEGIN PRIVATE KEY-----").unwrap();
    files
        .into_iter()
        .map(|(p, b)| (format!("tabs-cats/{p}"), b))
        .collect()
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    &s[start..]
}

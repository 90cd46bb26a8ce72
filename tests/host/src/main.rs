//! `cloudtuner-host`: serve the app from `spin.toml` without Spin.
//!
//! ```text
//! cloudtuner-host [--build] [--manifest spin.toml] [--listen 127.0.0.1:8001]
//!                 [--state-dir .spin] [--variable name=value]...
//!                 [--platform spin|fermyon-cloud|akamai]
//! ```
//! Variables also come from `SPIN_VARIABLE_<NAME>`, as with `spin up`.

use std::path::PathBuf;

use cloudtuner_testhost::manifest::Manifest;
use cloudtuner_testhost::{App, HostConfig, Platform, build, server};

const USAGE: &str =
    "usage: cloudtuner-host [--build] [--manifest spin.toml] [--listen 127.0.0.1:8001] \
     [--state-dir .spin] [--variable name=value]... [--platform spin|fermyon-cloud|akamai]

Serves the app that spin.toml describes, like `spin up`, on machines without Spin.
  --build       first run the components' build commands from spin.toml (as
                `spin up --build` does; adds the wasm32-wasip2 target if missing)
  --manifest    the app's spin.toml (default: ./spin.toml)
  --listen      address to serve (default: 127.0.0.1:8001)
  --state-dir   where the key-value store lives (default: .spin)
  --variable    an application variable, name=value (repeatable)
  --platform    act as the platform the app is deployed to (default: spin):
                spin           `spin up` / SpinKube: every interface, no limits
                fermyon-cloud  no wasi:keyvalue atomics or batch, no cron trigger,
                               30 s per request, 10 MB bodies, 500 outbound
                               requests per hour
                akamai         no wasi:keyvalue atomics, no SQLite, no cron
                               trigger, 30 s per request, 10 MiB bodies
                A component importing what the platform lacks fails to start.
Variables also come from SPIN_VARIABLE_<NAME>.";

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut manifest = PathBuf::from("spin.toml");
    let mut listen = "127.0.0.1:8001".to_string();
    let mut state_dir = PathBuf::from(".spin");
    let mut vars = Vec::new();
    let mut build_first = false;
    let mut platform = Platform::Spin;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                return;
            }
            "--build" => build_first = true,
            "--manifest" | "-f" => manifest = value().into(),
            "--listen" => listen = value(),
            "--state-dir" => state_dir = value().into(),
            "--platform" => {
                platform = Platform::parse(&value()).unwrap_or_else(|e| {
                    eprintln!("cloudtuner-host: {e}");
                    usage()
                })
            }
            "--variable" => {
                let v = value();
                let (k, val) = v.split_once('=').unwrap_or_else(|| usage());
                vars.push((k.to_string(), val.to_string()));
            }
            _ => usage(),
        }
    }
    if build_first {
        let dir = manifest
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let built = Manifest::load(&manifest)
            .map_err(|e| e.to_string())
            .and_then(|m| build::run(dir, &build::plan(&m)));
        if let Err(e) = built {
            eprintln!("cloudtuner-host: {e}");
            std::process::exit(1);
        }
    }
    let mut config = HostConfig::new(manifest, &state_dir)
        .variables_from_env()
        .platform(platform);
    for (k, v) in vars {
        config = config.variable(&k, v);
    }
    let app = match App::load(&config) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("cloudtuner-host: {e}");
            std::process::exit(1);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cloudtuner-host: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    // Write errors (a closed pipe) must not stop the server.
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "Serving http://{}",
        listener.local_addr().expect("bound")
    );
    for t in &app.manifest().trigger.http {
        let _ = writeln!(out, "  {} -> {}", t.route, t.component);
    }
    let _ = out.flush();
    server::serve(app, listener).await;
}

//! The scheduled sync, with two entry points: `POST /api/cloud/jobs/sync`
//! (needs `job.sync`; for Spin without the cron plugin, Fermyon Cloud and CI
//! schedulers) and the `fermyon:spin-cron` export `handle-cron-event` (for
//! `spin up -f spin-cron.toml` with the trigger-cron plugin).

use cloudtuner_domain::clock::now_ms;
use cloudtuner_domain::jobs::JobStore;
use cloudtuner_domain::{retention, sync};
use cloudtuner_spin::{
    SpinHttp, SpinKv, json, provider_settings, require_method, require_permission,
    require_principal, respond, variable,
};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

async fn pass() -> Result<sync::SyncReport, cloudtuner_domain::error::ApiError> {
    let kv = SpinKv::open_default()?;
    let store = JobStore::new(&kv);
    let now = now_ms();
    let mut report = sync::run(&store, &SpinHttp, &provider_settings(&kv), now).await;
    // Retention after the refresh, so a job that just ended is judged by its end.
    report.add_retention(retention::run(
        &store,
        variable("retention_days").as_deref(),
        now,
    ));
    Ok(report)
}

#[http_component]
async fn handle(req: Request) -> Response {
    let run = async {
        require_method(&req, &["POST"])?;
        let kv = SpinKv::open_default()?;
        let principal = require_principal(&req, &kv)?;
        require_permission(&principal, "job.sync")?;
        Ok(json(200, &pass().await?.to_json()))
    };
    respond(run.await)
}

mod cron {
    wit_bindgen::generate!({
        path: "../../wit/spin-cron.wit",
        world: "spin-cron",
    });

    struct Cron;

    impl Guest for Cron {
        fn handle_cron_event(_metadata: Metadata) -> Result<(), Error> {
            match spin_sdk::http::run(super::pass()) {
                Ok(report) => {
                    println!("sync: {}", report.to_json());
                    Ok(())
                }
                Err(e) => Err(Error::Other(e.message)),
            }
        }
    }

    export!(Cron);
}

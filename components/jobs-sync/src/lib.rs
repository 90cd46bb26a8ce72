//! The scheduled sync, with two entry points: `POST /api/cloud/jobs/sync`
//! (needs `job.sync`; for Spin without the cron plugin, Fermyon Cloud and CI
//! schedulers) and the `fermyon:spin-cron` export `handle-cron-event` (for
//! `spin up -f spin-cron.toml` with the trigger-cron plugin).

use cloudtuner_domain::auth::principal::Permission;
use cloudtuner_domain::jobs::store::JobStore;
use cloudtuner_domain::jobs::sync::{self, SyncReport, scheduled_pass};
use cloudtuner_domain::kernel::clock::now_ms;
use cloudtuner_domain::kernel::error::ApiError;
use cloudtuner_spin::{AppKv, Call, Outcome, SpinHttp, json, respond, variable};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    respond(run(&req).await)
}

async fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["POST"])?;
    call.principal_with(Permission::JobSync)?;
    Ok(json(200, &pass(&call.kv).await.to_json()))
}

/// One sync pass over the store, from either entry point.
async fn pass(kv: &AppKv) -> SyncReport {
    let settings = cloudtuner_spin::provider_settings(kv);
    let retention_days = variable("retention_days");
    let budget = sync::budget(variable("sync_request_budget").as_deref());
    let store = JobStore::new(kv);
    scheduled_pass(
        &store,
        &SpinHttp,
        &settings,
        retention_days.as_deref(),
        budget,
        now_ms(),
    )
    .await
}

/// The cron entry point has no request: it opens the store itself.
async fn cron_pass() -> Result<SyncReport, ApiError> {
    Ok(pass(&AppKv::open()?).await)
}

mod cron {
    wit_bindgen::generate!({
        path: "../../wit/spin-cron.wit",
        world: "spin-cron",
    });

    struct Cron;

    impl Guest for Cron {
        fn handle_cron_event(_metadata: Metadata) -> Result<(), Error> {
            match spin_sdk::http::run(super::cron_pass()) {
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

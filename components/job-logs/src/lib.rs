//! `GET /api/cloud/jobs/{id}/logs[?offset=N][&tail=N]` → `{"job_id", "logs", ...}`
//! (`next_offset` lets a client fetch only what is new next time), and
//! `GET /api/cloud/jobs/{id}/logs/stream[?offset=N]`: the same logs as
//! server-sent events until the job ends or the stream's time is up.

use cloudtuner_domain::jobs::lifecycle::{refresh, visible_job};
use cloudtuner_domain::jobs::log_stream::{self, Follower, POLL_MS};
use cloudtuner_domain::jobs::store::{JobStore, LogQuery};
use cloudtuner_domain::kernel::clock::now_ms;
use cloudtuner_domain::kernel::error::ApiError;
use cloudtuner_spin::{
    Call, Outcome, answer, background_http, json, matched_route, open_event_stream, render_error,
    respond, sleep_ms, variable,
};
use serde_json::json as j;
use spin_sdk::http::{Request, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request, out: ResponseOutparam) {
    if matched_route(&req).ends_with("/stream") {
        stream(&req, out).await
    } else {
        answer(out, respond(run(&req).await)).await
    }
}

async fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET"])?;
    let id = call.path_param("id")?;
    let query = LogQuery::parse(&call.query())?;
    let principal = call.principal()?;
    let store = JobStore::new(&call.kv);
    let job = visible_job(&store, &principal, &id)?;
    let settings = call.provider_settings();
    let (job, refresh_error) =
        refresh(&store, &background_http(), &settings, job, call.now_ms).await;
    let slice = store.logs(&id)?.slice(query.offset, query.tail);
    Ok(json(
        200,
        &j!({
            "job_id": id,
            "status": job.status.as_str(),
            "logs": slice.text,
            "offset": slice.offset,
            "next_offset": slice.next_offset,
            "truncated": slice.truncated,
            "refresh_error": refresh_error,
        }),
    ))
}

/// What a stream needs before it answers: errors here are ordinary JSON errors.
fn start(req: &Request) -> Result<(Call<'_>, Follower), ApiError> {
    let call = Call::new(req, &["GET"])?;
    let id = call.path_param("id")?;
    let offset = log_stream::start_offset(&call.query(), call.header("last-event-id").as_deref())?;
    let principal = call.principal()?;
    let job = visible_job(&JobStore::new(&call.kv), &principal, &id)?;
    let seconds = log_stream::stream_seconds(variable("log_stream_seconds").as_deref());
    let follower = Follower::new(&job.job_id, offset, seconds, call.now_ms);
    Ok((call, follower))
}

/// Sends what each poll of the follower finds, until it says the stream ends.
async fn stream(req: &Request, out: ResponseOutparam) {
    let (call, mut follower) = match start(req) {
        Ok(started) => started,
        Err(e) => return answer(out, render_error(&e)).await,
    };
    let settings = call.provider_settings();
    let store = JobStore::new(&call.kv);
    let http = background_http();
    let mut events = open_event_stream(out);
    loop {
        let poll = follower.poll(&store, &http, &settings, now_ms()).await;
        if !poll.text.is_empty() && !events.send(&poll.text).await {
            return; // the client has gone
        }
        if poll.end {
            break;
        }
        sleep_ms(POLL_MS);
    }
    events.close().await;
}

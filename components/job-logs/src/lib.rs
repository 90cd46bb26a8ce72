//! `GET /api/cloud/jobs/{id}/logs[?offset=N][&tail=N]` → `{"job_id", "logs", ...}`
//! (`next_offset` lets a client fetch only what is new next time), and
//! `GET /api/cloud/jobs/{id}/logs/stream[?offset=N]`: the same logs as
//! server-sent events until the job ends or the stream's time is up.

use cloudtuner_domain::jobs::lifecycle::{refresh, visible_job};
use cloudtuner_domain::jobs::log_stream::{self, KEEPALIVE, KEEPALIVE_MS, POLL_MS};
use cloudtuner_domain::jobs::record::Job;
use cloudtuner_domain::jobs::store::{JobStore, LogQuery};
use cloudtuner_domain::kernel::clock::now_ms;
use cloudtuner_domain::kernel::error::ApiError;
use cloudtuner_spin::{
    Call, Outcome, SpinHttp, answer, json, matched_route, open_event_stream, render_error, respond,
    sleep_ms, variable,
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
    let (job, refresh_error) = refresh(&store, &SpinHttp, &settings, job, call.now_ms).await;
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
struct Follow<'a> {
    call: Call<'a>,
    job: Job,
    offset: usize,
}

fn start(req: &Request) -> Result<Follow<'_>, ApiError> {
    let call = Call::new(req, &["GET"])?;
    let id = call.path_param("id")?;
    let offset = log_stream::start_offset(&call.query(), call.header("last-event-id").as_deref())?;
    let principal = call.principal()?;
    let job = visible_job(&JobStore::new(&call.kv), &principal, &id)?;
    Ok(Follow { call, job, offset })
}

async fn stream(req: &Request, out: ResponseOutparam) {
    let Follow {
        call,
        mut job,
        mut offset,
    } = match start(req) {
        Ok(f) => f,
        Err(e) => return answer(out, render_error(&e)).await,
    };
    let seconds = log_stream::stream_seconds(variable("log_stream_seconds").as_deref());
    let ends_at = call.now_ms + seconds * 1000;
    let settings = call.provider_settings();
    let store = JobStore::new(&call.kv);
    let mut events = open_event_stream(out);
    let mut last_sent = call.now_ms;
    loop {
        let now = now_ms();
        (job, _) = refresh(&store, &SpinHttp, &settings, job, now).await;
        let ended = job.status.is_terminal();
        let Ok(logs) = store.logs(&job.job_id) else {
            break; // the store is unreachable: end; the client reconnects
        };
        let batch = log_stream::line_events(&logs.slice(Some(offset), None), ended);
        offset = batch.next_offset;
        let mut text = batch.text;
        if ended {
            text.push_str(&log_stream::done_event(job.status));
        } else if now >= ends_at {
            text.push_str(&log_stream::reconnect_event(offset, seconds));
        } else if text.is_empty() && now.saturating_sub(last_sent) >= KEEPALIVE_MS {
            text.push_str(KEEPALIVE);
        }
        if !text.is_empty() {
            if !events.send(&text).await {
                return; // the client has gone
            }
            last_sent = now;
        }
        if ended || now >= ends_at {
            break;
        }
        sleep_ms(POLL_MS);
        // A job deleted while followed ends the stream as SimpleTuner's does.
        match store.get(&job.job_id) {
            Ok(Some(fresh)) => job = fresh,
            _ => {
                events.send("event: done\ndata: stream_end\n\n").await;
                break;
            }
        }
    }
    events.close().await;
}

//! `GET /api/cloud/jobs/{id}/logs/stream`: a job's logs as server-sent events
//! (SimpleTuner's shape: one `data:` event per log line, then
//! `event: done` with the final status).
//!
//! A request is bounded (Fermyon Cloud ends requests after 30 s; a proxy may
//! too), so every line event carries `id: <byte offset after it>`: a client
//! that reconnects with `Last-Event-ID` (EventSource does this by itself) or
//! `?offset=` resumes exactly where it stopped, and no line is sent twice.
//!
//! [`Follower`] is the follow loop's every decision (the component only
//! sleeps between polls and sends what a poll returns). It ends on `done`
//! only once the job's last lines have been sent, whatever the order in which
//! the webhook, the sync, refresh-on-read and the stream see the end. That
//! holds by construction, from two rules:
//! - writers (the webhook, the refresh the sync and readers use, a cancel)
//!   store a prediction's logs *before* the job update that may carry its
//!   end, never inside it (a store holds one compare-and-swap at a time), and
//!   logs only grow (`logs::store_growing`), so an older answer written
//!   late never replaces the final lines;
//! - a poll reads the job first and its logs only after, so an ended job it
//!   read comes with logs at least as new as that end. A job ended from a
//!   list item (no logs in it: `logs_pending`) is not ended for a follower
//!   until the refresh brings its logs, or this stream's time is up.

use crate::kernel::error::ApiError;
use crate::kernel::http::{HttpClient, param};
use crate::providers::settings::ProviderSettings;

use super::lifecycle::refresh;
use super::record::{Job, JobStatus};
use super::store::{JobStore, LogSlice, StoredLogs};

/// How long one stream lasts unless `log_stream_seconds` says otherwise:
/// under Fermyon Cloud's 30 s request limit.
pub const DEFAULT_STREAM_SECONDS: u64 = 25;
/// The longest stream an operator may configure (an hour).
pub const MAX_STREAM_SECONDS: u64 = 3600;
/// How often a stream looks for new log text.
pub const POLL_MS: u64 = 1000;
/// A comment line sent when nothing else was for this long, so a client (and
/// any proxy between) knows the stream is alive, and a closed client is noticed.
pub const KEEPALIVE_MS: u64 = 10_000;

/// Where a stream starts: `Last-Event-ID` (a reconnecting EventSource), else
/// `?offset=`, else the start of the stored logs.
pub fn start_offset(
    params: &[(String, String)],
    last_event_id: Option<&str>,
) -> Result<usize, ApiError> {
    let parse = |what: &str, v: &str| {
        v.trim().parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "`{what}` must be a byte offset (a non-negative integer), got {v:?}"
            ))
        })
    };
    match (
        last_event_id.filter(|v| !v.trim().is_empty()),
        param(params, "offset"),
    ) {
        (Some(id), _) => parse("Last-Event-ID", id),
        (None, Some(offset)) => parse("offset", offset),
        (None, None) => Ok(0),
    }
}

/// The stream length an operator configured (`log_stream_seconds`), within
/// 1 s ..= [`MAX_STREAM_SECONDS`]; unset or unreadable is the default.
pub fn stream_seconds(configured: Option<&str>) -> u64 {
    configured
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_STREAM_SECONDS, |s| s.clamp(1, MAX_STREAM_SECONDS))
}

/// The events for new log text, and the offset to read from next.
#[derive(Debug, Clone, PartialEq)]
pub struct LineEvents {
    pub text: String,
    pub next_offset: usize,
}

/// One event per complete line of `slice` (a line still being written waits
/// for its newline, unless the job has ended). A carriage return rewrites a
/// terminal line (progress bars), so a line shows what follows its last `\r`.
pub fn line_events(slice: &LogSlice, job_ended: bool) -> LineEvents {
    let mut text = String::new();
    let mut consumed = 0;
    for line in slice.text.split_inclusive('\n') {
        if !line.ends_with('\n') && !job_ended {
            break;
        }
        consumed += line.len();
        let shown = line
            .trim_end_matches(['\n', '\r'])
            .rsplit('\r')
            .next()
            .unwrap_or_default();
        text.push_str(&format!(
            "id: {}\ndata: {shown}\n\n",
            slice.offset + consumed
        ));
    }
    LineEvents {
        text,
        next_offset: slice.offset + consumed,
    }
}

/// The last event of a job that has ended: its status.
pub fn done_event(status: JobStatus) -> String {
    format!("event: done\ndata: {}\n\n", status.as_str())
}

/// The last event when the stream's time is up and the job is still active.
/// SimpleTuner's CLI prints every `data:` line, so it says how to go on;
/// EventSource ignores a named event it does not listen for and reconnects
/// (after `retry` ms) with the last `id`.
pub fn reconnect_event(next_offset: usize, seconds: u64) -> String {
    format!(
        "retry: 2000\nevent: reconnect\ndata: (log stream paused after {seconds} s, the \
         server's request limit; reconnect with offset={next_offset} to continue)\n\n"
    )
}

/// A comment: ignored by every SSE client.
pub const KEEPALIVE: &str = ": keep-alive\n\n";

/// The last event when the job was deleted while followed (as SimpleTuner's).
pub const DELETED_EVENT: &str = "event: done\ndata: stream_end\n\n";

/// What one poll found: events to send (maybe none), and whether the stream
/// ends after them.
#[derive(Debug, Clone, PartialEq)]
pub struct Poll {
    pub text: String,
    pub end: bool,
}

impl Poll {
    fn end(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            end: true,
        }
    }
}

/// One stream following one job's logs: where it is in them, when its time
/// is up, and when it last sent something.
#[derive(Debug, Clone)]
pub struct Follower {
    job_id: String,
    offset: usize,
    seconds: u64,
    ends_at: u64,
    last_sent: u64,
}

impl Follower {
    /// A stream of `job_id`'s logs from byte `offset`, started at `now_ms`,
    /// lasting `seconds` (see [`stream_seconds`]).
    pub fn new(job_id: &str, offset: usize, seconds: u64, now_ms: u64) -> Self {
        Self {
            job_id: job_id.to_string(),
            offset,
            seconds,
            ends_at: now_ms + seconds * 1000,
            last_sent: now_ms,
        }
    }

    /// One look at the job, every [`POLL_MS`]: the job (refreshed from the
    /// provider when due), then its logs, then what to send.
    pub async fn poll<H: HttpClient>(
        &mut self,
        store: &JobStore<'_>,
        http: &H,
        settings: &ProviderSettings,
        now_ms: u64,
    ) -> Poll {
        let job = match store.get(&self.job_id) {
            Ok(Some(job)) => job,
            Ok(None) => return Poll::end(DELETED_EVENT),
            // The store is unreachable: end without `done`, so the client
            // reconnects (EventSource does) and resumes from its last id.
            Err(_) => return Poll::end(""),
        };
        let (job, _) = refresh(store, http, settings, job, now_ms).await;
        self.after_status(store, &job, now_ms)
    }

    /// The job's status has been read (`job`): only now read its logs, so
    /// they are at least as new as that status, and decide.
    pub fn after_status(&mut self, store: &JobStore<'_>, job: &Job, now_ms: u64) -> Poll {
        match store.logs(&job.job_id) {
            Ok(logs) => self.decide(job, &logs, now_ms),
            Err(_) => Poll::end(""),
        }
    }

    /// What to send, given the job and logs read after it.
    fn decide(&mut self, job: &Job, logs: &StoredLogs, now_ms: u64) -> Poll {
        let time_up = now_ms >= self.ends_at;
        // A job ended from a list item waits for its final logs, within this
        // stream's time: a prediction whose logs never come must not keep a
        // client reconnecting for ever.
        let ended = job.status.is_terminal() && (!job.logs_pending || time_up);
        let batch = line_events(&logs.slice(Some(self.offset), None), ended);
        self.offset = batch.next_offset;
        let mut text = batch.text;
        if ended {
            text.push_str(&done_event(job.status));
        } else if time_up {
            text.push_str(&reconnect_event(self.offset, self.seconds));
        } else if text.is_empty() && now_ms.saturating_sub(self.last_sent) >= KEEPALIVE_MS {
            text.push_str(KEEPALIVE);
        }
        if !text.is_empty() {
            self.last_sent = now_ms;
        }
        Poll {
            text,
            end: ended || time_up,
        }
    }
}

#[cfg(test)]
mod follow_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(offset: usize, text: &str) -> LogSlice {
        LogSlice {
            text: text.into(),
            offset,
            next_offset: offset + text.len(),
            truncated: false,
        }
    }

    fn params(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn complete_lines_become_events_with_the_offset_after_each() {
        let e = line_events(&slice(10, "step 1\nstep 2\nstep"), false);
        assert_eq!(e.text, "id: 17\ndata: step 1\n\nid: 24\ndata: step 2\n\n");
        assert_eq!(
            e.next_offset, 24,
            "the partial line is read again next time"
        );
    }

    #[test]
    fn an_ended_job_flushes_its_last_partial_line() {
        let e = line_events(&slice(0, "done"), true);
        assert_eq!(e.text, "id: 4\ndata: done\n\n");
        assert_eq!(e.next_offset, 4);
    }

    #[test]
    fn carriage_returns_show_the_final_state_of_a_line() {
        let e = line_events(&slice(0, " 10%\r 50%\r100%\r\n"), false);
        assert_eq!(e.text, "id: 16\ndata: 100%\n\n");
    }

    #[test]
    fn nothing_new_is_no_events() {
        let e = line_events(&slice(5, ""), false);
        assert_eq!((e.text.as_str(), e.next_offset), ("", 5));
    }

    #[test]
    fn a_reconnect_resumes_from_last_event_id_before_the_query() {
        assert_eq!(
            start_offset(&params(&[("offset", "3")]), Some("42")).unwrap(),
            42
        );
        assert_eq!(start_offset(&params(&[("offset", "3")]), None).unwrap(), 3);
        assert_eq!(start_offset(&[], Some(" ")).unwrap(), 0);
        let e = start_offset(&params(&[("offset", "-1")]), None).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("offset"), "{}", e.message);
    }

    #[test]
    fn the_stream_length_is_bounded() {
        assert_eq!(stream_seconds(None), DEFAULT_STREAM_SECONDS);
        assert_eq!(stream_seconds(Some("nope")), DEFAULT_STREAM_SECONDS);
        assert_eq!(stream_seconds(Some("0")), 1);
        assert_eq!(stream_seconds(Some("99999")), MAX_STREAM_SECONDS);
        assert_eq!(stream_seconds(Some("120")), 120);
    }

    #[test]
    fn the_last_events_name_the_status_or_how_to_go_on() {
        assert_eq!(
            done_event(JobStatus::Failed),
            "event: done\ndata: failed\n\n"
        );
        let r = reconnect_event(77, 25);
        assert!(r.starts_with("retry: 2000\nevent: reconnect\n"), "{r}");
        assert!(r.contains("offset=77"), "{r}");
    }
}

//! `GET /api/cloud/jobs/{id}/logs/stream`: a job's logs as server-sent events
//! (SimpleTuner's shape: one `data:` event per log line, then
//! `event: done` with the final status).
//!
//! A request is bounded (Fermyon Cloud ends requests after 30 s; a proxy may
//! too), so every line event carries `id: <byte offset after it>`: a client
//! that reconnects with `Last-Event-ID` (EventSource does this by itself) or
//! `?offset=` resumes exactly where it stopped, and no line is sent twice.

use crate::kernel::error::ApiError;
use crate::kernel::http::param;

use super::record::JobStatus;
use super::store::LogSlice;

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

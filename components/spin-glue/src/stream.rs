//! Streamed responses (server-sent events) through Spin's `ResponseOutparam`,
//! for the one route that follows a job's logs as they arrive.

use futures::SinkExt;
use spin_sdk::http::{Fields, OutgoingResponse, Response, ResponseOutparam};

/// Sends a complete response (an error, or a route that does not stream).
pub async fn answer(out: ResponseOutparam, mut response: Response) {
    let body = std::mem::take(response.body_mut());
    match OutgoingResponse::try_from(response) {
        Ok(outgoing) => {
            // The client may already be gone; nothing is left to tell it.
            let _ = out.set_with_body(outgoing, body).await;
        }
        Err(e) => eprintln!("could not build the response: {e}"),
    }
}

/// An open `text/event-stream` response.
pub struct EventStream<S> {
    body: std::pin::Pin<Box<S>>,
}

/// Answers 200 with the event-stream head; events follow with
/// [`send`](EventStream::send).
pub fn open_event_stream(out: ResponseOutparam) -> EventStream<impl futures::Sink<Vec<u8>>> {
    {
        let headers = Fields::from_list(&[
            ("content-type".into(), b"text/event-stream".to_vec()),
            ("cache-control".into(), b"no-cache".to_vec()),
            // Nginx and similar proxies buffer responses unless told not to.
            ("x-accel-buffering".into(), b"no".to_vec()),
        ])
        .expect("valid header names");
        let response = OutgoingResponse::new(headers);
        response.set_status_code(200).expect("200 is a status");
        let body = Box::pin(response.take_body());
        out.set(response);
        EventStream { body }
    }
}

impl<S: futures::Sink<Vec<u8>>> EventStream<S> {
    /// Writes `text` and flushes it; `false` once the client has gone.
    pub async fn send(&mut self, text: &str) -> bool {
        if text.is_empty() {
            return true;
        }
        self.body.send(text.as_bytes().to_vec()).await.is_ok()
    }

    /// Ends the response so the client sees a complete stream.
    pub async fn close(mut self) {
        let _ = self.body.close().await;
    }
}

/// Waits `ms` milliseconds (a WASI clock wait: the instance does nothing else).
pub fn sleep_ms(ms: u64) {
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

//! A webhook receiver for tests: an HTTP server on loopback that records
//! every request (headers and body) and answers 500 to the first `failures`
//! of them, 204 afterwards — enough to check signatures and retries.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};

/// What a receiver got: the headers and body of each request, in order.
pub type Received = Arc<Mutex<Vec<(http::HeaderMap, Vec<u8>)>>>;

pub struct Receiver {
    /// `http://127.0.0.1:<port>/hook`.
    pub url: String,
    pub received: Received,
}

impl Receiver {
    /// Starts a receiver that fails the first `failures` requests.
    pub async fn start(failures: usize) -> Receiver {
        let received: Received = Default::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let rec = received.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let rec = rec.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let rec = rec.clone();
                            async move {
                                let headers = req.headers().clone();
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let mut got = rec.lock().unwrap();
                                got.push((headers, body.to_vec()));
                                let status = if got.len() <= failures { 500 } else { 204 };
                                Ok::<_, std::convert::Infallible>(
                                    http::Response::builder()
                                        .status(status)
                                        .body(Empty::<Bytes>::new())
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        Receiver { url, received }
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

//! Serves an [`App`] over HTTP/1.1 with keep-alive. Sets `TCP_NODELAY` on every
//! connection (Spin does not, and stalls ~40 ms per request at concurrency 1
//! because of Nagle + delayed ACK: measured ~44 ms per request under Spin 4.1).

use std::net::SocketAddr;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use tokio::net::TcpListener;
use wasmtime_wasi_http::io::TokioIo;

use crate::App;

/// A server running in the background; dropping it stops accepting.
pub struct Served {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(app: App, listener: TcpListener) {
    loop {
        let Ok((sock, client)) = listener.accept().await else {
            continue;
        };
        let _ = sock.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, std::convert::Infallible>(app.handle(req, client).await) }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(sock), svc)
                .await;
        });
    }
}

impl Served {
    /// Serves on an already-bound listener (so the URL can be known first).
    pub fn from_listener(app: App, listener: TcpListener) -> Self {
        let addr = listener.local_addr().expect("bound listener");
        Served {
            addr,
            task: tokio::spawn(serve(app, listener)),
        }
    }
}

/// Starts serving on `addr` (port 0 picks a free port) in the background.
pub async fn spawn(app: App, addr: &str) -> std::io::Result<Served> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(serve(app, listener));
    Ok(Served { addr, task })
}

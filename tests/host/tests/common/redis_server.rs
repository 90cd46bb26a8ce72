//! A real `redis-server` (Debian's package) for one test: started on a free
//! loopback port with a data directory of its own, stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    persistent: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// A throw-away Redis (no persistence).
    pub(crate) fn start() -> Self {
        Self::launch(false)
    }

    /// A Redis that persists as production Redis runs: `appendonly yes`
    /// (with `appendfsync always`), so a stop, or a crash ([`Self::kill`]),
    /// and a start keep every acknowledged write, and a restarted server
    /// answers `LOADING` while it reads its file back.
    pub(crate) fn start_persistent() -> Self {
        Self::launch(true)
    }

    fn launch(persistent: bool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = RedisServer {
            port,
            dir: tempfile::tempdir().expect("tempdir"),
            persistent,
            child: None,
        };
        server.run();
        server
    }

    fn run(&mut self) {
        let child = Command::new(binary())
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--dir", path(self.dir.path())])
            .args(["--save", ""])
            .args(["--appendonly", if self.persistent { "yes" } else { "no" }])
            .args([
                "--appendfsync",
                if self.persistent {
                    "always"
                } else {
                    "everysec"
                },
            ])
            .args(["--daemonize", "no", "--logfile", "redis.log"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}); install Debian's package: \
                     apt-get install -y redis-server"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.ping().is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server the way an operator (or a pod eviction) does: SIGTERM,
    /// which a persistent Redis answers by flushing its append-only file.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Stops the server as a crash or an OOM kill does: SIGKILL, nothing
    /// flushed beyond what `appendfsync always` already wrote.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data directory (after a
    /// [`Self::kill`] too); returns once it answers PING, i.e. has read its
    /// append-only file back.
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.run();
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `host:port`, as the variable `redis_host` takes it.
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn ping(&self) -> redis::RedisResult<()> {
        let mut conn = redis::Client::open(self.url())?.get_connection()?;
        redis::cmd("PING").query::<String>(&mut conn).map(drop)
    }

    /// A plain client, for tests that look at what the app stored.
    pub(crate) fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to the test redis")
    }

    /// Every key under `prefix` (SCAN, as an operator would look).
    pub(crate) fn keys(&self, prefix: &str) -> Vec<String> {
        let mut conn = self.client();
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn)
                .expect("scan");
            keys.extend(page);
            if next == 0 {
                return keys;
            }
            cursor = next;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn binary() -> PathBuf {
    std::env::var_os("REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

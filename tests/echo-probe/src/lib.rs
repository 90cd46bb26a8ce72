//! A probe used only by the test host's own tests (never in spin.toml).
//! `GET  any/path`           → JSON of the request's headers (incl. spin-*) and path.
//! `GET  ...?kv_get=k`       → value of k in the default store (404 if missing).
//! `GET  ...?kv_set=k&v=val` → sets k.
//! `GET  ...?var=name`       → the component variable.
//! `GET  ...?fetch=url`      → status of an outbound GET, or 502 with the error code.
//! `GET  ...?atomic_inc=k`   → wasi:keyvalue atomics increment by 1, returns the new value.
//! `GET  ...?instance_count` → how many requests this instance has served (1 if fresh).
//! `GET  ...?redis=url&cmd=C&args=a|b` → outbound Redis: opens `url`, runs `C a b`
//!   through `execute`, and answers the results as JSON (`["status:OK", "nil",
//!   "int:1", "bin:text"]`), or 502 with the error (`InvalidAddress`, `Other(..)`).

use serde_json::{Map, Value, json};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

fn query(req: &Request, name: &str) -> Option<String> {
    req.query().split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| v.replace("%3A", ":").replace("%2F", "/"))
    })
}

fn text(status: u16, body: impl Into<String>) -> Response {
    Response::builder().status(status).body(body.into()).build()
}

static SERVED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[http_component]
async fn handle(req: Request) -> Response {
    let served = SERVED.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    if query(&req, "instance_count").is_some() {
        return text(200, served.to_string());
    }
    if let Some(key) = query(&req, "kv_get") {
        let store = spin_sdk::key_value::Store::open_default().expect("default store");
        return match store.get(&key).expect("get") {
            Some(v) => text(200, String::from_utf8_lossy(&v).into_owned()),
            None => text(404, "missing"),
        };
    }
    if let Some(key) = query(&req, "kv_set") {
        let store = spin_sdk::key_value::Store::open_default().expect("default store");
        store
            .set(&key, query(&req, "v").unwrap_or_default().as_bytes())
            .expect("set");
        return text(200, "set");
    }
    if let Some(key) = query(&req, "atomic_inc") {
        use spin_sdk::wit::wasi::keyvalue::{atomics, store};
        let bucket = store::open("default").expect("bucket");
        return match atomics::increment(&bucket, &key, 1) {
            Ok(n) => text(200, n.to_string()),
            Err(e) => text(500, format!("{e:?}")),
        };
    }
    if let Some(url) = query(&req, "redis") {
        return redis_execute(
            &url,
            &query(&req, "cmd").unwrap_or_default(),
            query(&req, "args"),
        );
    }
    if let Some(name) = query(&req, "var") {
        return match spin_sdk::variables::get(&name) {
            Ok(v) => text(200, v),
            Err(e) => text(500, format!("{e:?}")),
        };
    }
    if let Some(url) = query(&req, "fetch") {
        let out: Result<Response, _> = spin_sdk::http::send(Request::get(url).build()).await;
        return match out {
            Ok(r) => text(200, format!("upstream {}", r.status())),
            Err(spin_sdk::http::SendError::Http(code)) => text(502, format!("{code:?}")),
            Err(e) => text(502, e.to_string()),
        };
    }
    let headers: Map<String, Value> = req
        .headers()
        .map(|(k, v)| (k.to_string(), json!(v.as_str().unwrap_or_default())))
        .collect();
    let body =
        json!({ "method": req.method().to_string(), "path": req.path(), "headers": headers });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

fn redis_execute(url: &str, command: &str, args: Option<String>) -> Response {
    use spin_sdk::redis::{Connection, RedisParameter, RedisResult};
    let conn = match Connection::open(url) {
        Ok(c) => c,
        Err(e) => return text(502, format!("{e:?}")),
    };
    let args: Vec<RedisParameter> = args
        .unwrap_or_default()
        .split('|')
        .filter(|a| !a.is_empty())
        .map(|a| match a.strip_prefix("int:") {
            Some(n) => RedisParameter::Int64(n.parse().expect("int argument")),
            None => RedisParameter::Binary(a.replace("%20", " ").into_bytes()),
        })
        .collect();
    match conn.execute(command, &args) {
        Ok(results) => {
            let shown: Vec<String> = results
                .iter()
                .map(|r| match r {
                    RedisResult::Nil => "nil".to_string(),
                    RedisResult::Status(s) => format!("status:{s}"),
                    RedisResult::Int64(n) => format!("int:{n}"),
                    RedisResult::Binary(b) => format!("bin:{}", String::from_utf8_lossy(b)),
                })
                .collect();
            text(200, json!(shown).to_string())
        }
        Err(e) => text(502, format!("{e:?}")),
    }
}

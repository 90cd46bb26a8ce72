//! Platform profiles: the host behaves like the platform the app is deployed to.
//!
//! `spin up` / SpinKube ([`Platform::Spin`], the default) provide every
//! interface the app imports and set no limits; the whole suite runs there.
//! [`Platform::FermyonCloud`] and [`Platform::Akamai`] provide less and limit
//! more (see `/work/shared/reference/platforms.md`), and the host enforces it:
//!
//! - **Imports.** A component importing an interface the platform does not
//!   provide fails to load, naming the component, the import and the platform,
//!   as the platform "fails to prepare the application … an unavailable Wasm
//!   import". Fermyon Cloud has `wasi:keyvalue/store` but neither `atomics`
//!   nor `batch`; Akamai Functions has `store` and `batch` but no `atomics`,
//!   and no SQLite at all (so the host links none there: a component that
//!   imports it is refused before it could open a database).
//! - **Key-value stores.** Fermyon Cloud gives an app one store, Akamai
//!   Functions only the label `default`; a manifest asking for more is refused.
//! - **No scheduler.** Neither runs a cron trigger: a manifest with
//!   `[[trigger.cron]]` is refused at load and [`crate::App::fire_cron`] errors.
//!   The sync must come from an HTTP request (CI's cron, `spin aka cron`).
//! - **No runtime config.** Neither reads a runtime config file; the host has
//!   none to offer anyway (stores come from the manifest and variables).
//! - **Request time** ([`Limits::request_time`]): a request still running at the
//!   limit is cut, its guest task aborted, and the caller gets a 500 saying the
//!   platform's time limit was exceeded (if the head was already sent, the body
//!   stream ends there). [inf] Neither platform documents its answer; 500 is
//!   assumed. Aborting stops the guest at its next await (outbound I/O, a
//!   stream): the engine has no epoch interruption, so a guest spinning on the
//!   CPU alone is not cut.
//! - **Request body size** ([`Limits::request_body_bytes`]): a larger body is
//!   answered 413 before the guest runs when `Content-Length` says so; a body
//!   without it is cut as it passes the limit and the request answered 413.
//! - **Outbound requests per hour** ([`Limits::outbound_requests_per_hour`]):
//!   the app's outbound HTTP requests (all components together) within the last
//!   hour (a rolling hour: stricter than a clock hour at its turn); one more is
//!   refused to the guest with `ErrorCode::ConnectionRefused` after its body is
//!   taken ([inf]: the platform's own answer is not documented).
//!
//! Tests shrink the limits with [`crate::HostConfig::limits`] (a 2 s request,
//! 3 requests an hour) to trip them quickly.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::HostError;

/// Where the app is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Platform {
    /// `spin up` (Spin 3.x/4.x) and SpinKube: everything the app imports, no limits.
    #[default]
    Spin,
    /// Fermyon Cloud: no `wasi:keyvalue` atomics or batch, no cron, limits.
    FermyonCloud,
    /// Akamai Functions: no `wasi:keyvalue` atomics, no SQLite, no cron, limits.
    Akamai,
}

/// What a platform allows one app (`None`: no limit).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// How long one request may run, response body included.
    pub request_time: Option<Duration>,
    /// The largest request body.
    pub request_body_bytes: Option<u64>,
    /// Outbound HTTP requests of the whole app within one hour.
    pub outbound_requests_per_hour: Option<u32>,
}

const ALL: [Platform; 3] = [Platform::Spin, Platform::FermyonCloud, Platform::Akamai];

impl Platform {
    /// `spin`, `fermyon-cloud` or `akamai` (what `--platform` takes).
    pub fn parse(s: &str) -> Result<Self, String> {
        ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            format!("unknown platform {s:?}: use one of spin, fermyon-cloud, akamai")
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Platform::Spin => "spin",
            Platform::FermyonCloud => "fermyon-cloud",
            Platform::Akamai => "akamai",
        }
    }

    /// The platform as its users know it, for messages.
    pub fn title(self) -> &'static str {
        match self {
            Platform::Spin => "Spin",
            Platform::FermyonCloud => "Fermyon Cloud",
            Platform::Akamai => "Akamai Functions",
        }
    }

    /// The platform's documented limits (platforms.md, issue 26). Fermyon
    /// Cloud's FAQ has also said 10 s per request; the 30 s is used.
    pub fn limits(self) -> Limits {
        match self {
            Platform::Spin => Limits::default(),
            Platform::FermyonCloud => Limits {
                request_time: Some(Duration::from_secs(30)),
                request_body_bytes: Some(10_000_000),
                outbound_requests_per_hour: Some(500),
            },
            Platform::Akamai => Limits {
                request_time: Some(Duration::from_secs(30)),
                request_body_bytes: Some(10 * 1024 * 1024),
                outbound_requests_per_hour: None,
            },
        }
    }

    /// Imports the platform does not provide, as name prefixes, with why.
    fn refused_imports(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Platform::Spin => &[],
            Platform::FermyonCloud => &[
                (
                    "wasi:keyvalue/atomics",
                    "Fermyon Cloud supports wasi:keyvalue/store only",
                ),
                (
                    "wasi:keyvalue/batch",
                    "Fermyon Cloud supports wasi:keyvalue/store only",
                ),
            ],
            Platform::Akamai => &[
                (
                    "wasi:keyvalue/atomics",
                    "Akamai Functions' global store provides no atomics",
                ),
                ("fermyon:spin/sqlite", "Akamai Functions provides no SQLite"),
                ("spin:sqlite/", "Akamai Functions provides no SQLite"),
            ],
        }
    }

    /// The imports of one component the platform does not provide, each with why.
    pub fn unavailable_imports(self, imports: &[String]) -> Vec<String> {
        imports
            .iter()
            .filter_map(|name| {
                self.refused_imports()
                    .iter()
                    .find(|(prefix, _)| name.starts_with(prefix))
                    .map(|(_, why)| format!("{name} ({why})"))
            })
            .collect()
    }

    /// Refuses the app if any component imports what the platform lacks, with
    /// the platform's words ("fails to prepare the application … an
    /// unavailable Wasm import"), every such component and import named.
    /// `components`: (component id, its imports).
    pub fn check_imports(self, components: &[(String, Vec<String>)]) -> Result<(), HostError> {
        let offenders: Vec<String> = components
            .iter()
            .filter_map(|(id, imports)| {
                let missing = self.unavailable_imports(imports);
                (!missing.is_empty())
                    .then(|| format!("component {id} imports {}", missing.join(", ")))
            })
            .collect();
        if offenders.is_empty() {
            return Ok(());
        }
        Err(HostError::Component(format!(
            "{} fails to prepare the application: an unavailable Wasm import: {}",
            self.title(),
            offenders.join("; ")
        )))
    }

    /// Refuses key-value stores the platform does not offer: Fermyon Cloud
    /// gives an app one store, Akamai Functions only the label `default`.
    /// `stores`: (component id, its `key_value_stores`).
    pub fn check_stores(self, stores: &[(String, Vec<String>)]) -> Result<(), HostError> {
        let labels: std::collections::BTreeSet<&str> = stores
            .iter()
            .flat_map(|(_, labels)| labels.iter().map(String::as_str))
            .collect();
        let refused = match self {
            Platform::Spin => None,
            Platform::FermyonCloud => (labels.len() > 1).then(|| {
                let all: Vec<&str> = labels.iter().copied().collect();
                format!(
                    "it gives an app one key-value store, the manifest uses {}",
                    all.join(", ")
                )
            }),
            Platform::Akamai => stores.iter().find_map(|(id, labels)| {
                labels.iter().find(|l| *l != "default").map(|l| {
                    format!("component {id} uses the store {l:?}, only \"default\" exists")
                })
            }),
        };
        match refused {
            None => Ok(()),
            Some(why) => Err(HostError::Manifest(format!("{}: {why}", self.title()))),
        }
    }

    /// Whether the platform runs `[[trigger.cron]]` (Spin's cron plugin).
    pub fn runs_cron(self) -> bool {
        self == Platform::Spin
    }

    /// Why a cron trigger cannot run here, and what to do instead.
    pub fn no_cron(self, component: &str) -> HostError {
        let instead = match self {
            Platform::Akamai => {
                "schedule an HTTP request instead (`spin aka cron create`) to the sync route"
            }
            _ => "trigger the sync with an HTTP request from an outside scheduler (CI's cron)",
        };
        HostError::Manifest(format!(
            "{} runs no cron trigger: component {component} cannot run on a schedule; {instead}",
            self.title()
        ))
    }
}

/// The app's outbound HTTP requests within the last hour, against a limit.
#[derive(Debug, Default)]
pub struct OutboundBudget {
    per_hour: Option<u32>,
    sent: Mutex<VecDeque<Instant>>,
}

const HOUR: Duration = Duration::from_secs(3600);

impl OutboundBudget {
    pub fn new(per_hour: Option<u32>) -> Self {
        Self {
            per_hour,
            sent: Mutex::default(),
        }
    }

    /// Counts one request if the rolling hour has room for it. A rolling hour
    /// (not a clock hour) is the stricter reading of "per hour": a burst at
    /// the turn of the hour cannot spend two hours' worth.
    pub fn try_spend(&self) -> bool {
        let Some(limit) = self.per_hour else {
            return true;
        };
        let now = Instant::now();
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        while sent.front().is_some_and(|t| now.duration_since(*t) >= HOUR) {
            sent.pop_front();
        }
        if sent.len() >= limit as usize {
            return false;
        }
        sent.push_back(now);
        true
    }

    /// Requests counted in the last hour.
    pub fn spent(&self) -> usize {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_three() {
        for p in ALL {
            assert_eq!(Platform::parse(p.name()), Ok(p));
        }
        let e = Platform::parse("aws").unwrap_err();
        assert!(e.contains("spin, fermyon-cloud, akamai"), "{e}");
        assert_eq!(Platform::default(), Platform::Spin);
    }

    #[test]
    fn only_spin_has_no_limits() {
        assert!(Platform::Spin.limits().request_time.is_none());
        let f = Platform::FermyonCloud.limits();
        assert_eq!(f.request_time, Some(Duration::from_secs(30)));
        assert_eq!(f.request_body_bytes, Some(10_000_000));
        assert_eq!(f.outbound_requests_per_hour, Some(500));
        let a = Platform::Akamai.limits();
        assert_eq!(a.request_body_bytes, Some(10_485_760));
        assert_eq!(a.outbound_requests_per_hour, None);
    }

    #[test]
    fn imports_are_refused_by_platform() {
        let atomics = vec!["wasi:keyvalue/atomics@0.2.0-draft2".to_string()];
        let batch = vec!["wasi:keyvalue/batch@0.2.0-draft2".to_string()];
        let store = vec!["wasi:keyvalue/store@0.2.0-draft2".to_string()];
        let sqlite = vec!["fermyon:spin/sqlite@2.0.0".to_string()];
        let refuses = |p: Platform, imports: &Vec<String>| {
            p.check_imports(&[("c".to_string(), imports.clone())])
                .is_err()
        };
        assert!(!refuses(Platform::Spin, &atomics));
        assert!(!refuses(Platform::Spin, &sqlite));
        let e = Platform::FermyonCloud
            .check_imports(&[
                ("health".to_string(), store.clone()),
                ("jobs-submit".to_string(), atomics.clone()),
            ])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Fermyon Cloud fails to prepare the application"),
            "{e}"
        );
        assert!(e.contains("component jobs-submit imports"), "{e}");
        assert!(!e.contains("health"), "{e}");
        assert!(e.contains("wasi:keyvalue/atomics@0.2.0-draft2"), "{e}");
        assert!(refuses(Platform::FermyonCloud, &batch));
        assert!(!refuses(Platform::FermyonCloud, &store));
        assert!(!refuses(Platform::FermyonCloud, &sqlite));
        assert!(refuses(Platform::Akamai, &atomics));
        assert!(!refuses(Platform::Akamai, &batch));
        assert!(refuses(Platform::Akamai, &sqlite));
        let spin3 = vec!["spin:sqlite/sqlite@3.0.0".to_string()];
        assert!(refuses(Platform::Akamai, &spin3));
    }

    #[test]
    fn stores_are_refused_past_what_the_platform_offers() {
        let stores = |labels: &[(&str, &str)]| -> Vec<(String, Vec<String>)> {
            labels
                .iter()
                .map(|(id, l)| (id.to_string(), vec![l.to_string()]))
                .collect()
        };
        let one = stores(&[("a", "default"), ("b", "default")]);
        let two = stores(&[("a", "default"), ("b", "cache")]);
        for p in ALL {
            assert!(p.check_stores(&one).is_ok(), "{p:?}");
        }
        assert!(Platform::Spin.check_stores(&two).is_ok());
        let e = Platform::FermyonCloud
            .check_stores(&two)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("one key-value store") && e.contains("cache, default"),
            "{e}"
        );
        let solo = stores(&[("b", "cache")]);
        assert!(Platform::FermyonCloud.check_stores(&solo).is_ok());
        let e = Platform::Akamai
            .check_stores(&solo)
            .unwrap_err()
            .to_string();
        assert!(e.contains("component b uses the store \"cache\""), "{e}");
    }

    #[test]
    fn the_budget_refuses_past_its_limit_and_unlimited_never_does() {
        let b = OutboundBudget::new(Some(2));
        assert!(b.try_spend() && b.try_spend());
        assert!(!b.try_spend());
        assert_eq!(b.spent(), 2);
        let free = OutboundBudget::new(None);
        assert!((0..1000).all(|_| free.try_spend()));
    }
}

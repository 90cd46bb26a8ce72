//! HTTP routing exactly as Spin does it (Spin's `crates/http/src/routes.rs` uses
//! the same `routefinder` crate): exact routes beat wildcards, longer wildcard
//! prefixes beat shorter ones, `:name` captures one segment, `/...` is a trailing
//! wildcard; a later duplicate route replaces an earlier one. Also computes the
//! `spin-*` headers the way Spin's `trigger-http/src/headers.rs` does.

use std::collections::BTreeMap;

use crate::HostError;

#[derive(Debug, Clone)]
struct Handler {
    component: String,
    raw_route: String,
}

pub struct Router {
    inner: routefinder::Router<Handler>,
}

/// The result of routing one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub component: String,
    pub raw_route: String,
    pub path_info: String,
    pub captures: BTreeMap<String, String>,
}

impl Router {
    pub fn build<'a>(
        routes: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, HostError> {
        // Later duplicates replace earlier ones but keep their position (IndexMap
        // semantics in Spin); a Vec with in-place replacement does the same.
        let mut entries: Vec<(String, Handler)> = Vec::new();
        for (route, component) in routes {
            let raw = absolutize(route);
            let handler = Handler {
                component: component.to_string(),
                raw_route: route.to_string(),
            };
            match entries.iter_mut().find(|(r, _)| *r == raw) {
                Some(slot) => slot.1 = handler,
                None => entries.push((raw, handler)),
            }
        }
        let mut inner = routefinder::Router::new();
        for (raw, handler) in entries {
            let based = raw.strip_suffix('/').unwrap_or(&raw).to_string();
            let spec = match based.strip_suffix("/...") {
                Some(prefix) => format!("{prefix}/*"),
                None => based.clone(),
            };
            inner
                .add(spec.as_str(), handler)
                .map_err(|e| HostError::Manifest(format!("route {raw}: {e}")))?;
        }
        Ok(Self { inner })
    }

    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let m = self.inner.best_match(path)?;
        let handler = m.handler().clone();
        let captures = m.captures();
        let path_info = captures
            .wildcard()
            .map(|s| match (s.is_empty(), path.ends_with('/')) {
                (true, false) => String::new(),
                (true, true) => "/".to_string(),
                (false, false) => format!("/{s}"),
                (false, true) => format!("/{s}/"),
            })
            .unwrap_or_default();
        let named = captures
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Some(RouteMatch {
            component: handler.component,
            raw_route: handler.raw_route,
            path_info,
            captures: named,
        })
    }
}

fn absolutize(route: &str) -> String {
    if route.starts_with('/') {
        route.to_string()
    } else {
        format!("/{route}")
    }
}

impl RouteMatch {
    /// The headers Spin adds to every request it hands a component.
    pub fn spin_headers(
        &self,
        scheme: &str,
        host: &str,
        path_and_query: &str,
        client_addr: &str,
    ) -> Vec<(String, String)> {
        let based = absolutize(&self.raw_route);
        let based = if based.len() > 1 {
            based.strip_suffix('/').unwrap_or(&based).to_string()
        } else {
            based
        };
        let prefix = self
            .raw_route
            .strip_suffix("/...")
            .unwrap_or(&self.raw_route)
            .to_string();
        let mut h = vec![
            ("spin-path-info".into(), self.path_info.clone()),
            (
                "spin-full-url".into(),
                format!("{scheme}://{host}{path_and_query}"),
            ),
            ("spin-matched-route".into(), based),
            ("spin-base-path".into(), "/".into()),
            ("spin-raw-component-route".into(), self.raw_route.clone()),
            ("spin-component-route".into(), prefix),
            ("spin-client-addr".into(), client_addr.to_string()),
        ];
        for (name, value) in &self.captures {
            h.push((
                format!("spin-path-match-{}", name.to_ascii_lowercase()),
                value.clone(),
            ));
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router::build(routes.iter().copied()).unwrap()
    }

    #[test]
    fn exact_beats_wildcard_and_longest_prefix_wins() {
        let r = router(&[
            ("/...", "all"),
            ("/one", "one_exact"),
            ("/one/...", "one_wild"),
            ("/one/two/...", "two_wild"),
        ]);
        assert_eq!(r.route("/one").unwrap().component, "one_exact");
        assert_eq!(r.route("/one/x").unwrap().component, "one_wild");
        assert_eq!(r.route("/one/two/three").unwrap().component, "two_wild");
        assert_eq!(r.route("/elsewhere").unwrap().component, "all");
        assert_eq!(r.route("/").unwrap().component, "all");
    }

    #[test]
    fn path_info_keeps_trailing_slashes_like_spin() {
        let r = router(&[("/foo/...", "foo")]);
        assert_eq!(r.route("/foo").unwrap().path_info, "");
        assert_eq!(r.route("/foo/").unwrap().path_info, "/");
        assert_eq!(r.route("/foo/bar").unwrap().path_info, "/bar");
        assert_eq!(r.route("/foo/bar/").unwrap().path_info, "/bar/");
    }

    #[test]
    fn named_segments_capture_one_segment() {
        let r = router(&[("/jobs/:id/logs", "logs"), ("/jobs/:id", "job")]);
        let m = r.route("/jobs/abc/logs").unwrap();
        assert_eq!(m.component, "logs");
        assert_eq!(m.captures["id"], "abc");
        assert_eq!(r.route("/jobs/abc").unwrap().component, "job");
        assert!(r.route("/jobs/abc/def").is_none());
        assert!(r.route("/nothing").is_none());
    }

    #[test]
    fn later_duplicate_replaces_earlier() {
        let r = router(&[("/a", "first"), ("/a", "second")]);
        assert_eq!(r.route("/a").unwrap().component, "second");
    }

    #[test]
    fn spin_headers_match_spins_own_table() {
        // The cases of Spin's headers.rs tests.
        let r = router(&[("/foo/...", "c")]);
        let h = r.route("/foo/bar").unwrap().spin_headers(
            "https",
            "fermyon.dev",
            "/foo/bar?key1=value1&key2=value2",
            "127.0.0.1:8777",
        );
        let get = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("spin-full-url"),
            Some("https://fermyon.dev/foo/bar?key1=value1&key2=value2")
        );
        assert_eq!(get("spin-path-info"), Some("/bar"));
        assert_eq!(get("spin-matched-route"), Some("/foo/..."));
        assert_eq!(get("spin-base-path"), Some("/"));
        assert_eq!(get("spin-raw-component-route"), Some("/foo/..."));
        assert_eq!(get("spin-component-route"), Some("/foo"));
        assert_eq!(get("spin-client-addr"), Some("127.0.0.1:8777"));

        let r = router(&[("/foo/:userid/...", "c")]);
        let h = r.route("/foo/42/bar").unwrap().spin_headers(
            "https",
            "fermyon.dev",
            "/foo/42/bar",
            "127.0.0.1:8777",
        );
        let get = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("spin-path-match-userid"), Some("42"));
        assert_eq!(get("spin-component-route"), Some("/foo/:userid"));
        assert_eq!(get("spin-path-info"), Some("/bar"));
    }
}

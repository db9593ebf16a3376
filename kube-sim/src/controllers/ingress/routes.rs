//! The ingress controller's routing table: every Ingress rule of every namespace, indexed by
//! host, so routing a request looks only at the rules of its host. The controllers keep it
//! current (`IngressRoutes::update` on every Ingress change the store reports); the listener
//! asks them where a request goes.
//!
//! Matching follows the Ingress API and ingress-nginx: an exact host wins over a wildcard
//! (`*.example.com` matches one label, not `example.com` or `a.b.example.com`), which wins
//! over the rules without a host. Among that host's paths the longest match wins, Exact over
//! Prefix at equal length, then the oldest Ingress. `Prefix` matches whole path elements
//! (`/foo` matches `/foo` and `/foo/bar`, not `/foobar`); `ImplementationSpecific` is treated
//! as `Prefix`. A request no path matches goes to the default backend of the host's first
//! Ingress (or, for a host no rule names, of the first Ingress with a default backend and no
//! rules), and otherwise to none (the listener answers 404).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::json::str_at;

/// An Ingress, by namespace and name.
type IngressKey = (String, String);

/// Where a rule sends its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backend {
    /// A Service of the Ingress's namespace, and its port by name or number (as the
    /// services proxy takes an id: `name:port`).
    Service {
        ns: String,
        name: String,
        port: String,
    },
    /// A `resource` backend: stored, but no controller here can serve it.
    Resource,
}

impl Backend {
    /// Reads an IngressBackend of an Ingress in `ns`.
    fn of(ns: &str, backend: &Value) -> Backend {
        let Some(service) = backend.get("service").filter(|s| !s.is_null()) else {
            return Backend::Resource;
        };
        let port = match service.pointer("/port/number").and_then(Value::as_i64) {
            Some(number) => number.to_string(),
            None => str_at(service, "/port/name").to_string(),
        };
        Backend::Service {
            ns: ns.to_string(),
            name: str_at(service, "/name").to_string(),
            port,
        }
    }
}

/// One path of one rule.
#[derive(Debug, Clone)]
struct Route {
    /// The Ingress's position among all Ingresses (oldest first): ties go to the lower.
    order: (String, IngressKey),
    /// The rule's path as written.
    path: String,
    /// Its elements, for Prefix matching.
    elements: Vec<String>,
    exact: bool,
    backend: Backend,
}

impl Route {
    /// Whether the route matches a request path.
    fn matches(&self, path: &str) -> bool {
        if self.exact {
            return self.path == path;
        }
        let mut requested = path.split('/').filter(|e| !e.is_empty());
        self.elements
            .iter()
            .all(|element| requested.next() == Some(element.as_str()))
    }
}

/// What the index remembers of one Ingress, to remove it again.
#[derive(Debug, Clone)]
struct Entry {
    order: (String, IngressKey),
    /// The host keys its rules are filed under.
    hosts: Vec<String>,
    /// Its `spec.defaultBackend`, if any.
    default: Option<Backend>,
}

/// The routing table: rules by host key (an exact host, `*.suffix` for a wildcard, "" for
/// rules without a host).
#[derive(Debug, Default)]
pub(crate) struct IngressRoutes {
    hosts: HashMap<String, Vec<Route>>,
    ingresses: HashMap<IngressKey, Entry>,
    /// The default backends of the Ingresses without rules, oldest first: the first one
    /// serves the hosts no rule names.
    catch_all: BTreeMap<(String, IngressKey), Backend>,
}

/// The host of a `Host` header: lower case, without a port or a trailing dot.
pub(crate) fn host_of(header: &str) -> String {
    let header = header.trim();
    let host = if header.starts_with('[') {
        // An IPv6 literal keeps its brackets; only a port after them goes.
        header.split_inclusive(']').next().unwrap_or(header)
    } else {
        match header.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => header,
        }
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl IngressRoutes {
    /// Files an Ingress's rules again after it changed (`None`: it was deleted).
    pub(crate) fn update(&mut self, key: IngressKey, ingress: Option<&Value>) {
        self.remove(&key);
        if let Some(ingress) = ingress {
            self.insert(key, ingress);
        }
    }

    /// Drops every route, and the default backend, an Ingress had filed.
    fn remove(&mut self, key: &IngressKey) {
        let Some(entry) = self.ingresses.remove(key) else {
            return;
        };
        self.catch_all.remove(&entry.order);
        for host in entry.hosts {
            if let Some(routes) = self.hosts.get_mut(&host) {
                routes.retain(|r| r.order.1 != *key);
                if routes.is_empty() {
                    self.hosts.remove(&host);
                }
            }
        }
    }

    /// Files an Ingress's paths under their hosts, and its default backend.
    fn insert(&mut self, key: IngressKey, ingress: &Value) {
        let ns = key.0.clone();
        let order = (
            str_at(ingress, "/metadata/creationTimestamp").to_string(),
            key.clone(),
        );
        let rules = ingress.pointer("/spec/rules").and_then(Value::as_array);
        let mut hosts: Vec<String> = Vec::new();
        for rule in rules.into_iter().flatten() {
            let host = str_at(rule, "/host").to_ascii_lowercase();
            let paths = rule.pointer("/http/paths").and_then(Value::as_array);
            let routes = self.hosts.entry(host.clone()).or_default();
            for path in paths.into_iter().flatten() {
                let written = match str_at(path, "/path") {
                    "" => "/",
                    p => p,
                };
                routes.push(Route {
                    order: order.clone(),
                    path: written.to_string(),
                    elements: written
                        .split('/')
                        .filter(|e| !e.is_empty())
                        .map(String::from)
                        .collect(),
                    exact: str_at(path, "/pathType") == "Exact",
                    backend: path
                        .get("backend")
                        .map_or(Backend::Resource, |b| Backend::of(&ns, b)),
                });
            }
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        let default = ingress
            .pointer("/spec/defaultBackend")
            .filter(|b| !b.is_null())
            .map(|b| Backend::of(&ns, b));
        if let Some(default) = default.as_ref().filter(|_| hosts.is_empty()) {
            self.catch_all.insert(order.clone(), default.clone());
        }
        self.ingresses.insert(
            key,
            Entry {
                order,
                hosts,
                default,
            },
        );
    }

    /// The backend for a request to `host` (as `host_of` gives it) and `path`, if any.
    pub(crate) fn route(&self, host: &str, path: &str) -> Option<Backend> {
        let wildcard = host
            .split_once('.')
            .filter(|(_, rest)| !rest.is_empty())
            .map(|(_, rest)| format!("*.{rest}"));
        let server = [Some(host.to_string()), wildcard]
            .into_iter()
            .flatten()
            .find(|h| !h.is_empty() && self.hosts.contains_key(h))
            .unwrap_or_default();
        let routes = self.hosts.get(&server).map(Vec::as_slice).unwrap_or(&[]);
        let best = routes.iter().filter(|r| r.matches(path)).min_by(|a, b| {
            // Longest first, Exact before Prefix, then the oldest Ingress.
            (b.path.len(), b.exact)
                .cmp(&(a.path.len(), a.exact))
                .then_with(|| a.order.cmp(&b.order))
        });
        if let Some(route) = best {
            return Some(route.backend.clone());
        }
        if server.is_empty() {
            // The catch-all server: the first Ingress that has a default backend and no rules.
            return self.catch_all.values().next().cloned();
        }
        // The host's root: the default backend of the first Ingress with a rule for it.
        routes
            .iter()
            .map(|r| &r.order)
            .min()
            .and_then(|order| self.ingresses.get(&order.1))
            .and_then(|e| e.default.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(name: &str, port: &str) -> Option<Backend> {
        Some(Backend::Service {
            ns: "shop".into(),
            name: name.into(),
            port: port.into(),
        })
    }

    fn path(path: &str, kind: &str, svc: &str) -> Value {
        json!({ "path": path, "pathType": kind, "backend": { "service": { "name": svc, "port": { "number": 80 } } } })
    }

    fn table() -> IngressRoutes {
        let mut routes = IngressRoutes::default();
        let ingresses = [
            (
                "a",
                "2025-01-01T00:00:00Z",
                json!({ "rules": [
                { "host": "myapp.localhost", "http": { "paths": [
                    path("/", "Prefix", "root"),
                    path("/api", "Prefix", "api"),
                    path("/api", "Exact", "api-exact"),
                    path("/api/v2/", "Prefix", "v2"),
                    path("/docs", "ImplementationSpecific", "docs"),
                ] } },
                { "host": "*.apps.localhost", "http": { "paths": [path("/", "Prefix", "wild")] } },
            ] }),
            ),
            (
                "b",
                "2025-01-02T00:00:00Z",
                json!({ "rules": [
                { "host": "myapp.localhost", "http": { "paths": [path("/api", "Prefix", "later")] } },
                { "host": "exact.apps.localhost", "http": { "paths": [path("/only", "Exact", "exact-host")] } },
            ], "defaultBackend": { "service": { "name": "b-default", "port": { "name": "http" } } } }),
            ),
            (
                "c",
                "2025-01-03T00:00:00Z",
                json!({ "rules": [
                { "http": { "paths": [path("/any", "Prefix", "hostless")] } },
            ] }),
            ),
        ];
        for (name, created, spec) in ingresses {
            let ingress = json!({ "metadata": { "name": name, "namespace": "shop", "creationTimestamp": created }, "spec": spec });
            routes.update(("shop".into(), name.into()), Some(&ingress));
        }
        routes
    }

    #[test]
    fn requests_go_where_kubernetes_says() {
        let routes = table();
        // (description, host, path, expected backend)
        let cases = [
            (
                "the root prefix",
                "myapp.localhost",
                "/",
                service("root", "80"),
            ),
            (
                "anything under the root",
                "myapp.localhost",
                "/x/y",
                service("root", "80"),
            ),
            (
                "exact beats prefix of the same length",
                "myapp.localhost",
                "/api",
                service("api-exact", "80"),
            ),
            (
                "a prefix matches whole elements",
                "myapp.localhost",
                "/api/users",
                service("api", "80"),
            ),
            (
                "not part of an element",
                "myapp.localhost",
                "/apix",
                service("root", "80"),
            ),
            (
                "a trailing slash in the rule is ignored",
                "myapp.localhost",
                "/api/v2",
                service("v2", "80"),
            ),
            (
                "the longest prefix wins",
                "myapp.localhost",
                "/api/v2/items",
                service("v2", "80"),
            ),
            (
                "ImplementationSpecific is a prefix",
                "myapp.localhost",
                "/docs/intro",
                service("docs", "80"),
            ),
            (
                "a wildcard matches one label",
                "shop.apps.localhost",
                "/",
                service("wild", "80"),
            ),
            ("not two labels", "a.shop.apps.localhost", "/", None),
            (
                "not the bare domain",
                "apps.localhost",
                "/any",
                service("hostless", "80"),
            ),
            (
                "an exact host beats the wildcard",
                "exact.apps.localhost",
                "/only",
                service("exact-host", "80"),
            ),
            (
                "then its Ingress's default backend",
                "exact.apps.localhost",
                "/other",
                service("b-default", "http"),
            ),
            (
                "an unknown host gets the hostless rules",
                "nope.localhost",
                "/any/thing",
                service("hostless", "80"),
            ),
            ("and nothing else", "nope.localhost", "/", None),
        ];
        for (what, host, path, want) in cases {
            assert_eq!(routes.route(host, path), want, "{what}");
        }
    }

    #[test]
    fn changes_and_deletes_refile_the_rules() {
        let mut routes = table();
        routes.update(("shop".into(), "a".into()), None);
        // The later Ingress's /api now serves, and its default backend is the host's root.
        assert_eq!(
            routes.route("myapp.localhost", "/api"),
            service("later", "80")
        );
        assert_eq!(
            routes.route("myapp.localhost", "/"),
            service("b-default", "http")
        );
        assert_eq!(routes.route("shop.apps.localhost", "/"), None);
        let moved = json!({ "metadata": { "name": "b", "namespace": "shop" }, "spec": { "rules": [
            { "host": "other.localhost", "http": { "paths": [path("/", "Prefix", "moved")] } },
        ] } });
        routes.update(("shop".into(), "b".into()), Some(&moved));
        assert_eq!(routes.route("myapp.localhost", "/api"), None);
        assert_eq!(
            routes.route("other.localhost", "/x"),
            service("moved", "80")
        );
        assert!(
            !routes.hosts.contains_key("myapp.localhost"),
            "empty hosts are dropped"
        );

        // An Ingress with only a default backend catches the hosts no rule names.
        let catch_all = json!({ "metadata": { "name": "d", "namespace": "shop" }, "spec": {
            "defaultBackend": { "service": { "name": "fallback", "port": { "number": 80 } } },
        } });
        routes.update(("shop".into(), "d".into()), Some(&catch_all));
        assert_eq!(
            routes.route("nope.localhost", "/"),
            service("fallback", "80")
        );
        assert_eq!(
            routes.route("other.localhost", "/x"),
            service("moved", "80")
        );
        routes.update(("shop".into(), "d".into()), None);
        assert_eq!(routes.route("nope.localhost", "/"), None);
    }

    #[test]
    fn hosts_lose_ports_and_case() {
        assert_eq!(host_of("MyApp.LocalHost:8080"), "myapp.localhost");
        assert_eq!(host_of("myapp.localhost."), "myapp.localhost");
        assert_eq!(host_of("[::1]:80"), "[::1]");
        assert_eq!(host_of(""), "");
    }
}

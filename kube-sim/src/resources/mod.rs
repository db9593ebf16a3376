//! The resource types the simulator serves, and the discovery documents that describe them.

mod stored_kinds;

use serde_json::{json, Value};

/// One served resource type: what discovery announces and what the router resolves.
#[derive(Debug)]
pub(crate) struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Whether `status` is a subresource (main-resource writes keep the server's status).
    pub status_subresource: bool,
}

impl ResourceDef {
    /// `v1` or `apps/v1`, as in an object's `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps` or `pods`, as Kubernetes names a resource in error messages.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps` or `Pod`, as Kubernetes names a kind in validation messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

/// Core group `v1` pods.
pub(crate) static PODS: ResourceDef = ResourceDef {
    group: "",
    version: "v1",
    plural: "pods",
    singular: "pod",
    kind: "Pod",
    namespaced: true,
    short_names: &["po"],
    status_subresource: true,
};

/// Core group `v1` services.
pub(crate) static SERVICES: ResourceDef = ResourceDef {
    group: "",
    version: "v1",
    plural: "services",
    singular: "service",
    kind: "Service",
    namespaced: true,
    short_names: &["svc"],
    status_subresource: true,
};

/// Core group `v1` events.
pub(crate) static EVENTS: ResourceDef = ResourceDef {
    group: "",
    version: "v1",
    plural: "events",
    singular: "event",
    kind: "Event",
    namespaced: true,
    short_names: &["ev"],
    status_subresource: false,
};

/// Core group `v1` namespaces (cluster-scoped).
pub(crate) static NAMESPACES: ResourceDef = ResourceDef {
    group: "",
    version: "v1",
    plural: "namespaces",
    singular: "namespace",
    kind: "Namespace",
    namespaced: false,
    short_names: &["ns"],
    status_subresource: true,
};

/// `apps/v1` deployments.
pub(crate) static DEPLOYMENTS: ResourceDef = ResourceDef {
    group: "apps",
    version: "v1",
    plural: "deployments",
    singular: "deployment",
    kind: "Deployment",
    namespaced: true,
    short_names: &["deploy"],
    status_subresource: true,
};

/// `monitoring.coreos.com/v1` service monitors (the Prometheus operator CRD).
pub(crate) static SERVICEMONITORS: ResourceDef = ResourceDef {
    group: "monitoring.coreos.com",
    version: "v1",
    plural: "servicemonitors",
    singular: "servicemonitor",
    kind: "ServiceMonitor",
    namespaced: true,
    short_names: &["smon"],
    status_subresource: false,
};

/// Core group `v1` secrets (no status; values are base64 `data`, see [`crate::store::secrets`]).
pub(crate) static SECRETS: ResourceDef = ResourceDef {
    group: "",
    version: "v1",
    plural: "secrets",
    singular: "secret",
    kind: "Secret",
    namespaced: true,
    short_names: &[],
    status_subresource: false,
};

/// `networking.k8s.io/v1` ingresses (validated by the store, served by
/// [`crate::ingress_listener`]).
pub(crate) static INGRESSES: ResourceDef = ResourceDef {
    group: "networking.k8s.io",
    version: "v1",
    plural: "ingresses",
    singular: "ingress",
    kind: "Ingress",
    namespaced: true,
    short_names: &["ing"],
    status_subresource: true,
};

/// Every served resource type (the last four only stored: [`stored_kinds`]).
pub(crate) static ALL: [&ResourceDef; 12] = [
    &PODS,
    &SERVICES,
    &EVENTS,
    &NAMESPACES,
    &SECRETS,
    &DEPLOYMENTS,
    &INGRESSES,
    &SERVICEMONITORS,
    &stored_kinds::SERVICEACCOUNTS,
    &stored_kinds::ROLES,
    &stored_kinds::ROLEBINDINGS,
    &stored_kinds::PODDISRUPTIONBUDGETS,
];

/// The API group metrics-server registers (served by `http::metrics` when enabled).
pub(crate) const METRICS_GROUP: &str = "metrics.k8s.io";
/// Its one version.
pub(crate) const METRICS_VERSION: &str = "v1beta1";

/// The served API groups other than core, with their one version each.
const GROUPS: [(&str, &str); 5] = [
    ("apps", "v1"),
    ("networking.k8s.io", "v1"),
    ("monitoring.coreos.com", "v1"),
    (stored_kinds::RBAC_GROUP, "v1"),
    (stored_kinds::POLICY_GROUP, "v1"),
];

/// Finds a resource type by group, version and plural name.
pub(crate) fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    ALL.iter()
        .copied()
        .find(|d| d.group == group && d.version == version && d.plural == plural)
}

/// Finds a resource type by plural name alone (plurals are unique here).
pub(crate) fn by_plural(plural: &str) -> Option<&'static ResourceDef> {
    ALL.iter().copied().find(|d| d.plural == plural)
}

/// Whether a group/version pair is served.
pub(crate) fn serves_group_version(group: &str, version: &str) -> bool {
    if group.is_empty() {
        version == "v1"
    } else {
        GROUPS.iter().any(|(g, v)| *g == group && *v == version)
    }
}

/// Whether a group is served (any version).
pub(crate) fn serves_group(group: &str) -> bool {
    GROUPS.iter().any(|(g, _)| *g == group)
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `GET /version`.
pub(crate) fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-kube-sim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn server_addresses(host: &str) -> Value {
    json!([{ "clientCIDR": "0.0.0.0/0", "serverAddress": host }])
}

/// `GET /api`.
pub(crate) fn core_versions(host: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": server_addresses(host),
    })
}

fn group_doc(group: &str, version: &str, host: &str) -> Value {
    let gv = json!({ "groupVersion": format!("{group}/{version}"), "version": version });
    json!({
        "name": group,
        "versions": [gv.clone()],
        "preferredVersion": gv,
        "serverAddressByClientCIDRs": server_addresses(host),
    })
}

/// The served groups: the stored ones, and metrics.k8s.io when `metrics` is on.
fn served_groups(metrics: bool) -> impl Iterator<Item = (&'static str, &'static str)> {
    let metrics_group = metrics.then_some((METRICS_GROUP, METRICS_VERSION));
    GROUPS.iter().copied().chain(metrics_group)
}

/// `GET /apis`.
pub(crate) fn group_list(host: &str, metrics: bool) -> Value {
    let groups: Vec<Value> = served_groups(metrics)
        .map(|(g, v)| group_doc(g, v, host))
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `GET /apis/{group}`.
pub(crate) fn group(group: &str, host: &str, metrics: bool) -> Option<Value> {
    served_groups(metrics)
        .find(|(g, _)| *g == group)
        .map(|(g, v)| {
            let mut doc = group_doc(g, v, host);
            if let Some(map) = doc.as_object_mut() {
                map.insert("kind".into(), json!("APIGroup"));
                map.insert("apiVersion".into(), json!("v1"));
            }
            doc
        })
}

/// `GET /api/v1` or `GET /apis/{group}/{version}`.
pub(crate) fn resource_list(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for def in ALL
        .iter()
        .filter(|d| d.group == group && d.version == version)
    {
        resources.push(json!({
            "name": def.plural,
            "singularName": def.singular,
            "namespaced": def.namespaced,
            "kind": def.kind,
            "verbs": VERBS,
            "shortNames": def.short_names,
            "categories": if matches!(def.plural, "pods" | "services" | "deployments") { vec!["all"] } else { vec![] },
        }));
        if def.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", def.plural),
                "singularName": "",
                "namespaced": def.namespaced,
                "kind": def.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if def.plural == "deployments" {
            resources.push(json!({
                "name": "deployments/scale",
                "singularName": "",
                "namespaced": true,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        if def.plural == "pods" {
            resources.push(json!({
                "name": "pods/log",
                "singularName": "",
                "namespaced": true,
                "kind": "Pod",
                "verbs": ["get"],
            }));
        }
        if matches!(def.plural, "pods" | "services") {
            resources.push(json!({
                "name": format!("{}/proxy", def.plural),
                "singularName": "",
                "namespaced": true,
                "kind": if def.plural == "pods" { "PodProxyOptions" } else { "ServiceProxyOptions" },
                "verbs": ["create", "delete", "get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

/// `GET /`: the served paths, as the real server lists them.
pub(crate) fn root_paths(metrics: bool) -> Value {
    let mut paths = vec![
        "/api".to_string(),
        "/api/v1".to_string(),
        "/apis".to_string(),
    ];
    for (g, v) in served_groups(metrics) {
        paths.push(format!("/apis/{g}"));
        paths.push(format!("/apis/{g}/{v}"));
    }
    paths.extend(["/healthz", "/livez", "/readyz", "/version"].map(String::from));
    json!({ "paths": paths })
}

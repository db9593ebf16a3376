//! The Kubernetes permissions shiplog needs, in one list: [`PERMISSIONS`].
//!
//! The Role in `deploy/base/role.yaml` grants exactly these, the README's table is rendered
//! from them ([`markdown_table`]), and a test runs the real adapter through every operation
//! against the simulator behind a recording proxy and checks that each request it made is
//! granted here ([`required`] says what a request needs, as kube-apiserver decides it).
//! So a new call the Role lacks fails that test, naming the call, before it fails in a cluster.
//!
//! Everything shiplog touches lives in its one namespace (`--namespace`), so a namespaced
//! Role (not a ClusterRole) bound to its ServiceAccount is enough.

use std::fmt;

/// A verb of Kubernetes' authorization layer (what RBAC rules grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    /// Read one object (GET with a name; HEAD too).
    Get,
    /// Read a collection (GET without a name).
    List,
    /// Follow a collection's changes (GET with `watch=true`).
    Watch,
    /// POST; also a server-side apply that creates its object.
    Create,
    /// PUT.
    Update,
    /// PATCH, server-side apply included.
    Patch,
    /// DELETE with a name.
    Delete,
    /// DELETE without a name.
    DeleteCollection,
}

impl Verb {
    /// Every verb, in the order the table and the Role list them.
    pub const ALL: [Verb; 8] = [
        Verb::Get,
        Verb::List,
        Verb::Watch,
        Verb::Create,
        Verb::Update,
        Verb::Patch,
        Verb::Delete,
        Verb::DeleteCollection,
    ];

    /// The verb as RBAC rules spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }

    /// The verb an RBAC rule names, if it is one of these (`*` and custom verbs are not).
    pub fn parse(raw: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.as_str() == raw)
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Verbs on one resource (or `resource/subresource`) of one API group, in shiplog's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// The API group; `""` is the core group.
    pub group: &'static str,
    /// The resource's plural name, with `/subresource` for a subresource (`pods/log`).
    pub resource: &'static str,
    /// What shiplog does with it, in [`Verb::ALL`] order.
    pub verbs: &'static [Verb],
    /// Which of shiplog's operations make these calls, for the README.
    pub why: &'static str,
}

use Verb::{Create, Delete, Get, List, Patch, Update, Watch};

/// Every permission shiplog needs in its namespace, and nothing more.
pub const PERMISSIONS: &[Permission] = &[
    Permission {
        group: "apps",
        resource: "deployments",
        verbs: &[List, Watch, Create, Patch, Delete],
        why: "server-side apply of each deployment; rollouts watched; found by label; removed on undeploy",
    },
    Permission {
        group: "",
        resource: "pods",
        verbs: &[List, Watch],
        why: "rollouts watched for image and crash failures; whose logs to read",
    },
    Permission {
        group: "",
        resource: "pods/log",
        verbs: &[Get],
        why: "container logs, read and followed",
    },
    Permission {
        group: "",
        resource: "secrets",
        verbs: &[Get, List, Create, Patch, Delete],
        why: "each deployment's environment values (applied) and a usecase's generated values (created once, keys added)",
    },
    Permission {
        group: "",
        resource: "services",
        verbs: &[Create, Patch, Delete],
        why: "the usecase's stable Service, applied and removed",
    },
    Permission {
        group: "",
        resource: "services/proxy",
        verbs: &[Get, Create, Update, Patch, Delete],
        why: "the applications proxy: requests to an application go through the API server's service proxy (GET/HEAD, POST, PUT, PATCH, DELETE)",
    },
    Permission {
        group: "",
        resource: "events",
        verbs: &[List],
        why: "the Kubernetes events of a usecase's objects",
    },
    Permission {
        group: "networking.k8s.io",
        resource: "ingresses",
        verbs: &[List, Create, Patch, Delete],
        why: "the Ingresses of public deployments, applied and pruned",
    },
    Permission {
        group: "monitoring.coreos.com",
        resource: "servicemonitors",
        verbs: &[Create, Patch, Delete],
        why: "a deployment's ServiceMonitor when its config asks for one (Prometheus operator)",
    },
    Permission {
        group: "metrics.k8s.io",
        resource: "pods",
        verbs: &[List],
        why: "CPU and memory usage of a deployment's pods (metrics-server)",
    },
];

/// Whether [`PERMISSIONS`] grants `verb` on `resource` of `group`.
pub fn allows(group: &str, resource: &str, verb: Verb) -> bool {
    PERMISSIONS
        .iter()
        .any(|p| p.group == group && p.resource == resource && p.verbs.contains(&verb))
}

/// The README's table of [`PERMISSIONS`] (Markdown, one row per permission, ending in a newline).
pub fn markdown_table() -> String {
    let mut table =
        String::from("| API group | Resource | Verbs | What for |\n| --- | --- | --- | --- |\n");
    for p in PERMISSIONS {
        let group = if p.group.is_empty() {
            "`\"\"` (core)".to_owned()
        } else {
            format!("`{}`", p.group)
        };
        let verbs: Vec<&str> = p.verbs.iter().map(|v| v.as_str()).collect();
        table.push_str(&format!(
            "| {group} | `{}` | {} | {} |\n",
            p.resource,
            verbs.join(", "),
            p.why
        ));
    }
    table
}

/// What the authorization layer checks for one resource request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    /// The API group; `""` is the core group.
    pub group: String,
    /// The resource, with `/subresource` when there is one.
    pub resource: String,
    /// The verb checked.
    pub verb: Verb,
    /// The namespace of the request; `None` for a cluster-scoped one (a Role cannot grant it).
    pub namespace: Option<String>,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        match &self.namespace {
            Some(ns) => write!(
                f,
                "{} {} ({group}) in namespace {ns}",
                self.verb, self.resource
            ),
            None => write!(
                f,
                "{} {} ({group}), cluster-scoped",
                self.verb, self.resource
            ),
        }
    }
}

/// Why a request cannot be granted by any Role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotGrantable {
    /// A path outside `/api` and `/apis` resources (discovery, `/version`, ...): RBAC grants
    /// those through ClusterRoles' `nonResourceURLs` only.
    #[error("{0} is not a resource request (a Role cannot grant it)")]
    NonResource(String),
    /// A method that maps to no verb (OPTIONS, TRACE, ...): no rule short of `*` grants it.
    #[error("{method} {path} maps to no authorization verb (only a `*` rule would grant it)")]
    NoVerb {
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
    },
}

/// The content type of a server-side apply.
const APPLY_PATCH: &str = "application/apply-patch";

/// What kube-apiserver authorizes for a request (its `RequestInfo`): the group, resource
/// and subresource from the path, the verb from the method (`get` without a name is `list`,
/// or `watch` with `watch=true`; `delete` without a name is `deletecollection`). A
/// server-side apply (`PATCH` with `application/apply-patch+…`) is checked as `patch` and,
/// when it creates the object, as `create` too, so it needs both.
pub fn required(
    method: &str,
    path: &str,
    query: Option<&str>,
    content_type: Option<&str>,
) -> Result<Vec<Access>, NotGrantable> {
    let non_resource = || NotGrantable::NonResource(path.to_owned());
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // `/api/v1/…` or `/apis/{group}/{version}/…`, and at least a resource after that.
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
        _ => return Err(non_resource()),
    };
    let verb = match method.to_ascii_uppercase().as_str() {
        "GET" | "HEAD" => Get,
        "POST" => Create,
        "PUT" => Update,
        "PATCH" => Patch,
        "DELETE" => Delete,
        _ => {
            return Err(NotGrantable::NoVerb {
                method: method.to_owned(),
                path: path.to_owned(),
            })
        }
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some((*ns).to_owned()), tail),
        _ => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, subresource, ..] => (*resource, Some(*name), Some(*subresource)),
        [] => return Err(non_resource()),
    };
    let param = |key: &str| {
        query
            .unwrap_or_default()
            .split('&')
            .find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == key))
            .map(|(_, v)| v)
    };
    let verb = match (verb, name) {
        (Get, None) if param("watch").is_some_and(|w| w != "false" && w != "0") => Watch,
        (Get, None) => List,
        (Delete, None) => Verb::DeleteCollection,
        (verb, _) => verb,
    };
    let access = |verb| Access {
        group: group.to_owned(),
        resource: match subresource {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_owned(),
        },
        verb,
        namespace: namespace.clone(),
    };
    let apply = verb == Patch && content_type.is_some_and(|c| c.starts_with(APPLY_PATCH));
    Ok(if apply {
        vec![access(Patch), access(Create)]
    } else {
        vec![access(verb)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(method: &str, path: &str, query: Option<&str>) -> (String, String, Verb) {
        let needed = required(method, path, query, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(needed.len(), 1, "{needed:?}");
        let a = &needed[0];
        (a.group.clone(), a.resource.clone(), a.verb)
    }

    /// A description, a request (method, path, query) and what it needs (group, resource, verb).
    type Case = (
        &'static str,
        (&'static str, String, Option<&'static str>),
        (&'static str, &'static str, Verb),
    );

    #[test]
    fn requests_map_to_verbs_as_the_api_server_maps_them() {
        let ns = "/api/v1/namespaces/shiplog";
        let cases: [Case; 9] = [
            (
                "a get by name",
                ("GET", format!("{ns}/secrets/s"), None),
                ("", "secrets", Get),
            ),
            (
                "a get without a name is a list",
                ("GET", format!("{ns}/pods"), Some("labelSelector=a%3Db")),
                ("", "pods", List),
            ),
            (
                "watch=true is a watch",
                (
                    "GET",
                    format!("{ns}/pods"),
                    Some("labelSelector=a&watch=true&timeoutSeconds=290"),
                ),
                ("", "pods", Watch),
            ),
            (
                "watch=false is a list",
                ("GET", format!("{ns}/pods"), Some("watch=false")),
                ("", "pods", List),
            ),
            (
                "a subresource",
                (
                    "GET",
                    format!("{ns}/pods/p/log"),
                    Some("container=app&follow=true"),
                ),
                ("", "pods/log", Get),
            ),
            (
                "the service proxy, path and all",
                (
                    "POST",
                    format!("{ns}/services/sl-1:http/proxy/api/items"),
                    None,
                ),
                ("", "services/proxy", Create),
            ),
            (
                "a delete without a name",
                ("DELETE", format!("{ns}/secrets"), None),
                ("", "secrets", Verb::DeleteCollection),
            ),
            (
                "a group",
                (
                    "PATCH",
                    "/apis/apps/v1/namespaces/shiplog/deployments/d".to_owned(),
                    None,
                ),
                ("apps", "deployments", Patch),
            ),
            (
                "metrics",
                (
                    "GET",
                    "/apis/metrics.k8s.io/v1beta1/namespaces/shiplog/pods".to_owned(),
                    None,
                ),
                ("metrics.k8s.io", "pods", List),
            ),
        ];
        for (description, (method, path, query), (group, resource, verb)) in cases {
            assert_eq!(
                one(method, &path, query),
                (group.to_owned(), resource.to_owned(), verb),
                "{description}"
            );
        }
    }

    #[test]
    fn a_server_side_apply_needs_patch_and_create() {
        let needed = required(
            "PATCH",
            "/apis/apps/v1/namespaces/shiplog/deployments/d",
            Some("fieldManager=shiplog&force=true"),
            Some("application/apply-patch+yaml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let verbs: Vec<Verb> = needed.iter().map(|a| a.verb).collect();
        assert_eq!(verbs, [Patch, Create]);
        let merge = required(
            "PATCH",
            "/api/v1/namespaces/shiplog/secrets/s",
            None,
            Some("application/merge-patch+json"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(merge.len(), 1, "a merge patch creates nothing");
    }

    #[test]
    fn cluster_scoped_and_non_resource_requests_are_told_apart() {
        let namespaces = required("GET", "/api/v1/namespaces", None, None).unwrap_or_default();
        assert_eq!(namespaces[0].namespace, None);
        assert_eq!(namespaces[0].resource, "namespaces");
        let one_namespace =
            required("GET", "/api/v1/namespaces/shiplog", None, None).unwrap_or_default();
        assert_eq!(
            (
                one_namespace[0].resource.as_str(),
                one_namespace[0].namespace.as_deref()
            ),
            ("namespaces", None)
        );
        assert_eq!(
            required("GET", "/apis", None, None),
            Err(NotGrantable::NonResource("/apis".to_owned()))
        );
        assert!(matches!(
            required(
                "OPTIONS",
                "/api/v1/namespaces/shiplog/services/s:http/proxy/",
                None,
                None
            ),
            Err(NotGrantable::NoVerb { .. })
        ));
    }

    #[test]
    fn the_list_names_each_resource_once_with_known_verbs_in_order() {
        let mut seen = std::collections::BTreeSet::new();
        for p in PERMISSIONS {
            assert!(
                seen.insert((p.group, p.resource)),
                "{}/{} twice",
                p.group,
                p.resource
            );
            assert!(!p.verbs.is_empty());
            assert!(
                p.verbs.windows(2).all(|w| w[0] < w[1]),
                "{} verbs out of order",
                p.resource
            );
        }
        assert!(allows("", "pods/log", Get));
        assert!(!allows("", "pods/log", List));
        assert!(markdown_table()
            .contains("| `apps` | `deployments` | list, watch, create, patch, delete |"));
    }
}

//! Kinds the simulator stores as given, with no controller behind them: what an installation
//! of shiplog itself applies (`deploy/`) besides the kinds shiplog's adapter writes.
//!
//! They go through the generic path every stored kind takes: the `apiVersion` and `kind` of a
//! body must match the resource it is written to (400 otherwise), the name must be a DNS-1123
//! subdomain and labels and annotation keys valid (422 otherwise), and list, watch, get,
//! create, replace, merge patch, server-side apply and delete work as for any other kind.
//! Nothing acts on them: a Role grants nothing (the simulator has no RBAC), a ServiceAccount
//! gets no token, a PodDisruptionBudget guards no eviction (there are none) and gets no status.

use super::ResourceDef;

/// Core group `v1` service accounts.
pub(crate) static SERVICEACCOUNTS: ResourceDef = ResourceDef {
    group: "",
    version: "v1",
    plural: "serviceaccounts",
    singular: "serviceaccount",
    kind: "ServiceAccount",
    namespaced: true,
    short_names: &["sa"],
    status_subresource: false,
};

/// `rbac.authorization.k8s.io/v1` roles.
pub(crate) static ROLES: ResourceDef = ResourceDef {
    group: RBAC_GROUP,
    version: "v1",
    plural: "roles",
    singular: "role",
    kind: "Role",
    namespaced: true,
    short_names: &[],
    status_subresource: false,
};

/// `rbac.authorization.k8s.io/v1` role bindings.
pub(crate) static ROLEBINDINGS: ResourceDef = ResourceDef {
    group: RBAC_GROUP,
    version: "v1",
    plural: "rolebindings",
    singular: "rolebinding",
    kind: "RoleBinding",
    namespaced: true,
    short_names: &[],
    status_subresource: false,
};

/// `policy/v1` pod disruption budgets.
pub(crate) static PODDISRUPTIONBUDGETS: ResourceDef = ResourceDef {
    group: POLICY_GROUP,
    version: "v1",
    plural: "poddisruptionbudgets",
    singular: "poddisruptionbudget",
    kind: "PodDisruptionBudget",
    namespaced: true,
    short_names: &["pdb"],
    status_subresource: true,
};

/// The RBAC API group.
pub(crate) const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The API group of pod disruption budgets.
pub(crate) const POLICY_GROUP: &str = "policy";

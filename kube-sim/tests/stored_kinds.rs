//! The kinds stored without behaviour (ServiceAccount, Role, RoleBinding, PodDisruptionBudget),
//! through the real kube client, and the recording proxy in front of the simulator.

mod common;

use common::start;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_sim::RecordingProxy;
use serde_json::json;

const NS: &str = "platform";

/// The HTTP status of an API error.
fn code_of(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn roles_bindings_accounts_and_budgets_are_stored_as_applied() {
    let (sim, client) = start().await;
    let apply = PatchParams::apply("test").force();
    let roles: Api<Role> = Api::namespaced(client.clone(), NS);
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}]
    });
    roles
        .patch("reader", &apply, &Patch::Apply(&role))
        .await
        .unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), NS);
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "app"}]
    });
    bindings
        .patch("reader", &apply, &Patch::Apply(&binding))
        .await
        .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    let account =
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app"}});
    accounts
        .patch("app", &apply, &Patch::Apply(&account))
        .await
        .unwrap();
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), NS);
    let budget = json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "app"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "app"}}}
    });
    budgets
        .patch("app", &apply, &Patch::Apply(&budget))
        .await
        .unwrap();

    let stored = roles.get("reader").await.unwrap();
    assert_eq!(stored.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(
        stored.rules.unwrap_or_default()[0].resources,
        Some(vec!["pods".to_owned(), "pods/log".to_owned()])
    );
    let stored = bindings.get("reader").await.unwrap();
    assert_eq!(stored.role_ref.name, "reader");
    assert_eq!(stored.subjects.unwrap_or_default()[0].name, "app");
    assert_eq!(
        accounts
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let stored = budgets.get("app").await.unwrap();
    assert_eq!(
        stored.spec.and_then(|s| s.min_available),
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    // Visible to test assertions like every stored kind.
    assert_eq!(sim.objects("rolebindings", Some(NS)).len(), 1);
    assert_eq!(sim.objects("poddisruptionbudgets", Some(NS)).len(), 1);
}

#[tokio::test]
async fn a_body_of_another_kind_or_with_a_bad_name_is_refused() {
    let (_sim, client) = start().await;
    let roles: Api<Role> = Api::namespaced(client.clone(), NS);
    let as_binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "x"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"}
    });
    let apply = PatchParams::apply("test").force();
    let refused = roles
        .patch("x", &apply, &Patch::Apply(&as_binding))
        .await
        .unwrap_err();
    assert_eq!(code_of(refused), 400, "the kind must match the resource");
    let wrong_version = json!({"apiVersion": "rbac.authorization.k8s.io/v1beta1", "kind": "Role", "metadata": {"name": "x"}});
    let refused = roles
        .patch("x", &apply, &Patch::Apply(&wrong_version))
        .await
        .unwrap_err();
    assert_eq!(code_of(refused), 400, "so must the apiVersion");
    let bad: Role = serde_json::from_value(json!({"metadata": {"name": "Not_A_Name"}})).unwrap();
    let refused = roles
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err();
    assert_eq!(code_of(refused), 422, "names are DNS subdomains");
}

#[tokio::test]
async fn the_recording_proxy_forwards_everything_and_records_each_request() {
    let (sim, _direct) = start().await;
    let proxy = RecordingProxy::start(&sim.url()).await.unwrap();
    let client = {
        let config = kube::Config::new(proxy.url().parse().unwrap());
        kube::Client::try_from(config).unwrap()
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client, NS);
    let account =
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app"}});
    accounts
        .patch("app", &PatchParams::apply("test"), &Patch::Apply(&account))
        .await
        .unwrap();
    let listed = accounts
        .list(&ListParams::default().labels("a=b"))
        .await
        .unwrap();
    assert!(listed.items.is_empty(), "the label selector went through");
    assert_eq!(
        sim.objects("serviceaccounts", Some(NS)).len(),
        1,
        "the apply went through"
    );

    let seen = proxy.take();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].method, "PATCH");
    assert_eq!(
        seen[0].path,
        "/api/v1/namespaces/platform/serviceaccounts/app"
    );
    assert_eq!(seen[0].query_param("fieldManager"), Some("test"));
    assert!(
        seen[0]
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/apply-patch")),
        "{:?}",
        seen[0].content_type
    );
    assert_eq!(seen[1].method, "GET");
    assert!(!seen[1].is_watch());
    assert!(proxy.take().is_empty(), "take empties the record");
}

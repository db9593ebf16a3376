//! The API surface through the real kube 5 client: apply, list, get, patch, errors,
//! discovery, custom resources and kubeconfig.

mod common;

use common::{apply, deployment, rolled_out, start, within};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::Discovery;
use kube::runtime::wait::await_condition;
use kube::Client;
use serde_json::json;

fn api_error(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn apply_creates_then_updates_and_bumps_generation_only_on_spec_change() {
    let (_sim, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, "team-a");

    let created = apply(&api, &deployment("web", "registry.example.com/web:1.0", 1)).await;
    let meta = &created.metadata;
    assert_eq!(meta.generation, Some(1));
    assert_eq!(meta.namespace.as_deref(), Some("team-a"));
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    let rv1: u64 = meta.resource_version.as_deref().unwrap().parse().unwrap();

    // Once the controllers are done with it, the same manifest again changes nothing, not
    // even the resourceVersion.
    let settled = within(
        5,
        "rollout",
        await_condition(api.clone(), "web", |d: Option<&Deployment>| rolled_out(d)),
    )
    .await
    .unwrap()
    .unwrap();
    let again = apply(&api, &deployment("web", "registry.example.com/web:1.0", 1)).await;
    assert_eq!(
        again.metadata.resource_version,
        settled.metadata.resource_version
    );
    assert_eq!(again.metadata.uid, created.metadata.uid);

    // A metadata-only change: new resourceVersion, same generation.
    let mut relabelled = deployment("web", "registry.example.com/web:1.0", 1);
    relabelled
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("tier".into(), "front".into());
    let relabelled = apply(&api, &relabelled).await;
    let rv2: u64 = relabelled
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    assert_eq!(relabelled.metadata.generation, Some(1));
    assert_eq!(
        relabelled.metadata.labels.as_ref().unwrap()["tier"],
        "front"
    );

    // A spec change bumps the generation; the label the manager stopped applying is removed
    // (it owned it alone: see tests/apply.rs).
    let updated = apply(&api, &deployment("web", "registry.example.com/web:2.0", 1)).await;
    assert_eq!(updated.metadata.generation, Some(2));
    assert!(!updated
        .metadata
        .labels
        .as_ref()
        .unwrap()
        .contains_key("tier"));
    let image = updated.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("registry.example.com/web:2.0"));

    // Apply without a field manager is refused.
    let err = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Apply(&deployment("web", "x:1", 1)),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (400, "BadRequest".into()));
}

#[tokio::test]
async fn list_with_label_selectors_per_namespace_and_across_all_namespaces() {
    let (sim, client) = start().await;
    for (ns, name, tier) in [
        ("a", "web", "front"),
        ("a", "db", "back"),
        ("b", "web", "front"),
        ("b", "cache", "back"),
    ] {
        let api: Api<Service> = Api::namespaced(client.clone(), ns);
        let svc: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": name, "labels": { "app": name, "tier": tier, "ns": ns } },
            "spec": { "selector": { "app": name }, "ports": [{ "port": 80, "targetPort": 8080 }] }
        }))
        .unwrap();
        api.create(&PostParams::default(), &svc).await.unwrap();
    }
    let names = |list: kube::core::ObjectList<Service>| -> Vec<String> {
        list.items
            .into_iter()
            .map(|s| {
                format!(
                    "{}/{}",
                    s.metadata.namespace.unwrap(),
                    s.metadata.name.unwrap()
                )
            })
            .collect()
    };
    let a: Api<Service> = Api::namespaced(client.clone(), "a");
    let all: Api<Service> = Api::all(client.clone());

    assert_eq!(
        names(a.list(&ListParams::default()).await.unwrap()),
        ["a/db", "a/web"]
    );
    assert_eq!(
        names(
            a.list(&ListParams::default().labels("tier=front"))
                .await
                .unwrap()
        ),
        ["a/web"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("tier==front"))
                .await
                .unwrap()
        ),
        ["a/web", "b/web"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("tier!=front"))
                .await
                .unwrap()
        ),
        ["a/db", "b/cache"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("app in (db,cache)"))
                .await
                .unwrap()
        ),
        ["a/db", "b/cache"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("app notin (db,cache),ns=b"))
                .await
                .unwrap()
        ),
        ["b/web"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("tier,!missing"))
                .await
                .unwrap()
        )
        .len(),
        4
    );
    assert!(names(
        all.list(&ListParams::default().labels("missing"))
            .await
            .unwrap()
    )
    .is_empty());
    assert_eq!(
        names(
            all.list(&ListParams::default().fields("metadata.name=web"))
                .await
                .unwrap()
        ),
        ["a/web", "b/web"]
    );

    // Pagination with limit/continue, as kube's watcher and kubectl page through lists.
    let page1 = all.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(page1.items.len(), 3);
    let token = page1.metadata.continue_.clone().expect("a continue token");
    let page2 = all
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(page2), ["b/web"]);

    // Defaults real Kubernetes fills in.
    let web = a.get("web").await.unwrap();
    let spec = web.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert!(spec.cluster_ip.unwrap().starts_with("10.96."));

    // Namespaces seen are listed, and any namespace reads as Active.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let listed: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(
        listed.contains(&"a".to_string())
            && listed.contains(&"b".to_string())
            && listed.contains(&"default".to_string())
    );
    let unseen = namespaces.get("never-used").await.unwrap();
    assert_eq!(unseen.status.unwrap().phase.as_deref(), Some("Active"));

    assert_eq!(sim.objects("services", Some("b")).len(), 2);
    assert_eq!(sim.objects("services", None).len(), 4);
}

#[tokio::test]
async fn not_found_and_already_exists_come_back_as_api_errors() {
    let (_sim, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    assert_eq!(
        api_error(api.get("nope").await.unwrap_err()),
        (404, "NotFound".into())
    );
    assert!(api.get_opt("nope").await.unwrap().is_none());
    assert_eq!(
        api_error(
            api.delete("nope", &DeleteParams::default())
                .await
                .unwrap_err()
        ),
        (404, "NotFound".into())
    );

    let dep = deployment("web", "registry.example.com/web:1", 1);
    api.create(&PostParams::default(), &dep).await.unwrap();
    let err = api.create(&PostParams::default(), &dep).await.unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(
                (status.code, status.reason.as_str()),
                (409, "AlreadyExists")
            );
            assert_eq!(status.message, "deployments.apps \"web\" already exists");
        }
        other => panic!("unexpected {other:?}"),
    }

    // A replace with a stale resourceVersion is a 409 Conflict.
    let mut stale = api.get("web").await.unwrap();
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "x": "1" } } })),
    )
    .await
    .unwrap();
    stale
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("y".into(), "2".into());
    assert_eq!(
        api_error(
            api.replace("web", &PostParams::default(), &stale)
                .await
                .unwrap_err()
        ),
        (409, "Conflict".into())
    );

    // Unknown paths answer a 404 Status too.
    let widgets = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "nothing.example.com",
        "v1",
        "Widget",
    ));
    let unknown: Api<DynamicObject> = Api::all_with(client, &widgets);
    assert_eq!(
        api_error(unknown.list(&ListParams::default()).await.unwrap_err()),
        (404, "NotFound".into())
    );
}

#[tokio::test]
async fn merge_patch_replace_and_validation() {
    let (_sim, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    api.create(
        &PostParams::default(),
        &deployment("web", "registry.example.com/web:1", 2),
    )
    .await
    .unwrap();

    // RFC 7386: null removes, maps merge.
    let patched = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "labels": { "managed-by": null, "extra": "yes" } } }),
            ),
        )
        .await
        .unwrap();
    let labels = patched.metadata.labels.unwrap();
    assert!(!labels.contains_key("managed-by"));
    assert_eq!(labels["extra"], "yes");
    assert_eq!(labels["app"], "web");

    // Strategic merge patch is treated as a merge patch: kubectl's restart annotation works.
    let restarted = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(json!({ "spec": { "template": { "metadata": { "annotations": { "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z" } } } } })))
        .await
        .unwrap();
    assert_eq!(restarted.metadata.generation, Some(2));

    // Replace with the current resourceVersion works; the controllers write status
    // concurrently, so (as against a real cluster) a 409 means read again and retry.
    let replaced = loop {
        let mut current = api.get("web").await.unwrap();
        current.spec.as_mut().unwrap().replicas = Some(3);
        match api.replace("web", &PostParams::default(), &current).await {
            Ok(replaced) => break replaced,
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(other) => panic!("replace failed: {other:?}"),
        }
    };
    assert_eq!(replaced.spec.unwrap().replicas, Some(3));
    assert_eq!(replaced.metadata.generation, Some(3));

    // What the real API server rejects, this one rejects too (422 Invalid).
    let mut bad = deployment("Bad_Name", "x:1", 1);
    let invalid = |e: kube::Error| api_error(e) == (422, "Invalid".into());
    assert!(invalid(
        api.create(&PostParams::default(), &bad).await.unwrap_err()
    ));
    bad = deployment("mismatch", "x:1", 1);
    bad.spec.as_mut().unwrap().selector.match_labels =
        Some([("app".to_string(), "other".to_string())].into());
    assert!(invalid(
        api.create(&PostParams::default(), &bad).await.unwrap_err()
    ));
    let svc: Api<Service> = Api::namespaced(api.clone().into_client(), "default");
    let numeric: Service = serde_json::from_value(
        json!({ "metadata": { "name": "1abc" }, "spec": { "ports": [{ "port": 80 }] } }),
    )
    .unwrap();
    assert!(invalid(
        svc.create(&PostParams::default(), &numeric)
            .await
            .unwrap_err()
    ));
}

#[tokio::test]
async fn service_monitor_apply_and_get_via_dynamic_object() {
    let (sim, client) = start().await;
    let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor");
    let ar = ApiResource::from_gvk(&gvk);
    let api: Api<DynamicObject> = Api::namespaced_with(client, "team-a", &ar);
    let mut sm = DynamicObject::new("web", &ar).within("team-a");
    sm.metadata.labels = Some([("release".to_string(), "prometheus".to_string())].into());
    sm.data = json!({ "spec": { "selector": { "matchLabels": { "app": "web" } }, "endpoints": [{ "port": "http", "interval": "30s" }] } });

    let applied = api
        .patch(
            "web",
            &PatchParams::apply("shiplog").force(),
            &Patch::Apply(&sm),
        )
        .await
        .unwrap();
    assert_eq!(applied.metadata.generation, Some(1));
    let types = applied.types.clone().unwrap();
    assert_eq!(
        (types.api_version.as_str(), types.kind.as_str()),
        ("monitoring.coreos.com/v1", "ServiceMonitor")
    );

    let fetched = api.get("web").await.unwrap();
    assert_eq!(fetched.data["spec"]["endpoints"][0]["interval"], "30s");
    let listed = api
        .list(&ListParams::default().labels("release=prometheus"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        sim.objects("servicemonitors", Some("team-a"))[0]["kind"],
        "ServiceMonitor"
    );
}

#[tokio::test]
async fn discovery_finds_deployments_and_service_monitors() {
    let (_sim, client) = start().await;
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );
    assert_eq!(version.git_version, "v1.33.0-kube-sim");

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .expect("apps/v1 Deployment");
    assert_eq!(ar.plural, "deployments");
    assert!(caps.supports_operation(kube::discovery::verbs::WATCH));
    let (sm, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk(
            "monitoring.coreos.com",
            "v1",
            "ServiceMonitor",
        ))
        .expect("ServiceMonitor");
    assert_eq!(sm.plural, "servicemonitors");
    assert!(discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Pod"))
        .is_some());
    let core = client.list_core_api_resources("v1").await.unwrap();
    assert!(core.resources.iter().any(|r| r.name == "pods/log"));
}

#[tokio::test]
async fn kubeconfig_yaml_loads_and_gives_a_working_client() {
    let (sim, _) = start().await;
    let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = Client::try_from(config).unwrap();
    let api: Api<Deployment> = Api::default_namespaced(client);
    api.create(
        &PostParams::default(),
        &deployment("from-kubeconfig", "x:1", 1),
    )
    .await
    .unwrap();
    assert_eq!(sim.objects("deployments", Some("default")).len(), 1);

    let dir = std::env::temp_dir().join(format!("kube-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kubeconfig");
    sim.write_kubeconfig(&path).unwrap();
    let read = Kubeconfig::read_from(&path).unwrap();
    assert_eq!(read.current_context.as_deref(), Some("kube-sim"));
    std::fs::remove_dir_all(&dir).ok();
}

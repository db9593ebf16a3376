//! Rollouts through the real kube 5 client: a rolling update keeps enough pods Ready within
//! its surge, Recreate replaces all at once, a broken image leaves the old pods serving, and
//! the strategy is defaulted and validated as the API server does.
//!
//! Every pod and Deployment change is read back from watches and replayed in resourceVersion
//! order, so the checks hold at every state the cluster went through, not at sampled ones.

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;

use common::{apply, deployment, progressing_reason, rolled_out, start, within};
use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::wait::await_condition;
use kube::{Client, Resource};
use serde_json::{json, Value};

const NS: &str = "apps";

/// A Deployment `web` with `replicas` pods of `image` and the given strategy (None: default).
fn web(image: &str, replicas: i32, strategy: Option<DeploymentStrategy>) -> Deployment {
    let mut dep = deployment("web", image, replicas);
    if let Some(spec) = dep.spec.as_mut() {
        spec.strategy = strategy;
    }
    dep
}

fn rolling(max_surge: IntOrString, max_unavailable: IntOrString) -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(max_surge),
            max_unavailable: Some(max_unavailable),
        }),
    }
}

fn recreate() -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    }
}

fn rv_of<K: Resource>(object: &K) -> u64 {
    object
        .meta()
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or_else(|| panic!("{:?} has no numeric resourceVersion", object.meta().name))
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn image_of(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.as_deref())
        .unwrap_or("")
}

/// The changes of `api`'s objects labelled `app=web` since `rv`, in order, read until `last`
/// says the latest one was the last to wait for.
async fn changes_since<K>(
    api: &Api<K>,
    rv: &str,
    mut last: impl FnMut(&WatchEvent<K>) -> bool,
) -> Vec<WatchEvent<K>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let params = WatchParams::default().labels("app=web").timeout(30);
    let mut stream = Box::pin(
        api.watch(&params, rv)
            .await
            .unwrap_or_else(|e| panic!("watch from {rv}: {e}")),
    );
    let mut seen = Vec::new();
    loop {
        let event = within(10, "the next change", stream.try_next())
            .await
            .unwrap_or_else(|e| panic!("watch: {e}"))
            .unwrap_or_else(|| panic!("the watch ended after {} changes", seen.len()));
        if matches!(event, WatchEvent::Bookmark(_)) {
            continue;
        }
        if let WatchEvent::Error(e) = &event {
            panic!("watch error: {e:?}");
        }
        let done = last(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

/// One state of the cluster during a rollout: web's pods by name and its latest Deployment.
#[derive(Default, Clone)]
struct State {
    pods: BTreeMap<String, Pod>,
    deployment: Option<Deployment>,
    /// Whether the change that led here was the Deployment's (its status was just written).
    by_deployment: bool,
}

impl State {
    fn ready(&self) -> usize {
        self.pods.values().filter(|p| is_ready(p)).count()
    }

    fn of_image(&self, image: &str) -> usize {
        self.pods.values().filter(|p| image_of(p) == image).count()
    }
}

/// web's pods and the resourceVersion they were listed at.
async fn pods_now(pods: &Api<Pod>) -> (Vec<Pod>, String) {
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap_or_else(|e| panic!("listing pods: {e}"));
    let rv = list
        .metadata
        .resource_version
        .unwrap_or_else(|| panic!("a list has a resourceVersion"));
    (list.items, rv)
}

/// Every state web went through from `before` (its pods listed at `rv`) until its rollout to
/// `image` finished, in resourceVersion order.
async fn states_since(
    client: &Client,
    (before, rv): (Vec<Pod>, String),
    image: &str,
    replicas: usize,
) -> Vec<State> {
    let rv = rv.as_str();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let done = within(
        10,
        "the rollout",
        await_condition(deployments.clone(), "web", |d: Option<&Deployment>| {
            rolled_out(d)
                && d.and_then(|d| d.metadata.generation)
                    == d.and_then(|d| d.status.as_ref()?.observed_generation)
        }),
    )
    .await
    .unwrap_or_else(|e| panic!("waiting for the rollout: {e}"))
    .unwrap_or_else(|| panic!("web was deleted"));
    let final_rv = rv_of(&done);
    let deployment_changes = changes_since(
        &deployments,
        rv,
        |e| matches!(e, WatchEvent::Added(d) | WatchEvent::Modified(d) if rv_of(d) >= final_rv),
    )
    .await;
    // The pods are done once exactly `replicas` Ready pods of the new image are left.
    let mut live: BTreeMap<String, (bool, bool)> = before
        .iter()
        .map(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            (name, (is_ready(p), image_of(p) == image))
        })
        .collect();
    let pod_changes = changes_since(&pods, rv, |e| {
        match e {
            WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                let name = p.metadata.name.clone().unwrap_or_default();
                live.insert(name, (is_ready(p), image_of(p) == image));
            }
            WatchEvent::Deleted(p) => {
                live.remove(p.metadata.name.as_deref().unwrap_or_default());
            }
            _ => {}
        }
        live.len() == replicas && live.values().all(|&(ready, new)| ready && new)
    })
    .await;

    enum Change {
        Pod(String, Option<Box<Pod>>),
        Deployment(Box<Deployment>),
    }
    let mut ordered: Vec<(u64, Change)> = Vec::new();
    for event in pod_changes {
        match event {
            WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                let name = p.metadata.name.clone().unwrap_or_default();
                ordered.push((rv_of(&p), Change::Pod(name, Some(Box::new(p)))));
            }
            WatchEvent::Deleted(p) => {
                let name = p.metadata.name.clone().unwrap_or_default();
                ordered.push((rv_of(&p), Change::Pod(name, None)));
            }
            _ => {}
        }
    }
    for event in deployment_changes {
        if let WatchEvent::Added(d) | WatchEvent::Modified(d) = event {
            ordered.push((rv_of(&d), Change::Deployment(Box::new(d))));
        }
    }
    ordered.sort_by_key(|(rv, _)| *rv);

    let mut state = State::default();
    for p in before {
        state
            .pods
            .insert(p.metadata.name.clone().unwrap_or_default(), p);
    }
    let mut states = Vec::new();
    for (_, change) in ordered {
        state.by_deployment = matches!(change, Change::Deployment(_));
        match change {
            Change::Pod(name, Some(p)) => {
                state.pods.insert(name, *p);
            }
            Change::Pod(name, None) => {
                state.pods.remove(&name);
            }
            Change::Deployment(d) => state.deployment = Some(*d),
        }
        states.push(state.clone());
    }
    states
}

/// Checks that web never looks rolled out while old pods are left, and that wherever its
/// status was written for its current generation, the counts are those of the pods then.
fn check_status_throughout(states: &[State], new_image: &str, what: &str) {
    for (i, s) in states.iter().enumerate() {
        let Some(d) = &s.deployment else { continue };
        if rolled_out(Some(d)) {
            assert_eq!(
                s.of_image(new_image),
                s.pods.len(),
                "{what}: web looks rolled out at change {i} with old pods left"
            );
        }
        let Some(status) = &d.status else { continue };
        if !s.by_deployment || status.observed_generation != d.metadata.generation {
            continue;
        }
        let counts = (
            status.replicas.unwrap_or(0),
            status.updated_replicas.unwrap_or(0),
            status.ready_replicas.unwrap_or(0),
            status.available_replicas.unwrap_or(0),
        );
        let pods = i32::try_from(s.pods.len()).unwrap_or(i32::MAX);
        let updated = i32::try_from(s.of_image(new_image)).unwrap_or(i32::MAX);
        let ready = i32::try_from(s.ready()).unwrap_or(i32::MAX);
        let unavailable = status.unavailable_replicas.unwrap_or(0);
        assert_eq!(
            counts,
            (pods, updated, ready, ready),
            "{what}: status against the pods at change {i}"
        );
        assert_eq!(unavailable, (pods - ready).max(0), "{what}: change {i}");
    }
}

#[tokio::test]
async fn a_rolling_update_keeps_enough_pods_ready_within_its_surge() {
    // (description, replicas, strategy, least Ready pods, most pods)
    let cases = [
        (
            "2 replicas, the default 25%/25%: surge 1, none unavailable",
            2,
            None,
            2,
            3,
        ),
        (
            "4 replicas, maxSurge 50% and maxUnavailable 1",
            4,
            Some(rolling(
                IntOrString::String("50%".into()),
                IntOrString::Int(1),
            )),
            3,
            6,
        ),
    ];
    for (what, replicas, strategy, least_ready, most_pods) in cases {
        let (_sim, client) = start().await;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let old_image = "registry.example.com/web:1.0";
        let new_image = "registry.example.com/web:2.0";
        apply(&deployments, &web(old_image, replicas, strategy.clone())).await;
        within(
            5,
            "the first rollout",
            await_condition(deployments.clone(), "web", |d: Option<&Deployment>| {
                rolled_out(d)
            }),
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        let before = pods_now(&pods).await;

        apply(&deployments, &web(new_image, replicas, strategy)).await;
        let replicas = usize::try_from(replicas).unwrap_or(0);
        let states = states_since(&client, before, new_image, replicas).await;

        let fewest_ready = states.iter().map(State::ready).min().unwrap_or(0);
        let most = states.iter().map(|s| s.pods.len()).max().unwrap_or(0);
        assert_eq!(
            (fewest_ready, most),
            (least_ready, most_pods),
            "{what}: fewest Ready pods and most pods during the rollout"
        );
        assert!(
            states
                .iter()
                .any(|s| s.of_image(old_image) > 0 && s.of_image(new_image) > 0),
            "{what}: old and new pods never ran side by side"
        );
        check_status_throughout(&states, new_image, what);

        // The end: only new pods, the status complete.
        let done = deployments
            .get("web")
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = done.status.clone().unwrap_or_default();
        let r = i32::try_from(replicas).unwrap_or(0);
        assert_eq!(
            (
                status.observed_generation,
                status.replicas,
                status.updated_replicas,
                status.ready_replicas,
                status.available_replicas,
                status.unavailable_replicas,
            ),
            (Some(2), Some(r), Some(r), Some(r), Some(r), Some(0)),
            "{what}"
        );
        let conditions = status.conditions.unwrap_or_default();
        let reason = |kind: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == kind)
                .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
        };
        assert_eq!(
            reason("Available"),
            Some(("True".into(), "MinimumReplicasAvailable".into())),
            "{what}"
        );
        assert_eq!(
            reason("Progressing"),
            Some(("True".into(), "NewReplicaSetAvailable".into())),
            "{what}"
        );
        let left = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .items;
        assert_eq!(left.len(), replicas, "{what}");
        assert!(
            left.iter().all(|p| image_of(p) == new_image && is_ready(p)),
            "{what}: {left:?}"
        );

        // Events: the ReplicaSets scaled step by step, every old pod was killed.
        let events: Api<Event> = Api::namespaced(client.clone(), NS);
        let listed = events
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .items;
        let scaling: Vec<String> = listed
            .iter()
            .filter(|e| e.reason.as_deref() == Some("ScalingReplicaSet"))
            .filter_map(|e| e.message.clone())
            .collect();
        let new_hash = left[0]
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash"))
            .cloned()
            .unwrap_or_default();
        assert!(
            scaling
                .iter()
                .any(|m| m.starts_with(&format!("Scaled up replica set web-{new_hash} from 0 to "))),
            "{what}: {scaling:?}"
        );
        assert!(
            scaling
                .iter()
                .any(|m| m.starts_with("Scaled down replica set web-")
                    && !m.contains(&new_hash)
                    && m.ends_with(" to 0")),
            "{what}: {scaling:?}"
        );
        let killed = listed
            .iter()
            .filter(|e| e.reason.as_deref() == Some("Killing"))
            .count();
        assert_eq!(killed, replicas, "{what}: one Killing per old pod");
    }
}

#[tokio::test]
async fn recreate_replaces_every_pod_at_once() {
    let (_sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let old_image = "registry.example.com/web:1.0";
    let new_image = "registry.example.com/web:2.0";
    let created = apply(&deployments, &web(old_image, 2, Some(recreate()))).await;
    assert_eq!(
        created.spec.and_then(|s| s.strategy),
        Some(recreate()),
        "Recreate gets no rollingUpdate defaults"
    );
    within(
        5,
        "the first rollout",
        await_condition(deployments.clone(), "web", |d: Option<&Deployment>| {
            rolled_out(d)
        }),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let before = pods_now(&pods).await;

    apply(&deployments, &web(new_image, 2, Some(recreate()))).await;
    let states = states_since(&client, before, new_image, 2).await;
    for (i, s) in states.iter().enumerate() {
        assert!(
            s.of_image(old_image) == 0 || s.of_image(new_image) == 0,
            "old and new pods side by side at change {i}"
        );
    }
    assert_eq!(
        states.iter().map(State::ready).min(),
        Some(0),
        "Recreate has a moment without Ready pods"
    );
    check_status_throughout(&states, new_image, "Recreate");
}

#[tokio::test]
async fn a_broken_new_image_leaves_the_old_pods_serving_until_the_deadline() {
    let (sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    apply(&deployments, &web("registry.example.com/web:1.0", 2, None)).await;
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": "web" },
        "spec": { "selector": { "app": "web" }, "ports": [{ "name": "http", "port": 80 }] }
    }))
    .unwrap_or_else(|e| panic!("service manifest: {e}"));
    services
        .patch(
            "web",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&service),
        )
        .await
        .unwrap_or_else(|e| panic!("service: {e}"));
    within(
        5,
        "the first rollout",
        await_condition(deployments.clone(), "web", |d: Option<&Deployment>| {
            rolled_out(d)
        }),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let old: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();

    apply(
        &deployments,
        &web("registry.example.com/web:2.0-broken", 2, None),
    )
    .await;
    let failed = within(
        5,
        "ProgressDeadlineExceeded",
        await_condition(deployments.clone(), "web", |d: Option<&Deployment>| {
            progressing_reason(d).as_deref() == Some("ProgressDeadlineExceeded")
        }),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_else(|| panic!("web was deleted"));
    assert!(!rolled_out(Some(&failed)), "a failed rollout is not done");
    let status = failed.status.clone().unwrap_or_default();
    assert_eq!(
        (
            status.observed_generation,
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas,
            status.unavailable_replicas,
        ),
        (Some(2), Some(3), Some(1), Some(2), Some(2), Some(1)),
        "two old Ready pods and one surged broken pod"
    );
    let available = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Available")
        .map(|c| c.status);
    assert_eq!(available.as_deref(), Some("True"));

    let now = pods
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items;
    for name in &old {
        let pod = now
            .iter()
            .find(|p| p.metadata.name.as_ref() == Some(name))
            .unwrap_or_else(|| panic!("old pod {name} was removed"));
        assert!(is_ready(pod), "old pod {name} is not Ready");
    }
    // The Service still answers, from an old pod.
    let url = format!(
        "{}/api/v1/namespaces/{NS}/services/web:http/proxy/still-there",
        sim.url()
    );
    let answer = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.status(), 200);
    let echo: Value = answer.json().await.unwrap_or_else(|e| panic!("{e}"));
    let pod = echo["pod"].as_str().unwrap_or_default().to_string();
    assert!(old.contains(&pod), "{pod} is not an old pod");

    // A good image recovers: the broken pod goes first, then the old ones as new ones are Ready.
    let good = "registry.example.com/web:3.0";
    apply(&deployments, &web(good, 2, None)).await;
    within(
        5,
        "the recovery",
        await_condition(deployments.clone(), "web", |d: Option<&Deployment>| {
            rolled_out(d)
        }),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let left = pods
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items;
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|p| image_of(p) == good && is_ready(p)));
}

#[tokio::test]
async fn the_strategy_is_defaulted_and_validated_as_the_api_server_does() {
    let (_sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let created = apply(&deployments, &web("registry.example.com/web:1.0", 1, None)).await;
    assert_eq!(
        created.spec.and_then(|s| s.strategy),
        Some(rolling(
            IntOrString::String("25%".into()),
            IntOrString::String("25%".into())
        ))
    );

    // (description, strategy, words of the 422)
    let cases = [
        (
            "maxSurge and maxUnavailable both 0",
            rolling(IntOrString::Int(0), IntOrString::String("0%".into())),
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0",
        ),
        (
            "a percentage without its %",
            rolling(IntOrString::String("1".into()), IntOrString::Int(1)),
            "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"1\": a valid percent string",
        ),
        (
            "more than 100% unavailable",
            rolling(IntOrString::Int(1), IntOrString::String("101%".into())),
            "must not be greater than 100%",
        ),
        (
            "Recreate with rollingUpdate",
            DeploymentStrategy {
                type_: Some("Recreate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: None,
                }),
            },
            "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
        ),
    ];
    for (what, strategy, words) in cases {
        let mut dep = web("registry.example.com/web:1.0", 1, Some(strategy));
        dep.metadata.name = Some("refused".into());
        let err = deployments
            .patch(
                "refused",
                &PatchParams::apply("shiplog").force(),
                &Patch::Apply(&dep),
            )
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        match err {
            kube::Error::Api(status) => {
                assert_eq!(status.code, 422, "{what}: {status:?}");
                assert!(status.message.contains(words), "{what}: {}", status.message);
            }
            other => panic!("{what}: {other}"),
        }
    }
}

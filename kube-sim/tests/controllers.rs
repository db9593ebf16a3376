//! The simulated controllers through the real kube 5 client: rollouts, failures, watches,
//! events and logs.

mod common;

use std::time::{Duration, Instant};

use common::{apply, deployment, progressing_reason, rolled_out, start, start_with, within};
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, WatchEvent, WatchParams,
};
use kube::runtime::wait::{await_condition, Condition};
use kube::runtime::{watcher, WatchStreamExt};
use kube_sim::SimConfig;
use serde_json::json;

fn is_rolled_out() -> impl Condition<Deployment> {
    |d: Option<&Deployment>| rolled_out(d)
}

fn pod_names(pods: &[Pod]) -> Vec<String> {
    let mut names: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    names.sort();
    names
}

fn waiting_reason(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

#[tokio::test]
async fn deployment_becomes_ready_after_ready_delay_with_current_observed_generation() {
    let (_sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "apps");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "apps");
    let started = Instant::now();
    let created = apply(
        &deployments,
        &deployment("web", "registry.example.com/web:1.0", 2),
    )
    .await;
    // The apply answer carries no status yet: the controller has not seen it.
    assert!(created.status.is_none());

    let done = within(
        5,
        "rollout",
        await_condition(deployments.clone(), "web", is_rolled_out()),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "ready before ready_delay"
    );
    let status = done.status.unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        (
            status.ready_replicas,
            status.updated_replicas,
            status.unavailable_replicas
        ),
        (Some(2), Some(2), Some(0))
    );
    let conditions = status.conditions.unwrap();
    let available = conditions.iter().find(|c| c.type_ == "Available").unwrap();
    assert_eq!(
        (available.status.as_str(), available.reason.as_deref()),
        ("True", Some("MinimumReplicasAvailable"))
    );
    let progressing = conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_deref()),
        ("True", Some("NewReplicaSetAvailable"))
    );

    let listed = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 2);
    for pod in &listed {
        let name = pod.metadata.name.as_deref().unwrap();
        let hash = &pod.metadata.labels.as_ref().unwrap()["pod-template-hash"];
        assert_eq!(hash.len(), 10);
        assert!(
            name.starts_with(&format!("web-{hash}-")) && name.len() == "web-".len() + 10 + 1 + 5,
            "{name}"
        );
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Deployment", "web")
        );
        assert_eq!(owner.uid, done.metadata.uid.clone().unwrap());
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"));
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert!(
            cs.ready && cs.started == Some(true) && cs.state.as_ref().unwrap().running.is_some()
        );
    }
}

#[tokio::test]
async fn a_new_image_rolls_out_new_pods_and_removes_the_old_ones() {
    let (sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "apps");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "apps");
    apply(
        &deployments,
        &deployment("web", "registry.example.com/web:1.0", 2),
    )
    .await;
    within(
        5,
        "first rollout",
        await_condition(deployments.clone(), "web", is_rolled_out()),
    )
    .await
    .unwrap();
    let old = pod_names(&pods.list(&ListParams::default()).await.unwrap().items);

    let second = apply(
        &deployments,
        &deployment("web", "registry.example.com/web:2.0", 2),
    )
    .await;
    assert_eq!(second.metadata.generation, Some(2));
    // Right after the apply the status still describes generation 1: a rollout check must
    // compare observedGeneration, which is what `rolled_out` does.
    assert_eq!(second.status.as_ref().unwrap().observed_generation, Some(1));
    let done = within(
        5,
        "second rollout",
        await_condition(deployments.clone(), "web", is_rolled_out()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(done.status.unwrap().observed_generation, Some(2));
    assert_eq!(
        done.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );

    let now = pods.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(now.len(), 2);
    assert!(pod_names(&now).iter().all(|n| !old.contains(n)));
    for pod in &now {
        let image = pod.spec.as_ref().unwrap().containers[0].image.as_deref();
        assert_eq!(image, Some("registry.example.com/web:2.0"));
    }

    // A restart annotation on the template is a rollout too, and a scale change adjusts pods.
    let restart = json!({ "spec": { "template": { "metadata": { "annotations": { "kubectl.kubernetes.io/restartedAt": "now" } } } } });
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(restart))
        .await
        .unwrap();
    within(
        5,
        "restart",
        await_condition(deployments.clone(), "web", is_rolled_out()),
    )
    .await
    .unwrap();
    let restarted = pods.list(&ListParams::default()).await.unwrap().items;
    assert!(pod_names(&restarted)
        .iter()
        .all(|n| !pod_names(&now).contains(n)));

    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 3 } })),
        )
        .await
        .unwrap();
    let scaled = within(
        5,
        "scale",
        await_condition(deployments.clone(), "web", is_rolled_out()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(scaled.status.unwrap().ready_replicas, Some(3));
    assert_eq!(sim.objects("pods", Some("apps")).len(), 3);

    // The scale subresource (what `kubectl scale` uses) works too.
    let scale = deployments.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 0 } })),
        )
        .await
        .unwrap();
    let zero = within(
        5,
        "scale to zero",
        await_condition(deployments.clone(), "web", is_rolled_out()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(zero.status.unwrap().replicas, Some(0));
    assert!(sim.objects("pods", Some("apps")).is_empty());
}

#[tokio::test]
async fn a_broken_image_gives_image_pull_back_off_and_progress_deadline_exceeded() {
    let (_sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "apps");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "apps");
    for (name, image) in [
        ("tagged", "registry.example.com/team/app:1.0-broken"),
        ("nohost", "nowhere.invalid/app:1"),
    ] {
        apply(&deployments, &deployment(name, image, 1)).await;
        let failed = |d: Option<&Deployment>| {
            progressing_reason(d).as_deref() == Some("ProgressDeadlineExceeded")
        };
        let dep = within(
            5,
            "deadline",
            await_condition(deployments.clone(), name, failed),
        )
        .await
        .unwrap()
        .unwrap();
        let status = dep.status.unwrap();
        assert_eq!(status.ready_replicas, Some(0));
        let progressing = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Progressing")
            .unwrap();
        assert_eq!(progressing.status, "False");
        let message = progressing.message.unwrap();
        assert!(
            message.starts_with(&format!("ReplicaSet \"{name}-"))
                && message.ends_with("\" has timed out progressing."),
            "{message}"
        );

        let pod = pods
            .list(&ListParams::default().labels(&format!("app={name}")))
            .await
            .unwrap()
            .items
            .remove(0);
        assert_eq!(waiting_reason(&pod).as_deref(), Some("ImagePullBackOff"));
        assert_eq!(
            pod.status.as_ref().unwrap().phase.as_deref(),
            Some("Pending")
        );
        let cs = &pod
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0];
        let why = cs
            .state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .message
            .clone()
            .unwrap();
        assert!(
            why.starts_with(&format!(
                "Back-off pulling image \"{image}\": ErrImagePull: failed to resolve reference"
            )),
            "{why}"
        );

        // Logs of a container that never started are a 400, as on a real cluster.
        let err = pods
            .logs(pod.metadata.name.as_deref().unwrap(), &LogParams::default())
            .await
            .unwrap_err();
        assert!(matches!(err, kube::Error::Api(s) if s.code == 400));
    }

    // A fixed image recovers the deployment.
    apply(
        &deployments,
        &deployment("tagged", "registry.example.com/team/app:1.1", 1),
    )
    .await;
    within(
        5,
        "recovery",
        await_condition(deployments.clone(), "tagged", is_rolled_out()),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn deleting_a_deployment_deletes_its_pods() {
    let (sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "apps");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "apps");
    apply(
        &deployments,
        &deployment("web", "registry.example.com/web:1.0", 2),
    )
    .await;
    within(
        5,
        "rollout",
        await_condition(deployments.clone(), "web", is_rolled_out()),
    )
    .await
    .unwrap();
    let list = pods.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();

    let deleted = deployments
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        deleted.left().and_then(|d| d.metadata.name).as_deref(),
        Some("web")
    );
    assert!(deployments.get_opt("web").await.unwrap().is_none());
    assert!(pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(sim.objects("pods", None).is_empty());

    // Watching pods from before the delete shows both DELETED events.
    let mut stream = pods
        .watch(&WatchParams::default().timeout(2), &rv)
        .await
        .unwrap()
        .boxed();
    let mut gone = Vec::new();
    while gone.len() < 2 {
        match within(5, "pod deletions", stream.try_next()).await.unwrap() {
            Some(WatchEvent::Deleted(p)) => gone.push(p.metadata.name.unwrap()),
            Some(_) => {}
            None => break,
        }
    }
    gone.sort();
    assert_eq!(gone, pod_names(&list.items));
}

#[tokio::test]
async fn watches_see_changes_in_order_and_resume_from_a_resource_version() {
    let (_sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "apps");
    let start_rv = deployments
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();

    // kube's own watcher: initial (paginated) list, then the watch.
    let mut seen = watcher(
        deployments.clone(),
        watcher::Config::default().labels("app=web"),
    )
    .boxed();
    let mut init_done = false;
    while !init_done {
        if let watcher::Event::InitDone = within(5, "watcher init", seen.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            init_done = true;
        }
    }
    apply(
        &deployments,
        &deployment("web", "registry.example.com/web:1.0", 1),
    )
    .await;
    apply(
        &deployments,
        &deployment("other", "registry.example.com/other:1.0", 1),
    )
    .await;
    let mut applied = 0;
    while applied < 2 {
        match within(5, "watcher applies", seen.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            watcher::Event::Apply(d) => {
                assert_eq!(
                    d.metadata.name.as_deref(),
                    Some("web"),
                    "label selector filters the watch"
                );
                applied += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    deployments
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    loop {
        match within(5, "watcher delete", seen.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            watcher::Event::Delete(d) => {
                assert_eq!(d.metadata.name.as_deref(), Some("web"));
                break;
            }
            watcher::Event::Apply(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    // A raw watch from the resourceVersion before all this replays it in order.
    let mut events = Vec::new();
    let mut last_rv = 0u64;
    let mut stream = deployments
        .watch(
            &WatchParams::default()
                .fields("metadata.name=web")
                .timeout(1),
            &start_rv,
        )
        .await
        .unwrap()
        .boxed();
    while let Some(event) = within(5, "raw watch", stream.try_next()).await.unwrap() {
        let (kind, d) = match event {
            WatchEvent::Added(d) => ("ADDED", d),
            WatchEvent::Modified(d) => ("MODIFIED", d),
            WatchEvent::Deleted(d) => ("DELETED", d),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("{e:?}"),
        };
        let rv: u64 = d.metadata.resource_version.unwrap().parse().unwrap();
        assert!(rv > last_rv, "resourceVersions increase");
        last_rv = rv;
        events.push(kind);
    }
    assert_eq!(events.first(), Some(&"ADDED"));
    assert_eq!(events.last(), Some(&"DELETED"));
    assert!(
        events[1..events.len() - 1].iter().all(|k| *k == "MODIFIED") && events.len() >= 3,
        "{events:?}"
    );

    // Resuming from the middle gives exactly the rest.
    let mid = {
        let mut s = deployments
            .watch(
                &WatchParams::default()
                    .fields("metadata.name=web")
                    .timeout(1),
                &start_rv,
            )
            .await
            .unwrap()
            .boxed();
        match s.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(d) => d.metadata.resource_version.unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    };
    let rest: Vec<_> = deployments
        .watch(
            &WatchParams::default()
                .fields("metadata.name=web")
                .timeout(1),
            &mid,
        )
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rest.len(), events.len() - 1);

    // The streaming-list mode (sendInitialEvents) ends its initial phase with a bookmark.
    let streaming = watcher::Config::default().streaming_lists();
    let mut s = watcher(deployments.clone(), streaming).boxed();
    loop {
        match within(5, "streaming list", s.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            watcher::Event::InitDone => break,
            watcher::Event::InitApply(d) => assert_eq!(d.metadata.name.as_deref(), Some("other")),
            _ => {}
        }
    }
}

#[tokio::test]
async fn pod_logs_with_tail_lines_and_follow() {
    let (sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "apps");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "apps");
    apply(
        &deployments,
        &deployment("web", "registry.example.com/web:1.0", 1),
    )
    .await;
    within(
        5,
        "rollout",
        await_condition(deployments.clone(), "web", is_rolled_out()),
    )
    .await
    .unwrap();
    let pod = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let name = pod.metadata.name.unwrap();

    let all = pods.logs(&name, &LogParams::default()).await.unwrap();
    let mut lines = all.lines();
    assert_eq!(
        lines.next(),
        Some("kube-sim: container app started from image registry.example.com/web:1.0")
    );
    assert_eq!(lines.next(), Some("kube-sim: listening on :8080"));

    // Follow: the stream keeps delivering heartbeats.
    let follow = LogParams {
        follow: true,
        tail_lines: Some(1),
        container: Some("app".into()),
        ..LogParams::default()
    };
    let mut followed = pods.log_stream(&name, &follow).await.unwrap().lines();
    let first = within(5, "first line", followed.try_next())
        .await
        .unwrap()
        .unwrap();
    let mut heartbeats = Vec::new();
    while heartbeats.len() < 3 {
        let line = within(5, "heartbeat", followed.try_next())
            .await
            .unwrap()
            .unwrap();
        heartbeats.push(line);
    }
    assert!(
        heartbeats
            .iter()
            .all(|l| l.starts_with("kube-sim: heartbeat ")),
        "{first} {heartbeats:?}"
    );

    let tail = pods
        .logs(
            &name,
            &LogParams {
                tail_lines: Some(2),
                timestamps: true,
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    let tail: Vec<&str> = tail.lines().collect();
    assert_eq!(tail.len(), 2);
    assert!(
        tail.iter().all(|l| l.contains("Z kube-sim: heartbeat ")),
        "{tail:?}"
    );

    // Deleting the pod ends the follow stream (its replacement has other logs).
    pods.delete(&name, &DeleteParams::default()).await.unwrap();
    let rest = within(5, "end of follow", async {
        let mut n = 0;
        while followed.try_next().await.unwrap().is_some() {
            n += 1;
        }
        n
    })
    .await;
    assert!(rest < 100);
    assert!(
        matches!(pods.logs(&name, &LogParams::default()).await.unwrap_err(), kube::Error::Api(s) if s.code == 404)
    );
    // The deployment replaced the deleted pod.
    let replaced = |d: Option<&Deployment>| rolled_out(d);
    within(
        5,
        "replacement",
        await_condition(deployments.clone(), "web", replaced),
    )
    .await
    .unwrap();
    let now = sim.objects("pods", Some("apps"));
    assert_eq!(now.len(), 1);
    assert_ne!(now[0]["metadata"]["name"], name.as_str());
}

#[tokio::test]
async fn events_are_recorded_for_a_deployment_and_its_pods() {
    let (_sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "apps");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "apps");
    let events: Api<Event> = Api::namespaced(client.clone(), "apps");
    apply(
        &deployments,
        &deployment("web", "registry.example.com/web:1.0", 1),
    )
    .await;
    apply(
        &deployments,
        &deployment("bad", "registry.example.com/web:1.0-broken", 1),
    )
    .await;
    within(
        5,
        "rollout",
        await_condition(deployments.clone(), "web", is_rolled_out()),
    )
    .await
    .unwrap();

    let scaling = events
        .list(&ListParams::default().fields("involvedObject.name=web"))
        .await
        .unwrap()
        .items;
    assert!(scaling
        .iter()
        .any(|e| e.reason.as_deref() == Some("ScalingReplicaSet")
            && e.involved_object.kind.as_deref() == Some("Deployment")
            && e.message.as_deref().is_some_and(
                |m| m.starts_with("Scaled up replica set web-") && m.ends_with(" from 0 to 1")
            )));

    let pod = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .remove(0);
    let pod_name = pod.metadata.name.unwrap();
    let pod_events = events
        .list(&ListParams::default().fields(&format!("involvedObject.name={pod_name}")))
        .await
        .unwrap()
        .items;
    let reasons: Vec<&str> = pod_events
        .iter()
        .filter_map(|e| e.reason.as_deref())
        .collect();
    assert_eq!(
        reasons,
        ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
    );
    for e in &pod_events {
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        assert_eq!(e.involved_object.uid, pod.metadata.uid);
        assert_eq!(e.involved_object.namespace.as_deref(), Some("apps"));
        assert!(e.first_timestamp.is_some() && e.last_timestamp.is_some() && e.count == Some(1));
    }

    let bad = |ev: &[Event]| {
        ev.iter().any(|e| {
            e.reason.as_deref() == Some("BackOff") && e.type_.as_deref() == Some("Warning")
        })
    };
    let mut bad_pods = watcher(pods.clone(), watcher::Config::default().labels("app=bad"))
        .applied_objects()
        .boxed();
    let bad_pod = within(5, "back-off", async {
        while let Some(p) = bad_pods.try_next().await.unwrap() {
            if waiting_reason(&p).as_deref() == Some("ImagePullBackOff") {
                return p;
            }
        }
        panic!("pod watch ended")
    })
    .await;
    let bad_events = events
        .list(&ListParams::default().fields(&format!(
            "involvedObject.name={}",
            bad_pod.metadata.name.unwrap()
        )))
        .await
        .unwrap()
        .items;
    assert!(bad(&bad_events), "{bad_events:?}");
    assert!(bad_events
        .iter()
        .any(|e| e.reason.as_deref() == Some("Failed") && e.type_.as_deref() == Some("Warning")));
}

#[tokio::test]
async fn shutdown_ends_follow_streams_and_stops_serving() {
    let config = SimConfig {
        log_interval: Duration::from_millis(50),
        ..common::fast_config()
    };
    let (sim, client) = start_with(config).await;
    let url = sim.url();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "apps");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "apps");
    apply(
        &deployments,
        &deployment("web", "registry.example.com/web:1.0", 1),
    )
    .await;
    within(
        5,
        "rollout",
        await_condition(deployments.clone(), "web", is_rolled_out()),
    )
    .await
    .unwrap();
    let name = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0)
        .metadata
        .name
        .unwrap();
    let mut followed = pods
        .log_stream(
            &name,
            &LogParams {
                follow: true,
                ..LogParams::default()
            },
        )
        .await
        .unwrap()
        .lines();
    within(5, "a line", followed.try_next()).await.unwrap();

    within(10, "shutdown", sim.shutdown()).await;
    within(5, "the follow stream to end", async {
        while let Ok(Some(_)) = followed.try_next().await {}
    })
    .await;
    let fresh = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    assert!(
        fresh.apiserver_version().await.is_err(),
        "still serving after shutdown"
    );
}

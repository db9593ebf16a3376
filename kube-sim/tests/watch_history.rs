//! The bounded watch history, over real HTTP: a watch from a resourceVersion the history no
//! longer covers gets kube-apiserver's 410 `Expired` error event, kube-rs's watcher recovers
//! by listing again, and the history holds no more than its configured window however many
//! writes there are.

// A test's unwrap is its assertion (clippy.toml allows it only inside #[test] functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::{client_for, fast_config, within};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher::{self, watcher};
use kube::Client;
use kube_sim::{KubeSim, SimConfig};
use serde_json::{json, Value};

/// The window these tests use: small, so a few writes roll it over.
const WINDOW: usize = 8;

async fn start_with_window(window: usize) -> (KubeSim, Client) {
    let sim = KubeSim::start(SimConfig {
        watch_history: window,
        ..fast_config()
    })
    .await
    .expect("sim starts");
    let client = client_for(&sim);
    (sim, client)
}

fn secret(name: &str) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name },
        "stringData": { "key": "value" },
    }))
    .expect("secret manifest")
}

/// Creates Secrets `{prefix}-0` .. `{prefix}-{n-1}`; returns the last resourceVersion.
async fn create_secrets(api: &Api<Secret>, prefix: &str, n: usize) -> u64 {
    let mut rv = String::new();
    for i in 0..n {
        let created = api
            .create(&PostParams::default(), &secret(&format!("{prefix}-{i}")))
            .await
            .expect("create secret");
        rv = created.metadata.resource_version.unwrap_or_default();
    }
    rv.parse().expect("numeric resourceVersion")
}

/// The whole body of a watch request that the server ends by itself.
async fn watch_body(sim: &KubeSim, query: &str) -> (u16, Vec<Value>) {
    let url = format!(
        "{}/api/v1/namespaces/default/secrets?watch=true&{query}",
        sim.url()
    );
    let response = reqwest::get(&url).await.expect("watch request");
    let code = response.status().as_u16();
    let body = within(10, "the watch to end", response.text())
        .await
        .expect("watch body");
    let events = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    (code, events)
}

#[tokio::test]
async fn a_watch_from_a_version_older_than_the_window_gets_410_expired_in_a_200_stream() {
    // Given a Secret created, then more changes of Secrets than the window holds.
    let (sim, client) = start_with_window(WINDOW).await;
    let api: Api<Secret> = Api::namespaced(client, "default");
    let first = create_secrets(&api, "old", 1).await;
    let last = create_secrets(&api, "new", WINDOW + 2).await;

    // When a client resumes a watch from the first Secret's version.
    let (code, events) = watch_body(&sim, &format!("resourceVersion={first}")).await;

    // Then it gets what kube-apiserver's watch cache answers: 200, one ERROR event carrying a
    // 410 Expired Status naming the oldest version it could start from, then the end.
    assert_eq!(code, 200, "the error comes inside the watch stream");
    assert_eq!(
        events.len(),
        1,
        "one event, then the stream ends: {events:?}"
    );
    assert_eq!(events[0]["type"], "ERROR");
    let status = &events[0]["object"];
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["apiVersion"], "v1");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "Expired");
    assert_eq!(status["code"], 410);
    // The window holds the last WINDOW Secret changes: the oldest servable version is the one
    // just before them.
    let oldest = last - WINDOW as u64;
    assert_eq!(
        status["message"],
        format!("too old resource version: {first} ({oldest})")
    );

    // And a watch from that oldest version still gets every change after it.
    let url = format!(
        "{}/api/v1/namespaces/default/secrets?watch=true&resourceVersion={oldest}",
        sim.url()
    );
    let response = reqwest::get(&url).await.expect("watch request");
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while text.lines().count() < WINDOW || !text.ends_with('\n') {
        let chunk = within(10, "the retained changes", body.next())
            .await
            .expect("the watch stays open")
            .expect("chunk");
        text.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
    }
    let kinds: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["type"].to_string())
        .collect();
    assert_eq!(kinds, vec!["\"ADDED\"".to_string(); WINDOW], "{text}");
}

#[tokio::test]
async fn kube_rs_watcher_lists_again_after_410_and_sees_the_current_state() {
    // Given a kube-rs watcher that has listed the Secrets (and not yet started its watch).
    let (_sim, client) = start_with_window(WINDOW).await;
    let api: Api<Secret> = Api::namespaced(client, "default");
    create_secrets(&api, "before", 2).await;
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut listed = BTreeSet::new();
    within(10, "the initial list", async {
        while let Some(event) = events.next().await {
            match event.expect("initial list") {
                watcher::Event::InitApply(s) => {
                    listed.insert(s.metadata.name.unwrap_or_default());
                }
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(
        listed,
        BTreeSet::from(["before-0".into(), "before-1".into()])
    );

    // When more Secrets change than the window holds before its watch begins.
    create_secrets(&api, "after", WINDOW + 2).await;
    api.delete("before-0", &DeleteParams::default())
        .await
        .expect("delete");

    // Then its watch from the listed version gets 410, it lists again, and it sees the
    // current state.
    let mut gone = false;
    let mut relisted = BTreeSet::new();
    within(10, "the re-list", async {
        while let Some(event) = events.next().await {
            match event {
                Err(watcher::Error::WatchError(status)) if status.code == 410 => gone = true,
                Err(e) => panic!("unexpected watcher error: {e}"),
                Ok(watcher::Event::Init) => relisted.clear(),
                Ok(watcher::Event::InitApply(s)) => {
                    relisted.insert(s.metadata.name.unwrap_or_default());
                }
                Ok(watcher::Event::InitDone) => break,
                Ok(other) => panic!("expected a re-list, got {other:?}"),
            }
        }
    })
    .await;
    assert!(gone, "the watcher was told its version expired");
    let mut expected: BTreeSet<String> = (0..WINDOW + 2).map(|i| format!("after-{i}")).collect();
    expected.insert("before-1".into());
    assert_eq!(relisted, expected);
}

#[tokio::test]
async fn the_history_stays_within_its_window_under_many_writes() {
    // Given a simulator keeping 16 changes per type.
    let (sim, client) = start_with_window(16).await;
    let api: Api<Secret> = Api::namespaced(client, "default");

    // When Secrets change 300 times.
    let last = create_secrets(&api, "s", 300).await;

    // Then the history holds at most 16 changes of each type that changed (Secrets and the
    // start-up Namespaces), and a watch of the last 16 is still served.
    assert!(
        sim.watch_history_len() <= 16 * 2,
        "history holds {} changes",
        sim.watch_history_len()
    );
    let url = format!(
        "{}/api/v1/namespaces/default/secrets?watch=true&resourceVersion={}",
        sim.url(),
        last - 16
    );
    let response = reqwest::get(&url).await.expect("watch request");
    let chunk = within(
        10,
        "the first retained change",
        response.bytes_stream().next(),
    )
    .await
    .expect("the watch stays open")
    .expect("chunk");
    let first: Value =
        serde_json::from_slice(chunk.split(|b| *b == b'\n').next().expect("one line"))
            .expect("JSON");
    assert_eq!(first["type"], "ADDED");
}

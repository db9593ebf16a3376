//! Injected API-server faults over the wire: what each kind looks like to a client, that a
//! seed repeats them, and that a standard kube-rs watcher gets through them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube_sim::{Faults, KubeSim, SimConfig};
use serde_json::{json, Value};

use common::{client_for, fast_config, within};

/// How long a timeout holds its answer in these tests.
const HOLD: Duration = Duration::from_millis(400);

async fn faulty(rate: f64, seed: u64) -> KubeSim {
    KubeSim::start(SimConfig {
        faults: Faults {
            rate,
            seed,
            hold: HOLD,
            delay: Duration::from_millis(50),
        },
        ..fast_config()
    })
    .await
    .unwrap()
}

/// What a client saw of one request.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// An answer: its status, `Retry-After` and body.
    Answer(u16, Option<String>, Value),
    /// No answer (the connection dropped), and whether that took at least the hold.
    NoAnswer { held: bool },
}

async fn create_secret(http: &reqwest::Client, sim: &KubeSim, name: &str) -> Seen {
    let started = Instant::now();
    let sent = http
        .post(format!("{}/api/v1/namespaces/f/secrets", sim.url()))
        .json(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}))
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(_) => {
            return Seen::NoAnswer {
                held: started.elapsed() >= HOLD,
            }
        }
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    match response.text().await {
        Ok(text) => Seen::Answer(status, retry_after, serde_json::from_str(&text).unwrap()),
        Err(_) => Seen::NoAnswer {
            held: started.elapsed() >= HOLD,
        },
    }
}

fn stored(sim: &KubeSim) -> BTreeSet<String> {
    sim.objects("secrets", Some("f"))
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn each_fault_answers_as_kube_apiserver_does_and_only_answered_or_held_writes_take_effect() {
    let sim = faulty(1.0, 1).await;
    let http = reqwest::Client::new();
    let mut effective = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for i in 0..40 {
        let name = format!("s{i}");
        let seen = within(10, "one request", create_secret(&http, &sim, &name)).await;
        let (kind, takes_effect) = match &seen {
            Seen::Answer(500, None, status) => {
                assert_eq!(status["kind"], "Status", "{status}");
                assert_eq!(status["reason"], "InternalError", "{status}");
                assert_eq!(status["code"], 500, "{status}");
                ("server error", false)
            }
            Seen::Answer(429, Some(after), status) => {
                assert_eq!(after, "1");
                assert_eq!(status["reason"], "TooManyRequests", "{status}");
                assert_eq!(status["details"]["retryAfterSeconds"], 1, "{status}");
                ("throttled", false)
            }
            // A slow answer is a real one.
            Seen::Answer(201, None, object) => {
                assert_eq!(object["metadata"]["name"], name.as_str());
                ("slow", true)
            }
            // A timeout: held, then dropped, and the write took effect all the same.
            Seen::NoAnswer { held: true } => ("timeout", true),
            // A dropped connection: the request never reached the store.
            Seen::NoAnswer { held: false } => ("dropped", false),
            other => panic!("request {i}: an answer no fault gives: {other:?}"),
        };
        kinds.insert(kind);
        if takes_effect {
            effective.insert(name);
        }
    }
    assert_eq!(
        kinds.len(),
        5,
        "every kind of fault a write can get: {kinds:?}"
    );
    assert_eq!(stored(&sim), effective);
    let injected: u64 = sim.injected_faults().values().sum();
    assert_eq!(injected, 40, "{:?}", sim.injected_faults());

    // The simulator's own health is never a fault, and is not counted.
    for _ in 0..20 {
        let health = http
            .get(format!("{}/readyz", sim.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
    }
    assert_eq!(sim.injected_faults().values().sum::<u64>(), 40);
}

#[tokio::test]
async fn the_same_seed_repeats_the_same_faults() {
    let run = |seed: u64| async move {
        let sim = faulty(0.5, seed).await;
        let http = reqwest::Client::new();
        let mut seen = Vec::new();
        for i in 0..30 {
            // Only the status matters here: the names (and so the bodies) are the same anyway.
            let outcome = match create_secret(&http, &sim, &format!("s{i}")).await {
                Seen::Answer(status, ..) => format!("{status}"),
                Seen::NoAnswer { held } => format!("no answer (held: {held})"),
            };
            seen.push(outcome);
        }
        (seen, sim.injected_faults())
    };
    let first = run(21).await;
    assert_eq!(first, run(21).await);
    assert_ne!(first.0, run(22).await.0, "another seed, other faults");
}

#[tokio::test]
async fn a_kube_rs_watcher_sees_every_change_through_dropped_and_expired_watches() {
    // One-second watches: ended watches, 410s and resumes come many times in a few seconds.
    let sim = faulty(0.5, 4).await;
    let client = client_for(&sim);
    let secrets: Api<Secret> = Api::namespaced(client, "w");
    let watched = watcher(secrets.clone(), watcher::Config::default().timeout(1))
        .default_backoff()
        .filter_map(|event| async move {
            match event {
                Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => s.metadata.name,
                _ => None,
            }
        });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watching = tokio::spawn(async move {
        let mut watched = Box::pin(watched);
        while let Some(name) = watched.next().await {
            if tx.send(name).is_err() {
                return;
            }
        }
    });
    // Changes keep coming until the watches have met both faults of their own.
    let watch_faults = || {
        let injected = sim.injected_faults();
        injected.contains_key("watch_ended") && injected.contains_key("watch_expired")
    };
    let mut wanted = BTreeSet::new();
    within(
        30,
        "watches that end early and are refused with 410",
        async {
            while !watch_faults() {
                let name = format!("w{}", wanted.len());
                let secret: Secret =
                    serde_json::from_value(json!({"metadata": {"name": name}, "type": "Opaque"}))
                        .unwrap();
                // A client's own retry: until created, or found created by an earlier attempt.
                loop {
                    match secrets.create(&PostParams::default(), &secret).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(s)) if s.code == 409 => break,
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                wanted.insert(name);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    )
    .await;
    let mut seen = BTreeSet::new();
    within(30, "the watcher to see every Secret", async {
        while !wanted.is_subset(&seen) {
            if let Some(name) = rx.recv().await {
                seen.insert(name);
            }
        }
    })
    .await;
    watching.abort();
}

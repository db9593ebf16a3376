//! PostgreSQL stopped and started again while clients write and stream (issue 17,
//! item 4): a real server of the test's own (not the shared one), shut down fast, so
//! every session, LISTEN and advisory lock goes with it. During the outage writes
//! are 503 with Retry-After and the process stays up; afterwards every acknowledged
//! write is there, a stream that resumed by id has seen each exactly once, and the
//! process manager and the chain sealer are back at work by themselves.

use crate::cluster::{kube_config, sim_with};
use crate::helpers::{TestApp, TestDb, ADMIN_TOKEN};
use crate::private_database::Scratch;
use serde_json::json;
use shiplog_client::StreamStart;
use shiplog_infrastructure::private_db::{PrivateDatabase, PrivateDbOptions};
use shiplog_testkit::{eventually, eventually_within, scaled};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the writers saw: names acknowledged (201), and refusals during the outage.
#[derive(Default)]
struct Writes {
    acknowledged: Vec<String>,
    unavailable: usize,
    retry_after: BTreeSet<String>,
    other: Vec<String>,
}

#[tokio::test]
async fn a_database_restart_under_load_loses_nothing_acknowledged_and_everything_recovers() {
    let scratch = Scratch::new();
    let options = PrivateDbOptions {
        data_dir: scratch.data_dir(),
    };
    // Started on this (the test's) thread: the postmaster lives as long as it does.
    let database = PrivateDatabase::start(&options).unwrap_or_else(|e| panic!("{e}"));
    let url = database.url().to_owned();
    let sim = sim_with(Duration::from_millis(50), false).await;
    let app = TestApp::spawn_on_url_with_cluster(
        Arc::new(TestDb::create().await),
        &url,
        kube_config(&sim),
    )
    .await;

    // A reader of the whole ledger, resuming by id whenever its stream drops.
    let mut feed = app
        .api
        .follow(None, StreamStart::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // (cursor, the registered name for a UsecaseRegistered, else empty)
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Ok(event) = feed.next().await {
                if let Ok(mut seen) = seen.lock() {
                    let name = event.payload["UsecaseRegistered"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    seen.push((event.cursor.clone(), name));
                }
            }
        })
    };

    // Three writers registering usecases as fast as they are answered.
    let stop = Arc::new(AtomicBool::new(false));
    let writes: Arc<Mutex<Writes>> = Arc::default();
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (client, url, stop, writes) = (
                app.client.clone(),
                app.url("/api/usecases"),
                stop.clone(),
                writes.clone(),
            );
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let name = format!("w{w}-{n}");
                    let answer = client
                        .post(&url)
                        .bearer_auth(ADMIN_TOKEN)
                        .json(&json!({"name": name}))
                        .timeout(Duration::from_secs(30))
                        .send()
                        .await;
                    {
                        let Ok(mut writes) = writes.lock() else {
                            return;
                        };
                        match answer {
                            Ok(r) if r.status().as_u16() == 201 => writes.acknowledged.push(name),
                            Ok(r) if r.status().as_u16() == 503 => {
                                writes.unavailable += 1;
                                if let Some(v) =
                                    r.headers().get("retry-after").and_then(|v| v.to_str().ok())
                                {
                                    writes.retry_after.insert(v.to_owned());
                                }
                            }
                            Ok(r) => writes.other.push(format!("{name}: {}", r.status())),
                            Err(e) => writes.other.push(format!("{name}: {e}")),
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    let acknowledged =
        |writes: &Arc<Mutex<Writes>>| writes.lock().map_or(0, |w| w.acknowledged.len());
    eventually("writes are acknowledged before the outage", || async {
        match acknowledged(&writes) {
            n if n >= 10 => Ok(()),
            n => Err(n),
        }
    })
    .await;

    // The database goes away for a while (fast shutdown: sessions are ended).
    drop(database);
    let before_outage = acknowledged(&writes);
    eventually("a write is refused during the outage", || async {
        match writes.lock().map_or(0, |w| w.unavailable) {
            0 => Err("none yet"),
            _ => Ok(()),
        }
    })
    .await;
    let (status, _) = app.send(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(status, 200, "the process stays up");
    let (status, _) = app.send(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 503, "and says it is not ready");
    tokio::time::sleep(scaled(Duration::from_secs(10))).await;

    let database = PrivateDatabase::start(&options).unwrap_or_else(|e| panic!("{e}"));
    eventually_within("ready again", Duration::from_secs(30), || async {
        match app.send(reqwest::Method::GET, "/readyz", None, None).await {
            (200, _) => Ok(()),
            other => Err(other),
        }
    })
    .await;
    eventually("writes are acknowledged again", || async {
        match acknowledged(&writes) {
            n if n >= before_outage + 10 => Ok(()),
            n => Err(n),
        }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        let _ = writer.await;
    }
    let writes = std::mem::take(&mut *writes.lock().unwrap_or_else(|e| panic!("{e}")));
    assert!(
        writes.other.is_empty(),
        "no 500, no lost connection: {:?}",
        writes.other
    );
    assert_eq!(
        writes.retry_after,
        BTreeSet::from(["5".to_owned()]),
        "every 503 says when to retry"
    );

    // Every acknowledged usecase is there.
    let listed: BTreeSet<String> = app
        .get_pages("/api/usecases?limit=200")
        .await
        .iter()
        .flat_map(|page| page["items"].as_array().cloned().unwrap_or_default())
        .filter_map(|u| u["name"].as_str().map(str::to_owned))
        .collect();
    let acknowledged: BTreeSet<String> = writes.acknowledged.iter().cloned().collect();
    let lost: Vec<&String> = acknowledged.difference(&listed).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");

    // The stream resumed by id across the outage: every acknowledged registration,
    // each once, in order. (A write whose answer was lost with its connection may be
    // recorded without being acknowledged: the stream shows what the ledger has.)
    let streamed = || -> BTreeSet<String> {
        seen.lock()
            .map(|s| {
                s.iter()
                    .map(|(_, name)| name.clone())
                    .filter(|n| !n.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    eventually(
        "the stream delivers every acknowledged registration",
        || async {
            let missing: Vec<String> = acknowledged.difference(&streamed()).cloned().collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("{} not streamed yet", missing.len()))
            }
        },
    )
    .await;
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let cursors: Vec<&String> = seen.iter().map(|(c, _)| c).collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "the stream repeated or reordered an event"
    );
    reader.abort();

    // The process manager leads again: a deployment requested now is rolled out.
    let usecase = app.create_usecase("after-restart").await;
    let deployment = app.deploy(usecase, "1.0").await;
    app.wait_for_status(usecase, deployment, "deployed").await;
    // The sealer too: every event is sealed into the chain, which verifies.
    eventually("the chain seals everything and verifies", || async {
        let (_, report) = app.get("/api/audit/verify").await;
        if report["verified"] == true && report["unsealed"] == 0 {
            Ok(())
        } else {
            Err(report.to_string())
        }
    })
    .await;
    drop(app);
    drop(database);
}

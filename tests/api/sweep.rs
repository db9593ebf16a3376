//! The process manager's start-up sweep: a leader killed between two reconciles of a
//! usecase leaves its checkpoint past the events that still call for work, and the
//! next leader finds that work by the sweep alone. Each test builds the state such a
//! kill leaves (the ledger, the checkpoint, the cluster) without a process manager,
//! then starts one and expects it to finish the job.

use crate::cluster::kube_config;
use crate::helpers::{TestApp, TestDb, NAMESPACE};
use kube_sim::{KubeSim, SimConfig};
use serde_json::json;
use shiplog_domain::UsecaseCommand;
use shiplog_infrastructure::kube_objects::{generated_secret_name, usecase_labels};
use shiplog_testkit::eventually_within;
use std::sync::Arc;
use std::time::Duration;

/// Moves the process manager's checkpoint to the newest event, as a leader does once it
/// has scheduled the reconciles of everything before it.
async fn checkpoint_at_the_end(db: &TestDb) {
    sqlx::query(
        "INSERT INTO subscription_checkpoints (name, transaction_id, position)
         SELECT 'process_manager', transaction_id, position FROM events
          ORDER BY transaction_id DESC, position DESC LIMIT 1
         ON CONFLICT (name) DO UPDATE
           SET transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position",
    )
    .execute(&db.pool)
    .await
    .unwrap_or_else(|e| panic!("moving the checkpoint: {e}"));
}

#[tokio::test]
async fn a_deletion_whose_undeploy_was_recorded_is_finished_by_the_next_leader() {
    // Arrange: a deployed usecase, deleted through the platform API; the leader took its
    // deployment down and recorded it, then was killed before the reconcile that event
    // called for (the one that records the deletion). Nothing of it is in the cluster.
    let db = Arc::new(TestDb::create().await);
    let mut before = TestApp::spawn_shared(db.clone()).await;
    let usecase = before.create_usecase("half-deleted").await;
    let deployment = before.deploy(usecase, "1.0.0").await;
    before.mark_deployed(usecase, deployment).await;
    let (status, body) = before
        .post(
            "/api/deployments/delete",
            json!({"deployment_name": "half-deleted"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let at = chrono::Utc::now();
    before
        .record(
            usecase,
            UsecaseCommand::ConfirmUndeployed {
                deployment_id: deployment,
                at,
            },
        )
        .await;
    before
        .wait_for_status(usecase, deployment, "undeployed")
        .await;
    checkpoint_at_the_end(&db).await;
    before.stop().await;

    // Act: a process manager leads again.
    let sim = KubeSim::start(SimConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let after = TestApp::spawn_with_cluster(db.clone(), kube_config(&sim)).await;

    // Assert: it finds the usecase by the sweep and records the deletion.
    eventually_within(
        "the usecase is deleted",
        Duration::from_secs(20),
        || async {
            match after.get(&format!("/api/usecases/{usecase}")).await {
                (404, _) => Ok(()),
                other => Err(other),
            }
        },
    )
    .await;
    let types: Vec<String> = after
        .events_of(usecase)
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        types.last().map(String::as_str),
        Some("UsecaseDeleted"),
        "{types:?}"
    );
}

#[tokio::test]
async fn the_generated_secret_a_deleted_usecase_left_behind_is_removed_by_the_next_leader() {
    // Arrange: a usecase whose deletion the leader recorded, killed before the reconcile
    // that removes what outlives its deployments: the Secret of its generated values.
    let db = Arc::new(TestDb::create().await);
    let mut before = TestApp::spawn_shared(db.clone()).await;
    let usecase = before.create_usecase("forgotten").await;
    let (status, body) = before.delete(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(status, 204, "{body}");
    checkpoint_at_the_end(&db).await;
    before.stop().await;
    let sim = KubeSim::start(SimConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let secret = generated_secret_name(usecase);
    let created = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/namespaces/{NAMESPACE}/secrets",
            sim.url()
        ))
        .json(&json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret, "namespace": NAMESPACE, "labels": usecase_labels(usecase)},
            "stringData": {"db.POSTGRES_PASSWORD": "generated"},
        }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(created.status().is_success(), "{created:?}");

    // Act: a process manager leads again.
    let _after = TestApp::spawn_with_cluster(db.clone(), kube_config(&sim)).await;

    // Assert: the sweep finds the usecase by its Secret, and the Secret goes.
    eventually_within(
        "the generated Secret is removed",
        Duration::from_secs(20),
        || async {
            let names: Vec<String> = sim
                .objects("secrets", Some(NAMESPACE))
                .iter()
                .filter_map(|s| s["metadata"]["name"].as_str().map(str::to_owned))
                .collect();
            if names.contains(&secret) {
                Err(names)
            } else {
                Ok(())
            }
        },
    )
    .await;
}

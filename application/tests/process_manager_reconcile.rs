//! A reconcile's cost in cluster calls does not grow with the usecase's history:
//! the process manager asks the cluster what it holds and touches only that. And it
//! opens a deployment's secret values only just before it applies it.

use async_trait::async_trait;
use chrono::Utc;
use cqrs_es::Aggregate;
use shiplog_application::{
    AppError, ClearSecrets, ClusterError, ClusterPort, CommandBus, CommandContext, Cursor,
    ProcessManager, RolloutOutcome, SealedSecrets, SecretError, SecretValue, SecretVault,
    UsecaseLoader, Workload,
};
use shiplog_domain::{SealedValue, Usecase, UsecaseCommand};
use shiplog_testkit::events;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

const U: Uuid = Uuid::from_u128(1);

/// A cluster that holds the given deployments' objects and records every call.
struct Cluster {
    present: Vec<Uuid>,
    calls: Mutex<Vec<String>>,
}

impl Cluster {
    fn new(present: Vec<Uuid>) -> Arc<Self> {
        Arc::new(Self {
            present,
            calls: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, call: String) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
    }
}

#[async_trait]
impl ClusterPort for Cluster {
    async fn apply(&self, w: &Workload) -> Result<(), ClusterError> {
        self.record(format!("apply {}", w.deployment_id.as_u128()));
        Ok(())
    }
    async fn await_rollout(
        &self,
        w: &Workload,
        _timeout: Duration,
    ) -> Result<RolloutOutcome, ClusterError> {
        self.record(format!("await {}", w.deployment_id.as_u128()));
        Ok(RolloutOutcome::Ready)
    }
    async fn route(&self, w: &Workload) -> Result<(), ClusterError> {
        self.record(format!("route {}", w.deployment_id.as_u128()));
        Ok(())
    }
    async fn remove(&self, _usecase_id: Uuid, deployment_id: Uuid) -> Result<(), ClusterError> {
        self.record(format!("remove {}", deployment_id.as_u128()));
        Ok(())
    }
    async fn remove_route(&self, _usecase_id: Uuid) -> Result<(), ClusterError> {
        self.record("remove-route".to_owned());
        Ok(())
    }
    async fn forget(&self, _usecase_id: Uuid) -> Result<(), ClusterError> {
        self.record("forget".to_owned());
        Ok(())
    }
    async fn managed(&self) -> Result<Vec<Uuid>, ClusterError> {
        self.record("managed".to_owned());
        Ok(if self.present.is_empty() {
            Vec::new()
        } else {
            vec![U]
        })
    }
    async fn present(&self, _usecase_id: Uuid) -> Result<Vec<Uuid>, ClusterError> {
        self.record("present".to_owned());
        Ok(self.present.clone())
    }
}

/// Serves one usecase's state.
struct Loader(Usecase);

#[async_trait]
impl UsecaseLoader for Loader {
    async fn load(&self, _usecase_id: Uuid) -> Result<Usecase, AppError> {
        Ok(self.0.clone())
    }
}

/// Accepts every outcome the process manager records, and remembers them.
#[derive(Default)]
struct Bus(Mutex<Vec<String>>);

#[async_trait]
impl CommandBus for Bus {
    async fn execute(
        &self,
        _usecase_id: Uuid,
        command: UsecaseCommand,
        _ctx: &CommandContext,
    ) -> Result<Cursor, AppError> {
        if let Ok(mut commands) = self.0.lock() {
            commands.push(format!("{command:?}"));
        }
        Ok(Cursor::START)
    }
}

/// A usecase that deployed `n` times, each deployment superseding the one before;
/// returns it with the ids, oldest first.
fn history(n: u128) -> (Usecase, Vec<Uuid>) {
    let at = Utc::now();
    let mut u = events::usecase([events::registered(U, "long-history", at)]);
    let ids: Vec<Uuid> = (0..n).map(|i| Uuid::from_u128(1000 + i)).collect();
    for (i, id) in ids.iter().enumerate() {
        let deployment_id = *id;
        u.apply(events::requested(deployment_id, events::config("1"), at));
        u.apply(events::started(deployment_id, at));
        u.apply(events::succeeded(deployment_id, at));
        if i > 0 {
            u.apply(events::superseded(ids[i - 1], deployment_id, at));
        }
    }
    (u, ids)
}

/// The cluster calls one reconcile of a usecase with `n` finished deployments makes,
/// the cluster holding only the serving one; and whether it reported the usecase at rest.
async fn reconcile_calls(n: u128) -> (Vec<String>, bool) {
    let (usecase, ids) = history(n);
    let serving = ids[ids.len() - 1];
    let cluster = Cluster::new(vec![serving]);
    let bus = Arc::new(Bus::default());
    let pm = ProcessManager::new(
        bus.clone(),
        Arc::new(Loader(usecase)),
        cluster.clone(),
        Duration::from_secs(5),
    );
    let settled = pm
        .reconcile(U, Cursor::START)
        .await
        .unwrap_or_else(|e| panic!("reconcile: {e}"));
    let recorded = bus.0.lock().map(|c| c.len()).unwrap_or(usize::MAX);
    assert_eq!(recorded, 0, "nothing to record for a usecase at rest");
    let calls = cluster
        .calls()
        .into_iter()
        // The serving deployment's id differs with n; its call does not.
        .map(|c| c.replace(&serving.as_u128().to_string(), "serving"))
        .collect();
    (calls, settled)
}

#[tokio::test]
async fn a_thousand_finished_deployments_cost_no_more_cluster_calls_than_one() {
    let (one, one_settled) = reconcile_calls(1).await;
    let (thousand, thousand_settled) = reconcile_calls(1000).await;
    assert_eq!(one, ["present", "route serving"]);
    assert_eq!(thousand, one);
    assert!(
        one_settled && thousand_settled,
        "a routed usecase is at rest"
    );
}

#[tokio::test]
async fn a_leftover_is_removed_once_and_a_rollout_is_not_at_rest() {
    let (mut usecase, ids) = history(3);
    let leftover = ids[0];
    let cluster = Cluster::new(vec![leftover, ids[2]]);
    let pm = ProcessManager::new(
        Arc::new(Bus::default()),
        Arc::new(Loader(usecase.clone())),
        cluster.clone(),
        Duration::from_secs(5),
    );
    let settled = pm
        .reconcile(U, Cursor::START)
        .await
        .unwrap_or_else(|e| panic!("reconcile: {e}"));
    assert_eq!(cluster.calls(), ["present", "route 1002", "remove 1000"]);
    assert!(settled);

    // A new deployment requested: the reconcile rolls it out and the usecase is not at rest
    // (its worker waits for the outcome event it recorded).
    usecase.apply(events::requested(
        Uuid::from_u128(2000),
        events::config("1"),
        Utc::now(),
    ));
    let cluster = Cluster::new(vec![ids[2]]);
    let bus = Arc::new(Bus::default());
    let pm = ProcessManager::new(
        bus.clone(),
        Arc::new(Loader(usecase)),
        cluster.clone(),
        Duration::from_secs(5),
    );
    let settled = pm
        .reconcile(U, Cursor::START)
        .await
        .unwrap_or_else(|e| panic!("reconcile: {e}"));
    assert!(!settled);
    assert_eq!(
        cluster.calls(),
        [
            "present",
            "route 1002",
            "apply 2000",
            "await 2000",
            "route 2000"
        ]
    );
    let recorded = bus.0.lock().map(|c| c.clone()).unwrap_or_default();
    assert_eq!(recorded.len(), 2, "started and succeeded: {recorded:?}");
}

/// A vault that opens every sealed value as `opened:<ciphertext>`, and counts its calls.
#[derive(Default)]
struct Vault(Mutex<usize>);

#[async_trait]
impl SecretVault for Vault {
    async fn seal(
        &self,
        _usecase_id: Uuid,
        _values: &ClearSecrets,
    ) -> Result<SealedSecrets, SecretError> {
        Err(SecretError::NoMasterKey)
    }
    async fn open(
        &self,
        _usecase_id: Uuid,
        sealed: &SealedSecrets,
    ) -> Result<ClearSecrets, SecretError> {
        if let Ok(mut calls) = self.0.lock() {
            *calls += 1;
        }
        Ok(sealed
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    SecretValue::new(format!("opened:{}", v.ciphertext)),
                )
            })
            .collect())
    }
}

/// A cluster that keeps the secret values of the workloads it is asked to apply.
#[derive(Default)]
struct Applied(Mutex<Vec<ClearSecrets>>);

#[async_trait]
impl ClusterPort for Applied {
    async fn apply(&self, w: &Workload) -> Result<(), ClusterError> {
        if let Ok(mut applied) = self.0.lock() {
            applied.push(w.secrets.clone());
        }
        Ok(())
    }
    async fn await_rollout(
        &self,
        _w: &Workload,
        _t: Duration,
    ) -> Result<RolloutOutcome, ClusterError> {
        Ok(RolloutOutcome::Ready)
    }
    async fn route(&self, _w: &Workload) -> Result<(), ClusterError> {
        Ok(())
    }
    async fn remove(&self, _u: Uuid, _d: Uuid) -> Result<(), ClusterError> {
        Ok(())
    }
    async fn remove_route(&self, _u: Uuid) -> Result<(), ClusterError> {
        Ok(())
    }
    async fn forget(&self, _u: Uuid) -> Result<(), ClusterError> {
        Ok(())
    }
    async fn managed(&self) -> Result<Vec<Uuid>, ClusterError> {
        Ok(Vec::new())
    }
    async fn present(&self, _u: Uuid) -> Result<Vec<Uuid>, ClusterError> {
        Ok(Vec::new())
    }
}

/// A usecase with one pending deployment whose config has a sealed `DB_PASSWORD`.
fn pending_with_secret() -> (Usecase, Uuid) {
    let at = Utc::now();
    let sealed = SealedValue::new(
        "3fa2c1d0a1b2c3d4".into(),
        "bm9uY2U=".into(),
        "c2VhbGVk".into(),
    );
    let config = events::config("1")
        .with_secrets(
            "config",
            BTreeMap::from([("DB_PASSWORD".to_owned(), sealed)]),
            Vec::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let deployment = Uuid::from_u128(3000);
    let mut u = events::usecase([events::registered(U, "with-secret", at)]);
    u.apply(events::requested(deployment, config, at));
    (u, deployment)
}

#[tokio::test]
async fn secret_values_are_opened_just_before_the_apply() {
    let (usecase, _) = pending_with_secret();
    let (cluster, vault) = (Arc::new(Applied::default()), Arc::new(Vault::default()));
    let pm = ProcessManager::new(
        Arc::new(Bus::default()),
        Arc::new(Loader(usecase)),
        cluster.clone(),
        Duration::from_secs(5),
    )
    .with_vault(vault.clone());
    pm.reconcile(U, Cursor::START)
        .await
        .unwrap_or_else(|e| panic!("reconcile: {e}"));
    let applied = cluster.0.lock().map(|a| a.clone()).unwrap_or_default();
    assert_eq!(applied.len(), 1, "one apply");
    assert_eq!(
        applied[0].get("DB_PASSWORD").map(SecretValue::expose),
        Some("opened:c2VhbGVk")
    );
    assert_eq!(vault.0.lock().map(|c| *c).unwrap_or_default(), 1);
}

#[tokio::test]
async fn without_a_vault_a_deployment_with_secrets_fails_saying_why_and_nothing_is_applied() {
    let (usecase, deployment) = pending_with_secret();
    let (cluster, bus) = (Arc::new(Applied::default()), Arc::new(Bus::default()));
    let pm = ProcessManager::new(
        bus.clone(),
        Arc::new(Loader(usecase)),
        cluster.clone(),
        Duration::from_secs(5),
    );
    pm.reconcile(U, Cursor::START)
        .await
        .unwrap_or_else(|e| panic!("reconcile: {e}"));
    assert!(
        cluster.0.lock().map(|a| a.is_empty()).unwrap_or_default(),
        "nothing applied"
    );
    let recorded = bus.0.lock().map(|c| c.clone()).unwrap_or_default();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert!(
        recorded[0].starts_with("FailDeployment")
            && recorded[0].contains(&deployment.to_string())
            && recorded[0].contains("secret values cannot be opened")
            && recorded[0].contains("no master key"),
        "{recorded:?}"
    );
}

#[tokio::test]
async fn cleaning_up_a_deleted_usecase_never_opens_its_secrets() {
    let (mut usecase, deployment) = pending_with_secret();
    let at = Utc::now();
    usecase.apply(events::failed(deployment, "crashed", at));
    usecase.apply(events::deleted(at));
    let cluster = Cluster::new(vec![deployment]);
    let vault = Arc::new(Vault::default());
    let pm = ProcessManager::new(
        Arc::new(Bus::default()),
        Arc::new(Loader(usecase)),
        cluster.clone(),
        Duration::from_secs(5),
    )
    .with_vault(vault.clone());
    pm.reconcile(U, Cursor::START)
        .await
        .unwrap_or_else(|e| panic!("reconcile: {e}"));
    assert_eq!(cluster.calls(), ["present", "forget", "remove 3000"]);
    assert_eq!(
        vault.0.lock().map(|c| *c).unwrap_or_default(),
        0,
        "the key is not needed"
    );
}

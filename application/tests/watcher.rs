//! The auto-update watcher's pacing, with its ports in memory: a registry's budget
//! of checks per minute holds across usecases, and a usecase whose registry may
//! not be asked is left due (no check recorded) for a later round.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shiplog_application::auto_update::{
    CheckRecord, CheckStore, DueCheck, PushedImage, Watcher, WatcherSettings,
};
use shiplog_application::{
    AppError, CommandBus, CommandContext, Cursor, ImageResolver, ResolveError, UsecaseLoader,
};
use shiplog_domain::{CheckTrigger, ImageRef, UpdateStrategy, Usecase, UsecaseCommand};
use shiplog_testkit::events;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// Every usecase is due in every round; checks are kept in memory.
#[derive(Default)]
struct Checks {
    due: Vec<Uuid>,
    last: Mutex<HashMap<Uuid, CheckRecord>>,
}

#[async_trait]
impl CheckStore for Checks {
    async fn due(&self, _: DateTime<Utc>, _: Duration, _: i64) -> Result<Vec<DueCheck>, AppError> {
        Ok(self
            .due
            .iter()
            .map(|&usecase_id| DueCheck {
                usecase_id,
                trigger: CheckTrigger::Interval,
            })
            .collect())
    }

    async fn record(&self, usecase_id: Uuid, check: &CheckRecord) -> Result<(), AppError> {
        if let Ok(mut last) = self.last.lock() {
            last.insert(usecase_id, check.clone());
        }
        Ok(())
    }

    async fn last(&self, usecase_id: Uuid) -> Result<Option<CheckRecord>, AppError> {
        Ok(self
            .last
            .lock()
            .ok()
            .and_then(|l| l.get(&usecase_id).cloned()))
    }

    async fn request(&self, _: &PushedImage, _: DateTime<Utc>) -> Result<Vec<Uuid>, AppError> {
        Ok(Vec::new())
    }
}

/// A registry whose tag never moves: every check finds what runs. Counts the questions.
#[derive(Default)]
struct StillRegistry {
    asked: Mutex<usize>,
}

#[async_trait]
impl ImageResolver for StillRegistry {
    async fn resolve(&self, _: &ImageRef) -> Result<Option<String>, ResolveError> {
        if let Ok(mut asked) = self.asked.lock() {
            *asked += 1;
        }
        Ok(Some(digest()))
    }

    async fn tags(&self, _: &ImageRef) -> Result<Option<Vec<String>>, ResolveError> {
        Ok(Some(vec!["1.0.0".to_owned()]))
    }
}

/// Usecases that follow `registry.example/team/chat:1.0.0`, serving `digest()`.
struct Following;

#[async_trait]
impl UsecaseLoader for Following {
    async fn load(&self, usecase_id: Uuid) -> Result<Usecase, AppError> {
        let at = Utc::now();
        let d = Uuid::new_v4();
        Ok(events::usecase([
            events::registered(usecase_id, "chat", at),
            events::auto_update(true, UpdateStrategy::Rolling, at),
            events::requested(d, events::config("1.0.0"), at),
            events::started_pinned(d, &digest(), at),
            events::succeeded(d, at),
        ]))
    }
}

/// No update is ever found here, so no command may be sent.
struct NoCommands;

#[async_trait]
impl CommandBus for NoCommands {
    async fn execute(
        &self,
        _: Uuid,
        command: UsecaseCommand,
        _: &CommandContext,
    ) -> Result<Cursor, AppError> {
        panic!("the watcher sent {command:?} though nothing changed")
    }
}

fn digest() -> String {
    format!("sha256:{}", "7".repeat(64))
}

#[tokio::test]
async fn a_registry_s_budget_holds_across_usecases_and_the_rest_stay_due() {
    let usecases: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let checks = Arc::new(Checks {
        due: usecases.clone(),
        ..Checks::default()
    });
    let registry = Arc::new(StillRegistry::default());
    let watcher = Watcher::new(
        Arc::new(NoCommands),
        Arc::new(Following),
        registry.clone(),
        checks.clone(),
        WatcherSettings {
            interval: Duration::from_secs(1),
            checks_per_minute: NonZeroU32::new(2).unwrap(),
        },
    );

    // Two of three fit the budget; the third is not checked, so nothing is recorded for it.
    assert_eq!(watcher.round().await.unwrap(), 2);
    assert_eq!(*registry.asked.lock().unwrap(), 2);
    let recorded = checks.last.lock().unwrap().clone();
    assert_eq!(recorded.len(), 2);
    assert!(recorded
        .values()
        .all(|c| c.outcome.as_str() == "unchanged" && c.digest == Some(digest())));

    // Within the same minute the registry is asked no more.
    assert_eq!(watcher.round().await.unwrap(), 0);
    assert_eq!(*registry.asked.lock().unwrap(), 2);
}

//! Auto-update: a watcher that notices when the image behind a deployment's tag
//! changes (or, with the `semver` policy, when a higher version in range appears)
//! and asks for a new deployment pinned to it, with actor `auto-update` and its
//! check as causation.
//!
//! A check that finds nothing new records no event: the ledger keeps the updates a
//! check caused, and the last check of each usecase is operational state
//! ([`CheckStore`]) that `GET …/auto-update` shows. Checks are cheap (one HEAD of
//! the tag's manifest; a tag listing for `semver`), limited per registry, and a
//! registry answering 429 is left alone for a while that doubles with each refusal.

use crate::error::{AppError, Conflict};
use crate::ports::{Causation, CommandBus, CommandContext, ImageResolver, ResolveError};
use crate::process_manager::UsecaseLoader;
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use shiplog_domain::{
    AutoUpdate, AutoUpdatePause, CheckTrigger, FoundImage, ImageRef, UpdatePolicy, UpdateStrategy,
    Usecase, UsecaseCommand,
};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{info, instrument, warn};
use uuid::Uuid;

/// The actor recorded on the deployments the watcher requests.
pub const AUTO_UPDATE: &str = "auto-update";

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckOutcome {
    /// The tag names what runs: nothing to do.
    Unchanged,
    /// A new image was found and its deployment requested.
    Updated,
    /// A new image was found while another deployment is in flight: checked again soon.
    Waiting,
    /// The registry answered 429: it is left alone until `not_before`.
    RateLimited,
    /// The registry could not be asked or refused (401, 404, unreachable).
    Failed,
    /// Nothing to follow (an image pinned by digest alone, nothing serving, or a
    /// registry the simulated mode leaves alone).
    Skipped,
}

impl CheckOutcome {
    /// As the API and the check store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unchanged => "unchanged",
            Self::Updated => "updated",
            Self::Waiting => "waiting",
            Self::RateLimited => "rateLimited",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    /// The outcome spelled `raw`, as [`Self::as_str`] writes it.
    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Unchanged,
            Self::Updated,
            Self::Waiting,
            Self::RateLimited,
            Self::Failed,
            Self::Skipped,
        ]
        .into_iter()
        .find(|o| o.as_str() == raw)
    }
}

/// The last check of a usecase, as the watcher leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRecord {
    /// The check: the causation of the events an update records.
    pub check_id: Uuid,
    /// When it ran.
    pub checked_at: DateTime<Utc>,
    /// What made it run.
    pub trigger: CheckTrigger,
    /// The tag it looked at (for `semver`: the highest in range, when there is one).
    pub tag: String,
    /// The digest that tag named, when the registry said.
    pub digest: Option<String>,
    /// How it ended.
    pub outcome: CheckOutcome,
    /// What happened, in the user's words (the registry's answer on failure, the new
    /// deployment on update).
    pub message: String,
    /// The next check waits until then (after a 429, or while a deployment is in flight).
    pub not_before: Option<DateTime<Utc>>,
}

/// A usecase whose check is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueCheck {
    /// The usecase.
    pub usecase_id: Uuid,
    /// Why it is due.
    pub trigger: CheckTrigger,
}

/// A push a registry notified (`POST /api/hooks/registry`): which usecases to check at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// The registry pushed to (`host[:port]`), when the notification says.
    pub registry: Option<String>,
    /// The repository pushed to.
    pub repository: String,
    /// The tag pushed, when a tag was.
    pub tag: Option<String>,
}

/// Where the watcher keeps its checks: one row per usecase, outside the ledger.
#[async_trait]
pub trait CheckStore: Send + Sync {
    /// Usecases following their tag (enabled, not paused) whose check is due at `now`:
    /// never checked, last checked `interval` ago or more, or asked for by a registry
    /// notification since; never before their `not_before`. Longest waiting first.
    async fn due(
        &self,
        now: DateTime<Utc>,
        interval: Duration,
        limit: i64,
    ) -> Result<Vec<DueCheck>, AppError>;

    /// Keeps `check` as the usecase's last check (a notification's request is served by it).
    async fn record(&self, usecase_id: Uuid, check: &CheckRecord) -> Result<(), AppError>;

    /// The usecase's last check, if it was ever checked.
    async fn last(&self, usecase_id: Uuid) -> Result<Option<CheckRecord>, AppError>;

    /// Asks for a check at once of every usecase following `pushed` (the registry and
    /// repository of its serving image; the tag too, under the `digest` policy) and
    /// wakes the watcher; returns those usecases.
    async fn request(&self, pushed: &PushedImage, at: DateTime<Utc>)
        -> Result<Vec<Uuid>, AppError>;
}

/// What `GET …/auto-update` shows: the settings, the pause, and the last check.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoUpdateStatus {
    /// The settings the ledger holds.
    pub settings: AutoUpdate,
    /// Why it is paused, while a manual rollback pauses it.
    pub paused: Option<AutoUpdatePause>,
    /// The watcher's last check.
    pub last_check: Option<CheckRecord>,
}

/// A client's change of the auto-update settings: what it leaves out stays as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoUpdateChange {
    /// Follow new images (enabling again also ends a pause).
    pub enabled: bool,
    /// How pods are replaced; `None` keeps the current strategy.
    pub strategy: Option<UpdateStrategy>,
    /// Which new images count; `None` keeps the current policy.
    pub policy: Option<UpdatePolicy>,
}

impl AutoUpdateChange {
    /// The settings `current` becomes.
    pub fn applied_to(self, current: &AutoUpdate) -> AutoUpdate {
        AutoUpdate {
            enabled: self.enabled,
            strategy: self.strategy.unwrap_or(current.strategy),
            policy: self.policy.unwrap_or_else(|| current.policy.clone()),
        }
    }
}

/// Registry notifications: each push makes the checks of the usecases following
/// the pushed image due at once.
pub struct RegistryHooks {
    store: Arc<dyn CheckStore>,
}

impl RegistryHooks {
    /// Hooks over the watcher's check store.
    pub fn new(store: Arc<dyn CheckStore>) -> Self {
        Self { store }
    }

    /// Asks for a check of every usecase following one of `pushes`; returns them, once each.
    #[instrument(skip(self, pushes), fields(pushes = pushes.len()))]
    pub async fn pushed(&self, pushes: &[PushedImage]) -> Result<Vec<Uuid>, AppError> {
        let at = Utc::now();
        let mut usecases: Vec<Uuid> = Vec::new();
        for pushed in pushes {
            for id in self.store.request(pushed, at).await? {
                if !usecases.contains(&id) {
                    usecases.push(id);
                }
            }
        }
        info!(checks = usecases.len(), "registry notification");
        Ok(usecases)
    }
}

/// How the watcher paces itself.
#[derive(Debug, Clone)]
pub struct WatcherSettings {
    /// How often each following usecase is checked (`--auto-update-interval`).
    pub interval: Duration,
    /// Checks per minute at most against one registry (`--registry-checks-per-minute`).
    pub checks_per_minute: NonZeroU32,
}

impl Default for WatcherSettings {
    /// `shiplog serve`'s defaults: every 300 s, 60 checks per minute per registry.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            checks_per_minute: NonZeroU32::new(60).unwrap_or(NonZeroU32::MIN),
        }
    }
}

impl WatcherSettings {
    /// The first wait after a 429: the interval, but never more than 30 s; it doubles
    /// with each refusal in a row up to an hour.
    fn backoff(&self, refusals: u32) -> Duration {
        let first = self.interval.min(Duration::from_secs(30));
        let factor = 2u32.saturating_pow(refusals.saturating_sub(1).min(16));
        first.saturating_mul(factor).min(Duration::from_secs(3600))
    }
}

/// A registry that answered 429: refusals in a row, and until when it is left alone.
#[derive(Debug, Clone, Copy)]
struct Cooling {
    refusals: u32,
    until: DateTime<Utc>,
}

/// Checks due usecases against their registries and requests the updates it finds.
pub struct Watcher {
    bus: Arc<dyn CommandBus>,
    loader: Arc<dyn UsecaseLoader>,
    resolver: Arc<dyn ImageResolver>,
    store: Arc<dyn CheckStore>,
    settings: WatcherSettings,
    limiter: DefaultKeyedRateLimiter<String>,
    cooling: Mutex<HashMap<String, Cooling>>,
}

/// Usecases checked per round at most; the rest are due again at once.
const ROUND: i64 = 100;

impl Watcher {
    /// A watcher over these ports.
    pub fn new(
        bus: Arc<dyn CommandBus>,
        loader: Arc<dyn UsecaseLoader>,
        resolver: Arc<dyn ImageResolver>,
        store: Arc<dyn CheckStore>,
        settings: WatcherSettings,
    ) -> Self {
        let limiter = RateLimiter::keyed(Quota::per_minute(settings.checks_per_minute));
        Self {
            bus,
            loader,
            resolver,
            store,
            settings,
            limiter,
            cooling: Mutex::new(HashMap::new()),
        }
    }

    /// The pace it keeps.
    pub fn settings(&self) -> &WatcherSettings {
        &self.settings
    }

    /// Checks every usecase due now; returns how many were checked (those whose
    /// registry is cooling down or over its budget wait for a later round).
    #[instrument(skip(self))]
    pub async fn round(&self) -> Result<usize, AppError> {
        let now = Utc::now();
        let due = self.store.due(now, self.settings.interval, ROUND).await?;
        let mut checked = 0;
        for due in due {
            match self.check(due).await {
                Ok(true) => checked += 1,
                Ok(false) => {}
                Err(e) => {
                    warn!(usecase_id = %due.usecase_id, error = %e, "auto-update check failed")
                }
            }
        }
        Ok(checked)
    }

    /// Checks one usecase; `Ok(false)` when its registry may not be asked now.
    #[instrument(skip(self), fields(usecase_id = %due.usecase_id))]
    pub async fn check(&self, due: DueCheck) -> Result<bool, AppError> {
        let usecase = self.loader.load(due.usecase_id).await?;
        let check_id = Uuid::new_v4();
        let now = Utc::now().trunc_subsecs(6);
        let record = |tag: &str, outcome, message: String| CheckRecord {
            check_id,
            checked_at: now,
            trigger: due.trigger,
            tag: tag.to_owned(),
            digest: None,
            outcome,
            message,
            not_before: None,
        };
        let Some((serving_id, image)) = followed(&usecase) else {
            let why = if usecase.serving().is_some() {
                "the image is pinned by digest alone: there is no tag to follow"
            } else {
                "nothing serves: auto-update follows the serving deployment's tag"
            };
            self.store
                .record(
                    due.usecase_id,
                    &record("", CheckOutcome::Skipped, why.into()),
                )
                .await?;
            return Ok(true);
        };
        if !self.may_ask(&image.registry, now) {
            return Ok(false);
        }
        let result = self.look(&usecase, &image).await;
        let check = match result {
            Ok(None) => record(
                &image.tag,
                CheckOutcome::Skipped,
                format!(
                    "registry {} cannot be reached; the simulated mode leaves it alone",
                    image.registry
                ),
            ),
            Ok(Some(Look::NoTagInRange(range))) => record(
                &image.tag,
                CheckOutcome::Unchanged,
                format!("no tag of {} is a version in {range}", image.repository),
            ),
            Ok(Some(Look::Found { tag, digest })) => {
                let previous = self.previous_digest(&usecase, &image, &tag).await?;
                let seen = Seen {
                    tag,
                    digest,
                    previous,
                };
                let base = record(&seen.tag, CheckOutcome::Unchanged, String::new());
                self.settle(&usecase, serving_id, &image, seen, base)
                    .await?
            }
            Err(e) if e.rate_limited => {
                let until = self.cool(&image.registry, now);
                CheckRecord {
                    not_before: Some(until),
                    ..record(&image.tag, CheckOutcome::RateLimited, e.to_string())
                }
            }
            Err(e) => {
                self.warm(&image.registry);
                record(&image.tag, CheckOutcome::Failed, e.to_string())
            }
        };
        info!(outcome = check.outcome.as_str(), tag = %check.tag, message = %check.message, "auto-update check");
        self.store.record(due.usecase_id, &check).await?;
        Ok(true)
    }

    /// Whether `registry` may be asked now: not cooling down after a 429, and within its budget.
    fn may_ask(&self, registry: &str, now: DateTime<Utc>) -> bool {
        let cooling = self
            .cooling
            .lock()
            .map(|c| c.get(registry).is_some_and(|c| c.until > now))
            .unwrap_or(false);
        !cooling && self.limiter.check_key(&registry.to_owned()).is_ok()
    }

    /// Notes a 429 from `registry`; returns until when it is left alone.
    fn cool(&self, registry: &str, now: DateTime<Utc>) -> DateTime<Utc> {
        let Ok(mut cooling) = self.cooling.lock() else {
            return now;
        };
        let refusals = cooling.get(registry).map_or(0, |c| c.refusals) + 1;
        let wait = chrono::Duration::from_std(self.settings.backoff(refusals))
            .unwrap_or(chrono::Duration::hours(1));
        let until = now + wait;
        cooling.insert(registry.to_owned(), Cooling { refusals, until });
        warn!(%registry, refusals, %until, "registry answered 429; leaving it alone until then");
        until
    }

    /// `registry` answered without a 429: its refusals in a row are over.
    fn warm(&self, registry: &str) {
        if let Ok(mut cooling) = self.cooling.lock() {
            cooling.remove(registry);
        }
    }

    /// Asks the registry what the policy follows: the tag's digest, or the highest tag in range and its digest.
    async fn look(
        &self,
        usecase: &Usecase,
        image: &ImageRef,
    ) -> Result<Option<Look>, ResolveError> {
        let tag = match &usecase.auto_update.policy {
            UpdatePolicy::Digest => image.tag.clone(),
            UpdatePolicy::Semver { range } => {
                let Some(tags) = self.resolver.tags(image).await? else {
                    return Ok(None);
                };
                match range.highest(tags.iter().map(String::as_str)) {
                    Some(tag) => tag.to_owned(),
                    None => return Ok(Some(Look::NoTagInRange(range.to_string()))),
                }
            }
        };
        let target = ImageRef {
            tag: tag.clone(),
            digest: None,
            ..image.clone()
        };
        let digest = self.resolver.resolve(&target).await?;
        self.warm(&image.registry);
        Ok(digest.map(|digest| Look::Found { tag, digest }))
    }

    /// The digest the serving deployment runs; when it was never resolved, the one
    /// the last check saw for the same tag (the first check only takes note).
    async fn previous_digest(
        &self,
        usecase: &Usecase,
        image: &ImageRef,
        tag: &str,
    ) -> Result<Option<String>, AppError> {
        if image.digest.is_some() {
            return Ok(image.digest.clone());
        }
        let last = self.store.last(usecase.id).await?;
        Ok(last
            .filter(|c| c.tag == tag && image.tag == tag)
            .and_then(|c| c.digest))
    }

    /// Requests the update a look found, unless it is what runs; returns the check,
    /// made from `base` (which carries its id, time and trigger).
    async fn settle(
        &self,
        usecase: &Usecase,
        serving_id: Uuid,
        image: &ImageRef,
        seen: Seen,
        base: CheckRecord,
    ) -> Result<CheckRecord, AppError> {
        let Seen {
            tag,
            digest,
            previous,
        } = seen;
        let check = |outcome, message| CheckRecord {
            digest: Some(digest.clone()),
            outcome,
            message,
            ..base.clone()
        };
        let same_tag = tag == image.tag;
        match &previous {
            Some(previous) if same_tag && *previous == digest => {
                return Ok(check(
                    CheckOutcome::Unchanged,
                    format!("{tag} still names {digest}"),
                ));
            }
            None if same_tag => {
                return Ok(check(
                    CheckOutcome::Unchanged,
                    format!(
                        "{tag} names {digest}; the serving deployment's digest was not \
                         recorded, so this one is the baseline"
                    ),
                ));
            }
            _ => {}
        }
        let deployment_id = Uuid::new_v4();
        let command = UsecaseCommand::RequestAutoUpdate {
            deployment_id,
            found: FoundImage {
                check_id: base.check_id,
                trigger: base.trigger,
                expected: serving_id,
                tag: tag.clone(),
                digest: digest.clone(),
            },
            at: base.checked_at.trunc_subsecs(0),
        };
        let ctx = CommandContext {
            actor: AUTO_UPDATE.to_owned(),
            request_id: format!("auto-update-{}", base.check_id),
            causation: Some(Causation::Check(base.check_id)),
            reason: Some(format!(
                "{} moved: {tag}@{digest} (a {} check)",
                image.tag,
                base.trigger.as_str()
            )),
        };
        match self.bus.execute(usecase.id, command, &ctx).await {
            Ok(_) => {
                info!(%deployment_id, %tag, %digest, "auto-update requested a deployment");
                Ok(check(
                    CheckOutcome::Updated,
                    format!("deployment {deployment_id} runs {tag}@{digest}"),
                ))
            }
            Err(AppError::Conflict {
                kind: Conflict::InProgress,
                detail,
            }) => {
                let soon = self.settings.interval.min(Duration::from_secs(5));
                let soon = chrono::Duration::from_std(soon).unwrap_or(chrono::Duration::seconds(5));
                Ok(CheckRecord {
                    not_before: Some(base.checked_at + soon),
                    ..check(
                        CheckOutcome::Waiting,
                        format!("{tag}@{digest} is new; {detail}"),
                    )
                })
            }
            // Turned off, paused or superseded since it was loaded: the next check sees it.
            Err(AppError::Conflict { detail, .. }) => Ok(check(CheckOutcome::Skipped, detail)),
            Err(e) => Err(e),
        }
    }
}

/// What a look at the registry found, and what runs now.
struct Seen {
    /// The tag to run.
    tag: String,
    /// The digest it names.
    digest: String,
    /// The digest running (or last seen) for comparison.
    previous: Option<String>,
}

/// What the registry said a policy follows.
enum Look {
    /// The tag to run and the digest it names.
    Found { tag: String, digest: String },
    /// A `semver` policy found no tag in its range.
    NoTagInRange(String),
}

/// The serving deployment and the image it runs, when auto-update has a tag to follow.
fn followed(usecase: &Usecase) -> Option<(Uuid, ImageRef)> {
    let serving = usecase.serving()?;
    let image = serving.running_config().image;
    (!image.tag.is_empty()).then_some((serving.id, image))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_after_a_429_doubles_up_to_an_hour() {
        let settings = |interval| WatcherSettings {
            interval: Duration::from_secs(interval),
            checks_per_minute: NonZeroU32::MIN,
        };
        let waits: Vec<u64> = (1..=4).map(|n| settings(1).backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8]);
        assert_eq!(settings(300).backoff(1), Duration::from_secs(30));
        assert_eq!(settings(300).backoff(40), Duration::from_secs(3600));
    }

    #[test]
    fn outcomes_read_back_as_written() {
        for outcome in [
            CheckOutcome::Unchanged,
            CheckOutcome::Updated,
            CheckOutcome::Waiting,
            CheckOutcome::RateLimited,
            CheckOutcome::Failed,
            CheckOutcome::Skipped,
        ] {
            assert_eq!(CheckOutcome::parse(outcome.as_str()), Some(outcome));
        }
        assert_eq!(CheckOutcome::parse("maybe"), None);
    }
}

//! The audit trail's use cases: the ledger paged and filtered, a usecase's
//! history, live following, the state at an earlier instant, and the hash chain.

use crate::cursor::Cursor;
use crate::error::{AppError, Missing};
use crate::ledger::{ChainReport, EventFilter, FeedItem, Ledger, RecordedEvent, SealedEvent};
use crate::ports::{DeploymentView, Page, UsecaseView};
use crate::time_travel::{self, DeploymentAt};
use crate::usecases::page_size;
use chrono::{DateTime, Utc};
use futures_core::stream::BoxStream;
use shiplog_domain::events::EVENT_TYPES;
use shiplog_domain::InvalidField;
use shiplog_domain::{TEAM_EVENT_TYPES, TOKEN_EVENT_TYPES};
use std::sync::Arc;
use uuid::Uuid;

/// Reads the ledger for auditors and followers.
pub struct Audit {
    ledger: Arc<dyn Ledger>,
}

/// Parses a comma-separated list of event types (`DeploymentSucceeded,DeploymentFailed`);
/// an unknown type is invalid input naming `field`.
pub fn parse_types(raw: Option<&str>, field: &str) -> Result<Vec<String>, AppError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .map(|t| {
            // `types=` or `A,,B` names an empty type: the document's items are names.
            if t.is_empty() {
                return Err(InvalidField::new(
                    field,
                    "an empty event type; name the types comma-separated, or leave the parameter out for all",
                )
                .into());
            }
            if EVENT_TYPES.contains(&t)
                || TEAM_EVENT_TYPES.contains(&t)
                || TOKEN_EVENT_TYPES.contains(&t)
            {
                Ok(t.to_owned())
            } else {
                Err(InvalidField::new(
                    field,
                    format!(
                        "unknown event type {t:?}; known types: {}, {}, {}",
                        EVENT_TYPES.join(", "),
                        TEAM_EVENT_TYPES.join(", "),
                        TOKEN_EVENT_TYPES.join(", ")
                    ),
                )
                .into())
            }
        })
        .collect()
}

impl Audit {
    /// Reads through `ledger`.
    pub fn new(ledger: Arc<dyn Ledger>) -> Self {
        Self { ledger }
    }

    /// A page of the global ledger that passes `filter`, after `after`.
    pub async fn events(
        &self,
        filter: &EventFilter,
        after: Option<Cursor>,
        limit: Option<u32>,
    ) -> Result<Page<RecordedEvent>, AppError> {
        // `to` not after `from` is an empty interval: a page without events, as the
        // document allows any two instants (it cannot state that one follows the other).
        let limit = page_size(limit)?;
        let mut items = self
            .ledger
            .events(filter, after.unwrap_or(Cursor::START), limit + 1)
            .await?;
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|e| e.cursor.to_string())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// A page of one usecase's events in order; deleted usecases keep their history.
    pub async fn history(
        &self,
        usecase_id: Uuid,
        types: Vec<String>,
        after: Option<Cursor>,
        limit: Option<u32>,
    ) -> Result<Page<RecordedEvent>, AppError> {
        self.ensure_known(usecase_id).await?;
        let filter = EventFilter {
            usecase: Some(usecase_id),
            types,
            ..EventFilter::default()
        };
        self.events(&filter, after, limit).await
    }

    /// Replays events after `after` (none: from now on) that pass `filter`, then follows
    /// new ones. A usecase named in the filter must exist (or have existed).
    pub async fn follow(
        &self,
        filter: EventFilter,
        after: Option<Cursor>,
    ) -> Result<BoxStream<'static, FeedItem>, AppError> {
        if let Some(id) = filter.usecase {
            self.ensure_known(id).await?;
        }
        self.ledger.follow(after, filter).await
    }

    /// The usecase as it was at `at`, rebuilt from the events that decide it.
    pub async fn usecase_at(
        &self,
        usecase_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<UsecaseView, AppError> {
        time_travel::usecase_at(&*self.ledger, usecase_id, at)
            .await?
            .ok_or_else(|| {
                AppError::not_found(
                    Missing::Usecase,
                    format!("usecase {usecase_id} did not exist at {at}"),
                )
            })
    }

    /// One deployment as it was at `at`.
    pub async fn deployment_at(
        &self,
        usecase_id: Uuid,
        deployment_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<DeploymentView, AppError> {
        match time_travel::deployment_at(&*self.ledger, usecase_id, deployment_id, at).await? {
            DeploymentAt::Found(deployment) => Ok(*deployment),
            DeploymentAt::NoUsecase => Err(AppError::not_found(
                Missing::Usecase,
                format!("usecase {usecase_id} did not exist at {at}"),
            )),
            DeploymentAt::NoDeployment => Err(AppError::not_found(
                Missing::Deployment,
                format!("deployment {deployment_id} did not exist at {at}"),
            )),
        }
    }

    /// Recomputes the hash chain over the whole ledger.
    pub async fn verify(&self) -> Result<ChainReport, AppError> {
        self.ledger.verify().await
    }

    /// Every sealed event with its hashes, in chain order.
    pub fn export(&self) -> BoxStream<'static, Result<SealedEvent, AppError>> {
        self.ledger.export()
    }

    async fn ensure_known(&self, usecase_id: Uuid) -> Result<(), AppError> {
        if self.ledger.usecase_exists(usecase_id).await? {
            Ok(())
        } else {
            Err(AppError::not_found(
                Missing::Usecase,
                format!("usecase {usecase_id} not found"),
            ))
        }
    }
}

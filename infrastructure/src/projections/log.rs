//! Pages of the log as the projections read them: in the global order, decoded
//! while the rows stream in, with only what the read models take from each record.

use super::ProjectionError;
use crate::event_log::{cursor_from, VISIBLE};
use cqrs_es::Aggregate;
use futures::TryStreamExt;
use shiplog_application::read_models::{Fact, TeamFact};
use shiplog_application::Cursor;
use shiplog_domain::{Team, TeamEvent, Token, UsecaseEvent};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// A stored event decoded for the projections.
pub(crate) struct LoggedEvent {
    /// Its place in the global order.
    pub cursor: Cursor,
    /// Its number within its aggregate.
    pub sequence: i64,
    /// Who caused it ("system" when none was recorded).
    pub actor: String,
    /// The request it came from (empty when none was recorded).
    pub request_id: String,
    /// Why, when whoever asked said so.
    pub reason: Option<String>,
    /// What it is about.
    pub about: About,
}

/// A stored event as what it is about: a usecase, a team, or something no read
/// model takes in (a token's access).
// Held for one page at a time; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum About {
    /// A usecase's event (the aggregate id and the event).
    Usecase(Uuid, UsecaseEvent),
    /// A team's event.
    Team(Uuid, TeamEvent),
    /// An event no read model folds (a token's): passed over, and yet counted in the
    /// checkpoint, so that a page of them moves the projections on.
    Ignored,
}

/// A decoded event, borrowed as the fold takes it.
pub(crate) enum FactRef<'a> {
    /// A usecase's event.
    Usecase(Fact<'a>),
    /// A team's event.
    Team(TeamFact<'a>),
    /// An event no read model folds.
    Ignored,
}

impl LoggedEvent {
    /// The event as the fold takes it.
    pub fn fact(&self) -> FactRef<'_> {
        match &self.about {
            About::Usecase(usecase_id, event) => FactRef::Usecase(Fact {
                cursor: self.cursor,
                usecase_id: *usecase_id,
                sequence: self.sequence,
                actor: &self.actor,
                request_id: &self.request_id,
                reason: self.reason.as_deref(),
                event,
            }),
            About::Team(team_id, event) => FactRef::Team(TeamFact {
                cursor: self.cursor,
                team_id: *team_id,
                actor: &self.actor,
                event,
            }),
            About::Ignored => FactRef::Ignored,
        }
    }
}

/// Up to `limit` events after `after`, in global order, of transactions older than
/// every transaction still running (see `EventLog::read_after`): one query,
/// decoded as its rows arrive.
pub(crate) async fn read_page(
    conn: &mut PgConnection,
    after: Cursor,
    limit: usize,
) -> Result<Vec<LoggedEvent>, ProjectionError> {
    let query = format!(
        "SELECT transaction_id::text AS txid, position, aggregate_type, aggregate_id, sequence,
                event_type, payload::text AS payload, metadata::text AS metadata
           FROM events
          WHERE (transaction_id, position) > ($1::text::xid8, $2)
            AND {VISIBLE}
          ORDER BY transaction_id, position
          LIMIT $3"
    );
    let mut rows = sqlx::query(&query)
        .bind(after.transaction_id.to_string())
        .bind(after.position)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch(conn);
    let mut events = Vec::with_capacity(limit.min(100_000));
    while let Some(row) = rows.try_next().await? {
        events.push(decode(&row)?);
    }
    Ok(events)
}

fn decode(row: &PgRow) -> Result<LoggedEvent, ProjectionError> {
    let cursor = cursor_from(row)?;
    let aggregate_type: &str = row.try_get("aggregate_type")?;
    let aggregate_id: &str = row.try_get("aggregate_id")?;
    let event_type: &str = row.try_get("event_type")?;
    let payload: &str = row.try_get("payload")?;
    let metadata: &str = row.try_get("metadata")?;
    let invalid = |source| ProjectionError::Payload {
        cursor,
        event_type: event_type.to_owned(),
        source,
    };
    let uuid = || {
        aggregate_id
            .parse::<Uuid>()
            .map_err(|_| ProjectionError::AggregateId(cursor))
    };
    // The payload is checked before the id for a usecase, after it for a team.
    let about = if aggregate_type == Token::TYPE {
        About::Ignored
    } else if aggregate_type == Team::TYPE {
        let team_id = uuid()?;
        About::Team(team_id, serde_json::from_str(payload).map_err(invalid)?)
    } else {
        let event = serde_json::from_str(payload).map_err(invalid)?;
        About::Usecase(uuid()?, event)
    };
    let metadata: serde_json::Value = serde_json::from_str(metadata).map_err(invalid)?;
    let text = |key: &str| metadata.get(key).and_then(|v| v.as_str());
    Ok(LoggedEvent {
        cursor,
        sequence: row.try_get("sequence")?,
        actor: text("actor").unwrap_or("system").to_owned(),
        request_id: text("request_id").unwrap_or_default().to_owned(),
        reason: text("reason").map(str::to_owned),
        about,
    })
}

//! Tamper evidence for the events table: a hash chain over the global order
//! (`event_chain`, see `migrations/0006_event_chain.sql`).
//!
//! One sealer at a time (an advisory lock) appends a row per event in global
//! order, each hash covering the event and the previous hash
//! ([`shiplog_application::chain`]). [`verify`] recomputes the whole chain and
//! names the first place where it breaks; [`export_page`] gives the sealed
//! events with their hashes so that an auditor can recompute the chain outside
//! shiplog (`scripts/verify-export.py`).

use crate::event_log::{cursor_from, recorded_from, CursorColumns, EventLog, Wakeup};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use shiplog_application::chain::{chain_hash, GENESIS};
use shiplog_application::{ChainBreak, ChainReport, Cursor, RecordedEvent, SealedEvent};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool, Row};
use std::time::Duration;
use tracing::{debug, instrument, warn};

/// How many events one sealing transaction appends at most.
const BATCH: i64 = 500;
/// How often the sealer looks for new events when no notification arrives.
const POLL: Duration = Duration::from_millis(500);
/// The sealer's own advisory lock (the subscriptions use class `shiplog.subscription`).
const LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtext('shiplog.audit'), hashtext('event_chain'))";

/// Why the chain could not be sealed, verified or exported.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A stored row cannot be read as what it should be (a bug, or tampering
    /// that `verify` cannot express as a break of the chain).
    #[error("corrupt audit data: {0}")]
    Corrupt(String),
}

/// Appends every event, in global order, to the hash chain.
pub struct ChainSealer {
    pool: PgPool,
}

impl ChainSealer {
    /// A sealer over the events table of `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Seals new events until the task is dropped: woken by NOTIFY, and every
    /// half second anyway (an event becomes readable only once every older
    /// transaction has ended, which no notification announces). Failures are
    /// logged and the next round starts again from the chain's head.
    pub async fn run(self) {
        let mut wakeup = Wakeup::connect(&self.pool).await;
        loop {
            match self.seal_pending().await {
                Ok(0) => {}
                Ok(sealed) => debug!(sealed, "sealed events into the chain"),
                Err(e) => warn!(error = %e, "sealing the event chain failed; retrying"),
            }
            wakeup.wait(POLL).await;
        }
    }

    /// Seals every event readable now, in batches of 500, each in its own
    /// transaction. Safe to call from several processes at once: the advisory
    /// lock lets one batch through at a time and each starts from the head the
    /// previous one committed. Returns how many events were sealed.
    pub async fn seal_pending(&self) -> Result<u64, AuditError> {
        let mut total = 0;
        loop {
            let sealed = self.seal_batch().await?;
            total += sealed;
            if sealed < BATCH as u64 {
                return Ok(total);
            }
        }
    }

    #[instrument(skip(self))]
    async fn seal_batch(&self) -> Result<u64, AuditError> {
        let mut tx = self.pool.begin().await?;
        crate::db::derived_writes(&mut tx).await?;
        sqlx::query(LOCK).execute(&mut *tx).await?;
        let (mut index, mut prev, after, mut ledger_time) = match chain_head(&mut tx).await? {
            Some(head) => (
                head.chain_index,
                head.hash,
                head.cursor,
                Some(head.ledger_time),
            ),
            None => (0, GENESIS, Cursor::START, None),
        };
        let events = EventLog::read_after(&mut tx, after, BATCH).await?;
        let Some(last) = events.last().map(|e| e.cursor) else {
            return Ok(0);
        };
        // read_after does not return the aggregate type, which the hash covers.
        let types = aggregate_types(&mut tx, after, last).await?;
        if types.len() != events.len() {
            return Err(AuditError::Corrupt(format!(
                "{} events after {after} up to {last}, but {} aggregate types",
                events.len(),
                types.len()
            )));
        }

        let mut indexes = Vec::with_capacity(events.len());
        let mut txids = Vec::with_capacity(events.len());
        let mut positions = Vec::with_capacity(events.len());
        let mut prev_hashes = Vec::with_capacity(events.len());
        let mut hashes = Vec::with_capacity(events.len());
        let mut ledger_times = Vec::with_capacity(events.len());
        for (event, (cursor, aggregate_type)) in events.iter().zip(&types) {
            if *cursor != event.cursor {
                return Err(AuditError::Corrupt(format!(
                    "aggregate type read for {cursor}, expected {}",
                    event.cursor
                )));
            }
            index += 1;
            let hash = chain_hash(&prev, event, aggregate_type);
            indexes.push(index);
            txids.push(event.cursor.transaction_id.to_string());
            positions.push(event.cursor.position);
            prev_hashes.push(prev.to_vec());
            hashes.push(hash.to_vec());
            let time = ledger_time.map_or(event.recorded_at, |t| t.max(event.recorded_at));
            ledger_times.push(time);
            ledger_time = Some(time);
            prev = hash;
        }
        sqlx::query(
            "INSERT INTO event_chain (chain_index, transaction_id, position, prev_hash, hash, ledger_time)
             SELECT i, t::xid8, p, ph, h, lt
               FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bytea[], $5::bytea[], $6::timestamptz[])
                    AS u(i, t, p, ph, h, lt)",
        )
        .bind(&indexes)
        .bind(&txids)
        .bind(&positions)
        .bind(&prev_hashes)
        .bind(&hashes)
        .bind(&ledger_times)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        debug!(sealed = events.len(), head = index, %last, "sealed a batch");
        Ok(events.len() as u64)
    }
}

/// Recomputes the chain from its first row, streaming (constant memory), and
/// reports the first break in chain order:
/// - a missing `chain_index` (a chain row deleted),
/// - a `prev_hash` that is not the previous row's hash (a chain row rewritten),
/// - rows out of global order,
/// - a sealed event no longer in `events` (deleted),
/// - an event whose recomputed hash differs from the stored one (content altered),
/// - an event in `events` at or before the head that is not in the chain
///   (inserted behind the sealer's back), reported at the index it would displace.
///
/// `events` counts the rows verified before the break (all rows when none),
/// `head` is the stored hash of the last row, `unsealed` the events after it.
/// Everything is read in one snapshot, so a sealer running meanwhile does not
/// disturb the result. An empty chain is verified, with no head.
#[instrument(skip(pool))]
pub async fn verify(pool: &PgPool) -> Result<ChainReport, AuditError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let head = chain_head(&mut tx).await?;
    let after = head.as_ref().map_or(Cursor::START, |h| h.cursor);
    let unsealed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE (transaction_id, position) > ($1::text::xid8, $2)",
    )
    .bind(after.transaction_id.to_string())
    .bind(after.position)
    .fetch_one(&mut *tx)
    .await?;
    let unsealed = u64::try_from(unsealed).unwrap_or(0);
    let Some(head) = head else {
        return Ok(ChainReport {
            verified: true,
            events: 0,
            head: None,
            unsealed,
            broken_at: None,
        });
    };

    let inserted = first_unsealed_behind(&mut tx, head.cursor).await?;
    let stop_at = inserted.as_ref().map_or(i64::MAX, |b| b.chain_index);
    let mut checked = 0u64;
    let mut prev: Option<ChainRow> = None;
    let mut broken = None;
    let mut rows = sqlx::query(
        "SELECT c.chain_index, c.transaction_id::text AS txid, c.position, c.prev_hash, c.hash, c.ledger_time,
                e.position IS NOT NULL AS present, e.aggregate_type, e.aggregate_id, e.sequence,
                e.event_type, e.event_version, e.payload, e.metadata, e.recorded_at
           FROM event_chain c
           LEFT JOIN events e ON e.transaction_id = c.transaction_id AND e.position = c.position
          ORDER BY c.chain_index",
    )
    .fetch(&mut *tx);
    while let Some(row) = rows.try_next().await? {
        let expected = checked as i64 + 1;
        if expected >= stop_at {
            break;
        }
        let link = ChainRow::read(&row)?;
        if let Some(b) = check(&row, &link, expected, prev.as_ref()) {
            broken = Some(b);
            break;
        }
        checked += 1;
        prev = Some(link);
    }
    drop(rows);
    let broken_at = broken.or(inserted);
    Ok(ChainReport {
        verified: broken_at.is_none(),
        events: checked,
        head: Some(hex::encode(head.hash)),
        unsealed,
        broken_at,
    })
}

/// Up to `limit` sealed events after chain index `after_chain_index`, in chain
/// order, with their hashes. A sealed event that is no longer in the events
/// table is left out (the gap in `chain_index` is what the auditor's script
/// then reports), so a page is shorter than `limit` only at the end of the chain.
#[instrument(skip(pool))]
pub async fn export_page(
    pool: &PgPool,
    after_chain_index: i64,
    limit: i64,
) -> Result<Vec<SealedEvent>, AuditError> {
    let rows = sqlx::query(
        "SELECT c.chain_index, c.transaction_id::text AS txid, c.position, c.prev_hash, c.hash, c.ledger_time,
                e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version,
                e.payload, e.metadata, e.recorded_at
           FROM event_chain c
           JOIN events e ON e.transaction_id = c.transaction_id AND e.position = c.position
          WHERE c.chain_index > $1
          ORDER BY c.chain_index
          LIMIT $2",
    )
    .bind(after_chain_index)
    .bind(limit.max(0))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let link = ChainRow::read(row)?;
            let (aggregate_type, event) = stored_event(row).map_err(|e| {
                AuditError::Corrupt(format!(
                    "sealed event {} at chainIndex {} does not decode: {e}",
                    link.cursor, link.chain_index
                ))
            })?;
            Ok(SealedEvent {
                chain_index: link.chain_index,
                event,
                aggregate_type,
                prev_hash: link.prev_hash,
                hash: link.hash,
            })
        })
        .collect()
}

/// One row of `event_chain`.
struct ChainRow {
    chain_index: i64,
    cursor: Cursor,
    prev_hash: [u8; 32],
    hash: [u8; 32],
    /// The latest `recorded_at` up to this row: what time filters seek on.
    ledger_time: DateTime<Utc>,
}

impl ChainRow {
    /// Reads the columns `chain_index`, `txid`, `position`, `prev_hash`, `hash`, `ledger_time`.
    fn read(row: &PgRow) -> Result<Self, AuditError> {
        let chain_index: i64 = row.try_get("chain_index")?;
        let corrupt = |e: &dyn std::fmt::Display| {
            AuditError::Corrupt(format!("event_chain row {chain_index}: {e}"))
        };
        let hash32 = |column: &str| -> Result<[u8; 32], AuditError> {
            let bytes: Vec<u8> = row.try_get(column).map_err(|e| corrupt(&e))?;
            <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| corrupt(&format!("{column} is not 32 bytes")))
        };
        Ok(Self {
            chain_index,
            cursor: cursor_from(row).map_err(|e| corrupt(&e))?,
            prev_hash: hash32("prev_hash")?,
            hash: hash32("hash")?,
            ledger_time: row.try_get("ledger_time").map_err(|e| corrupt(&e))?,
        })
    }
}

/// The last row of the chain, if any.
async fn chain_head(conn: &mut PgConnection) -> Result<Option<ChainRow>, AuditError> {
    let row = sqlx::query(
        "SELECT chain_index, transaction_id::text AS txid, position, prev_hash, hash, ledger_time
           FROM event_chain ORDER BY chain_index DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(ChainRow::read).transpose()
}

/// The aggregate type of each event in `(after, last]`, in global order.
async fn aggregate_types(
    conn: &mut PgConnection,
    after: Cursor,
    last: Cursor,
) -> Result<Vec<(Cursor, String)>, AuditError> {
    /// An event's place and aggregate type.
    #[derive(FromRow)]
    struct Typed {
        #[sqlx(flatten)]
        at: CursorColumns,
        aggregate_type: String,
    }
    let rows: Vec<Typed> = sqlx::query_as(
        "SELECT transaction_id::text AS txid, position, aggregate_type FROM events
          WHERE (transaction_id, position) > ($1::text::xid8, $2)
            AND (transaction_id, position) <= ($3::text::xid8, $4)
          ORDER BY transaction_id, position",
    )
    .bind(after.transaction_id.to_string())
    .bind(after.position)
    .bind(last.transaction_id.to_string())
    .bind(last.position)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| Ok((row.at.cursor()?, row.aggregate_type)))
        .collect()
}

/// The first event at or before `head` that is not in the chain, reported at the
/// chain index of the first sealed event after it. The sealer only ever reads
/// events whose transactions have all ended, so a legitimate event can never
/// end up behind the head unsealed.
async fn first_unsealed_behind(
    conn: &mut PgConnection,
    head: Cursor,
) -> Result<Option<ChainBreak>, AuditError> {
    /// The first unsealed event and the chain index it displaced.
    #[derive(FromRow)]
    struct Unsealed {
        #[sqlx(flatten)]
        at: CursorColumns,
        aggregate_id: String,
        sequence: i64,
        displaced: Option<i64>,
    }
    let row: Option<Unsealed> = sqlx::query_as(
        "SELECT e.transaction_id::text AS txid, e.position, e.aggregate_id, e.sequence,
                (SELECT min(c.chain_index) FROM event_chain c
                  WHERE (c.transaction_id, c.position) > (e.transaction_id, e.position)) AS displaced
           FROM events e
          WHERE (e.transaction_id, e.position) <= ($1::text::xid8, $2)
            AND NOT EXISTS (SELECT 1 FROM event_chain c
                             WHERE c.transaction_id = e.transaction_id AND c.position = e.position)
          ORDER BY e.transaction_id, e.position
          LIMIT 1",
    )
    .bind(head.transaction_id.to_string())
    .bind(head.position)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let chain_index = row.displaced.unwrap_or(i64::MAX);
    Ok(Some(ChainBreak {
        chain_index,
        cursor: Some(row.at.cursor()?),
        usecase_id: Some(row.aggregate_id),
        sequence: Some(row.sequence),
        reason: format!(
            "an event that sorts before chainIndex {chain_index} is not in the chain \
             (inserted after sealing)"
        ),
    }))
}

/// The first thing wrong with chain row `link` (read from `row`), expected at
/// index `expected` after `prev`; `None` when it checks out.
fn check(
    row: &PgRow,
    link: &ChainRow,
    expected: i64,
    prev: Option<&ChainRow>,
) -> Option<ChainBreak> {
    let at = |cursor: Option<Cursor>, reason: String| ChainBreak {
        chain_index: expected,
        cursor,
        usecase_id: None,
        sequence: None,
        reason,
    };
    if link.chain_index != expected {
        return Some(at(
            None,
            format!(
                "chainIndex {expected} is missing from the chain (the next row is {})",
                link.chain_index
            ),
        ));
    }
    let prev_hash = prev.map_or(GENESIS, |p| p.hash);
    if link.prev_hash != prev_hash {
        return Some(at(
            Some(link.cursor),
            match prev {
                Some(_) => format!("prevHash is not the hash of chainIndex {}", expected - 1),
                None => "prevHash of the first event is not 32 zero bytes".to_owned(),
            },
        ));
    }
    if let Some(p) = prev.filter(|p| p.cursor >= link.cursor) {
        return Some(at(
            Some(link.cursor),
            format!("out of global order: it does not sort after {}", p.cursor),
        ));
    }
    if !row.try_get::<bool, _>("present").unwrap_or(false) {
        return Some(at(
            Some(link.cursor),
            "the sealed event is no longer in the events table (deleted)".to_owned(),
        ));
    }
    let (aggregate_type, event) = match stored_event(row) {
        Ok(decoded) => decoded,
        Err(e) => {
            return Some(at(
                Some(link.cursor),
                format!("the stored event no longer decodes: {e}"),
            ))
        }
    };
    if chain_hash(&link.prev_hash, &event, &aggregate_type) != link.hash {
        return Some(ChainBreak {
            usecase_id: Some(event.aggregate_id),
            sequence: Some(event.sequence),
            ..at(
                Some(link.cursor),
                "the event no longer matches its hash (altered after sealing)".to_owned(),
            )
        });
    }
    // Not hashed, but time filters rely on it: a lowered value would hide events from them.
    let running = prev.map_or(event.recorded_at, |p| p.ledger_time.max(event.recorded_at));
    if link.ledger_time != running {
        return Some(ChainBreak {
            usecase_id: Some(event.aggregate_id),
            sequence: Some(event.sequence),
            ..at(
                Some(link.cursor),
                "ledger_time is not the latest recordedAt up to this event (the time index was altered)"
                    .to_owned(),
            )
        });
    }
    None
}

/// The aggregate type and the event of a row holding the events columns (its
/// `txid` and `position` are the chain row's, which name the same event).
fn stored_event(row: &PgRow) -> Result<(String, RecordedEvent), sqlx::Error> {
    Ok((row.try_get("aggregate_type")?, recorded_from(row)?))
}

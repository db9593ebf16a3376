//! The batched projector against the per-event SQL it replaced: random event
//! sequences (every event type, outcomes in any order, references to other
//! usecases' deployments and to unknown ids, deletions, team events, odd
//! metadata) are appended round after round; the old statements apply them one
//! by one to copies of the tables in a schema of their own, and the projector's
//! live batches (small, so that page boundaries fall inside usecases' histories),
//! a read model that starts late, and rebuilds (with pages and a memory bound
//! small enough to write and forget rows midway) must give identical rows.

use super::per_event::{self, ProjectedEvent};
use super::{Projector, ProjectorLimits};
use crate::event_log::{EventLog, RecordedEvent};
use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::Aggregate;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use shiplog_application::Cursor;
use shiplog_domain::{
    CheckTrigger, DeploymentConfig, ImageRef, PolicyKind, Team, TeamEvent, TeamName, Tier,
    UpdateStrategy, UsecaseEvent, UsecaseName, VersionRange, Visibility,
};
use shiplog_testkit::{eventually, TestDb};
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The read models and the order their rows are compared in.
const VIEWS: [(&str, &str); 4] = [
    ("usecase_view", "id"),
    ("deployment_view", "id"),
    ("revision_view", "usecase_id, revision"),
    ("team_view", "id"),
];

/// One event to append: aggregate type and id, the payload and metadata as stored.
struct NewEvent {
    aggregate_type: &'static str,
    aggregate_id: Uuid,
    sequence: i64,
    event_type: &'static str,
    payload: String,
    metadata: Value,
}

struct Usecase {
    id: Uuid,
    sequence: i64,
    deleted: bool,
    deployments: Vec<Uuid>,
    restarts: Vec<Uuid>,
}

struct TeamState {
    id: Uuid,
    sequence: i64,
    tier: Tier,
}

/// Random, plausible ledgers: what the aggregates allow and a good deal they do
/// not (outcomes out of order, for unknown or foreign deployments), but never an
/// event the per-event SQL refuses (a duplicate id).
struct Ledger {
    rng: StdRng,
    usecases: Vec<Usecase>,
    teams: Vec<TeamState>,
    names: u64,
}

impl Ledger {
    fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            usecases: Vec::new(),
            teams: Vec::new(),
            names: 0,
        }
    }

    fn uuid(&mut self) -> Uuid {
        Uuid::from_u128(self.rng.gen())
    }

    fn name(&mut self, prefix: &str) -> String {
        self.names += 1;
        format!("{prefix}-{}-{}", self.names, self.rng.gen::<u32>())
    }

    /// A time with nanoseconds, which `timestamptz` cuts to microseconds.
    fn at(&mut self) -> DateTime<Utc> {
        let base = Utc
            .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
            .single()
            .unwrap_or_else(|| panic!("bad base time"));
        base + chrono::TimeDelta::seconds(self.rng.gen_range(0..1_000_000))
            + chrono::TimeDelta::nanoseconds(self.rng.gen_range(0..1_000_000_000))
    }

    fn metadata(&mut self) -> Value {
        let request_id = format!("req-{}", self.rng.gen::<u16>());
        match self.rng.gen_range(0..10) {
            0 => json!({}),
            1 => json!({"actor": 7, "request_id": request_id}),
            2 => json!({"actor": "alice"}),
            n => {
                let actor = ["alice", "bob", "process-manager", "o'brien \"q\""][n % 4];
                json!({"actor": actor, "request_id": request_id})
            }
        }
    }

    fn config(&mut self) -> DeploymentConfig {
        let tag = format!(
            "1.{}.{}",
            self.rng.gen_range(0..9),
            self.rng.gen_range(0..9)
        );
        let image = ImageRef::new("registry.example.com", "team/app", &tag)
            .unwrap_or_else(|e| panic!("{e}"));
        let env = BTreeMap::from([("MODE".to_owned(), tag.clone())]);
        DeploymentConfig::new(image, None, Some(8080), env, Some(1), None)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn env(&mut self) -> BTreeMap<String, String> {
        let names = ["A", "B_2", "with \"quotes\"", r"back\slash", "{x,y}", "ü"];
        names
            .iter()
            .filter(|_| self.rng.gen_bool(0.5))
            .map(|n| (n.to_string(), "v".to_owned()))
            .collect()
    }

    /// A deployment for an outcome: mostly the usecase's own, sometimes another
    /// usecase's or one nobody requested.
    fn deployment_of(&mut self, u: usize) -> Uuid {
        let roll = self.rng.gen_range(0..10);
        if roll == 0 {
            return self.uuid();
        }
        let owner = if roll == 1 {
            self.rng.gen_range(0..self.usecases.len())
        } else {
            u
        };
        match self.usecases[owner].deployments.choose(&mut self.rng) {
            Some(d) => *d,
            None => self.uuid(),
        }
    }

    fn restart_of(&mut self, u: usize) -> Uuid {
        let roll = self.rng.gen_range(0..10);
        if roll == 0 {
            return self.uuid();
        }
        let owner = if roll == 1 {
            self.rng.gen_range(0..self.usecases.len())
        } else {
            u
        };
        match self.usecases[owner].restarts.choose(&mut self.rng) {
            Some(r) => *r,
            None => self.uuid(),
        }
    }

    fn usecase_event(&mut self, u: usize, event: UsecaseEvent) -> NewEvent {
        self.usecases[u].sequence += 1;
        NewEvent {
            aggregate_type: "Usecase",
            aggregate_id: self.usecases[u].id,
            sequence: self.usecases[u].sequence,
            event_type: event.type_name(),
            payload: serde_json::to_string(&event).unwrap_or_else(|e| panic!("{e}")),
            metadata: self.metadata(),
        }
    }

    fn team_event(&mut self, t: usize, event: TeamEvent) -> NewEvent {
        self.teams[t].sequence += 1;
        NewEvent {
            aggregate_type: Team::TYPE,
            aggregate_id: self.teams[t].id,
            sequence: self.teams[t].sequence,
            event_type: event.type_name(),
            payload: serde_json::to_string(&event).unwrap_or_else(|e| panic!("{e}")),
            metadata: self.metadata(),
        }
    }

    fn register(&mut self) -> Vec<NewEvent> {
        let id = self.uuid();
        // Rarely, a payload id that is not the aggregate id: the row takes the payload's.
        let payload_id = if self.rng.gen_bool(0.05) {
            self.uuid()
        } else {
            id
        };
        let team = match self.teams.choose(&mut self.rng) {
            Some(t) if self.rng.gen_bool(0.4) => Some(t.id),
            _ => None,
        };
        let event = UsecaseEvent::UsecaseRegistered {
            usecase_id: payload_id,
            name: UsecaseName::parse(&self.name("uc")).unwrap_or_else(|e| panic!("{e}")),
            description: ["", "a chat app", "tab\tand\nnewline"][self.rng.gen_range(0..3)]
                .to_owned(),
            at: self.at(),
            template: self.rng.gen_bool(0.3).then(|| "nginx".to_owned()),
            visibility: match self.rng.gen_range(0..3) {
                0 => None,
                1 => Some(Visibility::Public),
                _ => Some(Visibility::Internal),
            },
            owner: self.rng.gen_bool(0.5).then(|| "owner-1".to_owned()),
            team,
        };
        self.usecases.push(Usecase {
            id,
            sequence: 0,
            deleted: false,
            deployments: Vec::new(),
            restarts: Vec::new(),
        });
        let u = self.usecases.len() - 1;
        vec![self.usecase_event(u, event)]
    }

    /// One command's events for a random live usecase (or a registration, or a team's).
    fn next(&mut self) -> Vec<NewEvent> {
        let live: Vec<usize> = (0..self.usecases.len())
            .filter(|u| !self.usecases[*u].deleted)
            .collect();
        let roll = self.rng.gen_range(0..100);
        if live.is_empty() || roll < 8 {
            return self.register();
        }
        if roll < 14 {
            return self.team();
        }
        let u = live[self.rng.gen_range(0..live.len())];
        let at = self.at();
        use UsecaseEvent as E;
        let event = match self.rng.gen_range(0..100) {
            0..=19 => {
                let deployment_id = self.uuid();
                self.usecases[u].deployments.push(deployment_id);
                let config = self.config();
                let requested = E::DeploymentRequested {
                    deployment_id,
                    config,
                    at,
                };
                let mut events = vec![self.usecase_event(u, requested)];
                // A config change or a rollback follows its request in the same commit.
                let based_on = self.deployment_of(u);
                let follow = match self.rng.gen_range(0..4) {
                    0 => Some(E::ConfigChangeRequested {
                        deployment_id,
                        based_on,
                        env: self.env(),
                        secret_env: Default::default(),
                        secret_refs: Vec::new(),
                        at,
                    }),
                    1 => Some(E::RollbackRequested {
                        deployment_id,
                        rollback_of: based_on,
                        at,
                    }),
                    _ => None,
                };
                if let Some(follow) = follow {
                    events.push(self.usecase_event(u, follow));
                }
                return events;
            }
            20..=29 => E::DeploymentStarted {
                deployment_id: self.deployment_of(u),
                at,
                // Every other start carries a resolved digest, which the views show.
                digest: self
                    .rng
                    .gen_bool(0.5)
                    .then(|| format!("sha256:{:064x}", self.rng.gen::<u64>())),
            },
            30..=39 => E::DeploymentSucceeded {
                deployment_id: self.deployment_of(u),
                at,
            },
            40..=44 => E::DeploymentFailed {
                deployment_id: self.deployment_of(u),
                message: format!("failed {}", self.rng.gen::<u8>()),
                at,
            },
            45..=51 => E::DeploymentSuperseded {
                deployment_id: self.deployment_of(u),
                superseded_by: self.deployment_of(u),
                at,
            },
            52..=55 => E::UndeployRequested {
                deployment_id: self.deployment_of(u),
                at,
            },
            56..=59 => E::DeploymentUndeployed {
                deployment_id: self.deployment_of(u),
                at,
            },
            60..=67 => {
                let restart_id = self.uuid();
                self.usecases[u].restarts.push(restart_id);
                E::RestartRequested {
                    restart_id,
                    deployment_id: self.deployment_of(u),
                    at,
                }
            }
            68..=73 => E::RestartSucceeded {
                restart_id: self.restart_of(u),
                deployment_id: self.deployment_of(u),
                at,
            },
            74..=78 => E::RestartFailed {
                restart_id: self.restart_of(u),
                deployment_id: self.deployment_of(u),
                message: format!("crashed {}", self.rng.gen::<u8>()),
                at,
            },
            79..=81 => E::ConfigChangeRequested {
                deployment_id: self.deployment_of(u),
                based_on: self.deployment_of(u),
                env: self.env(),
                secret_env: Default::default(),
                secret_refs: Vec::new(),
                at,
            },
            82..=84 => E::RollbackRequested {
                deployment_id: self.deployment_of(u),
                rollback_of: self.deployment_of(u),
                at,
            },
            85..=88 => {
                let semver = self.rng.gen_bool(0.5);
                E::AutoUpdateConfigured {
                    enabled: self.rng.gen_bool(0.5),
                    strategy: if self.rng.gen_bool(0.5) {
                        UpdateStrategy::Rolling
                    } else {
                        UpdateStrategy::Recreate
                    },
                    policy: if semver {
                        PolicyKind::Semver
                    } else {
                        PolicyKind::Digest
                    },
                    range: semver
                        .then(|| VersionRange::parse("range", "^1").ok())
                        .flatten(),
                    at,
                }
            }
            89 => E::AutoUpdatePaused {
                rollback: self.deployment_of(u),
                reason: format!("rolled back {}", self.rng.gen::<u8>()),
                at,
            },
            90 => E::AutoUpdateRequested {
                deployment_id: self.deployment_of(u),
                based_on: self.deployment_of(u),
                check_id: self.uuid(),
                trigger: CheckTrigger::Webhook,
                tag: "1.2.3".to_owned(),
                digest: format!("sha256:{}", "c".repeat(64)),
                previous_digest: None,
                at,
            },
            91..=94 => E::DeletionRequested { at },
            _ => {
                self.usecases[u].deleted = true;
                E::UsecaseDeleted { at }
            }
        };
        vec![self.usecase_event(u, event)]
    }

    fn team(&mut self) -> Vec<NewEvent> {
        let at = self.at();
        let tier = *Tier::ALL
            .choose(&mut self.rng)
            .unwrap_or_else(|| panic!("no tiers"));
        let name = TeamName::parse(&self.name("team")).unwrap_or_else(|e| panic!("{e}"));
        if self.teams.is_empty() || self.rng.gen_bool(0.3) {
            let team_id = self.uuid();
            self.teams.push(TeamState {
                id: team_id,
                sequence: 0,
                tier,
            });
            let t = self.teams.len() - 1;
            return vec![self.team_event(
                t,
                TeamEvent::TeamCreated {
                    team_id,
                    name,
                    tier,
                    at,
                },
            )];
        }
        let t = self.rng.gen_range(0..self.teams.len());
        let event = if self.rng.gen_bool(0.5) {
            TeamEvent::TeamRenamed {
                from: name.clone(),
                name,
                at,
            }
        } else {
            let from = self.teams[t].tier;
            self.teams[t].tier = tier;
            TeamEvent::TeamTierChanged { from, tier, at }
        };
        vec![self.team_event(t, event)]
    }
}

/// Appends `events` in transactions of a few commands each.
async fn append(pool: &PgPool, rng: &mut StdRng, commands: Vec<Vec<NewEvent>>) {
    let mut commands = commands.into_iter().peekable();
    while commands.peek().is_some() {
        let mut tx = pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
        for command in commands.by_ref().take(rng.gen_range(1..4)) {
            for e in command {
                sqlx::query(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                                         event_version, payload, metadata)
                     VALUES ($1, $2, $3, $4, '1.0', $5::json, $6::text::json)",
                )
                .bind(e.aggregate_type)
                .bind(e.aggregate_id.to_string())
                .bind(e.sequence)
                .bind(e.event_type)
                .bind(&e.payload)
                .bind(e.metadata.to_string())
                .execute(&mut *tx)
                .await
                .unwrap_or_else(|err| panic!("appending {}: {err}", e.event_type));
            }
        }
        tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Waits until every appended event is visible to readers of the global order: a
/// transaction of another test on the same server can hold them back for a moment,
/// and the oracle and the projector must read the same log.
async fn wait_visible(pool: &PgPool) {
    let hidden = format!(
        "SELECT count(*) FROM events WHERE NOT ({})",
        crate::event_log::VISIBLE
    );
    eventually("every appended event is visible", || async {
        let hidden: i64 = sqlx::query_scalar(&hidden)
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if hidden == 0 {
            Ok(())
        } else {
            Err(format!("{hidden} events hidden"))
        }
    })
    .await;
}

/// The per-event SQL, on the `oracle` schema's copies of the tables.
struct Oracle {
    conn: PgConnection,
    cursor: Cursor,
}

impl Oracle {
    async fn create(db: &TestDb) -> Self {
        let mut conn = PgConnection::connect(&db.url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("CREATE SCHEMA oracle")
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for (view, _) in VIEWS {
            sqlx::query(&format!(
                "CREATE TABLE oracle.{view} (LIKE public.{view} INCLUDING ALL)"
            ))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
        // Unqualified names find the copies first, and the events in public.
        sqlx::query("SET search_path = oracle, public")
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            conn,
            cursor: Cursor::START,
        }
    }

    /// Applies every event after its cursor, one statement at a time.
    async fn catch_up(&mut self) {
        let mut tx = self.conn.begin().await.unwrap_or_else(|e| panic!("{e}"));
        let events = EventLog::read_after(&mut tx, self.cursor, i64::MAX)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for raw in &events {
            apply_one(&mut tx, raw).await;
            self.cursor = raw.cursor;
        }
        tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    }
}

async fn apply_one(conn: &mut PgConnection, raw: &RecordedEvent) {
    let id: Uuid = raw.aggregate_id.parse().unwrap_or_else(|e| panic!("{e}"));
    if raw.aggregate_type == Team::TYPE {
        let event: TeamEvent =
            serde_json::from_value(raw.payload.clone()).unwrap_or_else(|e| panic!("{e}"));
        per_event::apply_team(conn, raw, id, &event)
            .await
            .unwrap_or_else(|e| panic!("oracle at {}: {e}", raw.cursor));
    } else {
        let event = ProjectedEvent {
            raw,
            usecase_id: id,
            event: serde_json::from_value(raw.payload.clone()).unwrap_or_else(|e| panic!("{e}")),
        };
        per_event::apply(conn, &event)
            .await
            .unwrap_or_else(|e| panic!("oracle at {}: {e}", raw.cursor));
    }
}

/// Every row of every read model in `schema`, table by table.
async fn snapshot(pool: &PgPool, schema: &str) -> Vec<Vec<Value>> {
    let mut tables = Vec::new();
    for (view, order) in VIEWS {
        let rows: Vec<Value> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(v) FROM {schema}.{view} v ORDER BY {order}"
        ))
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        tables.push(rows);
    }
    tables
}

async fn assert_same(pool: &PgPool, what: &str) {
    let oracle = snapshot(pool, "oracle").await;
    let batched = snapshot(pool, "public").await;
    for ((view, _), (want, got)) in VIEWS.iter().zip(oracle.iter().zip(&batched)) {
        assert_eq!(
            got.len(),
            want.len(),
            "{what}: {view} has {} rows, the per-event SQL {}",
            got.len(),
            want.len()
        );
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g, w, "{what}: a row of {view} differs");
        }
    }
}

/// Empties one read model and its checkpoint, as if it had just been added.
async fn reset(pool: &PgPool, view: &str) {
    let mut tx = pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('shiplog.subscription'), hashtext($1))")
        .bind(view)
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query(&format!("DELETE FROM {view}"))
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("DELETE FROM subscription_checkpoints WHERE name = $1")
        .bind(view)
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn batches_and_rebuilds_give_the_rows_of_the_per_event_sql() {
    for seed in 0..8u64 {
        // A database per seed keeps each log short enough to replay every round.
        let db = TestDb::create().await;
        let mut oracle = Oracle::create(&db).await;
        let mut ledger = Ledger::new(seed);
        let mut rng = StdRng::seed_from_u64(seed + 1000);
        for round in 0..4 {
            let what = |step: &str| format!("seed {seed}, round {round}: {step}");
            let commands: Vec<Vec<NewEvent>> =
                (0..rng.gen_range(10..60)).map(|_| ledger.next()).collect();
            append(&db.pool, &mut rng, commands).await;
            wait_visible(&db.pool).await;
            oracle.catch_up().await;

            // The live projector, in small batches.
            let page = rng.gen_range(1..9);
            Projector::with_limits(db.pool.clone(), ProjectorLimits::pages_of(page))
                .catch_up()
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", what("catch up")));
            assert_same(&db.pool, &what(&format!("live batches of {page}"))).await;

            // A read model that starts late catches up alone.
            let (view, _) = VIEWS[rng.gen_range(0..VIEWS.len())];
            reset(&db.pool, view).await;
            Projector::with_limits(db.pool.clone(), ProjectorLimits::pages_of(page + 3))
                .catch_up()
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", what("late catch up")));
            assert_same(&db.pool, &what(&format!("{view} starting late"))).await;

            // A rebuild in small pages that writes and forgets rows midway.
            let limits = ProjectorLimits {
                rebuild_page: rng.gen_range(3..40),
                rebuild_rows: rng.gen_range(0..60),
                ..ProjectorLimits::default()
            };
            Projector::with_limits(db.pool.clone(), limits)
                .rebuild()
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", what("rebuild")));
            assert_same(&db.pool, &what(&format!("rebuild with {limits:?}"))).await;
        }
        Projector::new(db.pool.clone())
            .rebuild()
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_same(&db.pool, &format!("seed {seed}: rebuild in one page")).await;
        drop(oracle);
    }
}

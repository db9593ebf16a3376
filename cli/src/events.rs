//! Ledger events as the client reads them (history pages and stream messages share one
//! shape), and the one-line human summary of each event type.

use serde::Deserialize;
use serde_json::Value;
use shiplog_wire::ledger::EventRecord;
use shiplog_wire::usecases::ImageBody;

/// One event of the ledger, as `GET …/history` and the event streams deliver it, with
/// what the command line reads of it.
#[derive(Debug)]
pub struct LedgerEvent {
    /// The event as the API sent it (what `--output json` prints).
    pub record: EventRecord,
}

impl LedgerEvent {
    /// Wraps an event the client read.
    pub fn new(record: EventRecord) -> Self {
        Self { record }
    }

    /// Its place in the global order; resume after it with `after` / `Last-Event-ID`.
    pub fn cursor(&self) -> &str {
        &self.record.cursor
    }

    /// The event type (`DeploymentSucceeded`).
    pub fn kind(&self) -> &str {
        &self.record.event_type
    }

    /// Who caused it.
    pub fn actor(&self) -> &str {
        &self.record.actor
    }

    /// Why, when whoever asked said so (`--reason`, `X-Shiplog-Reason`).
    pub fn reason(&self) -> Option<&str> {
        self.record.metadata.get("reason").and_then(Value::as_str)
    }

    /// The usecase it belongs to.
    pub fn usecase_id(&self) -> &str {
        &self.record.usecase_id
    }

    /// A field of the payload (`deploymentId`, `message`, …).
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.record
            .payload
            .get(&self.record.event_type)
            .and_then(|fields| fields.get(name))
    }

    /// A string field of the payload, or "" when it is missing.
    pub fn text(&self, name: &str) -> &str {
        self.field(name).and_then(Value::as_str).unwrap_or("")
    }

    /// A list of strings of the payload, comma-separated ("" when it is missing).
    pub fn list(&self, name: &str) -> String {
        self.field(name)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    }

    /// The request id recorded with the event (what the client sent as `x-request-id`).
    pub fn request_id(&self) -> Option<&str> {
        self.record
            .metadata
            .get("request_id")
            .and_then(Value::as_str)
    }

    /// A short human summary of what happened.
    pub fn summary(&self) -> String {
        let deployment = short(self.text("deploymentId"));
        match self.kind() {
            "UsecaseRegistered" => format!("registered as {:?}", self.text("name")),
            "DeploymentRequested" => {
                let image = self
                    .field("config")
                    .and_then(|c| c.get("image"))
                    .map(image_text)
                    .unwrap_or_default();
                let secrets = secret_names(self.field("config").and_then(|c| c.get("secretEnv")));
                format!("deployment {deployment} requested: {image}{secrets}")
            }
            "DeploymentStarted" => match self.field("digest").and_then(Value::as_str) {
                // The bytes it runs, whatever its tag names later.
                Some(digest) => format!("deployment {deployment} deploying {digest}"),
                None => format!("deployment {deployment} deploying"),
            },
            "DeploymentSucceeded" => format!("deployment {deployment} deployed"),
            "DeploymentFailed" => {
                format!("deployment {deployment} failed: {}", self.text("message"))
            }
            "DeploymentSuperseded" => format!(
                "deployment {deployment} superseded by {}",
                short(self.text("supersededBy"))
            ),
            "UndeployRequested" => format!("undeploy of deployment {deployment} requested"),
            "DeploymentUndeployed" => format!("deployment {deployment} undeployed"),
            "DeletionRequested" => "deletion requested: undeploy, then delete".to_owned(),
            "AutoUpdateConfigured" => {
                let enabled = self
                    .field("enabled")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false);
                let policy = match self.field("range").and_then(Value::as_str) {
                    Some(range) => format!("semver {range}"),
                    None => "digest".to_owned(),
                };
                format!(
                    "auto-update {}, strategy {}, policy {policy}",
                    if enabled { "on" } else { "off" },
                    self.text("strategy")
                )
            }
            "AutoUpdatePaused" => format!("auto-update paused: {}", self.text("reason")),
            "AutoUpdateRequested" => format!(
                "new image {}@{} as deployment {deployment} (based on {}, a {} check)",
                self.text("tag"),
                self.text("digest"),
                short(self.text("basedOn")),
                self.text("trigger")
            ),
            "UsecaseDeleted" => "usecase deleted".to_owned(),
            "RestartRequested" => format!(
                "restart {} of deployment {deployment} requested",
                short(self.text("restartId"))
            ),
            "RestartSucceeded" => format!("restart {} succeeded", short(self.text("restartId"))),
            "RestartFailed" => format!(
                "restart {} failed: {}",
                short(self.text("restartId")),
                self.text("message")
            ),
            "ConfigChangeRequested" => {
                // Names only: values may be secrets, and the history is for everyone with read access.
                let names: Vec<&str> = self
                    .field("env")
                    .and_then(Value::as_object)
                    .map(|env| env.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                format!(
                    "config change as deployment {deployment} (based on {}): env {}{}",
                    short(self.text("basedOn")),
                    if names.is_empty() {
                        "empty".to_owned()
                    } else {
                        names.join(", ")
                    },
                    secret_names(self.field("secretEnv"))
                )
            }
            "RollbackRequested" => format!(
                "rollback of {} as deployment {deployment}",
                short(self.text("rollbackOf"))
            ),
            "TeamCreated" => format!(
                "team {:?} created, tier {}",
                self.text("name"),
                self.text("tier")
            ),
            "TeamRenamed" => format!(
                "team renamed from {:?} to {:?}",
                self.text("from"),
                self.text("name")
            ),
            "TeamTierChanged" => format!(
                "tier changed from {} to {}",
                self.text("from"),
                self.text("tier")
            ),
            "TokenCreated" => {
                let expires = match self.text("expiresAt") {
                    "" => String::new(),
                    at => format!(", expires {}", display_time(at)),
                };
                format!(
                    "token {:?} created for {:?}, scopes {}{expires}",
                    self.text("name"),
                    self.text("subject"),
                    self.list("scopes")
                )
            }
            "TokenScopesChanged" => format!(
                "token {:?} scopes changed from {} to {}",
                self.text("name"),
                self.list("from"),
                self.list("scopes")
            ),
            "TokenRevoked" => format!("token {:?} revoked", self.text("name")),
            _ => String::new(),
        }
    }

    /// `recordedAt` for a table: seconds precision, UTC.
    pub fn time(&self) -> String {
        display_time(&self.record.recorded_at)
    }
}

/// An RFC 3339 instant as `2026-11-23 10:00:00` (UTC); anything else as it is.
pub fn display_time(value: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| value.to_owned())
}

/// A typed instant as `display_time` shows one: `2026-11-23 10:00:00` (UTC).
pub fn display_instant(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The first 8 characters of an id and an ellipsis: enough to tell deployments apart.
pub fn short(id: &str) -> String {
    match id.char_indices().nth(8) {
        Some((end, _)) => format!("{}…", &id[..end]),
        None => id.to_owned(),
    }
}

/// An image as `registry/repository:tag[@digest]` (a digest alone, with an empty tag,
/// as `registry/repository@digest`).
pub fn image_body_text(image: &ImageBody) -> String {
    let mut text = format!("{}/{}", image.registry, image.repository);
    if !(image.tag.is_empty() && image.digest.is_some()) {
        text.push(':');
        text.push_str(&image.tag);
    }
    if let Some(digest) = &image.digest {
        text.push('@');
        text.push_str(digest);
    }
    text
}

/// An image in an event's payload (`{"registry","repository","tag","digest"?}`), as
/// `image_body_text` writes it; `?` when the payload holds no image of that shape.
pub fn image_text(image: &Value) -> String {
    ImageBody::deserialize(image)
        .map(|image| image_body_text(&image))
        .unwrap_or_else(|_| "?".to_owned())
}

/// `, secret NAME (key FINGERPRINT), …` for the sealed values of a `secretEnv` map:
/// names and key fingerprints only, never ciphertext; empty when there are none.
fn secret_names(secret_env: Option<&Value>) -> String {
    let Some(map) = secret_env
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
    else {
        return String::new();
    };
    let names: Vec<String> = map
        .iter()
        .map(|(name, sealed)| {
            let key = sealed.get("key").and_then(Value::as_str).unwrap_or("?");
            format!("{name} (key {key})")
        })
        .collect();
    format!(", secret {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, fields: Value) -> LedgerEvent {
        serde_json::from_value(json!({
            "cursor": "00000000000002f1000000000000002a",
            "aggregateType": "Usecase",
            "usecaseId": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "sequence": 2, "type": kind, "version": "1.0",
            "recordedAt": "2026-11-23T10:00:00.123456Z", "actor": "ci",
            "payload": {kind: fields},
            "metadata": {"actor": "ci", "request_id": "req-1"},
        }))
        .map(LedgerEvent::new)
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn each_event_type_has_a_short_summary() {
        let d = "1a2b3c4d-0000-0000-0000-000000000000";
        let e = "5e6f7a8b-0000-0000-0000-000000000000";
        let cases = [
            (
                event(
                    "TeamTierChanged",
                    json!({"from": "free", "tier": "business"}),
                ),
                "tier changed from free to business",
            ),
            (
                event(
                    "AutoUpdateConfigured",
                    json!({"enabled": true, "strategy": "recreate"}),
                ),
                "auto-update on, strategy recreate, policy digest",
            ),
            (
                event(
                    "DeploymentRequested",
                    json!({"deploymentId": d, "config": {"image": {"registry": "r.example", "repository": "team/app", "tag": "1.0"}}}),
                ),
                "deployment 1a2b3c4d… requested: r.example/team/app:1.0",
            ),
            (
                event("DeploymentStarted", json!({"deploymentId": d})),
                "deployment 1a2b3c4d… deploying",
            ),
            (
                event(
                    "DeploymentStarted",
                    json!({"deploymentId": d, "digest": "sha256:ab"}),
                ),
                "deployment 1a2b3c4d… deploying sha256:ab",
            ),
            (
                event("DeploymentSucceeded", json!({"deploymentId": d})),
                "deployment 1a2b3c4d… deployed",
            ),
            (
                event(
                    "DeploymentFailed",
                    json!({"deploymentId": d, "message": "ImagePullBackOff"}),
                ),
                "deployment 1a2b3c4d… failed: ImagePullBackOff",
            ),
            (
                event(
                    "DeploymentSuperseded",
                    json!({"deploymentId": d, "supersededBy": e}),
                ),
                "deployment 1a2b3c4d… superseded by 5e6f7a8b…",
            ),
            (
                event(
                    "RestartRequested",
                    json!({"deploymentId": d, "restartId": e}),
                ),
                "restart 5e6f7a8b… of deployment 1a2b3c4d… requested",
            ),
            (
                event(
                    "RollbackRequested",
                    json!({"deploymentId": e, "rollbackOf": d}),
                ),
                "rollback of 1a2b3c4d… as deployment 5e6f7a8b…",
            ),
            (
                event(
                    "ConfigChangeRequested",
                    json!({"deploymentId": e, "basedOn": d, "env": {"SECRET": "hunter2", "A": "1"}}),
                ),
                "config change as deployment 5e6f7a8b… (based on 1a2b3c4d…): env A, SECRET",
            ),
        ];
        for (event, expected) in cases {
            assert_eq!(event.summary(), expected, "{}", event.kind());
        }
    }

    #[test]
    fn images_show_their_digest_when_pinned() {
        let cases = [
            (
                "a tag",
                json!({"registry": "r.example", "repository": "app", "tag": "1"}),
                "r.example/app:1",
            ),
            (
                "a tag and a digest",
                json!({"registry": "r.example", "repository": "app", "tag": "1", "digest": "sha256:ab"}),
                "r.example/app:1@sha256:ab",
            ),
            (
                "a digest alone",
                json!({"registry": "r.example", "repository": "app", "tag": "", "digest": "sha256:ab"}),
                "r.example/app@sha256:ab",
            ),
        ];
        for (description, image, expected) in cases {
            assert_eq!(image_text(&image), expected, "{description}");
        }
    }

    #[test]
    fn events_carry_their_request_id_and_time() {
        let e = event("UsecaseDeleted", json!({"at": "2026-11-23T10:00:00Z"}));
        assert_eq!(e.request_id(), Some("req-1"));
        assert_eq!(e.time(), "2026-11-23 10:00:00");
    }
}

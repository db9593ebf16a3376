//! The core v1 Events the controllers record, as kube-apiserver stores them: one per involved
//! object, reason and message, a repeat counted up in `count` (the client-go event
//! recorder's aggregation, simplified).

use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Value};

use super::{Controllers, NODE_NAME};
use crate::json::str_at;
use crate::resources::EVENTS;
use crate::store::{now_time, object_key, Store};

/// The component the kubelet reports as.
pub(super) const KUBELET: &str = "kubelet";
/// The component the scheduler reports as.
pub(super) const SCHEDULER: &str = "default-scheduler";
/// The component the deployment controller reports as.
pub(super) const DEPLOYMENT_CONTROLLER: &str = "deployment-controller";

/// One Event as a controller reports it.
pub(super) struct Event<'a> {
    /// Whether it is a `Warning` (else `Normal`).
    warning: bool,
    /// Who reports it: [`KUBELET`], [`SCHEDULER`] or [`DEPLOYMENT_CONTROLLER`].
    component: &'static str,
    /// Its `reason`, e.g. `Pulled`.
    reason: &'a str,
    /// Its `message`.
    message: &'a str,
}

impl<'a> Event<'a> {
    /// A `Normal` Event.
    pub(super) fn normal(component: &'static str, reason: &'a str, message: &'a str) -> Self {
        Event {
            warning: false,
            component,
            reason,
            message,
        }
    }

    /// A `Warning` Event.
    pub(super) fn warning(component: &'static str, reason: &'a str, message: &'a str) -> Self {
        Event {
            warning: true,
            component,
            reason,
            message,
        }
    }
}

impl Controllers {
    /// Records `event` about `involved`, folding a repeat into its `count`.
    pub(super) fn emit_event(&mut self, store: &mut Store, involved: &Value, event: Event<'_>) {
        let Event {
            warning,
            component,
            reason,
            message,
        } = event;
        let (ns, name) = object_key(involved);
        let uid = str_at(involved, "/metadata/uid").to_string();
        let now = now_time();
        let is_repeat = |e: &Arc<Value>| {
            str_at(e, "/involvedObject/uid") == uid
                && str_at(e, "/reason") == reason
                && str_at(e, "/message") == message
        };
        // The index of involved objects has no entry for an object without a uid.
        let candidates = if uid.is_empty() {
            store.list(&EVENTS, Some(&ns))
        } else {
            store.referring(&EVENTS, &ns, &uid)
        };
        let repeat = candidates.into_iter().find(is_repeat);
        if let Some(prev) = repeat {
            let mut ev = (*prev).clone();
            let count = ev.get("count").and_then(Value::as_i64).unwrap_or(1) + 1;
            if let Some(map) = ev.as_object_mut() {
                map.insert("count".into(), json!(count));
                map.insert("lastTimestamp".into(), json!(now));
            }
            store.put(&EVENTS, ev, self);
            return;
        }
        self.event_seq += 1;
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or(0).unsigned_abs();
        let host = if component == KUBELET { NODE_NAME } else { "" };
        let event = json!({
            "metadata": { "name": format!("{name}.{:x}", nanos.wrapping_add(self.event_seq)), "namespace": ns },
            "involvedObject": {
                "kind": str_at(involved, "/kind"),
                "namespace": ns,
                "name": name,
                "uid": uid,
                "apiVersion": str_at(involved, "/apiVersion"),
                "resourceVersion": str_at(involved, "/metadata/resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "source": { "component": component, "host": host },
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": if warning { "Warning" } else { "Normal" },
            "eventTime": null,
            "reportingComponent": component,
            "reportingInstance": host,
        });
        store.insert_new(&EVENTS, event, self);
    }
}

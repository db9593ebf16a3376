//! How a Deployment replaces its pods: `spec.strategy` with `maxSurge`/`maxUnavailable`
//! resolved against the replica count as the deployment controller resolves them (defaulted
//! and validated by the store, `store::strategy`), and the scaling steps of a rolling update
//! or a recreate.
//!
//! The simulator has no ReplicaSet objects: the pods of one template (one
//! `pod-template-hash`) stand for one ReplicaSet, and a ReplicaSet's replica count is its
//! number of pods (pods are created and deleted at once). The steps are those of the real
//! controller (`rolloutRolling` and `rolloutRecreate` in kubernetes/pkg/controller/deployment):
//! scale the new ReplicaSet up within `replicas + maxSurge` pods, scale the old ones down
//! (unready pods first) only while `replicas - maxUnavailable` pods stay Ready, one step at a
//! time until there is nothing left to do until a pod becomes Ready.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::events::{Event, DEPLOYMENT_CONTROLLER};
use super::{pod_ready, Controllers};
use crate::json::str_at;
use crate::resources::PODS;
use crate::store::strategy::{scaled_value, DEFAULT_FENCEPOST, RECREATE};
use crate::store::{object_key, Store};

/// Most scaling steps one reconcile takes (each step is bounded; this only guards the loop).
const MAX_STEPS: usize = 64;

/// A Deployment's strategy, resolved against its desired replica count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strategy {
    /// Delete every old pod, then create the new ones.
    Recreate,
    /// Replace pods a few at a time.
    RollingUpdate {
        /// How many pods above `replicas` may exist during the update.
        max_surge: i64,
        /// How many pods below `replicas` may be unready during the update.
        max_unavailable: i64,
    },
}

impl Strategy {
    /// The strategy of a deployment `spec` with `desired` replicas, as the controller's
    /// `ResolveFenceposts` and `MaxUnavailable` compute it: `maxSurge` rounds up and
    /// `maxUnavailable` down; if both come to 0, `maxUnavailable` is 1; `maxUnavailable` is at
    /// most `desired` (0 when `desired` is 0). Values validation would refuse count as 0.
    pub fn of(spec: &Value, desired: i64) -> Strategy {
        if str_at(spec, "/strategy/type") == RECREATE {
            return Strategy::Recreate;
        }
        let desired = desired.max(0);
        let default = json!(DEFAULT_FENCEPOST);
        let field = |name: &str| {
            spec.pointer(&format!("/strategy/rollingUpdate/{name}"))
                .filter(|v| !v.is_null())
                .unwrap_or(&default)
        };
        let max_surge = scaled_value(field("maxSurge"), desired, true)
            .unwrap_or(0)
            .max(0);
        let mut max_unavailable = scaled_value(field("maxUnavailable"), desired, false)
            .unwrap_or(0)
            .max(0);
        if max_surge == 0 && max_unavailable == 0 {
            // Validation refuses both 0, but rounding down can still get there (e.g. 10% of
            // 2); the controller then allows one unavailable pod rather than no progress.
            max_unavailable = 1;
        }
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable: max_unavailable.min(desired),
        }
    }

    /// How many of the desired replicas may be unavailable (0 for Recreate), for the
    /// `Available` condition and the scale-down limit.
    pub fn max_unavailable(self) -> i64 {
        match self {
            Strategy::Recreate => 0,
            Strategy::RollingUpdate {
                max_unavailable, ..
            } => max_unavailable,
        }
    }
}

/// The pods of one template, standing for one ReplicaSet.
struct PodSet {
    hash: String,
    pods: Vec<Arc<Value>>,
}

impl PodSet {
    fn count(&self) -> i64 {
        i64::try_from(self.pods.len()).unwrap_or(i64::MAX)
    }

    fn ready(&self) -> i64 {
        i64::try_from(self.pods.iter().filter(|p| pod_ready(p)).count()).unwrap_or(i64::MAX)
    }
}

/// What one reconcile scales toward: the Deployment, its current template hash, its desired
/// replicas and strategy, and the revision each template hash last had (to order the old
/// ReplicaSets oldest first).
pub(super) struct Target<'a> {
    pub dep: &'a Value,
    pub uid: &'a str,
    pub hash: &'a str,
    pub desired: i64,
    pub strategy: Strategy,
    pub revisions: &'a BTreeMap<String, u64>,
}

/// The pods of the deployment as the new ReplicaSet and the old ones (oldest first).
fn pod_sets(store: &Store, target: &Target<'_>) -> (PodSet, Vec<PodSet>) {
    let (ns, _) = object_key(target.dep);
    let mut new = PodSet {
        hash: target.hash.to_string(),
        pods: Vec::new(),
    };
    let mut old: BTreeMap<String, Vec<Arc<Value>>> = BTreeMap::new();
    for pod in store.owned_pods(&ns, target.uid) {
        let hash = str_at(&pod, "/metadata/labels/pod-template-hash");
        if hash == target.hash {
            new.pods.push(pod);
        } else {
            old.entry(hash.to_string()).or_default().push(pod);
        }
    }
    let mut old: Vec<PodSet> = old
        .into_iter()
        .map(|(hash, pods)| PodSet { hash, pods })
        .collect();
    old.sort_by_key(|set| target.revisions.get(&set.hash).copied().unwrap_or(0));
    (new, old)
}

impl Controllers {
    /// Scales a deployment's pods toward its template and replica count as far as its
    /// strategy allows right now, one controller step at a time.
    pub(super) fn roll(&mut self, store: &mut Store, target: &Target<'_>) {
        for _ in 0..MAX_STEPS {
            if !self.rollout_step(store, target) {
                return;
            }
        }
    }

    /// One step of `rolloutRecreate` or `rolloutRolling`; whether it scaled anything.
    fn rollout_step(&mut self, store: &mut Store, target: &Target<'_>) -> bool {
        let (new, old) = pod_sets(store, target);
        let old_count: i64 = old.iter().map(PodSet::count).sum();
        let desired = target.desired;
        let Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        } = target.strategy
        else {
            // Recreate: every old pod goes before a new one is created.
            if old_count > 0 {
                for set in &old {
                    self.scale_set(store, target, set, 0);
                }
                return true;
            }
            if new.count() != desired {
                self.scale_set(store, target, &new, desired);
                return true;
            }
            return false;
        };

        // The new ReplicaSet: down to `replicas` at most, up within the surge.
        let total = new.count() + old_count;
        if new.count() > desired {
            self.scale_set(store, target, &new, desired);
            return true;
        }
        if new.count() < desired {
            let room = (desired + max_surge - total).min(desired - new.count());
            if room > 0 {
                self.scale_set(store, target, &new, new.count() + room);
                return true;
            }
        }

        // The old ones: only as far as the Ready pods allow.
        if old_count == 0 {
            return false;
        }
        let min_available = desired - max_unavailable;
        let new_unavailable = new.count() - new.ready();
        let mut budget = total - min_available - new_unavailable;
        if budget <= 0 {
            return false;
        }
        let mut scaled = false;
        // Unready old pods first: they serve nothing and would block the rollout.
        for set in &old {
            let unready = (set.count() - set.ready()).min(budget);
            if unready > 0 {
                self.scale_set(store, target, set, set.count() - unready);
                budget -= unready;
                scaled = true;
            }
            if budget == 0 {
                break;
            }
        }
        if scaled {
            return true;
        }
        let available = new.ready() + old.iter().map(PodSet::ready).sum::<i64>();
        let mut excess = available - min_available;
        for set in &old {
            if excess <= 0 {
                break;
            }
            let down = set.count().min(excess);
            if down > 0 {
                self.scale_set(store, target, set, set.count() - down);
                excess -= down;
                scaled = true;
            }
        }
        scaled
    }

    /// Scales one ReplicaSet to `to` pods: creates pods of the current template, or deletes
    /// pods as the ReplicaSet controller picks them (unready first, then the newest); records
    /// the `ScalingReplicaSet` event.
    fn scale_set(&mut self, store: &mut Store, target: &Target<'_>, set: &PodSet, to: i64) {
        let from = set.count();
        let (_, dep_name) = object_key(target.dep);
        let direction = if to > from {
            // Only the current template's ReplicaSet ever scales up.
            for _ in from..to {
                self.create_deployment_pod(store, target.dep, &set.hash);
            }
            "up"
        } else if to < from {
            let mut victims = set.pods.clone();
            victims.sort_by_key(|p| {
                (
                    pod_ready(p),
                    std::cmp::Reverse(str_at(p, "/metadata/creationTimestamp").to_string()),
                )
            });
            for p in victims
                .into_iter()
                .take(usize::try_from(from - to).unwrap_or(0))
            {
                let (pns, pname) = object_key(&p);
                store.remove(&PODS, &pns, &pname, true, self);
            }
            "down"
        } else {
            return;
        };
        let message = format!(
            "Scaled {direction} replica set {dep_name}-{} from {from} to {to}",
            set.hash
        );
        let event = Event::normal(DEPLOYMENT_CONTROLLER, "ScalingReplicaSet", &message);
        self.emit_event(store, target.dep, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(strategy: Value) -> Value {
        json!({ "strategy": strategy })
    }

    fn rolling(surge: Value, unavailable: Value) -> Value {
        spec(json!({
            "type": "RollingUpdate",
            "rollingUpdate": { "maxSurge": surge, "maxUnavailable": unavailable }
        }))
    }

    #[test]
    fn percentages_round_as_kubernetes_does() {
        // (description, maxSurge, maxUnavailable, replicas, expected surge, expected unavailable)
        let cases = [
            ("defaults, 1 replica", json!("25%"), json!("25%"), 1, 1, 0),
            ("defaults, 2 replicas", json!("25%"), json!("25%"), 2, 1, 0),
            ("defaults, 4 replicas", json!("25%"), json!("25%"), 4, 1, 1),
            ("defaults, 5 replicas", json!("25%"), json!("25%"), 5, 2, 1),
            (
                "defaults, 10 replicas",
                json!("25%"),
                json!("25%"),
                10,
                3,
                2,
            ),
            ("30%/30% of 3", json!("30%"), json!("30%"), 3, 1, 0),
            ("100%/0%", json!("100%"), json!("0%"), 3, 3, 0),
            ("integers as they are", json!(2), json!(1), 3, 2, 1),
            (
                "both round to 0: one unavailable",
                json!(0),
                json!("10%"),
                2,
                0,
                1,
            ),
            (
                "unavailable capped at replicas",
                json!(0),
                json!(5),
                3,
                0,
                3,
            ),
            (
                "no replicas: nothing unavailable",
                json!("25%"),
                json!("25%"),
                0,
                0,
                0,
            ),
        ];
        for (what, surge, unavailable, replicas, want_surge, want_unavailable) in cases {
            let got = Strategy::of(&rolling(surge, unavailable), replicas);
            assert_eq!(
                got,
                Strategy::RollingUpdate {
                    max_surge: want_surge,
                    max_unavailable: want_unavailable
                },
                "{what}"
            );
        }
        assert_eq!(
            Strategy::of(&spec(json!({ "type": "Recreate" })), 3),
            Strategy::Recreate
        );
        assert_eq!(Strategy::Recreate.max_unavailable(), 0);
        // A spec without a strategy (never stored: defaulting adds one) reads as the default.
        assert_eq!(
            Strategy::of(&json!({}), 4),
            Strategy::RollingUpdate {
                max_surge: 1,
                max_unavailable: 1
            }
        );
    }
}

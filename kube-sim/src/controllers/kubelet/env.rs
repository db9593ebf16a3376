//! A container's environment as the kubelet builds it when it starts the container (the API
//! server's validation of it is `store::validate`'s): `envFrom` sources first (later ones
//! override earlier ones), then `env` entries, each overriding what came before.
//!
//! Secrets are read from the store at that moment: a running container keeps the values it
//! started with. ConfigMaps are not served, so a `configMapRef` or `configMapKeyRef` is
//! "not found" unless optional. `fieldRef` resolves the pod's own fields; `resourceFieldRef`
//! and `$(VAR)` expansion are not simulated (such a variable is left out or kept verbatim).
//! Values are never logged.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::json::str_at;
use crate::resources::SECRETS;
use crate::store::Store;

/// A container's variables by name, as its process would see them.
pub(crate) type Env = BTreeMap<String, String>;

/// Whether a reference is marked `optional: true` (a missing source is then skipped).
fn optional(reference: &Value) -> bool {
    reference.get("optional").and_then(Value::as_bool) == Some(true)
}

/// A Secret's data, decoded, or the kubelet's error when it does not exist.
fn secret_data(store: &Store, ns: &str, name: &str) -> Result<Option<Env>, String> {
    let Some(secret) = store.get(&SECRETS, ns, name) else {
        return Ok(None);
    };
    let data = secret.get("data").and_then(Value::as_object);
    let mut out = Env::new();
    for (key, value) in data.into_iter().flatten() {
        // Stored data was checked as base64 when written; a value that is not is skipped.
        if let Ok(bytes) = crate::store::secrets::decode(value.as_str().unwrap_or("")) {
            out.insert(key.clone(), String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    Ok(Some(out))
}

/// The kubelet's error for a Secret or ConfigMap that does not exist.
fn not_found(kind: &str, name: &str) -> String {
    format!("{kind} \"{name}\" not found")
}

/// A `fieldRef`'s value from the pod (the paths the downward API allows; others are unset).
fn field_value(pod: &Value, path: &str) -> Option<String> {
    let labelled = |prefix: &str, map: &str| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        pod.pointer(&format!("/metadata/{map}"))?
            .get(key)?
            .as_str()
            .map(String::from)
    };
    let pointer = match path {
        "metadata.name" => "/metadata/name",
        "metadata.namespace" => "/metadata/namespace",
        "metadata.uid" => "/metadata/uid",
        "spec.nodeName" => "/spec/nodeName",
        "spec.serviceAccountName" => "/spec/serviceAccountName",
        "status.hostIP" => "/status/hostIP",
        "status.podIP" => "/status/podIP",
        _ => {
            return labelled("metadata.labels['", "labels")
                .or_else(|| labelled("metadata.annotations['", "annotations"));
        }
    };
    pod.pointer(pointer)
        .and_then(Value::as_str)
        .map(String::from)
}

/// The environment of `container` of `pod`, as the kubelet builds it at container start, or
/// the message of its `CreateContainerConfigError` (`secret "db" not found`,
/// `couldn't find key password in Secret shop/db`).
pub(super) fn resolve(store: &Store, pod: &Value, container: &Value) -> Result<Env, String> {
    let ns = str_at(pod, "/metadata/namespace");
    let mut env = Env::new();
    let sources = container.get("envFrom").and_then(Value::as_array);
    for source in sources.into_iter().flatten() {
        let prefix = str_at(source, "/prefix");
        if let Some(reference) = source.get("secretRef").filter(|r| !r.is_null()) {
            let name = str_at(reference, "/name");
            match secret_data(store, ns, name)? {
                Some(data) => {
                    env.extend(data.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
                }
                None if optional(reference) => {}
                None => return Err(not_found("secret", name)),
            }
        } else if let Some(reference) = source.get("configMapRef").filter(|r| !r.is_null()) {
            if !optional(reference) {
                return Err(not_found("configmap", str_at(reference, "/name")));
            }
        }
    }
    let entries = container.get("env").and_then(Value::as_array);
    for entry in entries.into_iter().flatten() {
        let name = str_at(entry, "/name").to_string();
        let Some(from) = entry.get("valueFrom").filter(|v| !v.is_null()) else {
            env.insert(name, str_at(entry, "/value").to_string());
            continue;
        };
        if let Some(reference) = from.get("secretKeyRef").filter(|r| !r.is_null()) {
            let (secret, key) = (str_at(reference, "/name"), str_at(reference, "/key"));
            let value = match secret_data(store, ns, secret)? {
                Some(mut data) => data.remove(key),
                None if optional(reference) => continue,
                None => return Err(not_found("secret", secret)),
            };
            match value {
                Some(value) => {
                    env.insert(name, value);
                }
                None if optional(reference) => {}
                None => return Err(format!("couldn't find key {key} in Secret {ns}/{secret}")),
            }
        } else if let Some(reference) = from.get("configMapKeyRef").filter(|r| !r.is_null()) {
            if !optional(reference) {
                return Err(not_found("configmap", str_at(reference, "/name")));
            }
        } else if let Some(path) = from.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
            if let Some(value) = field_value(pod, path) {
                env.insert(name, value);
            }
        }
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_refs_read_the_pod() {
        let pod = json!({
            "metadata": { "name": "web-1", "namespace": "shop", "labels": { "app": "web" } },
            "status": { "podIP": "10.244.0.3" },
        });
        let cases = [
            ("metadata.name", Some("web-1")),
            ("metadata.namespace", Some("shop")),
            ("metadata.labels['app']", Some("web")),
            ("metadata.labels['missing']", None),
            ("status.podIP", Some("10.244.0.3")),
            ("status.unknown", None),
        ];
        for (path, want) in cases {
            assert_eq!(field_value(&pod, path).as_deref(), want, "{path}");
        }
    }
}

//! A container's environment, as the API server validates it and as the kubelet builds it when
//! it starts the container: `envFrom` sources first (later ones override earlier ones), then
//! `env` entries, each overriding what came before.
//!
//! Secrets are read from the store at that moment: a running container keeps the values it
//! started with. ConfigMaps are not served, so a `configMapRef` or `configMapKeyRef` is
//! "not found" unless optional. `fieldRef` resolves the pod's own fields; `resourceFieldRef`
//! and `$(VAR)` expansion are not simulated (such a variable is left out or kept verbatim).
//! Values are never logged.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::json::{check_dns1123_subdomain, str_at};
use crate::resources::SECRETS;
use crate::store::Store;

/// A container's variables by name, as its process would see them.
pub(crate) type Env = BTreeMap<String, String>;

/// The fields a `valueFrom` may name; exactly one of them.
const VALUE_SOURCES: [&str; 4] = [
    "fieldRef",
    "resourceFieldRef",
    "configMapKeyRef",
    "secretKeyRef",
];

/// `IsRelaxedEnvVarName` (the rule since Kubernetes 1.32): printable ASCII other than '='.
fn check_env_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
    {
        Ok(())
    } else {
        Err(format!("Invalid value: {name:?}: a valid environment variable name must consist only of printable ASCII characters other than '='"))
    }
}

/// Whether a reference is marked `optional: true` (a missing source is then skipped).
fn optional(reference: &Value) -> bool {
    reference.get("optional").and_then(Value::as_bool) == Some(true)
}

/// Checks one reference to a Secret or ConfigMap (`name`, and `key` when `keyed`).
fn check_reference(
    reference: &Value,
    field: &str,
    keyed: bool,
    causes: &mut Vec<(String, String)>,
) {
    let name = str_at(reference, "/name");
    if name.is_empty() {
        causes.push((format!("{field}.name"), "Required value".into()));
    } else if let Err(e) = check_dns1123_subdomain(name) {
        causes.push((format!("{field}.name"), e));
    }
    if keyed {
        let key = str_at(reference, "/key");
        if key.is_empty() {
            causes.push((format!("{field}.key"), "Required value".into()));
        }
        for message in crate::secrets::check_key(key)
            .into_iter()
            .filter(|_| !key.is_empty())
        {
            causes.push((
                format!("{field}.key"),
                format!("Invalid value: {key:?}: {message}"),
            ));
        }
    }
}

/// `validateEnv` and `validateEnvFrom` for one container at `field` (e.g.
/// `spec.template.spec.containers[0]`).
pub(crate) fn validate(container: &Value, field: &str, causes: &mut Vec<(String, String)>) {
    let entries = container.get("env").and_then(Value::as_array);
    for (i, entry) in entries.into_iter().flatten().enumerate() {
        let at = format!("{field}.env[{i}]");
        let name = str_at(entry, "/name");
        if name.is_empty() {
            causes.push((format!("{at}.name"), "Required value".into()));
        } else if let Err(e) = check_env_name(name) {
            causes.push((format!("{at}.name"), e));
        }
        let Some(from) = entry.get("valueFrom").filter(|v| !v.is_null()) else {
            continue;
        };
        let sources: Vec<&str> = VALUE_SOURCES
            .into_iter()
            .filter(|s| from.get(*s).is_some_and(|v| !v.is_null()))
            .collect();
        let at = format!("{at}.valueFrom");
        if !str_at(entry, "/value").is_empty() {
            causes.push((
                at.clone(),
                "Invalid value: \"\": may not be specified when `value` is not empty".into(),
            ));
        }
        match sources.as_slice() {
            [] => causes.push((at, "Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`".into())),
            [source] if matches!(*source, "secretKeyRef" | "configMapKeyRef") => {
                check_reference(&from[*source], &format!("{at}.{source}"), true, causes);
            }
            [_] => {}
            _ => causes.push((at, "Invalid value: \"\": may not have more than one field specified at a time".into())),
        }
    }
    let sources = container.get("envFrom").and_then(Value::as_array);
    for (i, source) in sources.into_iter().flatten().enumerate() {
        let at = format!("{field}.envFrom[{i}]");
        let prefix = str_at(source, "/prefix");
        if !prefix.is_empty() {
            if let Err(e) = check_env_name(prefix) {
                causes.push((format!("{at}.prefix"), e));
            }
        }
        let refs: Vec<&str> = ["configMapRef", "secretRef"]
            .into_iter()
            .filter(|s| source.get(*s).is_some_and(|v| !v.is_null()))
            .collect();
        match refs.as_slice() {
            [one] => check_reference(&source[*one], &format!("{at}.{one}"), false, causes),
            [] => causes.push((
                at,
                "Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`".into(),
            )),
            _ => causes.push((
                at,
                "Invalid value: \"\": may not have more than one field specified at a time".into(),
            )),
        }
    }
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
        if let Ok(bytes) = crate::secrets::decode(value.as_str().unwrap_or("")) {
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
pub(crate) fn resolve(store: &Store, pod: &Value, container: &Value) -> Result<Env, String> {
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
    fn env_is_validated_as_the_api_server_does() {
        // (description, container, fields of the expected causes)
        let cases = [
            (
                "values and references",
                json!({ "env": [
                    { "name": "A", "value": "1" },
                    { "name": "B", "valueFrom": { "secretKeyRef": { "name": "db", "key": "password" } } },
                    { "name": "C", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                ], "envFrom": [{ "prefix": "DB_", "secretRef": { "name": "db" } }] }),
                vec![],
            ),
            (
                "a nameless variable",
                json!({ "env": [{ "value": "1" }] }),
                vec!["c.env[0].name"],
            ),
            (
                "a name with '='",
                json!({ "env": [{ "name": "A=B" }] }),
                vec!["c.env[0].name"],
            ),
            (
                "a secretKeyRef without its key",
                json!({ "env": [{ "name": "A", "valueFrom": { "secretKeyRef": { "name": "db" } } }] }),
                vec!["c.env[0].valueFrom.secretKeyRef.key"],
            ),
            (
                "an empty valueFrom",
                json!({ "env": [{ "name": "A", "valueFrom": {} }] }),
                vec!["c.env[0].valueFrom"],
            ),
            (
                "both a value and a valueFrom",
                json!({ "env": [{ "name": "A", "value": "x", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }] }),
                vec!["c.env[0].valueFrom"],
            ),
            (
                "an envFrom without a source",
                json!({ "envFrom": [{ "prefix": "X_" }] }),
                vec!["c.envFrom[0]"],
            ),
            (
                "a secretRef without a name",
                json!({ "envFrom": [{ "secretRef": {} }] }),
                vec!["c.envFrom[0].secretRef.name"],
            ),
        ];
        for (what, container, want) in cases {
            let mut causes = Vec::new();
            validate(&container, "c", &mut causes);
            let fields: Vec<&str> = causes.iter().map(|(f, _)| f.as_str()).collect();
            assert_eq!(fields, want, "{what}: {causes:?}");
        }
    }

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

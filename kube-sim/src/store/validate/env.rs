//! A container's environment as the API server validates it (`validateEnv`,
//! `validateEnvFrom`): variable names, one source per `valueFrom`, a `name` and `key` per
//! reference. How the kubelet resolves it is `controllers::kubelet`'s.

use serde_json::Value;

use super::super::secrets::check_key;
use crate::json::{check_dns1123_subdomain, str_at};

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
        for message in check_key(key).into_iter().filter(|_| !key.is_empty()) {
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
}

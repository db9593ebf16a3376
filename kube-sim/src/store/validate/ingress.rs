//! `networking.k8s.io/v1` Ingresses, validated as the API server validates them: hosts, paths,
//! path types, backends, TLS hosts and secret names, the class name.

use std::net::IpAddr;

use serde_json::Value;

use crate::json::{check_dns1035_label, check_dns1123_subdomain, str_at};

/// The path types an Ingress path may have.
const PATH_TYPES: [&str; 3] = ["Exact", "ImplementationSpecific", "Prefix"];

/// The causes of a refused object: `(field, message)` pairs.
type Causes = Vec<(String, String)>;

/// `IsWildcardDNS1123Subdomain`: `*.` followed by a DNS-1123 subdomain.
fn check_wildcard(host: &str) -> Result<(), String> {
    let valid = host.len() <= 253
        && host
            .strip_prefix("*.")
            .is_some_and(|rest| check_dns1123_subdomain(rest).is_ok());
    if valid {
        Ok(())
    } else {
        Err(format!("Invalid value: {host:?}: a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"))
    }
}

/// A rule or TLS host: a DNS-1123 subdomain, or a wildcard one when it has a `*`.
fn check_host(host: &str, field: &str, causes: &mut Causes) {
    if host.contains('*') {
        if let Err(e) = check_wildcard(host) {
            causes.push((field.into(), e));
        }
    } else if let Err(e) = check_dns1123_subdomain(host) {
        causes.push((field.into(), e));
    }
}

/// `IsValidPortName`: what a Service port name must be.
fn port_name_errors(name: &str) -> Vec<&'static str> {
    let mut errors = Vec::new();
    if name.len() > 15 {
        errors.push("must be no more than 15 characters");
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errors.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        errors.push("must contain at least one letter (a-z)");
    }
    if name.contains("--") {
        errors.push("must not contain consecutive hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        errors.push("must not begin or end with a hyphen");
    }
    errors
}

/// `validateIngressBackend`: a Service with a name and exactly one of a port name or number,
/// or a typed resource reference.
fn validate_backend(backend: &Value, field: &str, causes: &mut Causes) {
    let service = backend.get("service").filter(|v| !v.is_null());
    let resource = backend.get("resource").filter(|v| !v.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => causes.push((
            field.into(),
            "Invalid value: \"\": cannot set both resource and service backends".into(),
        )),
        (None, Some(resource)) => {
            for part in ["kind", "name"] {
                if str_at(resource, &format!("/{part}")).is_empty() {
                    causes.push((format!("{field}.resource.{part}"), "Required value".into()));
                }
            }
        }
        (Some(service), None) => {
            let name = str_at(service, "/name");
            if name.is_empty() {
                causes.push((format!("{field}.service.name"), "Required value".into()));
            } else if let Err(e) = check_dns1035_label(name) {
                causes.push((format!("{field}.service.name"), e));
            }
            let port_name = str_at(service, "/port/name");
            let number = service.pointer("/port/number").filter(|n| !n.is_null());
            match (port_name.is_empty(), number) {
                (false, Some(_)) => causes.push((
                    field.into(),
                    "Invalid value: \"\": cannot set both port name & port number".into(),
                )),
                (false, None) => {
                    for message in port_name_errors(port_name) {
                        causes.push((
                            format!("{field}.service.port.name"),
                            format!("Invalid value: {port_name:?}: {message}"),
                        ));
                    }
                }
                (true, Some(number)) => {
                    if !number.as_i64().is_some_and(|n| (1..=65535).contains(&n)) {
                        causes.push((
                            format!("{field}.service.port.number"),
                            format!(
                                "Invalid value: {number}: must be between 1 and 65535, inclusive"
                            ),
                        ));
                    }
                }
                (true, None) => causes.push((
                    field.into(),
                    "Required value: port name or number is required".into(),
                )),
            }
        }
        (None, None) => causes.push((
            field.into(),
            "Invalid value: \"\": resource or service backend is required".into(),
        )),
    }
}

/// `validateHTTPIngressPath`: a path type, an absolute clean path for Exact and Prefix, and a
/// backend.
fn validate_path(path: &Value, field: &str, causes: &mut Causes) {
    let value = str_at(path, "/path");
    let path_type = str_at(path, "/pathType");
    match path_type {
        "" => causes.push((
            format!("{field}.pathType"),
            "Required value: pathType must be specified".into(),
        )),
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                causes.push((
                    format!("{field}.path"),
                    format!("Invalid value: {value:?}: must be an absolute path"),
                ));
            }
            for sequence in ["//", "/./", "/../", "%2f", "%2F"] {
                if value.contains(sequence) {
                    causes.push((
                        format!("{field}.path"),
                        format!("Invalid value: {value:?}: must not contain '{sequence}'"),
                    ));
                }
            }
            for suffix in ["/..", "/."] {
                if value.ends_with(suffix) {
                    causes.push((
                        format!("{field}.path"),
                        format!("Invalid value: {value:?}: cannot end with '{suffix}'"),
                    ));
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                causes.push((
                    format!("{field}.path"),
                    format!("Invalid value: {value:?}: must be an absolute path"),
                ));
            }
        }
        other => causes.push((
            format!("{field}.pathType"),
            format!(
                "Unsupported value: {other:?}: supported values: {}",
                PATH_TYPES.map(|t| format!("\"{t}\"")).join(", ")
            ),
        )),
    }
    match path.get("backend").filter(|b| !b.is_null()) {
        Some(backend) => validate_backend(backend, &format!("{field}.backend"), causes),
        None => causes.push((
            format!("{field}.backend"),
            "Invalid value: \"\": resource or service backend is required".into(),
        )),
    }
}

/// One rule: its host (not an IP address) and its HTTP paths.
fn validate_rule(rule: &Value, field: &str, causes: &mut Causes) {
    let host = str_at(rule, "/host");
    if !host.is_empty() {
        if host.parse::<IpAddr>().is_ok() {
            causes.push((
                format!("{field}.host"),
                format!("Invalid value: {host:?}: must be a DNS name, not an IP address"),
            ));
        }
        check_host(host, &format!("{field}.host"), causes);
    }
    let Some(http) = rule.get("http").filter(|h| !h.is_null()) else {
        return;
    };
    let paths = http.get("paths").and_then(Value::as_array);
    let Some(paths) = paths.filter(|p| !p.is_empty()) else {
        causes.push((format!("{field}.http.paths"), "Required value".into()));
        return;
    };
    for (i, path) in paths.iter().enumerate() {
        validate_path(path, &format!("{field}.http.paths[{i}]"), causes);
    }
}

/// `ValidateIngressSpec`: rules or a default backend, each valid; TLS hosts and secret
/// names; the class name.
pub(crate) fn validate(obj: &Value, causes: &mut Causes) {
    let Some(spec) = obj.get("spec").filter(|s| s.is_object()) else {
        causes.push(("spec".into(), "Required value".into()));
        return;
    };
    let rules = spec.get("rules").and_then(Value::as_array);
    let default_backend = spec.get("defaultBackend").filter(|b| !b.is_null());
    if rules.is_none_or(Vec::is_empty) && default_backend.is_none() {
        causes.push((
            "spec".into(),
            "Invalid value: null: either `defaultBackend` or `rules` must be specified".into(),
        ));
    }
    if let Some(backend) = default_backend {
        validate_backend(backend, "spec.defaultBackend", causes);
    }
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        validate_rule(rule, &format!("spec.rules[{i}]"), causes);
    }
    let tls = spec.get("tls").and_then(Value::as_array);
    for (i, entry) in tls.into_iter().flatten().enumerate() {
        let hosts = entry.get("hosts").and_then(Value::as_array);
        for (j, host) in hosts.into_iter().flatten().enumerate() {
            let host = host.as_str().unwrap_or("");
            check_host(host, &format!("spec.tls[{i}].hosts[{j}]"), causes);
        }
        let secret = str_at(entry, "/secretName");
        if !secret.is_empty() {
            if let Err(e) = check_dns1123_subdomain(secret) {
                causes.push((format!("spec.tls[{i}].secretName"), e));
            }
        }
    }
    if let Some(class) = spec.get("ingressClassName").and_then(Value::as_str) {
        if let Err(e) = check_dns1123_subdomain(class) {
            causes.push(("spec.ingressClassName".into(), e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ingress(rules: Value) -> Value {
        json!({ "spec": { "rules": rules } })
    }

    fn backend() -> Value {
        json!({ "service": { "name": "web", "port": { "number": 80 } } })
    }

    #[test]
    fn ingresses_are_validated_as_the_api_server_does() {
        let path = |path: &str, kind: &str| json!({ "path": path, "pathType": kind, "backend": backend() });
        // (description, ingress, fields of the expected causes)
        let cases = [
            (
                "a host, a wildcard and a hostless rule",
                ingress(json!([
                    { "host": "myapp.localhost", "http": { "paths": [path("/", "Prefix")] } },
                    { "host": "*.apps.example.com", "http": { "paths": [path("/api", "Exact")] } },
                    { "http": { "paths": [{ "pathType": "ImplementationSpecific", "backend": backend() }] } },
                ])),
                vec![],
            ),
            (
                "no rules and no default backend",
                json!({ "spec": {} }),
                vec!["spec"],
            ),
            (
                "an upper-case host",
                ingress(
                    json!([{ "host": "MyApp.localhost", "http": { "paths": [path("/", "Prefix")] } }]),
                ),
                vec!["spec.rules[0].host"],
            ),
            (
                "a wildcard in the middle",
                ingress(
                    json!([{ "host": "app.*.example.com", "http": { "paths": [path("/", "Prefix")] } }]),
                ),
                vec!["spec.rules[0].host"],
            ),
            (
                "an IP address",
                ingress(
                    json!([{ "host": "10.0.0.1", "http": { "paths": [path("/", "Prefix")] } }]),
                ),
                vec!["spec.rules[0].host"],
            ),
            (
                "no pathType",
                ingress(json!([{ "http": { "paths": [{ "path": "/", "backend": backend() }] } }])),
                vec!["spec.rules[0].http.paths[0].pathType"],
            ),
            (
                "an unknown pathType",
                ingress(json!([{ "http": { "paths": [path("/", "Regex")] } }])),
                vec!["spec.rules[0].http.paths[0].pathType"],
            ),
            (
                "a relative Prefix path",
                ingress(json!([{ "http": { "paths": [path("api", "Prefix")] } }])),
                vec!["spec.rules[0].http.paths[0].path"],
            ),
            (
                "no paths",
                ingress(json!([{ "host": "a.localhost", "http": { "paths": [] } }])),
                vec!["spec.rules[0].http.paths"],
            ),
            (
                "a backend without a port",
                ingress(
                    json!([{ "http": { "paths": [{ "path": "/", "pathType": "Prefix", "backend": { "service": { "name": "web" } } }] } }]),
                ),
                vec!["spec.rules[0].http.paths[0].backend"],
            ),
            (
                "a port by name and number",
                ingress(
                    json!([{ "http": { "paths": [{ "path": "/", "pathType": "Prefix", "backend": { "service": { "name": "web", "port": { "name": "http", "number": 80 } } } }] } }]),
                ),
                vec!["spec.rules[0].http.paths[0].backend"],
            ),
            (
                "a backend without a service name",
                ingress(
                    json!([{ "http": { "paths": [{ "path": "/", "pathType": "Prefix", "backend": { "service": { "port": { "name": "http" } } } }] } }]),
                ),
                vec!["spec.rules[0].http.paths[0].backend.service.name"],
            ),
            (
                "a bad TLS host",
                json!({ "spec": { "defaultBackend": backend(), "tls": [{ "hosts": ["Bad_Host"], "secretName": "tls" }] } }),
                vec!["spec.tls[0].hosts[0]"],
            ),
        ];
        for (what, obj, want) in cases {
            let mut causes = Vec::new();
            validate(&obj, &mut causes);
            let fields: Vec<&str> = causes.iter().map(|(f, _)| f.as_str()).collect();
            assert_eq!(fields, want, "{what}: {causes:?}");
        }
    }
}

//! JSON helpers: patch semantics, canonical hashing, name and label validation.

use serde_json::{Map, Value};

/// RFC 7386 JSON merge patch: maps merge recursively, `null` removes, anything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(patch_map) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(target_map) = target {
                for (k, v) in patch_map {
                    if v.is_null() {
                        target_map.remove(k);
                    } else {
                        merge_patch(target_map.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The merge step of server-side apply: the applied fields are merged into the live object
/// (maps recursively, lists and scalars replace); `managed_fields::prune` then removes what the
/// manager stopped applying.
pub(crate) fn apply_merge(target: &mut Value, applied: &Value) {
    merge_patch(target, applied)
}

/// Serialises with sorted keys, whatever serde_json's map order feature says.
pub(crate) fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(child) = map.get(k) {
                    canonical(child, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
pub(crate) const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A 10-character template hash in the safe alphabet (FNV-1a 64 of the canonical JSON).
pub(crate) fn template_hash(template: &Value) -> String {
    let mut text = String::new();
    canonical(template, &mut text);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut out = String::with_capacity(10);
    let base = SAFE_ALPHABET.len() as u64;
    for _ in 0..10 {
        let idx = usize::try_from(hash % base).unwrap_or(0);
        out.push(char::from(SAFE_ALPHABET[idx]));
        hash /= base;
    }
    out
}

/// `n` random characters of the safe alphabet, for pod names and generateName.
pub(crate) fn random_suffix(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from(SAFE_ALPHABET[rng.gen_range(0..SAFE_ALPHABET.len())]))
        .collect()
}

fn is_dns_label_body(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 label: what namespaces and container names must be.
pub(crate) fn check_dns1123_label(s: &str) -> Result<(), String> {
    if is_dns_label_body(s) {
        Ok(())
    } else {
        Err(format!("Invalid value: {s:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"))
    }
}

/// RFC 1035 label: what service names must be (must start with a letter).
pub(crate) fn check_dns1035_label(s: &str) -> Result<(), String> {
    if is_dns_label_body(s) && s.starts_with(|c: char| c.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(format!("Invalid value: {s:?}: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"))
    }
}

/// RFC 1123 subdomain: what most object names must be.
pub(crate) fn check_dns1123_subdomain(s: &str) -> Result<(), String> {
    if !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
    {
        Ok(())
    } else {
        Err(format!("Invalid value: {s:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"))
    }
}

fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A label or annotation key: `[prefix/]name`.
pub(crate) fn check_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        check_dns1123_subdomain(p).map_err(|_| {
            format!("Invalid value: {key:?}: prefix part must be a lowercase RFC 1123 subdomain")
        })?;
    }
    if is_qualified_name_part(name) {
        Ok(())
    } else {
        Err(format!("Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') and be at most 63 characters"))
    }
}

/// A label value: empty, or at most 63 alphanumerics, '-', '_', '.' starting and ending alphanumeric.
pub(crate) fn check_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_qualified_name_part(v) {
        Ok(())
    } else {
        Err(format!("Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?') and be at most 63 characters"))
    }
}

/// Reads a string map (`labels`, `matchLabels`) as pairs; non-string values are reported.
pub(crate) fn string_map(v: Option<&Value>) -> Vec<(String, Option<String>)> {
    match v.and_then(Value::as_object) {
        Some(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map(String::from)))
            .collect(),
        None => Vec::new(),
    }
}

/// `v` as a map, replacing a non-object with an empty one.
pub(crate) fn as_map(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(map) => map,
        _ => unreachable!("replaced by an object just above"),
    }
}

/// Mutable access to `map[key]` as a map, creating it (or replacing a non-object) if needed.
pub(crate) fn child_map<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> &'a mut Map<String, Value> {
    as_map(
        map.entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new())),
    )
}

/// Mutable access to `obj[key]` as a map, creating it (or replacing a non-object) if needed.
pub(crate) fn obj_mut<'a>(obj: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    child_map(as_map(obj), key)
}

/// `obj.pointer(path)` as a `&str`, or "".
pub(crate) fn str_at<'a>(obj: &'a Value, path: &str) -> &'a str {
    obj.pointer(path).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({ "a": "b", "c": { "d": "e", "f": "g" }, "l": [1, 2] });
        merge_patch(
            &mut t,
            &json!({ "a": "z", "c": { "f": null, "h": 1 }, "l": [3] }),
        );
        assert_eq!(t, json!({ "a": "z", "c": { "d": "e", "h": 1 }, "l": [3] }));
    }

    #[test]
    fn hash_is_stable_and_order_independent() {
        let a = json!({ "x": 1, "y": { "b": 2, "a": 1 } });
        let b = json!({ "y": { "a": 1, "b": 2 }, "x": 1 });
        assert_eq!(template_hash(&a), template_hash(&b));
        assert_eq!(template_hash(&a).len(), 10);
        assert_ne!(template_hash(&a), template_hash(&json!({ "x": 2 })));
    }

    #[test]
    fn names() {
        assert!(check_dns1123_subdomain("my-app.v1").is_ok());
        assert!(check_dns1123_subdomain("My-App").is_err());
        assert!(check_dns1035_label("1abc").is_err());
        assert!(check_dns1035_label("abc-1").is_ok());
        assert!(check_qualified_name("app.kubernetes.io/name").is_ok());
        assert!(check_qualified_name("bad key").is_err());
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("-x").is_err());
    }
}

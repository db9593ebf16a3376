//! Core v1 Secrets as the API server stores them: `stringData` folded into base64 `data` when
//! the request is decoded, `type` defaulted to `Opaque`, keys and per-type required keys
//! validated (the `kubectl get secrets` table row is `http::table`'s).
//!
//! Secret values are never logged: the functions here report keys and lengths, not values.

use serde_json::{json, Map, Value};

use crate::json::str_at;
use crate::status::ApiError;

/// The type a Secret gets when it names none.
const OPAQUE: &str = "Opaque";
/// `core.MaxSecretSize`: the most bytes a Secret's values may add up to.
const MAX_SECRET_SIZE: usize = 1024 * 1024;
/// Longest data key (a DNS-1123 subdomain's limit, as `IsConfigMapKey` uses).
const MAX_KEY_LEN: usize = 253;
/// The standard base64 alphabet (RFC 4648 §4), which Go's `[]byte` JSON encoding uses.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as Go encodes a `[]byte` in JSON.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = usize::try_from((n >> (18 - 6 * i)) & 0x3f).unwrap_or(0);
                out.push(char::from(ALPHABET[index]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard padded base64 as Go's `base64.StdEncoding` does (line breaks skipped,
/// trailing bits not checked); the error names the offending input byte as Go's does.
pub(crate) fn decode(text: &str) -> Result<Vec<u8>, String> {
    let illegal = |at: usize| format!("illegal base64 data at input byte {at}");
    let src = text.as_bytes();
    let skip_newlines = |mut at: usize| {
        while src.get(at).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            at += 1;
        }
        at
    };
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    // One quantum (four symbols, three bytes) at a time, as Go's `decodeQuantum`.
    loop {
        let mut quantum = [0u32; 4];
        let mut len = 4;
        let mut j = 0;
        while j < 4 {
            let Some(&c) = src.get(si) else {
                if j == 0 {
                    return Ok(out);
                }
                // Padding is required: a short last quantum is corrupt from its start.
                return Err(illegal(si - j));
            };
            si += 1;
            match c {
                b'\r' | b'\n' => continue,
                b'=' => {
                    match j {
                        0 | 1 => return Err(illegal(si - 1)),
                        2 => {
                            // "==" is expected: the first '=' is consumed already.
                            si = skip_newlines(si);
                            if si == src.len() {
                                return Err(illegal(src.len()));
                            }
                            if src[si] != b'=' {
                                return Err(illegal(si - 1));
                            }
                            si += 1;
                        }
                        _ => {}
                    }
                    si = skip_newlines(si);
                    if si < src.len() {
                        // Anything after the padding.
                        return Err(illegal(si));
                    }
                    len = j;
                    break;
                }
                _ => {
                    let value = ALPHABET
                        .iter()
                        .position(|a| *a == c)
                        .and_then(|p| u32::try_from(p).ok())
                        .ok_or_else(|| illegal(si - 1))?;
                    quantum[j] = value;
                    j += 1;
                }
            }
        }
        let n = (quantum[0] << 18) | (quantum[1] << 12) | (quantum[2] << 6) | quantum[3];
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..len]);
        if len < 4 {
            return Ok(out);
        }
    }
}

/// The decode-time conversion of a Secret: every `data` value must be base64 (a 400 like the
/// real server's JSON decoding error otherwise), and `stringData` is encoded into `data`
/// (winning over a `data` entry of the same key) and dropped, so it is never stored.
pub(crate) fn decode_request(obj: &mut Value) -> Result<(), ApiError> {
    let cannot = |why: String| {
        ApiError::bad_request(format!(
            "Secret in version \"v1\" cannot be handled as a Secret: {why}"
        ))
    };
    let Some(map) = obj.as_object_mut() else {
        return Ok(());
    };
    let mut data = match map.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(data)) => data,
        Some(other) => {
            return Err(cannot(format!(
            "json: cannot unmarshal {} into Go struct field Secret.data of type map[string][]uint8",
            json_kind(&other)
        )))
        }
    };
    for (key, value) in data.iter_mut() {
        match value {
            // A JSON null is an empty `[]byte`.
            Value::Null => *value = json!(""),
            Value::String(text) => {
                decode(text).map_err(|e| cannot(format!("{e} (data[{key}])")))?;
            }
            other => {
                return Err(cannot(format!(
                    "json: cannot unmarshal {} into Go struct field Secret.data of type []uint8",
                    json_kind(other)
                )))
            }
        }
    }
    match map.remove("stringData") {
        None | Some(Value::Null) => {}
        Some(Value::Object(strings)) => {
            for (key, value) in strings {
                let text = match value {
                    Value::String(text) => text,
                    Value::Null => String::new(),
                    other => {
                        return Err(cannot(format!(
                            "json: cannot unmarshal {} into Go struct field Secret.stringData of type string",
                            json_kind(&other)
                        )))
                    }
                };
                data.insert(key, json!(encode(text.as_bytes())));
            }
        }
        Some(other) => {
            return Err(cannot(format!(
                "json: cannot unmarshal {} into Go struct field Secret.stringData of type map[string]string",
                json_kind(&other)
            )))
        }
    }
    if !data.is_empty() {
        map.insert("data".into(), Value::Object(data));
    }
    Ok(())
}

/// Go's name for a JSON value's kind, as its decoding errors use it.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `SetDefaults_Secret`: a Secret without a type is `Opaque`.
pub(crate) fn defaults(obj: &mut Value) {
    if let Some(map) = obj.as_object_mut() {
        let typed = map
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty());
        if !typed {
            map.insert("type".into(), json!(OPAQUE));
        }
    }
}

/// `IsConfigMapKey`: what a Secret's data keys must be.
pub(crate) fn check_key(key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if key.len() > MAX_KEY_LEN {
        errors.push(format!("must be no more than {MAX_KEY_LEN} characters"));
    }
    let valid_chars = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !valid_chars {
        errors.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".into());
    }
    if key == "." {
        errors.push("must not be '.'".into());
    } else if key == ".." {
        errors.push("must not be '..'".into());
    } else if key.starts_with("..") {
        errors.push("must not start with '..'".into());
    }
    errors
}

/// The keys each built-in Secret type requires (any one of them for `basic-auth`).
fn required_keys(kind: &str) -> (&'static [&'static str], bool) {
    match kind {
        "kubernetes.io/tls" => (&["tls.crt", "tls.key"], false),
        "kubernetes.io/dockerconfigjson" => (&[".dockerconfigjson"], false),
        "kubernetes.io/dockercfg" => (&[".dockercfg"], false),
        "kubernetes.io/ssh-auth" => (&["ssh-privatekey"], false),
        "kubernetes.io/basic-auth" => (&["username", "password"], true),
        _ => (&[], false),
    }
}

/// `ValidateSecret` and `ValidateSecretUpdate`: data keys, total size, the keys the type
/// requires, and on update an unchanged type and the `immutable` promise kept.
pub(crate) fn validate(obj: &Value, old: Option<&Value>, causes: &mut Vec<(String, String)>) {
    let data = obj.get("data").and_then(Value::as_object);
    let mut total = 0usize;
    for (key, value) in data.into_iter().flatten() {
        for message in check_key(key) {
            causes.push((
                format!("data[{key}]"),
                format!("Invalid value: {key:?}: {message}"),
            ));
        }
        // Values were checked when the request was decoded.
        total += value
            .as_str()
            .map_or(0, |v| decode(v).map_or(0, |b| b.len()));
    }
    if total > MAX_SECRET_SIZE {
        causes.push((
            "data".into(),
            format!("Too long: may not be more than {MAX_SECRET_SIZE} bytes"),
        ));
    }
    let kind = str_at(obj, "/type");
    let has = |key: &str| {
        data.and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    };
    let (required, any_one) = required_keys(kind);
    let missing: Vec<&&str> = required.iter().filter(|k| !has(k)).collect();
    if !any_one || missing.len() == required.len() {
        for key in missing {
            causes.push((format!("data[{key}]"), "Required value".into()));
        }
    }
    if kind == "kubernetes.io/service-account-token"
        && str_at(
            obj,
            "/metadata/annotations/kubernetes.io~1service-account.name",
        )
        .is_empty()
    {
        causes.push((
            "metadata.annotations[kubernetes.io/service-account.name]".into(),
            "Required value".into(),
        ));
    }
    let Some(old) = old else { return };
    let old_kind = str_at(old, "/type");
    if old_kind != kind {
        causes.push((
            "type".into(),
            format!("Invalid value: {kind:?}: field is immutable"),
        ));
    }
    if old.get("immutable") == Some(&json!(true)) {
        if obj.get("immutable") != Some(&json!(true)) {
            causes.push((
                "immutable".into(),
                "Forbidden: field is immutable when `immutable` is set".into(),
            ));
        }
        if obj.get("data") != old.get("data") {
            causes.push((
                "data".into(),
                "Forbidden: field is immutable when `immutable` is set".into(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_as_go_encodes() {
        let cases: [(&[u8], &str); 6] = [
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"hunter2", "aHVudGVyMg=="),
            (&[0xff, 0xfe, 0x00], "//4A"),
        ];
        for (bytes, text) in cases {
            assert_eq!(encode(bytes), text, "{bytes:?}");
            assert_eq!(decode(text).as_deref(), Ok(bytes), "{text}");
        }
        assert_eq!(decode("Zm9v\r\nYmFy").as_deref(), Ok(&b"foobar"[..]));
    }

    #[test]
    fn base64_refuses_what_go_refuses() {
        // (description, input, the byte Go names)
        let cases = [
            ("not a multiple of four", "Zm9", 0),
            ("a character outside the alphabet", "Zm9!", 3),
            ("padding in the middle", "Zg==Zm9v", 4),
            ("padding too early in a quad", "Z===", 1),
            ("url-safe alphabet", "-_-_", 0),
        ];
        for (what, input, at) in cases {
            assert_eq!(
                decode(input),
                Err(format!("illegal base64 data at input byte {at}")),
                "{what}"
            );
        }
    }

    #[test]
    fn string_data_is_folded_into_data_and_wins() {
        let mut secret = json!({
            "data": { "a": "b2xk", "keep": "eA==" },
            "stringData": { "a": "new", "b": "hunter2" },
        });
        decode_request(&mut secret).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            secret,
            json!({ "data": { "a": "bmV3", "keep": "eA==", "b": "aHVudGVyMg==" } })
        );
        let mut bad = json!({ "data": { "a": "not base64!" } });
        let err = decode_request(&mut bad).map(|_| ()).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains("illegal base64 data"),
            "{}",
            err.message
        );
    }

    #[test]
    fn keys_and_types_are_validated() {
        // (description, secret, fields of the expected causes)
        let cases = [
            (
                "an opaque secret",
                json!({ "type": "Opaque", "data": { "a.b_C-1": "" } }),
                vec![],
            ),
            (
                "a space in a key",
                json!({ "type": "Opaque", "data": { "bad key": "" } }),
                vec!["data[bad key]"],
            ),
            (
                "a dot-dot key",
                json!({ "type": "Opaque", "data": { "..x": "" } }),
                vec!["data[..x]"],
            ),
            (
                "tls without its key",
                json!({ "type": "kubernetes.io/tls", "data": { "tls.crt": "eA==" } }),
                vec!["data[tls.key]"],
            ),
            (
                "basic-auth with a password only",
                json!({ "type": "kubernetes.io/basic-auth", "data": { "password": "eA==" } }),
                vec![],
            ),
            (
                "basic-auth with neither",
                json!({ "type": "kubernetes.io/basic-auth" }),
                vec!["data[username]", "data[password]"],
            ),
        ];
        for (what, secret, want) in cases {
            let mut causes = Vec::new();
            validate(&secret, None, &mut causes);
            let fields: Vec<&str> = causes.iter().map(|(f, _)| f.as_str()).collect();
            assert_eq!(fields, want, "{what}: {causes:?}");
        }
        let old = json!({ "type": "Opaque", "immutable": true, "data": { "a": "eA==" } });
        let mut causes = Vec::new();
        validate(
            &json!({ "type": "kubernetes.io/tls", "immutable": true, "data": { "tls.crt": "eA==", "tls.key": "eA==" } }),
            Some(&old),
            &mut causes,
        );
        let fields: Vec<&str> = causes.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["type", "data"]);
    }
}

//! The hash chain over the global order: the exact bytes each event's hash is
//! computed from, so that an auditor can recompute it with a few lines of
//! Python (`scripts/verify-export.py`). Pure: no I/O.
//!
//! For the event at chain index `n` (1, 2, 3, ... in global order):
//!
//! ```text
//! record    = {"aggregateType", "cursor", "metadata", "payload", "recordedAt",
//!              "sequence", "type", "usecaseId", "version"}
//! canonical = compact JSON of `record`, object keys sorted by code point at every
//!             level, no whitespace, UTF-8, non-ASCII characters written as they are
//!             (Python: json.dumps(record, sort_keys=True, separators=(",", ":"),
//!                                 ensure_ascii=False).encode())
//! hash(n)   = SHA-256(hash(n - 1) || canonical)      hash(0) = 32 zero bytes
//! ```
//!
//! The hash covers the JSON *values* of payload and metadata, not their stored
//! text: re-spacing the stored JSON does not change it, changing any value does.

use crate::ledger::{RecordedEvent, SealedEvent};
use chrono::SecondsFormat;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The "previous hash" of the first event in the chain: 32 zero bytes.
pub const GENESIS: [u8; 32] = [0; 32];

/// The record that is hashed, as a JSON object (key order does not matter here:
/// [`canonical_record`] sorts the keys when it writes the bytes).
fn record(event: &RecordedEvent, aggregate_type: &str) -> Map<String, Value> {
    let value = json!({
        "aggregateType": aggregate_type,
        "cursor": event.cursor.to_string(),
        "metadata": event.metadata,
        "payload": event.payload,
        // Postgres keeps microseconds: exactly six digits, UTC, with a `Z`.
        "recordedAt": event.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "sequence": event.sequence,
        "type": event.event_type,
        "usecaseId": event.aggregate_id,
        "version": event.event_version,
    });
    match value {
        Value::Object(map) => map,
        // json!({..}) always builds an object.
        _ => Map::new(),
    }
}

/// The canonical bytes of an event's record: what its hash covers.
pub fn canonical_record(event: &RecordedEvent, aggregate_type: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write_object(&record(event, aggregate_type), &mut out);
    out
}

/// The event's hash: SHA-256 of the previous event's hash (raw 32 bytes,
/// [`GENESIS`] for the first event) followed by the canonical record.
pub fn chain_hash(prev: &[u8; 32], event: &RecordedEvent, aggregate_type: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(canonical_record(event, aggregate_type));
    hasher.finalize().into()
}

/// One line of the audit export: the hashed record plus `chainIndex`, `actor`
/// (a convenience copy of `metadata.actor`, not hashed), `prevHash` and `hash`
/// (lowercase hex). The auditor's script rebuilds the record from the line.
pub fn export_line(sealed: &SealedEvent) -> Value {
    let mut line = record(&sealed.event, &sealed.aggregate_type);
    line.insert("chainIndex".into(), sealed.chain_index.into());
    line.insert("actor".into(), sealed.event.actor().into());
    line.insert("prevHash".into(), hex::encode(sealed.prev_hash).into());
    line.insert("hash".into(), hex::encode(sealed.hash).into());
    Value::Object(line)
}

// The canonical writer. serde_json's own output would match today (without its
// `preserve_order` feature, `Map` is a BTreeMap), but the chain must not change
// when some dependency turns that feature on, and serde_json writes floats
// differently from Python; so the format is written out here, once.

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out),
    }
}

fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    // Byte order of UTF-8 is code point order, which is how Python sorts str keys.
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    out.push(b'{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        if let Some(value) = map.get(key) {
            write_value(value, out);
        }
    }
    out.push(b'}');
}

/// Python's escaping with `ensure_ascii=False`: `"` and `\`, the five short
/// escapes, `\u00XX` (lowercase hex) for the other control characters below
/// U+0020, everything else (DEL, U+2028, emoji...) as raw UTF-8.
fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Integers as decimal digits. shiplog's payloads hold no floating-point
/// numbers; should one appear, it is written as Python's `repr(float)` does, so
/// the auditor's script still agrees.
fn write_number(n: &serde_json::Number, out: &mut Vec<u8>) {
    if let Some(i) = n.as_i64() {
        out.extend_from_slice(i.to_string().as_bytes());
    } else if let Some(u) = n.as_u64() {
        out.extend_from_slice(u.to_string().as_bytes());
    } else if let Some(f) = n.as_f64() {
        out.extend_from_slice(python_float_repr(f).as_bytes());
    }
}

/// `repr(f)` of CPython for a finite float: the shortest digits that round-trip,
/// positional when the decimal exponent is in -4..16 (with at least one digit
/// after the point), otherwise `d.ddde+XX` with a sign and at least two exponent digits.
fn python_float_repr(f: f64) -> String {
    // `{:e}` gives the shortest round-trip digits, e.g. "-1.2345e-7", "1e16", "0e0".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let point = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{point}{rest}e{exp_sign}{:02}", exp.abs());
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        let zeros = "0".repeat(int_len - digits.len());
        format!("{sign}{digits}{zeros}.0")
    } else {
        let (int, frac) = digits.split_at(int_len);
        format!("{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor::Cursor;
    use chrono::{TimeZone, Utc};

    fn event() -> RecordedEvent {
        RecordedEvent {
            cursor: Cursor {
                transaction_id: 0x2f1,
                position: 42,
            },
            aggregate_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
            sequence: 3,
            event_type: "DeploymentRequested".into(),
            event_version: "1.0".into(),
            payload: json!({"DeploymentRequested": {
                "deployment_id": "6a2f41a3-c54c-fce8-32d2-0324e1c32e22",
                "config": {"image": "registry.example/team/chat:1.0.0", "replicas": 2, "env": {}},
                "at": "2026-11-23T10:00:00Z"
            }}),
            metadata: json!({"actor": "alice", "request_id": "req-1"}),
            recorded_at: Utc
                .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
                .single()
                .unwrap_or_default()
                + chrono::Duration::microseconds(123_456),
            aggregate_type: "Usecase".to_owned(),
        }
    }

    // Expected values computed with Python 3.11:
    //   rec = {"aggregateType": "Usecase", "cursor": "00000000000002f1000000000000002a",
    //          "metadata": {...}, "payload": {...}, "recordedAt": "2026-11-23T10:00:00.123456Z",
    //          "sequence": 3, "type": "DeploymentRequested",
    //          "usecaseId": "0f8fad5b-d9cb-469f-a165-70867728950e", "version": "1.0"}
    //   b = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    //   h1 = hashlib.sha256(bytes(32) + b).hexdigest()
    //   h2 = hashlib.sha256(bytes.fromhex(h1) + b).hexdigest()
    #[test]
    fn known_vector_matches_python() {
        let expected = concat!(
            r#"{"aggregateType":"Usecase","cursor":"00000000000002f1000000000000002a","#,
            r#""metadata":{"actor":"alice","request_id":"req-1"},"#,
            r#""payload":{"DeploymentRequested":{"at":"2026-11-23T10:00:00Z","#,
            r#""config":{"env":{},"image":"registry.example/team/chat:1.0.0","replicas":2},"#,
            r#""deployment_id":"6a2f41a3-c54c-fce8-32d2-0324e1c32e22"}},"#,
            r#""recordedAt":"2026-11-23T10:00:00.123456Z","sequence":3,"#,
            r#""type":"DeploymentRequested","usecaseId":"0f8fad5b-d9cb-469f-a165-70867728950e","#,
            r#""version":"1.0"}"#
        );
        let canonical = canonical_record(&event(), "Usecase");
        assert_eq!(String::from_utf8_lossy(&canonical), expected);

        let h1 = chain_hash(&GENESIS, &event(), "Usecase");
        assert_eq!(
            hex::encode(h1),
            "2cc7beffabf35ca4bb11ff09a6001188b6e8292c9c4285c50ac745ea6cfc7fc6"
        );
        assert_eq!(
            hex::encode(chain_hash(&h1, &event(), "Usecase")),
            "6d14ac47f577480412d5d1534f69754b514fe6277d35b3322dcfa0fcf96fbd1b"
        );
    }

    // Expected values computed with Python 3.11 as above, with
    //   S = "Café “quoted” \"x\"\n\\ tab\t bs\b ff\f bell\x07 nul\x00 esc\x1b us\x1f del\x7f 日本 😀 \u2028 </>"
    // as the description and the metadata below.
    #[test]
    fn escaping_matches_python_for_quotes_controls_and_non_ascii() {
        let text = "Café “quoted” \"x\"\n\\ tab\t bs\u{8} ff\u{c} bell\u{7} nul\u{0} esc\u{1b} us\u{1f} del\u{7f} 日本 😀 \u{2028} </>";
        let event = RecordedEvent {
            cursor: Cursor {
                transaction_id: 0x2f1,
                position: 43,
            },
            sequence: 1,
            event_type: "UsecaseRegistered".into(),
            payload: json!({"UsecaseRegistered": {
                "usecase_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
                "name": "café",
                "description": text,
                "at": "2026-11-23T10:00:00Z"
            }}),
            metadata: json!({"actor": "bob \"the\" builder", "request_id": "r\n2"}),
            recorded_at: Utc
                .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
                .single()
                .unwrap_or_default()
                + chrono::Duration::microseconds(1),
            ..event()
        };
        let expected = concat!(
            r#"{"aggregateType":"Usecase","cursor":"00000000000002f1000000000000002b","#,
            r#""metadata":{"actor":"bob \"the\" builder","request_id":"r\n2"},"#,
            r#""payload":{"UsecaseRegistered":{"at":"2026-11-23T10:00:00Z","#,
            r#""description":"Café “quoted” \"x\"\n\\ tab\t bs\b ff\f bell\u0007 nul\u0000 esc\u001b us\u001f del"#,
            "\u{7f}",
            " 日本 😀 ",
            "\u{2028}",
            r#" </>","name":"café","usecase_id":"0f8fad5b-d9cb-469f-a165-70867728950e"}},"#,
            r#""recordedAt":"2026-11-23T10:00:00.000001Z","sequence":1,"#,
            r#""type":"UsecaseRegistered","usecaseId":"0f8fad5b-d9cb-469f-a165-70867728950e","#,
            r#""version":"1.0"}"#
        );
        let canonical = canonical_record(&event, "Usecase");
        assert_eq!(String::from_utf8_lossy(&canonical), expected);
        assert_eq!(
            hex::encode(chain_hash(&GENESIS, &event, "Usecase")),
            "8add816b71a090b1847b4859d3ef50d52ff78b3d035a4dd23832ce1c91881a5f"
        );
    }

    #[test]
    fn keys_sort_by_code_point_at_every_level() {
        let mut out = Vec::new();
        write_value(
            &json!([1, -2, true, null, {"z": 1, "Z": 2, "é": 3, "e": 4, "": {"b": [], "a": {}}}]),
            &mut out,
        );
        // Python: json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"[1,-2,true,null,{"":{"a":{},"b":[]},"Z":2,"e":4,"z":1,"é":3}]"#
        );
    }

    #[test]
    fn floats_are_written_like_python_repr() {
        // Left: the float; right: Python 3.11's json.dumps / repr of it.
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (100.0, "100.0"),
            (0.1, "0.1"),
            (-3.25, "-3.25"),
            (12345.678, "12345.678"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.2345e-7, "1.2345e-07"),
            (1e300, "1e+300"),
            (2.5e-300, "2.5e-300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
        ];
        for (f, python) in cases {
            assert_eq!(python_float_repr(f), python, "repr of {f:e}");
        }
    }

    #[test]
    fn export_line_adds_index_actor_and_hex_hashes() {
        let hash = chain_hash(&GENESIS, &event(), "Usecase");
        let line = export_line(&SealedEvent {
            chain_index: 1,
            event: event(),
            aggregate_type: "Usecase".into(),
            prev_hash: GENESIS,
            hash,
        });
        assert_eq!(line["chainIndex"], 1);
        assert_eq!(line["actor"], "alice");
        assert_eq!(line["prevHash"], "0".repeat(64));
        assert_eq!(line["hash"], hex::encode(hash));
        assert_eq!(line["cursor"], "00000000000002f1000000000000002a");
    }
}

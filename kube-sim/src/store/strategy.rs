//! A Deployment's `spec.strategy` as the API server defaults and validates it, and the
//! int-or-percent values (`maxSurge`, `maxUnavailable`) it is made of. How the deployment
//! controller rolls pods by it is `controllers::rollout`'s.

use serde_json::{json, Map, Value};

/// `spec.strategy.type` of a rolling update (the default).
const ROLLING_UPDATE: &str = "RollingUpdate";
/// `spec.strategy.type` that deletes every old pod before creating new ones.
pub(crate) const RECREATE: &str = "Recreate";
/// The default `maxSurge` and `maxUnavailable` of a rolling update.
pub(crate) const DEFAULT_FENCEPOST: &str = "25%";

/// An int-or-percent value (`maxSurge`, `maxUnavailable`) resolved against `total`:
/// integers as they are, `"N%"` as N% of `total` rounded up or down
/// (`intstr.GetScaledValueFromIntOrPercent`).
pub(crate) fn scaled_value(value: &Value, total: i64, round_up: bool) -> Result<i64, String> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| "must be an integer or percentage (e.g '5%')".to_string()),
        Value::String(s) => {
            let percent = parse_percent(s)?;
            let scaled = percent.saturating_mul(total.max(0));
            Ok(if round_up {
                scaled.saturating_add(99) / 100
            } else {
                scaled / 100
            })
        }
        _ => Err("must be an integer or percentage (e.g '5%')".to_string()),
    }
}

/// `"N%"` as N, with apimachinery's `IsValidPercent` message otherwise.
fn parse_percent(s: &str) -> Result<i64, String> {
    s.strip_suffix('%')
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<i64>().ok())
        .ok_or_else(|| {
            "a valid percent string must be a numeric string followed by an ending '%' \
             (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
                .to_string()
        })
}

/// Fills in `spec.strategy` as the API server's defaulting does: type `RollingUpdate`, and
/// for a rolling update `maxSurge` and `maxUnavailable` of 25% each where not given.
pub(crate) fn default_strategy(spec: &mut Map<String, Value>) {
    let strategy = spec
        .entry("strategy")
        .or_insert_with(|| Value::Object(Map::new()));
    if strategy.is_null() {
        *strategy = Value::Object(Map::new());
    }
    // Anything but an object is left for validation to refuse.
    let Some(strategy) = strategy.as_object_mut() else {
        return;
    };
    let missing = |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v.as_str() == Some(""));
    if missing(strategy.get("type")) {
        strategy.insert("type".into(), json!(ROLLING_UPDATE));
    }
    if strategy.get("type").and_then(Value::as_str) != Some(ROLLING_UPDATE) {
        return;
    }
    let rolling = strategy
        .entry("rollingUpdate")
        .or_insert_with(|| Value::Object(Map::new()));
    if rolling.is_null() {
        *rolling = Value::Object(Map::new());
    }
    if let Some(rolling) = rolling.as_object_mut() {
        for field in ["maxUnavailable", "maxSurge"] {
            if rolling.get(field).is_none_or(Value::is_null) {
                rolling.insert(field.into(), json!(DEFAULT_FENCEPOST));
            }
        }
    }
}

/// Checks a (defaulted) `spec.strategy` as `ValidateDeploymentStrategy` does; causes are
/// `(field, message)` pairs for a 422.
pub(crate) fn validate_strategy(spec: &Value, causes: &mut Vec<(String, String)>) {
    let Some(strategy) = spec.get("strategy") else {
        return;
    };
    let Some(map) = strategy.as_object() else {
        causes.push((
            "spec.strategy".into(),
            format!("Invalid value: {strategy}: must be an object"),
        ));
        return;
    };
    let rolling = map.get("rollingUpdate").filter(|r| !r.is_null());
    match map.get("type").and_then(Value::as_str) {
        Some(RECREATE) => {
            if rolling.is_some() {
                causes.push((
                    "spec.strategy.rollingUpdate".into(),
                    "Forbidden: may not be specified when strategy `type` is 'Recreate'".into(),
                ));
            }
        }
        Some(ROLLING_UPDATE) => match rolling {
            Some(rolling) => validate_rolling_update(rolling, causes),
            None => causes.push((
                "spec.strategy.rollingUpdate".into(),
                "Required value: this should be defaulted and never be nil".into(),
            )),
        },
        _ => causes.push((
            "spec.strategy.type".into(),
            format!(
                "Unsupported value: {}: supported values: \"{RECREATE}\", \"{ROLLING_UPDATE}\"",
                map.get("type").cloned().unwrap_or(Value::Null)
            ),
        )),
    }
}

/// `ValidateRollingUpdateDeployment`: each value a non-negative integer or a percentage,
/// `maxUnavailable` at most 100%, and not both 0.
fn validate_rolling_update(rolling: &Value, causes: &mut Vec<(String, String)>) {
    let field = |name: &str| rolling.get(name).cloned().unwrap_or(Value::Null);
    let (surge, unavailable) = (field("maxSurge"), field("maxUnavailable"));
    let mut zero = Vec::new();
    for (name, value) in [("maxUnavailable", &unavailable), ("maxSurge", &surge)] {
        let path = format!("spec.strategy.rollingUpdate.{name}");
        // The raw value: a percentage against 100 is its number.
        match scaled_value(value, 100, false) {
            Err(message) => causes.push((path, format!("Invalid value: {value}: {message}"))),
            Ok(n) if n < 0 => causes.push((
                path,
                format!("Invalid value: {n}: must be greater than or equal to 0"),
            )),
            Ok(n) => {
                if name == "maxUnavailable" && value.is_string() && n > 100 {
                    causes.push((
                        path,
                        format!("Invalid value: {value}: must not be greater than 100%"),
                    ));
                }
                zero.push(n == 0);
            }
        }
    }
    if zero == [true, true] {
        causes.push((
            "spec.strategy.rollingUpdate.maxUnavailable".into(),
            format!("Invalid value: {unavailable}: may not be 0 when `maxSurge` is 0"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(strategy: Value) -> Value {
        json!({ "strategy": strategy })
    }

    #[test]
    fn defaults_fill_in_what_is_missing() {
        let cases = [
            (
                "no strategy",
                json!({}),
                json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": "25%" } }),
            ),
            (
                "one value given",
                json!({ "strategy": { "rollingUpdate": { "maxSurge": 1 } } }),
                json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1, "maxUnavailable": "25%" } }),
            ),
            (
                "Recreate gets no rollingUpdate",
                json!({ "strategy": { "type": "Recreate" } }),
                json!({ "type": "Recreate" }),
            ),
        ];
        for (what, mut given, want) in cases {
            let Some(map) = given.as_object_mut() else {
                panic!("{what}: the spec is an object");
            };
            default_strategy(map);
            assert_eq!(given["strategy"], want, "{what}");
        }
    }

    #[test]
    fn validation_refuses_what_kubernetes_refuses() {
        // (description, strategy, expected field of the first cause or None when valid)
        let cases = [
            (
                "the defaults",
                json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": "25%" } }),
                None,
            ),
            ("Recreate alone", json!({ "type": "Recreate" }), None),
            (
                "surge 0, unavailable 1",
                json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 0, "maxUnavailable": 1 } }),
                None,
            ),
            (
                "both 0",
                json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 0, "maxUnavailable": "0%" } }),
                Some("spec.strategy.rollingUpdate.maxUnavailable"),
            ),
            (
                "negative surge",
                json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": -1, "maxUnavailable": 1 } }),
                Some("spec.strategy.rollingUpdate.maxSurge"),
            ),
            (
                "a number in a string",
                json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": "1", "maxUnavailable": 1 } }),
                Some("spec.strategy.rollingUpdate.maxSurge"),
            ),
            (
                "unavailable over 100%",
                json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1, "maxUnavailable": "150%" } }),
                Some("spec.strategy.rollingUpdate.maxUnavailable"),
            ),
            (
                "Recreate with rollingUpdate",
                json!({ "type": "Recreate", "rollingUpdate": { "maxSurge": 1 } }),
                Some("spec.strategy.rollingUpdate"),
            ),
            (
                "an unknown type",
                json!({ "type": "BlueGreen" }),
                Some("spec.strategy.type"),
            ),
        ];
        for (what, strategy, want) in cases {
            let mut causes = Vec::new();
            validate_strategy(&spec(strategy), &mut causes);
            assert_eq!(
                causes.first().map(|(field, _)| field.as_str()),
                want,
                "{what}: {causes:?}"
            );
        }
    }
}

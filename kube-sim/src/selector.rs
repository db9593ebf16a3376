//! Label and field selectors, with the grammar the API server accepts.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`; all requirements must hold (comma = AND).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector(Vec<Requirement>);

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

/// Splits on commas that are not inside parentheses.
fn split_terms(s: &str) -> Result<Vec<&str>, String> {
    let mut terms = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("unbalanced parentheses in {s:?}"));
                }
            }
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced parentheses in {s:?}"));
    }
    terms.push(&s[start..]);
    Ok(terms)
}

fn parse_set(rest: &str, term: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set of values in {term:?}"))?;
    let values: Vec<String> = inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err(format!("empty set of values in {term:?}"));
    }
    Ok(values)
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    let t = term.trim();
    if let Some(key) = t.strip_prefix('!') {
        let key = key.trim();
        if key.is_empty() || !key.chars().all(is_key_char) {
            return Err(format!("invalid label key in {term:?}"));
        }
        return Ok(Requirement::NotExists(key.to_string()));
    }
    let key_end = t.find(|c: char| !is_key_char(c)).unwrap_or(t.len());
    let key = &t[..key_end];
    if key.is_empty() {
        return Err(format!("missing label key in {term:?}"));
    }
    let rest = t[key_end..].trim_start();
    let key = key.to_string();
    if rest.is_empty() {
        return Ok(Requirement::Exists(key));
    }
    if let Some(v) = rest.strip_prefix("!=") {
        return Ok(Requirement::NotEquals(key, v.trim().to_string()));
    }
    if let Some(v) = rest.strip_prefix("==") {
        return Ok(Requirement::Equals(key, v.trim().to_string()));
    }
    if let Some(v) = rest.strip_prefix('=') {
        return Ok(Requirement::Equals(key, v.trim().to_string()));
    }
    if let Some(v) = rest.strip_prefix("notin") {
        return Ok(Requirement::NotIn(key, parse_set(v, term)?));
    }
    if let Some(v) = rest.strip_prefix("in") {
        return Ok(Requirement::In(key, parse_set(v, term)?));
    }
    Err(format!("unable to parse requirement {term:?}"))
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),!h`; an empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        split_terms(s)?
            .into_iter()
            .map(parse_term)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// A selector of objects carrying every one of `labels` (a Service's selector, a
    /// `matchLabels`).
    pub fn equal_to<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            labels
                .into_iter()
                .map(|(k, v)| Requirement::Equals(k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The requirements a matching object's label must meet by value (`=`, `==`, `in`): the
    /// label key and the values it may have, for a label index to look up.
    pub fn required_values(&self) -> Vec<(&str, Vec<&str>)> {
        self.0
            .iter()
            .filter_map(|r| match r {
                Requirement::Equals(k, v) => Some((k.as_str(), vec![v.as_str()])),
                Requirement::In(k, vs) => {
                    Some((k.as_str(), vs.iter().map(String::as_str).collect()))
                }
                _ => None,
            })
            .collect()
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed `fieldSelector`: `path=value`, `path==value`, `path!=value`, comma = AND.
/// The path is any dotted JSON path (`metadata.name`, `involvedObject.name`, `status.phase`).
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector(Vec<(Vec<String>, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, equal, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==") {
                (p, true, v)
            } else if let Some((p, v)) = term.split_once('=') {
                (p, true, v)
            } else {
                return Err(format!(
                    "invalid field selector term {term:?}: expected an operator"
                ));
            };
            let path: Vec<String> = path.trim().split('.').map(String::from).collect();
            if path.iter().any(String::is_empty) {
                return Err(format!("invalid field path in {term:?}"));
            }
            reqs.push((path, equal, value.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    /// Adds `metadata.name=name` (a watch on a single object).
    pub fn with_name(mut self, name: &str) -> Self {
        self.0.push((
            vec!["metadata".into(), "name".into()],
            true,
            name.to_string(),
        ));
        self
    }

    /// The name a `metadata.name=` term asks for, so a selection can look the object up.
    pub fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(path, equal, _)| {
                *equal && path.len() == 2 && path[0] == "metadata" && path[1] == "name"
            })
            .map(|(_, _, name)| name.as_str())
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, equal, want)| {
            let mut cur = Some(object);
            for p in path {
                cur = cur.and_then(|c| c.get(p));
            }
            let have = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (have == *want) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({ "metadata": { "name": "x", "labels": labels } })
    }

    #[test]
    fn label_selector_grammar() {
        let o = obj(json!({ "app": "web", "tier": "front" }));
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app in (web, db)", true),
            ("app in (db)", false),
            ("app notin (db,cache)", true),
            ("missing notin (db)", true),
            ("app=web,tier=front", true),
            ("app=web,tier in (back)", false),
            ("app in (web,db),tier", true),
        ];
        for (sel, want) in cases {
            let parsed = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(parsed.matches(&o), want, "{sel}");
        }
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("app in (web").is_err());
        assert!(LabelSelector::parse("=x").is_err());
    }

    #[test]
    fn field_selector() {
        let ev = json!({ "metadata": { "name": "e1" }, "involvedObject": { "name": "pod-a" }, "count": 2 });
        let s = FieldSelector::parse("involvedObject.name=pod-a").unwrap_or_default();
        assert!(s.matches(&ev));
        let s = FieldSelector::parse("metadata.name!=e1").unwrap_or_default();
        assert!(!s.matches(&ev));
        let s = FieldSelector::parse("count=2,metadata.name==e1").unwrap_or_default();
        assert!(s.matches(&ev));
        assert!(FieldSelector::parse("metadata.name").is_err());
    }
}

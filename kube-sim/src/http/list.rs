//! Lists (with selectors and `limit`/`continue` pagination) and single objects, as JSON,
//! `PartialObjectMetadata` or a kubectl `Table`.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::table::table;
use super::{json_response, partial, ApiResult, Form, Params};
use crate::cluster::Shared;
use crate::json::str_at;
use crate::resources::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;

pub(super) fn list_doc(
    def: &ResourceDef,
    rv: u64,
    items: Vec<Value>,
    cont: Option<String>,
    remaining: Option<usize>,
) -> Value {
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if let Some(map) = meta.as_object_mut() {
        if let Some(c) = cont {
            map.insert("continue".into(), json!(c));
        }
        if let Some(r) = remaining {
            map.insert("remainingItemCount".into(), json!(r));
        }
    }
    json!({
        "kind": format!("{}List", def.kind),
        "apiVersion": def.api_version(),
        "metadata": meta,
        "items": items,
    })
}

pub(super) fn list(
    shared: &Arc<Shared>,
    def: &'static ResourceDef,
    ns: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
    q: &Params,
    form: Form,
) -> ApiResult {
    let limit = q
        .number("limit")?
        .filter(|l| *l > 0)
        .and_then(|l| usize::try_from(l).ok());
    // A continue token is "<resourceVersion>/<namespace>/<name>" of the last item served.
    let cont = match q.get("continue").filter(|c| !c.is_empty()) {
        None => None,
        Some(token) => {
            let mut parts = token.splitn(3, '/');
            let rv = parts.next().and_then(|r| r.parse::<u64>().ok());
            match (rv, parts.next(), parts.next()) {
                (Some(rv), Some(ns), Some(name)) => Some((rv, ns.to_string(), name.to_string())),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "continue key is not valid: {token:?}"
                    )))
                }
            }
        }
    };
    let (matching, current_rv) = shared.read(|s| (s.select(def, ns, labels, fields), s.rv));
    let rv = cont.as_ref().map_or(current_rv, |(rv, _, _)| *rv);
    let after: Vec<Arc<Value>> = match &cont {
        None => matching,
        Some((_, cns, cname)) => matching
            .into_iter()
            .filter(|o| {
                let key = crate::store::object_key(o);
                (key.0.as_str(), key.1.as_str()) > (cns.as_str(), cname.as_str())
            })
            .collect(),
    };
    let (page, next) = match limit {
        Some(limit) if after.len() > limit => {
            let page: Vec<Arc<Value>> = after[..limit].to_vec();
            let remaining = after.len() - limit;
            let token = page.last().map(|o| {
                let (ons, oname) = crate::store::object_key(o);
                format!("{rv}/{ons}/{oname}")
            });
            (page, token.map(|t| (t, remaining)))
        }
        _ => (after, None),
    };
    if form == Form::Table {
        return Ok(json_response(
            StatusCode::OK,
            &table(def, &page, rv, q.get("includeObject").unwrap_or("Metadata")),
        ));
    }
    let items: Vec<Value> = page
        .iter()
        .map(|o| {
            if form == Form::Metadata {
                partial(o)
            } else {
                (**o).clone()
            }
        })
        .collect();
    let (cont, remaining) = match next {
        Some((t, r)) => (Some(t), Some(r)),
        None => (None, None),
    };
    let mut doc = list_doc(def, rv, items, cont, remaining);
    if form == Form::Metadata {
        if let Some(map) = doc.as_object_mut() {
            map.insert("kind".into(), json!("PartialObjectMetadataList"));
            map.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
        }
    }
    Ok(json_response(StatusCode::OK, &doc))
}

pub(super) fn render_one(def: &ResourceDef, obj: &Value, form: Form, q: &Params) -> Response {
    match form {
        Form::Full => json_response(StatusCode::OK, obj),
        Form::Metadata => json_response(StatusCode::OK, &partial(obj)),
        Form::Table => {
            let rv = str_at(obj, "/metadata/resourceVersion")
                .parse()
                .unwrap_or(0);
            let doc = table(
                def,
                &[Arc::new(obj.clone())],
                rv,
                q.get("includeObject").unwrap_or("Metadata"),
            );
            json_response(StatusCode::OK, &doc)
        }
    }
}

//! Writes the router hands on with more to do than call a store verb: patches (merge, and
//! server-side apply) and the `scale` subresource of Deployments.

use axum::http::{header, HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use super::{json_response, parse_body, reject_dry_run, ApiRequest, ApiResult};
use crate::json::str_at;
use crate::status::ApiError;
use crate::store::{ObjectRef, Patch, Writer};

/// A PATCH of an object or its status: a JSON merge patch (strategic merge taken as one) or a
/// server-side apply, by its content type.
pub(super) fn patch(req: &ApiRequest<'_>, at: ObjectRef<'_>, status_only: bool) -> ApiResult {
    let q = req.params;
    reject_dry_run(q)?;
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    let apply = match media {
        "application/apply-patch+yaml" | "application/apply-patch+json" => true,
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => false,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if apply && q.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    if let Some(force) = q.get("force") {
        if !matches!(force, "true" | "false" | "") {
            return Err(ApiError::bad_request(format!(
                "invalid value for force: {force:?}"
            )));
        }
    }
    let manager = req.field_manager();
    let patch = Patch {
        body: parse_body(req.body)?,
        apply,
        status_only,
        manager: &manager,
    };
    let (obj, created) = req.shared.with(|s, c| s.api_patch(at, patch, c))?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(code, &obj))
}

/// The `autoscaling/v1` Scale view of a deployment (what `kubectl scale` reads and writes).
fn scale_doc(dep: &Value) -> Value {
    let selector: Vec<String> = dep
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let meta = dep.get("metadata").cloned().unwrap_or(json!({}));
    let pick = |k: &str| meta.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": pick("name"),
            "namespace": pick("namespace"),
            "uid": pick("uid"),
            "resourceVersion": pick("resourceVersion"),
            "creationTimestamp": pick("creationTimestamp"),
        },
        "spec": { "replicas": dep.pointer("/spec/replicas").cloned().unwrap_or(json!(1)) },
        "status": {
            "replicas": dep.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector.join(","),
        },
    })
}

/// The `scale` subresource of a Deployment: its Scale view read, replaced or patched.
pub(super) fn scale(req: &ApiRequest<'_>, at: ObjectRef<'_>) -> ApiResult {
    let ObjectRef { def, ns, name } = at;
    let current = req
        .shared
        .read(|s| s.get(def, ns, name))
        .ok_or_else(|| ApiError::not_found(def, name))?;
    let wanted = match *req.method {
        Method::GET => return Ok(json_response(StatusCode::OK, &scale_doc(&current))),
        Method::PUT => parse_body(req.body)?,
        Method::PATCH => patched_scale(req.headers, req.body, &current)?,
        _ => {
            return Err(ApiError::method_not_allowed(format!(
                "{} is not supported on deployments/scale",
                req.method
            )))
        }
    };
    reject_dry_run(req.params)?;
    let replicas = wanted
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::invalid(
                def,
                name,
                vec![(
                    "spec.replicas".into(),
                    "Invalid value: must be a non-negative integer".into(),
                )],
            )
        })?;
    let mut update = (*current).clone();
    crate::json::obj_mut(&mut update, "spec").insert("replicas".into(), json!(replicas));
    let rv = str_at(&wanted, "/metadata/resourceVersion");
    crate::json::obj_mut(&mut update, "metadata").insert("resourceVersion".into(), json!(rv));
    let manager = req.field_manager();
    let writer = Writer::Update { manager: &manager };
    let updated = req
        .shared
        .with(|s, c| s.api_update(at, update, false, writer, c))?;
    Ok(json_response(StatusCode::OK, &scale_doc(&updated)))
}

/// The Scale view of `current` with a PATCH's body merged in (any patch type is taken as a
/// merge patch: a Scale has no lists to merge by key).
fn patched_scale(headers: &HeaderMap, body: &[u8], current: &Value) -> Result<Value, ApiError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = media.split(';').next().unwrap_or("").trim();
    if !matches!(
        media,
        "application/merge-patch+json"
            | "application/strategic-merge-patch+json"
            | "application/apply-patch+yaml"
    ) {
        return Err(ApiError::unsupported_media_type(media));
    }
    let mut doc = scale_doc(current);
    crate::json::merge_patch(&mut doc, &parse_body(body)?);
    Ok(doc)
}

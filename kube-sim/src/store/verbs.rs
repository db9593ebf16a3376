//! The generic API verbs (create, update, patch, delete, delete collection) as the API
//! server runs them: type checks, server-set fields, defaulting, validation, field ownership.

use std::sync::Arc;

use serde_json::{json, Value};

use super::managed_fields::Writer;
use super::validate::validate;
use super::{in_scope, meta_mut, object_key, ObjectRef, Observer, Store};
use crate::json::{random_suffix, str_at};
use crate::resources::{ResourceDef, SECRETS};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;

/// A PATCH as the router read it.
#[derive(Debug)]
pub(crate) struct Patch<'a> {
    /// The patch document: a JSON merge patch, or the applied configuration.
    pub body: Value,
    /// Whether it is a server-side apply (else a merge patch).
    pub apply: bool,
    /// Whether it goes to the `status` subresource.
    pub status_only: bool,
    /// The field manager it is by.
    pub manager: &'a str,
}

impl Store {
    /// POST on a collection (or an apply that creates), by `writer`.
    pub fn api_create(
        &mut self,
        def: &'static ResourceDef,
        ns: &str,
        body: Value,
        writer: Writer<'_>,
        observer: &mut dyn Observer,
    ) -> Result<Arc<Value>, ApiError> {
        let mut obj = normalize(def, ns, body)?;
        let meta = meta_mut(&mut obj);
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(field);
        }
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            let generate = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if generate.is_empty() {
                return Err(ApiError::invalid(
                    def,
                    "",
                    vec![(
                        "metadata.name".into(),
                        "Required value: name or generateName is required".into(),
                    )],
                ));
            }
            loop {
                name = format!("{generate}{}", random_suffix(5));
                if self.get(def, ns, &name).is_none() {
                    break;
                }
            }
            meta.insert("name".into(), json!(name));
        }
        if self.get(def, ns, &name).is_some() {
            return Err(ApiError::already_exists(def, &name));
        }
        if def.status_subresource {
            if let Some(map) = obj.as_object_mut() {
                map.remove("status");
            }
        }
        self.apply_defaults(def, &mut obj, None);
        validate(def, &obj, None)?;
        super::managed_fields::record(def, None, &mut obj, writer);
        Ok(self.insert_new(def, obj, observer))
    }

    /// PUT on an object (or its status), and the common end of every patch, by `writer` (whom
    /// a status write does not make an owner of anything).
    pub fn api_update(
        &mut self,
        at: ObjectRef<'_>,
        body: Value,
        status_only: bool,
        writer: Writer<'_>,
        observer: &mut dyn Observer,
    ) -> Result<Arc<Value>, ApiError> {
        let ObjectRef { def, ns, name } = at;
        let old = self
            .get(def, ns, name)
            .ok_or_else(|| ApiError::not_found(def, name))?;
        let mut body = normalize(def, ns, body)?;
        let body_name = str_at(&body, "/metadata/name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_rv = str_at(&body, "/metadata/resourceVersion");
        if !body_rv.is_empty() && body_rv != str_at(&old, "/metadata/resourceVersion") {
            return Err(ApiError::conflict(
                def,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let mut new = if status_only {
            let mut new = (*old).clone();
            if let (Some(map), Some(status)) = (new.as_object_mut(), body.get("status")) {
                map.insert("status".into(), status.clone());
            }
            new
        } else {
            let meta = meta_mut(&mut body);
            for field in [
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "managedFields",
                "selfLink",
            ] {
                match old.pointer(&format!("/metadata/{field}")) {
                    Some(v) => meta.insert(field.into(), v.clone()),
                    None => meta.remove(field),
                };
            }
            meta.insert("name".into(), json!(name));
            if def.status_subresource {
                if let Some(map) = body.as_object_mut() {
                    match old.get("status") {
                        Some(s) => map.insert("status".into(), s.clone()),
                        None => map.remove("status"),
                    };
                }
            }
            self.apply_defaults(def, &mut body, Some(&old));
            validate(def, &body, Some(&old))?;
            body
        };
        let old_gen = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let generation = if new.get("spec") != old.get("spec") {
            old_gen + 1
        } else {
            old_gen
        };
        let meta = meta_mut(&mut new);
        meta.insert("generation".into(), json!(generation));
        meta.insert(
            "resourceVersion".into(),
            old.pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null),
        );
        if !status_only {
            super::managed_fields::record(def, Some(&old), &mut new, writer);
        }
        if new == *old {
            return Ok(old);
        }
        Ok(self.put(def, new, observer))
    }

    /// PATCH by its manager: merge patch (and strategic merge treated as merge) or
    /// server-side apply; whether it created the object.
    pub fn api_patch(
        &mut self,
        at: ObjectRef<'_>,
        patch: Patch<'_>,
        observer: &mut dyn Observer,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        let ObjectRef { def, ns, name } = at;
        let Patch {
            body: patch,
            apply,
            status_only,
            manager,
        } = patch;
        if !patch.is_object() {
            return Err(ApiError::bad_request(
                "the patch body must be a JSON object",
            ));
        }
        let writer = if apply {
            Writer::Apply {
                manager,
                applied: &patch,
            }
        } else {
            Writer::Update { manager }
        };
        let Some(old) = self.get(def, ns, name) else {
            if apply && !status_only {
                let mut body = patch.clone();
                let body_name = str_at(&body, "/metadata/name").to_string();
                if !body_name.is_empty() && body_name != name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({body_name}) does not match the name on the URL ({name})"
                    )));
                }
                meta_mut(&mut body).insert("name".into(), json!(name));
                return self
                    .api_create(def, ns, body, writer, observer)
                    .map(|o| (o, true));
            }
            return Err(ApiError::not_found(def, name));
        };
        if apply {
            // The applied configuration must name its type, as the real server insists.
            if patch.get("apiVersion").is_none() || patch.get("kind").is_none() {
                return Err(ApiError::bad_request(
                    "invalid object type: apiVersion and kind must be set in an apply patch",
                ));
            }
        }
        let mut merged = (*old).clone();
        crate::json::apply_merge(&mut merged, &patch);
        if apply && !status_only {
            super::managed_fields::prune(def, &old, &mut merged, &patch, manager);
        }
        self.api_update(at, merged, status_only, writer, observer)
            .map(|o| (o, false))
    }

    /// DELETE on an object.
    pub fn api_delete(
        &mut self,
        at: ObjectRef<'_>,
        options: &Value,
        observer: &mut dyn Observer,
    ) -> Result<Arc<Value>, ApiError> {
        let ObjectRef { def, ns, name } = at;
        let old = self
            .get(def, ns, name)
            .ok_or_else(|| ApiError::not_found(def, name))?;
        for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            let want = str_at(options, &format!("/preconditions/{field}"));
            let have = str_at(&old, &format!("/metadata/{field}"));
            if !want.is_empty() && want != have {
                return Err(ApiError::conflict(
                    def,
                    name,
                    &format!("Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}"),
                ));
            }
        }
        let cascade = str_at(options, "/propagationPolicy") != "Orphan"
            && options.get("orphanDependents") != Some(&json!(true));
        self.remove(def, ns, name, cascade, observer)
            .ok_or_else(|| ApiError::not_found(def, name))
    }

    /// DELETE on a collection.
    pub fn api_delete_collection(
        &mut self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        observer: &mut dyn Observer,
    ) -> Vec<Arc<Value>> {
        let victims: Vec<Arc<Value>> = self
            .select(def, ns, labels, fields)
            .into_iter()
            .filter(|o| in_scope(o, ns))
            .collect();
        victims
            .into_iter()
            .filter_map(|o| {
                let (ons, oname) = object_key(&o);
                self.remove(def, &ons, &oname, true, observer)
            })
            .collect()
    }
}

/// Checks the type fields and the namespace, and fills them in.
fn normalize(def: &ResourceDef, ns: &str, body: Value) -> Result<Value, ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::bad_request(format!(
            "the body of a {} must be a JSON object",
            def.kind
        )));
    };
    let api_version = def.api_version();
    if let Some(v) = map.get("apiVersion").and_then(Value::as_str) {
        if v != api_version {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    if let Some(k) = map.get("kind").and_then(Value::as_str) {
        if k != def.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
    }
    map.insert("apiVersion".into(), json!(api_version));
    map.insert("kind".into(), json!(def.kind));
    let mut obj = Value::Object(map);
    let meta = meta_mut(&mut obj);
    if def.namespaced {
        let given = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
        if !given.is_empty() && given != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta.insert("namespace".into(), json!(ns));
    } else {
        meta.remove("namespace");
    }
    if def.plural == SECRETS.plural {
        super::secrets::decode_request(&mut obj)?;
    }
    Ok(obj)
}

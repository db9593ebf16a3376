//! The `proxy` subresource of services and pods, as kube-apiserver serves it: the request is
//! forwarded to a Ready pod (here: its Deployment's echo app) and the answer streamed back.
//!
//! `/api/v1/namespaces/{ns}/services/{id}/proxy[/{path}]` and the same under `pods/`, where
//! `id` is `name`, `name:port` or `scheme:name:port`. Bodies are streamed both ways, never
//! buffered. The ingress controller ([`crate::ingress_listener`]) picks its endpoints and
//! forwards with the same functions ([`service_endpoint`], [`send`]).

use std::sync::Arc;

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::cluster::Shared;
use crate::controllers::{owner_deployment_ref, pod_ready};
use crate::echo::POD_HEADER;
use crate::json::{str_at, string_map};
use crate::resources::{PODS, SERVICES};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;

/// Which object a proxy path goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Through {
    /// `services/{id}/proxy`: a Ready pod the Service selects.
    Service,
    /// `pods/{id}/proxy`: that pod.
    Pod,
}

/// A parsed proxy path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProxyPath {
    /// Through a Service or a pod.
    pub through: Through,
    /// The namespace in the path.
    pub ns: String,
    /// `name`, `name:port` or `scheme:name:port`, percent-decoded.
    pub id: String,
    /// What follows `/proxy`, still percent-encoded ("" or starting with `/`).
    pub rest: String,
}

/// Recognises `/api/v1/namespaces/{ns}/{services|pods}/{id}/proxy[/...]`.
pub(crate) fn parse_path(path: &str) -> Option<ProxyPath> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (ns, rest) = rest.split_once('/')?;
    let (plural, rest) = rest.split_once('/')?;
    let (id, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("proxy")?;
    if !(rest.is_empty() || rest.starts_with('/')) || ns.is_empty() || id.is_empty() {
        return None;
    }
    let through = match plural {
        "services" => Through::Service,
        "pods" => Through::Pod,
        _ => return None,
    };
    Some(ProxyPath {
        through,
        ns: ns.to_string(),
        id: percent_decode(id),
        rest: rest.to_string(),
    })
}

/// Decodes `%XX` escapes (clients may send the `:` of `name:port` as `%3A`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits `name`, `name:port` or `scheme:name:port`, as kube-apiserver's
/// `SplitSchemeNamePort` does.
fn split_id(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    (!name.is_empty()).then_some((scheme, name, port))
}

/// Forwards one request and streams the answer back; failures are `Status` objects.
pub(crate) async fn forward(shared: &Arc<Shared>, target: ProxyPath, req: Request) -> Response {
    match try_forward(shared, target, req).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn try_forward(
    shared: &Arc<Shared>,
    target: ProxyPath,
    req: Request,
) -> Result<Response, ApiError> {
    let endpoint = match target.through {
        Through::Service => service_endpoint(shared, &target.ns, &target.id)?,
        Through::Pod => pod_target(shared, &target.ns, &target.id)?,
    };
    let (parts, body) = req.into_parts();
    let path = if target.rest.is_empty() {
        "/"
    } else {
        target.rest.as_str()
    };
    let mut headers = end_to_end(&parts.headers);
    headers.remove(header::HOST);
    // kube-apiserver drops the credentials once it has authenticated the request.
    headers.remove(header::AUTHORIZATION);
    send(
        shared,
        &endpoint,
        parts.method,
        path,
        parts.uri.query(),
        headers,
        body,
    )
    .await
    .map_err(|e| unreachable_service(e.to_string()))
}

/// A Ready pod picked to answer a request, and the Deployment whose echo app stands in for
/// its containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The pod's name (the app learns it from the `X-Kube-Sim-Pod` header).
    pub pod: String,
    /// The uid of the Deployment that owns the pod.
    pub deployment_uid: String,
}

/// Why a request could not be handed to an endpoint's app.
#[derive(Debug, Clone)]
pub(crate) enum SendError {
    /// The app is not running (its Deployment was deleted).
    NoApp(String),
    /// The app could not be reached, or broke off its answer's head.
    Unreachable(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::NoApp(why) | SendError::Unreachable(why) => f.write_str(why),
        }
    }
}

/// Sends a request to an endpoint's app and streams its answer back: the services and pods
/// proxy and the ingress controller both forward this way. `headers` are sent as given
/// (callers drop the hop-by-hop ones and add their own), plus the pod header; a body is
/// streamed, never buffered, and a request without one is sent without one. The answer keeps
/// its status and end-to-end headers.
pub(crate) async fn send(
    shared: &Shared,
    endpoint: &Endpoint,
    method: Method,
    path: &str,
    query: Option<&str>,
    mut headers: HeaderMap,
    body: Body,
) -> Result<Response, SendError> {
    let addr = shared.echo_addr(&endpoint.deployment_uid).ok_or_else(|| {
        SendError::NoApp(format!(
            "the echo app of pod {:?} is not running (its Deployment was deleted)",
            endpoint.pod
        ))
    })?;
    let client = shared
        .proxy_client()
        .map_err(|e| SendError::Unreachable(e.to_string()))?;
    let mut url = format!("http://{addr}{path}");
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    let pod_value = HeaderValue::from_str(&endpoint.pod).map_err(|e| {
        SendError::Unreachable(format!(
            "pod name {:?} is no header value: {e}",
            endpoint.pod
        ))
    })?;
    headers.insert(HeaderName::from_static(POD_HEADER), pod_value);

    let mut upstream = client.request(method, url).headers(headers);
    if body.size_hint().exact() != Some(0) {
        upstream = upstream.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    let answer = upstream
        .send()
        .await
        .map_err(|e| SendError::Unreachable(error_chain(&e)))?;

    let status = answer.status();
    let headers = end_to_end(answer.headers());
    let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// kube-apiserver's words when a backend cannot be reached.
fn unreachable_service(why: String) -> ApiError {
    ApiError::service_unavailable(format!("error trying to reach service: {why}"))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// The headers without the hop-by-hop ones (RFC 9110 §7.6.1), which belong to one connection.
pub(crate) fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named_in_connection: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        let hop_by_hop = matches!(
            n,
            "connection" | "keep-alive" | "transfer-encoding" | "te" | "trailer" | "upgrade"
        ) || n.starts_with("proxy-")
            || named_in_connection.iter().any(|c| c == n);
        if !hop_by_hop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Picks a Ready pod behind a Service (round robin), as kube-apiserver picks an endpoint; `id`
/// is `name`, `name:port` or `scheme:name:port`, the port a Service port's name or number.
pub(crate) fn service_endpoint(shared: &Shared, ns: &str, id: &str) -> Result<Endpoint, ApiError> {
    let (scheme, name, port) = split_id(id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid service request {id:?}")))?;
    check_scheme(scheme)?;
    let mut candidates = shared.read(|s| {
        let svc = s
            .get(&SERVICES, ns, name)
            .ok_or_else(|| ApiError::not_found(&SERVICES, name))?;
        let ports: Vec<&Value> = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        // A port number is turned into that port's name; then the name must be a port's.
        let port_name = match port.parse::<i64>() {
            Ok(number) => ports
                .iter()
                .find(|p| p.get("port").and_then(Value::as_i64) == Some(number))
                .map(|p| str_at(p, "/name"))
                .ok_or_else(|| {
                    ApiError::service_unavailable(format!(
                        "no service port {number} found for service {name:?}"
                    ))
                })?,
            Err(_) => port,
        };
        let selector = string_map(svc.pointer("/spec/selector"));
        let mut pods: Vec<(String, Option<String>)> = if selector.is_empty() {
            // No selector: no endpoints are managed for the Service.
            Vec::new()
        } else {
            // A selector value that is not a string selects nothing.
            let labels: Option<Vec<(&str, &str)>> = selector
                .iter()
                .map(|(k, v)| v.as_deref().map(|v| (k.as_str(), v)))
                .collect();
            let labels = labels.map(LabelSelector::equal_to);
            labels
                .map(|l| s.select(&PODS, Some(ns), &l, &FieldSelector::default()))
                .unwrap_or_default()
                .into_iter()
                .filter(|p| pod_ready(p))
                .map(|p| {
                    let owner = owner_deployment_ref(&p).map(|(_, uid)| uid);
                    (str_at(&p, "/metadata/name").to_string(), owner)
                })
                .collect()
        };
        if pods.is_empty() {
            return Err(ApiError::service_unavailable(format!(
                "no endpoints available for service {name:?}"
            )));
        }
        if !ports.iter().any(|p| str_at(p, "/name") == port_name) {
            pods.clear();
        }
        Ok(pods)
    })?;
    if candidates.is_empty() {
        return Err(ApiError::service_unavailable(format!(
            "no endpoints available for service {id:?}"
        )));
    }
    let pick = shared.next_endpoint() % candidates.len();
    let (pod, owner) = candidates.swap_remove(pick);
    let deployment_uid = owner.ok_or_else(|| no_echo_app(&pod))?;
    Ok(Endpoint {
        pod,
        deployment_uid,
    })
}

/// The pod a pod proxy path names, if it is Ready and runs an echo app.
fn pod_target(shared: &Shared, ns: &str, id: &str) -> Result<Endpoint, ApiError> {
    let (scheme, name, _port) =
        split_id(id).ok_or_else(|| ApiError::bad_request(format!("invalid pod request {id:?}")))?;
    check_scheme(scheme)?;
    let pod = shared
        .read(|s| s.get(&PODS, ns, name))
        .ok_or_else(|| ApiError::not_found(&PODS, name))?;
    if !pod_ready(&pod) {
        return Err(unreachable_service(format!("pod {name:?} is not ready")));
    }
    let (_, deployment_uid) = owner_deployment_ref(&pod).ok_or_else(|| no_echo_app(name))?;
    Ok(Endpoint {
        pod: name.to_string(),
        deployment_uid,
    })
}

fn no_echo_app(pod: &str) -> ApiError {
    unreachable_service(format!(
        "pod {pod:?} runs no kube-sim echo app (only pods of a Deployment do)"
    ))
}

fn check_scheme(scheme: &str) -> Result<(), ApiError> {
    match scheme {
        "" | "http" => Ok(()),
        other => Err(unreachable_service(format!(
            "kube-sim's echo apps speak http only, not {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_paths() {
        let cases = [
            (
                "/api/v1/namespaces/ns/services/web:http/proxy/hello/x",
                Some((Through::Service, "web:http", "/hello/x")),
            ),
            (
                "/api/v1/namespaces/ns/services/http%3Aweb%3A80/proxy",
                Some((Through::Service, "http:web:80", "")),
            ),
            (
                "/api/v1/namespaces/ns/pods/web-1/proxy/",
                Some((Through::Pod, "web-1", "/")),
            ),
            ("/api/v1/namespaces/ns/services/web/proxyx", None),
            ("/api/v1/namespaces/ns/services/web", None),
            ("/api/v1/namespaces/ns/deployments/web/proxy", None),
        ];
        for (path, want) in cases {
            let got = parse_path(path).map(|p| (p.through, p.id, p.rest));
            let want = want.map(|(t, id, rest)| (t, id.to_string(), rest.to_string()));
            assert_eq!(got, want, "{path}");
        }
    }

    #[test]
    fn ids() {
        assert_eq!(split_id("web"), Some(("", "web", "")));
        assert_eq!(split_id("web:80"), Some(("", "web", "80")));
        assert_eq!(split_id("https:web:443"), Some(("https", "web", "443")));
        assert_eq!(split_id("a:b:c:d"), None);
        assert_eq!(split_id(":80"), None);
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, x-private"),
            ("keep-alive", "5"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "x"),
            ("x-private", "1"),
            ("x-kept", "2"),
            ("content-type", "text/plain"),
        ] {
            h.append(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{v}: {e}")),
            );
        }
        let filtered = end_to_end(&h);
        let kept: Vec<&str> = filtered.keys().map(HeaderName::as_str).collect();
        assert_eq!(kept, ["x-kept", "content-type"]);
    }
}

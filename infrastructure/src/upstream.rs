//! The applications proxy's way to a usecase: HTTP through the Kubernetes API
//! server's service proxy (`/api/v1/namespaces/{ns}/services/{name}:http/proxy/…`),
//! with kube's own connection, TLS, credentials and headers, and bodies that
//! stream both ways. kube-rs's `Client::send` cannot stream a request body (its
//! `Body::wrap_body` is crate-private), so this builds the same tower stack over
//! hyper with a body type of its own.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use std::time::Duration;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder, ServiceExt};

/// A request body the proxy can stream upstream.
pub type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;

/// Why the upstream client could not be built from the cluster configuration.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the applications proxy's connection to the API server: {0}")]
pub struct UpstreamSetupError(String);

/// Sends requests to the API server as kube-rs would, streaming both bodies.
#[derive(Clone)]
pub struct ApiServerHttp {
    service: BoxCloneSyncService<Request<UpstreamBody>, Response<Incoming>, BoxError>,
}

impl ApiServerHttp {
    /// The same server, TLS settings, credentials (refreshed like kube's) and extra
    /// headers as a kube `Client` built from `config`.
    pub fn new(config: &kube::Config) -> Result<Self, UpstreamSetupError> {
        let error = |e: kube::Error| UpstreamSetupError(e.to_string());
        let connector = config.rustls_https_connector().map_err(error)?;
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_idle_timeout(Duration::from_secs(60));
        let client = builder.build(connector);
        let service = ServiceBuilder::new()
            .layer(config.base_uri_layer())
            .option_layer(config.auth_layer().map_err(error)?)
            .layer(config.extra_headers_layer().map_err(error)?)
            .map_err(BoxError::from)
            .service(client);
        Ok(Self {
            service: BoxCloneSyncService::new(service),
        })
    }

    /// Sends one request (its URI is a path and query on the API server). The future
    /// is boxed and `'static`, so that handlers holding it stay `Send` for axum.
    pub fn send(
        &self,
        request: Request<UpstreamBody>,
    ) -> BoxFuture<'static, Result<Response<Incoming>, BoxError>> {
        self.service.clone().oneshot(request).boxed()
    }
}

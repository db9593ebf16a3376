//! Where a public usecase is reached from outside the cluster: one Ingress host
//! per exposed service. The API lists these endpoints and the cluster adapter
//! creates the Ingresses from the same function, so the two never disagree.

use shiplog_domain::{DeploymentConfig, Visibility};

/// How Ingresses are made and their URLs written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressSettings {
    /// Hosts are `<name>.<domain>` (further exposed services: `<name>-<service>.<domain>`).
    pub domain: String,
    /// The IngressClass to ask for; `None`: the cluster's default class.
    pub class: Option<String>,
    /// A TLS Secret (in shiplog's namespace) for every host; URLs are `https` when set.
    pub tls_secret: Option<String>,
    /// The port the ingress controller listens on when it is not the scheme's
    /// default (the simulator's listener), so that URLs answer as written.
    pub port: Option<u16>,
}

impl Default for IngressSettings {
    /// Hosts under `localhost`, which curl and browsers resolve to loopback.
    fn default() -> Self {
        Self {
            domain: "localhost".to_owned(),
            class: None,
            tls_secret: None,
            port: None,
        }
    }
}

/// One way into a public usecase: the Ingress of one exposed service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressEndpoint {
    /// The service's name (seed 002 calls it both `id` and `name`).
    pub service: String,
    /// The name of the usecase Service's port it reaches.
    pub port_name: String,
    /// The host name the Ingress rule matches.
    pub host: String,
    /// Where a browser reaches it.
    pub url: String,
}

impl IngressSettings {
    /// The endpoints of usecase `name` running `config`: one per exposed service
    /// when public, none when internal. The first exposed service gets the bare
    /// `<name>.<domain>`.
    pub fn endpoints(
        &self,
        name: &str,
        visibility: Visibility,
        config: &DeploymentConfig,
    ) -> Vec<IngressEndpoint> {
        if visibility != Visibility::Public {
            return Vec::new();
        }
        let scheme = if self.tls_secret.is_some() {
            "https"
        } else {
            "http"
        };
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        config
            .services()
            .into_iter()
            .filter(|s| s.exposed)
            .enumerate()
            .map(|(i, s)| {
                let host = if i == 0 {
                    format!("{name}.{}", self.domain)
                } else {
                    format!("{name}-{}.{}", s.name, self.domain)
                };
                IngressEndpoint {
                    service: s.name.to_owned(),
                    port_name: s.port_name.to_owned(),
                    url: format!("{scheme}://{host}{port}"),
                    host,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shiplog_domain::{ImageRef, Sidecar};
    use std::collections::BTreeMap;

    fn config() -> DeploymentConfig {
        let image = ImageRef::parse("image", "nginx").unwrap_or_else(|e| panic!("{e}"));
        DeploymentConfig::new(image, None, Some(80), BTreeMap::new(), None, None)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_public_service_is_reached_at_its_name_under_the_domain() {
        let settings = IngressSettings {
            domain: "apps.example.com".to_owned(),
            ..IngressSettings::default()
        };
        let endpoints = settings.endpoints("abc123xyz7", Visibility::Public, &config());
        assert_eq!(
            endpoints,
            vec![IngressEndpoint {
                service: "app".to_owned(),
                port_name: "http".to_owned(),
                host: "abc123xyz7.apps.example.com".to_owned(),
                url: "http://abc123xyz7.apps.example.com".to_owned(),
            }]
        );
        assert!(settings
            .endpoints("abc123xyz7", Visibility::Internal, &config())
            .is_empty());
    }

    #[test]
    fn tls_makes_https_urls_and_a_port_is_kept() {
        let tls = IngressSettings {
            tls_secret: Some("wildcard".to_owned()),
            ..IngressSettings::default()
        };
        assert_eq!(
            tls.endpoints("a", Visibility::Public, &config())[0].url,
            "https://a.localhost"
        );
        let sim = IngressSettings {
            port: Some(8082),
            ..IngressSettings::default()
        };
        assert_eq!(
            sim.endpoints("a", Visibility::Public, &config())[0].url,
            "http://a.localhost:8082"
        );
    }

    #[test]
    fn only_exposed_services_get_hosts_and_the_first_gets_the_bare_name() {
        let image = ImageRef::parse("image", "adminer").unwrap_or_else(|e| panic!("{e}"));
        let admin = Sidecar {
            name: "admin".to_owned(),
            image,
            container_port: 8080,
            env: BTreeMap::new(),
            exposed: true,
            generated_secrets: Vec::new(),
        };
        let db = config()
            .with_services("template", "db", false, Vec::new(), vec![admin])
            .unwrap_or_else(|e| panic!("{e}"));
        let endpoints = IngressSettings::default().endpoints("x", Visibility::Public, &db);
        assert_eq!(endpoints.len(), 1, "the database is not exposed");
        assert_eq!(endpoints[0].host, "x.localhost");
        assert_eq!(endpoints[0].port_name, "admin");
    }
}

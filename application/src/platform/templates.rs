//! The template catalog: what `POST /api/deployments` can create. Two templates
//! are built in (`nginx`, `postgres`); an operator adds or replaces templates
//! with a YAML (or JSON) file, `--templates FILE`.

use serde::{Deserialize, Serialize};
use shiplog_domain::{check_env, DeploymentConfig, ImageRef, InvalidField, Sidecar};
use std::collections::BTreeMap;
use thiserror::Error;

/// One service of a template: a container of the deployment's pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateService {
    /// Its name: the container's, its port's on the usecase's Service, its ingress's.
    pub name: String,
    /// Its image, in Docker's reference syntax (`nginx:stable`).
    pub image: String,
    /// The port it listens on.
    pub port: u16,
    /// Environment defaults; a deployment's `envVars` add to and override those of
    /// the first service.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Whether a public deployment gets an Ingress for it (default true).
    #[serde(default = "exposed")]
    pub exposed: bool,
    /// Variables whose values shiplog generates once per deployment and keeps in a
    /// Kubernetes Secret only (a password): never in the ledger, never shown.
    #[serde(default)]
    pub generated_secrets: Vec<String>,
    /// Variables whose values are secret (a password a deployment passes in
    /// `envVars`): sealed in the ledger, shown masked, put in the cluster's Secret
    /// only. The first (main) service's only, since `envVars` are that service's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_env: Vec<String>,
}

fn exposed() -> bool {
    true
}

/// A template: a name, what it is for, and its services (the first is the main one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Template {
    /// What clients ask for (`"template": "nginx"`).
    pub name: String,
    /// One sentence for people choosing a template.
    #[serde(default)]
    pub description: String,
    /// Its services, the main one first; at least one.
    pub services: Vec<TemplateService>,
}

/// The templates file: `templates: [...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplatesFile {
    templates: Vec<Template>,
}

/// Why a templates file cannot be used; shiplog refuses to start with one.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// It is not YAML of the expected shape.
    #[error("the templates file is not valid: {0}")]
    Syntax(String),
    /// A template is invalid; the field says where.
    #[error("the templates file is not valid: {0}")]
    Invalid(#[from] InvalidField),
}

/// The templates a deployment can be created from, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    templates: Vec<Template>,
}

impl Catalog {
    /// The built-in templates: `nginx` (a web server, public) and `postgres` (a
    /// database, never exposed, with a generated password).
    pub fn builtin() -> Self {
        let service =
            |name: &str, image: &str, port, env: &[(&str, &str)], exposed, generated: &[&str]| {
                TemplateService {
                    name: name.to_owned(),
                    image: image.to_owned(),
                    port,
                    env: env
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    exposed,
                    generated_secrets: generated.iter().map(|g| (*g).to_owned()).collect(),
                    // A password given explicitly is as secret as a generated one.
                    secret_env: generated.iter().map(|g| (*g).to_owned()).collect(),
                }
            };
        Self {
            templates: vec![
                Template {
                    name: "nginx".to_owned(),
                    description: "NGINX web server on port 80; serve your own content from an image built FROM nginx".to_owned(),
                    services: vec![service("nginx", "nginx:stable", 80, &[], true, &[])],
                },
                Template {
                    name: "postgres".to_owned(),
                    description: "PostgreSQL 16 on port 5432, never exposed through an ingress; its password is generated and kept in a Kubernetes Secret (POSTGRES_PASSWORD), and its data lives as long as its pod".to_owned(),
                    services: vec![service(
                        "postgres",
                        "postgres:16",
                        5432,
                        &[("POSTGRES_USER", "postgres"), ("POSTGRES_DB", "app")],
                        false,
                        &["POSTGRES_PASSWORD"],
                    )],
                },
            ],
        }
    }

    /// The built-in templates plus those of a templates file (`templates: [...]`, YAML
    /// or JSON); a template of the file with a built-in's name replaces it.
    pub fn with_file(text: &str) -> Result<Self, CatalogError> {
        let file: TemplatesFile =
            serde_saphyr::from_str(text).map_err(|e| CatalogError::Syntax(e.to_string()))?;
        let mut catalog = Self::builtin();
        for (i, template) in file.templates.into_iter().enumerate() {
            // Building a config checks every image, port, name and variable.
            template.config(&format!("templates[{i}]"), BTreeMap::new())?;
            match catalog
                .templates
                .iter_mut()
                .find(|t| t.name == template.name)
            {
                Some(existing) => *existing = template,
                None => catalog.templates.push(template),
            }
        }
        Ok(catalog)
    }

    /// Every template, built-in ones first.
    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    /// The template called `name`.
    pub fn get(&self, name: &str) -> Option<&Template> {
        self.templates.iter().find(|t| t.name == name)
    }

    /// The names of all templates, for error messages.
    pub fn names(&self) -> Vec<&str> {
        self.templates.iter().map(|t| t.name.as_str()).collect()
    }
}

impl Template {
    /// The variables this template marks secret (of its main service).
    pub fn secret_names(&self) -> &[String] {
        self.services
            .first()
            .map(|s| s.secret_env.as_slice())
            .unwrap_or_default()
    }

    /// Splits `env` into its plain variables and those this template marks secret
    /// (`None` when it holds none of them).
    pub fn split_secrets(
        &self,
        env: BTreeMap<String, String>,
    ) -> (BTreeMap<String, String>, Option<BTreeMap<String, String>>) {
        let (secret, plain): (BTreeMap<_, _>, BTreeMap<_, _>) = env
            .into_iter()
            .partition(|(name, _)| self.secret_names().contains(name));
        (plain, (!secret.is_empty()).then_some(secret))
    }

    /// The deployment config of this template with `env_vars` over the main
    /// service's defaults. `field` names the template in errors about the template
    /// itself; errors about `env_vars` name `envVars`.
    pub fn config(
        &self,
        field: &str,
        env_vars: BTreeMap<String, String>,
    ) -> Result<DeploymentConfig, InvalidField> {
        if self.name.trim().is_empty() {
            return Err(InvalidField::new(
                format!("{field}.name"),
                "must not be empty",
            ));
        }
        check_env(&env_vars, "envVars")?;
        let image = |i: usize, s: &TemplateService| {
            ImageRef::parse(&format!("{field}.services[{i}].image"), &s.image)
        };
        let (main, rest) = self.services.split_first().ok_or_else(|| {
            InvalidField::new(format!("{field}.services"), "needs at least one service")
        })?;
        for (i, s) in self.services.iter().enumerate() {
            let at = format!("{field}.services[{i}].secretEnv");
            if i > 0 && !s.secret_env.is_empty() {
                return Err(InvalidField::new(
                    at,
                    "only the first (main) service takes secret variables, as envVars reach only it",
                ));
            }
            if let Some(name) = s
                .secret_env
                .iter()
                .find(|n| check_env(&BTreeMap::from([((*n).clone(), String::new())]), &at).is_err())
            {
                return Err(InvalidField::new(
                    at,
                    format!("{name:?} is not an environment variable name"),
                ));
            }
        }
        let mut env = main.env.clone();
        env.extend(env_vars);
        let config = DeploymentConfig::new(image(0, main)?, None, Some(main.port), env, None, None)
            .map_err(|e| {
                // The domain names its own fields (`config.containerPort`); say where in the template.
                let at = if e.field.starts_with("config.env") {
                    e.field
                        .replacen("config.env", &format!("{field}.services[0].env"), 1)
                } else {
                    format!("{field}.services[0].port")
                };
                InvalidField::new(at, e.reason)
            })?;
        let sidecars = rest
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(Sidecar {
                    name: s.name.clone(),
                    image: image(i + 1, s)?,
                    container_port: s.port,
                    env: s.env.clone(),
                    exposed: s.exposed,
                    generated_secrets: s.generated_secrets.clone(),
                })
            })
            .collect::<Result<Vec<_>, InvalidField>>()?;
        config.with_services(
            field,
            &main.name,
            main.exposed,
            main.generated_secrets.clone(),
            sidecars,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_templates_make_valid_configs() {
        let catalog = Catalog::builtin();
        assert_eq!(catalog.names(), ["nginx", "postgres"]);
        for template in catalog.templates() {
            let config = template
                .config("template", BTreeMap::new())
                .unwrap_or_else(|e| panic!("{}: {e}", template.name));
            assert_eq!(
                config.service_name.as_deref(),
                Some(template.services[0].name.as_str())
            );
        }
        let postgres = catalog
            .get("postgres")
            .map(|t| t.config("template", BTreeMap::new()))
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("postgres"));
        assert!(!postgres.exposed, "a database gets no ingress");
        assert_eq!(postgres.generated_secrets, ["POSTGRES_PASSWORD"]);
        assert!(
            !postgres.env.contains_key("POSTGRES_PASSWORD"),
            "the password is generated in the cluster, not written to the ledger"
        );
    }

    #[test]
    fn env_vars_override_the_main_service_defaults() {
        let catalog = Catalog::builtin();
        let template = catalog
            .get("postgres")
            .unwrap_or_else(|| panic!("postgres"));
        let env = BTreeMap::from([("POSTGRES_DB".to_owned(), "shop".to_owned())]);
        let config = template
            .config("template", env)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.env["POSTGRES_DB"], "shop");
        assert_eq!(config.env["POSTGRES_USER"], "postgres");
        let bad = BTreeMap::from([("1X".to_owned(), "y".to_owned())]);
        assert_eq!(
            template.config("template", bad).err().map(|e| e.field),
            Some("envVars.1X".to_owned())
        );
    }

    #[test]
    fn a_templates_file_adds_and_replaces_templates() {
        let catalog = Catalog::with_file(
            r#"
templates:
  - name: nginx
    description: pinned nginx
    services:
      - {name: web, image: "nginx:1.27.3", port: 80}
  - name: wiki
    description: a wiki with its database
    services:
      - name: wiki
        image: requarks/wiki:2
        port: 3000
        env: {DB_TYPE: postgres, DB_HOST: localhost}
      - name: db
        image: postgres:16
        port: 5432
        exposed: false
        generatedSecrets: [POSTGRES_PASSWORD]
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(catalog.names(), ["nginx", "postgres", "wiki"]);
        assert_eq!(
            catalog.get("nginx").map(|t| t.services[0].image.as_str()),
            Some("nginx:1.27.3")
        );
        let wiki = catalog
            .get("wiki")
            .map(|t| t.config("template", BTreeMap::new()))
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("wiki"));
        assert_eq!(wiki.services().len(), 2);
        assert_eq!(wiki.sidecars[0].generated_secrets, ["POSTGRES_PASSWORD"]);
    }

    #[test]
    fn an_invalid_templates_file_says_where() {
        for (description, text, needle) in [
            ("not the shape", "templates: 3", "not valid"),
            ("no services", "templates: [{name: x, services: []}]", "templates[0].services"),
            (
                "a bad image",
                "templates: [{name: x, services: [{name: a, image: 'Bad Image', port: 1}]}]",
                "templates[0].services[0].image",
            ),
            (
                "a port of 0",
                "templates: [{name: x, services: [{name: a, image: nginx, port: 0}]}]",
                "templates[0].services[0].port",
            ),
            (
                "two services of one name",
                "templates: [{name: x, services: [{name: a, image: nginx, port: 1}, {name: a, image: nginx, port: 2}]}]",
                "templates[0].services[1].name",
            ),
            (
                "an unknown key",
                "templates: [{name: x, servces: []}]",
                "servces",
            ),
        ] {
            let error = Catalog::with_file(text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| panic!("{description}: accepted"));
            assert!(error.contains(needle), "{description}: {error}");
        }
    }
}

//! The one list of Kubernetes permissions (`kube_permissions::PERMISSIONS`) and the two
//! places that repeat it: the Role in `deploy/base/role.yaml` and the README's table.
//! (That the adapter calls nothing beyond the list is tested against the simulator, in the
//! API's tests: `rbac_coverage`.)

use k8s_openapi::api::rbac::v1::Role;
use shiplog_infrastructure::kube_permissions::{markdown_table, Verb, PERMISSIONS};
use std::collections::BTreeSet;
use std::path::Path;

/// One granted (API group, resource, verb).
type Grant = (String, String, String);

fn repository_file(path: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn listed() -> BTreeSet<Grant> {
    PERMISSIONS
        .iter()
        .flat_map(|p| {
            p.verbs.iter().map(|v| {
                (
                    p.group.to_owned(),
                    p.resource.to_owned(),
                    v.as_str().to_owned(),
                )
            })
        })
        .collect()
}

#[test]
fn the_role_grants_exactly_the_listed_permissions() {
    let role: Role = serde_saphyr::from_str(&repository_file("deploy/base/role.yaml"))
        .unwrap_or_else(|e| panic!("deploy/base/role.yaml: {e}"));
    let mut granted = BTreeSet::new();
    for (i, rule) in role.rules.iter().flatten().enumerate() {
        assert!(
            rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
            "rule {i}: resource names and non-resource URLs are not in the list"
        );
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    assert!(
                        Verb::parse(verb).is_some(),
                        "rule {i}: {verb:?} is not a verb of the list (no wildcards)"
                    );
                    assert!(group != "*" && resource != "*", "rule {i}: no wildcards");
                    granted.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    let listed = listed();
    let beyond: Vec<&Grant> = granted.difference(&listed).collect();
    let lacking: Vec<&Grant> = listed.difference(&granted).collect();
    assert!(
        beyond.is_empty(),
        "deploy/base/role.yaml grants what PERMISSIONS does not list (least privilege): {beyond:?}"
    );
    assert!(
        lacking.is_empty(),
        "deploy/base/role.yaml lacks what PERMISSIONS lists (shiplog would be refused): {lacking:?}"
    );
}

#[test]
fn the_readme_table_is_the_list_rendered() {
    const START: &str = "<!-- rbac-table:start -->";
    const END: &str = "<!-- rbac-table:end -->";
    let readme = repository_file("README.md");
    let start = readme
        .find(START)
        .unwrap_or_else(|| panic!("README.md has no {START} marker"));
    let end = readme
        .find(END)
        .unwrap_or_else(|| panic!("README.md has no {END} marker"));
    assert!(start < end, "the markers are in the wrong order");
    let expected = markdown_table();
    if std::env::var_os("SHIPLOG_UPDATE_README").is_some() {
        let updated = format!(
            "{}\n{expected}{}",
            &readme[..start + START.len()],
            &readme[end..]
        );
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        std::fs::write(&file, updated).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        return;
    }
    assert_eq!(
        readme[start + START.len()..end].trim(),
        expected.trim(),
        "the README's permissions table differs from kube_permissions::PERMISSIONS; \
         SHIPLOG_UPDATE_README=1 cargo nextest run -E 'test(the_readme_table_is_the_list_rendered)' rewrites it"
    );
}

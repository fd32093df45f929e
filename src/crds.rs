//! The CustomResourceDefinitions generated from the API types, as YAML.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::api::{Account, Dataflow, Destination};

/// Every CRD Outflow serves, in the order they are installed.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![Destination::crd(), Account::crd(), Dataflow::crd()]
}

/// One CRD as a YAML document, the form checked in under `crds/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(crd)
}

/// Every CRD as one multi-document YAML stream.
pub fn all_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&to_yaml(&crd)?);
    }
    Ok(out)
}

/// The file name a CRD is checked in under, e.g. `crds/dataflows.outflow.dev.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The checked-in CRDs are exactly what the types generate: run
    /// `cargo run -- crds --out-dir manifests/crds` after changing `src/api`.
    #[test]
    fn checked_in_crds_match_the_types() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
        for crd in super::all() {
            let path = dir.join(super::file_name(&crd));
            let checked_in =
                std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let generated = super::to_yaml(&crd).unwrap();
            assert!(
                checked_in == generated,
                "{} differs from the types; regenerate with `cargo run -- crds --out-dir manifests/crds`",
                path.display()
            );
        }
    }
}

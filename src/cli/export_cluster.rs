//! `outflow export --from-cluster`, as an export Job's pod runs it: the Dataflow, its Account and
//! Destination read from the API server, the credentials from the mounted Secret folder, and the
//! run report written back onto the pod's own Job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::api::{Account, Dataflow, Destination};
use crate::executor::job_spec::ANNOTATION_REPORT;
use crate::executor::jobs::ANNOTATION_ERROR;
use crate::manifest::{Located, ManifestSet, Origin};

fn located<T: serde::Serialize>(object: T, what: &str) -> Located<T> {
    Located {
        origin: Origin { path: PathBuf::from(format!("cluster:{what}")), document: 1 },
        raw: serde_json::to_value(&object).unwrap_or_default(),
        object,
    }
}

/// The objects of one Dataflow, read from the cluster, with the Account's Secret taken from the
/// mounted folder (one file per key) instead of the API.
pub async fn read_set(namespace: &str, name: &str, credentials_dir: Option<&Path>) -> anyhow::Result<ManifestSet> {
    let client = kube::Client::try_default().await.context("connecting to the Kubernetes API")?;
    let dataflow = Api::<Dataflow>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .with_context(|| format!("getting Dataflow {namespace}/{name}"))?;
    let account = Api::<Account>::namespaced(client.clone(), namespace)
        .get(&dataflow.spec.account)
        .await
        .with_context(|| format!("getting Account {namespace}/{}", dataflow.spec.account))?;
    let destination = Api::<Destination>::all(client)
        .get(&account.spec.destination)
        .await
        .with_context(|| format!("getting Destination {}", account.spec.destination))?;
    let mut set = ManifestSet::default();
    if let (Some(reference), Some(dir)) = (&account.spec.credentials_secret_ref, credentials_dir) {
        let mut secret = Secret::default();
        secret.metadata.name = Some(reference.name.clone());
        secret.metadata.namespace = Some(namespace.to_string());
        secret.string_data = Some(read_credentials(dir)?);
        set.secrets.push(located(secret, dir.to_string_lossy().as_ref()));
    }
    set.dataflows.push(located(dataflow, "dataflow"));
    set.accounts.push(located(account, "account"));
    set.destinations.push(located(destination, "destination"));
    Ok(set)
}

/// The keys of a mounted Secret: one file each (Kubernetes' `..data` links are skipped).
fn read_credentials(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading credentials folder {}", dir.display()))? {
        let entry = entry?;
        let key = entry.file_name().to_string_lossy().into_owned();
        if key.starts_with('.') || entry.path().is_dir() {
            continue;
        }
        let value = std::fs::read_to_string(entry.path())
            .with_context(|| format!("reading credential '{key}' in {}", dir.display()))?;
        out.insert(key, value);
    }
    Ok(out)
}

/// Writes the run's report (or its error) as annotations of the pod's own Job.
pub async fn report_to_job(
    namespace: &str,
    job: &str,
    report: Option<&serde_json::Value>,
    error: Option<&str>,
) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await.context("connecting to the Kubernetes API")?;
    let mut annotations = serde_json::Map::new();
    if let Some(report) = report {
        annotations.insert(ANNOTATION_REPORT.into(), json!(report.to_string()));
    }
    if let Some(error) = error {
        annotations.insert(ANNOTATION_ERROR.into(), json!(error.chars().take(1000).collect::<String>()));
    }
    let patch = json!({"metadata": {"annotations": annotations}});
    Api::<Job>::namespaced(client, namespace)
        .patch(job, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("writing the run report onto Job {namespace}/{job}"))?;
    Ok(())
}

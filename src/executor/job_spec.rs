//! The Kubernetes Job that runs one export: deterministic name, owned by its Dataflow, labelled
//! with it, least-privilege and locked-down pod. Pure: building the object does no I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::api::Dataflow;
pub use crate::plan::runs::RunRequest;
use crate::plan::schedule::format_time;

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_DATAFLOW: &str = "outflow.dev/dataflow";
pub const LABEL_SEGMENT: &str = "outflow.dev/segment";
pub const ANNOTATION_SCHEDULED: &str = "outflow.dev/scheduled-time";
pub const ANNOTATION_SEGMENT: &str = "outflow.dev/segment-id";
pub const ANNOTATION_RUN_REQUEST: &str = "outflow.dev/run-request";
/// Where the exporter writes its run report (JSON) on its own Job once done.
pub const ANNOTATION_REPORT: &str = "outflow.dev/run-report";
/// Where the Account's Secret is mounted in the exporter pod.
pub const CREDENTIALS_DIR: &str = "/var/run/outflow/credentials";

/// Controller-wide Job settings; a Dataflow's `spec.job` overrides the first three.
#[derive(Debug, Clone)]
pub struct JobDefaults {
    pub image: String,
    pub service_account: String,
    pub profiles_url: String,
    pub backoff_limit: i32,
    pub active_deadline_seconds: i64,
    pub ttl_seconds_after_finished: i32,
}

impl Default for JobDefaults {
    fn default() -> Self {
        Self {
            image: "ghcr.io/outflow-dev/outflow:0.1.0".into(),
            service_account: "outflow-exporter".into(),
            profiles_url: "/data/profiles".into(),
            backoff_limit: 2,
            active_deadline_seconds: 6 * 3600,
            ttl_seconds_after_finished: 7 * 24 * 3600,
        }
    }
}

/// The arguments of `outflow export` for one run, as the pod (or a test playing it) runs it.
pub fn export_args(dataflow: &Dataflow, run: &RunRequest, profiles_url: &str) -> Vec<String> {
    let mut args = vec![
        "export".to_string(),
        "--from-cluster".into(),
        "--dataflow".into(),
        format!("{}/{}", dataflow.namespace().unwrap_or_default(), dataflow.name_any()),
        "--segment".into(),
        run.segment.clone(),
        "--now".into(),
        format_time(run.scheduled),
        "--profiles".into(),
        profiles_url.to_string(),
        "--credentials-dir".into(),
        CREDENTIALS_DIR.into(),
        "--report-to-job".into(),
        run.id.clone(),
    ];
    if let Some(w) = &run.watermark {
        args.extend(["--watermark".into(), w.clone()]);
    }
    args
}

/// The Job for one run. Labels and annotations are Outflow's own: nothing is copied from the
/// Dataflow, so Argo CD's tracking labels never land on a Job it would then prune.
pub fn job_for(dataflow: &Dataflow, run: &RunRequest, credentials_secret: Option<&str>, defaults: &JobDefaults) -> Job {
    let options = dataflow.spec.job.clone().unwrap_or_default();
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_NAME.to_string(), "outflow".to_string());
    labels.insert(LABEL_COMPONENT.to_string(), "export".to_string());
    labels.insert(LABEL_DATAFLOW.to_string(), label_value(&dataflow.name_any()));
    labels.insert(LABEL_SEGMENT.to_string(), label_value(&run.segment));
    let mut annotations = BTreeMap::new();
    annotations.insert(ANNOTATION_SCHEDULED.to_string(), format_time(run.scheduled));
    annotations.insert(ANNOTATION_SEGMENT.to_string(), run.segment.clone());
    if let Some(token) = &run.run_request {
        annotations.insert(ANNOTATION_RUN_REQUEST.to_string(), token.clone());
    }
    let owner = dataflow.controller_owner_ref(&()).map(|o| serde_json::to_value(o).unwrap_or_default());
    let mut volumes = vec![json!({"name": "tmp", "emptyDir": {}})];
    let mut mounts = vec![json!({"name": "tmp", "mountPath": "/tmp"})];
    if let Some(secret) = credentials_secret {
        volumes.push(json!({"name": "credentials", "secret": {"secretName": secret, "defaultMode": 0o400}}));
        mounts.push(json!({"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": true}));
    }
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": run.id,
            "namespace": dataflow.namespace(),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
        },
        "spec": {
            "backoffLimit": options.backoff_limit.unwrap_or(defaults.backoff_limit),
            "activeDeadlineSeconds": options.active_deadline_seconds.unwrap_or(defaults.active_deadline_seconds),
            "ttlSecondsAfterFinished": options.ttl_seconds_after_finished.unwrap_or(defaults.ttl_seconds_after_finished),
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": defaults.service_account,
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "fsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"}
                    },
                    "containers": [{
                        "name": "export",
                        "image": defaults.image,
                        "args": export_args(dataflow, run, &defaults.profiles_url),
                        "env": [
                            {"name": "RUST_LOG", "value": "info"},
                            {"name": "OUTFLOW_LOG_FORMAT", "value": "json"}
                        ],
                        "volumeMounts": mounts,
                        "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]}
                        }
                    }],
                    "volumes": volumes
                }
            }
        }
    });
    serde_json::from_value(job).expect("the Job literal matches the Job type")
}

/// A label value: at most 63 characters of `[A-Za-z0-9._-]`, starting and ending alphanumeric.
pub fn label_value(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .take(63)
        .collect();
    cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::schedule::parse_time;

    fn dataflow() -> Dataflow {
        serde_json::from_value(json!({
            "apiVersion": "outflow.dev/v1alpha1", "kind": "Dataflow",
            "metadata": {
                "name": "high-value", "namespace": "marketing", "uid": "1234",
                "labels": {"app.kubernetes.io/instance": "marketing-config", "team": "crm"},
                "annotations": {"argocd.argoproj.io/tracking-id": "marketing:outflow.dev/Dataflow:marketing/high-value"}
            },
            "spec": {"account": "s3", "enabled": true, "segments": [{"id": "seg:1", "schedule": {"daily": {"at": "06:00"}}}],
                     "fields": [{"source": "personalEmail.address", "target": "email"}], "job": {"backoffLimit": 0}}
        }))
        .unwrap()
    }

    fn run() -> RunRequest {
        RunRequest {
            id: "high-value-seg-1-0123456789".into(),
            segment: "seg:1".into(),
            scheduled: parse_time("2026-03-01T06:00:00Z").unwrap(),
            watermark: Some("2026-02-28T06:00:00Z".into()),
            run_request: None,
        }
    }

    #[test]
    fn the_job_is_named_owned_labelled_and_annotated() {
        let job = job_for(&dataflow(), &run(), Some("s3-creds"), &JobDefaults::default());
        assert_eq!(job.metadata.name.as_deref(), Some("high-value-seg-1-0123456789"));
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("Dataflow", "high-value", Some(true))
        );
        let labels = job.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_DATAFLOW], "high-value");
        assert_eq!(labels[LABEL_SEGMENT], "seg_1");
        assert!(
            !labels.contains_key("app.kubernetes.io/instance") && !labels.contains_key("team"),
            "no Dataflow label is copied"
        );
        let annotations = job.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations[ANNOTATION_SCHEDULED], "2026-03-01T06:00:00Z");
        assert!(!annotations.keys().any(|k| k.starts_with("argocd.argoproj.io")));
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0), "the Dataflow's job options win");
        assert_eq!(spec.ttl_seconds_after_finished, Some(JobDefaults::default().ttl_seconds_after_finished));
    }

    #[test]
    fn the_pod_is_locked_down_and_mounts_only_its_accounts_secret() {
        let job = job_for(&dataflow(), &run(), Some("s3-creds"), &JobDefaults::default());
        let pod = job.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("outflow-exporter"));
        assert_eq!(pod.security_context.as_ref().unwrap().run_as_non_root, Some(true));
        let container = &pod.containers[0];
        let sc = container.security_context.as_ref().unwrap();
        assert_eq!((sc.read_only_root_filesystem, sc.allow_privilege_escalation), (Some(true), Some(false)));
        assert_eq!(sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap(), &vec!["ALL".to_string()]);
        let secrets: Vec<_> =
            pod.volumes.unwrap().iter().filter_map(|v| v.secret.as_ref()?.secret_name.clone()).collect();
        assert_eq!(secrets, vec!["s3-creds".to_string()]);
        assert!(container.env.as_ref().unwrap().iter().all(|e| e.value_from.is_none()), "no secret in the environment");
        let args = container.args.as_ref().unwrap().join(" ");
        assert_eq!(
            args,
            "export --from-cluster --dataflow marketing/high-value --segment seg:1 --now 2026-03-01T06:00:00Z --profiles /data/profiles --credentials-dir /var/run/outflow/credentials --report-to-job high-value-seg-1-0123456789 --watermark 2026-02-28T06:00:00Z"
        );
    }
}

//! The Job executor: one Kubernetes Job per run, created idempotently under the run's
//! deterministic name, so a restarted controller never starts a run twice. The Job's pod runs
//! `outflow export` and writes its report onto the Job; the controller reads it back when the
//! Job completes.

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::job_spec::{
    ANNOTATION_REPORT, ANNOTATION_RUN_REQUEST, ANNOTATION_SCHEDULED, ANNOTATION_SEGMENT, JobDefaults, LABEL_DATAFLOW,
    job_for, label_value,
};
use super::runner::{RunFailure, finished_record};
use super::{Observed, RunRequest};
use crate::api::{Dataflow, FIELD_MANAGER, RunResult};
use crate::export::RunReport;
use crate::plan::schedule::parse_time;

/// Where the exporter writes why a run failed, next to the report.
pub const ANNOTATION_ERROR: &str = "outflow.dev/run-error";
/// Finished Jobs kept per Dataflow, as a CronJob keeps them.
pub const SUCCESSFUL_JOBS_HISTORY_LIMIT: usize = 3;
pub const FAILED_JOBS_HISTORY_LIMIT: usize = 1;

pub struct JobExecutor {
    client: Client,
    pub defaults: JobDefaults,
    identities: Mutex<HashSet<String>>,
}

impl JobExecutor {
    pub fn new(client: Client, defaults: JobDefaults) -> Self {
        Self { client, defaults, identities: Mutex::default() }
    }

    /// Creates the run's Job unless it exists; returns whether it was created.
    pub async fn start(
        &self,
        dataflow: &Dataflow,
        run: &RunRequest,
        credentials_secret: Option<&str>,
    ) -> Result<bool, kube::Error> {
        let ns = dataflow.namespace().unwrap_or_default();
        self.ensure_identity(&ns).await?;
        let job = job_for(dataflow, run, credentials_secret, &self.defaults);
        match Api::<Job>::namespaced(self.client.clone(), &ns).create(&PostParams::default(), &job).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The exporter's ServiceAccount and its binding to `outflow-exporter` in the namespace.
    async fn ensure_identity(&self, ns: &str) -> Result<(), kube::Error> {
        if self.identities.lock().unwrap_or_else(|e| e.into_inner()).contains(ns) {
            return Ok(());
        }
        let sa = &self.defaults.service_account;
        let params = PatchParams::apply(FIELD_MANAGER);
        let account = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "labels": {"app.kubernetes.io/name": "outflow"}}});
        Api::<ServiceAccount>::namespaced(self.client.clone(), ns).patch(sa, &params, &Patch::Apply(&account)).await?;
        let binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": sa, "labels": {"app.kubernetes.io/name": "outflow"}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "outflow-exporter"},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
        });
        Api::<RoleBinding>::namespaced(self.client.clone(), ns).patch(sa, &params, &Patch::Apply(&binding)).await?;
        self.identities.lock().unwrap_or_else(|e| e.into_inner()).insert(ns.to_string());
        Ok(())
    }

    async fn jobs_of(&self, dataflow: &Dataflow) -> Result<Vec<Job>, kube::Error> {
        let ns = dataflow.namespace().unwrap_or_default();
        let uid = dataflow.uid().unwrap_or_default();
        let selector = format!("{LABEL_DATAFLOW}={}", label_value(&dataflow.name_any()));
        let jobs =
            Api::<Job>::namespaced(self.client.clone(), &ns).list(&ListParams::default().labels(&selector)).await?;
        Ok(jobs.items.into_iter().filter(|j| j.owner_references().iter().any(|o| o.uid == uid)).collect())
    }

    /// The runs of a Dataflow as its Jobs tell them.
    pub async fn observe(&self, dataflow: &Dataflow) -> Result<Vec<Observed>, kube::Error> {
        Ok(self.jobs_of(dataflow).await?.iter().filter_map(observed).collect())
    }

    /// Deletes finished Jobs past the history limits, oldest first. Their records are in status.
    pub async fn prune(&self, dataflow: &Dataflow) -> Result<(), kube::Error> {
        let ns = dataflow.namespace().unwrap_or_default();
        let api = Api::<Job>::namespaced(self.client.clone(), &ns);
        let finished: Vec<(String, RunResult, String)> = self
            .jobs_of(dataflow)
            .await?
            .iter()
            .filter_map(|j| match observed(j)? {
                Observed::Finished { record, .. } => Some((j.name_any(), record.result?, record.scheduled_time)),
                Observed::Running { .. } => None,
            })
            .collect();
        let background = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
        for name in jobs_past_history_limits(finished) {
            match api.delete(&name, &background).await {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The finished Jobs to delete, given (name, result, scheduled time): all but the newest
/// [`SUCCESSFUL_JOBS_HISTORY_LIMIT`] succeeded and [`FAILED_JOBS_HISTORY_LIMIT`] failed ones.
pub fn jobs_past_history_limits(mut finished: Vec<(String, RunResult, String)>) -> Vec<String> {
    finished.sort_by(|a, b| b.2.cmp(&a.2));
    let (mut succeeded, mut failed) = (0, 0);
    let mut delete = Vec::new();
    for (name, result, _) in finished {
        let (count, limit) = if result == RunResult::Succeeded {
            succeeded += 1;
            (succeeded, SUCCESSFUL_JOBS_HISTORY_LIMIT)
        } else {
            failed += 1;
            (failed, FAILED_JOBS_HISTORY_LIMIT)
        };
        if count > limit {
            delete.push(name);
        }
    }
    delete
}

/// A run from its Job: going, or finished with the report the exporter left on it.
fn observed(job: &Job) -> Option<Observed> {
    let annotations = job.annotations();
    let scheduled = parse_time(annotations.get(ANNOTATION_SCHEDULED)?)?;
    let request = RunRequest {
        id: job.name_any(),
        segment: annotations.get(ANNOTATION_SEGMENT)?.clone(),
        scheduled,
        watermark: None,
        run_request: annotations.get(ANNOTATION_RUN_REQUEST).cloned(),
    };
    let status = job.status.clone().unwrap_or_default();
    let started: DateTime<Utc> =
        status.start_time.as_ref().and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0)).unwrap_or(scheduled);
    let condition =
        |type_: &str| status.conditions.iter().flatten().find(|c| c.type_ == type_ && c.status == "True").cloned();
    let ended = |c: &k8s_openapi::api::batch::v1::JobCondition| {
        c.last_transition_time
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0))
            .unwrap_or_else(Utc::now)
    };
    if let Some(done) = condition("Complete") {
        let outcome = match annotations.get(ANNOTATION_REPORT).map(|r| serde_json::from_str::<RunReport>(r)) {
            Some(Ok(report)) => Ok(report),
            Some(Err(e)) => Err(RunFailure {
                message: format!("Job {} left an unreadable report: {e}", job.name_any()),
                permanent: false,
            }),
            None => Err(RunFailure {
                message: format!("Job {} completed without a run report", job.name_any()),
                permanent: false,
            }),
        };
        let (record, watermark) = finished_record(&request, started, ended(&done), &outcome);
        return Some(Observed::Finished { record, watermark });
    }
    if let Some(failed) = condition("Failed") {
        let message = annotations.get(ANNOTATION_ERROR).cloned().unwrap_or_else(|| {
            format!(
                "Job {} failed ({}): {}",
                job.name_any(),
                failed.reason.clone().unwrap_or_default(),
                failed.message.clone().unwrap_or_default()
            )
        });
        let (record, _) =
            finished_record(&request, started, ended(&failed), &Err(RunFailure { message, permanent: false }));
        return Some(Observed::Finished { record, watermark: None });
    }
    Some(Observed::Running { request, started })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_three_succeeded_and_one_failed_job() {
        let jobs = vec![
            ("s1".to_string(), RunResult::Succeeded, "2026-01-01T01:00:00Z".to_string()),
            ("s2".to_string(), RunResult::Succeeded, "2026-01-01T02:00:00Z".to_string()),
            ("f1".to_string(), RunResult::Failed, "2026-01-01T03:00:00Z".to_string()),
            ("s3".to_string(), RunResult::Succeeded, "2026-01-01T04:00:00Z".to_string()),
            ("s4".to_string(), RunResult::Succeeded, "2026-01-01T05:00:00Z".to_string()),
            ("f2".to_string(), RunResult::Failed, "2026-01-01T06:00:00Z".to_string()),
        ];
        assert_eq!(jobs_past_history_limits(jobs), vec!["f1".to_string(), "s1".to_string()]);
    }
}

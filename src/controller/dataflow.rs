//! Dataflow reconciler: resolves the Account and Destination, checks fields against the
//! Destination, folds what the executor reports into status, starts the runs that are due, and
//! requeues at the earliest next run. A finished in-process run or a changed Job wakes it; there
//! is no polling.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::Stream;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use super::destination::LogOutcome;
use super::{Context, Error, status};
use crate::api::{Account, Dataflow, DataflowStatus, Destination, RUN_REQUESTED_ANNOTATION, RunRecord, RunResult};
use crate::executor::in_process::{DataflowKey, OwnedInputs};
use crate::plan::conditions::{READY, find, is_true, merge, readiness};
use crate::plan::history::{DEFAULT_HISTORY_LIMIT, degraded};
use crate::plan::schedule::format_time;
use crate::plan::tick::{Tick, tick};
use crate::plan::validate::{AccountState, DataflowPlan, check_dataflow, summarize};

/// Longest the controller sleeps on a Dataflow with nothing scheduled, to refresh its status.
const IDLE_RESYNC: Duration = Duration::from_secs(3600);
/// Annotation naming the segments a manual run is for (comma-separated; all when absent).
pub const RUN_SEGMENTS_ANNOTATION: &str = "outflow.dev/run-segments";

pub fn controller(
    client: Client,
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    finished_runs: tokio::sync::mpsc::UnboundedReceiver<DataflowKey>,
) -> impl Stream<Item = ()> {
    let controller =
        Controller::new(super::scoped::<Dataflow>(&client, &ctx.config.namespace), watcher::Config::default());
    let by_account = controller.store();
    let all = controller.store();
    let finished = futures::stream::unfold(finished_runs, |mut rx| async move {
        rx.recv().await.map(|(ns, name)| (ObjectRef::<Dataflow>::new(&name).within(&ns), rx))
    });
    let controller = controller
        .watches(super::scoped::<Account>(&client, &ctx.config.namespace), watcher::Config::default(), move |account| {
            let (ns, name) = (account.namespace(), account.name_any());
            by_account
                .state()
                .into_iter()
                .filter(|d| d.namespace() == ns && d.spec.account == name)
                .map(|d| ObjectRef::from_obj(d.as_ref()))
                .collect::<Vec<_>>()
        })
        // A catalog change can change which fields are valid; catalog edits are rare, so every
        // Dataflow is looked at again.
        .watches(Api::<Destination>::all(client.clone()), watcher::Config::default(), move |_| {
            all.state().into_iter().map(|d| ObjectRef::from_obj(d.as_ref())).collect::<Vec<_>>()
        })
        .reconcile_on(finished);
    let controller = if ctx.executor.is_in_process() {
        controller
    } else {
        controller.owns(
            super::scoped::<Job>(&client, &ctx.config.namespace),
            watcher::Config::default().labels("app.kubernetes.io/component=export"),
        )
    };
    controller.graceful_shutdown_on(shutdown).run(reconcile, error_policy, ctx).map_ok_or_log("Dataflow")
}

struct Resolved {
    account: Option<Account>,
    destination: Option<Destination>,
}

async fn resolve(ctx: &Context, dataflow: &Dataflow, ns: &str) -> Result<Resolved, Error> {
    let account = Api::<Account>::namespaced(ctx.client.clone(), ns)
        .get_opt(&dataflow.spec.account)
        .await
        .map_err(Error::kube("getting", "Account", &dataflow.spec.account))?;
    let destination = match &account {
        Some(a) => Api::<Destination>::all(ctx.client.clone())
            .get_opt(&a.spec.destination)
            .await
            .map_err(Error::kube("getting", "Destination", &a.spec.destination))?,
        None => None,
    };
    Ok(Resolved { account, destination })
}

async fn reconcile(dataflow: Arc<Dataflow>, ctx: Arc<Context>) -> Result<Action, Error> {
    let now = Utc::now();
    let ns = dataflow.namespace().unwrap_or_default();
    let name = dataflow.name_any();
    let resolved = resolve(&ctx, &dataflow, &ns).await?;
    let previous = dataflow.status.clone().unwrap_or_default();
    let checked = check_dataflow(
        &dataflow,
        account_state(resolved.account.as_ref()),
        resolved.destination.as_ref(),
        once_anchor(&previous, now),
    );
    let observed = ctx.executor.observe(&dataflow).await.map_err(Error::kube("listing runs of", "Dataflow", &name))?;

    // Not ready: runs already going still get folded in, but nothing starts.
    let idle_plan = DataflowPlan { segments: Vec::new(), fields: Vec::new(), format: None };
    let plan = checked.as_ref().unwrap_or(&idle_plan);
    let mut spec = dataflow.spec.clone();
    spec.enabled &= checked.is_ok();
    let run_segments: Vec<String> = dataflow
        .annotations()
        .get(RUN_SEGMENTS_ANNOTATION)
        .map(|s| s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    let history_limit = dataflow.spec.run_history_limit.map_or(DEFAULT_HISTORY_LIMIT, |l| l as usize);
    let inputs = format!(
        "{}/{}/{}",
        dataflow.metadata.generation.unwrap_or_default(),
        resolved.account.as_ref().and_then(|a| a.metadata.resource_version.clone()).unwrap_or_default(),
        resolved.destination.as_ref().and_then(|d| d.metadata.resource_version.clone()).unwrap_or_default()
    );
    let step = tick(&Tick {
        namespace: &ns,
        name: &name,
        spec: &spec,
        plan,
        previous: &previous,
        observed: &observed,
        run_request: dataflow.annotations().get(RUN_REQUESTED_ANNOTATION).map(String::as_str),
        run_request_segments: &run_segments,
        now,
        starting_deadline: dataflow
            .spec
            .starting_deadline_seconds
            .map_or(ctx.config.starting_deadline, |s| chrono::Duration::seconds(i64::from(s))),
        history_limit,
        inputs: &inputs,
    });

    tracing::debug!(dataflow = %name, namespace = %ns, observed = observed.len(), start = step.start.len(), history = step.history.len(), "scheduling step");
    if let (Ok(plan), Some(account), Some(destination)) = (&checked, &resolved.account, &resolved.destination) {
        start_runs(&ctx, &dataflow, &step.start, plan, account, destination).await?;
    }

    let generation = dataflow.metadata.generation;
    let mut desired = match &checked {
        Ok(_) => readiness(None, "configuration is valid"),
        Err(problems) => {
            let first = &problems[0];
            readiness(Some((first.reason.as_str(), summarize(problems), first.reason.is_in_own_spec())), "")
        }
    };
    desired.extend(degraded(&step.history));
    if let Some(because) = &step.stalled_because
        && checked.is_ok()
    {
        desired.retain(|d| d.type_ != crate::plan::conditions::STALLED);
        desired.push(crate::plan::conditions::Desired::new(
            crate::plan::conditions::STALLED,
            true,
            "RunFailedPermanently",
            format!("runs are stopped until the Dataflow, its Account or its Destination changes: {because}"),
        ));
    }
    let segments = if checked.is_ok() {
        step.segments.clone()
    } else {
        previous
            .segments
            .iter()
            .cloned()
            .map(|mut s| {
                s.next_run_time = None;
                s
            })
            .collect()
    };
    let status = DataflowStatus {
        observed_generation: generation,
        conditions: merge(&previous.conditions, desired, generation, &format_time(now)),
        next_run_time: step.next.map(format_time),
        segments,
        history: step.history.clone(),
        last_handled_run_request: step.handled_run_request.clone(),
        stalled_on: step.stalled_on.clone(),
    };
    let api = Api::<Dataflow>::namespaced(ctx.client.clone(), &ns);
    let applied = status::apply(&api, dataflow.as_ref(), dataflow.status.as_ref(), &status, "Dataflow").await;
    ctx.metrics.count("Dataflow", applied.is_ok());
    if applied? {
        status::publish_transition(&ctx, dataflow.as_ref(), &previous.conditions, &status.conditions).await;
        publish_run_events(&ctx, dataflow.as_ref(), &previous.history, &status.history).await;
    }
    ctx.executor.forget(&dataflow, &step.folded).await.map_err(Error::kube("pruning runs of", "Dataflow", &name))?;
    Ok(requeue_at(step.next, now))
}

/// Starts runs. In-process runs get the resolved objects and the Account's Secret values; Job
/// runs get the name of the Secret their pod mounts.
async fn start_runs(
    ctx: &Context,
    dataflow: &Dataflow,
    runs: &[crate::executor::RunRequest],
    plan: &DataflowPlan,
    account: &Account,
    destination: &Destination,
) -> Result<(), Error> {
    if runs.is_empty() {
        return Ok(());
    }
    let ns = dataflow.namespace().unwrap_or_default();
    let secret_name = account.spec.credentials_secret_ref.as_ref().map(|r| r.name.clone());
    let secrets = match (&secret_name, ctx.executor.is_in_process()) {
        (Some(name), true) => Api::<Secret>::namespaced(ctx.client.clone(), &ns)
            .get_opt(name)
            .await
            .map_err(Error::kube("getting", "Secret", name))?
            .map(|s| crate::manifest::secret_values(&s))
            .unwrap_or_default(),
        _ => Default::default(),
    };
    for run in runs {
        let inputs = || {
            Some(OwnedInputs {
                dataflow: dataflow.clone(),
                checked: plan.clone(),
                account: account.clone(),
                destination: destination.clone(),
                secrets: secrets.clone(),
                profiles_url: ctx.config.profiles_url.clone(),
            })
        };
        let started = ctx.executor.start(dataflow, run, secret_name.as_deref(), inputs).await.map_err(Error::kube(
            "starting run",
            "Job",
            &run.id,
        ))?;
        if started {
            tracing::info!(dataflow = %dataflow.name_any(), namespace = %ns, run = %run.id, segment = %run.segment, scheduled = %format_time(run.scheduled), "run started");
        }
    }
    Ok(())
}

/// Events on run start, success and failure (and skipped or missed runs), once each.
async fn publish_run_events(ctx: &Context, dataflow: &Dataflow, before: &[RunRecord], after: &[RunRecord]) {
    for record in after {
        let old = before.iter().find(|r| r.id == record.id).and_then(|r| r.result);
        if old == record.result {
            continue;
        }
        let (type_, reason, note) = match record.result {
            Some(RunResult::Running) => (
                EventType::Normal,
                "RunStarted",
                format!(
                    "run {} of segment {} started (scheduled {})",
                    record.id, record.segment, record.scheduled_time
                ),
            ),
            Some(RunResult::Succeeded) => (
                EventType::Normal,
                "RunSucceeded",
                format!(
                    "run {} exported {} of {} profiles in {} file(s), {} bytes",
                    record.id, record.exported, record.profiles_read, record.files, record.bytes
                ),
            ),
            Some(RunResult::Failed) => (
                EventType::Warning,
                "RunFailed",
                format!("run {} failed: {}", record.id, record.message.as_deref().unwrap_or("")),
            ),
            Some(RunResult::Skipped) => (EventType::Warning, "RunSkipped", record.message.clone().unwrap_or_default()),
            Some(RunResult::Missed) => (
                EventType::Warning,
                "RunMissed",
                format!("run scheduled {} {}", record.scheduled_time, record.message.as_deref().unwrap_or("")),
            ),
            None => continue,
        };
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: "Run".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &dataflow.object_ref(&())).await {
            tracing::warn!(error = %e, "could not publish an event");
        }
    }
}

/// When a `once` schedule without a time runs: the first time the controller saw the Dataflow,
/// kept as that segment's next run; `now` the first time.
fn once_anchor(previous: &DataflowStatus, now: DateTime<Utc>) -> DateTime<Utc> {
    crate::plan::dataflow_status::once_anchor(previous, now)
}

/// The Account as the Dataflow sees it: Ready only once the Account's own status says so for its
/// current generation.
fn account_state(account: Option<&Account>) -> AccountState<'_> {
    let Some(account) = account else { return AccountState::NotFound };
    let status = account.status.as_ref();
    let conditions = status.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let current = status.and_then(|s| s.observed_generation) == account.metadata.generation;
    if current && is_true(conditions, READY) {
        return AccountState::Ready(account);
    }
    match find(conditions, READY) {
        Some(c) if current => AccountState::NotReady { reason: c.reason.clone(), message: c.message.clone() },
        _ => AccountState::NotReady {
            reason: "Reconciling".into(),
            message: "the Account has not been checked yet".into(),
        },
    }
}

fn requeue_at(next: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Action {
    let wait = next
        .map(|t| (t - now).to_std().unwrap_or(Duration::ZERO) + Duration::from_millis(500))
        .unwrap_or(IDLE_RESYNC)
        .min(IDLE_RESYNC);
    Action::requeue(wait)
}

fn error_policy(dataflow: Arc<Dataflow>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(dataflow = %dataflow.name_any(), namespace = ?dataflow.namespace(), %error, "reconcile failed; retrying");
    ctx.metrics.count("Dataflow", false);
    Action::requeue(Duration::from_secs(15))
}

//! Dataflow reconciler: resolves the Account and Destination, checks fields against the
//! Destination, computes each segment's next run, and requeues at the earliest one.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::Stream;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use super::destination::LogOutcome;
use super::{Context, Error, status};
use crate::api::{Account, Dataflow, DataflowStatus, Destination};
use crate::plan::conditions::{READY, find, is_true, merge, readiness};
use crate::plan::dataflow_status::{next_runs, once_anchor};
use crate::plan::schedule::format_time;
use crate::plan::validate::{AccountState, check_dataflow, summarize};

/// Longest the controller sleeps on a Dataflow with nothing scheduled, to refresh its status.
const IDLE_RESYNC: Duration = Duration::from_secs(3600);

pub fn controller(
    client: Client,
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> impl Stream<Item = ()> {
    let controller = Controller::new(Api::<Dataflow>::all(client.clone()), watcher::Config::default());
    let by_account = controller.store();
    let all = controller.store();
    controller
        .watches(Api::<Account>::all(client.clone()), watcher::Config::default(), move |account| {
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
        .watches(Api::<Destination>::all(client), watcher::Config::default(), move |_| {
            all.state().into_iter().map(|d| ObjectRef::from_obj(d.as_ref())).collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .map_ok_or_log("Dataflow")
}

async fn reconcile(dataflow: Arc<Dataflow>, ctx: Arc<Context>) -> Result<Action, Error> {
    let now = Utc::now();
    let ns = dataflow.namespace().unwrap_or_default();
    let account = Api::<Account>::namespaced(ctx.client.clone(), &ns)
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
    let state = account_state(account.as_ref());
    let previous = dataflow.status.clone().unwrap_or_default();
    let result = check_dataflow(&dataflow, state, destination.as_ref(), once_anchor(&previous, now));
    let generation = dataflow.metadata.generation;
    let (desired, segments) = match &result {
        Ok(plan) => (readiness(None, "configuration is valid"), next_runs(plan, &dataflow.spec, &previous, now)),
        Err(problems) => {
            let first = &problems[0];
            (
                readiness(Some((first.reason.as_str(), summarize(problems), first.reason.is_in_own_spec())), ""),
                Vec::new(),
            )
        }
    };
    let next_run_time = segments.iter().filter_map(|s| s.next_run_time.as_deref()).min().map(String::from);
    let status = DataflowStatus {
        observed_generation: generation,
        conditions: merge(&previous.conditions, desired, generation, &format_time(now)),
        next_run_time: next_run_time.clone(),
        segments,
        ..previous.clone()
    };
    let api = Api::<Dataflow>::namespaced(ctx.client.clone(), &ns);
    let applied = status::apply(&api, dataflow.as_ref(), dataflow.status.as_ref(), &status, "Dataflow").await;
    ctx.metrics.count("Dataflow", applied.is_ok());
    if applied? {
        status::publish_transition(&ctx, dataflow.as_ref(), &previous.conditions, &status.conditions).await;
    }
    Ok(requeue_at(next_run_time.as_deref(), now))
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

fn requeue_at(next: Option<&str>, now: DateTime<Utc>) -> Action {
    let wait = next
        .and_then(crate::plan::schedule::parse_time)
        .map(|t| (t - now).to_std().unwrap_or(Duration::ZERO) + Duration::from_secs(1))
        .unwrap_or(IDLE_RESYNC)
        .min(IDLE_RESYNC);
    Action::requeue(wait)
}

fn error_policy(dataflow: Arc<Dataflow>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(dataflow = %dataflow.name_any(), namespace = ?dataflow.namespace(), %error, "reconcile failed; retrying");
    ctx.metrics.count("Dataflow", false);
    Action::requeue(Duration::from_secs(15))
}

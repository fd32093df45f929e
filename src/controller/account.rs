//! Account reconciler: resolves the Destination, the Secret and its keys, and the parameters.
//! Re-runs when its Destination or its Secret changes. It reads the Secret only to list its
//! keys; values never leave this function.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::destination::LogOutcome;
use super::{Context, Error, status};
use crate::api::{Account, AccountStatus, Destination};
use crate::plan::conditions::{CONNECTED, Desired, merge, readiness};
use crate::plan::schedule::format_time;
use crate::plan::validate::{SecretKeys, check_account, summarize};

pub fn controller(
    client: Client,
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> impl Stream<Item = ()> {
    let accounts = super::scoped::<Account>(&client, &ctx.config.namespace);
    let controller = Controller::new(accounts, watcher::Config::default());
    let store = controller.store();
    let by_destination = store.clone();
    // Only Secret metadata is watched: the controller never holds every Secret's values.
    let secrets =
        watcher(super::scoped::<PartialObjectMeta<Secret>>(&client, &ctx.config.namespace), watcher::Config::default())
            .touched_objects();
    controller
        .watches(Api::<Destination>::all(client), watcher::Config::default(), move |destination| {
            let name = destination.name_any();
            by_destination
                .state()
                .into_iter()
                .filter(|a| a.spec.destination == name)
                .map(|a| ObjectRef::from_obj(a.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(secrets, move |secret| {
            let (ns, name) = (secret.namespace(), secret.name_any());
            store
                .state()
                .into_iter()
                .filter(|a| {
                    a.namespace() == ns && a.spec.credentials_secret_ref.as_ref().is_some_and(|r| r.name == name)
                })
                .map(|a| ObjectRef::from_obj(a.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .map_ok_or_log("Account")
}

async fn reconcile(account: Arc<Account>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = account.namespace().unwrap_or_default();
    let name = account.name_any();
    let destination = Api::<Destination>::all(ctx.client.clone())
        .get_opt(&account.spec.destination)
        .await
        .map_err(Error::kube("getting", "Destination", &account.spec.destination))?;
    let secret = match &account.spec.credentials_secret_ref {
        None => None,
        Some(r) => Some(secret_keys(&ctx, &ns, &r.name).await?),
    };
    let (secret, secret_values) = match secret {
        Some((keys, values)) => (Some(keys), values),
        None => (None, BTreeMap::new()),
    };
    let problems = check_account(&account, destination.as_ref(), secret.as_ref());
    let problem = problems.first().map(|p| (p.reason.as_str(), summarize(&problems), p.reason.is_in_own_spec()));
    let previous = account.status.clone().unwrap_or_default();
    let generation = account.metadata.generation;
    let mut desired = readiness(
        problem.clone(),
        &format!("Destination '{}', its parameters and credentials resolve", account.spec.destination),
    );
    let mut probe = match (&problem, &destination) {
        (None, Some(destination)) => connected(destination, &account, secret_values).await,
        _ => Desired::unknown(CONNECTED, "NotReady", "the Account is not ready; it is probed once it is"),
    };
    // A failing platform words its errors differently each time (request IDs, timings); the
    // first message of an unchanged outcome stands, so status does not churn on every probe.
    if let Some(before) = crate::plan::conditions::find(&previous.conditions, CONNECTED)
        && before.status == probe.status
        && before.reason == probe.reason
    {
        probe.message = before.message.clone();
    }
    desired.push(probe);
    let status = AccountStatus {
        observed_generation: generation,
        conditions: merge(&previous.conditions, desired, generation, &format_time(chrono::Utc::now())),
    };
    let api = Api::<Account>::namespaced(ctx.client.clone(), &ns);
    let result = status::apply(&api, account.as_ref(), account.status.as_ref(), &status, "Account").await;
    ctx.metrics.count("Account", result.is_ok());
    if result? {
        status::publish_transition(&ctx, account.as_ref(), &previous.conditions, &status.conditions).await;
    }
    tracing::debug!(account = %name, namespace = %ns, "reconciled");
    Ok(if problem.is_none() { Action::requeue(PROBE_INTERVAL) } else { Action::await_change() })
}

/// The keys of a Secret, or that it does not exist. Values are dropped here.
async fn secret_keys(ctx: &Context, ns: &str, name: &str) -> Result<(SecretKeys, BTreeMap<String, String>), Error> {
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(Error::kube("getting", "Secret", name))?;
    Ok(match secret {
        None => (SecretKeys::NotFound, BTreeMap::new()),
        Some(s) => {
            let values = crate::manifest::secret_values(&s);
            let keys: BTreeSet<String> = values.keys().cloned().collect();
            (SecretKeys::Keys(keys), values)
        }
    })
}

/// How often a connected Account is probed again.
const PROBE_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// The `Connected` condition: a cheap probe of the platform (list or stat of the bucket, folder
/// or server) with the Account's parameters and credentials. Errors are reported without any
/// secret value in them.
async fn connected(destination: &Destination, account: &Account, secrets: BTreeMap<String, String>) -> Desired {
    let (destination, account) = (destination.clone(), account.clone());
    let probe = tokio::task::spawn_blocking(move || {
        let connector = crate::connectors::target_for(&destination, &account, &secrets)
            .map_err(|e| (e.to_string(), secrets.clone()))?;
        connector.probe().map_err(|e| (e.to_string(), secrets.clone())).map(|()| connector.describe())
    });
    match tokio::time::timeout(Duration::from_secs(30), probe).await {
        Ok(Ok(Ok(target))) => Desired::new(CONNECTED, true, "ProbeSucceeded", format!("reached {target}")),
        Ok(Ok(Err((message, secrets)))) if message.contains("not implemented") => Desired::unknown(
            CONNECTED,
            "ProbeNotSupported",
            crate::connectors::redact(&message, &secrets.values().cloned().collect::<Vec<_>>()),
        ),
        Ok(Ok(Err((message, secrets)))) => Desired::new(
            CONNECTED,
            false,
            "ProbeFailed",
            crate::connectors::redact(&message, &secrets.values().cloned().collect::<Vec<_>>()),
        ),
        Ok(Err(e)) => Desired::new(CONNECTED, false, "ProbeFailed", format!("the probe ended abnormally: {e}")),
        Err(_) => Desired::new(CONNECTED, false, "ProbeTimeout", "the platform did not answer within 30 s"),
    }
}

fn error_policy(account: Arc<Account>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(account = %account.name_any(), namespace = ?account.namespace(), %error, "reconcile failed; retrying");
    ctx.metrics.count("Account", false);
    Action::requeue(Duration::from_secs(15))
}

//! Account reconciler: resolves the Destination, the Secret and its keys, and the parameters.
//! Re-runs when its Destination or its Secret changes. It reads the Secret only to list its
//! keys; values never leave this function.

use std::collections::BTreeSet;
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
use crate::plan::conditions::{merge, readiness};
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
    let problems = check_account(&account, destination.as_ref(), secret.as_ref());
    let problem = problems.first().map(|p| (p.reason.as_str(), summarize(&problems), p.reason.is_in_own_spec()));
    let previous = account.status.clone().unwrap_or_default();
    let generation = account.metadata.generation;
    let status = AccountStatus {
        observed_generation: generation,
        conditions: merge(
            &previous.conditions,
            readiness(
                problem,
                &format!("Destination '{}', its parameters and credentials resolve", account.spec.destination),
            ),
            generation,
            &format_time(chrono::Utc::now()),
        ),
    };
    let api = Api::<Account>::namespaced(ctx.client.clone(), &ns);
    let result = status::apply(&api, account.as_ref(), account.status.as_ref(), &status, "Account").await;
    ctx.metrics.count("Account", result.is_ok());
    if result? {
        status::publish_transition(&ctx, account.as_ref(), &previous.conditions, &status.conditions).await;
    }
    tracing::debug!(account = %name, namespace = %ns, "reconciled");
    Ok(Action::await_change())
}

/// The keys of a Secret, or that it does not exist. Values are dropped here.
async fn secret_keys(ctx: &Context, ns: &str, name: &str) -> Result<SecretKeys, Error> {
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(Error::kube("getting", "Secret", name))?;
    Ok(match secret {
        None => SecretKeys::NotFound,
        Some(s) => {
            let mut keys: BTreeSet<String> = s.data.unwrap_or_default().into_keys().collect();
            keys.extend(s.string_data.unwrap_or_default().into_keys());
            SecretKeys::Keys(keys)
        }
    })
}

fn error_policy(account: Arc<Account>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(account = %account.name_any(), namespace = ?account.namespace(), %error, "reconcile failed; retrying");
    ctx.metrics.count("Account", false);
    Action::requeue(Duration::from_secs(15))
}

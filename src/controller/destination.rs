//! Destination reconciler: checks a catalog entry's own consistency.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use super::{Context, Error, status};
use crate::api::{Destination, DestinationStatus};
use crate::plan::conditions::{merge, readiness};
use crate::plan::schedule::format_time;
use crate::plan::validate::{check_destination, summarize};

pub fn controller(
    client: Client,
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> impl Stream<Item = ()> {
    Controller::new(Api::<Destination>::all(client), watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .map_ok_or_log("Destination")
}

async fn reconcile(destination: Arc<Destination>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api = Api::<Destination>::all(ctx.client.clone());
    let problems = check_destination(&destination.spec);
    let problem = problems.first().map(|p| (p.reason.as_str(), summarize(&problems), true));
    let previous = destination.status.clone().unwrap_or_default();
    let generation = destination.metadata.generation;
    let status = DestinationStatus {
        observed_generation: generation,
        conditions: merge(
            &previous.conditions,
            readiness(problem, "the catalog entry is consistent"),
            generation,
            &format_time(chrono::Utc::now()),
        ),
    };
    let result = status::apply(&api, destination.as_ref(), destination.status.as_ref(), &status, "Destination").await;
    ctx.metrics.count("Destination", result.is_ok());
    if result? {
        status::publish_transition(&ctx, destination.as_ref(), &previous.conditions, &status.conditions).await;
    }
    tracing::debug!(destination = %destination.name_any(), "reconciled");
    Ok(Action::await_change())
}

fn error_policy(destination: Arc<Destination>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(destination = %destination.name_any(), %error, "reconcile failed; retrying");
    ctx.metrics.count("Destination", false);
    Action::requeue(Duration::from_secs(15))
}

/// Logs the outcome of each reconcile and drops it.
pub(super) trait LogOutcome {
    fn map_ok_or_log(self, kind: &'static str) -> impl Stream<Item = ()>;
}

impl<S, T, E> LogOutcome for S
where
    S: Stream<Item = Result<T, E>>,
    E: std::fmt::Display,
{
    fn map_ok_or_log(self, kind: &'static str) -> impl Stream<Item = ()> {
        futures::StreamExt::map(self, move |outcome| {
            if let Err(e) = outcome {
                tracing::debug!(kind, error = %e, "reconcile outcome");
            }
        })
    }
}

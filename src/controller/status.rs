//! Writing status: server-side apply with one field manager, only when something changed, and
//! an Event when the Ready condition flips.

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{Context, Error};
use crate::api::{Condition, ConditionStatus, FIELD_MANAGER};
use crate::plan::conditions::{READY, find};

/// Applies `status` to the object's status subresource unless it is already what the object has.
pub async fn apply<K>(
    api: &Api<K>,
    obj: &K,
    previous: Option<&impl Serialize>,
    status: &impl Serialize,
    kind: &'static str,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let new = serde_json::to_value(status).unwrap_or_default();
    if previous.map(|p| serde_json::to_value(p).unwrap_or_default()) == Some(new.clone()) {
        return Ok(false);
    }
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": new,
    });
    api.patch_status(&obj.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(Error::kube("patching status of", kind, obj.name_any()))?;
    Ok(true)
}

/// Publishes an Event when the Ready condition changed status or reason.
pub async fn publish_transition<K>(ctx: &Context, obj: &K, before: &[Condition], after: &[Condition])
where
    K: Resource<DynamicType = ()>,
{
    let (Some(new), old) = (find(after, READY), find(before, READY)) else { return };
    if old.is_some_and(|o| o.status == new.status && o.reason == new.reason) {
        return;
    }
    let event = Event {
        type_: if new.status == ConditionStatus::True { EventType::Normal } else { EventType::Warning },
        reason: new.reason.clone(),
        note: Some(crate::plan::text::truncate(&new.message, 1000)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish an event");
    }
}

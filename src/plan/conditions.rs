//! Building conditions the Kubernetes way: one per type, `lastTransitionTime` moving only when
//! the status flips, so re-applying the same status causes no churn.

use crate::api::{Condition, ConditionStatus};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const CONNECTED: &str = "Connected";
pub const DEGRADED: &str = "Degraded";

/// A condition before its transition time is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
}

impl Desired {
    pub fn new(type_: &'static str, status: bool, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self { type_, status: ConditionStatus::from_bool(status), reason: reason.into(), message: message.into() }
    }

    pub fn unknown(type_: &'static str, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self { type_, status: ConditionStatus::Unknown, reason: reason.into(), message: message.into() }
    }
}

/// The new list of conditions: the desired ones, keeping each previous `lastTransitionTime`
/// whose status did not change, and keeping previous conditions of other types untouched.
pub fn merge(previous: &[Condition], desired: Vec<Desired>, generation: Option<i64>, now: &str) -> Vec<Condition> {
    let mut out: Vec<Condition> =
        previous.iter().filter(|c| !desired.iter().any(|d| d.type_ == c.type_)).cloned().collect();
    for d in desired {
        let last = previous
            .iter()
            .find(|c| c.type_ == d.type_ && c.status == d.status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.to_string());
        out.push(Condition {
            type_: d.type_.to_string(),
            status: d.status,
            reason: d.reason,
            message: d.message,
            last_transition_time: last,
            observed_generation: generation,
        });
    }
    out.sort_by_key(|c| order(&c.type_));
    out
}

/// Ready first, then the others in a stable order, so the list does not reshuffle.
fn order(type_: &str) -> (u8, String) {
    let rank = match type_ {
        READY => 0,
        CONNECTED => 1,
        DEGRADED => 2,
        RECONCILING => 3,
        STALLED => 4,
        _ => 5,
    };
    (rank, type_.to_string())
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the conditions say `type_` is True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True)
}

/// The Ready / Reconciling / Stalled trio for an object whose checks ended with `problem`
/// (reason and message), or Ready when there is none. `stalled` marks problems only an edit of
/// the object's own spec can fix.
pub fn readiness(problem: Option<(&str, String, bool)>, ready_message: &str) -> Vec<Desired> {
    match problem {
        None => vec![
            Desired::new(READY, true, "Succeeded", ready_message),
            Desired::new(RECONCILING, false, "Succeeded", ""),
            Desired::new(STALLED, false, "Succeeded", ""),
        ],
        Some((reason, message, stalled)) => vec![
            Desired::new(READY, false, reason, message.clone()),
            Desired::new(RECONCILING, false, reason, ""),
            if stalled {
                Desired::new(STALLED, true, reason, message)
            } else {
                Desired::new(STALLED, false, reason, "")
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let first = merge(&[], vec![Desired::new(READY, false, "AccountNotFound", "x")], Some(1), "t1");
        let same = merge(&first, vec![Desired::new(READY, false, "AccountNotFound", "y")], Some(2), "t2");
        assert_eq!(same[0].last_transition_time, "t1");
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(&same, vec![Desired::new(READY, true, "Succeeded", "")], Some(2), "t3");
        assert_eq!(flipped[0].last_transition_time, "t3");
    }

    #[test]
    fn other_condition_types_are_kept_and_ordered() {
        let with_connected = merge(&[], vec![Desired::new(CONNECTED, true, "ProbeSucceeded", "")], Some(1), "t1");
        let merged = merge(&with_connected, readiness(None, "ok"), Some(1), "t2");
        let types: Vec<_> = merged.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, vec![READY, CONNECTED, RECONCILING, STALLED]);
    }
}

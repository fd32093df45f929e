//! The schedule part of a Dataflow's status: each segment's next run.

use chrono::{DateTime, Utc};

use super::schedule::{format_time, parse_time};
use super::validate::DataflowPlan;
use crate::api::{DataflowSpec, DataflowStatus, SegmentStatus};

/// When a `once` schedule without a time runs: the first time the controller saw the Dataflow
/// enabled, which it keeps as that segment's next run; `now` the first time.
pub fn once_anchor(previous: &DataflowStatus, now: DateTime<Utc>) -> DateTime<Utc> {
    previous
        .segments
        .iter()
        .filter_map(|s| s.next_run_time.as_deref().and_then(parse_time))
        .min()
        .map_or(now, |t| t.min(now))
}

/// Each segment's status with its next run after the last scheduled one (or after `now` when
/// none ran), keeping what the runs recorded. A disabled Dataflow has no next run.
pub fn next_runs(
    plan: &DataflowPlan,
    spec: &DataflowSpec,
    previous: &DataflowStatus,
    now: DateTime<Utc>,
) -> Vec<SegmentStatus> {
    plan.segments
        .iter()
        .map(|segment| {
            let mut status = previous
                .segments
                .iter()
                .find(|s| s.id == segment.id)
                .cloned()
                .unwrap_or_else(|| SegmentStatus { id: segment.id.clone(), ..Default::default() });
            let after = status.last_scheduled_time.as_deref().and_then(parse_time);
            status.next_run_time = if spec.enabled {
                // Not yet run: the next time from just before now, so a run due now shows as now.
                let from = after.unwrap_or(now - chrono::Duration::seconds(1));
                segment.schedule.next_after(from).map(format_time)
            } else {
                None
            };
            status
        })
        .collect()
}

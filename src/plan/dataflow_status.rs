//! The schedule part of a Dataflow's status: each segment's next run.

use chrono::{DateTime, Utc};

use super::schedule::parse_time;
use crate::api::DataflowStatus;

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

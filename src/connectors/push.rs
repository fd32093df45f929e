//! Connectors that are fed rows rather than files: HTTP APIs and streams. A run opens a session,
//! pushes each selected member, and finishes once every row is confirmed delivered or failed.

use super::ConnectorError;
use chrono::{DateTime, Utc};

/// What a session needs to know about the run it serves.
#[derive(Debug, Clone)]
pub struct PushContext {
    pub dataflow: String,
    pub run_id: String,
    pub segment_id: String,
    pub segment_name: String,
    pub scheduled: DateTime<Utc>,
    /// The Dataflow's targets, in the order of [`PushRow::values`].
    pub targets: Vec<String>,
    /// For each target mapped from `identityMap.<namespace>`: its index and the namespace.
    pub identities: Vec<(usize, String)>,
}

impl PushContext {
    /// The row's targets and their values, as JSON (absent values are null).
    pub fn fields_json(&self, row: &PushRow) -> serde_json::Map<String, serde_json::Value> {
        self.targets
            .iter()
            .zip(&row.values)
            .map(|(t, v)| (t.clone(), v.clone().map_or(serde_json::Value::Null, serde_json::Value::String)))
            .collect()
    }

    /// The row's identities by namespace, the ones it has only.
    pub fn identities_json(&self, row: &PushRow) -> serde_json::Map<String, serde_json::Value> {
        self.identities
            .iter()
            .filter_map(|(i, ns)| {
                row.values.get(*i).cloned().flatten().map(|v| (ns.clone(), serde_json::Value::String(v)))
            })
            .collect()
    }

    /// Whether the platform can match the row: it has one of the mapped identities (or none are
    /// mapped at all).
    pub fn matchable(&self, row: &PushRow) -> bool {
        self.identities.is_empty()
            || self.identities.iter().any(|(i, _)| row.values.get(*i).is_some_and(Option::is_some))
    }
}

/// One selected member of the segment.
#[derive(Debug, Clone, PartialEq)]
pub struct PushRow {
    pub profile_id: Option<String>,
    /// `realized`, `existing` or `exited`.
    pub status: Option<String>,
    /// Microseconds since the epoch.
    pub qualified_us: Option<i64>,
    /// The transformed value of each target.
    pub values: Vec<Option<String>>,
}

impl PushRow {
    /// Exits are removals; every other status adds or keeps the member.
    pub fn is_exit(&self) -> bool {
        self.status.as_deref() == Some("exited")
    }
}

pub use crate::api::RowFailure;

/// Rejected rows kept in a report at most, with their reasons.
pub const FAILED_SAMPLE: usize = 10;

/// What a finished session delivered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PushOutcome {
    /// Rows the platform accepted.
    pub delivered: u64,
    /// Requests (or messages) sent, retries included.
    pub requests: u64,
    /// Rows the platform rejected.
    pub failed: u64,
    /// The first rejected rows, with the platform's reasons.
    pub failed_sample: Vec<RowFailure>,
    /// The earliest qualification time of a rejected row: the next incremental run starts there.
    pub earliest_failed_us: Option<i64>,
    /// A rejected row had no qualification time, so the watermark must not move at all.
    pub failed_without_time: bool,
    /// Rows with none of the identities the platform matches on, not sent.
    pub without_identity: u64,
}

impl PushOutcome {
    /// Records rejected rows.
    pub fn reject(&mut self, row: &PushRow, reason: &str) {
        self.failed += 1;
        if self.failed_sample.len() < FAILED_SAMPLE {
            let reason = crate::plan::text::truncate(reason, 512);
            self.failed_sample.push(RowFailure { profile_id: row.profile_id.clone(), reason });
        }
        match row.qualified_us {
            Some(t) => self.earliest_failed_us = Some(self.earliest_failed_us.map_or(t, |e| e.min(t))),
            None => self.failed_without_time = true,
        }
    }

    /// Adds another outcome's counts to this one.
    pub fn merge(&mut self, other: PushOutcome) {
        self.delivered += other.delivered;
        self.requests += other.requests;
        self.failed += other.failed;
        let room = FAILED_SAMPLE.saturating_sub(self.failed_sample.len());
        self.failed_sample.extend(other.failed_sample.into_iter().take(room));
        self.earliest_failed_us = match (self.earliest_failed_us, other.earliest_failed_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.failed_without_time |= other.failed_without_time;
        self.without_identity += other.without_identity;
    }

    /// The watermark the run may commit: the newest qualification time it saw, held back to just
    /// before the earliest rejected row so that row is selected again by the next run.
    pub fn watermark(&self, newest_seen_us: Option<i64>, start_us: Option<i64>) -> Option<i64> {
        if self.failed_without_time {
            return start_us;
        }
        match (newest_seen_us, self.earliest_failed_us) {
            (Some(seen), Some(failed)) => Some(seen.min(failed - 1)).max(start_us),
            (seen, _) => seen,
        }
    }
}

/// A platform fed rows.
pub trait Pusher: Send + Sync {
    /// A short name for messages, e.g. `HTTP(graph.facebook.com)`.
    fn describe(&self) -> String;
    /// A cheap check that the platform is reachable and the credentials work.
    fn probe(&self) -> Result<(), ConnectorError>;
    /// Starts the rows of one run.
    fn start(&self, context: PushContext) -> Result<Box<dyn PushSession>, ConnectorError>;
}

/// The rows of one run.
pub trait PushSession: Send {
    /// Queues one row; may send a batch and block while the platform's limits say wait.
    fn push(&mut self, row: PushRow) -> Result<(), ConnectorError>;
    /// Sends what is queued and waits for every confirmation.
    fn finish(self: Box<Self>) -> Result<PushOutcome, ConnectorError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: Option<i64>) -> PushRow {
        PushRow { profile_id: Some("p".into()), status: Some("realized".into()), qualified_us: t, values: vec![] }
    }

    #[test]
    fn the_watermark_stops_just_before_the_earliest_rejected_row() {
        let mut outcome = PushOutcome::default();
        assert_eq!(outcome.watermark(Some(500), Some(100)), Some(500));
        outcome.reject(&row(Some(300)), "bad");
        outcome.reject(&row(Some(200)), "bad");
        assert_eq!(outcome.watermark(Some(500), Some(100)), Some(199));
        outcome.reject(&row(None), "bad");
        assert_eq!(outcome.watermark(Some(500), Some(100)), Some(100));
        assert_eq!(outcome.failed, 3);
    }

    #[test]
    fn the_sample_of_rejected_rows_is_bounded() {
        let mut outcome = PushOutcome::default();
        for _ in 0..25 {
            outcome.reject(&row(Some(1)), "bad");
        }
        let mut other = PushOutcome::default();
        other.reject(&row(Some(0)), "worse");
        outcome.merge(other);
        assert_eq!((outcome.failed, outcome.failed_sample.len()), (26, FAILED_SAMPLE));
        assert_eq!(outcome.earliest_failed_us, Some(0));
    }
}

//! Which runs are due: like the CronJob controller, a run missed by less than the starting
//! deadline still starts (once, the newest), older ones are recorded as missed, and a segment
//! whose previous run still goes is skipped unless overlap is allowed. Pure: `now` is a parameter.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use super::schedule::SegmentSchedule;
use crate::api::RunRecord;

/// What one run is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    pub id: String,
    pub segment: String,
    pub scheduled: DateTime<Utc>,
    /// The incremental watermark the run starts from (RFC 3339).
    pub watermark: Option<String>,
    /// The manual-run token, for runs asked with the `outflow.dev/run-requested-at` annotation.
    pub run_request: Option<String>,
}

/// A run as an executor sees it.
#[derive(Debug, Clone)]
pub enum Observed {
    Running { request: RunRequest, started: DateTime<Utc> },
    Finished { record: RunRecord, watermark: Option<String> },
}

/// How many missed times are looked at (and recorded) at most, so a minutely cron after a long
/// outage is not replayed in a burst nor recorded without bound.
pub const MAX_MISSED_SCAN: usize = 10_000;
/// How many missed times are written into the history.
pub const MAX_MISSED_RECORDED: usize = 3;

/// What the scheduler knows about one segment.
pub struct SegmentClock<'a> {
    pub schedule: &'a SegmentSchedule,
    /// The scheduled time of the last run handled (started, skipped or missed).
    pub last_scheduled: Option<DateTime<Utc>>,
    /// The next run computed at the previous reconcile: the first candidate when nothing ran yet,
    /// so a Dataflow created at 10:00 does not run for 06:00 the same day.
    pub previous_next: Option<DateTime<Utc>>,
    /// A run of this segment is still going.
    pub running: bool,
}

/// The decision for one segment at `now`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentDecision {
    /// Start a run for this scheduled time.
    pub start: Option<DateTime<Utc>>,
    /// Record these scheduled times as missed (newest last, at most [`MAX_MISSED_RECORDED`]).
    pub missed: Vec<DateTime<Utc>>,
    /// How many more missed times were not recorded one by one.
    pub missed_uncounted: usize,
    /// Record this scheduled time as skipped: the previous run still goes.
    pub skipped: Option<DateTime<Utc>>,
    /// The newest scheduled time now handled; becomes the segment's last scheduled time.
    pub handled_up_to: Option<DateTime<Utc>>,
    /// When to look again.
    pub next: Option<DateTime<Utc>>,
}

/// Decides what to do for one segment of an enabled Dataflow.
pub fn decide(
    clock: &SegmentClock<'_>,
    now: DateTime<Utc>,
    starting_deadline: Duration,
    allow_overlap: bool,
) -> SegmentDecision {
    let after = match (clock.last_scheduled, clock.previous_next) {
        (Some(last), _) => last,
        (None, Some(first)) => first - Duration::nanoseconds(1),
        (None, None) => now - Duration::seconds(1),
    };
    let due = clock.schedule.times_between(after, now, MAX_MISSED_SCAN);
    let mut decision = SegmentDecision::default();
    if let Some((&latest, older)) = due.split_last() {
        let keep_from = older.len().saturating_sub(MAX_MISSED_RECORDED);
        decision.missed = older[keep_from..].to_vec();
        decision.missed_uncounted = keep_from;
        if now - latest > starting_deadline {
            decision.missed.push(latest);
            if decision.missed.len() > MAX_MISSED_RECORDED {
                decision.missed.remove(0);
                decision.missed_uncounted += 1;
            }
        } else if clock.running && !allow_overlap {
            decision.skipped = Some(latest);
        } else {
            decision.start = Some(latest);
        }
        decision.handled_up_to = Some(latest);
    }
    let from = decision.handled_up_to.or(clock.last_scheduled).map_or(now, |t| t.max(now));
    decision.next = clock
        .schedule
        .next_after(from)
        .or_else(|| clock.previous_next.filter(|t| *t > now && decision.handled_up_to.is_none()));
    decision
}

/// A deterministic run ID (also the Job name): readable prefix from the Dataflow and segment,
/// and a hash of namespace, Dataflow, segment and scheduled time (or manual-run token), so the
/// same run is never started twice, even by a restarted controller. At most 63 characters.
pub fn run_id(namespace: &str, dataflow: &str, segment: &str, key: &str) -> String {
    let digest = Sha256::digest(format!("{namespace}/{dataflow}/{segment}/{key}").as_bytes());
    let hash: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    let mut prefix: String = format!("{dataflow}-{segment}")
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(50)
        .collect();
    while prefix.ends_with('-') {
        prefix.pop();
    }
    let prefix = prefix.trim_start_matches('-');
    if prefix.is_empty() { format!("run-{hash}") } else { format!("{prefix}-{hash}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IntervalSchedule, Schedule};
    use crate::plan::schedule::parse_time;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    fn hourly() -> SegmentSchedule {
        let spec = Schedule { interval: Some(IntervalSchedule { hours: 1, start_time: None }), ..Default::default() };
        SegmentSchedule::parse(&spec, t("2026-01-01T00:00:00Z")).unwrap()
    }

    fn clock<'s>(
        schedule: &'s SegmentSchedule,
        last: Option<&str>,
        previous_next: Option<&str>,
        running: bool,
    ) -> SegmentClock<'s> {
        SegmentClock { schedule, last_scheduled: last.map(t), previous_next: previous_next.map(t), running }
    }

    const HOUR: Duration = Duration::hours(1);

    #[test]
    fn nothing_is_due_before_the_first_scheduled_time() {
        let s = hourly();
        let d = decide(&clock(&s, None, Some("2026-03-01T11:00:00Z"), false), t("2026-03-01T10:20:00Z"), HOUR, false);
        assert_eq!(d.start, None);
        assert_eq!(d.next, Some(t("2026-03-01T11:00:00Z")));
    }

    #[test]
    fn a_due_run_starts_once_and_the_next_is_an_hour_later() {
        let s = hourly();
        let d = decide(&clock(&s, Some("2026-03-01T10:00:00Z"), None, false), t("2026-03-01T11:00:05Z"), HOUR, false);
        assert_eq!(d.start, Some(t("2026-03-01T11:00:00Z")));
        assert_eq!(d.handled_up_to, Some(t("2026-03-01T11:00:00Z")));
        assert_eq!(d.next, Some(t("2026-03-01T12:00:00Z")));
        // The same decision after the run was recorded starts nothing.
        let again =
            decide(&clock(&s, Some("2026-03-01T11:00:00Z"), None, false), t("2026-03-01T11:00:09Z"), HOUR, false);
        assert_eq!(again.start, None);
    }

    #[test]
    fn after_an_outage_only_the_newest_run_starts_and_older_ones_are_missed() {
        let s = hourly();
        let d = decide(&clock(&s, Some("2026-03-01T02:00:00Z"), None, false), t("2026-03-01T08:10:00Z"), HOUR, false);
        assert_eq!(d.start, Some(t("2026-03-01T08:00:00Z")));
        assert_eq!(d.missed, vec![t("2026-03-01T05:00:00Z"), t("2026-03-01T06:00:00Z"), t("2026-03-01T07:00:00Z")]);
        assert_eq!(d.missed_uncounted, 2, "03:00 and 04:00 are counted, not listed");
    }

    #[test]
    fn a_run_past_the_starting_deadline_is_missed_not_started() {
        let s = hourly();
        let d = decide(
            &clock(&s, Some("2026-03-01T07:00:00Z"), None, false),
            t("2026-03-01T08:40:00Z"),
            Duration::minutes(30),
            false,
        );
        assert_eq!(d.start, None);
        assert_eq!(d.missed, vec![t("2026-03-01T08:00:00Z")]);
        assert_eq!(d.handled_up_to, Some(t("2026-03-01T08:00:00Z")));
        assert_eq!(d.next, Some(t("2026-03-01T09:00:00Z")));
    }

    #[test]
    fn a_segment_still_running_is_skipped_unless_overlap_is_allowed() {
        let s = hourly();
        let c = clock(&s, Some("2026-03-01T07:00:00Z"), None, true);
        let d = decide(&c, t("2026-03-01T08:00:01Z"), HOUR, false);
        assert_eq!((d.start, d.skipped), (None, Some(t("2026-03-01T08:00:00Z"))));
        let d = decide(&c, t("2026-03-01T08:00:01Z"), HOUR, true);
        assert_eq!((d.start, d.skipped), (Some(t("2026-03-01T08:00:00Z")), None));
    }

    #[test]
    fn run_ids_are_stable_short_and_distinct() {
        let a = run_id("marketing", "High_Value.Export", "seg-1", "2026-03-01T08:00:00Z");
        assert_eq!(a, run_id("marketing", "High_Value.Export", "seg-1", "2026-03-01T08:00:00Z"));
        assert_ne!(a, run_id("marketing", "High_Value.Export", "seg-1", "2026-03-01T09:00:00Z"));
        assert_ne!(a, run_id("sales", "High_Value.Export", "seg-1", "2026-03-01T08:00:00Z"));
        assert!(a.starts_with("high-value-export-seg-1-") && a.len() <= 63, "{a}");
        let long = run_id("ns", &"x".repeat(200), "seg", "k");
        assert!(long.len() <= 63 && !long.contains("--"), "{long}");
    }
}

//! Folding what runs did into a Dataflow's status: the bounded history, each segment's last
//! result and incremental watermark, and the Degraded condition.

use super::conditions::{DEGRADED, Desired};
use crate::api::{RunRecord, RunResult, SegmentStatus};

/// Runs kept in status when the Dataflow does not say.
pub const DEFAULT_HISTORY_LIMIT: usize = 10;

/// The history record of a run that is going.
pub fn running(run: &super::runs::RunRequest, started: chrono::DateTime<chrono::Utc>) -> RunRecord {
    RunRecord {
        id: run.id.clone(),
        segment: run.segment.clone(),
        scheduled_time: super::schedule::format_time(run.scheduled),
        start_time: Some(super::schedule::format_time(started)),
        result: Some(RunResult::Running),
        ..Default::default()
    }
}

/// Puts `record` first in the history (replacing an older entry of the same run) and keeps at
/// most `limit` entries.
pub fn push(history: &mut Vec<RunRecord>, record: RunRecord, limit: usize) {
    history.retain(|r| r.id != record.id);
    history.insert(0, record);
    history.truncate(limit.max(1));
}

/// Updates a segment's status after one of its runs ended. The watermark moves only when the
/// run succeeded, that is once its files were committed.
pub fn fold_into_segment(segment: &mut SegmentStatus, record: &RunRecord, watermark: Option<String>) {
    segment.last_result = record.result;
    if record.result == Some(RunResult::Succeeded) {
        let newer = match (&segment.last_successful_time, &record.scheduled_time) {
            (Some(prev), new) => new > prev,
            (None, _) => true,
        };
        if newer {
            segment.last_successful_time = Some(record.scheduled_time.clone());
        }
        if let Some(w) = watermark
            && segment.watermark.as_ref().is_none_or(|prev| &w > prev)
        {
            segment.watermark = Some(w);
        }
    }
}

/// `Degraded` from the newest finished run: True with the failure while the last run failed,
/// False once a run succeeds. `None` before any run finished.
pub fn degraded(history: &[RunRecord]) -> Option<Desired> {
    let last = history.iter().find(|r| matches!(r.result, Some(RunResult::Succeeded | RunResult::Failed)))?;
    Some(match last.result {
        Some(RunResult::Failed) => Desired::new(
            DEGRADED,
            true,
            "RunFailed",
            format!(
                "run {} of segment {} failed: {}",
                last.id,
                last.segment,
                last.message.as_deref().unwrap_or("no message")
            ),
        ),
        _ => Desired::new(
            DEGRADED,
            false,
            "RunSucceeded",
            format!("run {} of segment {} succeeded", last.id, last.segment),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, scheduled: &str, result: RunResult) -> RunRecord {
        RunRecord {
            id: id.into(),
            segment: "seg".into(),
            scheduled_time: scheduled.into(),
            result: Some(result),
            ..Default::default()
        }
    }

    #[test]
    fn history_is_newest_first_bounded_and_deduplicated() {
        let mut h = Vec::new();
        for i in 0..12 {
            push(&mut h, record(&format!("r{i}"), "t", RunResult::Succeeded), 10);
        }
        assert_eq!(h.len(), 10);
        assert_eq!(h[0].id, "r11");
        push(&mut h, record("r5", "t", RunResult::Failed), 10);
        assert_eq!(h.iter().filter(|r| r.id == "r5").count(), 1);
        assert_eq!(h[0].result, Some(RunResult::Failed));
    }

    #[test]
    fn the_watermark_moves_only_on_success() {
        let mut seg =
            SegmentStatus { id: "seg".into(), watermark: Some("2026-01-01T00:00:00Z".into()), ..Default::default() };
        fold_into_segment(
            &mut seg,
            &record("a", "2026-01-02T00:00:00Z", RunResult::Failed),
            Some("2026-01-02T00:00:00Z".into()),
        );
        assert_eq!(seg.watermark.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(seg.last_result, Some(RunResult::Failed));
        fold_into_segment(
            &mut seg,
            &record("b", "2026-01-03T00:00:00Z", RunResult::Succeeded),
            Some("2026-01-03T00:00:00Z".into()),
        );
        assert_eq!(seg.watermark.as_deref(), Some("2026-01-03T00:00:00Z"));
        assert_eq!(seg.last_successful_time.as_deref(), Some("2026-01-03T00:00:00Z"));
    }

    #[test]
    fn degraded_follows_the_newest_finished_run() {
        assert_eq!(degraded(&[]), None);
        let failed = vec![record("b", "t2", RunResult::Failed), record("a", "t1", RunResult::Succeeded)];
        let d = degraded(&failed).unwrap();
        assert_eq!((d.status.as_str(), d.reason.as_str()), ("True", "RunFailed"));
        let recovered = vec![record("c", "t3", RunResult::Succeeded), record("b", "t2", RunResult::Failed)];
        assert_eq!(degraded(&recovered).unwrap().status.as_str(), "False");
        let skipped_after_failure = vec![record("c", "t3", RunResult::Skipped), record("b", "t2", RunResult::Failed)];
        assert_eq!(degraded(&skipped_after_failure).unwrap().status.as_str(), "True");
    }
}

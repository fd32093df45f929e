//! One scheduling step of a Dataflow, shared by the controller and local mode: fold what the
//! executor reports into status, notice runs that were abandoned, and decide which runs start,
//! which were missed and which are skipped. Pure: the executor's view and `now` are parameters.

use chrono::{DateTime, Duration, Utc};

use super::history::{fold_into_segment, push};
use super::runs::{Observed, RunRequest, SegmentClock, decide, run_id};
use super::schedule::{format_time, parse_time};
use super::validate::DataflowPlan;
use crate::api::{DataflowSpec, DataflowStatus, ExportMode, RunRecord, RunResult, SegmentStatus};

/// What the step knows.
pub struct Tick<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub spec: &'a DataflowSpec,
    pub plan: &'a DataflowPlan,
    pub previous: &'a DataflowStatus,
    pub observed: &'a [Observed],
    /// The `outflow.dev/run-requested-at` token, if the annotation is set.
    pub run_request: Option<&'a str>,
    /// Limit the manual run to these segments (all when empty).
    pub run_request_segments: &'a [String],
    pub now: DateTime<Utc>,
    pub starting_deadline: Duration,
    pub history_limit: usize,
    /// The versions of the Dataflow, Account and Destination this step sees, e.g.
    /// `3/1234/99`: a permanent failure stalls runs until they change.
    pub inputs: &'a str,
}

/// What the step decided.
#[derive(Debug, Default)]
pub struct TickOutcome {
    pub segments: Vec<SegmentStatus>,
    pub history: Vec<RunRecord>,
    /// Runs to start now.
    pub start: Vec<RunRequest>,
    /// Finished runs now in the history, which the executor may forget.
    pub folded: Vec<String>,
    pub handled_run_request: Option<String>,
    /// When the Dataflow next needs looking at (the earliest next run).
    pub next: Option<DateTime<Utc>>,
    /// Runs are stalled by a permanent failure seen with these inputs.
    pub stalled_on: Option<String>,
    /// The permanent failure's message, while stalled.
    pub stalled_because: Option<String>,
}

pub fn tick(t: &Tick<'_>) -> TickOutcome {
    let mut out = TickOutcome {
        history: t.previous.history.clone(),
        handled_run_request: t.previous.last_handled_run_request.clone(),
        ..Default::default()
    };
    let mut segments: Vec<SegmentStatus> = t
        .plan
        .segments
        .iter()
        .map(|s| {
            t.previous
                .segments
                .iter()
                .find(|p| p.id == s.id)
                .cloned()
                .unwrap_or_else(|| SegmentStatus { id: s.id.clone(), ..Default::default() })
        })
        .collect();
    let before = out.history.clone();
    fold_observed(t, &mut out, &mut segments);
    mark_abandoned(t, &mut out, &mut segments);
    stall_on_permanent_failure(t, &before, &mut out);

    if t.spec.enabled && out.stalled_on.is_none() {
        schedule(t, &mut out, &mut segments);
        manual_runs(t, &mut out);
    } else {
        for s in &mut segments {
            s.next_run_time = None;
        }
    }
    out.next = segments.iter().filter_map(|s| s.next_run_time.as_deref().and_then(parse_time)).min();
    out.segments = segments;
    out
}

/// A newly folded permanent failure stalls runs; a change of inputs since lifts it.
fn stall_on_permanent_failure(t: &Tick<'_>, before: &[RunRecord], out: &mut TickOutcome) {
    let newly_failed = out.history.iter().find(|r| {
        r.permanent
            && r.result == Some(RunResult::Failed)
            && !before.iter().any(|b| b.id == r.id && b.result == r.result)
    });
    out.stalled_on = match newly_failed {
        Some(_) => Some(t.inputs.to_string()),
        None => t.previous.stalled_on.clone().filter(|on| on == t.inputs),
    };
    if out.stalled_on.is_some() {
        out.stalled_because = out.history.iter().find(|r| r.permanent).and_then(|r| r.message.clone());
    }
}

fn is_final(record: &RunRecord) -> bool {
    !matches!(record.result, Some(RunResult::Running) | None)
}

fn fold_observed(t: &Tick<'_>, out: &mut TickOutcome, segments: &mut [SegmentStatus]) {
    let mut finished: Vec<(&RunRecord, &Option<String>)> = t
        .observed
        .iter()
        .filter_map(|o| match o {
            Observed::Finished { record, watermark } => Some((record, watermark)),
            Observed::Running { .. } => None,
        })
        .collect();
    finished.sort_by(|a, b| a.0.scheduled_time.cmp(&b.0.scheduled_time));
    for (record, watermark) in finished {
        // The executor may let go of a run only once the status it was reconciled from already
        // holds it: a reconcile working from a stale copy then still finds it there.
        if out.history.iter().any(|h| h.id == record.id && is_final(h)) {
            out.folded.push(record.id.clone());
            continue;
        }
        push(&mut out.history, record.clone(), t.history_limit);
        if let Some(segment) = segments.iter_mut().find(|s| s.id == record.segment) {
            fold_into_segment(segment, record, watermark.clone());
        }
    }
    for o in t.observed {
        if let Observed::Running { request, started } = o
            && !out.history.iter().any(|h| h.id == request.id)
        {
            push(&mut out.history, super::history::running(request, *started), t.history_limit);
        }
    }
}

/// A run the history says is going but no executor knows: the process running it stopped.
/// Files are published only at the end of a run, so nothing partial was left under a final name.
fn mark_abandoned(t: &Tick<'_>, out: &mut TickOutcome, segments: &mut [SegmentStatus]) {
    let known: Vec<&str> = t
        .observed
        .iter()
        .map(|o| match o {
            Observed::Running { request, .. } => request.id.as_str(),
            Observed::Finished { record, .. } => record.id.as_str(),
        })
        .collect();
    for record in
        out.history.iter_mut().filter(|r| r.result == Some(RunResult::Running) && !known.contains(&r.id.as_str()))
    {
        record.result = Some(RunResult::Failed);
        record.end_time = Some(format_time(t.now));
        record.message =
            Some("abandoned: the process running it stopped before it ended; no file was published".into());
        if let Some(segment) = segments.iter_mut().find(|s| s.id == record.segment) {
            segment.last_result = Some(RunResult::Failed);
        }
    }
}

fn schedule(t: &Tick<'_>, out: &mut TickOutcome, segments: &mut [SegmentStatus]) {
    let allow_overlap = t.spec.allow_overlap.unwrap_or(false);
    for (planned, status) in t.plan.segments.iter().zip(segments.iter_mut()) {
        let running = out.history.iter().any(|h| h.segment == planned.id && h.result == Some(RunResult::Running));
        let clock = SegmentClock {
            schedule: &planned.schedule,
            last_scheduled: status.last_scheduled_time.as_deref().and_then(parse_time),
            previous_next: status.next_run_time.as_deref().and_then(parse_time),
            running,
        };
        // A run on enable happens once: once its record exists, a reconcile working from a stale
        // copy of the status (which would see it as due again, at another time) decides nothing.
        let once_id = run_id(t.namespace, t.name, &planned.id, "once");
        if planned.schedule.runs_on_enable()
            && (out.history.iter().any(|h| h.id == once_id) || t.observed.iter().any(|o| observed_id(o) == once_id))
        {
            status.next_run_time = None;
            continue;
        }
        let decision = decide(&clock, t.now, t.starting_deadline, allow_overlap);
        let record_for = |at: DateTime<Utc>, result: RunResult, message: String| RunRecord {
            id: run_id(t.namespace, t.name, &planned.id, &format_time(at)),
            segment: planned.id.clone(),
            scheduled_time: format_time(at),
            end_time: Some(format_time(t.now)),
            result: Some(result),
            message: Some(message),
            ..Default::default()
        };
        let recorded: Vec<String> =
            out.history.iter().filter(|h| h.segment == planned.id).map(|h| h.scheduled_time.clone()).collect();
        let known = |at: &DateTime<Utc>| recorded.contains(&format_time(*at));
        if decision.missed_uncounted > 0 || !decision.missed.is_empty() {
            let total = decision.missed.len() + decision.missed_uncounted;
            for at in decision.missed.iter().filter(|at| !known(at)) {
                let message = format!(
                    "missed: more than {}s late ({total} run(s) missed in all)",
                    t.starting_deadline.num_seconds()
                );
                push(&mut out.history, record_for(*at, RunResult::Missed, message), t.history_limit);
            }
            status.last_result = Some(RunResult::Missed);
        }
        if let Some(at) = decision.skipped.filter(|at| !known(at)) {
            push(
                &mut out.history,
                record_for(at, RunResult::Skipped, "skipped: the previous run of this segment is still going".into()),
                t.history_limit,
            );
            status.last_result = Some(RunResult::Skipped);
        }
        if let Some(at) = decision.start {
            // A run on enable has no fixed time: its ID must not depend on when it was first
            // seen, or a reconcile reading a stale copy would start it again under another name.
            let key = if planned.schedule.runs_on_enable() { "once".to_string() } else { format_time(at) };
            let id = run_id(t.namespace, t.name, &planned.id, &key);
            // Already known (a reconcile from a stale copy of the status decides it again):
            // the record there stands, and nothing starts twice.
            let known = out.history.iter().any(|h| h.id == id) || t.observed.iter().any(|o| observed_id(o) == id);
            if let (true, Some(handled)) = (known, decision.handled_up_to) {
                status.last_scheduled_time = Some(format_time(handled));
                status.next_run_time = decision.next.map(format_time);
                continue;
            }
            let request = RunRequest {
                id,
                segment: planned.id.clone(),
                scheduled: at,
                watermark: watermark_for(planned.mode, status),
                run_request: None,
            };
            push(&mut out.history, super::history::running(&request, t.now), t.history_limit);
            status.last_result = Some(RunResult::Running);
            out.start.push(request);
        }
        if let Some(handled) = decision.handled_up_to {
            status.last_scheduled_time = Some(format_time(handled));
        }
        status.next_run_time = decision.next.map(format_time);
    }
}

fn observed_id(o: &Observed) -> &str {
    match o {
        Observed::Running { request, .. } => &request.id,
        Observed::Finished { record, .. } => &record.id,
    }
}

fn watermark_for(mode: ExportMode, status: &SegmentStatus) -> Option<String> {
    match mode {
        ExportMode::Incremental => status.watermark.clone(),
        ExportMode::Full => None,
    }
}

fn manual_runs(t: &Tick<'_>, out: &mut TickOutcome) {
    let Some(token) = t.run_request else { return };
    if out.handled_run_request.as_deref() == Some(token) {
        return;
    }
    for planned in &t.plan.segments {
        if !t.run_request_segments.is_empty() && !t.run_request_segments.contains(&planned.id) {
            continue;
        }
        let id = run_id(t.namespace, t.name, &planned.id, &format!("manual/{token}"));
        if out.history.iter().any(|h| h.id == id) || out.start.iter().any(|r| r.segment == planned.id) {
            continue;
        }
        let status = t.previous.segments.iter().find(|s| s.id == planned.id);
        let request = RunRequest {
            id,
            segment: planned.id.clone(),
            scheduled: t.now,
            watermark: status.and_then(|s| watermark_for(planned.mode, s)),
            run_request: Some(token.to_string()),
        };
        push(&mut out.history, super::history::running(&request, t.now), t.history_limit);
        out.start.push(request);
    }
    out.handled_run_request = Some(token.to_string());
}

#[cfg(test)]
mod tests;

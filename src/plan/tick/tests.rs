use super::*;
use crate::api::{Dataflow, Schedule};

fn t(s: &str) -> DateTime<Utc> {
    parse_time(s).unwrap()
}

fn dataflow(schedule: &str, enabled: bool) -> Dataflow {
    let schedule: Schedule = serde_json::from_str(schedule).unwrap();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "outflow.dev/v1alpha1", "kind": "Dataflow", "metadata": {"name": "df", "namespace": "ns"},
        "spec": {"account": "a", "enabled": enabled, "segments": [{"id": "seg", "schedule": schedule, "exportMode": "Incremental"}],
                 "fields": [{"source": "personalEmail.address", "target": "email"}]}
    }))
    .unwrap()
}

fn plan(df: &Dataflow) -> DataflowPlan {
    let segments = df
        .spec
        .segments
        .iter()
        .map(|s| crate::plan::validate::PlannedSegment {
            id: s.id.clone(),
            schedule: crate::plan::schedule::SegmentSchedule::parse(&s.schedule, t("2026-01-01T00:00:00Z")).unwrap(),
            mode: s.export_mode.unwrap_or_default(),
        })
        .collect();
    DataflowPlan { segments, fields: Vec::new(), format: None }
}

fn step(
    df: &Dataflow,
    previous: &DataflowStatus,
    observed: &[Observed],
    now: &str,
    token: Option<&str>,
) -> TickOutcome {
    let plan = plan(df);
    tick(&Tick {
        namespace: "ns",
        name: "df",
        spec: &df.spec,
        plan: &plan,
        previous,
        observed,
        run_request: token,
        run_request_segments: &[],
        now: t(now),
        starting_deadline: Duration::minutes(30),
        history_limit: 10,
        inputs: "1/1/1",
    })
}

fn apply(previous: &DataflowStatus, out: &TickOutcome) -> DataflowStatus {
    DataflowStatus {
        segments: out.segments.clone(),
        history: out.history.clone(),
        last_handled_run_request: out.handled_run_request.clone(),
        stalled_on: out.stalled_on.clone(),
        ..previous.clone()
    }
}

const HOURLY: &str = r#"{"interval": {"hours": 1}}"#;

#[test]
fn a_due_run_starts_once_even_when_the_step_repeats_after_a_restart() {
    let df = dataflow(HOURLY, true);
    let first = step(&df, &DataflowStatus::default(), &[], "2026-03-01T09:30:00Z", None);
    assert!(first.start.is_empty());
    assert_eq!(first.next, Some(t("2026-03-01T10:00:00Z")));
    let s1 = apply(&DataflowStatus::default(), &first);
    let due = step(&df, &s1, &[], "2026-03-01T10:00:02Z", None);
    assert_eq!(due.start.len(), 1);
    let s2 = apply(&s1, &due);
    // A restarted controller sees the run in status and the executor (a Job) still going.
    let running = Observed::Running { request: due.start[0].clone(), started: t("2026-03-01T10:00:02Z") };
    let again = step(&df, &s2, std::slice::from_ref(&running), "2026-03-01T10:05:00Z", None);
    assert!(again.start.is_empty(), "no run is started twice");
    assert_eq!(again.history.iter().filter(|r| r.id == due.start[0].id).count(), 1);
}

#[test]
fn finished_runs_fold_into_history_and_move_the_watermark() {
    let df = dataflow(HOURLY, true);
    let s1 =
        apply(&DataflowStatus::default(), &step(&df, &DataflowStatus::default(), &[], "2026-03-01T09:30:00Z", None));
    let due = step(&df, &s1, &[], "2026-03-01T10:00:02Z", None);
    let s2 = apply(&s1, &due);
    let mut record = crate::plan::history::running(&due.start[0], t("2026-03-01T10:00:02Z"));
    record.result = Some(RunResult::Succeeded);
    record.exported = 42;
    let done = Observed::Finished { record, watermark: Some("2026-03-01T09:59:00Z".into()) };
    let out = step(&df, &s2, std::slice::from_ref(&done), "2026-03-01T10:01:00Z", None);
    assert!(out.folded.is_empty(), "kept by the executor until the status holds it");
    assert_eq!(out.history[0].exported, 42);
    assert_eq!(out.segments[0].watermark.as_deref(), Some("2026-03-01T09:59:00Z"));
    let s3 = apply(&s2, &out);
    let again = step(&df, &s3, std::slice::from_ref(&done), "2026-03-01T10:02:00Z", None);
    assert_eq!(again.folded, vec![due.start[0].id.clone()], "now it may be forgotten");
    let next = step(&df, &s3, &[], "2026-03-01T11:00:01Z", None);
    assert_eq!(
        next.start[0].watermark.as_deref(),
        Some("2026-03-01T09:59:00Z"),
        "the next incremental run starts from it"
    );
}

#[test]
fn a_run_going_when_its_process_stopped_is_recorded_as_failed() {
    let df = dataflow(HOURLY, true);
    let s1 =
        apply(&DataflowStatus::default(), &step(&df, &DataflowStatus::default(), &[], "2026-03-01T09:30:00Z", None));
    let s2 = apply(&s1, &step(&df, &s1, &[], "2026-03-01T10:00:02Z", None));
    // The in-process executor of a restarted controller knows nothing of it.
    let out = step(&df, &s2, &[], "2026-03-01T10:10:00Z", None);
    assert_eq!(out.history[0].result, Some(RunResult::Failed));
    assert!(out.history[0].message.as_deref().unwrap().starts_with("abandoned"));
    assert!(out.start.is_empty());
}

#[test]
fn overlapping_runs_are_skipped_and_late_ones_missed() {
    let df = dataflow(HOURLY, true);
    let s1 =
        apply(&DataflowStatus::default(), &step(&df, &DataflowStatus::default(), &[], "2026-03-01T09:30:00Z", None));
    let due = step(&df, &s1, &[], "2026-03-01T10:00:02Z", None);
    let s2 = apply(&s1, &due);
    let running = Observed::Running { request: due.start[0].clone(), started: t("2026-03-01T10:00:02Z") };
    let out = step(&df, &s2, std::slice::from_ref(&running), "2026-03-01T11:00:01Z", None);
    assert!(out.start.is_empty());
    assert_eq!(out.history[0].result, Some(RunResult::Skipped));
    // Much later, with nothing running: 12:00..14:00 are missed, 15:00 is past the deadline too.
    let s3 = apply(&s2, &out);
    let mut finished = crate::plan::history::running(&due.start[0], t("2026-03-01T10:00:02Z"));
    finished.result = Some(RunResult::Succeeded);
    let late =
        step(&df, &s3, &[Observed::Finished { record: finished, watermark: None }], "2026-03-01T15:45:00Z", None);
    assert!(late.start.is_empty());
    let missed: Vec<_> =
        late.history.iter().filter(|r| r.result == Some(RunResult::Missed)).map(|r| r.scheduled_time.clone()).collect();
    assert_eq!(missed, vec!["2026-03-01T15:00:00Z", "2026-03-01T14:00:00Z", "2026-03-01T13:00:00Z"]);
    assert_eq!(late.next, Some(t("2026-03-01T16:00:00Z")));
}

#[test]
fn a_manual_run_request_starts_one_run_per_segment_once() {
    let df = dataflow(HOURLY, true);
    let s1 =
        apply(&DataflowStatus::default(), &step(&df, &DataflowStatus::default(), &[], "2026-03-01T09:30:00Z", None));
    let out = step(&df, &s1, &[], "2026-03-01T09:31:00Z", Some("now-1"));
    assert_eq!(out.start.len(), 1);
    assert_eq!(out.start[0].run_request.as_deref(), Some("now-1"));
    assert_eq!(out.handled_run_request.as_deref(), Some("now-1"));
    let s2 = apply(&s1, &out);
    let running = Observed::Running { request: out.start[0].clone(), started: t("2026-03-01T09:31:00Z") };
    assert!(step(&df, &s2, &[running], "2026-03-01T09:32:00Z", Some("now-1")).start.is_empty(), "handled once");
}

#[test]
fn a_disabled_dataflow_starts_nothing_but_folds_runs_that_finish() {
    let df = dataflow(HOURLY, false);
    let out = step(&df, &DataflowStatus::default(), &[], "2026-03-01T10:00:00Z", Some("now-1"));
    assert!(out.start.is_empty() && out.next.is_none() && out.handled_run_request.is_none());
}

#[test]
fn a_permanent_failure_stalls_runs_until_an_input_changes() {
    let df = dataflow(HOURLY, true);
    let s1 =
        apply(&DataflowStatus::default(), &step(&df, &DataflowStatus::default(), &[], "2026-03-01T09:30:00Z", None));
    let due = step(&df, &s1, &[], "2026-03-01T10:00:02Z", None);
    let s2 = apply(&s1, &due);
    let mut record = crate::plan::history::running(&due.start[0], t("2026-03-01T10:00:02Z"));
    record.result = Some(RunResult::Failed);
    record.permanent = true;
    record.message = Some("connector S3: access denied".into());
    let out = step(&df, &s2, &[Observed::Finished { record, watermark: None }], "2026-03-01T10:01:00Z", None);
    assert_eq!(out.stalled_on.as_deref(), Some("1/1/1"));
    assert_eq!(out.stalled_because.as_deref(), Some("connector S3: access denied"));
    let s3 = apply(&s2, &out);
    let later = step(&df, &s3, &[], "2026-03-01T11:00:05Z", None);
    assert!(later.start.is_empty() && later.stalled_on.is_some(), "no run while stalled");
    let plan = plan(&df);
    let changed = tick(&Tick {
        namespace: "ns",
        name: "df",
        spec: &df.spec,
        plan: &plan,
        previous: &s3,
        observed: &[],
        run_request: None,
        run_request_segments: &[],
        now: t("2026-03-01T11:00:05Z"),
        starting_deadline: Duration::minutes(30),
        history_limit: 10,
        inputs: "1/2/1",
    });
    assert!(changed.stalled_on.is_none());
    assert_eq!(changed.start.len(), 1, "runs resume once the Account changed");
}

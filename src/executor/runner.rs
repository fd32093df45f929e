//! One run, start to end, as every executor performs it: build the connector and the export
//! plan from the resolved objects, run the export with retries on transient errors, and turn the
//! outcome into a history record. The same call serves the controller's tasks, the Job's pod
//! (`outflow export`) and local mode.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::RunRequest;
use crate::api::{Account, Dataflow, Destination, RunRecord, RunResult};
use crate::connectors::{ConnectorError, target_for};
use crate::export::{ExportError, ExportPlan, Progress, RunReport, run_export_to};
use crate::plan::schedule::{format_time, parse_time};
use crate::plan::validate::DataflowPlan;

/// Attempts of a run whose error may pass (an unreachable host, a timeout).
pub const ATTEMPTS: u32 = 3;

/// Everything a run reads, already fetched.
pub struct RunInputs<'a> {
    pub dataflow: &'a Dataflow,
    pub checked: &'a DataflowPlan,
    pub account: &'a Account,
    pub destination: &'a Destination,
    /// The Account's Secret values by key; used only to open the connection.
    pub secrets: &'a BTreeMap<String, String>,
    pub profiles_url: &'a str,
}

/// Why a run failed, and whether retrying could help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFailure {
    pub message: String,
    /// Bad configuration or credentials: the same run fails again until something changes.
    pub permanent: bool,
}

/// Runs one export, retrying transient failures with exponential backoff (1 s, 2 s, …).
pub fn execute(inputs: &RunInputs<'_>, run: &RunRequest, progress: &dyn Progress) -> Result<RunReport, RunFailure> {
    let mut delay = Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        match execute_once(inputs, run, progress) {
            Ok(report) => return Ok(report),
            Err(failure) if failure.permanent || attempt >= ATTEMPTS => return Err(failure),
            Err(failure) => {
                tracing::warn!(run = %run.id, attempt, error = %failure.message, "run failed; retrying");
                std::thread::sleep(delay);
                delay *= 2;
                attempt += 1;
            }
        }
    }
}

fn execute_once(inputs: &RunInputs<'_>, run: &RunRequest, progress: &dyn Progress) -> Result<RunReport, RunFailure> {
    let watermark = run.watermark.as_deref().and_then(parse_time);
    let plan = ExportPlan::new(
        inputs.dataflow,
        inputs.checked,
        inputs.account,
        inputs.destination,
        &run.segment,
        watermark,
        run.scheduled,
    )
    .map_err(|e| RunFailure { message: e.to_string(), permanent: true })?;
    let target = target_for(inputs.destination, inputs.account, inputs.secrets).map_err(|e| connector_failure(&e))?;
    target.probe().map_err(|e| connector_failure(&e))?;
    run_export_to(&plan, inputs.profiles_url, &target, &run.id, progress).map_err(|e| export_failure(&e))
}

fn connector_failure(e: &ConnectorError) -> RunFailure {
    RunFailure { message: e.to_string(), permanent: e.is_permanent() }
}

fn export_failure(e: &ExportError) -> RunFailure {
    // Bad profile data (a corrupt file, a column of the wrong type) is as bad on a retry.
    let permanent = match e {
        ExportError::Plan(_) | ExportError::FileName(_) | ExportError::Source(_) => true,
        ExportError::Connector(c) => c.is_permanent(),
        ExportError::Encode(_) => false,
    };
    RunFailure { message: e.to_string(), permanent }
}

/// The history record of a finished run, and the watermark it reached (on success only).
pub fn finished_record(
    run: &RunRequest,
    started: DateTime<Utc>,
    ended: DateTime<Utc>,
    outcome: &Result<RunReport, RunFailure>,
) -> (RunRecord, Option<String>) {
    let mut record = crate::plan::history::running(run, started);
    record.end_time = Some(format_time(ended));
    match outcome {
        Ok(report) => {
            record.result = Some(RunResult::Succeeded);
            fill_counts(&mut record, report);
            (record, report.watermark.clone())
        }
        Err(failure) => {
            record.result = Some(RunResult::Failed);
            record.message = Some(crate::plan::text::truncate(&failure.message, 512));
            record.permanent = failure.permanent;
            (record, None)
        }
    }
}

/// Copies a run report's counts into a history record.
pub fn fill_counts(record: &mut RunRecord, report: &RunReport) {
    record.profiles_read = report.profiles_read;
    record.exported = report.exported;
    record.excluded_consent = report.excluded_consent;
    record.excluded_mandatory = report.excluded_mandatory;
    record.excluded_duplicate = report.excluded_duplicate;
    record.failed = report.failed;
    record.failed_rows = report.failed_rows.clone();
    record.files = report.files.len() as u64;
    record.bytes = report.files.iter().map(|f| f.bytes).sum();
    record.message = Some(match report.files.first() {
        Some(first) if report.files.len() > 1 => format!("{} and {} more file(s)", first.name, report.files.len() - 1),
        Some(first) => first.name.clone(),
        None => "no file".into(),
    });
}

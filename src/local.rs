//! Local mode: the controller's machinery over a folder of manifests instead of an API server.
//! Same validation, same schedule decisions ([`crate::plan::tick`]), same runner; state (run
//! history, watermarks) kept as one JSON file per Dataflow in a state folder, so the next
//! invocation is incremental.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use indicatif::{ProgressBar, ProgressStyle};

use crate::api::{Dataflow, DataflowStatus, RunResult};
use crate::executor::runner::{RunInputs, execute, finished_record};
use crate::executor::{Observed, RunRequest};
use crate::export::{NoProgress, Progress};
use crate::manifest::check::dataflow_check;
use crate::manifest::{ManifestSet, namespace_of, secret_values};
use crate::plan::conditions::{merge, readiness};
use crate::plan::history::{DEFAULT_HISTORY_LIMIT, degraded};
use crate::plan::schedule::format_time;
use crate::plan::tick::{Tick, tick};
use crate::plan::validate::summarize;

/// The token local mode uses to run each segment once at once the first time it sees a Dataflow:
/// a new user sees files right away instead of waiting for the first scheduled time.
pub const FIRST_RUN_TOKEN: &str = "local-first-run";

/// Options of one pass.
pub struct Options {
    pub paths: Vec<PathBuf>,
    pub state: PathBuf,
    pub profiles_url: String,
    pub starting_deadline: Duration,
}

/// What one pass did to one Dataflow.
pub struct Outcome {
    pub namespace: String,
    pub name: String,
    pub dataflow: Option<Dataflow>,
    pub status: DataflowStatus,
    pub ran: Vec<(RunRequest, Result<crate::export::RunReport, crate::executor::runner::RunFailure>)>,
}

/// Why a pass could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{0}")]
    Manifests(String),
    #[error("state folder {path}: {source}")]
    State { path: PathBuf, source: std::io::Error },
}

/// Runs everything due at `now` once; returns each Dataflow's outcome.
pub fn run_pass(options: &Options, now: DateTime<Utc>) -> Result<Vec<Outcome>, LocalError> {
    let set = ManifestSet::read(&options.paths).map_err(|errors| {
        LocalError::Manifests(errors.iter().map(|e| format!("error: {e}")).collect::<Vec<_>>().join("\n"))
    })?;
    let mut outcomes = Vec::new();
    for located in &set.dataflows {
        outcomes.push(run_dataflow(options, &set, &located.object, now)?);
    }
    Ok(outcomes)
}

fn state_file(state: &Path, ns: &str, name: &str) -> PathBuf {
    state.join(ns).join(format!("{name}.json"))
}

fn load_status(path: &Path) -> DataflowStatus {
    std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

fn save_status(path: &Path, status: &DataflowStatus) -> Result<(), LocalError> {
    let io = |source| LocalError::State { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(status).unwrap_or_default()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn run_dataflow(
    options: &Options,
    set: &ManifestSet,
    dataflow: &Dataflow,
    now: DateTime<Utc>,
) -> Result<Outcome, LocalError> {
    let ns = namespace_of(&dataflow.metadata).to_string();
    let name = dataflow.metadata.name.clone().unwrap_or_default();
    let path = state_file(&options.state, &ns, &name);
    let previous = load_status(&path);
    let generation = dataflow.metadata.generation;
    let mut outcome = Outcome {
        namespace: ns.clone(),
        name: name.clone(),
        dataflow: Some(dataflow.clone()),
        status: previous.clone(),
        ran: Vec::new(),
    };
    let checked = match dataflow_check(set, dataflow, now) {
        Ok(plan) => plan,
        Err(problems) => {
            let first = &problems[0];
            let problem = Some((first.reason.as_str(), summarize(&problems), first.reason.is_in_own_spec()));
            outcome.status.conditions =
                merge(&previous.conditions, readiness(problem, ""), generation, &format_time(now));
            outcome.status.next_run_time = None;
            save_status(&path, &outcome.status)?;
            return Ok(outcome);
        }
    };
    let account = set.account(&ns, &dataflow.spec.account).map(|a| &a.object).expect("resolved by dataflow_check");
    let destination =
        set.destination(&account.spec.destination).map(|d| &d.object).expect("resolved by dataflow_check");
    let secrets: BTreeMap<String, String> = account
        .spec
        .credentials_secret_ref
        .as_ref()
        .and_then(|r| set.secret(&ns, &r.name))
        .map(|s| secret_values(&s.object))
        .unwrap_or_default();
    let history_limit = dataflow.spec.run_history_limit.map_or(DEFAULT_HISTORY_LIMIT, |l| l as usize);
    let first_time = previous.segments.is_empty() && previous.history.is_empty();
    // Local objects have no resourceVersion: their content stands in for it.
    let inputs = fingerprint(&[
        serde_json::to_value(&dataflow.spec).unwrap_or_default(),
        serde_json::to_value(&account.spec).unwrap_or_default(),
        serde_json::to_value(&destination.spec).unwrap_or_default(),
        serde_json::to_value(&secrets).unwrap_or_default(),
    ]);
    let step = |previous: &DataflowStatus, observed: &[Observed]| {
        tick(&Tick {
            namespace: &ns,
            name: &name,
            spec: &dataflow.spec,
            plan: &checked,
            previous,
            observed,
            run_request: first_time.then_some(FIRST_RUN_TOKEN),
            run_request_segments: &[],
            now,
            starting_deadline: options.starting_deadline,
            history_limit,
            inputs: &inputs,
        })
    };
    let decided = step(&previous, &[]);
    let mut status = DataflowStatus {
        segments: decided.segments.clone(),
        history: decided.history.clone(),
        last_handled_run_request: decided.handled_run_request.clone(),
        ..previous.clone()
    };
    let inputs = RunInputs {
        dataflow,
        checked: &checked,
        account,
        destination,
        secrets: &secrets,
        profiles_url: &options.profiles_url,
    };
    let mut finished = Vec::new();
    for run in &decided.start {
        let started = Utc::now();
        let result = with_progress(&format!("{ns}/{name} {}", run.segment), |progress| execute(&inputs, run, progress));
        let (record, watermark) = finished_record(run, started, Utc::now(), &result);
        finished.push(Observed::Finished { record, watermark });
        outcome.ran.push((run.clone(), result));
    }
    let folded = step(&status, &finished);
    status.segments = folded.segments;
    status.history = folded.history;
    status.next_run_time = folded.next.map(format_time);
    status.stalled_on = folded.stalled_on.clone();
    let mut desired = readiness(None, "configuration is valid");
    desired.extend(degraded(&status.history));
    if let Some(because) = &folded.stalled_because {
        desired.retain(|d| d.type_ != crate::plan::conditions::STALLED);
        desired.push(crate::plan::conditions::Desired::new(
            crate::plan::conditions::STALLED,
            true,
            "RunFailedPermanently",
            because.clone(),
        ));
    }
    status.conditions = merge(&previous.conditions, desired, generation, &format_time(now));
    status.observed_generation = generation;
    save_status(&path, &status)?;
    outcome.status = status;
    Ok(outcome)
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn rows_read(&self, read: u64, total: Option<u64>) {
        if let Some(t) = total {
            self.0.set_length(t);
        }
        self.0.set_position(read);
    }
}

/// Runs `f` with a progress bar on a terminal, silently otherwise.
pub fn with_progress<T>(label: &str, f: impl FnOnce(&dyn Progress) -> T) -> T {
    if !std::io::stderr().is_terminal() {
        return f(&NoProgress);
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {human_pos}/{human_len} profiles ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(label.to_string());
    let bar = Bar(bar);
    let out = f(&bar);
    bar.0.finish_and_clear();
    out
}

/// The status table, like `kubectl get dataflows` with the last run.
pub fn table(outcomes: &[Outcome]) -> String {
    let rows: Vec<[String; 9]> = outcomes
        .iter()
        .map(|o| {
            let ready = crate::plan::conditions::find(&o.status.conditions, crate::plan::conditions::READY);
            let last = o.status.history.iter().find(|r| r.result != Some(RunResult::Running));
            [
                o.namespace.clone(),
                o.name.clone(),
                o.dataflow.as_ref().map(|d| d.spec.enabled.to_string()).unwrap_or_default(),
                ready.map(|c| c.status.as_str().to_string()).unwrap_or_else(|| "Unknown".into()),
                ready.map(|c| c.reason.clone()).unwrap_or_default(),
                last.and_then(|r| r.result).map(|r| format!("{r:?}")).unwrap_or_else(|| "-".into()),
                last.map(|r| r.exported.to_string()).unwrap_or_else(|| "-".into()),
                last.map(|r| r.files.to_string()).unwrap_or_else(|| "-".into()),
                o.status.next_run_time.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    crate::cli::print_table(
        &["NAMESPACE", "NAME", "ENABLED", "READY", "REASON", "LAST RUN", "EXPORTED", "FILES", "NEXT RUN"],
        &rows,
    )
}

/// A short digest of some JSON values, standing in for resource versions.
fn fingerprint(values: &[serde_json::Value]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for v in values {
        hasher.update(v.to_string().as_bytes());
    }
    hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

//! The in-process executor: runs exports as tasks inside the controller, at most `limit` at a
//! time, and keeps each finished run until the controller has folded it into status. On
//! shutdown it lets running exports finish for a grace period; an export cut short publishes
//! nothing, since files are committed only at its end.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore, mpsc};

use super::Observed;
use super::RunRequest;
use super::runner::{RunInputs, execute, finished_record};
use crate::api::{Account, Dataflow, Destination};
use crate::export::NoProgress;
use crate::plan::validate::DataflowPlan;

/// A Dataflow, by namespace and name.
pub type DataflowKey = (String, String);

/// What a run needs, owned, so it can move onto a worker thread.
#[derive(Clone)]
pub struct OwnedInputs {
    pub dataflow: Dataflow,
    pub checked: DataflowPlan,
    pub account: Account,
    pub destination: Destination,
    pub secrets: BTreeMap<String, String>,
    pub profiles_url: String,
}

enum Slot {
    Running { request: RunRequest, started: DateTime<Utc> },
    Finished(Observed),
}

/// Runs exports as tasks of this process.
pub struct InProcess {
    limit: Arc<Semaphore>,
    runs: Arc<Mutex<HashMap<DataflowKey, BTreeMap<String, Slot>>>>,
    finished: mpsc::UnboundedSender<DataflowKey>,
    running: Arc<AtomicUsize>,
    idle: Arc<Notify>,
    stopping: AtomicBool,
}

impl InProcess {
    /// An executor running at most `limit` exports at once; `finished` hears which Dataflow has a
    /// run that just ended, so the controller reconciles it without polling.
    pub fn new(limit: usize, finished: mpsc::UnboundedSender<DataflowKey>) -> Self {
        Self {
            limit: Arc::new(Semaphore::new(limit.max(1))),
            runs: Arc::default(),
            finished,
            running: Arc::default(),
            idle: Arc::default(),
            stopping: AtomicBool::new(false),
        }
    }

    /// Starts the run unless this executor already knows it; returns whether it started.
    pub fn start(&self, key: DataflowKey, request: RunRequest, inputs: OwnedInputs) -> bool {
        if self.stopping.load(Ordering::SeqCst) {
            return false;
        }
        let started = Utc::now();
        {
            let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
            let slots = runs.entry(key.clone()).or_default();
            if slots.contains_key(&request.id) {
                return false;
            }
            slots.insert(request.id.clone(), Slot::Running { request: request.clone(), started });
        }
        let (limit, runs, finished, running, idle) =
            (self.limit.clone(), self.runs.clone(), self.finished.clone(), self.running.clone(), self.idle.clone());
        running.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let permit = limit.acquire_owned().await;
            let run = request.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let inputs = RunInputs {
                    dataflow: &inputs.dataflow,
                    checked: &inputs.checked,
                    account: &inputs.account,
                    destination: &inputs.destination,
                    secrets: &inputs.secrets,
                    profiles_url: &inputs.profiles_url,
                };
                execute(&inputs, &run, &NoProgress)
            })
            .await
            .unwrap_or_else(|e| {
                Err(super::runner::RunFailure {
                    message: format!("the export task ended abnormally: {e}"),
                    permanent: false,
                })
            });
            drop(permit);
            let (record, watermark) = finished_record(&request, started, Utc::now(), &outcome);
            // The message is already free of secrets: connectors redact what they report.
            tracing::info!(run = %request.id, result = ?record.result, message = ?record.message, "run finished");
            if let Some(slots) = runs.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&key) {
                slots.insert(request.id.clone(), Slot::Finished(Observed::Finished { record, watermark }));
            }
            let _ = finished.send(key);
            if running.fetch_sub(1, Ordering::SeqCst) == 1 {
                idle.notify_waiters();
            }
        });
        true
    }

    /// The runs of a Dataflow this executor knows: going, or finished and not yet forgotten.
    pub fn observe(&self, key: &DataflowKey) -> Vec<Observed> {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.get(key)
            .map(|slots| {
                slots
                    .values()
                    .map(|slot| match slot {
                        Slot::Running { request, started } => {
                            Observed::Running { request: request.clone(), started: *started }
                        }
                        Slot::Finished(o) => o.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Drops a finished run once its record is in status.
    pub fn forget(&self, key: &DataflowKey, id: &str) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slots) = runs.get_mut(key)
            && matches!(slots.get(id), Some(Slot::Finished(_)))
        {
            slots.remove(id);
        }
    }

    /// Stops starting runs and waits up to `grace` for the running ones; returns how many were
    /// still running (and are abandoned, publishing nothing).
    pub async fn shutdown(&self, grace: Duration) -> usize {
        self.stopping.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let notified = self.idle.notified();
            let left = self.running.load(Ordering::SeqCst);
            if left == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.running.load(Ordering::SeqCst);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::manifest::ManifestSet;
    use crate::manifest::check::dataflow_check;
    use crate::plan::schedule::parse_time;

    /// The quickstart's objects, exporting into `out`.
    fn inputs(out: &std::path::Path) -> OwnedInputs {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let set = ManifestSet::read(&[root.join("examples/quickstart")]).unwrap();
        let mut dataflow = set.dataflow("quickstart", "newsletter").unwrap().object.clone();
        dataflow.spec.output.as_mut().unwrap().file_name_template = Some("%SEGMENT_ID%".into());
        let checked = dataflow_check(&set, &dataflow, Utc::now()).unwrap();
        let mut account = set.account("quickstart", "local-folder").unwrap().object.clone();
        account.spec.parameters.insert("path".into(), out.display().to_string());
        let destination = set.destination("quickstart-folder").unwrap().object.clone();
        let profiles_url = root.join("examples/quickstart/profiles").display().to_string();
        OwnedInputs { dataflow, checked, account, destination, secrets: BTreeMap::new(), profiles_url }
    }

    fn request(id: &str) -> RunRequest {
        RunRequest {
            id: id.into(),
            segment: "seg-0".into(),
            scheduled: parse_time("2026-01-01T00:00:00Z").unwrap(),
            watermark: None,
            run_request: None,
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn shutdown_lets_running_exports_finish_and_refuses_new_ones() {
        let out = tempfile::tempdir().unwrap();
        let (sender, mut finished) = mpsc::unbounded_channel();
        let executor = InProcess::new(1, sender);
        let key = ("quickstart".to_string(), "newsletter".to_string());
        assert!(executor.start(key.clone(), request("a"), inputs(out.path())));
        assert!(!executor.start(key.clone(), request("a"), inputs(out.path())), "the same run never starts twice");
        assert_eq!(executor.shutdown(Duration::from_secs(30)).await, 0, "nothing abandoned");
        assert!(
            matches!(executor.observe(&key).as_slice(), [Observed::Finished { record, .. }] if record.exported > 0)
        );
        assert_eq!(finished.recv().await, Some(key.clone()), "the controller hears the run ended");
        assert!(out.path().join("seg-0.csv").exists());
        assert!(!executor.start(key.clone(), request("b"), inputs(out.path())), "no run starts during shutdown");
        executor.forget(&key, "a");
        assert!(executor.observe(&key).is_empty());
    }
}

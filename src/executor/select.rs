//! The executor the controller was started with.

use super::in_process::{InProcess, OwnedInputs};
use super::jobs::JobExecutor;
use super::{Observed, RunRequest};
use crate::api::Dataflow;
use kube::ResourceExt;

/// In-process tasks or Kubernetes Jobs.
pub enum Executor {
    InProcess(InProcess),
    Jobs(JobExecutor),
}

impl Executor {
    pub fn is_in_process(&self) -> bool {
        matches!(self, Self::InProcess(_))
    }

    pub async fn observe(&self, dataflow: &Dataflow) -> Result<Vec<Observed>, kube::Error> {
        match self {
            Self::InProcess(e) => Ok(e.observe(&key(dataflow))),
            Self::Jobs(e) => e.observe(dataflow).await,
        }
    }

    /// Starts a run. The in-process executor needs the resolved objects and Secret values; the
    /// Job executor only the name of the Secret to mount.
    pub async fn start(
        &self,
        dataflow: &Dataflow,
        run: &RunRequest,
        credentials_secret: Option<&str>,
        inputs: impl FnOnce() -> Option<OwnedInputs>,
    ) -> Result<bool, kube::Error> {
        match self {
            Self::InProcess(e) => Ok(match inputs() {
                Some(inputs) => e.start(key(dataflow), run.clone(), inputs),
                None => false,
            }),
            Self::Jobs(e) => e.start(dataflow, run, credentials_secret).await,
        }
    }

    /// Lets go of finished runs now recorded in status.
    pub async fn forget(&self, dataflow: &Dataflow, ids: &[String]) -> Result<(), kube::Error> {
        match self {
            Self::InProcess(e) => {
                for id in ids {
                    e.forget(&key(dataflow), id);
                }
                Ok(())
            }
            Self::Jobs(e) if !ids.is_empty() => e.prune(dataflow).await,
            Self::Jobs(_) => Ok(()),
        }
    }
}

fn key(dataflow: &Dataflow) -> (String, String) {
    (dataflow.namespace().unwrap_or_default(), dataflow.name_any())
}

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use super::telemetry::Metrics;
use super::{Config, ExecutorKind};
use crate::executor::in_process::{DataflowKey, InProcess};
use crate::executor::jobs::JobExecutor;
use crate::executor::select::Executor;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub executor: Executor,
    pub config: Config,
}

impl Context {
    pub fn new(client: Client, config: &Config, finished: tokio::sync::mpsc::UnboundedSender<DataflowKey>) -> Self {
        let reporter = Reporter { controller: config.reporter.clone(), instance: std::env::var("POD_NAME").ok() };
        let executor = match config.executor {
            ExecutorKind::InProcess => Executor::InProcess(InProcess::new(config.max_concurrent_runs, finished)),
            ExecutorKind::Job => Executor::Jobs(JobExecutor::new(client.clone(), config.job.clone())),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics: Metrics::default(),
            executor,
            config: config.clone(),
        }
    }
}

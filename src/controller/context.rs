use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use super::Config;
use super::telemetry::Metrics;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
}

impl Context {
    pub fn new(client: Client, config: &Config) -> Self {
        let reporter = Reporter { controller: config.reporter.clone(), instance: std::env::var("POD_NAME").ok() };
        Self { recorder: Recorder::new(client.clone(), reporter), client, metrics: Metrics::default() }
    }
}

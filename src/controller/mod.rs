//! The controller: one kube-rs reconciler per kind in one process, cross-watching so that a
//! change to a Destination, Account or Secret re-reconciles its dependents at once.

mod account;
mod context;
mod dataflow;
mod destination;
mod error;
mod status;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use kube::Client;

pub use context::Context;
pub use error::Error;

/// Where export runs happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorKind {
    /// Tasks inside the controller process.
    InProcess,
    /// One Kubernetes Job per run.
    Job,
}

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `/metrics`, `/healthz` and `/readyz` are served; none when absent.
    pub metrics_addr: Option<SocketAddr>,
    /// Name of the reporting controller in Events.
    pub reporter: String,
    pub executor: ExecutorKind,
    /// The profile store snapshot exports read.
    pub profiles_url: String,
    /// In-process executor: exports running at once.
    pub max_concurrent_runs: usize,
    /// A run missed by less than this still starts (when the Dataflow does not say).
    pub starting_deadline: chrono::Duration,
    /// On SIGTERM, how long running in-process exports may take to finish.
    pub shutdown_grace: std::time::Duration,
    /// Job executor settings.
    pub job: crate::executor::job_spec::JobDefaults,
    /// Watch only this namespace (Destinations stay cluster-wide); all namespaces when absent.
    pub namespace: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            metrics_addr: None,
            reporter: "outflow-controller".into(),
            executor: ExecutorKind::InProcess,
            profiles_url: "/data/profiles".into(),
            max_concurrent_runs: 2,
            starting_deadline: chrono::Duration::hours(1),
            shutdown_grace: std::time::Duration::from_secs(30),
            job: Default::default(),
            namespace: None,
        }
    }
}

/// Runs the three reconcilers until `shutdown` resolves (or forever).
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    let (finished, finished_runs) = tokio::sync::mpsc::unbounded_channel();
    let ctx = Arc::new(Context::new(client.clone(), &config, finished));
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    if let Some(addr) = config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| Error::Serve(addr, e))?;
        tokio::spawn(telemetry::serve(listener, ctx.clone()));
    }
    tracing::info!("starting the Destination, Account and Dataflow controllers");
    let destinations = destination::controller(client.clone(), ctx.clone(), shutdown.clone()).for_each(|_| async {});
    let accounts = account::controller(client.clone(), ctx.clone(), shutdown.clone()).for_each(|_| async {});
    let dataflows = dataflow::controller(client, ctx.clone(), shutdown.clone(), finished_runs).for_each(|_| async {});
    ctx.metrics.ready.set(1);
    tokio::join!(destinations, accounts, dataflows);
    if let crate::executor::select::Executor::InProcess(executor) = &ctx.executor {
        let abandoned = executor.shutdown(config.shutdown_grace).await;
        if abandoned > 0 {
            tracing::warn!(abandoned, "exports still running at shutdown were abandoned; they published nothing");
        }
    }
    tracing::info!("controllers stopped");
    Ok(())
}

/// An API over one namespace, or all of them.
fn scoped<K>(client: &Client, namespace: &Option<String>) -> kube::Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => kube::Api::namespaced(client.clone(), ns),
        None => kube::Api::all(client.clone()),
    }
}

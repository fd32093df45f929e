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

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `/metrics`, `/healthz` and `/readyz` are served; none when absent.
    pub metrics_addr: Option<SocketAddr>,
    /// Name of the reporting controller in Events.
    pub reporter: String,
}

impl Default for Config {
    fn default() -> Self {
        Self { metrics_addr: None, reporter: "outflow-controller".into() }
    }
}

/// Runs the three reconcilers until `shutdown` resolves (or forever).
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    let ctx = Arc::new(Context::new(client.clone(), &config));
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    if let Some(addr) = config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| Error::Serve(addr, e))?;
        tokio::spawn(telemetry::serve(listener, ctx.clone()));
    }
    tracing::info!("starting the Destination, Account and Dataflow controllers");
    let destinations = destination::controller(client.clone(), ctx.clone(), shutdown.clone()).for_each(|_| async {});
    let accounts = account::controller(client.clone(), ctx.clone(), shutdown.clone()).for_each(|_| async {});
    let dataflows = dataflow::controller(client, ctx.clone(), shutdown.clone()).for_each(|_| async {});
    ctx.metrics.ready.set(1);
    tokio::join!(destinations, accounts, dataflows);
    tracing::info!("controllers stopped");
    Ok(())
}

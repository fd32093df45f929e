use std::net::SocketAddr;

use anyhow::Context;

/// Options of `outflow controller`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, default_value = "0.0.0.0:8080", env = "OUTFLOW_METRICS_ADDR")]
    metrics_addr: SocketAddr,
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let config = crate::controller::Config { metrics_addr: Some(args.metrics_addr), ..Default::default() };
    crate::controller::run(client, config, shutdown_signal()).await?;
    Ok(0)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutting down");
}

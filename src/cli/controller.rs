use std::net::SocketAddr;

use anyhow::Context;

use crate::controller::ExecutorKind;
use crate::executor::job_spec::JobDefaults;

/// Options of `outflow controller`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, default_value = "0.0.0.0:8080", env = "OUTFLOW_METRICS_ADDR")]
    metrics_addr: SocketAddr,
    /// Watch Accounts and Dataflows in this namespace only (all namespaces when absent).
    #[arg(long, env = "OUTFLOW_WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Where export runs happen: tasks in this process, or one Kubernetes Job per run.
    #[arg(long, value_enum, default_value_t = ExecutorKind::InProcess, env = "OUTFLOW_EXECUTOR")]
    executor: ExecutorKind,
    /// The profile store snapshot the exports read (a folder of Parquet or NDJSON files).
    #[arg(long, default_value = "/data/profiles", env = "OUTFLOW_PROFILES")]
    profiles: String,
    /// In-process executor: exports running at once.
    #[arg(long, default_value_t = 2)]
    max_concurrent_runs: usize,
    /// A run missed by less than this many seconds still starts (unless the Dataflow says).
    #[arg(long, default_value_t = 3600)]
    starting_deadline_seconds: i64,
    /// On SIGTERM, seconds running in-process exports get to finish.
    #[arg(long, default_value_t = 30)]
    shutdown_grace_seconds: u64,
    /// Job executor: the image of the export pods (this binary).
    #[arg(long, default_value = "ghcr.io/outflow-dev/outflow:0.1.0", env = "OUTFLOW_EXPORT_IMAGE")]
    export_image: String,
    /// Job executor: the ServiceAccount export pods run as (created in each namespace).
    #[arg(long, default_value = "outflow-exporter")]
    export_service_account: String,
    /// Job executor: retries of a failed export pod (a Dataflow's spec.job wins).
    #[arg(long, default_value_t = 2)]
    job_backoff_limit: i32,
    /// Job executor: longest an export may run, in seconds.
    #[arg(long, default_value_t = 21600)]
    job_active_deadline_seconds: i64,
    /// Job executor: how long finished Jobs are kept, in seconds.
    #[arg(long, default_value_t = 604800)]
    job_ttl_seconds_after_finished: i32,
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let config = crate::controller::Config {
        metrics_addr: Some(args.metrics_addr),
        executor: args.executor,
        profiles_url: args.profiles.clone(),
        max_concurrent_runs: args.max_concurrent_runs,
        starting_deadline: chrono::Duration::seconds(args.starting_deadline_seconds),
        shutdown_grace: std::time::Duration::from_secs(args.shutdown_grace_seconds),
        job: JobDefaults {
            image: args.export_image,
            service_account: args.export_service_account,
            profiles_url: args.profiles,
            backoff_limit: args.job_backoff_limit,
            active_deadline_seconds: args.job_active_deadline_seconds,
            ttl_seconds_after_finished: args.job_ttl_seconds_after_finished,
        },
        namespace: args.namespace,
        ..Default::default()
    };
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

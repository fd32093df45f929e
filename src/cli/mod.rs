//! The `outflow` binary's commands. Each is a thin shell over the library.

mod catalog;
mod controller;
mod crds;
mod export;
mod export_cluster;
mod run;
mod sample;
mod validate;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Outflow activates customer-profile data to cloud storage, email, advertising and streams.
#[derive(Debug, Parser)]
#[command(name = "outflow", version, about)]
pub struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "OUTFLOW_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Local mode: run what is due from folders of manifests, keep state in a folder, print the table.
    Run(run::Args),
    /// Run the controller against the cluster in the current kubeconfig.
    Controller(controller::Args),
    /// Print every CustomResourceDefinition as YAML (or write one file each with --out-dir).
    Crds {
        /// Write `<plural>.<group>.yaml` files into this folder instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// List catalog entries from folders of manifests, or from the cluster when no -f is given.
    Catalog {
        /// Files or folders of Destination manifests.
        #[arg(short = 'f', long = "filename")]
        paths: Vec<PathBuf>,
    },
    /// Check manifests the way the API server and the controller would, without a cluster.
    Validate {
        /// Files or folders of manifests (Destinations, Accounts, Secrets, Dataflows).
        #[arg(short = 'f', long = "filename", required = true)]
        paths: Vec<PathBuf>,
    },
    /// Export a Dataflow's segments from a profile store snapshot to the Account's destination.
    Export(export::Args),
    /// Write a deterministic profile store snapshot (Parquet or NDJSON) of any size.
    SampleProfiles(sample::Args),
}

/// Sets up logging to standard error; `RUST_LOG` filters (info by default).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs a command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Controller(args) => controller::run(args).await,
        Command::Crds { out_dir } => crds::run(out_dir),
        Command::Catalog { paths } => catalog::run(&paths).await,
        Command::Validate { paths } => validate::run(&paths),
        Command::Run(args) => run::run(args).await,
        Command::Export(args) => tokio::task::block_in_place(|| export::run(args)),
        Command::SampleProfiles(args) => tokio::task::block_in_place(|| sample::run(args)),
    }
}

/// Formats rows like `kubectl get`: upper-case headers, columns padded to the widest cell.
pub fn print_table<const N: usize>(headers: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}   "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

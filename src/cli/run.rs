//! `outflow run`: local mode over folders of manifests.

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::local::{Options, run_pass, table};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or folders of manifests (Destinations, Accounts, Secrets, Dataflows).
    #[arg(short = 'f', long = "filename", required = true)]
    pub paths: Vec<PathBuf>,
    /// Run what is due once, print the table and exit (otherwise keep running and wake at the
    /// next scheduled time).
    #[arg(long)]
    pub once: bool,
    /// Where run history and incremental watermarks are kept between invocations.
    #[arg(long, default_value = ".outflow/state")]
    pub state: PathBuf,
    /// The profile store snapshot: a folder of *.parquet or *.ndjson files.
    #[arg(long, default_value = "examples/quickstart/profiles")]
    pub profiles: String,
    /// Pretend it is this time (RFC 3339), to try schedules; only with --once.
    #[arg(long, requires = "once")]
    pub now: Option<String>,
    /// A run missed by less than this many seconds still starts.
    #[arg(long, default_value_t = 3600)]
    pub starting_deadline_seconds: i64,
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    let now = args
        .now
        .as_deref()
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .with_context(|| format!("--now '{v}' is not an RFC 3339 time"))
        })
        .transpose()?;
    let options = Options {
        paths: args.paths.clone(),
        state: args.state.clone(),
        profiles_url: args.profiles.clone(),
        starting_deadline: chrono::Duration::seconds(args.starting_deadline_seconds),
    };
    loop {
        let at = now.unwrap_or_else(Utc::now);
        let options_ref = &options;
        let outcomes = match tokio::task::block_in_place(|| run_pass(options_ref, at)) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("{e}");
                return Ok(1);
            }
        };
        let mut failed = false;
        for o in &outcomes {
            for (run, result) in &o.ran {
                match result {
                    Ok(report) => {
                        println!(
                            "{}/{} segment {}: exported {} of {} profiles read",
                            o.namespace, o.name, run.segment, report.exported, report.profiles_read
                        );
                        for f in &report.files {
                            println!("  {} ({} rows, {} bytes)", f.name, f.rows, f.bytes);
                        }
                    }
                    Err(e) => {
                        failed = true;
                        eprintln!("error: {}/{} segment {}: {}", o.namespace, o.name, run.segment, e.message);
                    }
                }
            }
            if let Some(c) = crate::plan::conditions::find(&o.status.conditions, crate::plan::conditions::READY)
                && c.status != crate::api::ConditionStatus::True
            {
                failed = true;
                eprintln!("error: Dataflow {}/{} is not ready ({}): {}", o.namespace, o.name, c.reason, c.message);
            }
        }
        print!("{}", table(&outcomes));
        if args.once {
            let any_failed_run = outcomes.iter().any(|o| o.ran.iter().any(|(_, r)| r.is_err()));
            return Ok(if failed || any_failed_run { 1 } else { 0 });
        }
        let next = outcomes
            .iter()
            .filter_map(|o| o.status.next_run_time.as_deref().and_then(crate::plan::schedule::parse_time))
            .min();
        let wait = next
            .map(|t| (t - Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(std::time::Duration::from_secs(3600))
            .min(std::time::Duration::from_secs(3600));
        eprintln!("next wake-up in {}s (Ctrl-C to stop)", wait.as_secs());
        tokio::select! {
            _ = tokio::time::sleep(wait + std::time::Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
    }
}

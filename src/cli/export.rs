//! `outflow export`: one export run per segment of a Dataflow read from manifest files.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::executor::RunRequest;
use crate::executor::runner::{RunInputs, execute};
use crate::export::RunReport;
use crate::local::with_progress;
use crate::manifest::check::dataflow_check;
use crate::manifest::{ManifestSet, namespace_of};
use crate::plan::schedule::format_time;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or folders of manifests (Destinations, Accounts, Secrets, Dataflows).
    #[arg(short = 'f', long = "filename", required_unless_present = "from_cluster")]
    pub paths: Vec<PathBuf>,
    /// Read the Dataflow, its Account and Destination from the cluster (as an export Job does).
    #[arg(long)]
    pub from_cluster: bool,
    /// With --from-cluster: the folder the Account's Secret is mounted in (one file per key).
    #[arg(long)]
    pub credentials_dir: Option<PathBuf>,
    /// With --from-cluster: write the run report onto this Job (the pod's own) as an annotation.
    #[arg(long, requires = "from_cluster")]
    pub report_to_job: Option<String>,
    /// The Dataflow, as NAME or NAMESPACE/NAME.
    #[arg(long)]
    pub dataflow: String,
    /// Export only this segment (all segments of the Dataflow when absent).
    #[arg(long)]
    pub segment: Option<String>,
    /// The profile store snapshot: a folder of *.parquet or *.ndjson files.
    #[arg(long, default_value = "examples/quickstart/profiles")]
    pub profiles: String,
    /// Write the run report (JSON) here: one object for one segment, an array for several.
    #[arg(long)]
    pub out_report: Option<PathBuf>,
    /// The time the run is for (file names), RFC 3339; now when absent.
    #[arg(long)]
    pub now: Option<String>,
    /// For Incremental segments: export changes qualified after this time (RFC 3339), the
    /// `watermark` of the previous run's report. Without it an incremental run is full.
    #[arg(long)]
    pub watermark: Option<String>,
}

fn parse_time(flag: &str, value: &str) -> anyhow::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| anyhow::anyhow!("--{flag} '{value}' is not an RFC 3339 time: {e}"))
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let now = match &args.now {
        Some(v) => parse_time("now", v)?,
        None => Utc::now(),
    };
    let watermark = args.watermark.as_deref().map(|v| parse_time("watermark", v)).transpose()?;
    let (ns, name) = args.dataflow.split_once('/').unwrap_or(("default", args.dataflow.as_str()));
    let set = if args.from_cluster {
        let handle = tokio::runtime::Handle::current();
        match handle.block_on(super::export_cluster::read_set(ns, name, args.credentials_dir.as_deref())) {
            Ok(set) => set,
            Err(e) => {
                eprintln!("error: {e:#}");
                report_back(&args, ns, None, Some(&format!("{e:#}")));
                return Ok(1);
            }
        }
    } else {
        match ManifestSet::read(&args.paths) {
            Ok(set) => set,
            Err(errors) => {
                for e in &errors {
                    eprintln!("error: {e}");
                }
                return Ok(1);
            }
        }
    };
    let Some(located) = set.dataflow(ns, name) else {
        let known: Vec<String> = set
            .dataflows
            .iter()
            .map(|d| {
                format!("{}/{}", namespace_of(&d.object.metadata), d.object.metadata.name.as_deref().unwrap_or("?"))
            })
            .collect();
        eprintln!(
            "error: Dataflow '{ns}/{name}' not found in the manifests (found: {})",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        );
        return Ok(1);
    };
    let dataflow = &located.object;
    let checked = match dataflow_check(&set, dataflow, now) {
        Ok(plan) => plan,
        Err(problems) => {
            for p in &problems {
                eprintln!(
                    "error: {} (Dataflow {ns}/{name}): {}: {} ({})",
                    located.origin, p.field, p.message, p.reason
                );
            }
            return Ok(1);
        }
    };
    let account = set.account(ns, &dataflow.spec.account).map(|a| &a.object).expect("checked by dataflow_check");
    let destination = set.destination(&account.spec.destination).map(|d| &d.object).expect("checked by dataflow_check");
    let secrets = account
        .spec
        .credentials_secret_ref
        .as_ref()
        .and_then(|r| set.secret(ns, &r.name))
        .map(|s| crate::manifest::secret_values(&s.object))
        .unwrap_or_default();
    let segments: Vec<String> = match &args.segment {
        Some(s) => vec![s.clone()],
        None => dataflow.spec.segments.iter().map(|s| s.id.clone()).collect(),
    };
    let inputs = RunInputs {
        dataflow,
        checked: &checked,
        account,
        destination,
        secrets: &secrets,
        profiles_url: &args.profiles,
    };
    let mut reports: Vec<RunReport> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for segment in &segments {
        let run = RunRequest {
            id: format!("{name}-{segment}"),
            segment: segment.clone(),
            scheduled: now,
            watermark: watermark.map(format_time),
            run_request: None,
        };
        match with_progress(&format!("{ns}/{name} {segment}"), |progress| execute(&inputs, &run, progress)) {
            Ok(report) => {
                println!(
                    "{ns}/{name} segment {segment}: read {}, exported {}, excluded (consent {}, mandatory {}, duplicate {}), {} file(s), {} bytes, {} ms to Account {}",
                    report.profiles_read,
                    report.exported,
                    report.excluded_consent,
                    report.excluded_mandatory,
                    report.excluded_duplicate,
                    report.files.len(),
                    report.files.iter().map(|f| f.bytes).sum::<u64>(),
                    report.duration_ms,
                    dataflow.spec.account,
                );
                for f in &report.files {
                    println!("  {} ({} rows, {} bytes)", f.name, f.rows, f.bytes);
                }
                reports.push(report);
            }
            Err(e) => {
                eprintln!("error: {ns}/{name} segment {segment}: {}", e.message);
                errors.push(format!("segment {segment}: {}", e.message));
            }
        }
    }
    let failed = !errors.is_empty();
    let report = match reports.as_slice() {
        [one] => serde_json::to_value(one).ok(),
        _ => None,
    };
    let error = (!errors.is_empty()).then(|| errors.join("; "));
    report_back(&args, ns, report.as_ref(), error.as_deref());
    if let Some(path) = &args.out_report {
        let json = if args.segment.is_some() && reports.len() == 1 {
            serde_json::to_string_pretty(&reports[0])?
        } else {
            serde_json::to_string_pretty(&reports)?
        };
        std::fs::write(path, json + "\n").map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    Ok(if failed { 1 } else { 0 })
}

/// With --report-to-job, leaves the report (or the error) on the Job for the controller.
fn report_back(args: &Args, ns: &str, report: Option<&serde_json::Value>, error: Option<&str>) {
    let Some(job) = &args.report_to_job else { return };
    let handle = tokio::runtime::Handle::current();
    if let Err(e) = handle.block_on(super::export_cluster::report_to_job(ns, job, report, error)) {
        eprintln!("error: {e:#}");
    }
}

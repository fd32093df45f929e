//! Throughput of segment exports to platforms fed rows: identities per second and CPU seconds per
//! million identities, for an unthrottled HTTP sink on loopback (batches of 10,000) and for Kafka
//! (when `OUTFLOW_TEST_KAFKA_BOOTSTRAP` names a broker).
//!
//!     cargo bench --bench push -- [PROFILES]        (default 1,000,000)
//!
//! CPU is the process's, less the threads of the local sink (named `tokio-runtime-worker`); for
//! Kafka the broker runs in its own process and is not counted.

#[path = "../tests/support/http_server.rs"]
#[allow(dead_code)]
mod http_server;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use http_server::{Reply, Seen, Server};
use outflow::executor::RunRequest;
use outflow::executor::runner::{RunInputs, execute};
use outflow::export::NoProgress;
use outflow::manifest::check::dataflow_check;
use outflow::manifest::{ManifestSet, secret_values};
use outflow::sample::{SampleSpec, write_sample};
use serde_json::json;

/// CPU seconds of this process's threads, except those whose name starts with `skip`.
fn cpu_seconds(skip: &str) -> f64 {
    let ticks: u64 = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            if name.starts_with(skip) {
                return None;
            }
            let f: Vec<&str> = rest.split(' ').collect();
            Some(f[11].parse::<u64>().ok()? + f[12].parse::<u64>().ok()?)
        })
        .sum();
    ticks as f64 / 100.0
}

fn run(dir: &std::path::Path, profiles: &str, destination: &str, objects: &str) -> (u64, f64, f64) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("destination.yaml"), destination).unwrap();
    std::fs::write(dir.join("objects.yaml"), objects).unwrap();
    let set = ManifestSet::read(&[dir.to_path_buf()]).unwrap_or_else(|e| panic!("{e:?}"));
    let df = &set.dataflow("bench", "bench").unwrap().object;
    let checked = dataflow_check(&set, df, Utc::now()).unwrap_or_else(|p| panic!("{p:?}"));
    let account = &set.account("bench", "bench").unwrap().object;
    let destination = &set.destination(&account.spec.destination).unwrap().object;
    let secrets: BTreeMap<String, String> = secret_values(&set.secret("bench", "bench").unwrap().object);
    let inputs =
        RunInputs { dataflow: df, checked: &checked, account, destination, secrets: &secrets, profiles_url: profiles };
    let request = RunRequest {
        id: "bench".into(),
        segment: "seg-0".into(),
        scheduled: Utc::now(),
        watermark: None,
        run_request: None,
    };
    let (cpu0, t0) = (cpu_seconds("tokio-runtime-w"), Instant::now());
    let report = execute(&inputs, &request, &NoProgress).unwrap_or_else(|f| panic!("{}", f.message));
    (report.exported, t0.elapsed().as_secs_f64(), cpu_seconds("tokio-runtime-w") - cpu0)
}

fn objects(parameters: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: bench, namespace: bench}}\nstringData: {{bearerToken: bench-token}}\n---\napiVersion: outflow.dev/v1alpha1\nkind: Account\nmetadata: {{name: bench, namespace: bench}}\nspec:\n  destination: {}\n  parameters: {{{parameters}}}\n  credentialsSecretRef: {{name: bench}}\n---\napiVersion: outflow.dev/v1alpha1\nkind: Dataflow\nmetadata: {{name: bench, namespace: bench}}\nspec:\n  account: bench\n  enabled: true\n  segments: [{{id: seg-0, schedule: {{once: {{}}}}}}]\n  consent: {{enforce: false}}\n  fields:\n    - {{source: identityMap.email, target: email, transforms: [SHA256]}}\n    - {{source: identityMap.crmId, target: crmId}}\n",
        if parameters.contains("bootstrapServers") { "kafka" } else { "generic-http-api" }
    )
}

fn print(name: &str, (exported, wall, cpu): (u64, f64, f64)) {
    println!(
        "| {name} | {exported} | {wall:.2} | {:.0} | {:.2} |",
        exported as f64 / wall,
        cpu / exported as f64 * 1e6
    );
}

fn main() {
    let count: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let profiles = work.path().join("profiles");
    write_sample(
        &profiles,
        &SampleSpec { count, seed: 1, segments: 1, rows_per_file: 250_000, ..SampleSpec::default() },
    )
    .unwrap();
    let profiles = profiles.display().to_string();
    println!("| sink | identities | seconds | identities/s | CPU s per million |\n|---|---|---|---|---|");

    let sink = Server::start(Arc::new(|_: &Seen, _| Reply::json(200, json!({"errors": []}))), None, Duration::ZERO);
    let unthrottled = std::fs::read_to_string(root.join("manifests/catalog/generic-http-api.yaml"))
        .unwrap()
        .replace("maxBatchSize: 1000", "maxBatchSize: 10000")
        .replace("    requestsPerSecond: 10\n", "");
    let http =
        run(&work.path().join("http"), &profiles, &unthrottled, &objects(&format!("url: \"{}/members\"", sink.url)));
    print("HTTP, batches of 10,000", http);

    match std::env::var("OUTFLOW_TEST_KAFKA_BOOTSTRAP") {
        Ok(bootstrap) => {
            let kafka = std::fs::read_to_string(root.join("manifests/catalog/kafka.yaml")).unwrap();
            let topic = format!("outflow-bench-{}", Utc::now().timestamp());
            let parameters = format!("bootstrapServers: \"{bootstrap}\", topic: \"{topic}\"");
            print("Kafka, one message each", run(&work.path().join("kafka"), &profiles, &kafka, &objects(&parameters)));
        }
        Err(_) => eprintln!("Kafka skipped: OUTFLOW_TEST_KAFKA_BOOTSTRAP is not set (scripts/kafka-broker.sh start)"),
    }
}

//! Segment exports to a real Kafka broker (KRaft, started by `scripts/kafka-broker.sh`), read back
//! with a consumer and compared with DuckDB's reading of the same profiles.

#[path = "support/duckdb.rs"]
mod duckdb;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use outflow::executor::RunRequest;
use outflow::executor::runner::{RunFailure, RunInputs, execute};
use outflow::export::{NoProgress, RunReport};
use outflow::manifest::check::dataflow_check;
use outflow::manifest::{ManifestSet, secret_values};
use outflow::sample::{SampleSpec, write_sample};
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

/// The broker's address, or None (after saying why) when no broker runs here.
fn broker(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{var} is not set under CI=true: run scripts/kafka-broker.sh start and eval \"$(scripts/kafka-broker.sh env)\""
            );
            eprintln!(
                "SKIPPED: {var} is not set (scripts/kafka-broker.sh start; eval \"$(scripts/kafka-broker.sh env)\")"
            );
            None
        }
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-04-01T06:00:00Z").unwrap().with_timezone(&Utc)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), Utc::now().timestamp_micros())
}

fn manifests(dir: &std::path::Path, yaml: &str) -> ManifestSet {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(root.join("manifests/catalog/kafka.yaml"), dir.join("destination.yaml")).unwrap();
    std::fs::write(dir.join("objects.yaml"), yaml).unwrap();
    ManifestSet::read(&[dir.to_path_buf()]).unwrap_or_else(|e| panic!("{e:?}"))
}

fn objects(account: &str, parameters: &str, secret: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: {account}, namespace: streams}}
stringData: {{{secret}}}
---
apiVersion: outflow.dev/v1alpha1
kind: Account
metadata: {{name: {account}, namespace: streams}}
spec:
  destination: kafka
  parameters: {{{parameters}}}
  credentialsSecretRef: {{name: {account}}}
---
apiVersion: outflow.dev/v1alpha1
kind: Dataflow
metadata: {{name: {account}, namespace: streams}}
spec:
  account: {account}
  enabled: true
  segments: [{{id: seg-0, exportMode: Incremental, schedule: {{once: {{}}}}}}]
  fields:
    - {{source: identityMap.crmId, target: crmId}}
    - {{source: identityMap.email, target: email}}
  mandatoryFields: [crmId]
"#
    )
}

fn run(set: &ManifestSet, name: &str, profiles: &str, watermark: Option<&str>) -> Result<RunReport, RunFailure> {
    let df = &set.dataflow("streams", name).unwrap().object;
    let checked = dataflow_check(set, df, now()).unwrap_or_else(|p| panic!("{p:?}"));
    let account = &set.account("streams", name).unwrap().object;
    let destination = &set.destination("kafka").unwrap().object;
    let secrets: BTreeMap<String, String> = secret_values(&set.secret("streams", name).unwrap().object);
    let inputs =
        RunInputs { dataflow: df, checked: &checked, account, destination, secrets: &secrets, profiles_url: profiles };
    let request = RunRequest {
        id: format!("{name}-seg-0"),
        segment: "seg-0".into(),
        scheduled: now(),
        watermark: watermark.map(str::to_string),
        run_request: None,
    };
    execute(&inputs, &request, &NoProgress)
}

/// Every message of `topic`, read from the beginning until `expected` arrived or 60 s passed.
fn consume(bootstrap: &str, topic: &str, expected: usize) -> Vec<(String, Value)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("outflow-test"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < expected && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(500)) {
            let message = message.unwrap();
            let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            out.push((key, serde_json::from_slice(message.payload().unwrap()).unwrap()));
        }
    }
    // Nothing more than expected arrives.
    if let Some(extra) = consumer.poll(Duration::from_secs(2)) {
        out.push(("<extra>".into(), serde_json::from_slice(extra.unwrap().payload().unwrap()).unwrap()));
    }
    out
}

#[test]
fn every_member_is_one_confirmed_message_keyed_by_profile() {
    let Some(bootstrap) = broker("OUTFLOW_TEST_KAFKA_BOOTSTRAP") else { return };
    if !duckdb::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = SampleSpec { count: 5_000, seed: 3, segments: 2, rows_per_file: 2_000, ..SampleSpec::default() };
    write_sample(&dir.path().join("profiles"), &spec).unwrap();
    let profiles = dir.path().join("profiles").display().to_string();
    let topic = unique("outflow-members");
    let set = manifests(
        &dir.path().join("m"),
        &objects("events", &format!("bootstrapServers: \"{bootstrap}\", topic: \"{topic}\""), "unused: x"),
    );
    let report = run(&set, "events", &profiles, None).unwrap_or_else(|f| panic!("{}", f.message));

    let expected: BTreeSet<String> = duckdb::column(&format!(
        "SELECT profile_id FROM (SELECT profile_id, map_extract_value(segmentMembership, 'seg-0') AS m,
                consents.marketing.email.val AS c, map_extract_value(identityMap, 'crmId') AS crm
            FROM read_parquet('{profiles}/*.parquet'))
         WHERE m.status IN ('realized', 'existing') AND c = 'y' AND len(list_filter(crm, lambda x: x.id IS NOT NULL)) > 0"
    ))
    .into_iter()
    .collect();
    assert_eq!(report.exported as usize, expected.len());
    let messages = consume(&bootstrap, &topic, expected.len());
    let keys: Vec<&String> = messages.iter().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), expected.len(), "one message per member, no more");
    assert_eq!(keys.into_iter().cloned().collect::<BTreeSet<_>>(), expected);
    for (key, value) in &messages {
        assert_eq!(value["profileId"].as_str(), Some(key.as_str()));
        let membership = &value["segmentMembership"]["seg-0"];
        assert!(matches!(membership["status"].as_str(), Some("realized" | "existing")), "{value}");
        assert!(membership["lastQualificationTime"].as_str().is_some_and(|t| t.ends_with('Z')), "{value}");
        assert!(value["identityMap"]["crmId"].as_str().is_some_and(|c| c.starts_with("crm-")), "{value}");
        assert_eq!(value["fields"]["crmId"], value["identityMap"]["crmId"]);
    }
}

#[test]
fn sasl_credentials_come_from_the_secret_and_wrong_ones_fail_for_good() {
    let Some(bootstrap) = broker("OUTFLOW_TEST_KAFKA_SASL_BOOTSTRAP") else { return };
    let user = std::env::var("OUTFLOW_TEST_KAFKA_SASL_USER").unwrap();
    let password = std::env::var("OUTFLOW_TEST_KAFKA_SASL_PASSWORD").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = SampleSpec { count: 500, seed: 5, segments: 1, ..SampleSpec::default() };
    write_sample(&dir.path().join("profiles"), &spec).unwrap();
    let profiles = dir.path().join("profiles").display().to_string();
    let topic = unique("outflow-sasl");
    let parameters = format!(
        "bootstrapServers: \"{bootstrap}\", topic: \"{topic}\", securityProtocol: SASL_PLAINTEXT, saslMechanism: PLAIN"
    );
    let wrong = "not-the-password-31337";
    let yaml = [
        objects("good", &parameters, &format!("saslUsername: {user}, saslPassword: {password}")),
        "---\n".into(),
        objects("bad", &parameters, &format!("saslUsername: {user}, saslPassword: {wrong}")),
    ]
    .concat();
    let set = manifests(&dir.path().join("m"), &yaml);
    let report = run(&set, "good", &profiles, None).unwrap_or_else(|f| panic!("{}", f.message));
    assert!(report.exported > 0);
    let failure = run(&set, "bad", &profiles, None).unwrap_err();
    assert!(failure.permanent, "{failure:?}");
    assert!(!failure.message.contains(wrong), "{}", failure.message);
}

#[test]
fn a_tls_broker_is_trusted_through_the_ca_in_the_secret_only() {
    let Some(bootstrap) = broker("OUTFLOW_TEST_KAFKA_SSL_BOOTSTRAP") else { return };
    let ca = std::fs::read_to_string(std::env::var("OUTFLOW_TEST_KAFKA_CA").unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = SampleSpec { count: 500, seed: 9, segments: 1, ..SampleSpec::default() };
    write_sample(&dir.path().join("profiles"), &spec).unwrap();
    let profiles = dir.path().join("profiles").display().to_string();
    let topic = unique("outflow-tls");
    let parameters = format!("bootstrapServers: \"{bootstrap}\", topic: \"{topic}\", securityProtocol: SSL");
    let yaml = [
        objects("trusting", &parameters, &format!("caCert: {}", serde_json::to_string(&ca).unwrap())),
        "---\n".into(),
        objects("system-roots", &parameters, "unused: x"),
    ]
    .concat();
    let set = manifests(&dir.path().join("m"), &yaml);
    let report = run(&set, "trusting", &profiles, None).unwrap_or_else(|f| panic!("{}", f.message));
    assert!(report.exported > 0);
    let failure = run(&set, "system-roots", &profiles, None).unwrap_err();
    assert!(failure.permanent && failure.message.contains("certificate"), "{failure:?}");
}

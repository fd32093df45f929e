//! The controller on the real control plane: examples become Ready, missing references are
//! reported and healed without a restart, and re-applying changes nothing.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ResourceExt};
use outflow::api::{Account, Dataflow, Destination};
use serde_json::json;

use crate::support::{self, TestNamespace, User, apply, wait_condition};

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// Applies the examples' Accounts, Secrets and Dataflows into `ns`.
async fn apply_examples(client: &kube::Client, ns: &str) -> (Vec<String>, Vec<String>) {
    let folders = ["examples/s3", "examples/sftp", "examples/meta"].map(support::repo_path);
    let set = outflow::manifest::ManifestSet::read(&folders).expect("reading examples");
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    for s in &set.secrets {
        let mut s = s.object.clone();
        s.metadata.namespace = Some(ns.to_string());
        apply(&secrets, &s).await;
    }
    let accounts = Api::<Account>::namespaced(client.clone(), ns);
    for a in &set.accounts {
        let mut a = a.object.clone();
        a.metadata.namespace = Some(ns.to_string());
        apply(&accounts, &a).await;
    }
    let dataflows = Api::<Dataflow>::namespaced(client.clone(), ns);
    for d in &set.dataflows {
        let mut d = d.object.clone();
        d.metadata.namespace = Some(ns.to_string());
        apply(&dataflows, &d).await;
    }
    (
        set.accounts.iter().map(|a| a.object.name_any()).collect(),
        set.dataflows.iter().map(|d| d.object.name_any()).collect(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn crds_and_catalog_apply_with_kubectl_and_examples_become_ready() {
    support::init();
    let Some(client) = support::client(User::Admin).await else { return };
    let out = support::kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-k",
        support::repo_path("manifests/crds").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "kubectl apply crds: {}", String::from_utf8_lossy(&out.stderr));
    let out = support::kubectl(&["wait", "--for=condition=Established", "crd", "--all", "--timeout=30s"]);
    assert!(out.status.success(), "CRDs established: {}", String::from_utf8_lossy(&out.stderr));
    let out = support::kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-k",
        support::repo_path("manifests/catalog").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "kubectl apply catalog: {}", String::from_utf8_lossy(&out.stderr));

    let ns = TestNamespace::new(&client, "examples").await;
    let _controller = support::start_controller(&client, &ns.name);
    let (accounts, dataflows) = apply_examples(&client, &ns.name).await;
    assert!(accounts.len() >= 3 && dataflows.len() >= 3, "examples for S3, SFTP and an ad platform");

    let out = support::kubectl(&["wait", "--for=condition=Ready", "destinations", "--all", "--timeout=60s"]);
    assert!(
        out.status.success(),
        "destinations Ready: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in ["accounts", "dataflows"] {
        let out = support::kubectl(&["wait", "--for=condition=Ready", kind, "--all", "-n", &ns.name, "--timeout=60s"]);
        assert!(
            out.status.success(),
            "{kind} Ready: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // `kubectl get` shows the printer columns, and the `outflow` category lists all three kinds.
    let out = support::kubectl(&["get", "outflow", "-n", &ns.name]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("NEXT RUN") && table.contains("CONNECTED") && table.contains("dataflow.outflow.dev/"),
        "{table}"
    );
    let out = support::kubectl(&["get", "destinations"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("CATEGORY") && table.contains("meta-custom-audiences") && table.contains("Advertising"),
        "{table}"
    );

    // An enabled Dataflow shows its next run.
    let api = Api::<Dataflow>::namespaced(client.clone(), &ns.name);
    let mut enabled = api.get(&dataflows[0]).await.unwrap();
    enabled.metadata.managed_fields = None;
    enabled.metadata.resource_version = None;
    enabled.spec.enabled = true;
    enabled.status = None;
    apply(&api, &enabled).await;
    let shown = support::eventually("a next run time", Duration::from_secs(30), || {
        let api = api.clone();
        let name = dataflows[0].clone();
        async move { api.get(&name).await.ok()?.status?.next_run_time }
    })
    .await;
    assert!(outflow::plan::schedule::parse_time(&shown).is_some_and(|t| t > chrono::Utc::now()), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_references_are_reported_and_healed_without_restart() {
    support::init();
    let Some(client) = support::client(User::Admin).await else { return };
    support::install_crds(&client).await;
    support::install_catalog(&client).await;
    let ns = TestNamespace::new(&client, "refs").await;
    let _controller = support::start_controller(&client, &ns.name);
    let dataflows = Api::<Dataflow>::namespaced(client.clone(), &ns.name);
    let accounts = Api::<Account>::namespaced(client.clone(), &ns.name);
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns.name);

    let df: Dataflow = from_json(json!({
        "apiVersion": "outflow.dev/v1alpha1", "kind": "Dataflow", "metadata": {"name": "weekly", "namespace": ns.name},
        "spec": {
            "account": "lake", "enabled": true,
            "segments": [{"id": "seg-1", "schedule": {"weekly": {"days": ["Monday"], "at": "07:00"}, "timeZone": "Europe/Paris"}}],
            "fields": [{"source": "personalEmail.address", "target": "email", "transforms": ["Trim", "Lowercase"]}],
            "output": {"format": "CSV", "compression": "Gzip"}
        }
    }));
    apply(&dataflows, &df).await;
    let seen = wait_condition(&dataflows, "weekly", "Ready", "False", Some("AccountNotFound")).await;
    assert!(support::condition(&seen, "Ready").unwrap().2.contains("Account 'lake' does not exist"));
    assert_eq!(support::condition(&seen, "Stalled").unwrap().0, "False", "waiting on another object is not stalled");

    let account: Account = from_json(json!({
        "apiVersion": "outflow.dev/v1alpha1", "kind": "Account", "metadata": {"name": "lake", "namespace": ns.name},
        "spec": {"destination": "amazon-s3", "parameters": {"bucket": "lake", "endpoint": "http://127.0.0.1:9"}, "credentialsSecretRef": {"name": "lake-creds"}}
    }));
    apply(&accounts, &account).await;
    wait_condition(&accounts, "lake", "Ready", "False", Some("SecretNotFound")).await;
    wait_condition(&dataflows, "weekly", "Ready", "False", Some("AccountNotReady")).await;

    let secret_value = "s3cr3t-value-never-shown";
    let partial: Secret = from_json(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "lake-creds", "namespace": ns.name}, "stringData": {"accessKeyId": secret_value}}),
    );
    apply(&secrets, &partial).await;
    let seen = wait_condition(&accounts, "lake", "Ready", "False", Some("MissingSecretKey")).await;
    assert!(support::condition(&seen, "Ready").unwrap().2.contains("'secretAccessKey'"));

    let full: Secret = from_json(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "lake-creds", "namespace": ns.name}, "stringData": {"accessKeyId": secret_value, "secretAccessKey": secret_value}}),
    );
    apply(&secrets, &full).await;
    wait_condition(&accounts, "lake", "Ready", "True", None).await;
    let ready = wait_condition(&dataflows, "weekly", "Ready", "True", None).await;
    let next =
        ready.pointer("/status/segments/0/nextRunTime").and_then(|v| v.as_str()).expect("a next run per segment");
    let next = outflow::plan::schedule::parse_time(next).unwrap();
    assert_eq!(next.format("%u").to_string(), "1", "Mondays only: {next}");

    // Deleting the Secret takes the Account (and the Dataflow) out of Ready again.
    secrets.delete("lake-creds", &DeleteParams::default()).await.unwrap();
    wait_condition(&accounts, "lake", "Ready", "False", Some("SecretNotFound")).await;

    // Status and Events never carry the secret value.
    for obj in [
        serde_json::to_value(accounts.get("lake").await.unwrap()).unwrap(),
        serde_json::to_value(dataflows.get("weekly").await.unwrap()).unwrap(),
    ] {
        assert!(!obj.to_string().contains(secret_value));
    }
    let events = support::kubectl(&["get", "events", "-n", &ns.name, "-o", "json"]);
    let events = String::from_utf8_lossy(&events.stdout);
    assert!(events.contains("MissingSecretKey"), "events are published on transitions: {events}");
    assert!(!events.contains(secret_value));
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_spec_stalls_with_the_field_named() {
    support::init();
    let Some(client) = support::client(User::Admin).await else { return };
    support::install_crds(&client).await;
    support::install_catalog(&client).await;
    let ns = TestNamespace::new(&client, "stalled").await;
    let _controller = support::start_controller(&client, &ns.name);
    let accounts = Api::<Account>::namespaced(client.clone(), &ns.name);
    let dataflows = Api::<Dataflow>::namespaced(client.clone(), &ns.name);
    let account: Account = from_json(json!({
        "apiVersion": "outflow.dev/v1alpha1", "kind": "Account", "metadata": {"name": "meta", "namespace": ns.name},
        "spec": {"destination": "local-file", "parameters": {"path": "/tmp/outflow"}}
    }));
    apply(&accounts, &account).await;
    let df: Dataflow = from_json(json!({
        "apiVersion": "outflow.dev/v1alpha1", "kind": "Dataflow", "metadata": {"name": "typo", "namespace": ns.name},
        "spec": {
            "account": "meta", "enabled": false,
            "segments": [{"id": "seg-1", "schedule": {"cron": "0 6 * * *", "timeZone": "Europe/Pariss"}}],
            "fields": [{"source": "person.name.frstName", "target": "first"}]
        }
    }));
    apply(&dataflows, &df).await;
    let seen = wait_condition(&dataflows, "typo", "Stalled", "True", None).await;
    let (_, reason, message) = support::condition(&seen, "Ready").unwrap();
    assert_eq!(reason, "InvalidSchedule");
    assert!(message.contains("spec.segments[0].schedule: timeZone: unknown time zone 'Europe/Pariss'"), "{message}");
    assert!(message.contains("spec.fields[0].source: unknown profile field 'person.name.frstName'"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn applying_the_same_manifests_twice_changes_nothing() {
    support::init();
    let Some(client) = support::client(User::Admin).await else { return };
    support::install_crds(&client).await;
    support::install_catalog(&client).await;
    let ns = TestNamespace::new(&client, "idempotent").await;
    let _controller = support::start_controller(&client, &ns.name);
    let (accounts, dataflows) = apply_examples(&client, &ns.name).await;
    let account_api = Api::<Account>::namespaced(client.clone(), &ns.name);
    let dataflow_api = Api::<Dataflow>::namespaced(client.clone(), &ns.name);
    for a in &accounts {
        wait_condition(&account_api, a, "Ready", "True", None).await;
    }
    for d in &dataflows {
        wait_condition(&dataflow_api, d, "Ready", "True", None).await;
    }
    // Let any in-flight reconcile finish, then take a snapshot.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = versions(&account_api, &dataflow_api).await;
    apply_examples(&client, &ns.name).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = versions(&account_api, &dataflow_api).await;
    assert_eq!(before, after, "(name, generation, resourceVersion) before and after re-applying");
    let destinations = Api::<Destination>::all(client.clone()).list(&Default::default()).await.unwrap();
    assert!(destinations.items.iter().all(|d| d.metadata.generation == Some(1) || d.status.is_some()));
}

async fn versions(accounts: &Api<Account>, dataflows: &Api<Dataflow>) -> Vec<(String, Option<i64>, Option<String>)> {
    let mut out = Vec::new();
    for a in accounts.list(&Default::default()).await.unwrap() {
        out.push((a.name_any(), a.metadata.generation, a.metadata.resource_version.clone()));
    }
    for d in dataflows.list(&Default::default()).await.unwrap() {
        out.push((d.name_any(), d.metadata.generation, d.metadata.resource_version.clone()));
    }
    out
}

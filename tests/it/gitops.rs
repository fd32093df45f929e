//! GitOps fit and secret hygiene: a sync never drifts, and a secret value never shows up in
//! status, Events or the controller's logs, even at trace level.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use outflow::api::{Account, Dataflow};
use serde_json::json;

use crate::support::{self, TestNamespace, User, apply, wait_condition};

#[tokio::test(flavor = "multi_thread")]
async fn server_side_apply_of_the_examples_never_drifts() {
    support::init();
    let Some(client) = support::client(User::Admin).await else { return };
    support::install_crds(&client).await;
    support::install_catalog(&client).await;
    let ns = TestNamespace::new(&client, "drift").await;
    let _controller = support::start_controller(&client, &ns.name);
    let folders: Vec<String> = ["examples/s3", "examples/sftp", "examples/meta"]
        .iter()
        .map(|f| support::repo_path(f).display().to_string())
        .collect();
    let mut args = vec!["apply", "--server-side", "-n", &ns.name];
    for f in &folders {
        args.extend(["-f", f.as_str()]);
    }
    let out = support::kubectl(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out =
        support::kubectl(&["wait", "--for=condition=Ready", "dataflows", "--all", "-n", &ns.name, "--timeout=60s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    tokio::time::sleep(Duration::from_secs(2)).await;

    args[0] = "diff";
    let out = support::kubectl(&args);
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && diff.trim().is_empty(),
        "kubectl diff --server-side shows drift:\n{diff}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The controller owns only status: no spec or metadata field is managed by it.
    let df = Api::<Dataflow>::namespaced(client.clone(), &ns.name).get("s3-high-value").await.unwrap();
    for entry in df.metadata.managed_fields.unwrap_or_default() {
        if entry.manager.as_deref() == Some(outflow::api::FIELD_MANAGER) {
            assert_eq!(entry.subresource.as_deref(), Some("status"), "the controller writes only status: {entry:?}");
        }
    }
}

/// The real binary, as the Deployment runs it, at the most verbose log level, logging into a file
/// (a pipe nobody reads would fill up and block it).
struct TracedController {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    log: std::path::PathBuf,
}

impl TracedController {
    fn start(namespace: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("controller.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_outflow"))
            .args(["controller", "--metrics-addr", "127.0.0.1:0", "--namespace", namespace])
            .args(extra)
            .env("KUBECONFIG", std::env::var("OUTFLOW_TEST_KUBECONFIG_ADMIN").unwrap())
            .env("RUST_LOG", "trace")
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("starting outflow controller");
        Self { child, _dir: dir, log }
    }

    /// Stops the controller and returns everything it logged.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut logs = String::new();
        std::fs::File::open(&self.log).unwrap().read_to_string(&mut logs).unwrap();
        logs
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_values_never_reach_status_events_or_logs() {
    support::init();
    let Some(client) = support::client(User::Admin).await else { return };
    support::install_crds(&client).await;
    support::install_catalog(&client).await;
    let ns = TestNamespace::new(&client, "hygiene").await;

    let controller = TracedController::start(&ns.name, &[]);

    let secret_value = format!("hunter2-{}", support::unique_suffix());
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns.name);
    let accounts = Api::<Account>::namespaced(client.clone(), &ns.name);
    let dataflows = Api::<Dataflow>::namespaced(client.clone(), &ns.name);
    // A Secret missing a key (a failing reconcile), then the complete one.
    let partial: Secret = serde_json::from_value(
        json!({"metadata": {"name": "creds", "namespace": ns.name}, "stringData": {"accessKeyId": secret_value}}),
    )
    .unwrap();
    apply(&secrets, &partial).await;
    let account: Account = serde_json::from_value(json!({
        "apiVersion": "outflow.dev/v1alpha1", "kind": "Account", "metadata": {"name": "s3", "namespace": ns.name},
        "spec": {"destination": "amazon-s3", "parameters": {"bucket": "b", "endpoint": "http://127.0.0.1:9"}, "credentialsSecretRef": {"name": "creds"}}
    }))
    .unwrap();
    apply(&accounts, &account).await;
    wait_condition(&accounts, "s3", "Ready", "False", Some("MissingSecretKey")).await;
    let full: Secret = serde_json::from_value(json!({"metadata": {"name": "creds", "namespace": ns.name}, "stringData": {"accessKeyId": secret_value, "secretAccessKey": secret_value}})).unwrap();
    apply(&secrets, &full).await;
    wait_condition(&accounts, "s3", "Ready", "True", None).await;
    let df: Dataflow = serde_json::from_value(json!({
        "apiVersion": "outflow.dev/v1alpha1", "kind": "Dataflow", "metadata": {"name": "df", "namespace": ns.name},
        "spec": {"account": "s3", "enabled": true, "segments": [{"id": "seg-1", "schedule": {"daily": {"at": "06:00"}}}],
                 "fields": [{"source": "personalEmail.address", "target": "email"}]}
    }))
    .unwrap();
    apply(&dataflows, &df).await;
    wait_condition(&dataflows, "df", "Ready", "True", None).await;

    let logs = controller.stop();
    assert!(
        logs.contains("reconciled") || logs.contains("starting the Destination"),
        "trace logs were captured: {} bytes",
        logs.len()
    );
    assert!(!logs.contains(&secret_value), "a secret value appeared in the controller's logs");
    // Nor in the base64 form the API server returns it in.
    let encoded = k8s_openapi::ByteString(secret_value.clone().into_bytes());
    let encoded = serde_json::to_value(&encoded).unwrap();
    assert!(!logs.contains(encoded.as_str().unwrap()), "a base64 secret value appeared in the controller's logs");
    let events = support::kubectl(&["get", "events", "-n", &ns.name, "-o", "json"]);
    assert!(!String::from_utf8_lossy(&events.stdout).contains(&secret_value));
    for obj in [
        serde_json::to_value(accounts.get("s3").await.unwrap()).unwrap(),
        serde_json::to_value(dataflows.get("df").await.unwrap()).unwrap(),
    ] {
        assert!(!obj.pointer("/status").unwrap().to_string().contains(&secret_value));
    }
}

/// A platform that refuses every request and, like some SDKs and APIs, echoes the credentials it
/// was given in its error body.
async fn echoing_refusal_server() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 20];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let auth = request.lines().find(|l| l.to_lowercase().starts_with("authorization:")).unwrap_or("");
                let body = format!("{{\"error\": \"invalid token\", \"received\": \"{}\"}}", auth.trim());
                let response = format!(
                    "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_refused_for_bad_credentials_leaks_no_secret() {
    support::init();
    let Some(client) = support::client(User::Admin).await else { return };
    support::install_crds(&client).await;
    support::install_catalog(&client).await;
    let ns = TestNamespace::new(&client, "hygiene-run").await;
    let port = echoing_refusal_server().await;
    let profiles = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart/profiles");
    let controller = TracedController::start(&ns.name, &["--profiles", profiles]);

    let token = format!("tok-{}-hunter2", support::unique_suffix());
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns.name);
    let accounts = Api::<Account>::namespaced(client.clone(), &ns.name);
    let dataflows = Api::<Dataflow>::namespaced(client.clone(), &ns.name);
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "api", "namespace": ns.name}, "stringData": {"bearerToken": token}}),
    )
    .unwrap();
    apply(&secrets, &secret).await;
    let account: Account = serde_json::from_value(json!({
        "apiVersion": "outflow.dev/v1alpha1", "kind": "Account", "metadata": {"name": "api", "namespace": ns.name},
        "spec": {"destination": "generic-http-api", "parameters": {"url": format!("http://127.0.0.1:{port}/members")},
                 "credentialsSecretRef": {"name": "api"}}
    }))
    .unwrap();
    apply(&accounts, &account).await;
    let df: Dataflow = serde_json::from_value(json!({
        "apiVersion": "outflow.dev/v1alpha1", "kind": "Dataflow", "metadata": {"name": "df", "namespace": ns.name},
        "spec": {"account": "api", "enabled": true, "segments": [{"id": "seg-1", "schedule": {"once": {}}}],
                 "fields": [{"source": "identityMap.email", "target": "email", "transforms": ["SHA256"]}]}
    }))
    .unwrap();
    apply(&dataflows, &df).await;
    // The platform refuses the token: the run fails for good and the Dataflow stalls.
    let status = wait_condition(&dataflows, "df", "Stalled", "True", Some("RunFailedPermanently")).await;
    let message = status.pointer("/status/history/0/message").and_then(|m| m.as_str()).unwrap_or_default().to_string();
    assert!(message.contains("credentials refused") && message.contains("***"), "{status}");

    let logs = controller.stop();
    assert!(logs.contains("credentials refused"), "the failure was logged: {} bytes", logs.len());
    assert!(!logs.contains(&token), "the token appeared in the controller's logs");
    let events = support::kubectl(&["get", "events", "-n", &ns.name, "-o", "json"]);
    let events = String::from_utf8_lossy(&events.stdout).to_string();
    assert!(events.contains("credentials refused"), "the failure has an Event");
    assert!(!events.contains(&token), "the token appeared in an Event");
    for obj in [
        serde_json::to_value(accounts.get("api").await.unwrap()).unwrap(),
        serde_json::to_value(dataflows.get("df").await.unwrap()).unwrap(),
    ] {
        assert!(!obj.to_string().contains(&token), "the token appeared in {obj}");
    }
}

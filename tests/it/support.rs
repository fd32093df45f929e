//! Test support: clients for the real control plane started by `scripts/kube-env.sh`.
//!
//! The variables come from `eval "$(scripts/kube-env.sh env)"`. When they are missing, a test
//! fails under CI (`CI=true`) and is skipped with a message elsewhere.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A test user of the control plane.
#[derive(Debug, Clone, Copy)]
#[allow(dead_code)] // the manager and activator users come with the access-control tests
pub enum User {
    Admin,
    Viewer,
    Manager,
    Activator,
}

impl User {
    fn variable(self) -> &'static str {
        match self {
            User::Admin => "OUTFLOW_TEST_KUBECONFIG_ADMIN",
            User::Viewer => "OUTFLOW_TEST_KUBECONFIG_VIEWER",
            User::Manager => "OUTFLOW_TEST_KUBECONFIG_MANAGER",
            User::Activator => "OUTFLOW_TEST_KUBECONFIG_ACTIVATOR",
        }
    }
}

/// A client for `user`, or `None` (after saying why) when no control plane is configured
/// outside CI. Under CI a missing control plane is a failure, never a silent pass.
pub async fn client(user: User) -> Option<Client> {
    let Some(path) = std::env::var_os(user.variable()).map(PathBuf::from) else {
        let message = format!(
            "{} is not set: start the test control plane with `scripts/kube-env.sh build && scripts/kube-env.sh start` and `eval \"$(scripts/kube-env.sh env)\"`",
            user.variable()
        );
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("{message}");
        }
        eprintln!("SKIPPED (no control plane): {message}");
        return None;
    };
    Some(client_from(&path).await)
}

async fn client_from(path: &std::path::Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    Client::try_from(config).expect("building a client")
}

/// The rustls provider, installed once per test binary as `main` does.
pub fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// A fresh namespace named after the test, deleted (best effort) when dropped. The test
/// control plane runs no namespace controller, so deletion only marks it terminating.
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn new(client: &Client, prefix: &str) -> Self {
        let name = format!("{prefix}-{}", unique_suffix());
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("creating the test namespace");
        Self { name, client: client.clone() }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let (client, name) = (self.client.clone(), self.name.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = Api::<Namespace>::all(client).delete(&name, &DeleteParams::default()).await;
            });
        }
    }
}

/// A short random-enough suffix for names.
pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{:x}{:x}", std::process::id() % 4096, nanos % 1_000_000)
}

/// Applies the generated CRDs (server-side) and waits until the API server serves them.
pub async fn install_crds(client: &Client) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in outflow::crds::all() {
        let name = crd.name_any();
        api.patch(&name, &PatchParams::apply("outflow-tests").force(), &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
    }
    for crd in outflow::crds::all() {
        let name = crd.name_any();
        eventually(&format!("CRD {name} established"), Duration::from_secs(30), || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let crd = api.get(&name).await.ok()?;
                let established =
                    crd.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            }
        })
        .await;
    }
}

/// Server-side applies an object as the tests' field manager.
pub async fn apply<K>(api: &Api<K>, obj: &K) -> K
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = obj.name_any();
    api.patch(&name, &PatchParams::apply("outflow-tests").force(), &Patch::Apply(obj))
        .await
        .unwrap_or_else(|e| panic!("applying {name}: {e}"))
}

/// Polls `check` until it returns `Some`, or panics after `timeout` naming what was awaited.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The repository root, for reading manifests.
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Applies every Destination of the shipped catalog.
pub async fn install_catalog(client: &Client) {
    let set = outflow::manifest::ManifestSet::read(&[repo_path("manifests/catalog")]).expect("reading the catalog");
    assert!(set.destinations.len() >= 14, "the catalog ships at least 14 destinations");
    let api = Api::<outflow::api::Destination>::all(client.clone());
    for d in &set.destinations {
        apply(&api, &d.object).await;
    }
}

/// A controller running in this test's runtime until the returned guard is dropped.
pub struct RunningController {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for RunningController {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A controller for one test namespace, so tests running side by side never act on each
/// other's objects.
pub fn start_controller(client: &Client, namespace: &str) -> RunningController {
    start_controller_with(
        client,
        outflow::controller::Config { namespace: Some(namespace.to_string()), ..Default::default() },
    )
}

pub fn start_controller_with(client: &Client, config: outflow::controller::Config) -> RunningController {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let client = client.clone();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        outflow::controller::run(client, config, shutdown).await.expect("controller");
    });
    RunningController { stop: Some(stop) }
}

/// Reads a condition of a namespaced or cluster object's status through a dynamic API.
pub fn condition(obj: &serde_json::Value, type_: &str) -> Option<(String, String, String)> {
    obj.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == type_).map(|c| {
        (
            c["status"].as_str().unwrap_or_default().to_string(),
            c["reason"].as_str().unwrap_or_default().to_string(),
            c["message"].as_str().unwrap_or_default().to_string(),
        )
    })
}

/// Waits until `obj`'s condition `type_` has `status` (and `reason`, when given) for its
/// current generation; returns the object.
pub async fn wait_condition<K>(
    api: &Api<K>,
    name: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
) -> serde_json::Value
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let what = format!("{name} {type_}={status} {}", reason.unwrap_or(""));
    let mut last = serde_json::Value::Null;
    let result = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(obj) = api.get(name).await {
                let value = serde_json::to_value(&obj).unwrap();
                let current = value.pointer("/status/observedGeneration") == value.pointer("/metadata/generation");
                if let Some((s, r, _)) = condition(&value, type_)
                    && current
                    && s == status
                    && reason.is_none_or(|want| want == r)
                {
                    return value;
                }
                last = value;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    result.unwrap_or_else(|_| {
        panic!(
            "timed out waiting for {what}; last seen status: {}",
            last.pointer("/status").cloned().unwrap_or_default()
        )
    })
}

/// Runs kubectl as the admin of the test control plane.
pub fn kubectl(args: &[&str]) -> std::process::Output {
    let kubeconfig = std::env::var("OUTFLOW_TEST_KUBECONFIG_ADMIN").expect("OUTFLOW_TEST_KUBECONFIG_ADMIN");
    std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("running kubectl")
}

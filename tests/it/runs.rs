//! Scheduled runs on the real control plane: in-process runs write files and fold their report
//! into status; the Job executor creates the expected Job, whose report (from `outflow export`
//! run as the pod would) is folded in; a restarted controller starts no run twice; a run missed
//! past its deadline is recorded as missed.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use outflow::api::{Account, Dataflow, Destination, RunResult};
use outflow::controller::{Config, ExecutorKind};
use serde_json::json;

use crate::support::{self, TestNamespace, User, apply, eventually};

fn quickstart_profiles() -> String {
    support::repo_path("examples/quickstart/profiles").display().to_string()
}

/// A File destination, an Account writing into `folder`, and a Dataflow of segment seg-0.
async fn setup(
    client: &Client,
    ns: &str,
    folder: &std::path::Path,
    schedule: serde_json::Value,
    extra: serde_json::Value,
) -> Api<Dataflow> {
    let destination: Destination = serde_json::from_value(json!({
        "apiVersion": "outflow.dev/v1alpha1", "kind": "Destination", "metadata": {"name": "test-folder"},
        "spec": {"displayName": "Test folder", "category": "CloudStorage", "exportType": "Profile", "connector": "File",
                 "account": {"parameters": [{"name": "path", "required": true}]}, "formats": ["CSV"]}
    }))
    .unwrap();
    apply(&Api::<Destination>::all(client.clone()), &destination).await;
    let account: Account = serde_json::from_value(json!({
        "apiVersion": "outflow.dev/v1alpha1", "kind": "Account", "metadata": {"name": "folder", "namespace": ns},
        "spec": {"destination": "test-folder", "parameters": {"path": folder.display().to_string()}}
    }))
    .unwrap();
    let accounts = Api::<Account>::namespaced(client.clone(), ns);
    apply(&accounts, &account).await;
    support::wait_condition(&accounts, "folder", "Ready", "True", None).await;
    // The cheap probe of the platform: the folder exists and is writable.
    support::wait_condition(&accounts, "folder", "Connected", "True", Some("ProbeSucceeded")).await;
    let mut spec = json!({
        "account": "folder", "enabled": true,
        "segments": [{"id": "seg-0", "schedule": schedule}],
        "fields": [{"source": "profile_id", "target": "profile_id"}, {"source": "personalEmail.address", "target": "email", "transforms": ["Trim", "Lowercase"]}],
        "mandatoryFields": ["email"]
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let df: Dataflow = serde_json::from_value(json!({"apiVersion": "outflow.dev/v1alpha1", "kind": "Dataflow", "metadata": {"name": "flow", "namespace": ns}, "spec": spec})).unwrap();
    let api = Api::<Dataflow>::namespaced(client.clone(), ns);
    apply(&api, &df).await;
    api
}

async fn history(api: &Api<Dataflow>) -> Vec<outflow::api::RunRecord> {
    api.get("flow").await.ok().and_then(|d| d.status).map(|s| s.history).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_once_dataflow_runs_in_process_and_reports_in_status() {
    support::init();
    let Some(client) = support::client(User::Admin).await else { return };
    support::install_crds(&client).await;
    let folder = tempfile::tempdir().unwrap();
    let ns = TestNamespace::new(&client, "once").await;
    let config = Config { profiles_url: quickstart_profiles(), namespace: Some(ns.name.clone()), ..Default::default() };
    let _controller = support::start_controller_with(&client, config);
    let api = setup(&client, &ns.name, folder.path(), json!({"once": {}}), json!({})).await;

    let done = eventually("the run succeeded", Duration::from_secs(60), || {
        let api = api.clone();
        async move { history(&api).await.into_iter().find(|r| r.result == Some(RunResult::Succeeded)) }
    })
    .await;
    assert_eq!(done.segment, "seg-0");
    assert_eq!(done.profiles_read, 3000);
    assert!(done.exported > 100 && done.files == 1 && done.bytes > 0, "{done:?}");
    let files: Vec<_> = std::fs::read_dir(folder.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let rows = std::fs::read_to_string(&files[0]).unwrap().lines().count() as u64 - 1;
    assert_eq!(rows, done.exported, "the file holds what the status says");
    let status = api.get("flow").await.unwrap().status.unwrap();
    assert_eq!(status.segments[0].last_result, Some(RunResult::Succeeded));
    assert_eq!(status.history.len(), 1, "once means once");
    assert_eq!(status.next_run_time, None, "nothing more is scheduled");
    let events = support::kubectl(&["get", "events", "-n", &ns.name, "-o", "json"]);
    let events = String::from_utf8_lossy(&events.stdout);
    assert!(events.contains("RunStarted") && events.contains("RunSucceeded"), "{events}");

    // A manual run: the annotation's token starts one more run and is echoed once handled. (A
    // second later, so its file name, which carries the time to the second, differs.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let annotate = json!({"metadata": {"annotations": {"outflow.dev/run-requested-at": "2026-11-28T12:00:00Z"}}});
    api.patch("flow", &PatchParams::default(), &Patch::Merge(&annotate)).await.unwrap();
    let handled = eventually("the manual run handled and done", Duration::from_secs(60), || {
        let api = api.clone();
        async move {
            let status = api.get("flow").await.ok()?.status?;
            let done = status.history.iter().filter(|r| r.result == Some(RunResult::Succeeded)).count() == 2;
            (done && status.last_handled_run_request.as_deref() == Some("2026-11-28T12:00:00Z")).then_some(status)
        }
    })
    .await;
    assert_eq!(handled.history.len(), 2);
    assert_eq!(std::fs::read_dir(folder.path()).unwrap().count(), 2, "the manual run wrote its own file");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_missed_while_the_controller_was_down_is_recorded_as_missed() {
    support::init();
    let Some(client) = support::client(User::Admin).await else { return };
    support::install_crds(&client).await;
    let folder = tempfile::tempdir().unwrap();
    let ns = TestNamespace::new(&client, "missed").await;
    let config = Config { profiles_url: quickstart_profiles(), namespace: Some(ns.name.clone()), ..Default::default() };
    let controller = support::start_controller_with(&client, config.clone());
    let at = chrono::Utc::now() + chrono::Duration::seconds(6);
    let at = outflow::plan::schedule::format_time(at);
    let api =
        setup(&client, &ns.name, folder.path(), json!({"once": {"at": at}}), json!({"startingDeadlineSeconds": 1}))
            .await;
    eventually("the run scheduled", Duration::from_secs(10), || {
        let api = api.clone();
        let at = at.clone();
        async move { (api.get("flow").await.ok()?.status?.next_run_time? == at).then_some(()) }
    })
    .await;
    // The controller is down when the run is due, and comes back past the starting deadline.
    drop(controller);
    let due = outflow::plan::schedule::parse_time(&at).unwrap();
    tokio::time::sleep((due - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(3)).await;
    let _controller = support::start_controller_with(&client, config);
    let missed = eventually("a missed run", Duration::from_secs(30), || {
        let api = api.clone();
        async move { history(&api).await.into_iter().find(|r| r.result == Some(RunResult::Missed)) }
    })
    .await;
    assert_eq!(missed.scheduled_time, at);
    assert!(missed.message.as_deref().unwrap().starts_with("missed: more than 1s late"), "{missed:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(history(&api).await.len(), 1, "recorded once, never run");
    assert!(std::fs::read_dir(folder.path()).unwrap().next().is_none(), "a missed run writes nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_job_executor_creates_one_job_per_run_and_folds_its_report() {
    support::init();
    let Some(client) = support::client(User::Admin).await else { return };
    support::install_crds(&client).await;
    let out = support::kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        support::repo_path("manifests/controller/exporter-clusterrole.yaml").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let folder = tempfile::tempdir().unwrap();
    let ns = TestNamespace::new(&client, "jobs").await;
    let config = Config {
        executor: ExecutorKind::Job,
        profiles_url: "/data/profiles".into(),
        namespace: Some(ns.name.clone()),
        ..Default::default()
    };
    let controller = support::start_controller_with(&client, config.clone());
    let api = setup(&client, &ns.name, folder.path(), json!({"once": {}}), json!({})).await;
    let jobs = Api::<Job>::namespaced(client.clone(), &ns.name);

    let record = eventually("a running run in status", Duration::from_secs(30), || {
        let api = api.clone();
        async move { history(&api).await.into_iter().find(|r| r.result == Some(RunResult::Running)) }
    })
    .await;
    let job = eventually("the run's Job", Duration::from_secs(30), || {
        let jobs = jobs.clone();
        let id = record.id.clone();
        async move { jobs.get_opt(&id).await.ok().flatten() }
    })
    .await;
    let dataflow = api.get("flow").await.unwrap();
    // A `once` run without a time is named from Dataflow and segment alone (others add the
    // scheduled time), so it is the same run whenever it is first seen.
    let expected_id = outflow::plan::runs::run_id(&ns.name, "flow", "seg-0", "once");
    assert_eq!(job.name_any(), expected_id, "named from namespace, Dataflow and segment");
    let owner = &job.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Dataflow", dataflow.uid().unwrap().as_str(), Some(true))
    );
    assert_eq!(job.labels()["outflow.dev/dataflow"], "flow");
    assert_eq!(job.annotations()["outflow.dev/scheduled-time"], record.scheduled_time);
    let pod = job.spec.clone().unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("outflow-exporter"));
    let args = pod.containers[0].args.clone().unwrap();
    assert_eq!(&args[..4], &["export", "--from-cluster", "--dataflow", &format!("{}/flow", ns.name)]);

    // A controller restarted mid-run starts nothing twice.
    drop(controller);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let controller = support::start_controller_with(&client, config);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(jobs.list(&Default::default()).await.unwrap().items.len(), 1, "one Job");
    let h = history(&api).await;
    assert_eq!(h.len(), 1, "one run in the history: {h:?}");

    // Play the pod: `outflow export` with the Job's arguments (local paths for the mounts).
    let mut args = args.clone();
    let profiles_at = args.iter().position(|a| a == "--profiles").unwrap() + 1;
    args[profiles_at] = quickstart_profiles();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_outflow"))
        .args(&args)
        .env("KUBECONFIG", std::env::var("OUTFLOW_TEST_KUBECONFIG_ADMIN").unwrap())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // Mark the Job complete, as the Job controller would once the pod succeeded.
    let now = outflow::plan::schedule::format_time(chrono::Utc::now());
    let status = json!({"status": {
        "startTime": now, "completionTime": now, "succeeded": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now, "lastProbeTime": now},
            {"type": "Complete", "status": "True", "lastTransitionTime": now, "lastProbeTime": now}
        ]
    }});
    jobs.patch_status(&expected_id, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("marking the Job complete");
    let done = eventually("the Job's report in status", Duration::from_secs(30), || {
        let api = api.clone();
        async move { history(&api).await.into_iter().find(|r| r.result == Some(RunResult::Succeeded)) }
    })
    .await;
    assert_eq!(done.id, expected_id);
    assert_eq!(done.profiles_read, 3000);
    assert!(done.exported > 100 && done.files == 1, "{done:?}");
    let files: Vec<_> = std::fs::read_dir(folder.path()).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    drop(controller);
}

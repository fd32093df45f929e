//! View / manage / activate, through the API as each test user, with RBAC and the
//! ValidatingAdmissionPolicy from `manifests/rbac/` on the real control plane.

use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use outflow::api::Dataflow;
use serde_json::json;

use crate::support::{self, TestNamespace, User};

fn dataflow(ns: &str, name: &str, enabled: bool) -> Dataflow {
    serde_json::from_value(json!({
        "apiVersion": "outflow.dev/v1alpha1", "kind": "Dataflow", "metadata": {"name": name, "namespace": ns},
        "spec": {
            "account": "acme", "enabled": enabled,
            "segments": [{"id": "seg-1", "schedule": {"daily": {"at": "06:00"}}}],
            "fields": [{"source": "personalEmail.address", "target": "email"}]
        }
    }))
    .unwrap()
}

async fn bind(admin: &kube::Client, ns: &str, user: &str, cluster_role: &str) {
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("{user}-{cluster_role}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), ns).create(&PostParams::default(), &binding).await.unwrap();
}

fn denial(result: Result<Dataflow, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected a denial, got {other:?}"),
    }
}

const POLICY_WORDS: &str = "needs the activate permission on dataflows.outflow.dev";

#[tokio::test(flavor = "multi_thread")]
async fn view_manage_and_activate_are_separate_permissions() {
    support::init();
    let Some(admin) = support::client(User::Admin).await else { return };
    let (Some(viewer), Some(manager), Some(activator)) = (
        support::client(User::Viewer).await,
        support::client(User::Manager).await,
        support::client(User::Activator).await,
    ) else {
        return;
    };
    support::install_crds(&admin).await;
    let out = support::kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-k",
        support::repo_path("manifests/rbac").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "applying manifests/rbac: {}", String::from_utf8_lossy(&out.stderr));
    let ns = TestNamespace::new(&admin, "access").await;

    // The roles aggregate into the built-in ones, so `view` and `edit` bindings carry them.
    support::eventually("outflow-viewer aggregated into view", Duration::from_secs(30), || {
        let api = Api::<ClusterRole>::all(admin.clone());
        async move {
            let view = api.get("view").await.ok()?;
            view.rules?
                .iter()
                .any(|r| r.api_groups.as_ref().is_some_and(|g| g.contains(&"outflow.dev".to_string())))
                .then_some(())
        }
    })
    .await;
    bind(&admin, &ns.name, "viewer", "view").await;
    bind(&admin, &ns.name, "manager", "outflow-manager").await;
    bind(&admin, &ns.name, "activator", "outflow-manager").await;
    bind(&admin, &ns.name, "activator", "outflow-activator").await;

    // Viewer: list works, create is denied.
    let as_viewer = Api::<Dataflow>::namespaced(viewer, &ns.name);
    support::eventually("viewer can list", Duration::from_secs(10), || {
        let api = as_viewer.clone();
        async move { api.list(&Default::default()).await.ok() }
    })
    .await;
    let status = denial(as_viewer.create(&PostParams::default(), &dataflow(&ns.name, "by-viewer", false)).await);
    assert_eq!(status.code, 403, "{}", status.message);

    // Manager: a disabled Dataflow is fine; an enabled one, or enabling, is denied by the policy.
    let as_manager = Api::<Dataflow>::namespaced(manager, &ns.name);
    support::eventually("manager can create a disabled Dataflow", Duration::from_secs(10), || {
        let api = as_manager.clone();
        let df = dataflow(&ns.name, "draft", false);
        async move { api.create(&PostParams::default(), &df).await.ok() }
    })
    .await;
    // Admission policies take effect a moment after they are created.
    support::eventually("the activation policy is in force", Duration::from_secs(30), || {
        let api = as_manager.clone();
        let df = dataflow(&ns.name, "probe", true);
        async move {
            let dry_run = PostParams { dry_run: true, ..Default::default() };
            matches!(api.create(&dry_run, &df).await, Err(kube::Error::Api(s)) if s.message.contains(POLICY_WORDS))
                .then_some(())
        }
    })
    .await;
    let status = denial(as_manager.create(&PostParams::default(), &dataflow(&ns.name, "live", true)).await);
    assert!(status.code == 403 || status.code == 422, "{}", status.message);
    assert!(
        status.message.contains(POLICY_WORDS) && status.message.contains("manager does not have"),
        "{}",
        status.message
    );
    let enable = json!({"spec": {"enabled": true}});
    let status = denial(as_manager.patch("draft", &PatchParams::default(), &Patch::Merge(&enable)).await);
    assert!(status.message.contains(POLICY_WORDS), "{}", status.message);

    // Activator (manager + activate): enabling works.
    let as_activator = Api::<Dataflow>::namespaced(activator, &ns.name);
    let enabled = as_activator
        .patch("draft", &PatchParams::default(), &Patch::Merge(&enable))
        .await
        .expect("the activator enables it");
    assert!(enabled.spec.enabled);

    // Manager again: changing the fields of an enabled Dataflow is activation too; disabling is not.
    let more_fields = json!({"spec": {"fields": [{"source": "personalEmail.address", "target": "email"}, {"source": "mobilePhone.number", "target": "phone"}]}});
    let status = denial(as_manager.patch("draft", &PatchParams::default(), &Patch::Merge(&more_fields)).await);
    assert!(status.message.contains(POLICY_WORDS), "{}", status.message);
    let disable = json!({"spec": {"enabled": false}});
    let disabled = as_manager
        .patch("draft", &PatchParams::default(), &Patch::Merge(&disable))
        .await
        .expect("the manager disables it");
    assert!(!disabled.spec.enabled);
    // A disabled Dataflow's fields are the manager's to edit.
    as_manager
        .patch("draft", &PatchParams::default(), &Patch::Merge(&more_fields))
        .await
        .expect("editing a disabled Dataflow");
}

//! The control plane itself: a namespace, a ConfigMap watched as it changes, then deleted.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

use crate::support::{self, TestNamespace, User};

#[tokio::test]
async fn configmap_create_watch_change_delete() {
    support::init();
    let Some(client) = support::client(User::Admin).await else { return };
    let ns = TestNamespace::new(&client, "smoke").await;
    let api = Api::<ConfigMap>::namespaced(client.clone(), &ns.name);
    let cm: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "greeting"}, "data": {"text": "hello"}}))
            .unwrap();
    api.create(&PostParams::default(), &cm).await.expect("create ConfigMap");

    let mut changes =
        watcher(api.clone(), watcher::Config::default().fields("metadata.name=greeting")).applied_objects().boxed();
    let first =
        tokio::time::timeout(Duration::from_secs(10), changes.try_next()).await.expect("watch event").unwrap().unwrap();
    assert_eq!(first.data.unwrap()["text"], "hello");

    let patch = serde_json::json!({"data": {"text": "bonjour"}});
    api.patch("greeting", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch ConfigMap");
    let changed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(cm) = changes.try_next().await.unwrap() {
            if cm.data.as_ref().is_some_and(|d| d["text"] == "bonjour") {
                return cm;
            }
        }
        panic!("watch ended");
    })
    .await
    .expect("the watch saw the change");
    assert_eq!(changed.data.unwrap()["text"], "bonjour");

    api.delete("greeting", &DeleteParams::default()).await.expect("delete ConfigMap");
    assert!(api.get_opt("greeting").await.unwrap().is_none(), "the ConfigMap is gone");
}

#[tokio::test]
async fn plain_users_have_no_rights_until_granted() {
    support::init();
    let (Some(admin), Some(viewer)) = (support::client(User::Admin).await, support::client(User::Viewer).await) else {
        return;
    };
    let ns = TestNamespace::new(&admin, "rbac-smoke").await;
    let as_viewer = Api::<ConfigMap>::namespaced(viewer, &ns.name);
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "x"}})).unwrap();
    let denied = as_viewer.create(&PostParams::default(), &cm).await.unwrap_err();
    assert!(matches!(&denied, kube::Error::Api(s) if s.code == 403), "{denied}");

    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "configmap-writer"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]
    }))
    .unwrap();
    Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(admin.clone(), &ns.name)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "viewer-writes-configmaps"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-writer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "viewer"}]
    }))
    .unwrap();
    Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin, &ns.name)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    support::eventually("the RoleBinding takes effect", Duration::from_secs(10), || {
        let api = as_viewer.clone();
        let cm = cm.clone();
        async move { api.create(&PostParams::default(), &cm).await.ok() }
    })
    .await;
}

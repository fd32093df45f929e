//! The API server enforces the schema: structural CRDs, enums, bounds, patterns and CEL rules,
//! each rejection naming the field.

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};

use crate::support::{self, TestNamespace, User};

fn dataflow(spec: Value) -> Value {
    json!({"apiVersion": "outflow.dev/v1alpha1", "kind": "Dataflow", "metadata": {"name": "bad"}, "spec": spec})
}

fn valid_spec() -> Value {
    json!({
        "account": "acme",
        "enabled": false,
        "segments": [{"id": "seg-1", "schedule": {"daily": {"at": "06:00"}}}],
        "fields": [{"source": "personalEmail.address", "target": "email"}]
    })
}

fn with(path: &str, value: Value) -> Value {
    let mut spec = valid_spec();
    *spec.pointer_mut(path).unwrap_or_else(|| panic!("{path}")) = value;
    spec
}

/// Each bad input, and the field and words the API server's message must contain.
fn bad_dataflows() -> Vec<(&'static str, Value, &'static str, &'static str)> {
    vec![
        (
            "two schedule kinds",
            with("/segments/0/schedule", json!({"daily": {"at": "06:00"}, "cron": "0 6 * * *"})),
            "spec.segments[0].schedule",
            "exactly one of once, interval, daily, weekly or cron",
        ),
        (
            "no schedule kind",
            with("/segments/0/schedule", json!({"timeZone": "UTC"})),
            "spec.segments[0].schedule",
            "exactly one of",
        ),
        (
            "end date before start date",
            with(
                "/segments/0/schedule",
                json!({"daily": {"at": "06:00"}, "startDate": "2026-05-01", "endDate": "2026-04-01"}),
            ),
            "spec.segments[0].schedule.endDate",
            "endDate must be after startDate",
        ),
        (
            "interval of 5 hours",
            with("/segments/0/schedule", json!({"interval": {"hours": 5}})),
            "spec.segments[0].schedule.interval.hours",
            "1, 2, 3, 4, 6, 8, 12",
        ),
        (
            "time of day 25:00",
            with("/segments/0/schedule", json!({"daily": {"at": "25:00"}})),
            "spec.segments[0].schedule.daily.at",
            "should match",
        ),
        (
            "duplicate targets",
            with(
                "/fields",
                json!([{"source": "personalEmail.address", "target": "email"}, {"source": "identityMap.email", "target": "email"}]),
            ),
            "spec.fields[1]",
            "Duplicate value",
        ),
        (
            "hashing a timestamp",
            with(
                "/fields",
                json!([{"source": "segmentMembership.lastQualificationTime", "target": "t", "transforms": ["SHA256"]}]),
            ),
            "spec.fields[0].transforms",
            "SHA256 applies only to string fields",
        ),
        (
            "unknown transform",
            with(
                "/fields",
                json!([{"source": "personalEmail.address", "target": "email", "transforms": ["Uppercase"]}]),
            ),
            "spec.fields[0].transforms[0]",
            "Unsupported value",
        ),
        ("no segments", with("/segments", json!([])), "spec.segments", "at least 1 items"),
        (
            "mandatory field that is not exported",
            {
                let mut s = valid_spec();
                s["mandatoryFields"] = json!(["phone"]);
                s
            },
            "spec.mandatoryFields",
            "every entry of mandatoryFields must be the target of one of spec.fields",
        ),
        (
            "deduplication on both identity and fields",
            {
                let mut s = valid_spec();
                s["deduplication"] = json!({"identity": "email", "fields": ["email"]});
                s
            },
            "spec.deduplication",
            "exactly one of identity or fields",
        ),
        (
            "missing enabled",
            {
                let mut s = valid_spec();
                s.as_object_mut().unwrap().remove("enabled");
                s
            },
            "spec.enabled",
            "Required value",
        ),
        ("segment id with a slash", with("/segments/0/id", json!("seg/1")), "spec.segments[0].id", "should match"),
        (
            "unknown export mode",
            {
                let mut s = valid_spec();
                s["segments"][0]["exportMode"] = json!("Delta");
                s
            },
            "spec.segments[0].exportMode",
            "Unsupported value",
        ),
    ]
}

fn bad_destinations() -> Vec<(&'static str, Value, &'static str, &'static str)> {
    let base = json!({"displayName": "X", "category": "CloudStorage", "exportType": "Profile", "connector": "S3", "formats": ["CSV"]});
    let mut unknown_category = base.clone();
    unknown_category["category"] = json!("Social");
    let mut no_identities = base.clone();
    no_identities["exportType"] = json!("Segment");
    let mut no_formats = base.clone();
    no_formats["formats"] = json!([]);
    vec![
        ("unknown category", unknown_category, "spec.category", "Unsupported value: \"Social\""),
        ("segment export without identities", no_identities, "spec.identities", "at least one identity namespace"),
        ("file connector without formats", no_formats, "spec.formats", "at least one format"),
    ]
}

async fn expect_rejected(api: &Api<DynamicObject>, case: &str, obj: Value, field: &str, words: &str) {
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    let err = api
        .create(&PostParams::default(), &obj)
        .await
        .err()
        .unwrap_or_else(|| panic!("{case}: the API server accepted it"));
    let kube::Error::Api(status) = &err else { panic!("{case}: unexpected error {err}") };
    assert_eq!(status.code, 422, "{case}: {}", status.message);
    assert!(status.message.contains(field), "{case}: the message should name {field}: {}", status.message);
    assert!(status.message.contains(words), "{case}: the message should say '{words}': {}", status.message);
}

#[tokio::test]
async fn the_api_server_rejects_bad_input_naming_the_field() {
    support::init();
    let Some(client) = support::client(User::Admin).await else { return };
    support::install_crds(&client).await;
    let ns = TestNamespace::new(&client, "bad-input").await;

    let dataflows = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &ns.name,
        &ApiResource::erase::<outflow::api::Dataflow>(&()),
    );
    // The valid baseline is accepted, so each rejection below is about its one change.
    let ok: DynamicObject = serde_json::from_value(dataflow(valid_spec())).unwrap();
    dataflows.create(&PostParams { dry_run: true, ..Default::default() }, &ok).await.expect("the baseline is valid");
    let cases = bad_dataflows();
    for (case, spec, field, words) in &cases {
        expect_rejected(&dataflows, case, dataflow(spec.clone()), field, words).await;
    }

    let destinations =
        Api::<DynamicObject>::all_with(client.clone(), &ApiResource::erase::<outflow::api::Destination>(&()));
    for (case, spec, field, words) in bad_destinations() {
        let obj = json!({"apiVersion": "outflow.dev/v1alpha1", "kind": "Destination", "metadata": {"name": "bad-destination"}, "spec": spec});
        expect_rejected(&destinations, case, obj, field, words).await;
    }

    let accounts =
        Api::<DynamicObject>::namespaced_with(client, &ns.name, &ApiResource::erase::<outflow::api::Account>(&()));
    let no_destination = json!({"apiVersion": "outflow.dev/v1alpha1", "kind": "Account", "metadata": {"name": "bad"}, "spec": {"parameters": {"bucket": "b"}}});
    expect_rejected(&accounts, "account without destination", no_destination, "spec.destination", "Required value")
        .await;
    assert!(cases.len() >= 10);
}

/// `outflow validate` refuses offline every case the API server refuses above, naming the same
/// field: the structural schema and CEL rules from the same CRD, or the plan's own checks.
#[test]
fn validate_refuses_the_same_input_offline() {
    for (case, spec, field, _words) in bad_dataflows() {
        let obj = dataflow(spec);
        let mut fields: Vec<String> = outflow::manifest::check::api_server_checks::<outflow::api::Dataflow>(&obj)
            .into_iter()
            .map(|v| v.field)
            .collect();
        if let Ok(typed) = serde_json::from_value::<outflow::api::Dataflow>(obj) {
            let plan = outflow::plan::validate::check_dataflow(
                &typed,
                outflow::plan::validate::AccountState::NotFound,
                None,
                chrono::Utc::now(),
            );
            fields.extend(plan.err().into_iter().flatten().filter(|p| p.reason.is_in_own_spec()).map(|p| p.field));
        }
        assert!(
            fields.iter().any(|f| f.starts_with(field)),
            "{case}: offline checks reported {fields:?}, expected {field}"
        );
    }
}

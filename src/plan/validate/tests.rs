use std::collections::BTreeSet;

use super::*;

fn destination(yaml: &str) -> Destination {
    serde_saphyr::from_str(yaml).unwrap()
}

fn s3() -> Destination {
    destination(
        r#"
apiVersion: outflow.dev/v1alpha1
kind: Destination
metadata: {name: amazon-s3}
spec:
  displayName: Amazon S3
  category: CloudStorage
  exportType: Profile
  connector: S3
  account:
    parameters:
      - {name: bucket, required: true}
      - {name: region}
    secretKeys:
      - {name: accessKeyId, required: true}
      - {name: secretAccessKey, required: true}
  formats: [CSV, Parquet]
  compression: [None, Gzip]
"#,
    )
}

fn meta() -> Destination {
    destination(
        r#"
apiVersion: outflow.dev/v1alpha1
kind: Destination
metadata: {name: meta-custom-audiences}
spec:
  displayName: Meta Custom Audiences
  category: Advertising
  exportType: Segment
  connector: HTTP
  identities:
    - {namespace: email, hashing: SHA256}
    - {namespace: phone, hashing: SHA256}
  limits: {maxBatchSize: 10000}
"#,
    )
}

fn account(yaml_params: &str, secret: Option<&str>) -> Account {
    let secret = secret.map(|s| format!("  credentialsSecretRef: {{name: {s}}}\n")).unwrap_or_default();
    serde_saphyr::from_str(&format!(
        "apiVersion: outflow.dev/v1alpha1\nkind: Account\nmetadata: {{name: acme, namespace: marketing}}\nspec:\n  destination: amazon-s3\n  parameters: {yaml_params}\n{secret}"
    ))
    .unwrap()
}

fn keys(k: &[&str]) -> SecretKeys {
    SecretKeys::Keys(k.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>())
}

fn dataflow(body: &str) -> Dataflow {
    serde_saphyr::from_str(&format!(
        "apiVersion: outflow.dev/v1alpha1\nkind: Dataflow\nmetadata: {{name: df, namespace: marketing}}\nspec:\n{body}"
    ))
    .unwrap()
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap().with_timezone(&Utc)
}

const BASIC: &str = r#"
  account: acme
  enabled: true
  segments:
    - id: seg-1
      schedule: {daily: {at: "06:00"}}
  fields:
    - {source: personalEmail.address, target: email, transforms: [Trim, Lowercase]}
    - {source: person.name.firstName, target: first_name}
"#;

#[test]
fn a_complete_account_has_no_problem() {
    let acct = account("{bucket: b}", Some("creds"));
    assert!(check_account(&acct, Some(&s3()), Some(&keys(&["accessKeyId", "secretAccessKey"]))).is_empty());
}

#[test]
fn account_problems_name_the_field_and_never_a_value() {
    let acct = account("{}", Some("creds"));
    let problems = check_account(&acct, Some(&s3()), Some(&keys(&["accessKeyId"])));
    let reasons: Vec<_> = problems.iter().map(|p| (p.reason, p.field.as_str())).collect();
    assert_eq!(
        reasons,
        vec![
            (Reason::MissingParameter, "spec.parameters.bucket"),
            (Reason::MissingSecretKey, "spec.credentialsSecretRef.name")
        ]
    );
    assert!(problems[1].message.contains("'secretAccessKey'"), "{}", problems[1].message);
}

#[test]
fn account_reports_missing_destination_and_secret() {
    let acct = account("{bucket: b}", Some("creds"));
    assert_eq!(check_account(&acct, None, None)[0].reason, Reason::DestinationNotFound);
    let problems = check_account(&acct, Some(&s3()), Some(&SecretKeys::NotFound));
    assert_eq!(problems[0].reason, Reason::SecretNotFound);
    assert!(problems[0].message.contains("'creds'") && problems[0].message.contains("'marketing'"));
    let no_ref = account("{bucket: b}", None);
    assert_eq!(check_account(&no_ref, Some(&s3()), None)[0].reason, Reason::SecretNotFound);
}

#[test]
fn unknown_account_parameters_are_refused() {
    let acct = account("{bucket: b, bukket: c}", Some("creds"));
    let problems = check_account(&acct, Some(&s3()), Some(&keys(&["accessKeyId", "secretAccessKey"])));
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field, "spec.parameters.bukket");
    assert!(problems[0].message.contains("bucket, region"));
}

#[test]
fn a_valid_dataflow_gets_a_plan() {
    let acct = account("{bucket: b}", Some("creds"));
    let plan = check_dataflow(&dataflow(BASIC), AccountState::Ready(&acct), Some(&s3()), now()).unwrap();
    assert_eq!(plan.segments.len(), 1);
    assert_eq!(plan.format, Some(FileFormat::Csv));
}

#[test]
fn a_missing_account_is_not_a_spec_problem() {
    let problems = check_dataflow(&dataflow(BASIC), AccountState::NotFound, None, now()).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].reason, Reason::AccountNotFound);
    assert!(!problems[0].reason.is_in_own_spec());
}

#[test]
fn unknown_source_paths_and_bad_schedules_are_named() {
    let df = dataflow(
        r#"
  account: acme
  enabled: true
  segments:
    - id: seg-1
      schedule: {daily: {at: "06:00"}, timeZone: Europe/Pariss}
  fields:
    - {source: person.name.frstName, target: first}
    - {source: segmentMembership.lastQualificationTime, target: t, transforms: [Lowercase]}
"#,
    );
    let acct = account("{bucket: b}", Some("creds"));
    let problems = check_dataflow(&df, AccountState::Ready(&acct), Some(&s3()), now()).unwrap_err();
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, vec!["spec.segments[0].schedule", "spec.fields[0].source", "spec.fields[1].transforms"]);
    assert!(problems[0].message.contains("Europe/Pariss"));
    assert!(problems.iter().all(|p| p.reason.is_in_own_spec()));
}

#[test]
fn segment_destinations_require_their_hashing_and_identities() {
    let df = dataflow(
        r#"
  account: acme
  enabled: true
  segments:
    - id: seg-1
      schedule: {once: {}}
  fields:
    - {source: identityMap.email, target: email}
    - {source: identityMap.crmId, target: crm, transforms: [SHA256]}
"#,
    );
    let acct = account("{bucket: b}", Some("creds"));
    let problems = check_dataflow(&df, AccountState::Ready(&acct), Some(&meta()), now()).unwrap_err();
    let reasons: Vec<_> = problems.iter().map(|p| (p.reason, p.field.as_str())).collect();
    assert_eq!(
        reasons,
        vec![
            (Reason::HashingRequired, "spec.fields[0].transforms"),
            (Reason::UnknownIdentity, "spec.fields[1].source")
        ]
    );
}

#[test]
fn formats_the_destination_does_not_take_are_refused() {
    let mut body = BASIC.to_string();
    body.push_str("  output: {format: JSONLines}\n");
    let acct = account("{bucket: b}", Some("creds"));
    let problems = check_dataflow(&dataflow(&body), AccountState::Ready(&acct), Some(&s3()), now()).unwrap_err();
    assert_eq!(problems[0].reason, Reason::UnsupportedFormat);
    assert_eq!(problems[0].field, "spec.output.format");
}

#[test]
fn mandatory_and_dedup_fields_must_be_targets() {
    let mut body = BASIC.to_string();
    body.push_str("  mandatoryFields: [email, phone]\n  deduplication: {fields: [mail]}\n");
    let acct = account("{bucket: b}", Some("creds"));
    let problems = check_dataflow(&dataflow(&body), AccountState::Ready(&acct), Some(&s3()), now()).unwrap_err();
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, vec!["spec.mandatoryFields[1]", "spec.deduplication.fields[0]"]);
}

#[test]
fn destination_self_check_catches_bad_templates_and_duplicates() {
    let mut d = s3();
    d.spec.file_name_template = Some("%SEGMENT%".into());
    d.spec.account.parameters.push(d.spec.account.parameters[0].clone());
    let problems = check_destination(&d.spec);
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, vec!["spec.fileNameTemplate", "spec.account.parameters[2].name"]);
}

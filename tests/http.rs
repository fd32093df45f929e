//! Segment exports to templated HTTP destinations, each catalog entry's request shape played by a
//! local server: hashing and batch limits checked on the wire, throttling (429 with Retry-After),
//! server errors, per-row errors, an expired OAuth2 token, a shared rate limit, the address rules
//! and TLS trust. The expected members come from DuckDB reading the same Parquet store.

#[path = "support/duckdb.rs"]
mod duckdb;
#[path = "support/http_server.rs"]
mod http_server;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http_server::{Reply, Seen, Server};
use outflow::executor::RunRequest;
use outflow::executor::runner::{RunFailure, RunInputs, execute};
use outflow::export::{NoProgress, RunReport};
use outflow::manifest::check::dataflow_check;
use outflow::manifest::{ManifestSet, secret_values};
use outflow::sample::{SampleSpec, write_sample};
use serde_json::{Value, json};

const COUNT: u64 = 3_000;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-04-01T06:00:00Z").unwrap().with_timezone(&Utc)
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = SampleSpec { count: COUNT, seed: 11, segments: 3, rows_per_file: 1_000, ..SampleSpec::default() };
        write_sample(&dir.path().join("profiles"), &spec).unwrap();
        Self { dir }
    }

    fn profiles(&self) -> String {
        self.dir.path().join("profiles").display().to_string()
    }

    /// A manifest folder: the catalog entry `catalog` (or a Destination given inline) and `yaml`.
    fn manifests(&self, name: &str, catalog: &str, yaml: &str) -> ManifestSet {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let destination = if catalog.starts_with("apiVersion") {
            catalog.to_string()
        } else {
            std::fs::read_to_string(root.join("manifests/catalog").join(format!("{catalog}.yaml"))).unwrap()
        };
        std::fs::write(dir.join("destination.yaml"), destination).unwrap();
        std::fs::write(dir.join("objects.yaml"), yaml).unwrap();
        ManifestSet::read(&[dir]).unwrap_or_else(|e| panic!("{e:?}"))
    }
}

/// Runs one segment of a Dataflow in namespace `ads` as the controller would.
fn run_in(
    set: &ManifestSet,
    dataflow: &str,
    segment: &str,
    watermark: Option<&str>,
    profiles: &str,
) -> Result<RunReport, RunFailure> {
    let df = &set.dataflow("ads", dataflow).unwrap().object;
    let checked = dataflow_check(set, df, now()).unwrap_or_else(|p| panic!("{p:?}"));
    let account = &set.account("ads", &df.spec.account).unwrap().object;
    let destination = &set.destination(&account.spec.destination).unwrap().object;
    let secret_name = &account.spec.credentials_secret_ref.as_ref().unwrap().name;
    let secrets: BTreeMap<String, String> = secret_values(&set.secret("ads", secret_name).unwrap().object);
    let inputs =
        RunInputs { dataflow: df, checked: &checked, account, destination, secrets: &secrets, profiles_url: profiles };
    let request = RunRequest {
        id: format!("{dataflow}-{segment}"),
        segment: segment.into(),
        scheduled: now(),
        watermark: watermark.map(str::to_string),
        run_request: None,
    };
    execute(&inputs, &request, &NoProgress)
}

/// Members of `segment` with marketing consent, one row each, from the Parquet store: the
/// primary (else first) email and phone, the CRM ID, the status and qualification time.
fn members_sql(profiles: &str, segment: &str) -> String {
    format!(
        "WITH p AS (SELECT profile_id, map_extract_value(segmentMembership, '{segment}') AS m,
                consents.marketing.email.val AS c,
                map_extract_value(identityMap, 'email') AS e, map_extract_value(identityMap, 'phone') AS ph,
                map_extract_value(identityMap, 'crmId') AS crm
            FROM read_parquet('{profiles}/*.parquet'))
         SELECT profile_id, m.status AS status, m.lastQualificationTime AS t,
                lower(trim(coalesce(list_filter(e, lambda x: x.primary)[1].id, list_filter(e, lambda x: x.id IS NOT NULL)[1].id))) AS email,
                coalesce(list_filter(ph, lambda x: x.primary)[1].id, list_filter(ph, lambda x: x.id IS NOT NULL)[1].id) AS phone,
                list_filter(crm, lambda x: x.id IS NOT NULL)[1].id AS crm
         FROM p WHERE m.status IS NOT NULL AND c = 'y'"
    )
}

fn secret_yaml(name: &str, pairs: &[(&str, &str)]) -> String {
    let data: String = pairs.iter().map(|(k, v)| format!("  {k}: \"{v}\"\n")).collect();
    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: ads}}\nstringData:\n{data}---\n")
}

fn assert_no_secret(report: &impl std::fmt::Debug, secrets: &[&str]) {
    let text = format!("{report:?}");
    for s in secrets {
        assert!(!text.contains(s), "a secret value appears in {text}");
    }
}

fn hex64(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()))
}

#[test]
fn meta_receives_hashed_members_once_each_through_throttling_and_server_errors() {
    if !duckdb::available() {
        return;
    }
    let fx = Fixture::new();
    let token = "EAAB-meta-access-token-4242";
    let server = Server::start(
        Arc::new(move |seen: &Seen, n| {
            // The first request is throttled, the second meets a server error.
            match n {
                0 => {
                    return Reply::json(429, json!({"error": {"message": "User request limit reached", "code": 17}}))
                        .with_header("Retry-After", "1");
                }
                1 => return Reply::json(500, json!({"error": {"message": "An unknown error occurred", "code": 1}})),
                _ => {}
            }
            if seen.header("authorization") != Some(&format!("Bearer {token}")) {
                return Reply::json(401, json!({"error": {"message": "Invalid OAuth access token", "code": 190}}));
            }
            let body = seen.json();
            let data = body["payload"]["data"].as_array().cloned().unwrap_or_default();
            let schema_ok = matches!(body["payload"]["schema"].as_str(), Some("EMAIL_SHA256" | "PHONE_SHA256"));
            if seen.path != "/act/23850000000000001/users"
                || !schema_ok
                || data.len() > 10_000
                || !data.iter().all(hex64)
            {
                return Reply::json(400, json!({"error": {"message": "Invalid parameter", "code": 100}}));
            }
            Reply::json(
                200,
                json!({"audience_id": "23850000000000001", "num_received": data.len(), "num_invalid_entries": 0}),
            )
        }),
        None,
        Duration::ZERO,
    );
    let set = fx.manifests(
        "meta",
        "meta-custom-audiences",
        &format!(
            r#"{secret}apiVersion: outflow.dev/v1alpha1
kind: Account
metadata: {{name: meta, namespace: ads}}
spec:
  destination: meta-custom-audiences
  parameters: {{audienceId: "23850000000000001", endpoint: "{url}/act"}}
  credentialsSecretRef: {{name: meta-credentials}}
---
apiVersion: outflow.dev/v1alpha1
kind: Dataflow
metadata: {{name: buyers, namespace: ads}}
spec:
  account: meta
  enabled: true
  segments: [{{id: seg-1, exportMode: Incremental, schedule: {{once: {{}}}}}}]
  fields:
    - {{source: identityMap.email, target: email, transforms: [SHA256]}}
    - {{source: identityMap.phone, target: phone, transforms: [SHA256]}}
"#,
            secret = secret_yaml("meta-credentials", &[("accessToken", token)]),
            url = server.url
        ),
    );
    // A watermark before every qualification time: every member and every exit is a change.
    let report = run_in(&set, "buyers", "seg-1", Some("2025-12-31T00:00:00Z"), &fx.profiles())
        .unwrap_or_else(|f| panic!("{}", f.message));

    let sql = members_sql(&fx.profiles(), "seg-1");
    // One entry per profile: two profiles may share an email, and each is sent.
    let expected = |status: &str| -> Vec<String> {
        let mut v =
            duckdb::column(&format!("SELECT sha256(email) FROM ({sql}) WHERE email IS NOT NULL AND status {status}"));
        v.sort();
        v
    };
    let accepted: Vec<(Seen, u16)> = server.requests().into_iter().filter(|(_, status)| *status == 200).collect();
    let delivered = |method: &str, schema: &str| -> Vec<String> {
        accepted
            .iter()
            .filter(|(s, _)| s.method == method && s.json()["payload"]["schema"] == schema)
            .flat_map(|(s, _)| {
                s.json()["payload"]["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let (added, removed) = (sorted(delivered("POST", "EMAIL_SHA256")), sorted(delivered("DELETE", "EMAIL_SHA256")));
    assert_eq!(added, expected("IN ('realized', 'existing')"), "each member's email is added exactly once");
    assert_eq!(removed, expected("= 'exited'"), "each exit's email is removed exactly once");
    // Members without an email go in PHONE_SHA256 batches of their own.
    let phone_only = duckdb::column(&format!("SELECT count(*) FROM ({sql}) WHERE email IS NULL AND phone IS NOT NULL"));
    let phones = delivered("POST", "PHONE_SHA256").len() + delivered("DELETE", "PHONE_SHA256").len();
    assert_eq!(phones.to_string(), phone_only[0]);
    assert!(phones > 0);

    let all = server.requests();
    assert_eq!((all[0].1, all[1].1), (429, 500));
    let retried =
        all.iter().skip(1).find(|(s, _)| s.body == all[0].0.body).expect("the throttled batch was sent again");
    assert!(retried.0.at.duration_since(all[0].0.at) >= Duration::from_millis(990), "Retry-After: 1 was not honoured");
    assert_eq!(report.requests, all.len() as u64);
    assert_eq!(report.failed, 0);
    assert_eq!(
        report.exported as usize,
        accepted.iter().map(|(s, _)| s.json()["payload"]["data"].as_array().unwrap().len()).sum::<usize>()
    );
    assert_no_secret(&report, &[token]);
}

const GENERIC_DATAFLOW: &str = r#"apiVersion: outflow.dev/v1alpha1
kind: Dataflow
metadata: {name: crm-sync, namespace: ads}
spec:
  account: in-house
  enabled: true
  segments: [{id: seg-2, exportMode: Incremental, schedule: {once: {}}}]
  fields:
    - {source: identityMap.crmId, target: crm}
    - {source: identityMap.email, target: email, transforms: [SHA256]}
  mandatoryFields: [crm]
"#;

#[test]
fn rejected_rows_are_reported_and_sent_again_by_the_next_run() {
    if !duckdb::available() {
        return;
    }
    let fx = Fixture::new();
    let bearer = "in-house-bearer-9f8e7d";
    let reject = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reject2 = reject.clone();
    let server = Server::start(
        Arc::new(move |seen: &Seen, _| {
            if seen.header("authorization") != Some(&format!("Bearer {bearer}")) || seen.header("x-api-key").is_some() {
                return Reply::json(401, json!({"message": "unauthorized"}));
            }
            let body = seen.json();
            let members = body["members"].as_array().unwrap();
            let expected_action = if seen.method == "DELETE" { "remove" } else { "add" };
            if body["action"] != expected_action || body["segment"]["id"] != "seg-2" || members.len() > 1000 {
                return Reply::json(400, json!({"message": "bad request"}));
            }
            // CRM IDs ending in 7 are unknown to the service, while it rejects them.
            let errors: Vec<Value> = members
                .iter()
                .enumerate()
                .filter(|(_, m)| reject2.load(std::sync::atomic::Ordering::SeqCst) && m["identities"]["crmId"].as_str().unwrap().ends_with('7'))
                .map(|(i, m)| json!({"index": i, "message": format!("unknown customer {}", m["identities"]["crmId"].as_str().unwrap())}))
                .collect();
            Reply::json(200, json!({"accepted": members.len() - errors.len(), "errors": errors}))
        }),
        None,
        Duration::ZERO,
    );
    let set = fx.manifests(
        "generic",
        "generic-http-api",
        &format!(
            "{secret}apiVersion: outflow.dev/v1alpha1\nkind: Account\nmetadata: {{name: in-house, namespace: ads}}\nspec:\n  destination: generic-http-api\n  parameters: {{url: \"{url}/v1/members\"}}\n  credentialsSecretRef: {{name: in-house-credentials}}\n---\n{GENERIC_DATAFLOW}",
            secret = secret_yaml("in-house-credentials", &[("bearerToken", bearer)]),
            url = server.url
        ),
    );
    let first = run_in(&set, "crm-sync", "seg-2", None, &fx.profiles()).unwrap_or_else(|f| panic!("{}", f.message));

    let sql =
        format!("SELECT * FROM ({}) WHERE status IN ('realized', 'existing')", members_sql(&fx.profiles(), "seg-2"));
    let rejected_expected =
        duckdb::column(&format!("SELECT count(*) FROM ({sql}) WHERE crm LIKE '%7'"))[0].parse::<u64>().unwrap();
    let all = duckdb::column(&format!("SELECT count(*) FROM ({sql}) WHERE crm IS NOT NULL"))[0].parse::<u64>().unwrap();
    assert!(rejected_expected > 0);
    assert_eq!(first.failed, rejected_expected);
    assert_eq!(first.exported, all - rejected_expected);
    assert_eq!(first.failed_rows.len(), 10);
    assert!(first.failed_rows.iter().all(|f| f.reason.starts_with("unknown customer crm-") && f.profile_id.is_some()));
    // The watermark stops just before the earliest rejected member.
    let earliest =
        duckdb::column(&format!("SELECT strftime(min(t), '%Y-%m-%dT%H:%M:%S') FROM ({sql}) WHERE crm LIKE '%7'"))[0]
            .clone();
    let watermark = first.watermark.clone().unwrap();
    let earliest_t = DateTime::parse_from_rfc3339(&format!("{earliest}Z")).unwrap();
    assert_eq!(DateTime::parse_from_rfc3339(&watermark).unwrap(), earliest_t - chrono::Duration::microseconds(1));

    // The next run, once the service knows them, delivers every rejected member.
    reject.store(false, std::sync::atomic::Ordering::SeqCst);
    let before = server.requests().len();
    let second =
        run_in(&set, "crm-sync", "seg-2", Some(&watermark), &fx.profiles()).unwrap_or_else(|f| panic!("{}", f.message));
    assert_eq!(second.failed, 0);
    let resent: BTreeSet<String> = server.requests()[before..]
        .iter()
        .flat_map(|(s, _)| {
            s.json()["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["identities"]["crmId"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let rejected: BTreeSet<String> =
        duckdb::column(&format!("SELECT crm FROM ({sql}) WHERE crm LIKE '%7'")).into_iter().collect();
    assert!(
        rejected.is_subset(&resent),
        "{} rejected members were not sent again",
        rejected.difference(&resent).count()
    );
    let changed = duckdb::column(&format!(
        "SELECT count(*) FROM ({}) WHERE crm IS NOT NULL AND t > TIMESTAMP '{}'",
        members_sql(&fx.profiles(), "seg-2"),
        watermark.trim_end_matches('Z').replace('T', " ")
    ))[0]
        .parse::<u64>()
        .unwrap();
    assert_eq!(second.exported, changed, "the second run sends the changes since the watermark, exits included");
    assert_no_secret(&first, &[bearer]);
}

#[test]
fn google_refreshes_an_expired_token_once_and_refused_credentials_fail_the_run() {
    let fx = Fixture::new();
    let (client_secret, refresh_token) = ("GOCSPX-client-secret-77", "1//refresh-token-abc");
    let server = Server::start(
        Arc::new(move |seen: &Seen, _| {
            if seen.path == "/token" {
                let form: HashMap<String, String> = url_form(&seen.body);
                if form.get("grant_type").map(String::as_str) != Some("refresh_token")
                    || form.get("refresh_token").map(String::as_str) != Some(refresh_token)
                    || form.get("client_secret").map(String::as_str) != Some(client_secret)
                {
                    return Reply::json(400, json!({"error": "invalid_grant"}));
                }
                let issued = TOKENS_ISSUED.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                return Reply::json(
                    200,
                    json!({"access_token": format!("ya29.token-{issued}"), "expires_in": 3599, "token_type": "Bearer"}),
                );
            }
            // The first token has expired by the time it is used.
            let auth = seen.header("authorization").unwrap_or_default().to_string();
            if !auth.starts_with("Bearer ya29.token-") || auth == "Bearer ya29.token-1" {
                return Reply::json(401, json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}}));
            }
            let body = seen.json();
            let members = body["audienceMembers"].as_array().unwrap();
            let ids_ok = members.iter().all(|m| {
                let ids = m["userData"]["userIdentifiers"].as_array().unwrap();
                !ids.is_empty() && ids.iter().all(|i| hex64(&i["emailAddress"]) || hex64(&i["phoneNumber"]))
            });
            let destination = &body["destinations"][0];
            if !ids_ok
                || body["encoding"] != "HEX"
                || members.len() > 10_000
                || destination["productDestinationId"] != "5550001"
                || destination["operatingAccount"]["accountId"] != "1234567890"
            {
                return Reply::json(400, json!({"error": {"code": 400, "status": "INVALID_ARGUMENT"}}));
            }
            Reply::json(200, json!({"requestId": format!("req-{}", members.len())}))
        }),
        None,
        Duration::ZERO,
    );
    let account = |name: &str, secret: &str| {
        format!(
            "apiVersion: outflow.dev/v1alpha1\nkind: Account\nmetadata: {{name: {name}, namespace: ads}}\nspec:\n  destination: google-customer-match\n  parameters: {{customerId: \"1234567890\", userListId: \"5550001\", endpoint: \"{url}/v1\", tokenEndpoint: \"{url}/token\"}}\n  credentialsSecretRef: {{name: {secret}}}\n---\n",
            url = server.url
        )
    };
    let dataflow = |name: &str, account: &str| {
        format!(
            "apiVersion: outflow.dev/v1alpha1\nkind: Dataflow\nmetadata: {{name: {name}, namespace: ads}}\nspec:\n  account: {account}\n  enabled: true\n  segments: [{{id: seg-0, schedule: {{once: {{}}}}}}]\n  fields:\n    - {{source: identityMap.email, target: email, transforms: [SHA256]}}\n    - {{source: identityMap.phone, target: phone, transforms: [SHA256]}}\n---\n"
        )
    };
    let yaml = [
        secret_yaml(
            "google",
            &[
                ("developerToken", "dev-token"),
                ("clientId", "client.apps"),
                ("clientSecret", client_secret),
                ("refreshToken", refresh_token),
            ],
        ),
        secret_yaml(
            "google-revoked",
            &[
                ("developerToken", "dev-token"),
                ("clientId", "client.apps"),
                ("clientSecret", client_secret),
                ("refreshToken", "1//revoked"),
            ],
        ),
        account("google", "google"),
        account("google-revoked", "google-revoked"),
        dataflow("lookalikes", "google"),
        dataflow("revoked", "google-revoked"),
    ]
    .concat();
    let set = fx.manifests("google", "google-customer-match", &yaml);
    let report = run_in(&set, "lookalikes", "seg-0", None, &fx.profiles()).unwrap_or_else(|f| panic!("{}", f.message));
    let requests = server.requests();
    let token_calls = requests.iter().filter(|(s, _)| s.path == "/token").count();
    assert_eq!(token_calls, 2, "one token, then one refresh after the 401");
    assert_eq!(requests.iter().filter(|(_, st)| *st == 401).count(), 1);
    let sent: usize = requests
        .iter()
        .filter(|(s, st)| *st == 200 && s.path != "/token")
        .map(|(s, _)| s.json()["audienceMembers"].as_array().unwrap().len())
        .sum();
    assert_eq!(sent as u64, report.exported);
    assert!(report.exported > 500);
    assert_no_secret(&report, &[client_secret, refresh_token]);

    let failure = run_in(&set, "revoked", "seg-0", None, &fx.profiles()).unwrap_err();
    assert!(failure.permanent, "{failure:?}");
    assert!(
        failure.message.contains("refused the credentials") && failure.message.contains("invalid_grant"),
        "{}",
        failure.message
    );
    assert!(!failure.message.contains(client_secret) && !failure.message.contains("1//revoked"), "{}", failure.message);
}

static TOKENS_ISSUED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn url_form(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

#[test]
fn mailchimp_reports_the_addresses_it_refuses() {
    if !duckdb::available() {
        return;
    }
    let fx = Fixture::new();
    let api_key = "0123456789abcdef0123456789abcdef-us19";
    let server = Server::start(
        Arc::new(move |seen: &Seen, _| {
            use base64::Engine;
            let expected =
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("outflow:{api_key}")));
            if seen.header("authorization") != Some(expected.as_str()) {
                return Reply::json(401, json!({"title": "API Key Invalid", "status": 401}));
            }
            let body = seen.json();
            let (add, remove) =
                (body["members_to_add"].as_array().unwrap(), body["members_to_remove"].as_array().unwrap());
            if seen.path != "/3.0/lists/aud123/segments/77" || add.len() > 500 || remove.len() > 500 {
                return Reply::json(400, json!({"title": "Invalid Resource", "status": 400}));
            }
            // Addresses at mail.test are not in the audience.
            let refused: Vec<&Value> =
                add.iter().chain(remove).filter(|e| e.as_str().unwrap().ends_with("@mail.test")).collect();
            let errors = if refused.is_empty() {
                vec![]
            } else {
                vec![json!({"email_addresses": refused, "error": "Email addresses must be subscribed to the list"})]
            };
            Reply::json(
                200,
                json!({"members_added": [], "members_removed": [], "errors": errors, "total_added": add.len(), "total_removed": remove.len(), "error_count": refused.len()}),
            )
        }),
        None,
        Duration::ZERO,
    );
    let set = fx.manifests(
        "mailchimp",
        "mailchimp",
        &format!(
            r#"{secret}apiVersion: outflow.dev/v1alpha1
kind: Account
metadata: {{name: newsletter, namespace: ads}}
spec:
  destination: mailchimp
  parameters: {{dataCenter: us19, audienceId: aud123, segmentId: "77", endpoint: "{url}/3.0"}}
  credentialsSecretRef: {{name: mailchimp}}
---
apiVersion: outflow.dev/v1alpha1
kind: Dataflow
metadata: {{name: newsletter, namespace: ads}}
spec:
  account: newsletter
  enabled: true
  segments: [{{id: seg-1, schedule: {{once: {{}}}}}}]
  fields:
    - {{source: identityMap.email, target: email, transforms: [Trim, Lowercase]}}
"#,
            secret = secret_yaml("mailchimp", &[("apiKey", api_key)]),
            url = server.url
        ),
    );
    let report = run_in(&set, "newsletter", "seg-1", None, &fx.profiles()).unwrap_or_else(|f| panic!("{}", f.message));
    let sql =
        format!("SELECT * FROM ({}) WHERE status IN ('realized', 'existing')", members_sql(&fx.profiles(), "seg-1"));
    let refused = duckdb::column(&format!("SELECT count(*) FROM ({sql}) WHERE email LIKE '%@mail.test'"))[0]
        .parse::<u64>()
        .unwrap();
    let with_email =
        duckdb::column(&format!("SELECT count(*) FROM ({sql}) WHERE email IS NOT NULL"))[0].parse::<u64>().unwrap();
    assert!(refused > 0);
    assert_eq!((report.failed, report.exported), (refused, with_email - refused));
    assert!(report.failed_rows.iter().all(|f| f.reason == "Email addresses must be subscribed to the list"));
    assert!(server.requests().len() as u64 >= with_email.div_ceil(500));
    assert_no_secret(&report, &[api_key]);
}

/// A copy of the generic destination with small batches, so a run makes many requests.
fn small_batches_destination() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join("manifests/catalog/generic-http-api.yaml"))
        .unwrap()
        .replace("maxBatchSize: 1000", "maxBatchSize: 40")
}

#[test]
fn two_dataflows_sharing_an_account_never_exceed_its_rate() {
    let fx = Fixture::new();
    let server = Server::start(
        Arc::new(|seen: &Seen, _| {
            Reply::json(200, json!({"accepted": seen.json()["members"].as_array().unwrap().len()}))
        }),
        None,
        Duration::from_millis(30),
    );
    let rate = 8;
    let dataflow = |name: &str, segment: &str| {
        format!(
            "apiVersion: outflow.dev/v1alpha1\nkind: Dataflow\nmetadata: {{name: {name}, namespace: ads}}\nspec:\n  account: shared\n  enabled: true\n  segments: [{{id: {segment}, schedule: {{once: {{}}}}}}]\n  fields:\n    - {{source: identityMap.crmId, target: crm}}\n  mandatoryFields: [crm]\n---\n"
        )
    };
    let set = fx.manifests(
        "rate",
        &small_batches_destination(),
        &format!(
            "{secret}apiVersion: outflow.dev/v1alpha1\nkind: Account\nmetadata: {{name: shared, namespace: ads}}\nspec:\n  destination: generic-http-api\n  parameters: {{url: \"{url}/members\"}}\n  credentialsSecretRef: {{name: shared}}\n  connection: {{requestsPerSecond: {rate}, maxConcurrentRequests: 2}}\n---\n{a}{b}",
            secret = secret_yaml("shared", &[("apiKey", "k-123456")]),
            url = server.url,
            a = dataflow("north", "seg-0"),
            b = dataflow("south", "seg-1"),
        ),
    );
    let profiles = fx.profiles();
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| run_in(&set, "north", "seg-0", None, &profiles));
        let b = scope.spawn(|| run_in(&set, "south", "seg-1", None, &profiles));
        (a.join().unwrap(), b.join().unwrap())
    });
    let (a, b) = (a.unwrap_or_else(|f| panic!("{}", f.message)), b.unwrap_or_else(|f| panic!("{}", f.message)));
    let mut starts: Vec<_> = server.requests().iter().map(|(s, _)| s.at).collect();
    starts.sort();
    assert_eq!(starts.len() as u64, a.requests + b.requests);
    assert!(starts.len() > 3 * rate, "too few requests to measure a rate: {}", starts.len());
    // The limit holds on request starts in the process; arrivals here may bunch by the network's
    // jitter, so windows are 900 ms (a tolerance of 100 ms), and the mean rate is checked too.
    let window = Duration::from_millis(900);
    let busiest = starts
        .iter()
        .map(|t0| starts.iter().filter(|t| **t >= *t0 && t.duration_since(*t0) < window).count())
        .max()
        .unwrap();
    assert!(busiest <= rate, "{busiest} requests arrived within 900 ms; the limit is {rate} a second");
    let span = starts.last().unwrap().duration_since(starts[0]).as_secs_f64();
    assert!((starts.len() - 1) as f64 / span <= rate as f64 * 1.01, "{} requests in {span:.2} s", starts.len());
    assert!(busiest >= rate - 2, "the limit was not used: at most {busiest} requests a second");
    assert!(server.max_in_flight() <= 2, "{} requests were in flight at once", server.max_in_flight());
}

#[test]
fn link_local_addresses_are_refused_and_a_named_ca_bundle_is_trusted() {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir.path()).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"];
    openssl(
        &[&["req", "-x509"][..], &ec, &["-subj", "/CN=outflow-test-ca", "-keyout", "ca.key", "-out", "ca.pem"]]
            .concat(),
    );
    openssl(&[&["req"][..], &ec[..5], &["-subj", "/CN=127.0.0.1", "-keyout", "key.pem", "-out", "leaf.csr"]].concat());
    std::fs::write(dir.path().join("leaf.ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let (cert_pem, key_pem, ca_pem) = (read("cert.pem"), read("key.pem"), read("ca.pem"));
    let server = Server::start(
        Arc::new(|_: &Seen, _| Reply::json(200, json!({"errors": []}))),
        Some((&cert_pem, &key_pem)),
        Duration::ZERO,
    );
    let indented: String = String::from_utf8(ca_pem).unwrap().lines().map(|l| format!("      {l}\n")).collect();
    let account = |name: &str, url: &str, connection: &str| {
        format!(
            "apiVersion: outflow.dev/v1alpha1\nkind: Account\nmetadata: {{name: {name}, namespace: ads}}\nspec:\n  destination: generic-http-api\n  parameters: {{url: \"{url}\"}}\n  credentialsSecretRef: {{name: creds}}\n{connection}---\n"
        )
    };
    let dataflow = |name: &str| {
        format!(
            "apiVersion: outflow.dev/v1alpha1\nkind: Dataflow\nmetadata: {{name: {name}, namespace: ads}}\nspec:\n  account: {name}\n  enabled: true\n  segments: [{{id: seg-0, schedule: {{once: {{}}}}}}]\n  fields:\n    - {{source: identityMap.crmId, target: crm}}\n---\n"
        )
    };
    let yaml = [
        secret_yaml("creds", &[("bearerToken", "tls-test-token")]),
        account("metadata", "http://169.254.169.254/latest/meta-data/", ""),
        account("untrusted", &format!("{}/members", server.url), ""),
        account("trusted", &format!("{}/members", server.url), &format!("  connection:\n    caBundle: |\n{indented}")),
        dataflow("metadata"),
        dataflow("untrusted"),
        dataflow("trusted"),
    ]
    .concat();
    let set = fx.manifests("tls", "generic-http-api", &yaml);
    let profiles = fx.profiles();

    let refused = run_in(&set, "metadata", "seg-0", None, &profiles).unwrap_err();
    assert!(refused.permanent && refused.message.contains("allowLinkLocalAddresses"), "{refused:?}");
    let untrusted = run_in(&set, "untrusted", "seg-0", None, &profiles).unwrap_err();
    assert!(untrusted.permanent && untrusted.message.to_lowercase().contains("certificate"), "{untrusted:?}");
    assert!(server.requests().is_empty(), "a request went through an untrusted connection");
    let trusted = run_in(&set, "trusted", "seg-0", None, &profiles).unwrap_or_else(|f| panic!("{}", f.message));
    assert!(trusted.exported > 0);
    assert_eq!(server.requests().len() as u64, trusted.requests);
}

#[test]
fn the_trade_desk_gets_tdids_and_uid2s_with_exits_as_ttl_zero_and_failed_lines_counted() {
    // A small store of its own, in NDJSON: the generated profiles carry no TDID or UID2.
    let fx = Fixture::new();
    let store = fx.dir.path().join("ttd-profiles");
    std::fs::create_dir_all(&store).unwrap();
    let id = |i: u32| {
        if i.is_multiple_of(3) {
            ("uid2", format!("uid2-token-{i:04}"))
        } else {
            ("tdid", format!("00000000-0000-4000-8000-{i:012}"))
        }
    };
    let lines: String = (0..300u32)
        .map(|i| {
            let (ns, value) = id(i);
            let status = if i.is_multiple_of(5) { "exited" } else { "realized" };
            let at = DateTime::<Utc>::from_timestamp(1_767_225_600 + i64::from(i), 0).unwrap().to_rfc3339();
            json!({"profile_id": format!("p{i}"), "identityMap": {ns: [{"id": value, "primary": true}]},
                   "segmentMembership": {"seg-ttd": {"status": status, "lastQualificationTime": at}}})
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(store.join("profiles.ndjson"), lines).unwrap();
    let token = "ttd-data-api-token-5150";
    let expected: HashMap<String, bool> = (0..300u32).map(|i| (id(i).1, i.is_multiple_of(5))).collect();
    let exits = expected.clone();
    let server = Server::start(
        Arc::new(move |seen: &Seen, _| {
            let body = seen.json();
            if seen.path != "/data/advertiser"
                || seen.header("ttd-auth") != Some(token)
                || body["AdvertiserId"] != "adv123"
            {
                return Reply::json(400, json!({"Message": "bad request"}));
            }
            let mut failed = Vec::new();
            for (line, item) in body["Items"].as_array().unwrap().iter().enumerate() {
                let value = item["TDID"].as_str().or(item["UID2"].as_str()).unwrap_or_default();
                let exit = exits.get(value).copied();
                let data = &item["Data"][0];
                let ttl_ok = match exit {
                    Some(true) => data["TTLInMinutes"] == 0,
                    Some(false) => data["TTLInMinutes"] == 43200,
                    None => false,
                };
                if !ttl_ok || data["Name"] != "seg-ttd" || (item.get("TDID").is_some() == item.get("UID2").is_some()) {
                    failed.push(json!({"LineNumber": line + 1, "ErrorCode": "BadItem", "Message": format!("unexpected item {item}")}));
                } else if value.ends_with('7') {
                    failed.push(
                        json!({"LineNumber": line + 1, "ErrorCode": "InvalidId", "Message": "id not recognized"}),
                    );
                }
            }
            Reply::json(200, json!({"FailedLines": failed}))
        }),
        None,
        Duration::ZERO,
    );
    let set = fx.manifests(
        "ttd",
        "the-trade-desk",
        &format!(
            r#"{secret}apiVersion: outflow.dev/v1alpha1
kind: Account
metadata: {{name: ttd, namespace: ads}}
spec:
  destination: the-trade-desk
  parameters: {{advertiserId: adv123, endpoint: "{url}"}}
  credentialsSecretRef: {{name: ttd}}
---
apiVersion: outflow.dev/v1alpha1
kind: Dataflow
metadata: {{name: prospects, namespace: ads}}
spec:
  account: ttd
  enabled: true
  consent: {{enforce: false}}
  segments: [{{id: seg-ttd, exportMode: Incremental, schedule: {{once: {{}}}}}}]
  fields:
    - {{source: identityMap.tdid, target: tdid}}
    - {{source: identityMap.uid2, target: uid2}}
"#,
            secret = secret_yaml("ttd", &[("apiKey", token)]),
            url = server.url
        ),
    );
    let report = run_in(&set, "prospects", "seg-ttd", Some("2025-12-31T00:00:00Z"), &store.display().to_string())
        .unwrap_or_else(|f| panic!("{}", f.message));
    let rejected = expected.keys().filter(|v| v.ends_with('7')).count() as u64;
    assert!(report.failed_rows.iter().all(|f| f.reason == "id not recognized"), "{:?}", report.failed_rows);
    // LineNumber counts from 1: each reported profile is the one whose ID was refused.
    for failure in &report.failed_rows {
        let i: u32 = failure.profile_id.as_deref().unwrap().trim_start_matches('p').parse().unwrap();
        assert!(id(i).1.ends_with('7'), "{failure:?} was not refused");
    }
    assert_eq!((report.failed, report.exported), (rejected, 300 - rejected));
    let sent: Vec<String> = server
        .requests()
        .iter()
        .flat_map(|(s, _)| {
            s.json()["Items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["TDID"].as_str().or(i["UID2"].as_str()).unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(sent.len(), 300, "every identity is sent exactly once");
    assert_eq!(sent.iter().collect::<BTreeSet<_>>().len(), 300);
    assert_no_secret(&report, &[token]);
}

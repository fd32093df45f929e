//! End-to-end export runs on a generated profile store: counts against an independent reading of
//! the same data (NDJSON through serde_json), and rows against DuckDB reading both the source
//! Parquet and what Outflow wrote.

#[path = "support/duckdb.rs"]
#[allow(dead_code)]
mod duckdb;

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use outflow::connectors::FileConnector;
use outflow::export::{ExportPlan, NoProgress, RunReport, run_export};
use outflow::manifest::ManifestSet;
use outflow::manifest::check::dataflow_check;
use outflow::sample::{SampleFormat, SampleSpec, write_sample};
use serde_json::Value;

const COUNT: u64 = 20_000;
const SEED: u64 = 7;

struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = SampleSpec { count: COUNT, seed: SEED, segments: 5, rows_per_file: 8_000, ..SampleSpec::default() };
        let files = write_sample(&dir.path().join("profiles"), &spec).unwrap();
        assert_eq!(files.len(), 3);
        write_sample(&dir.path().join("ndjson"), &SampleSpec { format: SampleFormat::Ndjson, ..spec }).unwrap();
        Self { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn profiles(&self) -> String {
        self.path("profiles").display().to_string()
    }

    /// The generated profiles, read back as plain JSON (independent of the Arrow code paths).
    fn json_profiles(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for name in files_in(&self.path("ndjson")) {
            let text = std::fs::read_to_string(self.path("ndjson").join(name)).unwrap();
            out.extend(text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()));
        }
        out
    }
}

/// Writes a Destination, an Account writing to `out` and a Dataflow with `body`; returns the folder.
fn manifests(root: &Path, name: &str, out: &Path, body: &str) -> PathBuf {
    let dir = root.join(format!("manifests-{name}-{}", out.file_name().unwrap().to_string_lossy()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("all.yaml"),
        format!(
            r#"apiVersion: outflow.dev/v1alpha1
kind: Destination
metadata: {{name: local-files}}
spec:
  displayName: Local files
  category: CloudStorage
  exportType: Profile
  connector: File
  account:
    parameters: [{{name: path, required: true}}]
  formats: [CSV, JSONLines, Parquet]
  compression: [None, Gzip]
---
apiVersion: outflow.dev/v1alpha1
kind: Account
metadata: {{name: local, namespace: marketing}}
spec:
  destination: local-files
  parameters: {{path: "{out}"}}
---
apiVersion: outflow.dev/v1alpha1
kind: Dataflow
metadata: {{name: {name}, namespace: marketing}}
spec:
  account: local
  enabled: true
{body}"#,
            out = out.display()
        ),
    )
    .unwrap();
    dir
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-04-01T06:00:00Z").unwrap().with_timezone(&Utc)
}

fn export(
    manifests: &Path,
    name: &str,
    segment: &str,
    profiles: &str,
    watermark: Option<DateTime<Utc>>,
) -> Result<RunReport, outflow::export::ExportError> {
    let set = ManifestSet::read(&[manifests.to_path_buf()]).unwrap();
    let df = &set.dataflow("marketing", name).unwrap().object;
    let checked = dataflow_check(&set, df, now()).unwrap_or_else(|p| panic!("{p:?}"));
    let account = &set.account("marketing", "local").unwrap().object;
    let destination = &set.destination("local-files").unwrap().object;
    let plan = ExportPlan::new(df, &checked, account, destination, segment, watermark, now())?;
    let connector = FileConnector::new(account.spec.parameters["path"].clone());
    run_export(&plan, profiles, &connector, &NoProgress)
}

const FOUR_FIELDS: &str = r#"  segments:
    - id: seg-1
      schedule: {daily: {at: "06:00"}}
    - id: seg-2
      exportMode: Incremental
      schedule: {daily: {at: "06:00"}}
  fields:
    - {source: profile_id, target: profile_id}
    - {source: personalEmail.address, target: email, transforms: [Trim, Lowercase]}
    - {source: person.name.firstName, target: first_name}
    - {source: segmentMembership.status, target: status}
"#;

fn status_of<'a>(p: &'a Value, segment: &str) -> (Option<&'a str>, Option<DateTime<Utc>>) {
    let m = &p["segmentMembership"][segment];
    let time = m["lastQualificationTime"].as_str().map(|t| DateTime::parse_from_rfc3339(t).unwrap().to_utc());
    (m["status"].as_str(), time)
}

fn consented(p: &Value) -> bool {
    p["consents"]["marketing"]["email"]["val"].as_str() == Some("y")
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[test]
fn full_and_incremental_exports_count_like_an_independent_reading() {
    let store = Store::new();
    let profiles = store.json_profiles();
    assert_eq!(profiles.len() as u64, COUNT);
    let out = store.path("out");
    let m = manifests(store.dir.path(), "four", &out, FOUR_FIELDS);

    // Full: current members (realized, existing) that consented.
    let members: Vec<&Value> =
        profiles.iter().filter(|p| matches!(status_of(p, "seg-1").0, Some("realized" | "existing"))).collect();
    let expected = members.iter().filter(|p| consented(p)).count() as u64;
    let report = export(&m, "four", "seg-1", &store.profiles(), None).unwrap();
    assert_eq!(report.profiles_read, COUNT);
    assert_eq!(report.exported, expected);
    assert_eq!(report.excluded_consent, members.len() as u64 - expected);
    assert_eq!((report.excluded_mandatory, report.excluded_duplicate, report.failed), (0, 0, 0));
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].name, "Local_files_seg-1_20260401_060000.csv");
    assert_eq!(report.files[0].rows, expected);
    let csv = std::fs::read_to_string(out.join(&report.files[0].name)).unwrap();
    assert_eq!(csv.lines().next(), Some("profile_id,email,first_name,status"));
    assert_eq!(csv.lines().count() as u64, expected + 1);
    assert_eq!(report.files[0].bytes, csv.len() as u64);
    assert!(!csv.contains("exited"));
    assert!(
        !csv.contains('@')
            || csv.lines().skip(1).all(|l| l.split(',').nth(1).unwrap() == l.split(',').nth(1).unwrap().to_lowercase())
    );

    // The NDJSON copy of the store gives the very same file.
    let out2 = store.path("out-ndjson");
    let m2 = manifests(store.dir.path(), "four", &out2, FOUR_FIELDS);
    let from_ndjson = export(&m2, "four", "seg-1", &store.path("ndjson").display().to_string(), None).unwrap();
    assert_eq!(from_ndjson.exported, report.exported);
    assert_eq!(std::fs::read_to_string(out2.join(&from_ndjson.files[0].name)).unwrap(), csv);

    // Incremental, first run: a full run of current members; its watermark is the latest
    // qualification time among them.
    let first = export(&m, "four", "seg-2", &store.profiles(), None).unwrap();
    let seg2_members: Vec<&Value> =
        profiles.iter().filter(|p| matches!(status_of(p, "seg-2").0, Some("realized" | "existing"))).collect();
    assert_eq!(first.exported, seg2_members.iter().filter(|p| consented(p)).count() as u64);
    let latest = seg2_members.iter().filter_map(|p| status_of(p, "seg-2").1).max().unwrap();
    assert_eq!(first.watermark.as_deref(), Some(latest.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true).as_str()));

    // Incremental with a watermark: changes after it, exits included.
    let watermark = DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z").unwrap().to_utc();
    let changed: Vec<&Value> = profiles
        .iter()
        .filter(|p| {
            let (status, time) = status_of(p, "seg-2");
            status.is_some() && time.is_some_and(|t| t > watermark)
        })
        .collect();
    let exited = changed.iter().filter(|p| consented(p) && status_of(p, "seg-2").0 == Some("exited")).count();
    assert!(exited > 0);
    let incremental = export(&m, "four", "seg-2", &store.profiles(), Some(watermark)).unwrap();
    assert_eq!(incremental.exported, changed.iter().filter(|p| consented(p)).count() as u64);
    assert_eq!(incremental.excluded_consent, changed.iter().filter(|p| !consented(p)).count() as u64);
    assert!(incremental.exported < first.exported);
    let text = std::fs::read_to_string(out.join(&incremental.files[0].name)).unwrap();
    assert_eq!(text.lines().filter(|l| l.ends_with(",exited")).count(), exited);
}

#[test]
fn mandatory_fields_dedup_and_parts_are_counted() {
    let store = Store::new();
    let profiles = store.json_profiles();
    let out = store.path("out");
    let body = r#"  segments:
    - id: seg-3
      schedule: {daily: {at: "06:00"}}
  fields:
    - {source: identityMap.email, target: email}
    - {source: mobilePhone.number, target: phone, transforms: [SHA256]}
    - {source: segmentMembership.lastQualificationTime, target: qualified}
  mandatoryFields: [phone]
  deduplication: {identity: email}
  output:
    format: JSONLines
    compression: Gzip
    maxRowsPerFile: 1000
    fileNameTemplate: "%SEGMENT_ID%_%TIMESTAMP%"
"#;
    let m = manifests(store.dir.path(), "dedup", &out, body);
    let report = export(&m, "dedup", "seg-3", &store.profiles(), None).unwrap();

    let mut seen = std::collections::HashSet::new();
    let (mut exported, mut mandatory, mut duplicates) = (0u64, 0u64, 0u64);
    for p in &profiles {
        if !matches!(status_of(p, "seg-3").0, Some("realized" | "existing")) || !consented(p) {
            continue;
        }
        if p["mobilePhone"]["number"].as_str().is_none() {
            mandatory += 1;
            continue;
        }
        let entries = p["identityMap"]["email"].as_array();
        let email =
            entries.and_then(|e| e.iter().find(|x| x["primary"] == true).or(e.first()).and_then(|x| x["id"].as_str()));
        if let Some(email) = email
            && !seen.insert(email.trim().to_lowercase())
        {
            duplicates += 1;
            continue;
        }
        exported += 1;
    }
    assert!(duplicates > 0 && mandatory > 0);
    assert_eq!(
        (report.exported, report.excluded_mandatory, report.excluded_duplicate),
        (exported, mandatory, duplicates)
    );
    assert_eq!(report.files.len() as u64, exported.div_ceil(1000));
    assert_eq!(report.files.iter().map(|f| f.rows).sum::<u64>(), exported);
    assert_eq!(report.files[0].name, "seg-3_1775023200.json.gz");
    assert_eq!(report.files[1].name, "seg-3_1775023200_part-00001.json.gz");
    assert_eq!(files_in(&out), report.files.iter().map(|f| f.name.clone()).collect::<Vec<_>>().tap_sort());

    // Each part is valid gzip of JSON lines; hashed phones are 64 hex; times are RFC 3339.
    let bytes = std::fs::read(out.join(&report.files[1].name)).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text).unwrap();
    assert_eq!(text.lines().count(), 1000);
    let row: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(row["phone"].as_str().unwrap().len(), 64);
    assert!(DateTime::parse_from_rfc3339(row["qualified"].as_str().unwrap()).is_ok());
    assert!(row["email"].as_str().unwrap().contains('@'));
}

trait TapSort {
    fn tap_sort(self) -> Self;
}

impl TapSort for Vec<String> {
    fn tap_sort(mut self) -> Self {
        self.sort();
        self
    }
}

#[test]
fn a_run_that_fails_midway_publishes_nothing() {
    let store = Store::new();
    let broken = store.path("broken");
    std::fs::create_dir_all(&broken).unwrap();
    for f in ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"] {
        std::fs::copy(store.path("profiles").join(f), broken.join(f)).unwrap();
    }
    std::fs::write(broken.join("part-00001.parquet"), b"PAR1 this is not parquet PAR1").unwrap();
    let out = store.path("out");
    let body = FOUR_FIELDS.replace("  fields:", "  output: {format: CSV, maxRowsPerFile: 100}\n  fields:");
    let m = manifests(store.dir.path(), "atomic", &out, &body);
    let err = export(&m, "atomic", "seg-1", &broken.display().to_string(), None).unwrap_err().to_string();
    assert!(err.contains("part-00001.parquet"), "{err}");
    // Parts of the first file were encoded, but none was published, and no temporary is left.
    assert_eq!(files_in(&out), Vec::<String>::new());
}

// ---- DuckDB ---------------------------------------------------------------------------------

const DUCKDB_SCRIPT: &str = r#"
import sys, json, duckdb
con = duckdb.connect()
def rows(sql):
    return [[None if v is None else str(v) for v in r] for r in con.execute(sql).fetchall()]
print(json.dumps({"expected": rows(sys.argv[1]), "actual": rows(sys.argv[2])}))
"#;

type Rows = Vec<Vec<Option<String>>>;

fn duckdb(expected_sql: &str, actual_sql: &str) -> (Rows, Rows) {
    let out = Command::new("python3").args(["-c", DUCKDB_SCRIPT, expected_sql, actual_sql]).output().unwrap();
    assert!(out.status.success(), "duckdb failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let parse = |v: &Value| -> Rows {
        let mut rows: Rows = serde_json::from_value(v.clone()).unwrap();
        rows.sort();
        rows
    };
    (parse(&v["expected"]), parse(&v["actual"]))
}

fn assert_same_rows(expected: Rows, actual: Rows) {
    assert!(!expected.is_empty());
    assert_eq!(expected.len(), actual.len(), "row counts differ");
    for (e, a) in expected.iter().zip(&actual) {
        assert_eq!(e, a);
    }
}

#[test]
fn outflow_files_hold_the_rows_duckdb_selects() {
    if !duckdb::available() {
        return;
    }
    let store = Store::new();
    let source = format!("read_parquet('{}/*.parquet')", store.profiles());
    let members = |seg: &str| {
        format!(
            "(SELECT *, map_extract_value(segmentMembership, '{seg}') AS m FROM {source}) \
             WHERE m.status IN ('realized', 'existing') AND consents.marketing.email.val = 'y'"
        )
    };

    // 1. Four fields to CSV with the consent filter.
    let out = store.path("csv");
    let m = manifests(store.dir.path(), "four", &out, FOUR_FIELDS);
    let report = export(&m, "four", "seg-1", &store.profiles(), None).unwrap();
    let (expected, actual) = duckdb(
        &format!(
            "SELECT profile_id, lower(trim(personalEmail.address)), person.name.firstName, m.status FROM {}",
            members("seg-1")
        ),
        &format!(
            "SELECT * FROM read_csv('{}', header = true, all_varchar = true)",
            out.join(&report.files[0].name).display()
        ),
    );
    assert_eq!(expected.len() as u64, report.exported);
    assert_same_rows(expected, actual);

    // 2. The same with SHA-256 of the emails (normalized first).
    let out = store.path("sha");
    let body = FOUR_FIELDS.replace("transforms: [Trim, Lowercase]", "transforms: [SHA256]");
    let m = manifests(store.dir.path(), "sha", &out, &body);
    let report = export(&m, "sha", "seg-1", &store.profiles(), None).unwrap();
    let (expected, actual) = duckdb(
        &format!(
            "SELECT profile_id, sha256(lower(trim(personalEmail.address))), person.name.firstName, m.status FROM {}",
            members("seg-1")
        ),
        &format!(
            "SELECT * FROM read_csv('{}', header = true, all_varchar = true)",
            out.join(&report.files[0].name).display()
        ),
    );
    assert_same_rows(expected, actual);

    // 4. An incremental export: members whose qualification changed after the watermark, exits
    //    included (with their status, so the platform removes them).
    let out = store.path("incremental");
    let m = manifests(store.dir.path(), "inc", &out, FOUR_FIELDS);
    let watermark = DateTime::parse_from_rfc3339("2026-02-15T00:00:00Z").unwrap().with_timezone(&Utc);
    let report = export(&m, "inc", "seg-2", &store.profiles(), Some(watermark)).unwrap();
    let (expected, actual) = duckdb(
        &format!(
            "SELECT profile_id, lower(trim(personalEmail.address)), person.name.firstName, m.status \
             FROM (SELECT *, map_extract_value(segmentMembership, 'seg-2') AS m FROM {source}) \
             WHERE m.lastQualificationTime > TIMESTAMPTZ '2026-02-15 00:00:00+00' AND consents.marketing.email.val = 'y'"
        ),
        &format!(
            "SELECT * FROM read_csv('{}', header = true, all_varchar = true)",
            out.join(&report.files[0].name).display()
        ),
    );
    assert!(expected.iter().any(|row| row.contains(&Some("exited".to_string()))), "the incremental plan sends exits");
    assert_eq!(expected.len() as u64, report.exported);
    assert_same_rows(expected, actual);

    // 3. Parquet output (gzip inside), several parts.
    let out = store.path("parquet");
    let body = FOUR_FIELDS
        .replace("  fields:", "  output: {format: Parquet, compression: Gzip, maxRowsPerFile: 2000}\n  fields:");
    let m = manifests(store.dir.path(), "pq", &out, &body);
    let report = export(&m, "pq", "seg-4", &store.profiles(), None).unwrap_err();
    assert!(report.to_string().contains("no segment 'seg-4'"), "{report}");
    let report = export(&m, "pq", "seg-1", &store.profiles(), None).unwrap();
    assert!(report.files.len() > 1);
    let (expected, actual) = duckdb(
        &format!(
            "SELECT profile_id, lower(trim(personalEmail.address)), person.name.firstName, m.status FROM {}",
            members("seg-1")
        ),
        &format!("SELECT profile_id, email, first_name, status FROM read_parquet('{}/*.parquet')", out.display()),
    );
    assert_same_rows(expected, actual);
}

// ---- The commands ---------------------------------------------------------------------------

#[test]
fn the_commands_generate_export_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_outflow");
    let profiles = dir.path().join("profiles");
    let status = Command::new(bin)
        .args(["sample-profiles", "--count", "3000", "--seed", "1", "--out"])
        .arg(&profiles)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(files_in(&profiles), vec!["part-00000.parquet"]);

    let out = dir.path().join("out");
    let m = manifests(dir.path(), "four", &out, FOUR_FIELDS);
    let report_path = dir.path().join("report.json");
    let output = Command::new(bin)
        .args(["export", "-f"])
        .arg(&m)
        .args(["--dataflow", "marketing/four", "--segment", "seg-1", "--now", "2026-04-01T06:00:00Z", "--profiles"])
        .arg(&profiles)
        .arg("--out-report")
        .arg(&report_path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["profilesRead"], 3000);
    assert!(report["exported"].as_u64().unwrap() > 0);
    assert_eq!(report["files"][0]["name"], "Local_files_seg-1_20260401_060000.csv");
    assert!(report["watermark"].is_string());

    // A Dataflow that is not there is named, with what is there; the exit code says it failed.
    let output = Command::new(bin)
        .args(["export", "-f"])
        .arg(&m)
        .args(["--dataflow", "marketing/nope", "--profiles"])
        .arg(&profiles)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Dataflow 'marketing/nope' not found") && stderr.contains("marketing/four"), "{stderr}");
}

#[test]
fn a_column_of_the_wrong_type_is_named_with_its_file() {
    use std::sync::Arc;

    use arrow::array::{RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("profile_id", DataType::Utf8, true),
        Field::new("segmentMembership", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(vec!["p1"])), Arc::new(StringArray::from(vec!["seg-1"]))],
    )
    .unwrap();
    let file = std::fs::File::create(profiles.join("part-00000.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let out = dir.path().join("out");
    let m = manifests(dir.path(), "four", &out, FOUR_FIELDS);
    let err = export(&m, "four", "seg-1", &profiles.display().to_string(), None).unwrap_err().to_string();
    assert!(
        err.contains("part-00000.parquet") && err.contains("segmentMembership") && err.contains("expected a map"),
        "{err}"
    );
    assert_eq!(files_in(&out), Vec::<String>::new());
}

#[test]
fn only_the_leaf_columns_the_plan_needs_are_read() {
    use arrow::array::AsArray;

    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    write_sample(&profiles, &SampleSpec { count: 100, ..SampleSpec::default() }).unwrap();
    let out = dir.path().join("out");
    let m = manifests(dir.path(), "four", &out, FOUR_FIELDS);
    let set = ManifestSet::read(&[m]).unwrap();
    let df = &set.dataflow("marketing", "four").unwrap().object;
    let checked = dataflow_check(&set, df, now()).unwrap();
    let account = &set.account("marketing", "local").unwrap().object;
    let destination = &set.destination("local-files").unwrap().object;
    let plan = ExportPlan::new(df, &checked, account, destination, "seg-1", None, now()).unwrap();
    let mut source = outflow::export::source::ProfileSource::open(&profiles.display().to_string(), &plan).unwrap();
    assert_eq!(source.total_rows(), Some(100));
    let (batch, _) = source.next_batch().unwrap().unwrap();
    let schema = batch.schema();
    let roots: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(roots, vec!["profile_id", "person", "personalEmail", "consents", "segmentMembership"]);
    let name = batch.column_by_name("person").unwrap().as_struct().column_by_name("name").unwrap().as_struct().clone();
    assert_eq!(name.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), vec!["firstName"]);
}

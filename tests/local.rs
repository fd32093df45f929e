//! Local mode over the quickstart: a full export, then an incremental one with only what changed,
//! then nothing when nothing is due; state kept in the state folder between invocations.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Utc};
use outflow::export::record::{ConsentValue, Consents, EmailAddress, MarketingConsents, Membership, Profile, to_batch};
use parquet::arrow::ArrowWriter;

fn run(cwd: &Path, profiles: &Path, state: &Path, now: &str) -> (bool, String, String) {
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let out = Command::new(env!("CARGO_BIN_EXE_outflow"))
        .args(["run", "-f", quickstart.to_str().unwrap(), "--once", "--now", now])
        .args(["--state", state.to_str().unwrap(), "--profiles", profiles.to_str().unwrap()])
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn exported_files(cwd: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cwd.join(".outflow/exports"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Profiles that joined (or left) segment seg-0 long after the quickstart snapshot was taken.
fn late_changes(count: usize) -> Vec<Profile> {
    let at: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().unwrap();
    (0..count)
        .map(|i| Profile {
            profile_id: Some(format!("late{i:04}")),
            personal_email: Some(EmailAddress { address: Some(format!("  Late{i}@Example.com ")) }),
            consents: Some(Consents {
                marketing: Some(MarketingConsents { email: Some(ConsentValue { val: Some("y".into()) }) }),
            }),
            segment_membership: Some(BTreeMap::from([(
                "seg-0".to_string(),
                Membership {
                    status: Some(if i % 5 == 0 { "exited" } else { "realized" }.into()),
                    last_qualification_time: Some(at),
                },
            )])),
            ..Default::default()
        })
        .collect()
}

#[test]
fn full_then_incremental_then_nothing_due() {
    let work = tempfile::tempdir().unwrap();
    let (cwd, profiles, state) = (work.path(), work.path().join("profiles"), work.path().join("state"));
    std::fs::create_dir_all(&profiles).unwrap();
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/profiles/part-00000.parquet");
    std::fs::copy(&snapshot, profiles.join("part-00000.parquet")).unwrap();

    // First invocation: the whole segment, at once.
    let (ok, stdout, stderr) = run(cwd, &profiles, &state, "2026-11-28T10:30:00Z");
    assert!(ok, "{stderr}");
    let files = exported_files(cwd);
    assert_eq!(files, vec!["seg-0_20261128_103000.csv"], "{stdout}");
    let first = std::fs::read_to_string(cwd.join(".outflow/exports").join(&files[0])).unwrap();
    let full_rows = first.lines().count() - 1;
    assert!(full_rows > 100, "a full export of seg-0: {full_rows} rows");
    assert!(stdout.contains(&format!("exported {full_rows} of 3000 profiles read")), "{stdout}");
    assert!(
        stdout.contains("NEXT RUN") && stdout.contains("2026-11-28T11:00:00Z"),
        "the table shows the next run:\n{stdout}"
    );

    // The store changes: 50 profiles qualify (10 of them exit) after the first run's watermark.
    let batch = to_batch(&late_changes(50)).unwrap();
    let file = std::fs::File::create(profiles.join("part-00001.parquet")).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    // Second invocation, after the 11:00 run is due: only the changes, exits included.
    let (ok, _, stderr) = run(cwd, &profiles, &state, "2026-11-28T11:00:05Z");
    assert!(ok, "{stderr}");
    let files = exported_files(cwd);
    assert_eq!(files.len(), 2, "{files:?}");
    let second = std::fs::read_to_string(cwd.join(".outflow/exports/seg-0_20261128_110000.csv")).unwrap();
    let rows: Vec<&str> = second.lines().skip(1).collect();
    assert_eq!(rows.len(), 50, "only the changed profiles:\n{second}");
    assert!(rows.iter().all(|r| r.starts_with("late")), "{second}");
    assert_eq!(
        rows.iter().filter(|r| r.ends_with(",exited")).count(),
        10,
        "exits are sent so the platform removes them"
    );
    assert!(rows.contains(&"late0001,late1@example.com,,,realized"), "trimmed and lower-cased:\n{second}");

    // Third invocation, same hour: nothing is due, nothing is written.
    let (ok, stdout, _) = run(cwd, &profiles, &state, "2026-11-28T11:20:00Z");
    assert!(ok);
    assert_eq!(exported_files(cwd).len(), 2, "{stdout}");

    // The state folder holds the history, newest first, and the watermark.
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("quickstart/newsletter.json")).unwrap()).unwrap();
    let history = status["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!((history[0]["result"].as_str(), history[0]["exported"].as_u64()), (Some("Succeeded"), Some(50)));
    assert_eq!(history[1]["exported"].as_u64(), Some(full_rows as u64));
    assert_eq!(status["segments"][0]["watermark"], "2026-06-01T12:00:00Z");
}

#[test]
fn an_invalid_dataflow_is_reported_and_nothing_runs() {
    let work = tempfile::tempdir().unwrap();
    let manifests = work.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let quickstart =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/quickstart.yaml"))
            .unwrap();
    std::fs::write(manifests.join("q.yaml"), quickstart.replace("account: local-folder", "account: nowhere")).unwrap();
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/profiles");
    let out = Command::new(env!("CARGO_BIN_EXE_outflow"))
        .args(["run", "-f", manifests.to_str().unwrap(), "--once", "--state"])
        .arg(work.path().join("state"))
        .args(["--profiles", profiles.to_str().unwrap()])
        .current_dir(work.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("Dataflow quickstart/newsletter is not ready (AccountNotFound)"), "{stderr}");
    assert!(!work.path().join(".outflow/exports").exists());
}

//! The offline commands as a user runs them: `catalog -f` and `validate -f`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn outflow(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_outflow"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn catalog_lists_every_shipped_destination() {
    let (ok, stdout, stderr) = outflow(&["catalog", "-f", "manifests/catalog"]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME")
            && lines[0].contains("CATEGORY")
            && lines[0].contains("EXPORT TYPE")
            && lines[0].contains("CONNECTOR")
    );
    assert_eq!(lines.len(), 15, "14 destinations and a header:\n{stdout}");
    for (name, category, export, connector) in [
        ("amazon-s3", "CloudStorage", "Profile", "S3"),
        ("meta-custom-audiences", "Advertising", "Segment", "HTTP"),
        ("salesforce-marketing-cloud", "EmailMarketing", "Profile", "SFTP"),
        ("kafka", "Streaming", "Segment", "Kafka"),
    ] {
        let row = lines.iter().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} listed"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[1..4], &[category, export, connector], "{row}");
    }
}

#[test]
fn the_shipped_catalog_and_examples_validate() {
    let (ok, stdout, stderr) = outflow(&["validate", "-f", "manifests/catalog", "-f", "examples"]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("ok: 15 Destination(s), 4 Account(s), 4 Dataflow(s), 3 Secret(s)"), "{stdout}");
}

/// Copies the examples into a temp folder, applies `edit` to one file, and validates it with the
/// catalog.
fn validate_edited(file: &str, edit: impl Fn(String) -> String) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"), dir.path());
    let target = dir.path().join(file);
    let text = std::fs::read_to_string(&target).unwrap();
    let edited = edit(text.clone());
    assert_ne!(text, edited, "the edit of {file} changed nothing");
    std::fs::write(&target, edited).unwrap();
    let (ok, _, stderr) = outflow(&["validate", "-f", "manifests/catalog", "-f", dir.path().to_str().unwrap()]);
    (ok, stderr)
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let dest: PathBuf = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

#[test]
fn validate_rejects_broken_manifests_naming_file_and_field() {
    type Edit = Box<dyn Fn(String) -> String>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "s3/dataflow.yaml",
            Box::new(|t| t.replace("account: s3-exports", "account: s3-exprots")),
            "spec.account: Account 's3-exprots' does not exist",
        ),
        (
            "s3/dataflow.yaml",
            Box::new(|t| t.replace("person.name.firstName", "person.name.frstName")),
            "unknown profile field 'person.name.frstName'",
        ),
        (
            "s3/dataflow.yaml",
            Box::new(|t| t.replace("timeZone: Europe/Paris", "timeZone: Europe/Paris\n        cron: \"0 6 * * *\"")),
            "exactly one of once, interval, daily, weekly or cron",
        ),
        (
            "s3/dataflow.yaml",
            Box::new(|t| t.replace("at: \"06:00\"", "at: \"6am\"")),
            "spec.segments[0].schedule.daily.at",
        ),
        (
            "s3/dataflow.yaml",
            Box::new(|t| t.replace("format: CSV", "format: XML")),
            "spec.output.format: Unsupported value: \"XML\"",
        ),
        (
            "s3/dataflow.yaml",
            Box::new(|t| t.replace("  mandatoryFields:", "  colour: blue\n  mandatoryFields:")),
            "spec.colour: unknown field",
        ),
        (
            "s3/secret.yaml",
            Box::new(|t| t.replace("secretAccessKey", "secretKey")),
            "Secret 's3-exports-credentials' has no key 'secretAccessKey'",
        ),
        (
            "meta/dataflow.yaml",
            Box::new(|t| t.replacen("transforms: [SHA256]", "transforms: []", 1)),
            "requires 'email' hashed with SHA256",
        ),
        (
            "sftp/account.yaml",
            Box::new(|t| t.replace("destination: sftp", "destination: ftp")),
            "Destination 'ftp' does not exist",
        ),
    ];
    for (file, edit, expected) in cases {
        let (ok, stderr) = validate_edited(file, edit);
        assert!(!ok, "{file}: accepted, expected '{expected}'");
        assert!(stderr.contains(expected), "{file}: expected '{expected}' in:\n{stderr}");
        // The finding is reported on the resource at fault: for a Secret missing a key, the Account.
        let reported = if file == "s3/secret.yaml" { "s3/account.yaml, document 1" } else { file };
        assert!(stderr.contains(reported), "{file}: the message names {reported}:\n{stderr}");
    }
}

//! Connectors against real servers started by `scripts/test-servers.sh`: what Outflow publishes is
//! read back with an independent client (boto3 for S3) and compared byte for byte with the same
//! export to a local folder; a failed run leaves no object; errors never carry a secret value.

use std::path::Path;
use std::process::Command;

const SECRET: &str = "outflow-test-secret-value-9d41";

/// The S3 endpoint, or `None` (after saying why) outside CI; under CI a missing server fails.
fn s3_endpoint() -> Option<String> {
    match std::env::var("OUTFLOW_TEST_S3_ENDPOINT") {
        Ok(e) => Some(e),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!(
                "OUTFLOW_TEST_S3_ENDPOINT is not set: start the servers with `scripts/test-servers.sh start` and `eval \"$(scripts/test-servers.sh env)\"`"
            )
        }
        Err(_) => {
            eprintln!(
                "SKIPPED (no S3 server): run `scripts/test-servers.sh start` and `eval \"$(scripts/test-servers.sh env)\"`"
            );
            None
        }
    }
}

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3").arg("-c").arg(script).args(args).output().expect("python3");
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const BOTO: &str = "import boto3, sys\ns3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='k', aws_secret_access_key='s', region_name='us-east-1')\n";

fn outflow(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_outflow")).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn manifests(dir: &Path, endpoint: &str, bucket: &str, local: &Path) {
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/catalog");
    for entry in ["amazon-s3.yaml", "local-file.yaml"] {
        std::fs::copy(catalog.join(entry), dir.join(entry)).unwrap();
    }
    let dataflow = |name: &str, account: &str| {
        format!(
            r#"---
apiVersion: outflow.dev/v1alpha1
kind: Dataflow
metadata: {{name: {name}, namespace: t}}
spec:
  account: {account}
  enabled: true
  segments:
    - id: seg-1
      schedule: {{daily: {{at: "06:00"}}}}
  fields:
    - {{source: profile_id, target: profile_id}}
    - {{source: personalEmail.address, target: email, transforms: [Trim, Lowercase]}}
    - {{source: homeAddress.country, target: country}}
  output: {{format: CSV, compression: Gzip, fileNameTemplate: "{name}"}}
"#
        )
    };
    let text = format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: s3-creds, namespace: t}}
stringData: {{accessKeyId: {SECRET}, secretAccessKey: {SECRET}}}
---
apiVersion: outflow.dev/v1alpha1
kind: Account
metadata: {{name: s3, namespace: t}}
spec:
  destination: amazon-s3
  parameters: {{bucket: {bucket}, endpoint: "{endpoint}", prefix: exports, region: us-east-1}}
  credentialsSecretRef: {{name: s3-creds}}
---
apiVersion: outflow.dev/v1alpha1
kind: Account
metadata: {{name: missing, namespace: t}}
spec:
  destination: amazon-s3
  parameters: {{bucket: no-such-bucket, endpoint: "{endpoint}"}}
  credentialsSecretRef: {{name: s3-creds}}
---
apiVersion: outflow.dev/v1alpha1
kind: Account
metadata: {{name: disk, namespace: t}}
spec:
  destination: local-file
  parameters: {{path: "{}"}}
{}{}{}"#,
        local.display(),
        dataflow("to-s3", "s3"),
        dataflow("to-disk", "disk"),
        dataflow("to-nowhere", "missing"),
    );
    std::fs::write(dir.join("flows.yaml"), text).unwrap();
}

#[test]
fn s3_exports_match_the_local_file_byte_for_byte_and_fail_atomically() {
    let Some(endpoint) = s3_endpoint() else { return };
    let work = tempfile::tempdir().unwrap();
    let bucket = format!("outflow-{}", std::process::id());
    python(&format!("{BOTO}s3.create_bucket(Bucket=sys.argv[2])"), &[&endpoint, &bucket]);
    let (manifest_dir, local, profiles) =
        (work.path().join("m"), work.path().join("local"), work.path().join("profiles"));
    std::fs::create_dir_all(&manifest_dir).unwrap();
    std::fs::create_dir_all(&local).unwrap();
    manifests(&manifest_dir, &endpoint, &bucket, &local);
    let (ok, out) =
        outflow(&["sample-profiles", "--count", "5000", "--out", profiles.to_str().unwrap(), "--seed", "3"]);
    assert!(ok, "{out}");
    let m = manifest_dir.to_str().unwrap();
    let p = profiles.to_str().unwrap();

    let (ok, out) = outflow(&["export", "-f", m, "--dataflow", "t/to-s3", "--profiles", p]);
    assert!(ok, "{out}");
    assert!(!out.contains(SECRET), "no secret in the output:\n{out}");
    let (ok, out) = outflow(&["export", "-f", m, "--dataflow", "t/to-disk", "--profiles", p]);
    assert!(ok, "{out}");

    // Read back with boto3, an independent client.
    let listed = python(
        &format!(
            "{BOTO}print('\\n'.join(o['Key'] for o in s3.list_objects_v2(Bucket=sys.argv[2]).get('Contents', [])))"
        ),
        &[&endpoint, &bucket],
    );
    assert_eq!(listed.trim(), "exports/to-s3.csv.gz");
    let downloaded = work.path().join("downloaded.csv.gz");
    python(
        &format!("{BOTO}s3.download_file(sys.argv[2], 'exports/to-s3.csv.gz', sys.argv[3])"),
        &[&endpoint, &bucket, downloaded.to_str().unwrap()],
    );
    let gunzip = |path: &Path| {
        let out = Command::new("gzip").arg("-dc").arg(path).output().unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let from_s3 = gunzip(&downloaded);
    let from_disk = gunzip(&local.join("to-disk.csv.gz"));
    assert!(from_s3.len() > 10_000, "{} bytes", from_s3.len());
    assert_eq!(from_s3, from_disk, "S3 holds exactly what the local export wrote");

    // A run that fails half way (a corrupt second Parquet file) publishes nothing.
    std::fs::write(profiles.join("part-00001.parquet"), b"PAR1 this is not parquet").unwrap();
    let (ok, out) = outflow(&["export", "-f", m, "--dataflow", "t/to-s3", "--profiles", p]);
    assert!(!ok && out.contains("part-00001.parquet"), "{out}");
    python(&format!("{BOTO}s3.delete_object(Bucket=sys.argv[2], Key='exports/to-s3.csv.gz')"), &[&endpoint, &bucket]);
    let (ok, _) = outflow(&["export", "-f", m, "--dataflow", "t/to-s3", "--profiles", p]);
    assert!(!ok);
    let listed = python(
        &format!("{BOTO}print(len(s3.list_objects_v2(Bucket=sys.argv[2]).get('Contents', [])))"),
        &[&endpoint, &bucket],
    );
    assert_eq!(listed.trim(), "0", "no object under the final name after a failed run");
    let uploads = python(
        &format!("{BOTO}print(len(s3.list_multipart_uploads(Bucket=sys.argv[2]).get('Uploads', [])))"),
        &[&endpoint, &bucket],
    );
    assert_eq!(uploads.trim(), "0", "the failed run's multipart upload was aborted");

    // An unreachable bucket is named in the error, with no secret value in it.
    std::fs::remove_file(profiles.join("part-00001.parquet")).unwrap();
    let (ok, out) = outflow(&["export", "-f", m, "--dataflow", "t/to-nowhere", "--profiles", p]);
    assert!(!ok);
    assert!(out.contains("connector S3") && out.contains("no-such-bucket"), "{out}");
    assert!(!out.contains(SECRET), "{out}");
}

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

/// Azurite's well-known development account key (public, documented by Microsoft).
const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

const AZURE: &str = "import sys\nfrom azure.storage.blob import BlobServiceClient\nsvc = BlobServiceClient(account_url=sys.argv[1], credential={'account_name': 'devstoreaccount1', 'account_key': sys.argv[2]})\n";

#[test]
fn azure_blob_exports_match_the_local_file_byte_for_byte_and_fail_atomically() {
    let endpoint = match std::env::var("OUTFLOW_TEST_AZURITE_ENDPOINT") {
        Ok(e) => e,
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("OUTFLOW_TEST_AZURITE_ENDPOINT is not set: run `scripts/test-servers.sh start`")
        }
        Err(_) => {
            eprintln!(
                "SKIPPED (no Azurite): run `scripts/test-servers.sh start` and `eval \"$(scripts/test-servers.sh env)\"`"
            );
            return;
        }
    };
    let work = tempfile::tempdir().unwrap();
    let container = format!("outflow-{}", std::process::id());
    python(&format!("{AZURE}svc.create_container(sys.argv[3])"), &[&endpoint, AZURITE_KEY, &container]);
    let (m, local, profiles) = (work.path().join("m"), work.path().join("local"), work.path().join("profiles"));
    std::fs::create_dir_all(&m).unwrap();
    std::fs::create_dir_all(&local).unwrap();
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/catalog");
    for entry in ["azure-blob-storage.yaml", "local-file.yaml"] {
        std::fs::copy(catalog.join(entry), m.join(entry)).unwrap();
    }
    let flow = |name: &str, account: &str| {
        format!(
            "---\napiVersion: outflow.dev/v1alpha1\nkind: Dataflow\nmetadata: {{name: {name}, namespace: t}}\nspec:\n  account: {account}\n  enabled: true\n  segments: [{{id: seg-2, schedule: {{daily: {{at: \"06:00\"}}}}}}]\n  fields: [{{source: profile_id, target: id}}, {{source: identityMap.email, target: email_sha256, transforms: [SHA256]}}]\n  output: {{format: JSONLines, fileNameTemplate: \"{name}\"}}\n"
        )
    };
    std::fs::write(
        m.join("flows.yaml"),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: az, namespace: t}}\nstringData: {{accountKey: \"{AZURITE_KEY}\"}}\n---\napiVersion: outflow.dev/v1alpha1\nkind: Account\nmetadata: {{name: az, namespace: t}}\nspec:\n  destination: azure-blob-storage\n  parameters: {{account: devstoreaccount1, container: {container}, endpoint: \"{endpoint}\", prefix: out}}\n  credentialsSecretRef: {{name: az}}\n---\napiVersion: outflow.dev/v1alpha1\nkind: Account\nmetadata: {{name: disk, namespace: t}}\nspec:\n  destination: local-file\n  parameters: {{path: \"{}\"}}\n{}{}",
            local.display(),
            flow("to-az", "az"),
            flow("to-disk", "disk")
        ),
    )
    .unwrap();
    let (ok, out) =
        outflow(&["sample-profiles", "--count", "4000", "--out", profiles.to_str().unwrap(), "--seed", "5"]);
    assert!(ok, "{out}");
    let (mp, pp) = (m.to_str().unwrap(), profiles.to_str().unwrap());
    for flow in ["t/to-az", "t/to-disk"] {
        let (ok, out) = outflow(&["export", "-f", mp, "--dataflow", flow, "--profiles", pp]);
        assert!(ok, "{out}");
        assert!(!out.contains(AZURITE_KEY));
    }
    // Read back with the Azure SDK, an independent client.
    let names = python(
        &format!("{AZURE}print('\\n'.join(b.name for b in svc.get_container_client(sys.argv[3]).list_blobs()))"),
        &[&endpoint, AZURITE_KEY, &container],
    );
    assert_eq!(names.trim(), "out/to-az.json");
    let downloaded = work.path().join("downloaded.json");
    python(
        &format!(
            "{AZURE}open(sys.argv[4], 'wb').write(svc.get_blob_client(sys.argv[3], 'out/to-az.json').download_blob().readall())"
        ),
        &[&endpoint, AZURITE_KEY, &container, downloaded.to_str().unwrap()],
    );
    let from_azure = std::fs::read(&downloaded).unwrap();
    assert!(from_azure.len() > 10_000);
    assert_eq!(
        from_azure,
        std::fs::read(local.join("to-disk.json")).unwrap(),
        "Azure holds exactly what the local export wrote"
    );

    // A failed run publishes no blob.
    python(
        &format!("{AZURE}svc.get_blob_client(sys.argv[3], 'out/to-az.json').delete_blob()"),
        &[&endpoint, AZURITE_KEY, &container],
    );
    std::fs::write(profiles.join("part-00001.parquet"), b"PAR1 broken").unwrap();
    let (ok, _) = outflow(&["export", "-f", mp, "--dataflow", "t/to-az", "--profiles", pp]);
    assert!(!ok);
    let names = python(
        &format!("{AZURE}print(len(list(svc.get_container_client(sys.argv[3]).list_blobs())))"),
        &[&endpoint, AZURITE_KEY, &container],
    );
    assert_eq!(names.trim(), "0", "no blob under the final name after a failed run");
}

/// `sftp` (OpenSSH) in batch mode as the test's independent client.
fn sftp_batch(commands: &str) -> String {
    let key = std::env::var("OUTFLOW_TEST_SFTP_KEY").unwrap();
    let port = std::env::var("OUTFLOW_TEST_SFTP_PORT").unwrap();
    let user = std::env::var("OUTFLOW_TEST_SFTP_USER").unwrap();
    let mut child = Command::new("sftp")
        .args([
            "-q",
            "-i",
            &key,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-P",
            &port,
            "-b",
            "-",
        ])
        .arg(format!("{user}@127.0.0.1"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), commands.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn sftp_exports_match_the_local_file_byte_for_byte_and_fail_atomically() {
    let Ok(dir) = std::env::var("OUTFLOW_TEST_SFTP_DIR") else {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("OUTFLOW_TEST_SFTP_DIR is not set: run `scripts/test-servers.sh start`");
        }
        eprintln!(
            "SKIPPED (no sshd): run `scripts/test-servers.sh start` and `eval \"$(scripts/test-servers.sh env)\"`"
        );
        return;
    };
    let (port, user) =
        (std::env::var("OUTFLOW_TEST_SFTP_PORT").unwrap(), std::env::var("OUTFLOW_TEST_SFTP_USER").unwrap());
    let key = std::fs::read_to_string(std::env::var("OUTFLOW_TEST_SFTP_KEY").unwrap()).unwrap();
    let fingerprint = std::env::var("OUTFLOW_TEST_SFTP_FINGERPRINT").unwrap();
    let target = format!("{dir}/upload/run-{}", std::process::id());
    sftp_batch(&format!("mkdir {target}\n"));
    let work = tempfile::tempdir().unwrap();
    let (m, local, profiles) = (work.path().join("m"), work.path().join("local"), work.path().join("profiles"));
    std::fs::create_dir_all(&m).unwrap();
    std::fs::create_dir_all(&local).unwrap();
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/catalog");
    for entry in ["sftp.yaml", "local-file.yaml"] {
        std::fs::copy(catalog.join(entry), m.join(entry)).unwrap();
    }
    let indented_key: String = key.lines().map(|l| format!("    {l}\n")).collect();
    let flow = |name: &str, account: &str| {
        format!(
            "---\napiVersion: outflow.dev/v1alpha1\nkind: Dataflow\nmetadata: {{name: {name}, namespace: t}}\nspec:\n  account: {account}\n  enabled: true\n  segments: [{{id: seg-3, schedule: {{daily: {{at: \"06:00\"}}}}}}]\n  fields: [{{source: profile_id, target: id}}, {{source: mobilePhone.number, target: phone}}]\n  output: {{format: CSV, fileNameTemplate: \"{name}\"}}\n"
        )
    };
    let account = |name: &str, fp: &str| {
        format!(
            "---\napiVersion: outflow.dev/v1alpha1\nkind: Account\nmetadata: {{name: {name}, namespace: t}}\nspec:\n  destination: sftp\n  parameters: {{host: 127.0.0.1, port: \"{port}\", username: {user}, path: \"{target}\", hostKeyFingerprint: \"{fp}\"}}\n  credentialsSecretRef: {{name: key}}\n"
        )
    };
    std::fs::write(
        m.join("flows.yaml"),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: key, namespace: t}}\nstringData:\n  privateKey: |\n{indented_key}{}{}---\napiVersion: outflow.dev/v1alpha1\nkind: Account\nmetadata: {{name: disk, namespace: t}}\nspec:\n  destination: local-file\n  parameters: {{path: \"{}\"}}\n{}{}{}",
            account("partner", &fingerprint),
            account("impostor", "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            local.display(),
            flow("to-sftp", "partner"),
            flow("to-disk", "disk"),
            flow("to-impostor", "impostor"),
        ),
    )
    .unwrap();
    let (ok, out) =
        outflow(&["sample-profiles", "--count", "3000", "--out", profiles.to_str().unwrap(), "--seed", "9"]);
    assert!(ok, "{out}");
    let (mp, pp) = (m.to_str().unwrap(), profiles.to_str().unwrap());
    for flow in ["t/to-sftp", "t/to-disk"] {
        let (ok, out) = outflow(&["export", "-f", mp, "--dataflow", flow, "--profiles", pp]);
        assert!(ok, "{out}");
    }
    let fetched = work.path().join("fetched.csv");
    let listing = sftp_batch(&format!("ls {target}\nget {target}/to-sftp.csv {}\n", fetched.display()));
    assert!(listing.contains("to-sftp.csv") && !listing.contains(".tmp-"), "{listing}");
    let from_sftp = std::fs::read(&fetched).unwrap();
    assert!(from_sftp.len() > 10_000);
    assert_eq!(
        from_sftp,
        std::fs::read(local.join("to-disk.csv")).unwrap(),
        "the server holds exactly what the local export wrote"
    );

    // A failed run leaves neither the final name nor its temporary file.
    sftp_batch(&format!("rm {target}/to-sftp.csv\n"));
    std::fs::write(profiles.join("part-00001.parquet"), b"PAR1 broken").unwrap();
    let (ok, _) = outflow(&["export", "-f", mp, "--dataflow", "t/to-sftp", "--profiles", pp]);
    assert!(!ok);
    let listing = sftp_batch(&format!("ls -a {target}\n"));
    assert!(!listing.contains("to-sftp.csv"), "{listing}");

    // A server whose host key does not match is refused, and the key never shows.
    std::fs::remove_file(profiles.join("part-00001.parquet")).unwrap();
    let (ok, out) = outflow(&["export", "-f", mp, "--dataflow", "t/to-impostor", "--profiles", pp]);
    assert!(!ok && out.contains("connector SFTP") && out.contains("hostKeyFingerprint"), "{out}");
    assert!(!out.contains(key.lines().nth(1).unwrap()), "{out}");
}

//! Reading Outflow resources (and the Secrets they reference) from YAML files on disk: several
//! documents per file, folders read recursively. Used by the commands that work without a
//! cluster (`validate`, `run`, `export`, `catalog -f`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{Account, Dataflow, Destination};

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not valid YAML: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("{path}, document {document} ({kind} {name}): {message}")]
    Invalid { path: PathBuf, document: usize, kind: String, name: String, message: String },
}

/// Where a resource was read from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub path: PathBuf,
    /// 1-based document index within the file.
    pub document: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, document {}", self.path.display(), self.document)
    }
}

/// A resource and where it came from.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub origin: Origin,
    pub raw: Value,
    pub object: T,
}

/// Every Outflow resource found under some paths. Other kinds are ignored.
#[derive(Debug, Default)]
pub struct ManifestSet {
    pub destinations: Vec<Located<Destination>>,
    pub accounts: Vec<Located<Account>>,
    pub dataflows: Vec<Located<Dataflow>>,
    pub secrets: Vec<Located<Secret>>,
}

impl ManifestSet {
    /// Reads every `.yaml`/`.yml` file under the given files and folders.
    pub fn read(paths: &[PathBuf]) -> Result<Self, Vec<ManifestError>> {
        let mut files = Vec::new();
        let mut errors = Vec::new();
        for path in paths {
            collect_files(path, &mut files, &mut errors);
        }
        files.sort();
        let mut set = Self::default();
        for file in files {
            if let Err(mut e) = set.read_file(&file) {
                errors.append(&mut e);
            }
        }
        if errors.is_empty() { Ok(set) } else { Err(errors) }
    }

    fn read_file(&mut self, path: &Path) -> Result<(), Vec<ManifestError>> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| vec![ManifestError::Io { path: path.to_path_buf(), source }])?;
        let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| vec![ManifestError::Yaml { path: path.to_path_buf(), message: e.to_string() }])?;
        let mut errors = Vec::new();
        for (i, doc) in documents.into_iter().enumerate() {
            if doc.is_null() {
                continue;
            }
            let origin = Origin { path: path.to_path_buf(), document: i + 1 };
            let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
            let result = match (api_version, kind.as_str()) {
                ("outflow.dev/v1alpha1", "Destination") => {
                    push(&mut self.destinations, origin, doc, check::api_server_checks::<Destination>)
                }
                ("outflow.dev/v1alpha1", "Account") => {
                    push(&mut self.accounts, origin, doc, check::api_server_checks::<Account>)
                }
                ("outflow.dev/v1alpha1", "Dataflow") => {
                    push(&mut self.dataflows, origin, doc, check::api_server_checks::<Dataflow>)
                }
                ("v1", "Secret") => push(&mut self.secrets, origin, doc, |_| Vec::new()),
                ("v1", "List") => Ok(()),
                _ => Ok(()),
            };
            if let Err(e) = result {
                errors.push(e);
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    pub fn destination(&self, name: &str) -> Option<&Located<Destination>> {
        self.destinations.iter().find(|d| d.object.metadata.name.as_deref() == Some(name))
    }

    pub fn account(&self, namespace: &str, name: &str) -> Option<&Located<Account>> {
        self.accounts
            .iter()
            .find(|a| namespace_of(&a.object.metadata) == namespace && a.object.metadata.name.as_deref() == Some(name))
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<&Located<Secret>> {
        self.secrets
            .iter()
            .find(|s| namespace_of(&s.object.metadata) == namespace && s.object.metadata.name.as_deref() == Some(name))
    }

    pub fn dataflow(&self, namespace: &str, name: &str) -> Option<&Located<Dataflow>> {
        self.dataflows
            .iter()
            .find(|d| namespace_of(&d.object.metadata) == namespace && d.object.metadata.name.as_deref() == Some(name))
    }
}

/// The namespace of a namespaced object read from a file (`default` when the file omits it, as
/// `kubectl apply` would).
pub fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

/// The keys of a Secret read from a file, from `data` and `stringData`.
pub fn secret_keys(secret: &Secret) -> std::collections::BTreeSet<String> {
    let mut keys: std::collections::BTreeSet<String> = secret.data.iter().flat_map(|d| d.keys().cloned()).collect();
    keys.extend(secret.string_data.iter().flat_map(|d| d.keys().cloned()));
    keys
}

/// The values of a Secret as text, from `data` (already base64-decoded by the type) and
/// `stringData`.
pub fn secret_values(secret: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> =
        secret.data.iter().flatten().map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned())).collect();
    out.extend(secret.string_data.iter().flatten().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// Keeps a typed object; when it does not even have the right types, says what the API server
/// would say about it (every field at fault), or the deserializer's message.
fn push<T: DeserializeOwned>(
    list: &mut Vec<Located<T>>,
    origin: Origin,
    doc: Value,
    explain: impl Fn(&Value) -> Vec<schema::Violation>,
) -> Result<(), ManifestError> {
    match serde_json::from_value::<T>(doc.clone()) {
        Ok(object) => {
            list.push(Located { origin, raw: doc, object });
            Ok(())
        }
        Err(e) => Err(ManifestError::Invalid {
            kind: doc.get("kind").and_then(Value::as_str).unwrap_or("?").to_string(),
            name: doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?").to_string(),
            path: origin.path,
            document: origin.document,
            message: {
                let violations = explain(&doc);
                if violations.is_empty() {
                    e.to_string()
                } else {
                    violations.iter().map(|v| format!("{}: {}", v.field, v.message)).collect::<Vec<_>>().join("; ")
                }
            },
        }),
    }
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<ManifestError>) {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => match std::fs::read_dir(path) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    collect_files(&entry.path(), files, errors);
                }
            }
            Err(source) => errors.push(ManifestError::Io { path: path.to_path_buf(), source }),
        },
        Ok(_) => {
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path.to_path_buf());
            }
        }
        Err(source) => errors.push(ManifestError::Io { path: path.to_path_buf(), source }),
    }
}

pub mod check;
pub mod schema;

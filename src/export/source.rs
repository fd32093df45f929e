//! The profile store snapshot: a local folder of `*.parquet` (or `*.ndjson`) files, read in name
//! order as Arrow record batches, streaming, reading only the Parquet leaf columns the plan needs.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::plan::ExportPlan;
use super::record::{Profile, to_batch};
use crate::plan::fields::SourceField;

/// Rows per batch read.
pub const BATCH_SIZE: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("profile store '{path}': {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("profile store '{0}' holds no *.parquet or *.ndjson file")]
    Empty(PathBuf),
    #[error("profile store '{0}': only local folders are supported for now (s3://, az://, gs:// are not)")]
    UnsupportedUrl(String),
    #[error("{path}: not a readable Parquet file: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{path}, line {line}: not a profile record: {message}")]
    Json { path: PathBuf, line: usize, message: String },
    #[error("{path}: column '{column}': {message}")]
    Column { path: PathBuf, column: String, message: String },
}

/// The path prefixes (top-level column, then nested names) a plan reads.
pub fn needed_paths(plan: &ExportPlan) -> Vec<Vec<&'static str>> {
    let mut paths: Vec<Vec<&'static str>> = vec![vec!["segmentMembership"]];
    if plan.enforce_consent {
        paths.push(vec!["consents"]);
    }
    if matches!(plan.dedup, super::plan::DedupKey::Identity(_)) {
        paths.push(vec!["identityMap"]);
    }
    if plan.keep_profile_id {
        paths.push(vec!["profile_id"]);
    }
    for f in &plan.fields {
        paths.push(match &f.source {
            SourceField::ProfileId => vec!["profile_id"],
            SourceField::FirstName => vec!["person", "name", "firstName"],
            SourceField::LastName => vec!["person", "name", "lastName"],
            SourceField::Email => vec!["personalEmail", "address"],
            SourceField::Phone => vec!["mobilePhone", "number"],
            SourceField::City => vec!["homeAddress", "city"],
            SourceField::Country => vec!["homeAddress", "country"],
            SourceField::PostalCode => vec!["homeAddress", "postalCode"],
            SourceField::EmailConsent => vec!["consents"],
            SourceField::Identity(_) => vec!["identityMap"],
            SourceField::SegmentStatus | SourceField::SegmentQualificationTime => vec!["segmentMembership"],
        });
    }
    paths
}

/// Lists the files of a snapshot: a local folder (or `file://` URL), Parquet files if any, else
/// NDJSON, sorted by name.
pub fn list_files(url: &str) -> Result<Vec<PathBuf>, SourceError> {
    if url.contains("://") && !url.starts_with("file://") {
        return Err(SourceError::UnsupportedUrl(url.to_string()));
    }
    let dir = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
    let io = |source| SourceError::Io { path: dir.clone(), source };
    let mut parquet = Vec::new();
    let mut ndjson = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        match path.extension().and_then(|e| e.to_str()) {
            _ if hidden => {}
            Some("parquet") => parquet.push(path),
            Some("ndjson") | Some("jsonl") => ndjson.push(path),
            _ => {}
        }
    }
    let mut files = if parquet.is_empty() { ndjson } else { parquet };
    files.sort();
    if files.is_empty() {
        return Err(SourceError::Empty(dir));
    }
    Ok(files)
}

enum Reader {
    Parquet(ParquetRecordBatchReader),
    Ndjson { lines: std::io::Lines<BufReader<File>>, line: usize },
}

/// Streams record batches over the files of a snapshot.
pub struct ProfileSource {
    files: Vec<PathBuf>,
    next_file: usize,
    paths: Vec<Vec<&'static str>>,
    current: Option<(PathBuf, Reader)>,
    total_rows: Option<u64>,
}

impl ProfileSource {
    pub fn open(url: &str, plan: &ExportPlan) -> Result<Self, SourceError> {
        let files = list_files(url)?;
        let total_rows = parquet_row_count(&files);
        Ok(Self { files, next_file: 0, paths: needed_paths(plan), current: None, total_rows })
    }

    /// The files read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Rows in the snapshot, when known up front (Parquet footers), for a progress bar.
    pub fn total_rows(&self) -> Option<u64> {
        self.total_rows
    }

    fn open_file(&self, path: &Path) -> Result<Reader, SourceError> {
        let file = File::open(path).map_err(|source| SourceError::Io { path: path.to_path_buf(), source })?;
        if path.extension().is_some_and(|e| e == "parquet") {
            let perr = |e: parquet::errors::ParquetError| SourceError::Parquet {
                path: path.to_path_buf(),
                message: e.to_string(),
            };
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
            let descr = builder.parquet_schema();
            let leaves: Vec<usize> = (0..descr.num_columns())
                .filter(|&i| {
                    let column = descr.column(i);
                    let parts = column.path().parts();
                    self.paths.iter().any(|p| parts.len() >= p.len() && parts.iter().zip(p).all(|(a, b)| a == b))
                })
                .collect();
            let mask = ProjectionMask::leaves(descr, leaves);
            let reader = builder.with_projection(mask).with_batch_size(BATCH_SIZE).build().map_err(perr)?;
            Ok(Reader::Parquet(reader))
        } else {
            Ok(Reader::Ndjson { lines: BufReader::with_capacity(1 << 20, file).lines(), line: 0 })
        }
    }

    /// The next batch and the file it came from; `None` at the end.
    pub fn next_batch(&mut self) -> Option<Result<(RecordBatch, PathBuf), SourceError>> {
        loop {
            if self.current.is_none() {
                let path = self.files.get(self.next_file)?.clone();
                self.next_file += 1;
                match self.open_file(&path) {
                    Ok(reader) => self.current = Some((path, reader)),
                    Err(e) => return Some(Err(e)),
                }
            }
            let (path, reader) = self.current.as_mut()?;
            let path = path.clone();
            let next = match reader {
                Reader::Parquet(r) => r
                    .next()
                    .map(|res| res.map_err(|e| SourceError::Parquet { path: path.clone(), message: e.to_string() })),
                Reader::Ndjson { lines, line } => read_ndjson_batch(lines, line, &path),
            };
            match next {
                Some(Ok(batch)) => return Some(Ok((batch, path))),
                Some(Err(e)) => return Some(Err(e)),
                None => self.current = None,
            }
        }
    }
}

fn parquet_row_count(files: &[PathBuf]) -> Option<u64> {
    let mut total = 0u64;
    for f in files {
        if f.extension().is_none_or(|e| e != "parquet") {
            return None;
        }
        let file = File::open(f).ok()?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).ok()?;
        total += builder.metadata().file_metadata().num_rows().max(0) as u64;
    }
    Some(total)
}

fn read_ndjson_batch(
    lines: &mut std::io::Lines<BufReader<File>>,
    line: &mut usize,
    path: &Path,
) -> Option<Result<RecordBatch, SourceError>> {
    let mut profiles = Vec::with_capacity(BATCH_SIZE);
    while profiles.len() < BATCH_SIZE {
        let Some(text) = lines.next() else { break };
        *line += 1;
        let text = match text {
            Ok(t) => t,
            Err(source) => return Some(Err(SourceError::Io { path: path.to_path_buf(), source })),
        };
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Profile>(&text) {
            Ok(p) => profiles.push(p),
            Err(e) => {
                return Some(Err(SourceError::Json { path: path.to_path_buf(), line: *line, message: e.to_string() }));
            }
        }
    }
    if profiles.is_empty() {
        return None;
    }
    Some(to_batch(&profiles).map_err(|e| SourceError::Column {
        path: path.to_path_buf(),
        column: "*".into(),
        message: e.to_string(),
    }))
}

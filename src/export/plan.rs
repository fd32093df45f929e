//! `ExportPlan`: everything one export run needs, resolved from a Dataflow, one of its segments,
//! the Account and the Destination. Pure: no I/O, time is a parameter.

use chrono::{DateTime, Utc};

use super::transform::Normalization;
use crate::api::{Account, Compression, Dataflow, Destination, ExportMode, FileFormat, Transform};
use crate::plan::fields::SourceField;
use crate::plan::file_name::{self, FileNameContext, TemplateError};
use crate::plan::validate::DataflowPlan;

/// The file name template used when neither the segment, the Dataflow nor the Destination gives one.
pub const DEFAULT_FILE_NAME_TEMPLATE: &str = "%DESTINATION%_%SEGMENT_ID%_%DATETIME(YYYYMMdd_HHmmss)%";
/// Rows per file when nothing says otherwise.
pub const DEFAULT_MAX_ROWS_PER_FILE: u64 = 5_000_000;

/// One exported column.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedField {
    pub source: SourceField,
    pub target: String,
    pub transforms: Vec<Transform>,
    pub normalization: Normalization,
}

/// What profiles are deduplicated on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DedupKey {
    None,
    /// The primary id of an identity namespace, normalized like a hashed value would be.
    Identity(String),
    /// Indices into [`ExportPlan::fields`].
    Fields(Vec<usize>),
}

/// CSV dialect, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvDialect {
    pub delimiter: char,
    pub quote: char,
    pub escape: Option<char>,
    pub header: bool,
    pub null_value: String,
}

impl Default for CsvDialect {
    fn default() -> Self {
        Self { delimiter: ',', quote: '"', escape: None, header: true, null_value: String::new() }
    }
}

/// One export run of one segment.
#[derive(Debug, Clone)]
pub struct ExportPlan {
    pub dataflow: String,
    pub segment_id: String,
    pub segment_name: String,
    pub destination_name: String,
    pub fields: Vec<PlannedField>,
    /// Indices into `fields` of the targets a profile must have.
    pub mandatory: Vec<usize>,
    pub dedup: DedupKey,
    pub enforce_consent: bool,
    pub mode: ExportMode,
    /// Incremental runs export changes qualified strictly after this time.
    pub watermark: Option<DateTime<Utc>>,
    pub format: FileFormat,
    pub compression: Compression,
    pub csv: CsvDialect,
    pub max_rows_per_file: u64,
    pub file_name_template: String,
    /// The time the run is for (file names).
    pub scheduled: DateTime<Utc>,
    /// Read each member's profile ID even when no field maps it (rows pushed to an API carry it).
    pub keep_profile_id: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("Dataflow '{dataflow}' has no segment '{segment}' (it has: {known})")]
    UnknownSegment { dataflow: String, segment: String, known: String },
    #[error("Dataflow '{dataflow}': {field}: {message}")]
    Invalid { dataflow: String, field: String, message: String },
}

fn one_char(value: Option<&String>, default: Option<char>) -> Option<char> {
    value.and_then(|v| v.chars().next()).or(default)
}

impl ExportPlan {
    /// Resolves the plan of one segment. `checked` is the result of
    /// [`crate::plan::validate::check_dataflow`] on the same objects.
    pub fn new(
        dataflow: &Dataflow,
        checked: &DataflowPlan,
        account: &Account,
        destination: &Destination,
        segment_id: &str,
        watermark: Option<DateTime<Utc>>,
        scheduled: DateTime<Utc>,
    ) -> Result<Self, PlanError> {
        let _ = account;
        let name = dataflow.metadata.name.clone().unwrap_or_default();
        let spec = &dataflow.spec;
        let invalid = |field: &str, message: String| PlanError::Invalid {
            dataflow: name.clone(),
            field: field.to_string(),
            message,
        };
        let segment = spec.segments.iter().find(|s| s.id == segment_id).ok_or_else(|| PlanError::UnknownSegment {
            dataflow: name.clone(),
            segment: segment_id.to_string(),
            known: spec.segments.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", "),
        })?;
        let fields: Vec<PlannedField> = checked
            .fields
            .iter()
            .map(|(source, target, transforms)| PlannedField {
                normalization: Normalization::for_namespace(source.identity_namespace()),
                source: source.clone(),
                target: target.clone(),
                transforms: transforms.clone(),
            })
            .collect();
        let index_of = |target: &str, field: &str| {
            fields
                .iter()
                .position(|f| f.target == target)
                .ok_or_else(|| invalid(field, format!("'{target}' is not the target of any of spec.fields")))
        };
        let mandatory = spec
            .mandatory_fields
            .iter()
            .enumerate()
            .map(|(i, m)| index_of(m, &format!("spec.mandatoryFields[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let dedup = match &spec.deduplication {
            None => DedupKey::None,
            Some(d) => match (&d.identity, &d.fields) {
                (Some(ns), _) => DedupKey::Identity(ns.clone()),
                (None, Some(keys)) => DedupKey::Fields(
                    keys.iter()
                        .enumerate()
                        .map(|(i, k)| index_of(k, &format!("spec.deduplication.fields[{i}]")))
                        .collect::<Result<_, _>>()?,
                ),
                (None, None) => DedupKey::None,
            },
        };
        let output = spec.output.as_ref();
        let csv_opts = output.and_then(|o| o.csv.as_ref());
        let csv = CsvDialect {
            delimiter: one_char(csv_opts.and_then(|c| c.delimiter.as_ref()), Some(',')).unwrap_or(','),
            quote: one_char(csv_opts.and_then(|c| c.quote.as_ref()), Some('"')).unwrap_or('"'),
            escape: one_char(csv_opts.and_then(|c| c.escape.as_ref()), None),
            header: csv_opts.and_then(|c| c.header).unwrap_or(true),
            null_value: csv_opts.and_then(|c| c.null_value.clone()).unwrap_or_default(),
        };
        if csv.delimiter == csv.quote {
            return Err(invalid("spec.output.csv", "the delimiter and the quote must differ".into()));
        }
        let file_name_template = segment
            .file_name_template
            .clone()
            .or_else(|| output.and_then(|o| o.file_name_template.clone()))
            .or_else(|| destination.spec.file_name_template.clone())
            .unwrap_or_else(|| DEFAULT_FILE_NAME_TEMPLATE.to_string());
        file_name::validate(&file_name_template).map_err(|e| invalid("fileNameTemplate", e.to_string()))?;
        let max_rows_per_file = output
            .and_then(|o| o.max_rows_per_file)
            .or(destination.spec.limits.as_ref().and_then(|l| l.max_rows_per_file))
            .unwrap_or(DEFAULT_MAX_ROWS_PER_FILE)
            .max(1);
        Ok(Self {
            dataflow: name.clone(),
            segment_id: segment.id.clone(),
            segment_name: segment.name.clone().unwrap_or_else(|| segment.id.clone()),
            destination_name: destination.spec.display_name.clone(),
            fields,
            mandatory,
            dedup,
            enforce_consent: spec.consent.as_ref().and_then(|c| c.enforce).unwrap_or(true),
            mode: segment.export_mode.unwrap_or_default(),
            watermark,
            format: checked.format.or(output.map(|o| o.format)).unwrap_or(FileFormat::Csv),
            compression: output.and_then(|o| o.compression).unwrap_or(Compression::None),
            csv,
            max_rows_per_file,
            file_name_template,
            scheduled,
            keep_profile_id: false,
        })
    }

    /// The effective watermark: incremental runs with a previous watermark only.
    pub fn effective_watermark(&self) -> Option<DateTime<Utc>> {
        match self.mode {
            ExportMode::Incremental => self.watermark,
            ExportMode::Full => None,
        }
    }

    /// The extension of the files, `.csv.gz`, `.json`, `.parquet`, …
    pub fn extension(&self) -> &'static str {
        match (self.format, self.compression) {
            (FileFormat::Csv, Compression::None) => "csv",
            (FileFormat::Csv, Compression::Gzip) => "csv.gz",
            (FileFormat::JSONLines, Compression::None) => "json",
            (FileFormat::JSONLines, Compression::Gzip) => "json.gz",
            (FileFormat::Parquet, _) => "parquet",
        }
    }

    /// The name of part `part` (0 for the first file): `<base>.<ext>`, then `<base>_part-00001.<ext>`.
    pub fn file_name(&self, part: usize) -> Result<String, TemplateError> {
        let base = file_name::render(
            &self.file_name_template,
            &FileNameContext {
                destination: &self.destination_name,
                segment_id: &self.segment_id,
                segment_name: &self.segment_name,
                scheduled: self.scheduled,
            },
        )?;
        Ok(part_name(&base, part, self.extension()))
    }

    /// The target names, in order.
    pub fn targets(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.target.as_str()).collect()
    }
}

/// `<base>.<ext>` for part 0, `<base>_part-NNNNN.<ext>` after.
pub fn part_name(base: &str, part: usize, extension: &str) -> String {
    if part == 0 { format!("{base}.{extension}") } else { format!("{base}_part-{part:05}.{extension}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_after_the_first_get_a_suffix() {
        assert_eq!(part_name("S3_seg-1_20260101_000000", 0, "csv.gz"), "S3_seg-1_20260101_000000.csv.gz");
        assert_eq!(part_name("S3_seg-1_20260101_000000", 1, "csv.gz"), "S3_seg-1_20260101_000000_part-00001.csv.gz");
        assert_eq!(part_name("x", 12, "parquet"), "x_part-00012.parquet");
    }
}

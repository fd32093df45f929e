//! One export run: read batches, select, transform, encode, publish, report.

use std::time::Instant;

use super::encode::PartEncoder;
use super::extract::{BatchView, render_time};
use super::plan::{DedupKey, ExportPlan};
use super::select::{Deduplicator, Outcome, decide, is_selected};
use super::source::ProfileSource;
use super::transform::{self, Normalization};
use super::{ExportError, FileReport, RunReport};
use crate::connectors::{Connector, ObjectWriter};

/// Receives progress: rows read so far, and the total when known.
pub trait Progress {
    fn rows_read(&self, read: u64, total: Option<u64>);
}

/// No progress output.
pub struct NoProgress;

impl Progress for NoProgress {
    fn rows_read(&self, _: u64, _: Option<u64>) {}
}

struct Finished {
    name: String,
    rows: u64,
    writer: Box<dyn ObjectWriter>,
}

/// Runs one export. Files are committed only after every row has been read and encoded, so a
/// run that fails leaves nothing under a final name.
pub fn run_export(
    plan: &ExportPlan,
    profiles_url: &str,
    connector: &dyn Connector,
    progress: &dyn Progress,
) -> Result<RunReport, ExportError> {
    let started = Instant::now();
    let mut source = ProfileSource::open(profiles_url, plan)?;
    let mut report =
        RunReport { dataflow: plan.dataflow.clone(), segment: plan.segment_id.clone(), ..RunReport::default() };
    let mut finished: Vec<Finished> = Vec::new();
    let mut current: Option<PartEncoder> = None;
    let result = encode_all(plan, &mut source, connector, progress, &mut report, &mut finished, &mut current);
    let result = result.and_then(|()| {
        let encoder = match current.take() {
            Some(e) => e,
            // An empty audience still publishes one (empty, headed) file.
            None => open_part(plan, connector, 0)?,
        };
        let (name, rows) = (encoder.name.clone(), encoder.rows);
        finished.push(Finished { name, rows, writer: encoder.finish()? });
        Ok(())
    });
    if let Err(e) = result {
        drop(current);
        for f in finished {
            f.writer.abort();
        }
        return Err(e);
    }
    for f in finished {
        let bytes = f.writer.commit()?;
        report.files.push(FileReport { name: f.name, rows: f.rows, bytes });
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

fn open_part(plan: &ExportPlan, connector: &dyn Connector, part: usize) -> Result<PartEncoder, ExportError> {
    let name = plan.file_name(part).map_err(|e| ExportError::FileName(e.to_string()))?;
    let writer = connector.open(&name)?;
    Ok(PartEncoder::new(name, writer, plan)?)
}

fn dedup_key(plan: &ExportPlan, view: &BatchView, row: usize, values: &[Option<String>]) -> Option<String> {
    match &plan.dedup {
        DedupKey::None => None,
        DedupKey::Identity(ns) => view.identity(row, ns).map(|id| match Normalization::for_namespace(Some(ns)) {
            Normalization::Email => transform::normalize_email(id),
            Normalization::Phone => transform::normalize_phone(id),
            Normalization::Plain => id.trim().to_string(),
        }),
        DedupKey::Fields(indices) => {
            let parts: Vec<Option<&str>> = indices.iter().map(|&i| values.get(i).and_then(|v| v.as_deref())).collect();
            if parts.iter().all(Option::is_none) {
                None
            } else {
                Some(parts.iter().map(|p| p.unwrap_or("")).collect::<Vec<_>>().join("\u{1f}"))
            }
        }
    }
}

fn encode_all(
    plan: &ExportPlan,
    source: &mut ProfileSource,
    connector: &dyn Connector,
    progress: &dyn Progress,
    report: &mut RunReport,
    finished: &mut Vec<Finished>,
    current: &mut Option<PartEncoder>,
) -> Result<(), ExportError> {
    let total = source.total_rows();
    let mut part = 0usize;
    // Decoding Parquet and encoding rows each take a core: the reader runs on its own thread a
    // few batches ahead (a bounded queue keeps memory flat) while this one selects and encodes.
    std::thread::scope(|scope| {
        let (sender, batches) = std::sync::mpsc::sync_channel(READ_AHEAD_BATCHES);
        scope.spawn(move || {
            while let Some(next) = source.next_batch() {
                let failed = next.is_err();
                if sender.send(next).is_err() || failed {
                    break;
                }
            }
        });
        encode_batches(plan, batches, connector, progress, report, finished, current, total, &mut part)
    })
}

/// Batches decoded ahead of the encoder.
const READ_AHEAD_BATCHES: usize = 4;

#[allow(clippy::too_many_arguments)]
fn encode_batches(
    plan: &ExportPlan,
    batches: std::sync::mpsc::Receiver<
        Result<(arrow::record_batch::RecordBatch, std::path::PathBuf), crate::export::source::SourceError>,
    >,
    connector: &dyn Connector,
    progress: &dyn Progress,
    report: &mut RunReport,
    finished: &mut Vec<Finished>,
    current: &mut Option<PartEncoder>,
    total: Option<u64>,
    part: &mut usize,
) -> Result<(), ExportError> {
    let watermark_us = plan.effective_watermark().map(|w| w.timestamp_micros());
    let mut max_seen = watermark_us;
    let mut dedup = Deduplicator::default();
    for next in batches {
        let (batch, path) = next?;
        let view = BatchView::new(&batch, plan, &path)?;
        for row in 0..view.num_rows() {
            report.profiles_read += 1;
            let (status, time) = view.membership(row, &plan.segment_id);
            if !is_selected(status, time, watermark_us) {
                continue;
            }
            if let Some(t) = time {
                max_seen = Some(max_seen.map_or(t, |m| m.max(t)));
            }
            let values: Vec<Option<String>> = view
                .raw_values(row, plan, status, time)
                .into_iter()
                .zip(&plan.fields)
                .map(|(v, f)| v.map(|v| transform::apply(v, &f.transforms, f.normalization)))
                .collect();
            let key = dedup_key(plan, &view, row, &values);
            match decide(plan.enforce_consent, view.consent(row), &values, &plan.mandatory, key, &mut dedup) {
                Outcome::ExcludedConsent => report.excluded_consent += 1,
                Outcome::ExcludedMandatory => report.excluded_mandatory += 1,
                Outcome::Duplicate => report.excluded_duplicate += 1,
                Outcome::Exported => {
                    if current.as_ref().is_some_and(|c| c.rows >= plan.max_rows_per_file) {
                        let done = current.take().expect("checked above");
                        let (name, rows) = (done.name.clone(), done.rows);
                        finished.push(Finished { name, rows, writer: done.finish()? });
                        *part += 1;
                    }
                    if current.is_none() {
                        *current = Some(open_part(plan, connector, *part)?);
                    }
                    current.as_mut().expect("opened above").write_row(&values)?;
                    report.exported += 1;
                }
            }
        }
        progress.rows_read(report.profiles_read, total);
    }
    report.watermark = max_seen.map(render_time);
    Ok(())
}

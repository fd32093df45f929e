//! One export run: read batches, select, transform, encode, publish, report.

use std::time::Instant;

use super::encode::PartEncoder;
use super::extract::{BatchView, render_time};
use super::plan::{DedupKey, ExportPlan};
use super::select::{Deduplicator, Outcome, decide, is_selected};
use super::source::ProfileSource;
use super::source::SourceError;
use super::transform::{self, Normalization};
use super::{ExportError, FileReport, RunReport};
use crate::connectors::{Connector, ObjectWriter, PushContext, PushRow, PushSession, Pusher, Target};
use arrow::record_batch::RecordBatch;

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

/// A selected, transformed member on its way out.
struct Member<'a> {
    view: &'a BatchView,
    row: usize,
    status: Option<&'a str>,
    qualified_us: Option<i64>,
    values: Vec<Option<String>>,
}

/// Where selected members go: file parts, or a push session.
trait RowSink {
    fn accept(&mut self, member: Member<'_>) -> Result<(), ExportError>;
}

/// Runs one export to its target: files, or rows pushed to an API or a stream.
pub fn run_export_to(
    plan: &ExportPlan,
    profiles_url: &str,
    target: &Target,
    run_id: &str,
    progress: &dyn Progress,
) -> Result<RunReport, ExportError> {
    match target {
        Target::Files(connector) => run_export(plan, profiles_url, connector.as_ref(), progress),
        Target::Push(pusher) => run_push(plan, profiles_url, pusher.as_ref(), run_id, progress),
    }
}

/// Parts of files being written; each is committed only after the whole run is encoded.
struct FileSink<'a> {
    plan: &'a ExportPlan,
    connector: &'a dyn Connector,
    finished: Vec<Finished>,
    current: Option<PartEncoder>,
    part: usize,
}

impl RowSink for FileSink<'_> {
    fn accept(&mut self, member: Member<'_>) -> Result<(), ExportError> {
        if self.current.as_ref().is_some_and(|c| c.rows >= self.plan.max_rows_per_file) {
            let done = self.current.take().expect("checked above");
            let (name, rows) = (done.name.clone(), done.rows);
            self.finished.push(Finished { name, rows, writer: done.finish()? });
            self.part += 1;
        }
        if self.current.is_none() {
            self.current = Some(open_part(self.plan, self.connector, self.part)?);
        }
        self.current.as_mut().expect("opened above").write_row(&member.values)?;
        Ok(())
    }
}

impl FileSink<'_> {
    /// Closes the last part (an empty audience still publishes one, empty, headed file).
    fn close(&mut self) -> Result<(), ExportError> {
        let encoder = match self.current.take() {
            Some(e) => e,
            None => open_part(self.plan, self.connector, 0)?,
        };
        let (name, rows) = (encoder.name.clone(), encoder.rows);
        self.finished.push(Finished { name, rows, writer: encoder.finish()? });
        Ok(())
    }
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
    let mut sink = FileSink { plan, connector, finished: Vec::new(), current: None, part: 0 };
    let result = encode_all(plan, &mut source, &mut sink, progress, &mut report).and_then(|_| sink.close());
    if let Err(e) = result {
        drop(sink.current.take());
        for f in sink.finished {
            f.writer.abort();
        }
        return Err(e);
    }
    for f in sink.finished {
        let bytes = f.writer.commit()?;
        report.files.push(FileReport { name: f.name, rows: f.rows, bytes });
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Rows fed to a push session.
struct PushSink {
    session: Box<dyn PushSession>,
}

impl RowSink for PushSink {
    fn accept(&mut self, member: Member<'_>) -> Result<(), ExportError> {
        let row = PushRow {
            profile_id: member.view.profile_id(member.row).map(str::to_string),
            status: member.status.map(str::to_string),
            qualified_us: member.qualified_us,
            values: member.values,
        };
        Ok(self.session.push(row)?)
    }
}

/// Runs one export to a platform fed rows. The run succeeds once every row is confirmed
/// delivered or rejected; its watermark stops before the earliest rejected row, so the next
/// incremental run sends that row again.
pub fn run_push(
    plan: &ExportPlan,
    profiles_url: &str,
    pusher: &dyn Pusher,
    run_id: &str,
    progress: &dyn Progress,
) -> Result<RunReport, ExportError> {
    let started = Instant::now();
    let plan = &ExportPlan { keep_profile_id: true, ..plan.clone() };
    let mut source = ProfileSource::open(profiles_url, plan)?;
    let mut report =
        RunReport { dataflow: plan.dataflow.clone(), segment: plan.segment_id.clone(), ..RunReport::default() };
    let identities = plan
        .fields
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.source.identity_namespace().map(|ns| (i, ns.to_string())))
        .collect();
    let session = pusher.start(PushContext {
        dataflow: plan.dataflow.clone(),
        run_id: run_id.to_string(),
        segment_id: plan.segment_id.clone(),
        segment_name: plan.segment_name.clone(),
        scheduled: plan.scheduled,
        targets: plan.targets().into_iter().map(str::to_string).collect(),
        identities,
    })?;
    let mut sink = PushSink { session };
    let newest_seen = encode_all(plan, &mut source, &mut sink, progress, &mut report)?;
    let outcome = sink.session.finish()?;
    let start = plan.effective_watermark().map(|w| w.timestamp_micros());
    report.watermark = outcome.watermark(newest_seen, start).map(render_time);
    report.exported = outcome.delivered;
    report.excluded_mandatory += outcome.without_identity;
    report.failed = outcome.failed;
    report.requests = outcome.requests;
    report.failed_rows = outcome.failed_sample;
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

/// Reads, selects and transforms every member into `sink`; returns the newest qualification time
/// seen (the run's watermark when nothing was rejected) and sets it on the report.
fn encode_all(
    plan: &ExportPlan,
    source: &mut ProfileSource,
    sink: &mut dyn RowSink,
    progress: &dyn Progress,
    report: &mut RunReport,
) -> Result<Option<i64>, ExportError> {
    let total = source.total_rows();
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
        encode_batches(plan, batches, sink, progress, report, total)
    })
}

/// Batches decoded ahead of the encoder.
const READ_AHEAD_BATCHES: usize = 4;

type Batches = std::sync::mpsc::Receiver<Result<(RecordBatch, std::path::PathBuf), SourceError>>;

fn encode_batches(
    plan: &ExportPlan,
    batches: Batches,
    sink: &mut dyn RowSink,
    progress: &dyn Progress,
    report: &mut RunReport,
    total: Option<u64>,
) -> Result<Option<i64>, ExportError> {
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
                    sink.accept(Member { view: &view, row, status, qualified_us: time, values })?;
                    report.exported += 1;
                }
            }
        }
        progress.rows_read(report.profiles_read, total);
    }
    report.watermark = max_seen.map(render_time);
    Ok(max_seen)
}

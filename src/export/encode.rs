//! Encoding rows into files: CSV (RFC 4180 quoting), JSON lines and Parquet (all columns utf8),
//! optionally gzip-compressed. `csv_line` and `json_line` are pure; [`PartEncoder`] writes one
//! file through a connector's writer.

use std::io::{BufWriter, Write};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use flate2::write::GzEncoder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as ParquetCompression, GzipLevel};
use parquet::file::properties::WriterProperties;

use super::plan::{CsvDialect, ExportPlan};
use crate::api::{Compression, FileFormat};
use crate::connectors::ObjectWriter;

/// Rows buffered before a Parquet row batch is written.
const PARQUET_BATCH: usize = 8192;

/// Appends one CSV field, quoted when it holds the delimiter, the quote, the escape or a line
/// break (or leading/trailing spaces).
pub fn csv_field(value: &str, d: &CsvDialect, out: &mut String) {
    let needs_quotes = value.is_empty() && !d.null_value.is_empty()
        || value.starts_with(' ')
        || value.ends_with(' ')
        || value.chars().any(|c| c == d.delimiter || c == d.quote || Some(c) == d.escape || c == '\n' || c == '\r');
    if !needs_quotes {
        out.push_str(value);
        return;
    }
    out.push(d.quote);
    for c in value.chars() {
        if c == d.quote {
            out.push(d.escape.unwrap_or(d.quote));
        } else if Some(c) == d.escape {
            out.push(c);
        }
        out.push(c);
    }
    out.push(d.quote);
}

/// One CSV line (with its `\n`).
pub fn csv_line<S: AsRef<str>>(values: &[Option<S>], d: &CsvDialect, out: &mut String) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(d.delimiter);
        }
        match v {
            Some(v) => csv_field(v.as_ref(), d, out),
            None => out.push_str(&d.null_value),
        }
    }
    out.push('\n');
}

/// One JSON object per line, target names as keys (in field order), missing values as `null`.
pub fn json_line(targets: &[&str], values: &[Option<String>], out: &mut String) {
    out.push('{');
    for (i, (t, v)) in targets.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(t, out);
        out.push(':');
        match v {
            Some(v) => push_json_string(v, out),
            None => out.push_str("null"),
        }
    }
    out.push_str("}\n");
}

fn push_json_string(value: &str, out: &mut String) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("writing '{file}': {source}")]
    Io { file: String, source: std::io::Error },
    #[error("writing Parquet '{file}': {source}")]
    Parquet { file: String, source: parquet::errors::ParquetError },
    #[error("writing Parquet '{file}': {source}")]
    Arrow { file: String, source: arrow::error::ArrowError },
}

enum ByteSink {
    Plain(BufWriter<Box<dyn ObjectWriter>>),
    Gzip(GzipThread),
}

impl ByteSink {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(w) => w.write_all(bytes),
            Self::Gzip(w) => w.write_all(bytes),
        }
    }

    fn finish(self) -> std::io::Result<Box<dyn ObjectWriter>> {
        match self {
            Self::Plain(w) => w.into_inner().map_err(|e| e.into_error()),
            Self::Gzip(w) => w.finish(),
        }
    }
}

/// Bytes handed to the compressing thread at a time.
const GZIP_CHUNK: usize = 1 << 20;

/// Gzip on its own thread: deflate costs as much as everything else, so compressing while the
/// next rows are encoded keeps a second core busy. Two chunks in flight bound the memory.
struct GzipThread {
    chunk: Vec<u8>,
    chunks: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    done: Option<std::thread::JoinHandle<std::io::Result<Box<dyn ObjectWriter>>>>,
}

impl GzipThread {
    fn new(writer: BufWriter<Box<dyn ObjectWriter>>) -> Self {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        let done = std::thread::spawn(move || {
            let mut gzip = GzEncoder::new(writer, flate2::Compression::default());
            for chunk in receiver {
                gzip.write_all(&chunk)?;
            }
            gzip.finish()?.into_inner().map_err(|e| e.into_error())
        });
        Self { chunk: Vec::with_capacity(GZIP_CHUNK), chunks: Some(sender), done: Some(done) }
    }

    fn send(&mut self) -> std::io::Result<()> {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(GZIP_CHUNK));
        let broken = || std::io::Error::other("the compressing thread stopped");
        self.chunks.as_ref().ok_or_else(broken)?.send(chunk).map_err(|_| broken())
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.chunk.extend_from_slice(bytes);
        if self.chunk.len() >= GZIP_CHUNK { self.send() } else { Ok(()) }
    }

    fn finish(mut self) -> std::io::Result<Box<dyn ObjectWriter>> {
        let sent = if self.chunk.is_empty() { Ok(()) } else { self.send() };
        drop(self.chunks.take());
        let done = self.done.take().ok_or_else(|| std::io::Error::other("the compressing thread is gone"))?;
        let written = done.join().map_err(|_| std::io::Error::other("the compressing thread panicked"))?;
        sent.and(written)
    }
}

impl Drop for GzipThread {
    /// An abandoned part (a failed run) waits for its thread, so the writer it holds is dropped,
    /// and so aborted, before the run reports its failure.
    fn drop(&mut self) {
        drop(self.chunks.take());
        if let Some(done) = self.done.take()
            && let Ok(Ok(writer)) = done.join()
        {
            writer.abort();
        }
    }
}

enum Body {
    Text { sink: ByteSink, line: String, json: bool },
    Parquet { writer: Box<ArrowWriter<Box<dyn ObjectWriter>>>, columns: Vec<StringBuilder>, buffered: usize },
}

/// One output file being encoded.
pub struct PartEncoder {
    pub name: String,
    pub rows: u64,
    body: Body,
    schema: SchemaRef,
    targets: Vec<String>,
    csv: CsvDialect,
}

impl PartEncoder {
    pub fn new(name: String, writer: Box<dyn ObjectWriter>, plan: &ExportPlan) -> Result<Self, EncodeError> {
        let targets: Vec<String> = plan.fields.iter().map(|f| f.target.clone()).collect();
        let schema =
            Arc::new(Schema::new(targets.iter().map(|t| Field::new(t, DataType::Utf8, true)).collect::<Vec<_>>()));
        let body = match plan.format {
            FileFormat::Parquet => {
                let compression = match plan.compression {
                    Compression::Gzip => ParquetCompression::GZIP(GzipLevel::default()),
                    Compression::None => ParquetCompression::UNCOMPRESSED,
                };
                let props = WriterProperties::builder().set_compression(compression).build();
                let writer = Box::new(
                    ArrowWriter::try_new(writer, schema.clone(), Some(props))
                        .map_err(|source| EncodeError::Parquet { file: name.clone(), source })?,
                );
                Body::Parquet { writer, columns: targets.iter().map(|_| StringBuilder::new()).collect(), buffered: 0 }
            }
            format => {
                let buffered = BufWriter::with_capacity(256 * 1024, writer);
                let sink = match plan.compression {
                    Compression::Gzip => ByteSink::Gzip(GzipThread::new(buffered)),
                    Compression::None => ByteSink::Plain(buffered),
                };
                Body::Text { sink, line: String::new(), json: format == FileFormat::JSONLines }
            }
        };
        let mut encoder = Self { name, rows: 0, body, schema, targets, csv: plan.csv.clone() };
        if plan.format == FileFormat::Csv && plan.csv.header {
            let header: Vec<Option<&str>> = encoder.targets.iter().map(|t| Some(t.as_str())).collect();
            let mut line = String::new();
            csv_line(&header, &encoder.csv, &mut line);
            encoder.write_text(&line)?;
        }
        Ok(encoder)
    }

    fn write_text(&mut self, text: &str) -> Result<(), EncodeError> {
        if let Body::Text { sink, .. } = &mut self.body {
            sink.write_all(text.as_bytes()).map_err(|source| EncodeError::Io { file: self.name.clone(), source })?;
        }
        Ok(())
    }

    pub fn write_row(&mut self, values: &[Option<String>]) -> Result<(), EncodeError> {
        self.rows += 1;
        match &mut self.body {
            Body::Text { sink, line, json } => {
                line.clear();
                if *json {
                    let targets: Vec<&str> = self.targets.iter().map(String::as_str).collect();
                    json_line(&targets, values, line);
                } else {
                    csv_line(values, &self.csv, line);
                }
                sink.write_all(line.as_bytes()).map_err(|source| EncodeError::Io { file: self.name.clone(), source })
            }
            Body::Parquet { columns, buffered, .. } => {
                for (c, v) in columns.iter_mut().zip(values) {
                    c.append_option(v.as_deref());
                }
                *buffered += 1;
                if *buffered >= PARQUET_BATCH { self.flush_parquet() } else { Ok(()) }
            }
        }
    }

    fn flush_parquet(&mut self) -> Result<(), EncodeError> {
        if let Body::Parquet { writer, columns, buffered } = &mut self.body {
            if *buffered == 0 {
                return Ok(());
            }
            let arrays: Vec<ArrayRef> = columns.iter_mut().map(|c| Arc::new(c.finish()) as ArrayRef).collect();
            let batch = RecordBatch::try_new(self.schema.clone(), arrays)
                .map_err(|source| EncodeError::Arrow { file: self.name.clone(), source })?;
            writer.write(&batch).map_err(|source| EncodeError::Parquet { file: self.name.clone(), source })?;
            *buffered = 0;
        }
        Ok(())
    }

    /// Finishes the encoding; the returned writer still has to be committed.
    pub fn finish(mut self) -> Result<Box<dyn ObjectWriter>, EncodeError> {
        self.flush_parquet()?;
        let name = self.name.clone();
        match self.body {
            Body::Text { sink, .. } => sink.finish().map_err(|source| EncodeError::Io { file: name, source }),
            Body::Parquet { writer, .. } => {
                writer.into_inner().map_err(|source| EncodeError::Parquet { file: name, source })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(values: &[Option<&str>], d: &CsvDialect) -> String {
        let mut out = String::new();
        csv_line(values, d, &mut out);
        out
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        let d = CsvDialect::default();
        assert_eq!(line(&[Some("a"), None, Some("b c")], &d), "a,,b c\n");
        assert_eq!(line(&[Some("a,b"), Some("say \"hi\""), Some("x\ny")], &d), "\"a,b\",\"say \"\"hi\"\"\",\"x\ny\"\n");
        assert_eq!(line(&[Some(" padded ")], &d), "\" padded \"\n");
    }

    #[test]
    fn csv_dialect_options_apply() {
        let d = CsvDialect { delimiter: ';', quote: '\'', escape: Some('\\'), header: true, null_value: "NULL".into() };
        assert_eq!(line(&[Some("a;b"), None, Some("it's"), Some("")], &d), "'a;b';NULL;'it\\'s';''\n");
        assert_eq!(line(&[Some("back\\slash")], &d), "'back\\\\slash'\n");
    }

    #[test]
    fn json_lines_keep_nulls() {
        let mut out = String::new();
        json_line(&["name", "email"], &[None, Some("a\"b\\c\n@d".into())], &mut out);
        assert_eq!(out, "{\"name\":null,\"email\":\"a\\\"b\\\\c\\n@d\"}\n");
        let parsed: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(parsed["email"], "a\"b\\c\n@d");
    }
}

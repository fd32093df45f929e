//! The `File` connector: a local folder. Objects are written as `.<name>.tmp-<pid>` and renamed
//! on commit; an aborted or dropped writer removes its temporary file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{Connector, ConnectorError, ObjectWriter};

pub struct FileConnector {
    root: PathBuf,
}

impl FileConnector {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn io_error(target: &Path, source: std::io::Error) -> ConnectorError {
    ConnectorError::Io { connector: "File", target: target.display().to_string(), source }
}

impl Connector for FileConnector {
    fn describe(&self) -> String {
        format!("File({})", self.root.display())
    }

    fn probe(&self) -> Result<(), ConnectorError> {
        std::fs::create_dir_all(&self.root).map_err(|e| io_error(&self.root, e))?;
        let probe = self.root.join(format!(".outflow-probe-{}", std::process::id()));
        std::fs::write(&probe, b"ok").map_err(|e| io_error(&probe, e))?;
        std::fs::remove_file(&probe).map_err(|e| io_error(&probe, e))
    }

    fn open(&self, name: &str) -> Result<Box<dyn ObjectWriter>, ConnectorError> {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(io_error(
                &self.root.join(name),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a plain file name"),
            ));
        }
        std::fs::create_dir_all(&self.root).map_err(|e| io_error(&self.root, e))?;
        let final_path = self.root.join(name);
        let temp_path = self.root.join(format!(".{name}.tmp-{}", std::process::id()));
        let file = File::create(&temp_path).map_err(|e| io_error(&temp_path, e))?;
        Ok(Box::new(FileWriter { out: Some(BufWriter::with_capacity(1 << 20, file)), temp_path, final_path }))
    }
}

pub struct FileWriter {
    out: Option<BufWriter<File>>,
    temp_path: PathBuf,
    final_path: PathBuf,
}

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.out {
            Some(out) => out.write(buf),
            None => Err(std::io::Error::other("writer already finished")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

impl ObjectWriter for FileWriter {
    fn commit(mut self: Box<Self>) -> Result<u64, ConnectorError> {
        let out =
            self.out.take().ok_or_else(|| io_error(&self.final_path, std::io::Error::other("already finished")))?;
        let file = out.into_inner().map_err(|e| io_error(&self.temp_path, e.into_error()))?;
        file.sync_all().map_err(|e| io_error(&self.temp_path, e))?;
        let bytes = file.metadata().map_err(|e| io_error(&self.temp_path, e))?.len();
        drop(file);
        std::fs::rename(&self.temp_path, &self.final_path).map_err(|e| io_error(&self.final_path, e))?;
        Ok(bytes)
    }

    fn abort(mut self: Box<Self>) {
        self.out.take();
        let _ = std::fs::remove_file(&self.temp_path);
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_appear_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let c = FileConnector::new(dir.path());
        c.probe().unwrap();
        let mut w = c.open("a.csv").unwrap();
        w.write_all(b"x,y\n").unwrap();
        assert!(!dir.path().join("a.csv").exists());
        assert_eq!(w.commit().unwrap(), 4);
        assert_eq!(std::fs::read(dir.path().join("a.csv")).unwrap(), b"x,y\n");

        let mut w = c.open("b.csv").unwrap();
        w.write_all(b"1").unwrap();
        w.abort();
        let mut w = c.open("c.csv").unwrap();
        w.write_all(b"1").unwrap();
        drop(w);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.csv")]);
        assert!(c.open("../escape").is_err());
    }
}

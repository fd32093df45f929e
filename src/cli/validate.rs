use std::path::PathBuf;

use crate::manifest::ManifestSet;
use crate::manifest::check::{check, counts};

pub fn run(paths: &[PathBuf]) -> anyhow::Result<i32> {
    let set = match ManifestSet::read(paths) {
        Ok(set) => set,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s)", errors.len());
            return Ok(1);
        }
    };
    let findings = check(&set, chrono::Utc::now());
    for f in &findings {
        eprintln!("error: {f}");
    }
    if findings.is_empty() {
        println!("ok: {}", counts(&set));
        Ok(0)
    } else {
        eprintln!("{} error(s) in {}", findings.len(), counts(&set));
        Ok(1)
    }
}

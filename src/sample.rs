//! `outflow sample-profiles`: a deterministic profile-store snapshot of any size, for demos,
//! tests and benchmarks. Built batch by batch, so memory stays bounded whatever the count.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use parquet::arrow::ArrowWriter;

use crate::export::record::{
    ConsentValue, Consents, EmailAddress, HomeAddress, IdentityEntry, MarketingConsents, Membership, Person,
    PersonName, PhoneNumber, Profile, profile_schema, to_batch,
};

/// Rows per generated batch.
pub const BATCH_ROWS: usize = 65_536;
/// Rows per Parquet (or NDJSON) file.
pub const ROWS_PER_FILE: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    Parquet,
    Ndjson,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    pub count: u64,
    pub seed: u64,
    pub segments: u32,
    pub format: SampleFormat,
    pub rows_per_file: u64,
}

impl Default for SampleSpec {
    fn default() -> Self {
        Self { count: 1000, seed: 42, segments: 5, format: SampleFormat::Parquet, rows_per_file: ROWS_PER_FILE }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parquet { path: PathBuf, source: parquet::errors::ParquetError },
    #[error("building a batch of profiles: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{path}: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
}

/// A tiny deterministic generator (splitmix64).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &["Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Edsger"];
const LAST: &[&str] = &["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie"];
const DOMAINS: &[&str] = &["example.com", "mail.test", "corp.example.org"];
const CITIES: &[(&str, &str, &str)] = &[
    ("San Francisco", "US", "94107"),
    ("London", "GB", "EC1A 1BB"),
    ("Paris", "FR", "75001"),
    ("Berlin", "DE", "10115"),
    ("Zürich", "CH", "8001"),
];

/// The base of all qualification times: 2026-01-01T00:00:00Z.
const BASE_SECONDS: i64 = 1_767_225_600;

/// The profile with index `i` of the data set seeded with `seed`; independent of batch sizes.
pub fn profile(seed: u64, i: u64, segments: u32) -> Profile {
    let mut r = SplitMix64::new(seed ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03));
    r.next_u64();
    let first = r.pick(FIRST);
    let last = r.pick(LAST);
    // About 2% reuse the previous profile's email, so deduplication has something to do.
    let email_owner = if i > 0 && r.chance(2) { i - 1 } else { i };
    let clean_email = format!("user{email_owner}@{}", DOMAINS[(email_owner % DOMAINS.len() as u64) as usize]);
    let messy_email = match r.below(10) {
        0 => clean_email.to_uppercase(),
        1 => format!("  {clean_email} "),
        2 => format!(" User{email_owner}@{}", &clean_email[clean_email.find('@').unwrap_or(0) + 1..].to_uppercase()),
        _ => clean_email.clone(),
    };
    let digits = 1_000_000 + r.below(9_000_000);
    let phone = match r.below(4) {
        0 => format!("+1 (415) {}-{}", digits / 10_000 % 1000, digits % 10_000),
        1 => format!("0044 20 {} {}", digits / 10_000 % 10_000, digits % 10_000),
        2 => format!("+33-1-{}-{}", digits / 10_000 % 1000, digits % 10_000),
        _ => format!("+49{digits}"),
    };
    let (city, country, postal) = CITIES[r.below(CITIES.len() as u64) as usize];
    let consent = match r.below(100) {
        0..70 => Some("y"),
        70..95 => Some("n"),
        _ => None,
    };

    let mut identities = BTreeMap::new();
    if !r.chance(5) {
        let mut entries = vec![IdentityEntry { id: Some(clean_email.clone()), primary: Some(true) }];
        if r.chance(10) {
            // A secondary address listed first: the primary one must still win.
            entries.insert(0, IdentityEntry { id: Some(format!("alt{i}@{}", DOMAINS[0])), primary: Some(false) });
        }
        identities.insert("email".to_string(), entries);
    }
    if !r.chance(5) {
        identities.insert("phone".to_string(), vec![IdentityEntry { id: Some(phone.clone()), primary: Some(true) }]);
    }
    if !r.chance(5) {
        identities.insert("crmId".to_string(), vec![IdentityEntry { id: Some(format!("crm-{i:08}")), primary: None }]);
    }

    let mut membership = BTreeMap::new();
    for s in 0..segments {
        if r.chance(40) {
            let status = match r.below(100) {
                0..50 => "realized",
                50..85 => "existing",
                _ => "exited",
            };
            let seconds = BASE_SECONDS + r.below(90 * 86_400) as i64;
            membership.insert(
                format!("seg-{s}"),
                Membership {
                    status: Some(status.to_string()),
                    last_qualification_time: DateTime::<Utc>::from_timestamp(seconds, 0),
                },
            );
        }
    }

    let missing = |r: &mut SplitMix64| r.chance(5);
    Profile {
        profile_id: Some(format!("p{i:09}")),
        identity_map: Some(identities),
        person: (!missing(&mut r)).then(|| Person {
            name: Some(PersonName { first_name: Some(first.into()), last_name: Some(last.into()) }),
        }),
        personal_email: (!missing(&mut r)).then_some(EmailAddress { address: Some(messy_email) }),
        mobile_phone: (!missing(&mut r)).then_some(PhoneNumber { number: Some(phone) }),
        home_address: (!missing(&mut r)).then(|| HomeAddress {
            city: Some(city.into()),
            country: Some(country.into()),
            postal_code: Some(postal.into()),
        }),
        consents: Some(Consents {
            marketing: Some(MarketingConsents { email: Some(ConsentValue { val: consent.map(String::from) }) }),
        }),
        segment_membership: (!missing(&mut r)).then_some(membership),
    }
}

/// Row groups of one generated batch each, so memory stays at a batch whatever the file size.
fn writer_properties() -> parquet::file::properties::WriterProperties {
    parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(BATCH_ROWS)).build()
}

/// One output file being written under a temporary name.
enum PartFile {
    Parquet(Box<ArrowWriter<File>>),
    Ndjson(BufWriter<File>),
}

/// Writes the data set into `dir` (created if needed); returns the files written.
pub fn write_sample(dir: &Path, spec: &SampleSpec) -> Result<Vec<PathBuf>, SampleError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SampleError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ext = match spec.format {
        SampleFormat::Parquet => "parquet",
        SampleFormat::Ndjson => "ndjson",
    };
    let rows_per_file = spec.rows_per_file.max(1);
    let mut written = Vec::new();
    let mut start = 0u64;
    let mut part = 0usize;
    while start < spec.count || (spec.count == 0 && part == 0) {
        let end = (start + rows_per_file).min(spec.count);
        let final_path = dir.join(format!("part-{part:05}.{ext}"));
        let tmp_path = dir.join(format!(".part-{part:05}.{ext}.tmp-{}", std::process::id()));
        let file = File::create(&tmp_path).map_err(io(&tmp_path))?;
        let mut out = match spec.format {
            SampleFormat::Parquet => PartFile::Parquet(Box::new(
                ArrowWriter::try_new(file, profile_schema(), Some(writer_properties()))
                    .map_err(|source| SampleError::Parquet { path: tmp_path.clone(), source })?,
            )),
            SampleFormat::Ndjson => PartFile::Ndjson(BufWriter::with_capacity(1 << 20, file)),
        };
        let result = write_rows(&mut out, spec, start, end, &tmp_path).and_then(|()| match out {
            PartFile::Parquet(w) => {
                w.close().map(|_| ()).map_err(|source| SampleError::Parquet { path: tmp_path.clone(), source })
            }
            PartFile::Ndjson(w) => {
                w.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all()).map_err(io(&tmp_path))
            }
        });
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp_path);
            return Err(e);
        }
        std::fs::rename(&tmp_path, &final_path).map_err(io(&final_path))?;
        written.push(final_path);
        start = end;
        part += 1;
    }
    Ok(written)
}

fn write_rows(out: &mut PartFile, spec: &SampleSpec, start: u64, end: u64, path: &Path) -> Result<(), SampleError> {
    let mut at = start;
    while at < end {
        let stop = (at + BATCH_ROWS as u64).min(end);
        let profiles: Vec<Profile> = (at..stop).map(|i| profile(spec.seed, i, spec.segments)).collect();
        match out {
            PartFile::Parquet(w) => {
                let batch = to_batch(&profiles)?;
                w.write(&batch).map_err(|source| SampleError::Parquet { path: path.to_path_buf(), source })?;
            }
            PartFile::Ndjson(w) => {
                for p in &profiles {
                    serde_json::to_writer(&mut *w, p)
                        .map_err(|source| SampleError::Json { path: path.to_path_buf(), source })?;
                    w.write_all(b"\n").map_err(|source| SampleError::Io { path: path.to_path_buf(), source })?;
                }
            }
        }
        at = stop;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_deterministic_and_vary() {
        assert_eq!(profile(7, 123, 5), profile(7, 123, 5));
        assert_ne!(profile(7, 123, 5), profile(8, 123, 5));
        let with_membership = (0..200).filter(|i| profile(1, *i, 5).segment_membership.is_some()).count();
        assert!((170..200).contains(&with_membership), "{with_membership}");
    }

    #[test]
    fn batches_match_the_schema() {
        let profiles: Vec<Profile> = (0..100).map(|i| profile(3, i, 4)).collect();
        let batch = to_batch(&profiles).unwrap();
        assert_eq!(batch.num_rows(), 100);
        assert_eq!(batch.schema(), profile_schema());
    }
}

use std::path::PathBuf;

use crate::sample::{SampleFormat, SampleSpec, write_sample};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many profiles.
    #[arg(long)]
    pub count: u64,
    /// The folder the files are written into (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// parquet or ndjson.
    #[arg(long, value_enum, default_value_t = Format::Parquet)]
    pub format: Format,
    /// Seed of the generator; the same seed gives the same profiles.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Segments seg-0 … seg-(K-1).
    #[arg(long, default_value_t = 5)]
    pub segments: u32,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Parquet,
    Ndjson,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let spec = SampleSpec {
        count: args.count,
        seed: args.seed,
        segments: args.segments,
        format: match args.format {
            Format::Parquet => SampleFormat::Parquet,
            Format::Ndjson => SampleFormat::Ndjson,
        },
        ..SampleSpec::default()
    };
    let started = std::time::Instant::now();
    match write_sample(&args.out, &spec) {
        Ok(files) => {
            println!(
                "wrote {} profiles in {} file(s) to {} in {:.1}s",
                args.count,
                files.len(),
                args.out.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(1)
        }
    }
}

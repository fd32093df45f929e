use std::path::PathBuf;

use anyhow::Context;
use kube::api::{Api, ListParams};

use crate::api::Destination;
use crate::manifest::ManifestSet;

pub async fn run(paths: &[PathBuf]) -> anyhow::Result<i32> {
    let destinations: Vec<Destination> = if paths.is_empty() {
        let client = kube::Client::try_default()
            .await
            .context("connecting to the cluster (give -f DIR to read a folder instead)")?;
        Api::<Destination>::all(client).list(&ListParams::default()).await.context("listing Destinations")?.items
    } else {
        match ManifestSet::read(paths) {
            Ok(set) => set.destinations.into_iter().map(|d| d.object).collect(),
            Err(errors) => {
                for e in errors {
                    eprintln!("error: {e}");
                }
                return Ok(1);
            }
        }
    };
    print!("{}", table(&destinations));
    Ok(0)
}

/// The catalog as a table: name, category, export type, connector, display name.
pub fn table(destinations: &[Destination]) -> String {
    let mut rows: Vec<[String; 5]> = destinations
        .iter()
        .map(|d| {
            [
                d.metadata.name.clone().unwrap_or_default(),
                format!("{:?}", d.spec.category),
                format!("{:?}", d.spec.export_type),
                serde_json::to_value(d.spec.connector)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                d.spec.display_name.clone(),
            ]
        })
        .collect();
    rows.sort();
    super::print_table(&["NAME", "CATEGORY", "EXPORT TYPE", "CONNECTOR", "DISPLAY NAME"], &rows)
}

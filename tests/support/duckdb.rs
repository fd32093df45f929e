//! DuckDB, the oracle for exported data, through Python's `duckdb` package.

use std::process::Command;

use serde_json::Value;

/// Whether `python3 -c 'import duckdb'` works. Under `CI=true` a missing DuckDB fails the test
/// instead of skipping it.
pub fn available() -> bool {
    let ok = Command::new("python3").args(["-c", "import duckdb"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "DuckDB is required under CI=true: pip install duckdb");
        eprintln!("SKIPPED: python3 -c 'import duckdb' failed (pip install duckdb)");
    }
    ok
}

/// The first column of a query, each value as a string.
pub fn column(sql: &str) -> Vec<String> {
    let script = format!("import duckdb, json\nfor (v,) in duckdb.sql({sql:?}).fetchall():\n    print(json.dumps(v))");
    let out = Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "duckdb: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| match serde_json::from_str::<Value>(l).unwrap() {
            Value::String(s) => s,
            other => other.to_string(),
        })
        .collect()
}

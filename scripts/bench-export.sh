#!/usr/bin/env bash
# Outflow and DuckDB side by side on the same generated profile store, three jobs:
#   1. profile export of one segment, consent filter, four fields to CSV
#   2. the same, gzip-compressed
#   3. segment export of SHA-256-hashed (trimmed, lower-cased) emails with the membership status
# Prints wall time, peak memory (max RSS) and the Outflow/DuckDB ratio per job, and checks both
# wrote the same number of rows. A benchmark, not a test: nothing here asserts a timing.
# Usage: scripts/bench-export.sh [COUNT]   (builds the release binary; installs duckdb with pip)
set -euo pipefail
COUNT="${1:-10000000}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${OUTFLOW_BIN:-$ROOT/target/release/outflow}"
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release --quiet)
python3 -c "import duckdb" 2>/dev/null || python3 -m pip install --quiet "duckdb==2.0.1"
WORK="${BENCH_WORK:-$(mktemp -d)}"
[ -n "${BENCH_WORK:-}" ] || trap 'rm -rf "$WORK"' EXIT
PROFILES="${PROFILES:-$ROOT/target/bench-profiles-$COUNT}"
if [ ! -d "$PROFILES" ]; then
  echo "generating $COUNT profiles into $PROFILES (kept for later runs)"
  "$BIN" sample-profiles --count "$COUNT" --out "$PROFILES"
fi

manifests() { # $1 = job name, $2 = compression, $3 = fields yaml
  mkdir -p "$WORK/$1/manifests" "$WORK/$1/out"
  cat > "$WORK/$1/manifests/all.yaml" <<YAML
apiVersion: outflow.dev/v1alpha1
kind: Destination
metadata: {name: local-files}
spec:
  displayName: Local files
  category: CloudStorage
  exportType: Profile
  connector: File
  account:
    parameters: [{name: path, required: true}]
  formats: [CSV]
  compression: [None, Gzip]
---
apiVersion: outflow.dev/v1alpha1
kind: Account
metadata: {name: local, namespace: bench}
spec:
  destination: local-files
  parameters: {path: "$WORK/$1/out"}
---
apiVersion: outflow.dev/v1alpha1
kind: Dataflow
metadata: {name: bench, namespace: bench}
spec:
  account: local
  enabled: true
  segments:
    - id: seg-1
      schedule: {daily: {at: "06:00"}}
  fields:
$3
  output: {format: CSV, compression: $2}
YAML
}

PROFILE_FIELDS='    - {source: profile_id, target: profile_id}
    - {source: personalEmail.address, target: email, transforms: [Trim, Lowercase]}
    - {source: person.name.firstName, target: first_name}
    - {source: segmentMembership.status, target: status}'
HASHED_FIELDS='    - {source: personalEmail.address, target: email_sha256, transforms: [SHA256]}
    - {source: segmentMembership.status, target: status}'
manifests csv None "$PROFILE_FIELDS"
manifests csv-gzip Gzip "$PROFILE_FIELDS"
manifests hashed None "$HASHED_FIELDS"

SELECTED="FROM (SELECT *, map_extract_value(segmentMembership, 'seg-1') AS m FROM read_parquet('$PROFILES/*.parquet'))
  WHERE m.status IN ('realized', 'existing') AND consents.marketing.email.val = 'y'"
PROFILE_SQL="SELECT profile_id, lower(trim(personalEmail.address)) AS email, person.name.firstName AS first_name, m.status $SELECTED"
HASHED_SQL="SELECT CASE WHEN personalEmail.address IS NULL THEN NULL ELSE sha256(lower(trim(personalEmail.address))) END AS email_sha256, m.status $SELECTED"

measure() { # label, command... ; prints "seconds kb"
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/stderr" || { cat "$WORK/stderr"; exit 1; }
  cat "$WORK/time"
}

rows() { if [[ $1 == *.gz ]]; then gzip -dc "$1" | wc -l; else wc -l < "$1"; fi; }

printf '\n%-10s %12s %12s %8s %14s %14s %10s %10s\n' job outflow_s duckdb_s ratio outflow_MiB duckdb_MiB out_rows duck_rows
for job in csv csv-gzip hashed; do
  case $job in
    csv) sql="$PROFILE_SQL"; opts="(HEADER)"; duck_out="$WORK/$job/duckdb.csv" ;;
    csv-gzip) sql="$PROFILE_SQL"; opts="(HEADER, COMPRESSION gzip)"; duck_out="$WORK/$job/duckdb.csv.gz" ;;
    hashed) sql="$HASHED_SQL"; opts="(HEADER)"; duck_out="$WORK/$job/duckdb.csv" ;;
  esac
  read -r o_s o_kb < <(measure "$BIN" export -f "$WORK/$job/manifests" --dataflow bench/bench --profiles "$PROFILES")
  read -r d_s d_kb < <(measure python3 -c "import duckdb; duckdb.connect().execute(\"\"\"COPY ($sql) TO '$duck_out' $opts\"\"\")")
  out_file=$(ls "$WORK/$job/out"/* | head -1)
  printf '%-10s %12s %12s %8.2f %14.0f %14.0f %10s %10s\n' "$job" "$o_s" "$d_s" "$(echo "$o_s / $d_s" | bc -l)" \
    "$(echo "$o_kb / 1024" | bc -l)" "$(echo "$d_kb / 1024" | bc -l)" "$(( $(rows "$out_file") - 1 ))" "$(( $(rows "$duck_out") - 1 ))"
  rm -rf "$WORK/$job/out"/* "$duck_out"
done

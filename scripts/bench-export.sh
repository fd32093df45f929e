#!/usr/bin/env bash
# Side-by-side timing of `outflow export` and DuckDB on the same generated profile store:
# full export of one segment, consent filter, four fields (one lower-cased and trimmed) to CSV.
# Usage: scripts/bench-export.sh [COUNT]   (needs a release build and `pip install duckdb`)
set -euo pipefail
COUNT="${1:-1000000}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${OUTFLOW_BIN:-$ROOT/target/release/outflow}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [ -n "${PROFILES:-}" ]; then ln -s "$PROFILES" "$WORK/profiles"; else "$BIN" sample-profiles --count "$COUNT" --out "$WORK/profiles"; fi
mkdir -p "$WORK/manifests"
cat > "$WORK/manifests/all.yaml" <<YAML
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
  formats: [CSV, JSONLines, Parquet]
---
apiVersion: outflow.dev/v1alpha1
kind: Account
metadata: {name: local, namespace: bench}
spec:
  destination: local-files
  parameters: {path: "$WORK/out"}
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
    - {source: profile_id, target: profile_id}
    - {source: personalEmail.address, target: email, transforms: [Trim, Lowercase]}
    - {source: person.name.firstName, target: first_name}
    - {source: segmentMembership.status, target: status}
YAML

echo "== outflow ($COUNT profiles)"
/usr/bin/time -f "outflow: %e s wall, %M KB max RSS" \
  "$BIN" export -f "$WORK/manifests" --dataflow bench/bench --profiles "$WORK/profiles"

echo "== duckdb"
python3 - "$WORK" <<'PY'
import sys, time, duckdb, resource
work = sys.argv[1]
t = time.time()
duckdb.connect().execute(f"""
COPY (
  SELECT profile_id, lower(trim(personalEmail.address)) AS email, person.name.firstName AS first_name, m.status
  FROM (SELECT *, map_extract_value(segmentMembership, 'seg-1') AS m FROM read_parquet('{work}/profiles/*.parquet'))
  WHERE m.status IN ('realized', 'existing') AND consents.marketing.email.val = 'y'
) TO '{work}/duckdb.csv' (HEADER)
""")
print(f"duckdb: {time.time() - t:.2f} s wall, {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} KB max RSS")
PY
wc -l "$WORK"/out/*.csv "$WORK/duckdb.csv"

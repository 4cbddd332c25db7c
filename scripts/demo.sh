#!/usr/bin/env bash
# The main job, end to end on the fixtures: install what is missing, build, ingest the fixture
# episodes into a fresh embedded catalog (separated and fingerprinted with the committed
# models), scan the fixture uploads, print every match region beside the ground truth, then
# list the pending matches and write the CSV match report with its evidence clips.
#
# Each step is a function named step_*, run in the order of STEPS; later stages of aniprint
# (scan the uploads, review, report) append their own steps.
#
#   ./scripts/demo.sh                       # fresh temporary catalog
#   DEMO_CATALOG=./catalog ./scripts/demo.sh  # keep it (re-running it is a no-op ingest)
set -euo pipefail
cd "$(dirname "$0")/.."

CATALOG="${DEMO_CATALOG:-$(mktemp -d -t aniprint-demo.XXXXXX)/catalog}"
BIN=target/release/aniprint

step_setup() {
  ./scripts/setup.sh
  command -v cargo >/dev/null || {
    echo "cargo not found: install Rust (https://rustup.rs), then run this again" >&2
    exit 1
  }
}

step_build() {
  cargo build --release
}

step_scan() {
  # ingest fixtures/episodes, scan fixtures/uploads, compare with fixtures/truth.csv
  "$BIN" demo --keep "$CATALOG"
}

step_list() {
  "$BIN" --catalog "$CATALOG" ls pieces
  echo
  "$BIN" --catalog "$CATALOG" review ls
}

step_report() {
  # with each match's upload and episode stretches as FLAC clips beside it (evidence_ref)
  "$BIN" --catalog "$CATALOG" report -o "$CATALOG/../report.csv" --evidence "$CATALOG/../evidence"
  echo "match report: $CATALOG/../report.csv, evidence clips in $CATALOG/../evidence"
}

STEPS=(step_setup step_build step_scan step_list step_report)

for step in "${STEPS[@]}"; do
  echo "== ${step#step_}"
  "$step"
done
echo "== done: the catalog is in $CATALOG"

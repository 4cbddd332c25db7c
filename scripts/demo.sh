#!/usr/bin/env bash
# The main job, end to end on the fixtures: install what is missing, build, ingest the fixture
# episodes into a fresh catalog and list their pieces.
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

step_ingest() {
  "$BIN" --catalog "$CATALOG" ingest fixtures/episodes
}

step_list() {
  "$BIN" --catalog "$CATALOG" ls episodes
  echo
  "$BIN" --catalog "$CATALOG" ls pieces
  echo
  "$BIN" --catalog "$CATALOG" catalog stats
}

STEPS=(step_setup step_build step_ingest step_list)

for step in "${STEPS[@]}"; do
  echo "== ${step#step_}"
  "$step"
done
echo "== done: the catalog is in $CATALOG"

#!/usr/bin/env bash
# Everything CI checks: formatting, lints (warnings are errors) and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test

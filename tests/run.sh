#!/usr/bin/env bash
# The project's test command (README): the doc tests, then every unit, scenario, plugin and
# whole-daemon test under nextest (last, so its summary closes the output).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked --doc
cargo nextest run --workspace --locked --no-fail-fast

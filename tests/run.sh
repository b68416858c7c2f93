#!/usr/bin/env bash
# The project's test command (README): every unit, scenario and whole-daemon test, then the
# doc tests, then the engine micro-benchmark in its short mode so that it is proven to run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo nextest run --workspace --locked --no-fail-fast
cargo test --workspace --locked --doc

#!/usr/bin/env bash
# A bounded hostile-input run: the property tests that stand in for a
# fuzzer (no cargo-fuzz toolchain here), with many more cases than CI uses.
#   scripts/fuzz.sh [CASES]     (default 20000 per property)
# A failure prints the minimal input proptest shrank it to; add it as a
# regression test next to the property.
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${1:-20000}"
cargo test --release -p callvault-domain phone                       # phone-number parser
cargo test --release -p callvault-migrations --test hostile          # codec and upcasters
cargo test --release -p callvault-store --test blob hostile          # blob header and segments
cargo test --release -p callvault --lib auth::tests::hostile_tokens  # JWT and claims

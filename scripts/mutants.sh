#!/usr/bin/env bash
# Mutation testing of the claim path (src/claim/) with cargo-mutants 27: every mutant (an
# operator flipped, a body replaced by a default, ...) is built and the giftcodes package's
# tests are run against it; a mutant the tests do not catch is "missed". Results go to
# mutants.out/ (not committed); the counts and every missed mutant's reason go in mutants.md.
#
# Not in CI: ~140 mutants at 30–60 s each (1–2 h on 2 cores). Needs the local MariaDB (as the
# tests do). Run it in shards across sessions if need be:
#   bash scripts/mutants.sh                  # everything, two mutants at a time
#   bash scripts/mutants.sh --shard 0/4      # a quarter of them (k counts from 0: 0/4 … 3/4)
#   bash scripts/mutants.sh -f src/store/    # other files (examine_globs in .cargo/mutants.toml)
# Settings: .cargo/mutants.toml (files, profile, timeouts). Extra arguments go to cargo mutants.
set -euo pipefail
cd "$(dirname "$0")/.."

version=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -q "$version"; then
  cargo install cargo-mutants --version "$version" --locked
fi
bash scripts/mariadb-test-login.sh
# The tests the mutants run against drive faketime too (as scripts/test does).
bash scripts/test-tools.sh
status=0
cargo mutants --jobs "${MUTANTS_JOBS:-2}" "$@" || status=$?
# cargo-mutants exits 2 when mutants were missed, 3 on timeouts, 4 if the baseline failed.
outcomes=mutants.out/outcomes.json
if [ -f "$outcomes" ]; then
  python3 - "$outcomes" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
print("mutants: {total} in all: {caught} caught, {missed} missed, {unviable} unviable, "
      "{timeout} timeout".format(
          total=data.get("total_mutants"), caught=data.get("caught"), missed=data.get("missed"),
          unviable=data.get("unviable"), timeout=data.get("timeout")))
PY
  [ -s mutants.out/missed.txt ] && { echo "missed:"; cat mutants.out/missed.txt; }
fi
exit "$status"

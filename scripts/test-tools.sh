#!/usr/bin/env bash
# Installs the Debian packages the test suite drives as real components when they are missing:
# faketime (libfaketime: one service instance runs with its clock hours off in
# tests/api/multi_process.rs). Called by scripts/test and scripts/mutants.sh; safe to run again.
set -euo pipefail

missing=()
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || missing+=(faketime)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "test-tools: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
fi

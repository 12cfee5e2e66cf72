#!/usr/bin/env bash
# `kernelwatch fidelity` on a GPU machine whose torch is preinstalled (see device-run.sh):
# first the measuring core's GPU tests (the injected slowdown among them), then the fidelity
# runs with the flags given. The saved samples and the table come back packed (pack_out).
#
# Usage: scripts/device-fidelity.sh [kernelwatch fidelity flags...]
# The figures in docs/measurement.md (GPU):
#   scripts/device-fidelity.sh --workload rope --param shape=llama-3.2-1b \
#       --param shape=llama-3.1-8b --param dtype=bfloat16 --param variant=eager \
#       --param variant=compile --runs 16 --slowdowns 0.01,0.03
# Time limits (seconds): KERNELWATCH_TEST_TIMEOUT (default 120) for the tests and
# KERNELWATCH_RUN_TIMEOUT (default 480) for the fidelity runs; a run cut short keeps the
# cases it finished (the file is written after each case).
set -uo pipefail
source "$(dirname "$0")/device-env.sh"
kw env | tee "$out/env.txt"
timeout "${KERNELWATCH_TEST_TIMEOUT:-120}" python3 -m pytest -q -rs tests/test_measure.py \
  -k "gpu or cuda" 2>&1 | tail -6 | tee "$out/pytest-measure.txt"
timeout "${KERNELWATCH_RUN_TIMEOUT:-480}" python3 -m kernelwatch.cli fidelity "$@" \
  2>&1 | tee "$out/fidelity.log"
cp .kernelwatch/fidelity/*.json "$out/" 2>/dev/null
kw fidelity --show > "$out/fidelity-table.md" 2>&1

#!/usr/bin/env bash
# Any workload on a GPU machine whose torch is preinstalled (asv's `existing` environment).
# Needs the wheels of `make gpu-wheels` in .whl/ (asv and the workloads' extra libraries are
# not installed there). Results, logs and the report come back packed (device-env.sh's
# pack_out).
#
# Usage: scripts/device-run.sh WORKLOAD [kernelwatch run flags...]
#   1. the workload's GPU tests (tests/test_WORKLOAD.py -k gpu), which check every variant
#      against its reference on the GPU;
#   2. kernelwatch run --existing --workload WORKLOAD FLAGS (one asv call per metric family,
#      each saved when it ends, so a run cut at a lease's limit keeps what finished);
#   3. kernelwatch report: the table (speedups, % of bound, the workload's own summary).
# Examples (the figures in docs/findings/: rope-gpu.md, gptq-gpu.md, gpt2-gpu.md):
#   scripts/device-run.sh rope --param shape=llama-3.1-8b --param dtype=bfloat16 --metric time
#   scripts/device-run.sh gptq --param shape=qwen2.5-3b/q_proj --param blocksize=128 --metric time
#   scripts/device-run.sh gpt2 --param size=gpt2-xl --param variant=bf16 --param variant=compile
# Time limits (seconds): KERNELWATCH_TEST_TIMEOUT (default 150) for the tests and
# KERNELWATCH_RUN_TIMEOUT (default 480) for the run; KERNELWATCH_BENCHMARK_TIMEOUT is asv's
# budget per benchmark process, as everywhere.
set -uo pipefail
workload=${1:?usage: scripts/device-run.sh WORKLOAD [kernelwatch run flags...]}
shift
source "$(dirname "$0")/device-env.sh"
kw env | tee "$out/env.txt"
if [ -f "tests/test_$workload.py" ]; then
  timeout "${KERNELWATCH_TEST_TIMEOUT:-150}" python3 -m pytest -q -rs "tests/test_$workload.py" -k gpu 2>&1 \
    | tail -8 | tee "$out/pytest-$workload.txt"
fi
timeout "${KERNELWATCH_RUN_TIMEOUT:-480}" python3 -m kernelwatch.cli run --existing --workload "$workload" "$@" \
  > "$out/asv-$workload.log" 2>&1
echo "kernelwatch run exit $?"
grep -E "timed out|failed|error" "$out/asv-$workload.log" | grep -v "^\s*$" | head -20
kw report | tee "$out/report.txt"

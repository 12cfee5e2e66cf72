#!/usr/bin/env bash
# GPTQ on a GPU machine whose torch is preinstalled (asv's `existing` environment).
# Needs the wheels of `make gpu-wheels` in .whl/ (asv and llm-compressor are not installed there).
# Usage: scripts/device-gptq.sh table|asv|blocks   (results and logs go to $OUT, or ./gpu-out)
#   table: the GPU tests of the fused kernel, then the per-layer table for Qwen2.5-3B (one process)
#   asv:    kernelwatch run --existing over q_proj at block 128: time, first run (cold), compile
#           health and CUDA memory of eager, compile-column, triton and llmcompressor
#   blocks: compile-block's first run (cold) at block sizes 16..128 under a 120 s budget each
set -uo pipefail
phase=${1:-table}
source "$(dirname "$0")/device-env.sh"
if [ "$phase" = table ]; then
  kw env | tee "$out/env.txt"
  python3 -c "from kernelwatch.workloads import gptq; gptq._llmcompressor(False); print('llmcompressor imports')" 2>&1 | tail -2
  timeout 120 python3 -m pytest -q -rs tests/test_gptq.py -k "gpu or llmcompressor" 2>&1 | tail -6 | tee "$out/pytest.txt"
  timeout 400 python3 scripts/gptq_device_table.py 2>&1 | grep --line-buffered -v -i warn | tee "$out/table.txt"
else
  q=(--workload gptq --shape qwen2.5-3b/q_proj --scheme w4-sym-g128)
  if [ "$phase" = asv ]; then
    timeout 400 python3 -m kernelwatch.cli run --existing "${q[@]}" --blocksize 128 \
      --variant eager --variant compile-column --variant triton --variant llmcompressor \
      --metric time --metric first-run --metric cuda-memory --metric compile > "$out/asv-main.log" 2>&1
    echo "asv exit $?"; grep -E "timed out|failed" "$out"/asv-main.log | head
  else  # blocks
    KERNELWATCH_BENCHMARK_TIMEOUT=120 timeout 560 python3 -m kernelwatch.cli run --existing "${q[@]}" \
      --blocksize 16 --blocksize 32 --blocksize 64 --blocksize 128 --variant compile-block \
      --metric first-run > "$out/asv-block.log" 2>&1
    echo "asv exit $?"; grep -E "timed out|failed" "$out"/asv-block.log | head
  fi
  tar -C . -czf "$out/results.tgz" results
  kw report | tee "$out/report.txt"
fi

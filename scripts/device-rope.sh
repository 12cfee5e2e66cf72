#!/usr/bin/env bash
# RoPE on a GPU machine whose torch is preinstalled (asv's `existing` environment).
# Needs the wheels of `make gpu-wheels` in .whl/ (asv is not installed there).
# Usage: scripts/device-rope.sh [time|detail]   (results and logs go to $OUT, or ./gpu-out)
set -uo pipefail
phase=${1:-time}
source "$(dirname "$0")/device-env.sh"
kw env
llama=(--shape llama-3.2-1b --shape llama-3.2-3b --shape llama-3.1-8b)
if [ "$phase" = time ]; then
  timeout 330 python3 -m kernelwatch.cli run --existing "${llama[@]}" --form rotate-half --dtype bfloat16 \
    --metric time > "$out/asv-time.log" 2>&1
  echo "asv exit $?"; grep -E "timed out" "$out/asv-time.log" | head
  tar -C . -czf "$out/results.tgz" results
  kw report | tee "$out/report.txt"
  timeout 150 python3 scripts/device_table.py --forms interleaved rotate-half \
    --variants eager compile compile-dynamic te-fused 2>&1 | grep --line-buffered -v Warning | tee "$out/table.txt"
else
  timeout 230 python3 -m kernelwatch.cli run --existing --shape llama-3.1-8b --form rotate-half \
    --dtype bfloat16 --metric compile --metric cuda-memory --variant eager --variant compile \
    --variant compile-dynamic > "$out/asv-detail.log" 2>&1
  echo "asv exit $?"; grep -E "^\[|timed out" "$out/asv-detail.log" | grep -v "····" | tail -30
  sed -n '/track_cold_compile/,/track_warm_compile/p;/track_recompiles/,+8p' "$out/asv-detail.log" | grep -E "8b|compile" | head -30
  tar -C . -czf "$out/results.tgz" results
  timeout 80 python3 scripts/device_table.py --forms rotate-half --dtypes float16 \
    --variants eager compile 2>&1 | grep --line-buffered -v Warning | tee "$out/table.txt"
fi

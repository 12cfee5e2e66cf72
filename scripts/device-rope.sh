#!/usr/bin/env bash
# RoPE on a GPU machine whose torch is preinstalled (asv's `existing` environment).
# Needs the wheels of `make gpu-wheels` in .whl/ (asv is not installed there).
# Usage: scripts/device-rope.sh [time|detail]   (results and logs go to $OUT, or ./gpu-out)
set -uo pipefail
phase=${1:-time}
out=${OUT:-$PWD/gpu-out}; mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src ASV_PYTHONPATH=/tmp/site:$PWD/src PATH=/tmp/site/bin:$PATH
export KERNELWATCH_MACHINE=${KERNELWATCH_MACHINE:-gpu-$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr -c 'A-Za-z0-9\n' '-' | tr -s '-')}
export PYTHONUNBUFFERED=1
# The working tree arrives without .git on some machines: asv needs a commit to file under.
if ! git rev-parse HEAD >/dev/null 2>&1; then
  git init -q && git add -A && git -c user.name=kw -c user.email=kw@localhost commit -qm "device copy" \
    && echo "note: made a local commit $(git rev-parse --short HEAD) of the working tree"
fi
kw() { python3 -m kernelwatch.cli "$@"; }
kw env
llama=(--shape llama-3.2-1b --shape llama-3.2-3b --shape llama-3.1-8b)
if [ "$phase" = time ]; then
  python3 - <<'PY' || exit 1
import torch
from kernelwatch import measure
from kernelwatch.workloads import rope
dev = torch.device("cuda")
bw = measure.copy_bandwidth(dev)
print(f"smoke: copy {bw/1e9:.0f} GB/s")
for v in ("eager", "compile"):
    c = rope.build_case("llama-3.1-8b", "rotate-half", "bfloat16", v, dev, rotate_bytes=200 << 20)
    c.fn(*c.input_sets[0])
    t = measure.time_cuda(c.fn, c.input_sets, cuda_graph=True)
    print(f"smoke: {v} {t.median*1e6:.1f} us {c.bytes_moved/t.median/1e9:.0f} GB/s cv {t.cv:.3f}")
PY
  timeout 240 python3 -m pytest -q -x tests/test_rope.py -k gpu 2>&1 | tail -5
  kw run --existing "${llama[@]}" --dtype bfloat16 --metric time 2>&1 | tee "$out/asv-time.log" | grep -E "^\[|timed out|Error" | tail -40
else
  kw run --existing "${llama[@]}" --dtype float16 --metric time 2>&1 | tee "$out/asv-fp16.log" | grep -E "^\[|timed out" | tail -20
  kw run --existing --shape llama-3.1-8b --dtype bfloat16 --metric accuracy --metric compile --metric cuda-memory 2>&1 | tee "$out/asv-detail.log" | grep -E "^\[|timed out" | tail -40
fi
tar -C . -czf "$out/results.tgz" results
kw report | tee "$out/report.txt"

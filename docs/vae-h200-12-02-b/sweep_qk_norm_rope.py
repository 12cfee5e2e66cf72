"""Time inductor's qk-norm + RoPE + head-permute kernel of the 350M decoder (default compile,
torch 2.11, batch 32; qk_norm_rope_kernel.py.txt is the generated file, taken from the
TORCHINDUCTOR_CACHE_DIR of one such compile) under every tile and
warp count, at batches 32 and 8, against the bytes it must move. Run on the GPU:
python3 docs/vae-h200-12-02-b/sweep_qk_norm_rope.py"""
import importlib.util
import json
import sys
from pathlib import Path

import torch
import triton
from triton.testing import do_bench

here = Path(__file__).parent
src = (here / "qk_norm_rope_kernel.py.txt").read_text().replace("    ynumel = 131072\n", "")
tmp = Path("/tmp/qk_norm_rope_kernel_any_batch.py")
tmp.write_text(src)
spec = importlib.util.spec_from_file_location("qkmod", tmp)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
auto = next(v for k, v in vars(mod).items() if k.startswith("triton_poi_fused__fused_rms_norm"))
fn = auto.fn
dev = "cuda"
COPY_GBS = 4159.0  # this lease's copy bandwidth (rope_gpu_table.py)


def make_args(batch):
    t = batch * 256
    bf = torch.bfloat16
    qkv = torch.randn(t, 3072, device=dev, dtype=bf)
    ss_q = torch.rand(batch * 4096, device=dev) * 64 + 1
    ss_k = torch.rand(batch * 4096, device=dev) * 64 + 1
    wq, wk = torch.randn(64, device=dev, dtype=bf), torch.randn(64, device=dev, dtype=bf)
    cos = torch.randn(256 * 32, device=dev, dtype=bf)
    sin = torch.randn(256 * 32, device=dev, dtype=bf)
    oq = torch.empty(batch * 16 * 256 * 64, device=dev, dtype=bf)
    ok = torch.empty_like(oq)
    moved = t * 2048 * 2 + 2 * oq.numel() * 2 + 2 * ss_q.numel() * 4
    return [qkv, ss_q, wq, cos, sin, ss_k, wk, oq, oq[1:], ok, ok[1:], batch * 4096, 32], moved


def time_config(a, yb, xb, warps):
    grid = (triton.cdiv(32, xb), triton.cdiv(a[11], yb), 1)
    run = lambda: fn[grid](*a, YBLOCK=yb, XBLOCK=xb, num_warps=warps)  # noqa: E731
    run()
    return do_bench(run, warmup=10, rep=40) * 1e-3


rows = []
default = [(c.kwargs["YBLOCK"], c.kwargs["XBLOCK"], c.num_warps) for c in auto.configs]
print("inductor's candidate configs (YBLOCK, XBLOCK, num_warps):", default, flush=True)
tiles = [(yb, xb, w) for xb in (1, 2, 4, 8, 16, 32) for yb in (2 ** i for i in range(11))
         if 32 <= yb * xb <= 4096 for w in (1, 2, 4, 8)]
for batch in (32, 8):
    a, moved = make_args(batch)
    floor = moved / (COPY_GBS * 1e9)
    try:
        auto.run(*a, stream=torch.cuda.current_stream().cuda_stream)
        chosen = auto.launchers[0].config
        chosen = (chosen.kwargs["YBLOCK"], chosen.kwargs["XBLOCK"], chosen.num_warps)
    except Exception as exc:  # the autotuner's internals differ between versions
        chosen = f"unknown ({type(exc).__name__}: {exc})"
    print(f"batch {batch}: {moved / 1e6:.1f} MB moved, floor {floor * 1e6:.1f} us at "
          f"{COPY_GBS:.0f} GB/s; "
          f"inductor's autotuner picks {chosen}", flush=True)
    for cfg in sorted(set(tiles + default)):
        try:
            s = time_config(a, *cfg)
        except Exception as exc:
            print(f"  {cfg}: {type(exc).__name__}", flush=True)
            continue
        rows.append({"batch": batch, "YBLOCK": cfg[0], "XBLOCK": cfg[1], "num_warps": cfg[2],
                     "us": s * 1e6, "pct_copy": 100 * floor / s, "default_list": cfg in default,
                     "chosen": cfg == chosen})
    mine = sorted((r for r in rows if r["batch"] == batch), key=lambda r: r["us"])
    for r in mine[:8] + [r for r in mine if r["default_list"] or r["chosen"]]:
        print(f"  Y{r['YBLOCK']:>4} X{r['XBLOCK']:>2} w{r['num_warps']}: {r['us']:8.1f} us "
              f"{r['pct_copy']:5.1f}% of copy{' (inductor list)' if r['default_list'] else ''}"
              f"{' (picked)' if r['chosen'] else ''}", flush=True)
out = Path(sys.argv[1]) if len(sys.argv) > 1 else here
(out / "sweep.json").write_text(json.dumps(rows, indent=1))

#!/usr/bin/env bash
# The GPU history's main loop on a GPU machine whose torch is preinstalled (device-env.sh):
# what a runner's `kernelwatch run --existing` costs and keeps. Each stage ends with a short
# table; results, logs and tables come back packed (device-env.sh's pack_out).
#
# Usage: scripts/device-history.sh STAGE [STAGE...]
#   probe    asv's forkserver start step by step (scripts/forkserver-cuda-probe.py): after
#            each, whether a fork can use CUDA, and which call into torch's CUDA bindings
#            was made where; the trial of a variant's server import, timed
#   tests    the forkserver's CUDA checks, the loop's tests (test_forkserver.py, unit/) and
#            GPTQ's kernel time against its latency (test_benchmark_classes.py)
#   launch   RoPE 8B bf16 rotate-half, seven variants, track_time, fresh compile caches, under
#            spawn and then under forkserver (machines gpu-spawn, gpu-forkserver): wall, and
#            per-process seconds of the trivial environment facts (the cost of a process)
#   suite    `--suite gpu-commit` (dry run first: its estimate), cut at KW_SUITE_SECONDS
#            (default 420); run it again to go on: only what is missing is measured
#   aa       KW_AA_RUNS (default 5) runs of the suite's time series (GPTQ's kernel time too,
#            the machine's facts each run)
#            and kernel inventories (the launch autotuning picked) on one commit (KW_AA_ARGS
#            narrows them), each its own machine name (gpu-aa-N), fresh compile caches per
#            run (kept for the run when a later call on the warm machine goes on with it, so
#            its inventories and its times read one autotuning pick; the slower run reuses
#            run 1's, so it differs from run 1 by the injected slowdown alone), each cut at
#            KW_AA_SECONDS (default 75), in this order: runs 1 and 2 and `compare` of run 2
#            against run 1 (default thresholds and --factor 1.03), a run with a 5% slowdown
#            injected (gpu-aa-slow) and its compare at --factor 1.03, then runs 3..N, the
#            table of each series' spread (max/min over the runs on record), and, with three
#            runs or more, each series' threshold from them (`fidelity --from-runs`) and the
#            slower run's compare at those thresholds
#   KW_LAUNCHES (default "spawn forkserver") names the launches the launch stage times
#   KW_CALL_SECONDS (default 560): the call's limit. Every stage's own limit is cut to end 15 s
#            before it (time to pack), and a step with under 20 s left is skipped: an outer
#            `timeout` would not reach a step under its own `timeout` (which runs in a
#            process group of its own), so the stages keep to the call's limit themselves.
set -uo pipefail
source "$(dirname "$0")/device-env.sh"
# seconds a step may take: its own limit, or what is left of the call, whichever is less
limit() {
  local left=$(( ${KW_CALL_SECONDS:-560} - 15 - SECONDS ))
  echo $(( left < $1 ? left : $1 ))
}
enough() {  # enough WHAT SECONDS: is there time for WHAT? (says so when not)
  (( $2 >= 20 )) && return 0
  echo "$1: skipped, ${2}s left of KW_CALL_SECONDS=${KW_CALL_SECONDS:-560}" | tee -a "$out/skipped.txt"
  return 1
}
kw env > "$out/env.txt" 2>&1
rope8b=(--workload rope --param shape=llama-3.1-8b --param dtype=bfloat16
        --param form=rotate-half --metric time --track time)

fresh_caches() {
  export TORCHINDUCTOR_CACHE_DIR=$(mktemp -d /tmp/inductor-XXXX) TRITON_CACHE_DIR=
  TRITON_CACHE_DIR=$TORCHINDUCTOR_CACHE_DIR/triton
}

run_caches() {  # run_caches NAME: one A/A run's compile caches (this commit's), empty at its start
  export TORCHINDUCTOR_CACHE_DIR=/tmp/kw-aa-caches/$(git rev-parse --short HEAD)-$1
  export TRITON_CACHE_DIR=$TORCHINDUCTOR_CACHE_DIR/triton
  mkdir -p "$TRITON_CACHE_DIR"
}

aa_run() {  # aa_run NAME [SLOWDOWN]: one A/A run as machine gpu-aa-NAME, its own caches
  local t; t=$(limit "${KW_AA_SECONDS:-75}"); enough "aa run $1" "$t" || return 1
  # The slower run tests the detector, so it reuses run 1's caches: its autotuning picks
  # are run 1's and the injected slowdown is the one thing that differs. A pick of its own
  # can hide the slowdown (RoPE 8B compile on an H100: a 5% faster pick read 1.00).
  if [ -n "${2:-}" ]; then
    run_caches 1
    [ -n "$(find "$TORCHINDUCTOR_CACHE_DIR" -type f -print -quit)" ] || echo "aa run $1:" \
      "run 1's compile caches are not on this machine, so its picks are its own" | tee -a "$out/aa.txt"
  else
    run_caches "$1"
  fi
  # The machine's facts are measured in each run (a few seconds): its host's dispatch lets
  # `compare` say where the host, not the code, moved between two runs (GPT-2's decode
  # steps and time to first token read 1.18-1.47x in one of five runs on an H100, 2026-12-07).
  KERNELWATCH_INJECT_SLOWDOWN=${2:-} timeout -s TERM "$t" python3 -m kernelwatch.cli run \
    --existing --machine "gpu-aa-$1" --suite gpu-commit --metric time --metric kernel-time \
    --metric kernels --track time --track kernel_time --track kernel_count ${KW_AA_ARGS:-} \
    > "$out/aa-$1.log" 2>&1
  echo "aa run $1${2:+ (${2} slowdown injected)}: exit $?" | tee -a "$out/aa.txt"
}

aa_compare() {  # aa_compare MACHINE: its run against run 1 (gpu-aa-1), as `compare` reads it
  local name=${1#gpu-aa-}
  if [ "$name" != slow ]; then
    kw compare HEAD HEAD --base-machine gpu-aa-1 --machine "$1" > "$out/aa-compare-$name.md" 2>&1
    echo "compare run $name against run 1 (default thresholds): exit $?" | tee -a "$out/aa.txt"
  fi
  kw compare HEAD HEAD --base-machine gpu-aa-1 --machine "$1" --factor 1.03 \
    > "$out/aa-compare-$name-103.md" 2>&1
  echo "compare run $name against run 1 at --factor 1.03: exit $?" | tee -a "$out/aa.txt"
  grep -h "worse, .* better" "$out"/aa-compare-"$name"*.md | tee -a "$out/aa.txt"
}

table() {  # table MACHINE...: per combination, its process's seconds and its value
  python3 - "$@" <<'EOF'
import json, sys
from pathlib import Path
for machine in sys.argv[1:]:
    for f in sorted(Path("results", machine).glob("*.json")):
        if f.name == "machine.json":
            continue
        d = json.loads(f.read_text())
        cols = d["result_columns"]
        for key, seconds in sorted(d["durations"].items()):
            if not key.startswith("<kernelwatch "):
                continue
            name = key[len("<kernelwatch "):-1]
            bench, _, params = name.partition("(")
            row = dict(zip(cols, d["results"].get(bench, [])))
            values, value = row.get("result") or [], None
            if params and row.get("params"):
                import itertools
                combos = [", ".join(c) for c in itertools.product(*row["params"])]
                i = combos.index(params[:-1]) if params[:-1] in combos else None
                value = values[i] if i is not None else None
            elif values:
                value = values[0]
            short = name.replace("'", "").split(".", 1)[1][:78]
            print(f"{machine:<16} {seconds:7.1f}s  {value!s:>24.24}  {short}")
EOF
}

for stage in "$@"; do
  case "$stage" in
    probe)
      t=$(limit 120); enough probe "$t" || continue
      timeout "$t" python3 scripts/forkserver-cuda-probe.py > "$out/probe-full.log" 2>&1
      grep -v -i warn "$out/probe-full.log" | grep -v "^---\|^  " | cut -c1-240 | tee "$out/probe.txt"
      ;;
    tests)
      t=$(limit 300); enough tests "$t" || continue
      timeout "$t" python3 -m pytest -q -rfEs tests/test_forkserver.py tests/test_inventory.py \
        tests/unit/test_benchloop.py \
        "tests/test_benchmark_classes.py::test_gptq_kernel_time_is_below_its_latency_on_a_gpu" \
        > "$out/tests-full.log" 2>&1
      grep -E "^(FAILED|ERROR|SKIPPED)|passed|failed" "$out/tests-full.log" | tail -20 | tee "$out/tests.txt"
      ;;
    launch)
      for launch in ${KW_LAUNCHES:-spawn forkserver}; do
        fresh_caches
        start=$(date +%s.%N)
        kw run --existing --launch "$launch" --machine "gpu-$launch" --rerun "${rope8b[@]}" \
          > "$out/launch-$launch.log" 2>&1
        echo "launch $launch: exit $?, wall $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s" \
          | tee -a "$out/launch.txt"
      done
      table $(printf "gpu-%s " ${KW_LAUNCHES:-spawn forkserver}) | tee "$out/launch-table.txt"
      cat "$out/launch.txt"
      ;;
    suite)
      kw run --existing --suite gpu-commit ${KW_SUITE_ARGS:-} --dry-run 2>&1 | grep "would run" | tee -a "$out/suite.txt"
      t=$(limit "${KW_SUITE_SECONDS:-420}"); enough suite "$t" || continue
      start=$(date +%s.%N)
      timeout -s TERM "$t" python3 -m kernelwatch.cli run --existing \
        --suite gpu-commit ${KW_SUITE_ARGS:-} > "$out/suite-$(date +%H%M%S).log" 2>&1
      echo "suite: exit $?, wall $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s" | tee -a "$out/suite.txt"
      table "$KERNELWATCH_MACHINE" > "$out/suite-table.txt"
      # the docs' tables, from the results the suite recorded (docs/findings/README.md)
      kw report --machine "$KERNELWATCH_MACHINE" --markdown > "$out/suite-tables.md" 2>&1
      kw run --existing --suite gpu-commit ${KW_SUITE_ARGS:-} --dry-run 2>&1 | grep "would run" | tee -a "$out/suite.txt"
      tail -n 60 "$out/suite-table.txt"
      cat "$out/suite.txt"
      ;;
    aa)
      # runs 1 and 2, the 5%-slower run and the compares first: a lease cut after them still
      # answers whether the suite tells a 5% slowdown from run-to-run noise; runs 3..N then
      # widen the spread of each series (max/min in the table)
      aa_run 1 && aa_run 2 && aa_compare gpu-aa-2 && aa_run slow 0.05 && aa_compare gpu-aa-slow
      for i in $(seq 3 "${KW_AA_RUNS:-5}"); do aa_run "$i" || break; done
      python3 - <<'EOF' | tee "$out/aa-table.txt"
import glob, json, statistics
from collections import defaultdict
series = defaultdict(list)
for f in sorted(glob.glob("results/gpu-aa-[0-9]*/*.json")):
    if f.endswith("machine.json"):
        continue
    d = json.loads(open(f).read())
    cols = d["result_columns"]
    for bench, row in d["results"].items():
        row = dict(zip(cols, row))
        import itertools
        for combo, v in zip(itertools.product(*row["params"]), row["result"] or []):
            if isinstance(v, float) and v == v:
                series[(bench, combo)].append(v)
# the least of each series: microseconds for a time, the value itself for a count
print(f"{'series':<92} {'runs':>4} {'least':>9} {'max/min':>8}")
for (bench, combo), vals in sorted(series.items()):
    name = bench.split(".", 1)[1] + " " + ", ".join(c.strip("'") for c in combo)
    least = f"{min(vals) * 1e6:.1f}us" if "_time" in bench else f"{min(vals):g}"
    ratio = f"{max(vals) / min(vals):8.3f}" if min(vals) > 0 else "       -"
    print(f"{name[:92]:<92} {len(vals):>4} {least:>9} {ratio}")
EOF
      # each series' threshold from this commit's runs on record (each process a run of the
      # check), and the slower run judged at them: flagged where the threshold is <= 1.05
      head8=$(git rev-parse HEAD | cut -c1-8)  # asv names result files by 8 characters
      runs=$(ls results/gpu-aa-[0-9]*/"$head8"-*.json 2>/dev/null \
             | cut -d/ -f2 | sort -uV | paste -sd,)
      if (( $(tr ',' '\n' <<< "$runs" | grep -c .) >= 3 )) \
         && ls results/gpu-aa-slow/"$head8"-*.json >/dev/null 2>&1 \
         && enough "aa thresholds" "$(limit 60)"; then
        timeout "$(limit 60)" python3 -m kernelwatch.cli fidelity --from-runs "$runs" \
          --machine gpu-aa-slow > "$out/aa-thresholds.md" 2>&1
        echo "thresholds from runs $runs (fidelity --from-runs): exit $?" | tee -a "$out/aa.txt"
        if [ -s "$out/aa-thresholds.md" ] && grep -q "^saved to" "$out/aa-thresholds.md"; then
          kw compare HEAD HEAD --base-machine gpu-aa-1 --machine gpu-aa-slow \
            > "$out/aa-compare-slow-own.md" 2>&1
          echo "compare run slow against run 1 at those thresholds: exit $?" | tee -a "$out/aa.txt"
          grep -h "worse, .* better" "$out/aa-compare-slow-own.md" | tee -a "$out/aa.txt"
        fi
      fi
      ;;
    *) echo "unknown stage $stage (probe, tests, launch, suite, aa)"; exit 2 ;;
  esac
  pack_out
done

# Sourced by scripts/device-run.sh: make a GPU machine with a preinstalled torch ready for
# kernelwatch. Installs the wheels of `make gpu-wheels` (.whl/) into /tmp/site, sets the paths
# for this shell and asv's benchmark processes, names the asv machine after the GPU, gives a
# working tree without .git a commit for asv to file results under, sets $out (where the
# stages write their logs and tables) and pack_out.
# The device hands back at most 8 files of $OUT: the stages write into $out (this call's
# logs and tables), and pack_out bundles it with results/ (kept by a warm machine from one
# call to the next), kernelwatch's logs and its discovery cache (carried to a fresh machine,
# it spares asv's discovery of the suite) into $OUT/device-out.tgz, the tables into
# $OUT/summary.txt. It runs when the script exits, also on SIGTERM (a call's time limit);
# device-history.sh packs after each stage too.
# A call's $OUT starts empty: a device-out.tgz in it is an earlier step of this call, whose
# logs this one adds to (a second `source` must not wipe the first stage's logs).
out=/tmp/kw-device-out
{ [ -n "${OUT:-}" ] && [ -e "$OUT/device-out.tgz" ]; } || rm -rf "$out"
mkdir -p "$out"
kept=/tmp/kw-results-kept
pack_out() {
  local to=${OUT:-$PWD/gpu-out}; mkdir -p "$to"
  [ -d results ] && rm -rf "$kept.new" && cp -a results "$kept.new" && rm -rf "$kept" \
    && mv "$kept.new" "$kept"
  tar -czf "$to/device-out.tgz" -C "$(dirname "$out")" "$(basename "$out")" \
    -C "$PWD" results .kernelwatch/logs .kernelwatch/discovery 2>/dev/null
  for f in "$out"/*.txt "$out"/*.md; do [ -f "$f" ] && { echo "== $(basename "$f")"; tail -n 60 "$f"; }; done \
    > "$to/summary.txt"
  echo "packed into $to: device-out.tgz ($(du -h "$to/device-out.tgz" | cut -f1)), summary.txt"
}
trap pack_out EXIT
trap 'exit 143' TERM
rm -rf /tmp/site; python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl || exit 1
# asv imports the importlib_metadata backport; the standard library's module serves on 3.12.
python3 -c "import importlib_metadata" 2>/dev/null || echo "from importlib.metadata import *  # noqa" > /tmp/site/importlib_metadata.py
# TransformerEngine, where te-prepare.sh's install call put it on this machine, comes last:
# the wheels above hold the versions of its pure-Python needs that the rest was tested with.
te=; [ -d /tmp/te-site ] && te=:/tmp/te-site
export PYTHONPATH=/tmp/site:$PWD/src$te ASV_PYTHONPATH=/tmp/site:$PWD/src$te PATH=/tmp/site/bin:$PATH
export KERNELWATCH_MACHINE=${KERNELWATCH_MACHINE:-gpu-$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr -c 'A-Za-z0-9\n' '-' | tr -s '-')}
export PYTHONUNBUFFERED=1
# A warm machine keeps results/ between calls, but a call that carries results/ replaces them
# with the carried copy. The machine's own copy (from its last pack) goes back where it holds
# all of a file's recorded work and more; a file it does not cover (a call that was killed
# before it packed, a carried file measured elsewhere) stays as it is, and says so.
if [ -d "$kept" ]; then python3 "$(dirname "${BASH_SOURCE[0]}")/device-restore-results.py" "$kept" results; fi
if ! git rev-parse HEAD >/dev/null 2>&1; then
  git init -q && git add -A && git -c user.name=kw -c user.email=kw@localhost commit -qm "device copy" \
    && echo "note: made a local commit $(git rev-parse --short HEAD) of the working tree"
fi
# The lent machine's copy of git can be older than the files sent with it (the checkout as
# the session began): asv files results under that HEAD, so say where the files differ.
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then
  { echo "note: this copy's files differ from its git HEAD $(git rev-parse --short HEAD), under which results are filed:"
    git status --porcelain; } | tee "$out/files-vs-head.txt"
fi
kw() { python3 -m kernelwatch.cli "$@"; }

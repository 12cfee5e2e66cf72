#!/usr/bin/env bash
# What publish.yml runs: install what publishing needs (no torch: kernelwatch[publish]), take
# the merged history from the results branch, publish the site into html/.
# Usage: scripts/ci/publish.sh (KW_REMOTE, KW_RESULTS_BRANCH as in bench.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${KW_PUBLISH_VENV:-.venv-publish}
[ -x "$venv/bin/kernelwatch" ] || {
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q '.[publish]'
}
"$venv/bin/kernelwatch" history pull --remote "${KW_REMOTE:-origin}" \
  --branch "${KW_RESULTS_BRANCH:-kernelwatch-results}"
"$venv/bin/kernelwatch" publish

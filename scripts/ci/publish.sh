#!/usr/bin/env bash
# What publish.yml runs: install what publishing needs (no torch: kernelwatch[publish]), take
# the merged history from the results branch, publish the site into html/.
# Usage: scripts/ci/publish.sh (KW_GIT_TOKEN, KW_REMOTE, KW_RESULTS_BRANCH as in history.sh;
# KW_PUBLISH_VENV: where to install, default .venv-publish).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${KW_PUBLISH_VENV:-.venv-publish}
[ -x "$venv/bin/kernelwatch" ] || {
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q '.[publish]'
}
PATH="$PWD/$venv/bin:$PATH" scripts/ci/history.sh pull
"$venv/bin/kernelwatch" publish

#!/usr/bin/env bash
# What publish.yml runs: install, take the merged history from the results branch, publish
# the site into html/. Usage: scripts/ci/publish.sh (KW_GIT_TOKEN, KW_REMOTE,
# KW_RESULTS_BRANCH as in history.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
make setup
PATH="$PWD/.venv/bin:$PATH" scripts/ci/history.sh pull
.venv/bin/kernelwatch publish

#!/usr/bin/env bash
# What the workflows run to move results between a job and the results branch, with the job's
# token handed to git for this one command and never written to a file. The GPU jobs pull
# (a read-only token) in a step of their own, before any benchmark code runs; the hosted jobs
# `results-push` and `target-push` push (a write token) what the GPU jobs uploaded.
#
# Usage: scripts/ci/history.sh pull|push [DIST]
#   DIST   a target library's results (results-DIST/, on the branch kernelwatch-results-DIST)
# Settings (environment):
#   KW_GIT_TOKEN   the token git gives GITHUB_SERVER_URL (default https://github.com) when
#                  it asks; empty: the remote as it answers without one (a public repository
#                  fetches anonymously)
#   KW_REMOTE, KW_RESULTS_BRANCH  where the history lives (origin, kernelwatch-results)
# Installs kernelwatch[publish] (asv, no torch: the history and the workloads' declarations
# need none) into .venv where no kernelwatch is on PATH (a hosted runner).
set -euo pipefail
direction=${1:?usage: scripts/ci/history.sh pull|push [DIST]}
dist=${2:-}
cd "$(dirname "$0")/../.."
case "$direction" in pull|push) ;; *) echo "history: pull or push, not $direction" >&2; exit 2 ;; esac

if ! command -v kernelwatch >/dev/null && [ ! -x .venv/bin/kernelwatch ]; then
  echo "history: installing kernelwatch into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q '.[publish]'
fi
kw() { if command -v kernelwatch >/dev/null; then kernelwatch "$@"; else .venv/bin/kernelwatch "$@"; fi; }

if [ -n "${KW_GIT_TOKEN:-}" ]; then
  # `kernelwatch history` works in temporary clones, where credentials that actions/checkout
  # persists would not apply (it scopes them to the workspace's .git): a credential helper in
  # this process's environment reads the token from the environment when git asks for it.
  export GIT_TERMINAL_PROMPT=0 GIT_CONFIG_COUNT=1
  export GIT_CONFIG_KEY_0="credential.${GITHUB_SERVER_URL:-https://github.com}.helper"
  # shellcheck disable=SC2016  # expanded by the helper's shell when git runs it, not here
  export GIT_CONFIG_VALUE_0='!f() { if [ "$1" = get ]; then printf "username=x-access-token\npassword=%s\n" "$KW_GIT_TOKEN"; fi; }; f'
fi
args=(--remote "${KW_REMOTE:-origin}" --branch "${KW_RESULTS_BRANCH:-kernelwatch-results}")
[ -n "$dist" ] && args+=(--target "$dist")
kw history "$direction" "${args[@]}"

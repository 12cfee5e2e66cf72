#!/usr/bin/env bash
# What the workflows run to move results between a job and the results branch, with the job's
# token handed to git for this one command and never written to a file. The GPU jobs pull
# (a read-only token) in a step of their own, before any benchmark code runs; the hosted jobs
# `results-push` and `target-push` push (a write token) what the GPU jobs uploaded.
#
# Usage: scripts/ci/history.sh pull|push|head [DIST]
#   head   prints `commit=SHA`, the results branch's newest commit (`commit=none` while it
#          does not exist), for $GITHUB_OUTPUT: the one state every part of a sharded run
#          pulls (KW_RESULTS_AT), so that they deal the suite from the same durations
#   DIST   a target library's results (results-DIST/, on the branch kernelwatch-results-DIST)
# Settings (environment):
#   KW_GIT_TOKEN   the token git gives GITHUB_SERVER_URL (default https://github.com) when
#                  it asks; empty: the remote as it answers without one (a public repository
#                  fetches anonymously)
#   KW_REMOTE, KW_RESULTS_BRANCH  where the history lives (origin, kernelwatch-results)
#   KW_RESULTS_AT  pull: the branch's commit to pull (what `head` printed); `none`: the
#                  branch did not exist when the run began, so nothing is pulled; `missing`:
#                  the workflow's `records` job named none, refused
# Installs kernelwatch[publish] (asv, no torch: the history and the workloads' declarations
# need none) into .venv where no kernelwatch is on PATH (a hosted runner).
set -euo pipefail
direction=${1:?usage: scripts/ci/history.sh pull|push|head [DIST]}
dist=${2:-}
cd "$(dirname "$0")/../.."
case "$direction" in pull|push|head) ;; *) echo "history: pull, push or head, not $direction" >&2; exit 2 ;; esac
if [ "$direction" = head ] && [ -n "$dist" ]; then
  echo "history: head names the results branch's commit for a sharded run; a target's runs are not sharded" >&2; exit 2
fi
if [ "$direction" = pull ] && [ "${KW_RESULTS_AT:-}" = missing ]; then
  echo "history: KW_RESULTS_AT=missing: the records job named no commit of the results branch; re-run the whole workflow run (its parts must pull one state)" >&2
  exit 1
fi
if [ "$direction" = pull ] && [ "${KW_RESULTS_AT:-}" = none ]; then
  echo "history: the results branch did not exist when this run began (KW_RESULTS_AT=none): nothing to pull"
  exit 0
fi

if [ "$direction" != head ] && ! command -v kernelwatch >/dev/null && [ ! -x .venv/bin/kernelwatch ]; then
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
if [ "$direction" = head ]; then
  ref="refs/heads/${KW_RESULTS_BRANCH:-kernelwatch-results}"
  listed=$(git ls-remote "${KW_REMOTE:-origin}" "$ref") || {
    echo "history: cannot list $ref of ${KW_REMOTE:-origin} (above: git's reason)" >&2; exit 1; }
  echo "commit=$(printf '%s\n' "$listed" | awk -v ref="$ref" '$2 == ref {print $1}' | grep . || echo none)"
  exit 0
fi
args=(--remote "${KW_REMOTE:-origin}" --branch "${KW_RESULTS_BRANCH:-kernelwatch-results}")
[ -n "$dist" ] && args+=(--target "$dist")
[ "$direction" = pull ] && [ -n "${KW_RESULTS_AT:-}" ] && args+=(--at "$KW_RESULTS_AT")
kw history "$direction" "${args[@]}"

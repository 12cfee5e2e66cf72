#!/usr/bin/env bash
# What the GitHub workflows run on a benchmark runner; runnable by hand on any machine.
#
# Usage: scripts/ci/bench.sh push|nightly|pr|target
#   push     measure the commits KW_BEFORE..KW_AFTER (the pushed ones; KW_AFTER^! when
#            KW_BEFORE is empty or all zeros) and add the results to the results branch
#   nightly  measure HEAD across asv.conf.json's torch matrix, add to the results branch
#   pr       measure KW_BASE and KW_HEAD, write `kernelwatch compare` markdown to KW_SUMMARY;
#            exits 1 on a significant regression. Its results are not pushed (not on main).
#   target   measure the library KW_TARGET (DIST=GIT_URL or path) over KW_RANGE (its commits;
#            default its last two), and for a range A..B also A, then write `kernelwatch
#            compare --target` of A and B to KW_SUMMARY; results stay in results-DIST/ (the
#            workflow pushes them from a job that runs none of the library's code). In
#            Docker its code runs apart from every other mode (docs/security.md): image tag
#            kernelwatch-target:..., an environment volume of its own per library, the
#            repository mounted read-only with results-DIST/ the one writable folder. On the
#            host it is refused unless KW_TRUST_TARGET=1.
# Settings (environment):
#   KW_MACHINE      asv machine name results are filed under (required: e.g. gpu-h100; an
#                   image rebuild must not start a new history)
#   KW_RUNNER       docker (default): in the image; host: this machine's kernelwatch
#   KW_DEVICE       cuda (default) or cpu: which image; KW_IMAGE overrides the tag, which
#                   otherwise names the hash of docker/ and pyproject.toml, so an unchanged
#                   image is reused and a changed one is built
#   KW_BUILD_ARGS   extra `kernelwatch docker build` flags (CA bundle, wheelhouse, network)
#   KW_NETWORK      the container's network for the run (e.g. host, where only the host
#                   reaches the package index)
#   KW_RUN_ARGS     selection for `kernelwatch run` (default: on a GPU the suite of the mode,
#                   --suite gpu-commit for push and pr, --suite gpu-nightly for nightly;
#                   --quick for a target and on a CPU)
#   KW_SHARD        K/N: this runner's part of the selection (`kernelwatch run --shard`,
#                   dealt by the durations the results branch records), for N runners of one
#                   GPU kind
#   KW_REMOTE, KW_RESULTS_BRANCH  where the history lives (origin, kernelwatch-results)
#   KW_HISTORY      sync (default): pull the results branch first and, for push and nightly,
#                   push to it at the end; none: neither (the workflows pull in a step of
#                   their own and push from a hosted job, so no token meets benchmark code)
#   KW_TRUST_TARGET 1: let `target` run the library's code on the host (KW_RUNNER=host)
#   KW_SUMMARY      pr: the markdown file (default $GITHUB_STEP_SUMMARY, else compare.md)
set -euo pipefail
mode=${1:?usage: scripts/ci/bench.sh push|nightly|pr|target}
cd "$(dirname "$0")/../.."
: "${KW_MACHINE:?set KW_MACHINE, the machine name results are filed under (e.g. gpu-h100)}"
runner=${KW_RUNNER:-docker}
device=${KW_DEVICE:-cuda}
remote=${KW_REMOTE:-origin}
branch=${KW_RESULTS_BRANCH:-kernelwatch-results}
sync=${KW_HISTORY:-sync}
case "$sync" in sync|none) ;; *) echo "bench: KW_HISTORY is sync or none, not $sync" >&2; exit 2 ;; esac
case "$device:$mode" in
  cuda:push|cuda:pr) default_args="--suite gpu-commit" ;;
  cuda:nightly) default_args="--suite gpu-nightly" ;;
  *) default_args="--quick" ;;
esac
read -r -a run_args <<< "${KW_RUN_ARGS:-$default_args}"
[ -n "${KW_SHARD:-}" ] && run_args+=(--shard "$KW_SHARD")
read -r -a build_args <<< "${KW_BUILD_ARGS:-}"
kw() { if command -v kernelwatch >/dev/null; then kernelwatch "$@"; else .venv/bin/kernelwatch "$@"; fi; }

image() {
  local hash name=kernelwatch
  hash=$(git ls-files -s docker pyproject.toml | sha1sum | cut -c1-12)
  # A library's runs keep images and volumes of their own, apart from the suite's.
  [ "$mode" = target ] && name=kernelwatch-target
  tag=${KW_IMAGE:-$name:$device-$hash}
  if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "bench: reusing image $tag"
  else
    echo "bench: building image $tag"
    kw docker build --device "$device" --tag "$tag" "${build_args[@]}"
  fi
}

measure() {  # measure REVISION-RANGE [extra run flags]
  local range=$1; shift
  if [ "$runner" = docker ]; then
    local opts=(); [ "$device" = cuda ] && opts+=(--gpus)
    [ -n "${KW_NETWORK:-}" ] && opts+=(--network "$KW_NETWORK")
    # The library's code must not reach the checkout's .git, nor any virtualenv another
    # mode or another library runs: read-only repository, results-DIST writable, and an
    # environment volume per library.
    [ "$mode" = target ] && opts+=(--read-only-repo --results "results-$dist"
      --env-volume "kernelwatch-asv-env-$dist-${tag//[^A-Za-z0-9_.-]/-}")
    kw docker run --tag "$tag" "${opts[@]}" -- run --machine "$KW_MACHINE" "${run_args[@]}" "$@" "$range"
  else
    kw run --machine "$KW_MACHINE" "${run_args[@]}" "$@" "$range"
  fi
}

if [ "$mode" = target ]; then
  : "${KW_TARGET:?set KW_TARGET (DIST=REPO: the library and its git URL or path)}"
  dist=${KW_TARGET%%=*}
  if ! [[ "$dist" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]]; then
    echo "bench: KW_TARGET's DIST ($dist) is a distribution name: letters, digits, '_', '.', '-'" >&2
    exit 2
  fi
  if [ "$runner" = host ] && [ "${KW_TRUST_TARGET:-}" != 1 ]; then
    echo "bench: refusing to run $dist's code on this machine (KW_RUNNER=host): its build and" \
      "benchmarks would run as this user, free to plant a git hook in this checkout or a .pth" \
      "in an environment that later jobs on this machine run (docs/security.md). Run it in" \
      "Docker (KW_RUNNER=docker, the default), or set KW_TRUST_TARGET=1 if you trust the" \
      "library's code at every commit of the range or this machine is thrown away after." >&2
    exit 2
  fi
fi
[ "$runner" = docker ] && image
if [ "$sync" = none ]; then
  echo "bench: KW_HISTORY=none: the results branch is neither pulled nor pushed here"
elif [ "$mode" = target ]; then
  kw history pull --target "$KW_TARGET" --remote "$remote" --branch "$branch"
else
  kw history pull --remote "$remote" --branch "$branch"
fi
push_history() {
  if [ "$sync" = sync ]; then kw history push --remote "$remote" --branch "$branch"; fi
}
case "$mode" in
  push)
    after=${KW_AFTER:-$(git rev-parse HEAD)}
    before=${KW_BEFORE:-}
    if [ -z "$before" ] || [ -z "${before//0/}" ] || ! git cat-file -e "$before^{commit}" 2>/dev/null; then
      range="$after^!"
    else
      range="$before..$after"
    fi
    measure "$range"
    push_history
    ;;
  nightly)
    measure "HEAD^!"
    push_history
    ;;
  pr)
    : "${KW_BASE:?set KW_BASE (the base commit)}" "${KW_HEAD:?set KW_HEAD (the head commit)}"
    summary=${KW_SUMMARY:-${GITHUB_STEP_SUMMARY:-compare.md}}
    measure "$KW_BASE^!"
    measure "$KW_HEAD^!"
    rc=0
    kw compare "$KW_BASE" "$KW_HEAD" --machine "$KW_MACHINE" > compare.md || rc=$?
    [ "$summary" != compare.md ] && cat compare.md >> "$summary"
    cat compare.md
    exit "$rc"
    ;;
  target)
    summary=${KW_SUMMARY:-${GITHUB_STEP_SUMMARY:-compare.md}}
    range=${KW_RANGE:-}
    measure "$range" --target "$KW_TARGET"
    rc=0
    if [[ "$range" == *..* ]]; then
      base=${range%%..*} head=${range##*..}
      measure "$base^!" --target "$KW_TARGET"
      kw compare "$base" "${head:-HEAD}" --target "$KW_TARGET" --machine "$KW_MACHINE" > compare.md || rc=$?
      [ "$summary" != compare.md ] && cat compare.md >> "$summary"
      cat compare.md
    fi
    exit "$rc"
    ;;
  *) echo "bench: unknown mode $mode (push, nightly, pr or target)" >&2; exit 2 ;;
esac

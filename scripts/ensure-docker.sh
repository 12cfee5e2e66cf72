#!/usr/bin/env bash
# Make a Docker engine reachable: install docker.io and debootstrap where missing (Debian),
# start dockerd in the background where none answers. CI machines start bare.
set -euo pipefail
if docker info >/dev/null 2>&1; then
  echo "docker engine: already running ($(docker version -f '{{.Server.Version}}'))"; exit 0
fi
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  echo "docker engine: installing docker.io and debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"  # a hosted CI runner's user has sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq docker.io debootstrap >/dev/null
fi
echo "docker engine: starting dockerd (log: /tmp/kernelwatch-dockerd.log)"
nohup dockerd > /tmp/kernelwatch-dockerd.log 2>&1 &
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && { echo "docker engine: started dockerd $(docker version -f '{{.Server.Version}}')"; exit 0; }
  sleep 1
done
echo "docker engine: dockerd did not answer within 60 s; last log lines:" >&2
tail -20 /tmp/kernelwatch-dockerd.log >&2
exit 1

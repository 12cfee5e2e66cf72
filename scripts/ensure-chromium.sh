#!/usr/bin/env bash
# The browser the site tests open the published pages in: Debian's chromium (a test tool's
# own browser download fails without the internet), and unshare (util-linux) to run it with
# no network. Installs them where missing; CI machines start bare.
set -euo pipefail
if command -v chromium >/dev/null && command -v unshare >/dev/null; then
  echo "chromium: $(chromium --version 2>/dev/null | head -1)"; exit 0
fi
echo "chromium: installing chromium (Debian)"
export DEBIAN_FRONTEND=noninteractive
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"  # a hosted CI runner's user has sudo
$sudo apt-get update -qq && $sudo apt-get install -y -qq chromium util-linux >/dev/null
echo "chromium: $(chromium --version 2>/dev/null | head -1)"

#!/usr/bin/env bash
# Screenshots of the published site's pages (docs/screenshots/), taken by Debian's chromium
# with no network, as the browser tests open them. Run after `kernelwatch publish`.
# Usage: scripts/screenshots.sh [HTML_DIR] [OUT_DIR]
set -euo pipefail
html=$(realpath "${1:-html}")
out=${2:-docs/screenshots}
mkdir -p "$out"
isolate=(unshare -n); [ "$(id -u)" = 0 ] || isolate=(unshare -rn)
shot() {  # name, page (relative to html/), height
  "${isolate[@]}" chromium --headless --no-sandbox --disable-gpu --no-first-run \
    --hide-scrollbars --allow-file-access-from-files --virtual-time-budget=10000 \
    --window-size=1400,"${3:-1000}" --screenshot="$out/$1.png" "file://$html/$2" 2>/dev/null
  echo "$out/$1.png"
}
shot overview kernelwatch/overview.html
shot kernelwatch-index kernelwatch/index.html
shot speedups kernelwatch/speedups.html 1400
shot regressions kernelwatch/regressions.html
shot roofline kernelwatch/roofline.html
shot writeups kernelwatch/writeups.html 1400
shot torch-versions kernelwatch/torch.html
shot break-even kernelwatch/break-even.html
shot fidelity kernelwatch/fidelity.html
shot asv-summary index.html
shot asv-graph "index.html#rope.RopeTime.track_time"

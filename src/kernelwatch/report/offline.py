"""asv's published pages, made to work with no network.

asv 0.6.6's index.html loads jQuery, flot (and three plugins), stupidtable, blueimp-md5 and
bootstrap from CDNs, so on a GPU runner behind a firewall, or a laptop offline, the site
renders nothing. `kernelwatch publish` copies the vendored files (src/kernelwatch/report/
vendor/, from their npm packages: scripts/vendor-asv-assets.py, SOURCES.md) into
html/vendor/ and points asv's pages at them. kernelwatch's own pages load nothing.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from pathlib import Path

VENDOR = Path(__file__).with_name("vendor")
# What asv's pages load -> the vendored file under html/vendor/.
CDN = {
    "https://code.jquery.com/jquery-3.3.1.min.js": "jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js": "jquery.flot.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js":
        "jquery.flot.time.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js":
        "jquery.flot.selection.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js":
        "jquery.flot.categories.js",
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js":
        "jquery.flot.orderBars.js",
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js": "md5.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js":
        "stupidtable.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css":
        "css/bootstrap.min.css",
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js":
        "js/bootstrap.min.js",
}
# A script or stylesheet a page loads from elsewhere (links a reader clicks are fine).
EXTERNAL_LOAD = re.compile(r"<(?:script|link)\b[^>]*?(?:src|href)=[\"'](https?://[^\"']+)",
                           re.IGNORECASE)


def external_loads(html_dir: Path) -> list[str]:
    """`page: url` for every script or stylesheet a page under `html_dir` loads from the
    network."""
    return [f"{page.relative_to(html_dir)}: {url}" for page in sorted(html_dir.rglob("*.html"))
            for url in EXTERNAL_LOAD.findall(page.read_text(errors="replace"))]


TAG = re.compile(r"<(?:script|link)\b[^>]*>", re.IGNORECASE)


def _sri(path: Path) -> str:
    """A subresource-integrity value: asv's tags pin each file by hash, and the vendored
    file (flot unminified, stupidtable 1.1.3) is not byte for byte the CDN's."""
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def _local_tag(match: re.Match) -> str:
    tag = match.group(0)
    for url, local in CDN.items():
        if url in tag:
            tag = tag.replace(url, f"vendor/{local}")
            return re.sub(r'integrity="[^"]*"', f'integrity="{_sri(VENDOR / local)}"', tag)
    return tag


def make_offline(html_dir: Path) -> list[str]:
    """Vendor asv's CDN files into `html_dir`/vendor and rewrite its pages to use them (with
    each file's own integrity hash). Returns what still loads from the network (empty
    unless asv changed its pages)."""
    shutil.copytree(VENDOR, html_dir / "vendor", dirs_exist_ok=True)
    for page in html_dir.glob("*.html"):
        text = page.read_text()
        new = TAG.sub(_local_tag, text)
        if new != text:
            page.write_text(new)
    return external_loads(html_dir)

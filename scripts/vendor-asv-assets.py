#!/usr/bin/env python3
"""Vendor the scripts and styles asv's published pages load from CDNs, so the site works
with no network (a GPU runner behind a firewall, a laptop on a plane).

Each file comes from its npm package at the version asv's pages name, checked against the
registry's sha512 integrity, into src/kernelwatch/report/vendor/ with the package's license.
`kernelwatch publish` copies them into html/vendor/ and points asv's pages at them
(kernelwatch.report.offline). Run once when asv changes what it loads; commit the result.

Usage: python scripts/vendor-asv-assets.py
"""

import base64
import hashlib
import io
import json
import tarfile
import urllib.request
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
DEST = Path(__file__).resolve().parents[1] / "src" / "kernelwatch" / "report" / "vendor"
# package, version, {file in the package: vendored name}. stupidtable 1.0.1 (asv's CDN
# version) was never published to npm; 1.1.3 is the package's only npm release.
PACKAGES = [
    ("jquery", "3.3.1", {"dist/jquery.min.js": "jquery.min.js", "LICENSE.txt": "LICENSE.jquery"}),
    ("flot", "0.8.3", {"jquery.flot.js": "jquery.flot.js",
                       "jquery.flot.time.js": "jquery.flot.time.js",
                       "jquery.flot.selection.js": "jquery.flot.selection.js",
                       "jquery.flot.categories.js": "jquery.flot.categories.js",
                       "LICENSE.txt": "LICENSE.flot"}),
    ("flot-orderbars", "1.0.0", {"js/jquery.flot.orderBars.js": "jquery.flot.orderBars.js"}),
    ("blueimp-md5", "2.19.0", {"js/md5.min.js": "md5.min.js",
                               "LICENSE.txt": "LICENSE.blueimp-md5"}),
    ("stupid-table-plugin", "1.1.3", {"stupidtable.min.js": "stupidtable.min.js"}),
    ("bootstrap", "3.1.1", {"dist/css/bootstrap.min.css": "css/bootstrap.min.css",
                            "dist/js/bootstrap.min.js": "js/bootstrap.min.js",
                            "dist/fonts/glyphicons-halflings-regular.eot":
                                "fonts/glyphicons-halflings-regular.eot",
                            "dist/fonts/glyphicons-halflings-regular.svg":
                                "fonts/glyphicons-halflings-regular.svg",
                            "dist/fonts/glyphicons-halflings-regular.ttf":
                                "fonts/glyphicons-halflings-regular.ttf",
                            "dist/fonts/glyphicons-halflings-regular.woff":
                                "fonts/glyphicons-halflings-regular.woff",
                            "LICENSE": "LICENSE.bootstrap"}),
]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read()


def main() -> None:
    sources = ["# Vendored for offline asv pages (scripts/vendor-asv-assets.py)", "",
               "| package | version | license | files |", "|---|---|---|---|"]
    for name, version, files in PACKAGES:
        meta = json.loads(fetch(f"{REGISTRY}/{name}/{version}"))
        tarball = fetch(meta["dist"]["tarball"])
        algo, digest = meta["dist"]["integrity"].split("-", 1)
        if base64.b64encode(hashlib.new(algo, tarball).digest()).decode() != digest:
            raise SystemExit(f"{name}@{version}: the tarball does not match its integrity")
        with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
            for inner, out in files.items():
                data = tar.extractfile(f"package/{inner}").read()
                (DEST / out).parent.mkdir(parents=True, exist_ok=True)
                (DEST / out).write_bytes(data)
        license_ = meta.get("license")
        license_ = license_.get("type") if isinstance(license_, dict) else license_ or "MIT"
        sources.append(f"| {name} | {version} | {license_} | {', '.join(files.values())} |")
        print(f"{name}@{version}: {len(files)} files")
    (DEST / "SOURCES.md").write_text("\n".join(sources) + "\n")


if __name__ == "__main__":
    main()

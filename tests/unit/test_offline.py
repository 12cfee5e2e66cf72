"""asv's published pages load nothing from the network once kernelwatch publish has run:
its CDN scripts are vendored (src/kernelwatch/report/vendor) and the pages point at them."""

import re
import shutil
from pathlib import Path

import asv

from kernelwatch.report import offline

ASV_WWW = Path(asv.__file__).with_name("www")


def test_asvs_pages_point_at_vendored_files_that_exist(tmp_path):
    html = tmp_path / "html"
    shutil.copytree(ASV_WWW, html)
    assert offline.external_loads(html)  # asv's own pages: ten CDN loads
    assert offline.make_offline(html) == []
    page = (html / "index.html").read_text()
    local = re.findall(r"(?:src|href)=\"(vendor/[^\"]+)\"", page)
    assert len(local) == len(offline.CDN)
    for path in local:
        assert (html / path).stat().st_size > 1000, path
    # bootstrap's stylesheet finds its fonts beside it, not on a CDN.
    css = (html / "vendor" / "css" / "bootstrap.min.css").read_text()
    for font in re.findall(r"url\('\.\./fonts/([^'?#]+)", css):
        assert (html / "vendor" / "fonts" / font).is_file(), font

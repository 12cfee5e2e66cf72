"""The fast layer: pure logic on plain data and asv's file formats, milliseconds a test, no
torch. A session of these tests alone fails if anything imported torch."""

import sys


def pytest_sessionfinish(session, exitstatus):
    items = getattr(session, "items", [])
    if items and all("unit" in item.path.parts for item in items) and "torch" in sys.modules:
        print("\nthe fast layer imported torch: a test of tests/unit needs torch; move it "
              "to tests/", file=sys.stderr)
        session.exitstatus = 1

"""A library under test (`--target DIST=REPO`, `--versions DIST=V1,V2`), as the run engine
and the commands need it: `targets.py` (its commits, its derived asv configuration, where
its results go), `releases.py` (released versions side by side in asv's matrix, what pip's
index offers) and `requirements.py` (each commit's or release's requirement set, resolved
with torch fixed, one asv environment per set, and `prepare`, asv's install command for
it). It knows git, pip and asv's configuration; never the run engine, torch or `report`.
"""

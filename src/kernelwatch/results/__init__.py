"""What the runs recorded, kept safe and read back: `rows.py` (asv's result files as rows,
through asv's loader), `files.py` (what a results directory may hold: asv's layout and
schema, plain names), `outcomes.py` (why a combination was skipped or failed, beside its
result file) and `history.py` (the shared results branch). It knows asv's files; never the
run engine, torch or `report`.
"""

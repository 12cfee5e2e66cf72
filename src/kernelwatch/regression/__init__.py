"""Whether a change is real, and where it came from: `detect.py` (asv's significance test
and a threshold: the one place that decides), `fidelity.py` (each series' noise floor and
threshold on this machine, measured in fresh processes), `bisect.py` (the first commit or
version at which a series got worse) and `benchmark_classes.py` (the checkout's asv
classes, for the tools that run one outside asv). Statistics and plain data; what a reader
sees of them is `report`'s.
"""

"""Reads asv results and writes kernelwatch's views: speedup vs eager, GB/s and % of the
measured copy bandwidth, and change vs the previous commit. Knows asv's files, not torch."""

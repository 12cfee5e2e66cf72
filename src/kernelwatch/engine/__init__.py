"""The run engine: what `kernelwatch run` measures, and asv running it.

`run.py` (`RunRequest`, `run_suite`) plans a run with `planner.py` and `shards.py`, runs asv
through `asvrun.py` (behind `reaper.py`, with `benchloop.py`'s loop in place of asv's
and, for an existing environment, `discovery.py`'s kept discovery) and
shows it with `progress.py`; `snapshot.py` keeps the recorded files as good as they were,
`gitrepo.py` names commits and ranges, and `settings.py` checks the environment variables
first. It knows asv, git and pip; never torch, `measure` or `report`.
"""

"""The runtime core: tasks, workers, run queues, timers, config and boot.

Nothing here imports from the rest of the package; the public modules and the
tooling are built on top. See ``scheduler.py`` for the design essay.
"""

"""The scheduler trace: one summary line on stderr every ``trace`` ms.

Switched on by the ``trace`` key (``CURCOR_TRACE=1000``), as Go's
``GODEBUG=schedtrace=1000``. A daemon thread wakes once per period, takes a
``stats()`` snapshot (which reads counters only and never scans the tasks,
so it costs well under a millisecond at 100,000 tasks) and writes a line::

    curcor trace: 1.00s tasks=1234 runnable=5 running=1 blocked=1228 workers=2 idle=1
    stuck=0 spares=0 steps=[123,456] steals=3 parks=7 netpoll=12 timers=4
    gc=3/0.012s pool=40/2

(on one line). ``steps`` lists each worker's steps since boot; ``gc`` is
collections/total pause; ``pool`` is buffer-pool hits/misses. The figures
are read without locks, so one line may be off by a task in flight.
"""

from __future__ import annotations

import sys
import threading

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any


def format_line(s: Any, idle: int, stuck: int) -> str:
    """One trace line for the snapshot ``s`` (a ``Stats``)."""
    steps = ",".join(str(w.steps) for w in s.workers)
    return (
        f"curcor trace: {s.uptime:.2f}s tasks={s.tasks_live} "
        f"runnable={s.tasks_runnable} running={s.tasks_running} "
        f"blocked={s.tasks_blocked} "
        f"workers={s.maxprocs + s.spare_workers} idle={idle} stuck={stuck} "
        f"spares={s.spare_workers} steps=[{steps}] "
        f"steals={sum(w.steals for w in s.workers)} "
        f"parks={sum(w.parks for w in s.workers)} "
        f"netpoll={s.netpoll_waits} timers={s.timers_pending} "
        f"gc={s.gc_collections}/{s.gc_pause_total:.3f}s "
        f"pool={s.pool_hits}/{s.pool_misses}"
    )


class Trace:
    """The trace thread of one runtime; ``start``/``stop`` bracket a run.

    ``snapshot`` is a callable returning the runtime's ``Stats``; ``out`` is
    where lines go (``sys.stderr`` when None, looked up at each line so a
    redirected stderr is followed).
    """

    def __init__(self, sched: Any, snapshot: Any, period_ms: int, out: Any = None):
        self.sched = sched
        self.snapshot = snapshot
        self.period = period_ms / 1000.0
        self.out = out
        self.lines = 0  # written so far (tests)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the trace thread (a daemon, registered as the runtime's)."""
        from .runtime import start_runtime_thread

        self._thread = start_runtime_thread(self.sched, self._run, "curcor-trace")

    def stop(self) -> None:
        """Stop and join the thread (idempotent)."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            if self.sched.stopping:
                return
            self.write_line()

    def write_line(self) -> None:
        """Take a snapshot and write its line (on the trace thread)."""
        sched = self.sched
        line = format_line(self.snapshot(), len(sched.idle), sched.stuck)
        out = self.out if self.out is not None else sys.stderr
        try:
            out.write(line + "\n")
            out.flush()
        except (OSError, ValueError):
            # stderr closed or gone (a daemonised app): nothing to trace to.
            self._stop.set()
        self.lines += 1

"""sysmon: the monitor thread that keeps one stuck task from stalling the rest.

The problem
-----------
A task step cannot be interrupted: a task that computes for two seconds
without awaiting, or calls ``time.sleep(1)``, holds its worker for that long.
In asyncio that freezes every other task, every timer and every socket. Here
the other workers can carry on, but only if someone notices, gives them the
stuck worker's queue, and makes sure timers and the poller do not wait for
the stuck worker either.

The rule
--------
sysmon is one daemon thread. Every ``TICK`` seconds while any worker runs
tasks it reads each worker's step counter (``Worker.steps``, written by the
worker at every step). A counter that has not moved for ``preempt_ms`` while
the worker holds a task, not counting time the garbage collector or a C
call paused every thread (sysmon notices its own late wake-ups), means that
step is long. Under the GIL a long step is not
always a stuck one: a worker may simply be waiting its turn for the
interpreter. So sysmon asks what the thread did meanwhile (``_kind``):

- it used CPU for at least half the time: a hog, stuck;
- it sits in a system call other than a futex (``/proc``: sleep, recv,
  read, ...): a blocking call, stuck;
- it sits in a futex without a timeout: a ``Lock.acquire()``,
  ``Event.wait()`` or ``Queue.get()``, stuck;
- it sits in a futex with a timeout, or is on a CPU with little CPU time
  used: most likely waiting its turn for the GIL, which ends within a few
  switch intervals, so this counts as stuck only after
  ``LOCK_WAIT_FACTOR`` times the limit.

Where ``/proc`` or thread CPU clocks are missing, a long step counts as
stuck. Once stuck, sysmon, under the scheduler lock:

1. marks the worker stuck (``Worker.stuck``, ``Scheduler.stuck``): the
   scheduler no longer counts it as running, so an idle worker may take the
   poller role and the timers;
2. moves the worker's local run queue to the global queue (its one-task
   ``runnext`` slot is left: only its owner may touch it) and wakes an idle
   worker to take it;
3. if every worker is stuck and fewer than ``spare_workers_max`` spares are
   alive, starts a spare worker (``Worker.spare``) for the queue, the timers
   and the poller.

When the stuck step ends the counter moves: sysmon clears the mark, and once
no worker is stuck, idle spares are woken to retire (``Scheduler.retire``).

The interpreter's turns
-----------------------
Under the GIL the workers that took the queue over, sysmon itself and a
hog take turns at the interpreter every ``sys.getswitchinterval()`` (5 ms
by default), so each hand-off costs a few turns. While any worker is stuck,
sysmon shortens the interval to ``STUCK_SWITCH_INTERVAL`` and puts the old
value back when none is (or at shutdown).

The first time a step from a given place (file and line of the innermost
frame outside curcor, read from the stuck thread's stack) is found stuck,
sysmon logs one warning naming the task and the place; later ones from the
same place are only counted (``stats().stuck_steps``, ``stuck_sites``).

Idle back-off: after a tick in which no worker ran, the interval doubles up
to ``TICK_IDLE_MAX``, so an idle runtime wakes sysmon a few times a second
at most, and every worker going idle costs nothing extra.

Limits (documented in docs/architecture.md): a C call that holds the GIL
(a long regular expression match, say) keeps every thread out of the
interpreter, sysmon included, so it cannot be handed off until it returns;
under the GIL a pure-Python hog and the workers that took over its queue
share the interpreter, switching every ``sys.getswitchinterval()`` seconds.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from .errors import curcor_log

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any

    from .scheduler import Scheduler, Worker

# Seconds between looks while tasks run: a fifth of the default 10 ms limit,
# so a stuck step is seen within 12 ms of its start.
TICK = 0.002
# The longest interval when nothing runs (idle back-off).
TICK_IDLE_MAX = 0.25
# The switch interval while a worker is stuck (see "The interpreter's turns").
STUCK_SWITCH_INTERVAL = 0.001

# Tasks started since the last look (one TICK, 2 ms) that make a long step
# a spawn loop still spawning (``for ...: go(...)``), the way Go programs
# start their work: it is handed off like any long step, but no warning is
# logged for it. A spawn takes about 2 us, so a loop starts ~1,000 a look.
SPAWN_LOOP = 100

# Looks in a row (2 ms each) without a spawn after which a step handed off
# as a spawn loop counts as blocking after all, and is reported. Two, not
# one: a spawning thread may wait a whole look for the GIL.
QUIET_LOOKS = 2

# A step waiting in a futex (a lock, or the GIL) is stuck only after this many
# times preempt_ms: GIL waits last a few switch intervals (5 ms each).
LOCK_WAIT_FACTOR = 5

# The futex system call's number, by machine (/proc/.../syscall shows numbers).
_FUTEX = {"x86_64": "202", "aarch64": "98", "arm64": "98", "i686": "240"}

_CURCOR_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Sysmon:
    """The monitor of one scheduler; ``start``/``stop`` bracket a run.

    Lock rule: the fields below are sysmon's own (its thread only), except
    ``stuck_steps``, ``spares_started`` and ``sites``, which it writes and
    ``stats()`` reads (plain ints and a dict: a racy read is fine).
    """

    def __init__(
        self,
        sched: Scheduler,
        preempt_ms: int,
        spare_max: int,
        gc_paused: Any = None,
    ) -> None:
        self.sched = sched
        # () -> seconds the collector has paused every thread since boot.
        self.gc_paused = gc_paused or (lambda: 0.0)
        self._futex = _FUTEX.get(os.uname().machine)
        self.limit = preempt_ms / 1000.0
        self.spare_max = spare_max
        self.stuck_steps = 0  # long steps seen since boot
        self.starved = 0.0  # seconds sysmon itself waited for the GIL, late
        self.spares_started = 0
        self.sites: dict[tuple[str, int], int] = {}  # (file, line) -> count
        # Per worker: its step count, and the time, GC pause total and the
        # thread's CPU time when that count was first seen.
        # (and how long sysmon had been starved of the GIL by then).
        self._seen: dict[Worker, tuple[int, float, float, float | None, float]] = {}
        self._spawned: dict[Worker, int] = {}  # spawns at the last look
        # Workers handed off in silence as spawn loops: (looks in a row that
        # saw it neither spawn nor wait for the GIL, and its CPU time, the
        # time and the GC pause total at the last look). A loop that stops
        # spawning but goes on holding its worker (it blocks after its go()
        # calls) is then reported after all (QUIET_LOOKS).
        self._quiet: dict[Worker, tuple[int, float | None, float, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life -----------------------------------------------------------------

    def start(self) -> None:
        """Start the monitor thread (a daemon, registered as the runtime's)."""
        from .runtime import start_runtime_thread

        self._thread = start_runtime_thread(self.sched, self._run, "curcor-sysmon")

    def stop(self) -> None:
        """Stop and join the thread (idempotent); restore the switch interval."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)
        sched = self.sched
        with sched.lock:
            sched.restore_switch()

    def _run(self) -> None:
        interval = TICK
        last = time.monotonic()
        while not self._stop.wait(interval):
            if self.sched.stopping:
                return
            now = time.monotonic()
            # Woken far too late: a collection or a C call held the GIL, and
            # no worker could run Python meanwhile either; that time is not
            # any step's fault.
            late = now - last - interval
            if late > TICK:
                self.starved += late
            busy = self.tick(now)
            last = now
            interval = TICK if busy else min(interval * 2, TICK_IDLE_MAX)

    # -- one look -------------------------------------------------------------

    def tick(self, now: float) -> bool:
        """Look at every worker once; True if any was running tasks."""
        sched = self.sched
        busy = False
        paused = self.gc_paused()
        starved = self.starved
        for w in list(sched.workers):
            steps = w.steps
            seen = self._seen.get(w)
            if seen is None or seen[0] != steps:
                self._seen[w] = (steps, now, paused, _cpu_time(w), starved)
                self._spawned[w] = w.spawned
                self._quiet.pop(w, None)
                if w.stuck:
                    self._unstick(w)
                if seen is not None:
                    busy = True
                continue
            if w.retired or w in sched.idle:
                continue  # gone or idle: not a long step
            busy = True
            if not _in_step(w.current):
                continue  # in the scheduler's own code, not in a task's step
            ran = now - seen[1] - (paused - seen[2])
            # Tasks it started since the last look: still spawning, or not.
            spawned, self._spawned[w] = w.spawned - self._spawned[w], w.spawned
            if not w.stuck and ran >= self.limit and self._is_stuck(w, seen, ran):
                self._stick(w, ran, spawned)
            elif w in self._quiet:
                self._watch_spawn_loop(w, now, ran, spawned, paused)
        return busy

    def _watch_spawn_loop(
        self, w: Worker, now: float, ran: float, spawned: int, paused: float
    ) -> None:
        """A silent spawn-loop hand-off whose step goes on: report it once,
        for QUIET_LOOKS looks in a row, it has started nothing while neither
        waiting for the GIL nor collecting garbage (a loop starved of the
        interpreter, or inside a young collection, is no block)."""
        count, cpu_then, then, paused_then = self._quiet[w]
        if spawned or paused != paused_then:  # (no /proc reads on these)
            self._quiet[w] = (0, None, now, paused)
            return
        waiting = self._kind(w, cpu_then, now - then) == "wait"
        count = 0 if waiting else count + 1
        if count < QUIET_LOOKS:
            self._quiet[w] = (count, _cpu_time(w), now, paused)
            return
        del self._quiet[w]
        self._diagnose(w, w.current, ran, True)

    def _is_stuck(self, w: Worker, seen: Any, ran: float) -> bool:
        """Whether ``w``'s long step holds its worker (see "The rule"). For a
        thread that waits, time sysmon itself could not run (someone held
        the GIL) does not count: it waited for the same interpreter."""
        kind = self._kind(w, seen[3], ran)
        if kind != "wait":
            return True
        return ran - (self.starved - seen[4]) >= LOCK_WAIT_FACTOR * self.limit

    def _kind(self, w: Worker, cpu_then: float | None, ran: float) -> str:
        """ "cpu", "call" (a blocking system call) or "wait" (a futex)."""
        cpu_now = _cpu_time(w)
        used = None if cpu_now is None or cpu_then is None else cpu_now - cpu_then
        if used is not None and used >= ran / 2:
            return "cpu"
        try:
            with open(f"/proc/self/task/{w.native_id}/syscall") as f:
                call = f.read().split()
        except OSError:
            return "call"  # cannot tell: count the long step as stuck
        if not call or call[0] == "running":
            # On a CPU without the GIL (sysmon holds it), yet with little
            # CPU time used: about to wait for the GIL, or just woken.
            return "wait"
        if call[0] != self._futex:
            return "call"
        # A futex: the GIL's wait has a timeout (it wakes every switch
        # interval to ask for the interpreter); a plain Lock.acquire(),
        # Event.wait() or Queue.get() has none, and holds the worker.
        return "wait" if len(call) > 4 and call[4] != "0x0" else "call"

    def _stick(self, w: Worker, ran: float, spawned: int = 0) -> None:
        """``w``'s step ran ``ran`` seconds (and started ``spawned`` tasks
        since the last look): hand its queue on; maybe a spare."""
        sched = self.sched
        task = w.current
        if not _in_step(task):
            return  # the step ended since tick() looked
        spare = False
        with sched.lock:
            if sched.stopping:
                return
            w.stuck = True
            sched.stuck += 1
            sched.shorten_switch(STUCK_SWITCH_INTERVAL)
            w.handoffs += 1
            # Its queue is not moved here (a long queue moved under this
            # lock held every other worker up): the worker woken below, and
            # any worker that runs out of work, steals from it.
            covered = sched.running() > 0
            if not covered:
                if len(sched.idle) > 0:
                    sched.wake_one()
                    covered = True
                elif sched.spares_alive() < self.spare_max:
                    spare = covered = True
        self.stuck_steps += 1
        if spare:
            self._start_spare()
        if spawned >= SPAWN_LOOP:
            # Reported if it stops spawning and holds on (_watch_spawn_loop).
            self._quiet[w] = (0, None, time.monotonic(), self.gc_paused())
            return  # a loop of go(): handed off, as Go would, without a word
        self._diagnose(w, task, ran, covered)

    def _unstick(self, w: Worker) -> None:
        """``w``'s long step ended: it runs again; idle spares may retire."""
        with self.sched.lock:
            self.sched.unstick(w)

    # -- spares ---------------------------------------------------------------

    def _start_spare(self) -> None:
        """Start a spare worker thread (a retired spare's record is reused)."""
        from .runtime import inherit_non_daemon
        from .scheduler import Worker

        sched = self.sched
        with sched.lock:
            if sched.stopping:
                return
            w = next((x for x in sched.workers if x.spare and x.retired), None)
            if w is None:
                w = Worker(sched, len(sched.workers))
                w.spare = True
                w.retired = True
                sched.workers.append(w)
            w.retired = False
            sched.total += 1
        t = threading.Thread(target=w.run, name=f"curcor-spare-{w.index}", daemon=True)
        try:
            t.start()
        except RuntimeError as exc:
            with sched.lock:
                w.retired = True
                sched.total -= 1
            curcor_log().warning("sysmon could not start a spare worker: %s", exc)
            return
        assert t.ident is not None
        sched.runtime_threads.add(t.ident)
        inherit_non_daemon(t)
        w.thread = t
        self.spares_started += 1

    # -- diagnosis ------------------------------------------------------------

    def _diagnose(self, w: Worker, task: Any, ran: float, covered: bool) -> None:
        """Count the stuck step's place; warn the first time it is seen."""
        site = _blocking_site(w.ident)
        count = self.sites.get(site, 0) + 1
        self.sites[site] = count
        if count > 1:
            return
        name = getattr(task, "name", None) or "?"
        where = f"{site[0]}:{site[1]}" if site[1] else site[0]
        handed = (
            "its queue went to other workers"
            if covered
            else "its queue waits: every worker is stuck and spare_workers_max "
            f"({self.spare_max}) spares run"
        )
        advice = (
            "Await instead of blocking: run blocking calls with "
            "`await curcor.to_thread(fn, ...)` and split long computations with "
            "`await curcor.sleep(0)`"
        )
        if getattr(task, "_cancel_pending", False):
            # Every await of a cancelled task raises at once: a loop that
            # catches Cancelled and awaits again never yields.
            advice = (
                "It was cancelled and keeps running: if it catches "
                "curcor.Cancelled, re-raise it (or leave the loop)"
            )
        curcor_log().warning(
            "task %r blocked worker %d for over %d ms at %s; %s. %s. Later "
            "blocks from this place are counted in curcor.stats().stuck_steps, "
            "not logged.",
            name,
            w.index,
            int(ran * 1000),
            where,
            handed,
            advice,
        )


def _in_step(task: Any) -> bool:
    """True while ``task``'s coroutine is executing (a step in progress)."""
    if task is None:
        return False
    coro = task.coro
    running = getattr(coro, "cr_running", None)
    if running is None:
        running = getattr(coro, "gi_running", False)
    return bool(running)


def _cpu_time(w: Worker) -> float | None:
    """CPU seconds the worker's thread has used, or None if unknown."""
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(w.ident))
    except (AttributeError, OSError, ValueError, OverflowError):
        return None


def _blocking_site(ident: int) -> tuple[str, int]:
    """(file, line) on thread ``ident`` where the application blocked: the
    innermost frame of the application's own code (outside curcor, the
    standard library and installed packages: a ``time.sleep`` called from
    ``app.py:12`` is reported there, not inside threading.py), else the
    innermost frame outside curcor."""
    frame = sys._current_frames().get(ident)
    fallback: tuple[str, int] | None = None
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_CURCOR_DIR):
            site = (filename, _frame_line(frame))
            if not filename.startswith(_library_dirs()):
                return site
            fallback = fallback or site
        frame = frame.f_back
    return fallback or ("<unknown>", 0)


def _frame_line(frame: Any) -> int:
    """The line ``frame`` is at. ``f_lineno`` is None while the frame is
    between lines (an instruction with no line of its own, as in a loop's
    back edge): then the nearest line at or before its last instruction."""
    if frame.f_lineno is not None:
        return int(frame.f_lineno)
    lasti = frame.f_lasti
    best = frame.f_code.co_firstlineno
    for start, _end, line in frame.f_code.co_lines():
        if start > lasti:
            break
        if line is not None:
            best = line
    return int(best)


def _library_dirs() -> tuple[str, ...]:
    """Where code that is not the application's lives (cached)."""
    global _LIBRARY_DIRS
    if _LIBRARY_DIRS is None:
        import sysconfig

        paths = sysconfig.get_paths()
        dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
        _LIBRARY_DIRS = ("<frozen", *sorted(d for d in dirs if d))
    return _LIBRARY_DIRS


_LIBRARY_DIRS: tuple[str, ...] | None = None

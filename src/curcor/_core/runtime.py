"""Boot, run and shut down one runtime: ``run``, ``go``, join, signals, stats.

``run`` boots a ``Scheduler`` on ``maxprocs`` workers (the calling thread is
worker 0), runs the main task to completion, cancels what is left, and
returns the main task's value. Only one runtime runs in a process at a time.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
import time
import types
from types import CoroutineType

from . import task as task_module
from .cancel import cancel_task as _cancel_in
from .errors import (
    Cancelled,
    DeadlockError,
    RuntimeMisuse,
    Terminated,
    ThreadCreateError,
    curcor_log,
    without_frames,
)
from .scheduler import Scheduler, Worker, _tls, current_worker
from .task import DONE, FREE, RUNNABLE, Task, describe_stack
from .timers import Clock
from .traps import YieldNow, await_once, end_wait, park, worker_and_task

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any


# What a signal that ends the process at once prints: a second one, or one
# after the shutdown grace period (indexed by "after the grace period").
_LATE_SIGNAL = {
    False: b"curcor: second %s; exiting now\n",
    True: b"curcor: %s after the shutdown grace period; exiting now\n",
}
_WAITING_ON_BLOCKED = (
    b"curcor: a task is blocking its worker (see the warning above); it is "
    b"cancelled when its step ends. Send %s again to exit now\n"
)

DEADLOCK_HEADER = "curcor: all tasks are asleep - deadlock!"

_running: Runtime | None = None
_running_lock = threading.Lock()
_process_defaults: tuple[Any, bool] | None = None
_run_called = False
_last_stats: Any = None


def set_process_defaults(config: Any, announce: bool) -> None:
    """Make every later ``run`` use ``config``; ``announce`` prints the boot line.

    Used by ``curcor run``: the boot line then goes to stderr as the first line
    the runtime writes, instead of to the ``curcor`` logger.
    """
    global _process_defaults
    _process_defaults = (config, announce)


def run_was_called() -> bool:
    """True once ``run`` has been entered in this process."""
    return _run_called


def running_scheduler() -> Scheduler | None:
    """The scheduler of the runtime running now, if any."""
    rt = _running
    return rt.sched if rt is not None else None


def running_runtime() -> Runtime | None:
    """The runtime running now, if any."""
    return _running


def _check_run_arguments(clock: Any, seed: Any) -> None:
    """Refuse a clock or seed of the wrong kind before anything boots."""
    if clock is not None and not callable(getattr(clock, "now", None)):
        raise TypeError(
            "curcor.run(clock=...) takes a clock such as curcor.testing.FakeClock(), "
            f"not {clock!r}"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"curcor.run(seed=...) takes an int, not {seed!r}")


def _load_config(config: Any) -> tuple[Any, bool]:
    if config is not None:
        if not hasattr(config, "maxprocs") or isinstance(config, dict):
            raise TypeError(
                "curcor.run(config=...) takes a curcor.config.Config, not "
                f"{type(config).__name__}: make one with curcor.config."
                "load_config(flags={'maxprocs': '2'}) (keys as in curcor.toml)"
            )
        return config, False
    if _process_defaults is not None:
        return _process_defaults
    from .config import _find_root_dir, load_config

    # (os.path, not pathlib: importing pathlib costs every first run 3 ms.)
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    start = os.path.dirname(os.path.realpath(path)) if path else os.getcwd()
    return load_config(root=_find_root_dir(start)), False


class Runtime:
    """One run of the scheduler: its workers, main task and outcome."""

    def __init__(
        self,
        config: Any,
        clock: Clock | None,
        seed: int | None,
        spread: bool | None = None,
    ) -> None:
        self.config = config
        self.sched = Scheduler(
            config.maxprocs, clock=clock, backend=config.scheduler, seed=seed
        )
        if spread is not None:
            self.sched.spread = spread
            for w in self.sched.workers:
                w.spread = spread
        self.sched.task_ended = self._task_ended
        self.sched.task_failed = self._task_failed
        self.sched.late_spawn = self._late_spawn
        self.sched.on_all_blocked = self._on_all_blocked
        self.sched.outside_work_hook = self._take_signals
        from .mempool import BufferPool

        self.sched.mempool = BufferPool(int(getattr(config, "mempool_size", 64 << 20)))
        self.sysmon: Any = None
        if getattr(config, "preempt", True):
            from .sysmon import Sysmon

            self.sysmon = Sysmon(
                self.sched,
                int(getattr(config, "preempt_ms", 10)),
                int(getattr(config, "spare_workers_max", 4)),
                lambda: self.gcgov.pause_total if self.gcgov is not None else 0.0,
            )
        self.crash: BaseException | None = None
        # Failed tasks whose handle is held and not yet joined, by id().
        # Lock rule: single dict operations only (atomic), from any worker.
        self.unretrieved: dict[int, Task] = {}
        self.interrupted = False
        self.terminated = False
        self.draining = False
        self.started_at = time.monotonic()
        self.pool: Any = None
        self._gc_started = 0.0
        self._sigints = 0
        self._sigterms = 0
        self._grace_done = False
        self._old_handlers: dict[int, Any] = {}
        self._old_wakeup_fd = -1
        self._observers(config)

    def _observers(self, config: Any) -> None:
        """The scheduler trace and the control socket, when configured.

        The control socket is bound here, before any thread starts, so a
        path in use stops boot with nothing half started.

        Raises:
            ConfigError: the control socket cannot be created.
        """
        self.trace: Any = None
        self.control: Any = None
        period = int(getattr(config, "trace", 0) or 0)
        if period > 0:
            from .trace import Trace

            self.trace = Trace(self.sched, lambda: snapshot(self), period)
        path = str(getattr(config, "control", "") or "")
        if path:
            from .control import ControlServer

            source = getattr(config, "sources", {}).get("control", "argument")
            try:
                self.control = ControlServer(
                    self.sched, lambda: snapshot(self), path, source
                )
            except BaseException:
                self.sched.poller.close()  # no worker, nothing else to undo
                raise

    # -- outcomes -------------------------------------------------------------

    def _task_failed(self, task: Task, exc: BaseException, shared: bool) -> None:
        """A task other than main ended with ``exc`` and nobody was joining it.

        With no handle held anywhere (``shared`` False) nobody can ever join
        it: as a panic ends a Go program, the error is logged now, main is
        cancelled and ``run`` re-raises it. With a handle held, a later
        ``join()`` collects it; if none has when main ends, ``run`` logs and
        re-raises it then (docs/architecture.md, "Unhandled errors").
        """
        if task is self.sched.main or isinstance(exc, Cancelled):
            return
        if shared:
            self.unretrieved[id(task)] = task
            return
        self._crash(task, exc)

    def _crash(self, task: Task, exc: BaseException) -> None:
        """An exception escaped a detached task: log it, cancel main."""
        _log_task_error(task, exc, "cancelling the main task")
        if self.crash is None:
            self.crash = exc
            main = self.sched.main
            if main is not None:
                _cancel_in(self.sched, main)

    def _task_ended(self, task: Task) -> None:
        """Called only for the main task, or any task while draining."""
        sched = self.sched
        if task is sched.main:
            self._main_done()
        elif self.draining and sched.live_tasks() <= 0:
            sched.stop()

    def _late_spawn(self, task: Task) -> None:
        """A task spawned after main returned is cancelled like the rest."""
        _cancel_in(self.sched, task)

    def _main_done(self) -> None:
        """Main returned: cancel the tasks left, give them the grace period."""
        self.draining = True
        self.sched.start_draining()
        # (The counters first: the scan in tasks() is for when some are left.)
        if self.sched.live_tasks() <= 0:
            self.sched.stop()
            return
        rest = [t for t in self.sched.tasks() if t is not self.sched.main]
        if not rest:
            self.sched.stop()
            return
        for t in rest:
            _cancel_in(self.sched, t)
        grace = float(getattr(self.config, "shutdown_grace", 5.0))
        self.sched.timers.call_at(self.sched.clock.now() + grace, self._grace_over)

    def _grace_over(self) -> None:
        if self._grace_done:  # SIGTERM and the end of main both arm it
            return
        self._grace_done = True
        left = self.sched.tasks()
        if left:
            curcor_log().warning(
                "shutdown grace period over; abandoning %d task(s): %s",
                len(left),
                ", ".join(t.name for t in left[:10]),
            )
        # An abandoned task's next await waits instead of raising Cancelled:
        # one that catches Cancelled and awaits again in a loop would
        # otherwise never end its step, and run() could never return. Its
        # coroutine is closed once the workers have stopped.
        with self.sched.cancel_lock:
            for task in left:
                if task is not self.sched.main:
                    task._cancel_pending = False
        self.sched.stop()

    # -- all tasks blocked ----------------------------------------------------

    def _on_all_blocked(self, w: Worker) -> bool:
        """Called with the scheduler lock held when every worker is idle.

        Returns True when ``w`` should look for work again instead of waiting.
        """
        sched = self.sched

        # 1. Tasks waiting for exactly this moment (tests) run first.
        if sched.blocked_waiters:
            woken = [t for t, seq in sched.blocked_waiters if t._wait_seq == seq]
            sched.blocked_waiters.clear()
            for t in woken:
                t._wait_seq += 1
                t._waiting_on = None
                t._state = RUNNABLE
                t._value = None
                sched.gq.append(t)
            if woken:
                return True

        # 2. A pending timer will wake someone; a fake clock jumps to it (as
        # trio's autojump does, even while a thread call is still running).
        deadline = sched.timers.next_deadline()
        if deadline is not None:
            if sched.clock.autojump:
                sched.clock.jump_to(deadline)
                return True
            return False

        # 3. Thread work, I/O or a foreign thread may still wake someone.
        if sched.thread_work or sched.poller.waiters or sched.live_tasks() <= 0:
            return False
        if sched.foreign_wakers_possible():
            return False

        # 4. Nothing can: a deadlock (or, while draining, just the end).
        if not self.draining:
            sched.deadlock = self._dump(DEADLOCK_HEADER)
        sched.stopping = True
        sched.wake_all()
        return True

    def _dump(self, header: str) -> str:
        """``header`` and the stack of every live task."""
        from .sysmon import _in_step

        lines = [header, ""]
        describe = _wait_describer(self.sched)
        for task in self.sched.tasks():
            waiting_on = task._waiting_on
            if waiting_on is not None:
                state = "blocked"
            elif _in_step(task):
                state = "running"
            else:
                state = "runnable"
            what = describe(task) if waiting_on is not None else ""
            where = f" on {what}" if what else ""
            lines.append(f"task {task._id} [{state}{where}] {task.name!r}:")
            lines.extend(describe_stack(task) or ["  (not started)"])
            lines.append("")
        return "\n".join(lines).rstrip("\n")

    # -- signals --------------------------------------------------------------

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        wanted = {signal.SIGINT: self._on_signal, signal.SIGTERM: self._on_signal}
        if hasattr(signal, "SIGQUIT"):
            wanted[signal.SIGQUIT] = self._on_sigquit
        for signum, handler in wanted.items():
            try:
                self._old_handlers[signum] = signal.signal(signum, handler)
            except (ValueError, OSError):
                pass
        try:
            fd = self.sched.poller.wakeup_fd()
            self._old_wakeup_fd = signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
        except (ValueError, OSError):
            self._old_wakeup_fd = -1

    def _restore_signals(self) -> None:
        for signum, handler in self._old_handlers.items():
            try:
                signal.signal(signum, handler)
            except (ValueError, OSError, TypeError):
                pass
        self._old_handlers.clear()
        if threading.current_thread() is threading.main_thread():
            try:
                signal.set_wakeup_fd(self._old_wakeup_fd)
            except (ValueError, OSError):
                pass

    def _exit_now(self, status: int) -> None:
        """Leave the process at once (a second signal, SIGQUIT); the control
        socket's file goes first, since no shutdown will remove it."""
        if self.control is not None:
            try:
                os.unlink(self.control.path)
            except OSError:
                pass
        os._exit(status)

    def _on_signal(self, signum: int, frame: Any) -> None:
        """Signal handler (main thread): queue it; a worker acts on it."""
        # Once the grace period is over there is nothing graceful left to
        # do: the first signal already ends the process.
        late = self._grace_done
        if signum == signal.SIGINT:
            self._sigints += 1
            if self._sigints >= 2 or late:
                os.write(2, _LATE_SIGNAL[late] % b"interrupt")
                self._exit_now(130)
        elif signum == signal.SIGTERM:
            self._sigterms += 1
            if self._sigterms >= 2 or late:
                os.write(2, _LATE_SIGNAL[late] % b"SIGTERM")
                self._exit_now(143)
        if self.sched.stuck:
            # A task blocking its worker sees the cancellation only when its
            # step ends: say so, rather than seeming to ignore the signal.
            again = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
            os.write(2, _WAITING_ON_BLOCKED % again.encode())
        self.sched.sigq.append(signum)
        self.sched.poller.wakeup()

    def _on_sigquit(self, signum: int, frame: Any) -> None:
        """SIGQUIT: dump every task's stack to stderr and exit 2, like Go."""
        text = self._dump(f"curcor: SIGQUIT: dumping {len(self.sched.tasks())} tasks")
        os.write(2, (text + "\n").encode("utf-8", "replace"))
        self._exit_now(2)

    def _take_signals(self) -> None:
        """On a worker: act on queued signals by cancelling the main task."""
        while self.sched.sigq:
            try:
                signum = self.sched.sigq.popleft()
            except IndexError:
                return
            if signum == signal.SIGINT:
                self.interrupted = True
            elif not self.terminated:
                # Graceful: everything gets shutdown_grace seconds from now.
                self.terminated = True
                grace = float(getattr(self.config, "shutdown_grace", 5.0))
                self.sched.timers.call_at(
                    self.sched.clock.now() + grace, self._grace_over
                )
            main = self.sched.main
            if main is not None:
                _cancel_in(self.sched, main)

    # -- garbage collection ---------------------------------------------------

    # The ``gcgov.Governor`` of this run, from ``_gc_begin`` on.
    gcgov: Any = None

    def _gc_callback(self, phase: str, info: dict[str, Any]) -> None:
        """In ``gc.callbacks``: time each collection, feed it to the governor.

        Runs on whichever thread collects; the interpreter runs one
        collection at a time (see gcgov.py).
        """
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        self.gcgov.collection(info["generation"], info["collected"], pause)


def _wait_describer(sched: Any) -> Any:
    """``task -> text`` naming what a blocked task waits on (for dumps)."""
    try:
        from .control import _Look, describe_wait

        look = _Look(sched)
    except Exception:  # a dump must not fail: fall back to the type's name
        return lambda task: type(task._waiting_on).__name__

    def describe(task: Any) -> str:
        try:
            wait = describe_wait(task, look)
        except Exception:
            wait = None
        if not wait:
            return type(task._waiting_on).__name__
        return str(wait.get("text") or type(task._waiting_on).__name__)

    return describe


def _trim_runtime_frames(exc: BaseException) -> None:
    """Drop the runtime's own frames from ``exc``'s traceback: the worker
    loop that led into a task, and the join that carried a child's error to
    its parent."""
    # A compiled build's frames name their file relative to the build root.
    core = (os.path.dirname(os.path.abspath(__file__)), "curcor/_core/")
    tb = exc.__traceback__
    if tb is not None:
        exc.__traceback__ = without_frames(tb, lambda f: f.startswith(core))


def inherit_non_daemon(t: threading.Thread) -> None:
    """Let threads that tasks start on ``t`` default to non-daemon.

    A runtime thread is started as a daemon, so a stuck one can never keep
    the process alive at exit. But Python threads inherit ``daemon`` from
    the thread that creates them, and deadlock detection counts only
    non-daemon foreign threads as possible wakers: a thread a task starts
    must look like one started from the main thread. The flag Python reads
    for that default is flipped after the start, when the daemon status the
    interpreter acts on is already fixed.
    """
    t._daemonic = False  # type: ignore[attr-defined]


def start_runtime_thread(sched: Any, target: Any, name: str) -> threading.Thread:
    """Start one of the runtime's helper threads (sysmon, the trace, the
    control socket): a daemon, registered in ``runtime_threads`` so that it
    never counts as a foreign waker, and presenting itself as non-daemon to
    the threads it starts (see ``inherit_non_daemon``)."""
    t = threading.Thread(target=target, name=name, daemon=True)
    t.start()
    assert t.ident is not None
    sched.runtime_threads.add(t.ident)
    inherit_non_daemon(t)
    return t


def _start_workers(rt: Runtime) -> None:
    """Start workers 1..n-1; on failure stop those started and raise."""
    sched = rt.sched
    fail_at = os.environ.get("CURCOR_FAULT_THREAD_CREATE", "")
    started: list[threading.Thread] = []
    for w in sched.workers[1:]:
        t = threading.Thread(target=w.run, name=f"curcor-worker-{w.index}", daemon=True)
        try:
            if fail_at and int(fail_at) == w.index:
                raise RuntimeError("can't start new thread (fault injected)")
            t.start()
        except RuntimeError as exc:
            sched.stop()
            for s in started:
                s.join(timeout=5)
            sched.poller.close()
            raise ThreadCreateError(
                f"{exc}; {len(started) + 1} of {sched.n} workers had started and "
                "were stopped; lower maxprocs (CURCOR_MAXPROCS) or raise the "
                "thread limit (ulimit -u)"
            ) from None
        assert t.ident is not None
        sched.runtime_threads.add(t.ident)
        inherit_non_daemon(t)
        w.thread = t
        started.append(t)


# inspect.CO_ITERABLE_COROUTINE (a @types.coroutine generator), without
# importing inspect at boot.
_CO_ITERABLE_COROUTINE = 0x100


def _check_coroutine(coro: Any, api: str) -> Any:
    """The coroutine a task for ``coro`` steps: ``coro`` itself, or a wrapper
    for ``curcor.sleep(0)``'s awaitable; TypeError for anything else."""
    if type(coro) is types.GeneratorType and not (
        coro.gi_code.co_flags & _CO_ITERABLE_COROUTINE
    ):
        coro.close()
        raise TypeError(
            f"{api} takes a coroutine object, not a generator "
            f"({coro.__qualname__}); define the function with `async def`"
        )
    if hasattr(coro, "send") and hasattr(coro, "throw"):
        return coro
    if type(coro) is YieldNow:
        return await_once(coro)
    if callable(coro):
        name = getattr(coro, "__name__", "fn")
        raise TypeError(
            f"{api} takes a coroutine object, not the function {name!r}: write "
            f"{api.rstrip('()')}({name}(...)), with the arguments inside the call"
        )
    raise TypeError(
        f"{api} takes a coroutine object (the result of calling an async def "
        f"function), not {type(coro).__name__}"
    )


def run(
    coro: Any,
    *,
    config: Any = None,
    clock: Clock | None = None,
    seed: Any = None,  # (Any: see go(); checked by _check_run_arguments)
    spread: bool | None = None,
) -> Any:
    """Boot the runtime, run ``coro`` as the main task, shut down, return its value.

    Args:
        coro: the main coroutine, e.g. ``main()``.
        config: a ``curcor.config.Config``; by default the configuration is read
            from ``curcor.toml`` and ``CURCOR_*`` environment variables.
        clock: a clock to drive timers (tests pass a ``FakeClock``).
        seed: shuffle the run queues with this seed (tests).
        spread: wake idle workers eagerly, as free-threaded builds do, so
            tests on GIL builds exercise several workers at once (tests).

    Raises:
        The main task's exception; the first exception that escaped a detached
        task; ``DeadlockError`` when every task blocked forever;
        ``KeyboardInterrupt`` after SIGINT; ``Terminated`` after SIGTERM;
        ``ConfigError`` or ``ThreadCreateError`` when boot fails.
    """
    global _running, _run_called
    coro = _check_coroutine(coro, "curcor.run()")
    try:
        _check_run_arguments(clock, seed)
    except TypeError:
        coro.close()
        raise
    if current_worker() is not None:
        coro.close()
        raise RuntimeMisuse(
            "curcor.run() was called from inside a running task; await the "
            "coroutine instead, or start it with curcor.go()"
        )
    try:
        cfg, announce = _load_config(config)
    except BaseException:
        coro.close()
        raise
    with _running_lock:
        if _running is not None:
            coro.close()
            raise RuntimeMisuse(
                "another curcor runtime is already running in this process; "
                "run one at a time, or use curcor.from_thread() to reach it"
            )
        _run_called = True
        try:
            rt = Runtime(cfg, clock, seed, spread)
        except BaseException:
            coro.close()
            raise
        _running = rt
    try:
        return _run(rt, coro, announce)
    finally:
        with _running_lock:
            _running = None


def _run(rt: Runtime, coro: Any, announce: bool) -> Any:
    sched = rt.sched
    try:
        _start_workers(rt)
    except BaseException:
        coro.close()
        if rt.control is not None:
            rt.control.stop()
        raise
    _apply_log_level(rt.config)
    if rt.sysmon is not None:
        # stats() loads its module on first use: 10 ms, a "long step" to
        # sysmon if it happened inside a task. Loaded here instead.
        from . import stats as _stats  # noqa: F401

        rt.sysmon.start()
    if rt.trace is not None:
        rt.trace.start()
    if rt.control is not None:
        rt.control.start()
    threads = "1 OS thread" if sched.n == 1 else f"{sched.n} OS threads"
    line = f"curcor: scheduler booted on {threads}"
    if announce:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    elif "logging" in sys.modules:
        # (Without logging imported nothing is configured to show an info
        # line; importing it here would cost every first run 3 ms.)
        curcor_log().info(line)

    # The main task starts on worker 0, which is this thread.
    w0 = sched.workers[0]
    main = Task()
    main.coro = coro
    main._id = sched.id_block(1)
    import contextvars

    ctx = contextvars.copy_context()
    main._ctx = ctx if len(ctx) else None
    main._state = RUNNABLE
    sched.main = main
    w0.spawned_extra += 1
    w0.local.append(main)
    sched.runtime_threads.add(threading.get_ident())

    gc_restore = _gc_begin(rt)
    rt._install_signals()
    try:
        w0.run()
    finally:
        rt._restore_signals()
        _stop_all(rt)
        _gc_end(rt, gc_restore)
        global _last_stats
        _last_stats = snapshot(rt)
    return _outcome(rt, main)


def _apply_log_level(config: Any) -> None:
    """Set the ``curcor`` logger's level when the ``log`` key was given."""
    sources = getattr(config, "sources", {})
    if sources.get("log", "default") == "default":
        return
    curcor_log().setLevel(str(config.log).upper())


def _stop_all(rt: Runtime) -> None:
    sched = rt.sched
    sched.stop()
    if rt.sysmon is not None:
        rt.sysmon.stop()
    if rt.trace is not None:
        rt.trace.stop()
    if rt.control is not None:
        rt.control.stop()
    grace = float(getattr(rt.config, "shutdown_grace", 5.0))
    for w in sched.workers[1:]:
        if w.thread is not None:
            w.thread.join(timeout=max(1.0, grace))
    if rt.pool is not None:
        rt.pool.shutdown()
    _close_abandoned(rt)
    sched.poller.close()


def _close_abandoned(rt: Runtime) -> None:
    """Close the coroutines of tasks left after the grace period, here and now.

    Otherwise the garbage collector would close them later, on any thread,
    running their ``finally`` blocks outside any runtime.
    """
    if rt.sched.live_tasks() <= 0:
        return
    for task in rt.sched.tasks():
        if task is rt.sched.main:
            continue
        try:
            task.coro.close()
        except BaseException:  # a finally block that awaited, or still running
            pass
        # Ended (so no later scan lists it), as abandoned tasks are.
        task._exc = Cancelled()
        task._state = DONE


def _outcome(rt: Runtime, main: Task) -> Any:
    """What ``run`` returns or raises, in order of precedence."""
    sched = rt.sched
    unjoined = _log_unjoined(rt)
    if rt.interrupted:
        raise KeyboardInterrupt
    if rt.terminated and main._state != DONE:
        raise Terminated("stopped by SIGTERM; the grace period ran out")
    if sched.deadlock is not None:
        raise DeadlockError(sched.deadlock)
    if rt.crash is not None:
        raise rt.crash
    if main._state != DONE:
        raise RuntimeMisuse("the runtime stopped before the main task finished")
    exc = main._exc
    if rt.terminated and (exc is None or isinstance(exc, Cancelled)):
        raise Terminated("stopped by SIGTERM after a graceful shutdown")
    if exc is not None:
        _trim_runtime_frames(exc)
        raise exc
    if unjoined is not None:
        raise unjoined
    return main._value


def _log_task_error(task: Task, exc: BaseException, then: str) -> None:
    """Log an error no one will catch, with its traceback (curcor's frames
    cut out): "unhandled exception in task NAME; THEN"."""
    _trim_runtime_frames(exc)
    curcor_log().error(
        "unhandled exception in task %r; %s",
        task.name,
        then,
        exc_info=(type(exc), exc, exc.__traceback__),
    )


def _log_unjoined(rt: Runtime) -> BaseException | None:
    """Log every error of a task whose handle was kept but never joined
    (each one, whatever ``run`` then raises: none is lost); the first."""
    first = None
    for task in list(rt.unretrieved.values()):
        error = task._exc
        if error is None or isinstance(error, Cancelled):
            continue
        _log_task_error(task, error, "it was never joined")
        first = first or error
    rt.unretrieved.clear()
    return first


def _gc_begin(rt: Runtime) -> Any:
    """Boot: start the GC governor in the configured mode (docs/gc.md)."""
    from .gcgov import Governor

    mode = getattr(rt.config, "gc", "governed")
    saved = (gc.isenabled(), gc.get_threshold())
    rt.gcgov = Governor(mode == "governed", saved[1], GOVERNED_GEN0)
    gc.callbacks.append(rt._gc_callback)
    if mode == "off":
        gc.disable()
    elif mode == "governed":
        # Start-up objects leave the collector's way; the governor then
        # adapts the young thresholds to what collections reclaim.
        gc.freeze()
        rt.gcgov.start()
    return saved


# The governor's floor: generation 0's threshold while governed and no burst
# is under way. Chosen by measurement (benchmarks/ spawn 1M): see docs/gc.md.
GOVERNED_GEN0 = 50_000


def _gc_end(rt: Runtime, saved: Any) -> None:
    """Shutdown: stop the governor first, then restore the collector."""
    try:
        gc.callbacks.remove(rt._gc_callback)
    except ValueError:
        pass
    enabled, threshold = saved
    gc.set_threshold(*threshold)
    if enabled:
        gc.enable()
    if getattr(rt.config, "gc", "governed") == "governed":
        gc.unfreeze()


# -- the API the public modules wrap ------------------------------------------


# (``name: Any``, not ``str | None``: a compiled build checks annotations at the
# call, before the clearer error below could be raised.)
def go(coro: Any, name: Any = None) -> Task:
    """Start ``coro`` as a detached task (Go's ``go``) and return its handle.

    ``curcor.go(worker(i))`` — note the call: pass the coroutine object.

    Raises:
        TypeError: ``coro`` is not a coroutine object (e.g. ``go(fn, 1)``).
        RuntimeMisuse: called outside a running curcor task.
    """
    try:
        w = _tls.worker
        parent = w.current
    except AttributeError:
        parent = None
    if parent is None:
        if hasattr(coro, "close"):
            coro.close()
        raise RuntimeMisuse(
            "curcor.go() was called outside the runtime; start the program with "
            "curcor.run(main()) and call go() from a task, or use "
            "curcor.from_thread() from a plain thread"
        )
    if type(coro) is not CoroutineType:
        coro = _check_coroutine(coro, "curcor.go()")
    if name is not None and type(name) is not str:
        if hasattr(coro, "close"):
            coro.close()
        raise TypeError(
            f"curcor.go() takes a coroutine and an optional name (a str), got "
            f"name={name!r}; to pass arguments write curcor.go(fn(arg)), not "
            "curcor.go(fn, arg)"
        )
    # Worker.spawn, inlined (no ``prepare``): the hot call of every program.
    free = w.free
    if free:
        task = free.pop()
    elif w.sched.free_pool:
        task = w.new_record()  # a batch from the shared pool
    else:
        task = Task()
        w.record_misses += 1
    task.coro = coro
    task._name = name
    tid = w.id_next
    if tid >= w.id_end:
        tid = w.take_ids()
    w.id_next = tid + 1
    task._id = tid
    if parent._ctx is not None:
        task._ctx = parent._ctx.copy()
    elif w.base:
        task._ctx = w.base.copy()
    task._state = RUNNABLE
    w.local.append(task)
    if w.spawn_hooks:
        w.spawn_hooks_run(task)
    return task


def cancel_task(task: Task) -> bool:
    """``Task.cancel``: request cancellation; True if the task had not ended."""
    rt = _running
    if rt is None:
        return False
    return _cancel_in(rt.sched, task)


async def join_task(task: Task) -> Any:
    """Wait for the task to finish and return its value (``Task.join``).

    Raises:
        The task's exception, or ``Cancelled`` if it was cancelled.
    """
    try:  # worker_and_task, inlined: every join of a spawn tree runs this
        w = _tls.worker
        me = w.current
    except AttributeError:
        me = None
    if me is None:
        worker_and_task("Task.join()")  # raises the misuse error
    if task is me:
        raise RuntimeMisuse("a task cannot join itself; it would wait forever")
    if me._cancel_pending:
        raise Cancelled()
    # Already finished without an error, the common case (a parent that
    # starts its children first finds most of them done): on GIL builds the
    # value, written before DONE, is seen without the stripe lock
    # (free-threaded builds take it for the ordering).
    if task._state == DONE and task._exc is None and not w.spread:
        return task._value
    sched = w.sched
    if sched.stopping:
        # The grace period is over and nothing runs again: wait, so that an
        # abandoned task that catches the joined task's error and joins
        # again in a loop ends its step and run() can return.
        from .chan import _block_forever

        await _block_forever(me)
    stripe = sched.stripe(task)
    stripe.acquire()
    if task._state == DONE or task._state == FREE:
        stripe.release()
        return take_result(task)
    if task._joiners is None:
        task._joiners = []
    task._joiners.append((me, me._wait_seq))
    await park(me, task, stripe)
    return take_result(task)


def _abort_join(task: Task, waiter: Task) -> bool:
    """Abort ``waiter``'s join of ``task`` (cancellation)."""
    rt = _running
    if rt is None:
        return False
    with rt.sched.stripe(task):
        return end_wait(waiter, task)


task_module.HOOKS[:] = [join_task, _abort_join]
# ``task.join()`` is ``join_task(task)`` itself: no second call on a path
# every structured program takes. A compiled build's Task class is closed
# to assignment; its ``join`` calls ``join_task`` through ``HOOKS``.
with contextlib.suppress(TypeError, AttributeError):
    join_task.__name__ = join_task.__qualname__ = "join"
    Task.join = join_task  # type: ignore[method-assign,assignment]


def take_result(task: Task) -> Any:
    """The value of a finished task, or raise its exception."""
    exc = task._exc
    if exc is None:
        return task._value
    rt = _running
    if rt is not None:  # only failed tasks are ever kept as unretrieved
        rt.unretrieved.pop(id(task), None)
    # With the traceback it ended with (kept in ``_value`` by the worker):
    # a bare ``raise exc`` would add this raise's frames to the same object
    # each time, and a loop of joins would grow it without end (15 GB in a
    # minute, found by a loop that caught and joined again).
    tb = task._value
    raise exc.with_traceback(tb if isinstance(tb, types.TracebackType) else None)


def now() -> float:
    """The runtime's monotonic clock in seconds (a test's fake clock drives it)."""
    rt = _running
    if rt is None:
        return time.monotonic()
    return rt.sched.clock.now()


def current_task() -> Task:
    """The task running this code.

    Raises:
        RuntimeMisuse: called outside a curcor task.
    """
    return worker_and_task("curcor.current_task()")[1]


# -- statistics ---------------------------------------------------------------


def snapshot(rt: Runtime | None) -> Any:
    """A ``Stats`` snapshot of ``rt`` (or of the last runtime, or zeros)."""
    from .stats import Stats, WorkerStats

    if rt is None:
        return _last_stats if _last_stats is not None else Stats()
    sched = rt.sched
    workers = tuple(
        WorkerStats(
            index=w.index,
            steps=w.steps,
            steals=w.steals,
            handoffs=w.handoffs,
            standdowns=w.standdowns,
            parks=w.parks,
            queued=len(w.local) + (w.runnext is not None),
            stuck=w.stuck,
        )
        for w in sched.workers
    )
    from .sysmon import _in_step

    live = max(0, sched.live_tasks())
    runnable = min(live, sched.runnable_tasks())
    running = sum(1 for w in sched.workers if _in_step(w.current))
    spawned = sum(w.spawned for w in sched.workers) + sched.outside_spawned
    return Stats(
        maxprocs=sched.n,
        backend=sched.poller.backend,
        uptime=time.monotonic() - rt.started_at,
        tasks_live=live,
        tasks_runnable=runnable,
        tasks_blocked=max(0, live - runnable - running),
        tasks_running=running,
        tasks_spawned=spawned,
        tasks_finished=sum(w.finished for w in sched.workers),
        steps=sum(w.steps for w in sched.workers),
        workers=workers,
        timers_pending=len(sched.timers.heap),
        timers_fired=sched.timers.fired,
        netpoll_waits=sched.poller.waits,
        **_preempt_figures(rt),
        thread_calls_in_flight=sched.thread_work,
        pool_hits=sched.mempool.hits,
        pool_misses=sched.mempool.misses,
        pool_bytes=sched.mempool.pooled,
        pool_bytes_lent=sched.mempool.lent,
        pool_capacity=sched.mempool.capacity,
        task_records_free=sum(len(w.free) for w in sched.workers)
        + sum(len(batch) for batch in sched.free_pool),
        # Every spawn is a hit or a miss; the main task is counted as
        # spawned but made by run(), not by a spawn.
        task_record_hits=sum(w.spawned - w.record_misses for w in sched.workers)
        - (sched.main is not None),
        task_record_misses=sum(w.record_misses for w in sched.workers),
        **_gc_figures(rt.gcgov, getattr(rt.config, "gc", "governed")),
    )


def _preempt_figures(rt: Runtime) -> dict[str, Any]:
    """The ``Stats`` fields sysmon reports (zeros when preemption is off)."""
    mon = rt.sysmon
    if mon is None:
        return {"spare_workers_max": int(getattr(rt.config, "spare_workers_max", 0))}
    return {
        "stuck_steps": mon.stuck_steps,
        "stuck_sites": tuple(sorted(mon.sites.items())),
        "spare_workers": rt.sched.spares_alive(),
        "spare_workers_started": mon.spares_started,
        "spare_workers_max": mon.spare_max,
    }


def _gc_figures(gov: Any, mode: str) -> dict[str, Any]:
    """The ``Stats`` fields the GC governor reports (zeros before boot)."""
    if gov is None:
        return {"gc_mode": mode}
    return {
        "gc_mode": mode,
        "gc_collections": gov.collections,
        "gc_pause_total": gov.pause_total,
        "gc_pause_max": gov.pause_max,
        "gc_collections_by_generation": tuple(gov.by_generation),
        "gc_collected": gov.collected,
        "gc_threshold0": gov.threshold,
        "gc_threshold1": gov.middle,
        "gc_adjustments": gov.adjustments,
    }


def stats() -> Any:
    """A snapshot of the running runtime's figures (``curcor.Stats``).

    Outside a runtime it returns the last runtime's final figures, or zeros.
    """
    return snapshot(_running)


__all__ = [
    "cancel_task",
    "current_task",
    "go",
    "join_task",
    "now",
    "run",
    "run_was_called",
    "running_scheduler",
    "set_process_defaults",
    "stats",
    "take_result",
]

"""Threads: to_thread on the bounded pool, cancellation of a call in flight,
from_thread from plain threads, and foreign threads as possible wakers."""

from __future__ import annotations

import threading
import time

import pytest

import curcor
from curcor.config import load_config
from curcor.testing import FakeClock

# See test_runtime.py: the default pytest-timeout method keeps a non-daemon
# thread alive, which would make any deadlock test (and its negative, a
# foreign thread preventing one) pass or hang for the wrong reason.
SIGNAL_TIMEOUT = pytest.mark.timeout(30, method="signal")


def run(coro, *, clock=None, **flags):
    config = load_config(env={}, flags={k: str(v) for k, v in flags.items()})
    return curcor.run(coro, config=config, clock=clock)


# -- to_thread ----------------------------------------------------------------


async def test_to_thread_returns_the_functions_value_and_runs_off_the_workers():
    here = threading.get_ident()

    def work(a, b):
        return a + b, threading.get_ident()

    value, ident = await curcor.to_thread(work, 2, 3)
    assert value == 5
    assert ident != here


async def test_to_thread_raises_what_the_function_raised():
    def fail():
        raise KeyError("in thread")

    with pytest.raises(KeyError, match="in thread"):
        await curcor.to_thread(fail)


async def test_to_thread_with_a_call_instead_of_a_function_names_the_fix():
    with pytest.raises(TypeError, match=r"to_thread\(fn, arg\)"):
        await curcor.to_thread(5)


def test_to_thread_runs_calls_in_parallel_up_to_to_thread_max():
    size = 3
    barrier = threading.Barrier(size, timeout=10)

    async def main():
        # Each call waits until all `size` are running at once.
        async with curcor.TaskGroup() as tg:
            for _ in range(size):
                tg.go(curcor.to_thread(barrier.wait))

    run(main(), to_thread_max=size)


def test_to_thread_never_runs_more_than_to_thread_max_at_once():
    lock = threading.Lock()
    inside = {"now": 0, "max": 0}

    def work():
        with lock:
            inside["now"] += 1
            inside["max"] = max(inside["max"], inside["now"])
        time.sleep(0.02)  # long enough for others to pile up; nothing timed
        with lock:
            inside["now"] -= 1

    async def main():
        async with curcor.TaskGroup() as tg:
            for _ in range(8):
                tg.go(curcor.to_thread(work))
        return curcor.stats()

    stats = run(main(), to_thread_max=2)
    assert inside["max"] == 2
    assert stats.thread_calls_in_flight == 0


def test_cancelled_to_thread_returns_at_once_and_drops_the_result():
    release = threading.Event()
    finished = threading.Event()
    results = []

    def slow():
        release.wait(20)
        finished.set()
        return "late result"

    async def main():
        with curcor.move_on_after(1) as scope:
            results.append(await curcor.to_thread(slow))
        # The fake clock jumped to the deadline while the thread still ran.
        assert scope.cancelled_caught
        assert not finished.is_set()
        release.set()
        # The pool is free again afterwards, and the late result went nowhere.
        assert await curcor.to_thread(lambda: "next") == "next"
        await curcor.to_thread(finished.wait, 20)
        await curcor.sleep(0)
        return curcor.now()

    assert run(main(), clock=FakeClock(), to_thread_max=2) == 1
    assert results == []


async def test_cancelled_to_thread_call_leaves_no_thread_work_counted():
    gate = threading.Event()

    async def blocked():
        await curcor.to_thread(gate.wait, 20)

    t = curcor.go(blocked())
    await curcor.sleep(0)
    t.cancel()
    with pytest.raises(curcor.Cancelled):
        await t.join()
    gate.set()
    # Wait (on the pool) for the abandoned call to come back.
    for _ in range(200):
        if curcor.stats().thread_calls_in_flight == 0:
            break
        await curcor.to_thread(time.sleep, 0.005)
    # Our own probing call is the only one that might still be counted.
    assert curcor.stats().thread_calls_in_flight <= 1


# -- from_thread ----------------------------------------------------------------


async def test_from_thread_returns_the_coroutines_value():
    results = []

    async def double(x):
        await curcor.sleep(1)
        return 2 * x

    def in_thread():
        results.append(curcor.from_thread(double, 21))

    t = threading.Thread(target=in_thread)
    t.start()
    await curcor.to_thread(t.join)
    assert results == [42]


async def test_from_thread_raises_the_coroutines_exception_in_the_thread():
    errors = []

    async def fail():
        raise ValueError("from the runtime")

    def in_thread():
        try:
            curcor.from_thread(fail)
        except ValueError as exc:
            errors.append(str(exc))

    t = threading.Thread(target=in_thread)
    t.start()
    await curcor.to_thread(t.join)
    assert errors == ["from the runtime"]


async def test_from_thread_inside_the_runtime_is_misuse():
    async def noop():
        pass

    with pytest.raises(curcor.RuntimeMisuse, match="await"):
        curcor.from_thread(noop)


def test_from_thread_with_no_runtime_is_misuse():
    async def noop():
        pass

    with pytest.raises(curcor.RuntimeMisuse, match="running"):
        curcor.from_thread(noop)


def test_from_thread_after_the_runtime_stopped_is_misuse():
    go_on = threading.Event()
    outcome = []

    async def noop():
        return 1

    def in_thread():
        assert curcor.from_thread(noop) == 1
        go_on.wait(20)  # until the runtime below has stopped
        try:
            curcor.from_thread(noop)
        except curcor.RuntimeMisuse as exc:
            outcome.append(str(exc))

    async def main():
        t = threading.Thread(target=in_thread)
        t.start()
        await curcor.sleep(0.01)
        return t

    t = run(main())
    go_on.set()
    t.join(20)
    assert len(outcome) == 1
    assert "stopped" in outcome[0] or "running" in outcome[0]


@SIGNAL_TIMEOUT
def test_a_live_foreign_thread_that_will_call_from_thread_prevents_a_false_deadlock():
    ch_box = []
    ready = threading.Event()

    def producer():
        ready.wait(20)
        time.sleep(0.2)  # let every task block first; nothing is timed
        curcor.from_thread(ch_box[0].send, "from outside")

    async def main():
        ch = curcor.Channel()
        ch_box.append(ch)
        ready.set()
        return await ch.recv()

    t = threading.Thread(target=producer)  # non-daemon, not ours
    t.start()
    try:
        assert run(main(), maxprocs=2) == "from outside"
    finally:
        t.join(20)


@SIGNAL_TIMEOUT
def test_a_daemon_thread_does_not_prevent_deadlock_detection():
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, args=(20,), daemon=True)
    t.start()

    async def main():
        await curcor.Channel().recv()

    try:
        with pytest.raises(curcor.DeadlockError):
            run(main())
    finally:
        stop.set()
        t.join(20)


@SIGNAL_TIMEOUT
def test_a_to_thread_call_in_flight_is_not_a_deadlock():
    def slow():
        time.sleep(0.2)  # a blocking call; nothing is timed
        return "done"

    async def main():
        return await curcor.to_thread(slow)

    assert run(main()) == "done"


# -- sync primitives released from a plain thread -------------------------------


def _released_from_a_thread():
    """(name, factory): a factory returns (waiting coroutine, release fn)."""

    def event():
        ev = curcor.Event()
        return ev.wait(), ev.set

    def waitgroup():
        wg = curcor.WaitGroup()
        wg.add(1)
        return wg.wait(), wg.done

    def mutex():
        mu = curcor.Mutex()
        assert mu.try_lock()
        return mu.lock(), mu.unlock

    def semaphore():
        sem = curcor.Semaphore(0)
        return sem.acquire(), sem.release

    return [(f.__name__, f) for f in (event, waitgroup, mutex, semaphore)]


@pytest.mark.parametrize(
    "name,factory",
    _released_from_a_thread(),
    ids=[n for n, _ in _released_from_a_thread()],
)
async def test_sync_primitives_released_from_a_plain_thread_wake_their_waiter(
    name, factory
):
    waiting, release = factory()
    waiter = curcor.go(waiting)
    await curcor.sleep(0)
    assert not waiter.done()
    await curcor.to_thread(release)
    with curcor.move_on_after(10) as scope:
        await waiter.join()
    assert not scope.cancelled_caught, f"{name}: the waiter was never woken"


def test_shutdown_waits_for_idle_pool_threads_only(monkeypatch):
    """A thread still in an abandoned call held run() up for 0.5 s at exit:
    shutdown joined every pool thread, busy or not."""
    joined = []
    real_join = threading.Thread.join

    def recording_join(self, timeout=None):
        joined.append(self)
        return real_join(self, timeout)

    release = threading.Event()
    seen = {}

    async def main():
        with curcor.move_on_after(0.01):
            await curcor.to_thread(release.wait, 10)  # abandoned, still running
        await curcor.to_thread(lambda: None)  # a second thread, idle after
        seen["threads"] = list(curcor._core.runtime.running_runtime().pool._threads)

    monkeypatch.setattr(threading.Thread, "join", recording_join)
    try:
        curcor.run(main())
        assert len(seen["threads"]) == 2
        busy = [t for t in seen["threads"] if t.is_alive()]
        assert busy and not set(busy) & set(joined)
        assert set(seen["threads"]) - set(busy) <= set(joined)
    finally:
        release.set()

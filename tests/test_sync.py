"""Synchronisation primitives: WaitGroup, Mutex, RWMutex, Semaphore, Event,
Once and Condition, including FIFO hand-off and cancellation."""

from __future__ import annotations

import pytest

import curcor
from curcor.testing import wait_all_tasks_blocked


async def spawn_in_order(coros):
    """Start each coroutine and let it block before starting the next, so
    they queue on a primitive in a known order."""
    tasks = []
    for coro in coros:
        tasks.append(curcor.go(coro))
        await wait_all_tasks_blocked()
    return tasks


# -- WaitGroup ----------------------------------------------------------------


async def test_waitgroup_wait_returns_when_the_counter_reaches_zero():
    wg = curcor.WaitGroup()
    done = []

    async def worker(i):
        await curcor.sleep(i)
        done.append(i)
        wg.done()

    wg.add(3)
    for i in (1, 2, 3):
        curcor.go(worker(i))
    await wg.wait()
    assert sorted(done) == [1, 2, 3]
    assert curcor.now() == pytest.approx(3)
    assert wg.count == 0


async def test_waitgroup_wait_with_zero_count_returns_at_once():
    wg = curcor.WaitGroup()
    await wg.wait()
    assert curcor.now() == 0


async def test_waitgroup_wakes_every_waiter():
    wg = curcor.WaitGroup()
    wg.add(1)
    waiters = [curcor.go(wg.wait()) for _ in range(4)]
    await wait_all_tasks_blocked()
    assert not any(t.done() for t in waiters)
    wg.done()
    for t in waiters:
        await t.join()


async def test_waitgroup_going_negative_is_a_value_error_and_keeps_the_count():
    wg = curcor.WaitGroup()
    with pytest.raises(ValueError):
        wg.done()
    wg.add(2)
    with pytest.raises(ValueError):
        wg.add(-3)
    assert wg.count == 2


# -- Mutex --------------------------------------------------------------------


async def test_mutex_excludes_and_unlock_of_unlocked_is_misuse():
    mu = curcor.Mutex()
    await mu.lock()
    assert mu.locked()
    assert mu.try_lock() is False
    mu.unlock()
    assert not mu.locked()
    with pytest.raises(curcor.RuntimeMisuse):
        mu.unlock()


async def test_mutex_hands_over_to_waiters_in_fifo_order():
    mu = curcor.Mutex()
    order = []

    async def waiter(i):
        async with mu:
            order.append(i)
            await curcor.sleep(1)

    await mu.lock()
    tasks = await spawn_in_order(waiter(i) for i in range(6))
    mu.unlock()
    for t in tasks:
        await t.join()
    assert order == list(range(6))


async def test_mutex_unlock_hands_ownership_so_a_newcomer_cannot_barge():
    mu = curcor.Mutex()
    got = []

    async def waiter():
        await mu.lock()
        got.append("waiter")
        mu.unlock()

    await mu.lock()
    t = curcor.go(waiter())
    await wait_all_tasks_blocked()
    mu.unlock()
    # The waiter owns it now, even before it has run.
    assert mu.locked()
    assert mu.try_lock() is False
    await t.join()
    assert got == ["waiter"]
    assert not mu.locked()


async def test_cancelled_mutex_waiter_does_not_get_or_leak_the_lock():
    mu = curcor.Mutex()
    order = []

    async def waiter(i):
        async with mu:
            order.append(i)

    await mu.lock()
    a, b, c = await spawn_in_order(waiter(i) for i in range(3))
    b.cancel()
    with pytest.raises(curcor.Cancelled):
        await b.join()
    mu.unlock()
    await a.join()
    await c.join()
    assert order == [0, 2]
    assert not mu.locked()


async def test_mutex_serialises_a_read_modify_write_across_workers():
    mu = curcor.Mutex()
    box = {"n": 0}

    async def incr():
        for _ in range(50):
            async with mu:
                n = box["n"]
                await curcor.sleep(0)
                box["n"] = n + 1

    async with curcor.TaskGroup() as tg:
        for _ in range(8):
            tg.go(incr())
    assert box["n"] == 400


# -- RWMutex ------------------------------------------------------------------


async def test_rwmutex_readers_hold_it_together():
    rw = curcor.RWMutex()
    inside = {"now": 0, "max": 0}

    async def reader():
        async with rw.reading():
            inside["now"] += 1
            inside["max"] = max(inside["max"], inside["now"])
            await curcor.sleep(1)
            inside["now"] -= 1

    async with curcor.TaskGroup() as tg:
        for _ in range(5):
            tg.go(reader())
    assert inside["max"] == 5
    assert curcor.now() == pytest.approx(1)


async def test_rwmutex_writer_excludes_readers_and_writers():
    rw = curcor.RWMutex()
    log = []

    async def writer(i):
        async with rw.writing():
            log.append(("w+", i))
            await curcor.sleep(1)
            log.append(("w-", i))

    async def reader(i):
        async with rw.reading():
            log.append(("r+", i))
            await curcor.sleep(1)
            log.append(("r-", i))

    async with curcor.TaskGroup() as tg:
        for i in range(3):
            tg.go(writer(i))
            tg.go(reader(i))
    # While a writer holds it, nothing else enters.
    holder = None
    readers = 0
    for kind, i in log:
        if kind == "w+":
            assert holder is None and readers == 0, log
            holder = i
        elif kind == "w-":
            holder = None
        elif kind == "r+":
            assert holder is None, log
            readers += 1
        else:
            readers -= 1


async def test_rwmutex_waiting_writer_is_not_starved_by_new_readers():
    rw = curcor.RWMutex()
    order = []

    async def reader(i):
        await rw.rlock()
        order.append(f"r{i}")
        await curcor.sleep(1)
        rw.runlock()

    async def writer():
        await rw.lock()
        order.append("w")
        await curcor.sleep(1)
        rw.unlock()

    await rw.rlock()  # the first reader holds it
    w = curcor.go(writer())
    await wait_all_tasks_blocked()
    late = curcor.go(reader(1))  # arrives after the writer: must wait
    await wait_all_tasks_blocked()
    assert order == []
    rw.runlock()
    await w.join()
    await late.join()
    assert order == ["w", "r1"]


async def test_rwmutex_unlock_without_lock_is_misuse():
    rw = curcor.RWMutex()
    with pytest.raises(curcor.RuntimeMisuse):
        rw.unlock()
    with pytest.raises(curcor.RuntimeMisuse):
        rw.runlock()


async def test_rwmutex_cancelled_waiting_writer_lets_queued_readers_in():
    rw = curcor.RWMutex()
    await rw.rlock()
    w = curcor.go(rw.lock())
    await wait_all_tasks_blocked()
    r = curcor.go(rw.rlock())
    await wait_all_tasks_blocked()
    assert not r.done()
    w.cancel()
    with pytest.raises(curcor.Cancelled):
        await w.join()
    # With the writer gone, the reader behind it must not wait for ever.
    with curcor.move_on_after(10) as scope:
        await r.join()
    assert not scope.cancelled_caught


# -- Semaphore ----------------------------------------------------------------


async def test_semaphore_bounds_concurrency():
    sem = curcor.Semaphore(3)
    inside = {"now": 0, "max": 0}

    async def worker():
        async with sem:
            inside["now"] += 1
            inside["max"] = max(inside["max"], inside["now"])
            await curcor.sleep(1)
            inside["now"] -= 1

    async with curcor.TaskGroup() as tg:
        for _ in range(10):
            tg.go(worker())
    assert inside["max"] == 3
    assert curcor.now() == pytest.approx(4)  # ceil(10 / 3) rounds
    assert sem.value == 3


async def test_semaphore_serves_waiters_in_fifo_order():
    sem = curcor.Semaphore(0)
    order = []

    async def waiter(i):
        await sem.acquire()
        order.append(i)

    tasks = await spawn_in_order(waiter(i) for i in range(5))
    for _ in range(5):
        sem.release()
        await wait_all_tasks_blocked()  # one permit, one waiter, then the next
    for t in tasks:
        await t.join()
    assert order == list(range(5))


async def test_semaphore_try_acquire_does_not_overtake_waiters():
    sem = curcor.Semaphore(0)
    t = curcor.go(sem.acquire())
    await wait_all_tasks_blocked()
    sem.release()  # handed to the waiter
    assert sem.try_acquire() is False
    await t.join()


def test_semaphore_negative_value_is_a_value_error():
    with pytest.raises(ValueError):
        curcor.Semaphore(-1)


# -- Event --------------------------------------------------------------------


async def test_event_wakes_every_waiter_and_stays_set_until_cleared():
    ev = curcor.Event()
    waiters = [curcor.go(ev.wait()) for _ in range(3)]
    await wait_all_tasks_blocked()
    assert not any(t.done() for t in waiters)
    ev.set()
    for t in waiters:
        await t.join()
    assert ev.is_set()
    await ev.wait()  # already set: returns at once
    ev.clear()
    assert not ev.is_set()
    late = curcor.go(ev.wait())
    await wait_all_tasks_blocked()
    assert not late.done()
    ev.set()
    await late.join()


# -- Once ---------------------------------------------------------------------


async def test_once_runs_the_function_once_with_concurrent_callers():
    once = curcor.Once()
    calls = []

    async def init():
        calls.append(curcor.now())
        await curcor.sleep(5)
        return "ready"

    async def caller():
        result = await once.do(init)
        # Whoever returns, the initialisation has completed.
        assert once.done()
        return result

    async with curcor.TaskGroup() as tg:
        tasks = [tg.go(caller()) for _ in range(6)]
    assert len(calls) == 1
    results = [t.result() for t in tasks]
    assert results.count("ready") == 1
    assert results.count(None) == 5
    # The late callers waited for the first one to finish.
    assert curcor.now() == pytest.approx(5)
    assert await once.do(init) is None
    assert len(calls) == 1


async def test_once_with_a_plain_function_and_a_failure_counts_as_done():
    once = curcor.Once()
    calls = []

    def boom():
        calls.append(1)
        raise ValueError("init failed")

    with pytest.raises(ValueError):
        await once.do(boom)
    assert once.done()
    assert await once.do(boom) is None
    assert calls == [1]


# -- Condition ----------------------------------------------------------------


async def test_condition_notify_wakes_one_and_notify_all_wakes_the_rest():
    cond = curcor.Condition()
    woke = []

    async def waiter(i):
        async with cond:
            await cond.wait()
            assert cond.mutex.locked()
            woke.append(i)

    tasks = await spawn_in_order(waiter(i) for i in range(4))
    async with cond:
        cond.notify()
    await wait_all_tasks_blocked()
    assert woke == [0]
    async with cond:
        cond.notify(2)
    await wait_all_tasks_blocked()
    # The next two in line (the order they then run in is the scheduler's).
    assert sorted(woke) == [0, 1, 2]
    async with cond:
        cond.notify_all()
    for t in tasks:
        await t.join()
    assert sorted(woke) == [0, 1, 2, 3]


async def test_condition_wait_returns_holding_the_mutex():
    cond = curcor.Condition()
    ready = []
    log = []

    async def consumer():
        async with cond:
            while not ready:
                await cond.wait()
            log.append(("consumer has", cond.mutex.locked()))

    t = curcor.go(consumer())
    await wait_all_tasks_blocked()
    async with cond:
        ready.append(1)
        cond.notify()
        await curcor.sleep(1)  # hold the mutex: the consumer must wait for it
        log.append("producer releases")
    await t.join()
    assert log == ["producer releases", ("consumer has", True)]


async def test_condition_wait_holds_the_mutex_again_even_when_cancelled():
    cond = curcor.Condition()
    log = []

    async def waiter():
        async with cond:
            try:
                await cond.wait()
            except curcor.Cancelled:
                log.append(("cancelled, holding", cond.mutex.locked()))
                raise

    t = curcor.go(waiter())
    await wait_all_tasks_blocked()
    await cond.mutex.lock()
    t.cancel()
    await curcor.sleep(3)  # the waiter must not proceed while we hold it
    log.append("main releases")
    cond.mutex.unlock()
    with pytest.raises(curcor.Cancelled):
        await t.join()
    assert log == ["main releases", ("cancelled, holding", True)]
    assert not cond.mutex.locked()


async def test_condition_wait_without_the_mutex_is_misuse():
    cond = curcor.Condition()
    with pytest.raises(curcor.RuntimeMisuse):
        await cond.wait()


async def test_condition_notify_with_no_waiters_is_not_remembered():
    cond = curcor.Condition()
    async with cond:
        cond.notify()
    t = curcor.go(_wait_once(cond))
    await wait_all_tasks_blocked()
    assert not t.done()
    t.cancel()


async def _wait_once(cond):
    async with cond:
        await cond.wait()

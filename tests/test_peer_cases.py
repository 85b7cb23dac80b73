"""Cases taken from bug reports and test suites of other runtimes (asyncio,
trio, anyio, curio, Go), rewritten in curcor's API.

Each test names the peer report it comes from. The tests are written for
curcor's documented semantics (Go for channels, select and sync; trio for
cancellation); where a peer's fix chose between two acceptable outcomes, the
test accepts either and checks only the invariant the bug broke (no lost
value, no lost wake-up, no deadlock, no leaked lock).
"""

from __future__ import annotations

import contextvars

import pytest

import curcor
from curcor.testing import FakeClock, wait_all_tasks_blocked


async def spawn_blocked(coro):
    """Start ``coro`` and let it run until it blocks (so waiters queue in a
    known order)."""
    task = curcor.go(coro)
    await wait_all_tasks_blocked()
    return task


async def join_quietly(task):
    """Join ``task``; a cancelled task's ``Cancelled`` is expected here."""
    try:
        return await task.join()
    except curcor.Cancelled:
        return "cancelled"


# -- Mutex, Semaphore: hand-off racing cancellation -----------------------------


async def test_mutex_handed_to_a_waiter_cancelled_before_it_runs_is_not_lost():
    """asyncio bpo-27585 (python/cpython#1031, python/asyncio#467): the waiter
    about to take the lock is cancelled; the next waiter deadlocked."""
    mu = curcor.Mutex()
    order = []

    async def user(name):
        async with mu:
            order.append(name)
            await curcor.sleep(1)
            order.append(name + " done")

    await mu.lock()
    b = await spawn_blocked(user("b"))
    c = await spawn_blocked(user("c"))
    mu.unlock()  # hands the mutex to b ...
    b.cancel()  # ... which is cancelled before it has run
    await join_quietly(b)
    await c.join()
    assert order[-2:] == ["c", "c done"]
    assert "b done" not in order
    assert not mu.locked()


async def test_semaphore_permit_handed_to_a_cancelled_waiter_is_passed_on():
    """python/asyncio#270 and cpython gh-90155 (asyncio.Semaphore waiters
    deque doesn't work): release() wakes one waiter, that waiter is cancelled
    before it runs, and the other waiter hangs for ever."""
    sem = curcor.Semaphore(1)
    got = []

    async def user(name):
        async with sem:
            got.append(name)
            await curcor.sleep(1)

    await sem.acquire()
    b = await spawn_blocked(user("b"))
    c = await spawn_blocked(user("c"))
    sem.release()
    b.cancel()
    await join_quietly(b)
    with curcor.timeout(10):
        await c.join()
    assert "c" in got
    assert sem.value == 1


async def test_semaphore_cancelled_head_waiter_does_not_strand_the_next():
    """anyio#1145 (Fix asyncio lock waiter deadlocks after cancellation): a
    cancelled head waiter is seen by release() before its own cleanup ran, and
    a later live waiter is stranded."""
    sem = curcor.Semaphore(0)
    got = []

    async def user(name):
        await sem.acquire()
        got.append(name)

    a = await spawn_blocked(user("a"))
    b = await spawn_blocked(user("b"))
    a.cancel()  # no step in between: a has not run its cleanup yet
    sem.release()
    await join_quietly(a)
    with curcor.timeout(10):
        await b.join()
    assert got == ["b"]
    assert sem.value == 0


async def test_semaphore_release_to_a_waiter_cannot_be_stolen_by_try_acquire():
    """cpython gh-90155 / PR #93222 ("strengthen FIFO guarantee"): between
    release() waking a waiter and that waiter running, a newcomer took the
    permit."""
    sem = curcor.Semaphore(1)
    await sem.acquire()
    waiter = await spawn_blocked(sem.acquire())
    sem.release()
    assert not sem.try_acquire()  # the permit belongs to the woken waiter
    await waiter.join()
    assert sem.value == 0
    sem.release()
    assert sem.value == 1


async def test_lock_acquire_cancelled_inside_async_with_leaves_it_usable():
    """anyio#398 (Deadlock in anyio.Lock): a task cancelled while entering
    ``async with lock`` left the lock locked for everyone else."""
    mu = curcor.Mutex()
    done = []

    async def work(i):
        async with mu:
            done.append(i)
            await curcor.sleep(5)

    t1 = curcor.go(work(1))
    t2 = curcor.go(work(2))
    await curcor.sleep(0)
    t1.cancel()
    with curcor.timeout(20):
        await t2.join()
    await join_quietly(t1)
    assert 2 in done
    assert not mu.locked()


# -- Condition --------------------------------------------------------------------


async def test_condition_notify_racing_cancel_of_the_notified_waiter_is_not_lost():
    """cpython gh-112202 (Race between asyncio Condition.notify() and
    Task.cancel() may result in lost wakeups); anyio#1075 is the same bug."""
    cond = curcor.Condition()
    items = []
    got = []

    async def consumer(name):
        async with cond:
            while not items:
                await cond.wait()
            got.append((name, items.pop()))

    a = await spawn_blocked(consumer("a"))
    b = await spawn_blocked(consumer("b"))
    async with cond:
        items.append("x")
        cond.notify(1)  # wakes a ...
    a.cancel()  # ... which is cancelled before it runs
    await wait_all_tasks_blocked()
    # Either a consumed the item (its wait had already succeeded) or the
    # notification moved on to b; the item must not be stranded.
    assert items == []
    assert len(got) == 1
    b.cancel()
    await join_quietly(a)
    await join_quietly(b)
    assert not cond.mutex.locked()


async def test_condition_wait_cancelled_while_the_mutex_is_held_still_raises():
    """cpython bpo-32841 (Asyncio.Condition prevents cancellation): a wait
    cancelled while another task holds the lock swallowed the cancellation."""
    cond = curcor.Condition()
    state = []

    async def waiter():
        async with cond:
            try:
                await cond.wait()
            finally:
                state.append(cond.mutex.locked())

    t = await spawn_blocked(waiter())
    await cond.mutex.lock()
    t.cancel()
    await wait_all_tasks_blocked()
    assert not t.done()  # it waits to take the mutex back
    cond.mutex.unlock()
    with pytest.raises(curcor.Cancelled):
        await t.join()
    assert state == [True]
    assert not cond.mutex.locked()


async def test_condition_wait_under_a_timeout_holds_the_mutex_when_it_expires():
    """cpython bpo-32751 / bpo-33638 (``wait_for(cond.wait(), 0.5)`` inside
    ``async with cond`` failed with "Lock is not acquired") and bpo-42600."""
    cond = curcor.Condition()
    async with cond:
        with curcor.move_on_after(1) as scope:
            await cond.wait()
        assert scope.cancelled_caught
        assert cond.mutex.locked()
    assert not cond.mutex.locked()
    assert curcor.now() == pytest.approx(1)


async def test_condition_notified_then_cancelled_keeps_the_mutex_contract():
    """python/asyncio#346 (Fix inconsistency cancelling Condition.wait):
    cancelling wait() after notify but before the lock was re-acquired
    returned without the lock held."""
    cond = curcor.Condition()
    held = []

    async def waiter():
        async with cond:
            try:
                await cond.wait()
                await curcor.sleep(0)
            finally:
                held.append(cond.mutex.locked())

    t = await spawn_blocked(waiter())
    await cond.mutex.lock()
    cond.notify()
    t.cancel()
    await wait_all_tasks_blocked()
    cond.mutex.unlock()
    await join_quietly(t)
    assert held == [True]
    assert not cond.mutex.locked()


# -- Event, WaitGroup -------------------------------------------------------------


async def test_event_set_then_clear_before_waiters_run_still_wakes_them():
    """cpython gh-101359 (asyncio.Event.clear semantics): clear() only affects
    later wait() calls; tasks already waiting when set() ran must wake."""
    ev = curcor.Event()
    woke = []

    async def waiter(i):
        await ev.wait()
        woke.append(i)

    tasks = [await spawn_blocked(waiter(i)) for i in range(3)]
    ev.set()
    ev.clear()
    for t in tasks:
        with curcor.timeout(5):
            await t.join()
    assert sorted(woke) == [0, 1, 2]
    assert not ev.is_set()


async def test_event_set_from_the_task_that_then_waits_on_another_event():
    """curio#86 (Hang in event.wait()): f1 sets event1 then waits on event2;
    f2 waits on event1 then sets event2. The wait on event2 never returned."""
    e1, e2 = curcor.Event(), curcor.Event()
    log = []

    async def f1():
        e1.set()
        await e2.wait()
        log.append("f1")

    async def f2():
        await e1.wait()
        e2.set()
        log.append("f2")

    t1, t2 = curcor.go(f1()), curcor.go(f2())
    with curcor.timeout(5):
        await t1.join()
        await t2.join()
    assert sorted(log) == ["f1", "f2"]


async def test_waitgroup_reused_right_after_it_reached_zero_releases_old_waiters():
    """Go: "sync: WaitGroup is reused before previous Wait has returned"
    (sync/waitgroup.go panic, e.g. etcd-io/etcd#6534): the counter reaches
    zero, and add() is called again before the waiters have run. The waiters
    of the first round must still return; the second round is separate."""
    wg = curcor.WaitGroup()
    returned = []

    async def waiter(i):
        await wg.wait()
        returned.append(i)

    wg.add(1)
    tasks = [await spawn_blocked(waiter(i)) for i in range(2)]
    wg.done()
    wg.add(1)  # reuse before the waiters ran
    for t in tasks:
        with curcor.timeout(5):
            await t.join()
    assert sorted(returned) == [0, 1]
    late = await spawn_blocked(waiter(9))
    assert not late.done()
    wg.done()
    await late.join()
    assert returned[-1] == 9


async def test_waitgroup_negative_counter_raises_and_leaves_it_usable():
    """Go sync.WaitGroup: "sync: negative WaitGroup counter" panics; curcor
    raises ValueError and the counter is unchanged."""
    wg = curcor.WaitGroup()
    wg.add(2)
    with pytest.raises(ValueError):
        wg.add(-3)
    assert wg.count == 2
    wg.done()
    wg.done()
    with pytest.raises(ValueError):
        wg.done()
    await wg.wait()


# -- Channels: values must never be lost or duplicated ------------------------------


async def test_value_handed_to_a_receiver_cancelled_before_it_runs_is_delivered():
    """asyncio bpo-23812 (python/asyncio#256, "asyncio.Queue task cancellation
    leads to item being lost"); tornado#2826 is the same bug."""
    ch = curcor.Channel()
    got = []

    async def receiver():
        v = await ch.recv()
        got.append(v)

    t = await spawn_blocked(receiver())
    await ch.send("x")  # the send completed: the value is now the receiver's
    t.cancel()
    await join_quietly(t)
    assert got == ["x"]


async def test_value_handed_to_a_select_cancelled_before_it_runs_is_delivered():
    """asyncio bpo-23812 again, with the receiver in a select (Go's select)."""
    ch, other = curcor.Channel(), curcor.Channel()
    got = []

    async def receiver():
        got.append(await curcor.select(curcor.recv(other), curcor.recv(ch)))

    t = await spawn_blocked(receiver())
    assert ch.try_send("y")
    t.cancel()
    await join_quietly(t)
    assert got == [(1, ("y", True))]


async def test_sender_refilled_into_the_buffer_then_cancelled_is_not_duplicated():
    """python/asyncio#269 (Fix queues: "the putter's future is made ready by a
    getter, then cancelled before it runs"; lost or duplicated items)."""
    ch = curcor.Channel(1)
    await ch.send("a")
    sender = await spawn_blocked(ch.send("b"))
    assert await ch.recv() == "a"  # moves "b" into the buffer, wakes sender
    sender.cancel()
    await join_quietly(sender)
    assert await ch.recv() == "b"
    with pytest.raises(curcor.WouldBlock):
        ch.try_recv()


async def test_consumer_timeouts_expiring_as_items_arrive_lose_nothing():
    """python/asyncio#343 and #201 (wait_for(q.get(), t) loses items when the
    timeout expires as the item arrives). Here the deadlines fall exactly on
    the sends."""
    ch = curcor.Channel()
    received = []
    n = 8

    async def producer():
        for i in range(n):
            await curcor.sleep(1)
            await ch.send(i)
        ch.close()

    curcor.go(producer())
    while True:
        with curcor.move_on_after(1):
            try:
                received.append(await ch.recv())
            except curcor.ChannelClosed:
                break
    assert received == list(range(n))


async def test_select_with_after_timeouts_expiring_as_items_arrive_loses_nothing():
    """python/asyncio#343 in Go form: ``select { case v := <-ch: case
    <-time.After(d): }`` with the timer due exactly when the value is sent."""
    ch = curcor.Channel()
    received = []
    timeouts = 0
    n = 8

    async def producer():
        for i in range(n):
            await curcor.sleep(1)
            await ch.send(i)
        ch.close()

    curcor.go(producer())
    while True:
        i, value = await curcor.select(curcor.recv(ch), curcor.recv(curcor.after(1)))
        if i == 1:
            timeouts += 1
            continue
        v, ok = value
        if not ok:
            break
        received.append(v)
    assert received == list(range(n))


async def test_close_with_a_full_buffer_and_a_blocked_sender():
    """Go chan semantics (runtime/chan.go closechan): close wakes blocked
    senders with a panic, buffered values still drain, and the blocked
    sender's value is never delivered."""
    ch = curcor.Channel(2)
    await ch.send(1)
    await ch.send(2)
    sender = await spawn_blocked(ch.send(3))
    ch.close()
    with pytest.raises(curcor.ChannelClosed):
        await sender.join()
    assert [v async for v in ch] == [1, 2]
    assert await ch.recv_ok() == (None, False)


async def test_close_wakes_receivers_blocked_in_select_and_plain_recv_alike():
    """Go TestNonblockSelectRace2 (runtime/chan_test.go): a closed channel is
    always ready in select."""
    ch = curcor.Channel()
    other = curcor.Channel()
    results = []

    async def plain():
        results.append(("plain", await ch.recv_ok()))

    async def sel():
        results.append(
            ("select", await curcor.select(curcor.recv(other), curcor.recv(ch)))
        )

    a = await spawn_blocked(plain())
    b = await spawn_blocked(sel())
    ch.close()
    await a.join()
    await b.join()
    assert sorted(results) == [("plain", (None, False)), ("select", (1, (None, False)))]
    # And it stays ready, also for a non-blocking select.
    assert await curcor.select(curcor.recv(ch), default=True) == (0, (None, False))


async def test_nonblocking_select_sees_a_buffered_value_and_close():
    """Go TestNonblockRecvRace (runtime/chan_test.go): a non-blocking receive
    on a buffered channel that holds a value, then is closed, must not take
    the default."""
    for _ in range(50):
        ch = curcor.Channel(1)
        await ch.send(1)
        ch.close()
        assert await curcor.select(curcor.recv(ch), default=True) == (0, (1, True))
        assert await curcor.select(curcor.recv(ch), default=True) == (0, (None, False))


@pytest.mark.parametrize("cap", [0, 10])
@pytest.mark.curcor(clock="real", maxprocs=2, seed=7)
async def test_select_send_and_recv_on_the_same_channel_never_self_receives(cap):
    """Go TestSelfSelect (runtime/chan_test.go): send and recv cases on the
    same channel in one select must neither crash, deadlock, nor (unbuffered)
    pair the task with itself."""
    ch = curcor.Channel(cap)
    errors = []
    wg = curcor.WaitGroup()
    wg.add(2)

    async def side(p):
        try:
            for i in range(300):
                if p == 0 or i % 2 == 0:
                    idx, value = await curcor.select(
                        curcor.send(ch, p), curcor.recv(ch)
                    )
                    if idx == 1 and cap == 0 and value[0] == p:
                        errors.append("self receive")
                        return
                else:
                    idx, value = await curcor.select(
                        curcor.recv(ch), curcor.send(ch, p)
                    )
                    if idx == 0 and cap == 0 and value[0] == p:
                        errors.append("self receive")
                        return
        finally:
            wg.done()

    curcor.go(side(0))
    curcor.go(side(1))
    with curcor.timeout(4):
        await wg.wait()
    assert errors == []


async def test_select_send_and_recv_on_one_unbuffered_channel_alone_does_not_pair():
    """Go TestSelfSelect, single-task form: nobody else is there, so neither
    case can proceed."""
    ch = curcor.Channel()
    assert await curcor.select(curcor.send(ch, 1), curcor.recv(ch), default=True) == (
        -1,
        None,
    )
    with curcor.move_on_after(1) as scope:
        await curcor.select(curcor.send(ch, 1), curcor.recv(ch))
    assert scope.cancelled_caught


async def test_select_fairness_between_two_always_ready_channels():
    """Go TestSelectFairness (runtime/chan_test.go): two ready channels must
    both be chosen a fair share of the time."""
    a, b = curcor.Channel(1000), curcor.Channel(1000)
    for _ in range(1000):
        a.try_send(0)
        b.try_send(1)
    counts = [0, 0]
    for _ in range(1000):
        i, _value = await curcor.select(curcor.recv(a), curcor.recv(b))
        counts[i] += 1
    assert min(counts) > 400


# -- Timers and tickers (Go's time package) ------------------------------------------


async def test_timer_stop_and_reset_return_values():
    """Go time.Timer.Stop/Reset docs and golang/go#14038 (Timer.Reset is not
    possible to use correctly): Stop reports whether it stopped a pending
    timer; Reset reports whether the timer had been active."""
    t = curcor.Timer(5)
    assert t.reset(10) is True  # was pending
    assert t.stop() is True
    assert t.stop() is False  # already stopped
    assert t.reset(1) is False  # was stopped
    await t.c.recv()
    assert curcor.now() == pytest.approx(1)
    assert t.stop() is False  # already fired
    assert t.reset(2) is False


async def test_timer_stopped_then_reset_fires_exactly_once():
    """golang/go#14038 (Timer.Reset is not possible to use correctly): the
    stop-then-drain pattern blocks for ever when the tick was already
    received; the non-blocking drain (select with default) is the fix. One
    tick per reset, and no deadlock."""
    t = curcor.Timer(1)
    ticks = []
    for _ in range(3):
        if not t.stop():
            await curcor.select(curcor.recv(t.c), default=True)  # drain
        t.reset(1)
        ticks.append(await t.c.recv())
    assert len(ticks) == 3
    with pytest.raises(curcor.WouldBlock):
        t.c.try_recv()


async def test_timer_reset_after_unreceived_fire_gives_no_stale_value():
    """golang/go#37196 (time: make Timer/Ticker channels not receivable with
    old values after Stop or Reset returns), accepted and shipped in Go 1.23."""
    t = curcor.Timer(1)
    await curcor.sleep(2)  # it fired at 1; nobody received
    t.reset(5)
    when = await t.c.recv()
    assert when == pytest.approx(7)
    assert curcor.now() == pytest.approx(7)


async def test_timer_stop_after_unreceived_fire_leaves_nothing_to_receive():
    """golang/go#37196: after Stop returns, no stale value can be received."""
    t = curcor.Timer(1)
    await curcor.sleep(2)
    t.stop()
    with pytest.raises(curcor.WouldBlock):
        t.c.try_recv()


async def test_ticker_drops_ticks_for_a_slow_reader_and_keeps_its_grid():
    """Go time.Ticker docs ("adjusts the intervals or drops ticks to make up
    for slow receivers"); golang/go#37196 covers the same channel."""
    tk = curcor.Ticker(1)
    first = await tk.c.recv()
    assert first == pytest.approx(1)
    await curcor.sleep(3.5)  # ticks at 2, 3, 4 happen; only one is kept
    assert len(tk.c) == 1
    await tk.c.recv()
    nxt = await tk.c.recv()
    assert nxt == pytest.approx(5)
    tk.stop()


# -- Cancel scopes and timeouts (trio semantics) ----------------------------------


async def test_cancel_of_the_outer_scope_during_inner_unwinding_reaches_the_outer():
    """anyio#698 (Different cancel scope behaviour on asyncio vs Trio; fixed to
    match trio in anyio#774) and trio#860: the inner scope is cancelled; while
    its Cancelled unwinds, the outer scope is cancelled too. Trio delivers the
    exception to the outer block: the code between the two blocks never runs."""
    reached = []
    with curcor.CancelScope() as outer:
        with curcor.CancelScope() as inner:
            inner.cancel()
            try:
                await curcor.sleep(1)
            finally:
                outer.cancel()
        reached.append("between")
    assert outer.cancelled_caught
    assert reached == []


async def test_two_cancelled_nested_scopes_the_outermost_catches():
    """trio#3291 (its second reproduction: inner and outer CancelScope both
    cancelled; the Cancelled reaches the code outside the inner block) and
    trio#860 ("am I the outermost unshielded scope that's in the cancelled
    state?")."""
    reached = []
    with curcor.CancelScope() as outer:
        with curcor.CancelScope() as inner:
            inner.cancel()
            outer.cancel()
            await curcor.sleep(1)
        reached.append("between")
    assert reached == []
    assert outer.cancelled_caught
    assert not inner.cancelled_caught


async def test_cancel_of_the_outer_scope_is_not_lost_after_the_inner_catches():
    """anyio#698 / anyio#370 (level cancellation not resuming for parent
    scopes): whichever scope catches first, the outer cancellation must still
    end the outer block at its next checkpoint."""
    reached = []
    with curcor.CancelScope() as outer:
        with curcor.CancelScope() as inner:
            inner.cancel()
            try:
                await curcor.sleep(1)
            finally:
                outer.cancel()
        await curcor.sleep(1)
        reached.append("after checkpoint")
    assert outer.cancelled_caught
    assert reached == []


async def test_nested_scopes_cancelled_outer_first_catch_at_the_outer():
    """anyio#29 (Nested cancellation scopes fail to eat "their" exceptions) /
    anyio#58 (Cancelling a timeout in a nested scope): the outer scope's
    cancellation must end the outer block, not leak past it or stop at the
    inner one for good."""
    log = []
    with curcor.CancelScope() as outer:
        with curcor.CancelScope():
            with curcor.move_on_after(5):
                outer.cancel()
                await curcor.sleep(10)
                log.append("inner body")
            log.append("after inner")
            await curcor.sleep(0)
            log.append("after checkpoint")
    assert outer.cancelled_caught
    assert "inner body" not in log and "after checkpoint" not in log


async def test_outer_timeout_expiring_with_inner_timeout_reports_the_outer():
    """curio#82 (Making timeout_after/ignore_after truly composable): when the
    outer timeout fires, the inner block sees cancellation and the code
    outside the outer block sees the timeout."""
    with pytest.raises(TimeoutError):
        with curcor.timeout(1):
            with curcor.move_on_after(5) as inner:
                await curcor.sleep(10)
    assert not inner.cancelled_caught
    assert curcor.now() == pytest.approx(1)


async def test_fail_after_cancelled_by_hand_is_cancelled_not_a_timeout():
    """trio#698 / trio#1054 (fail_after raises TooSlow when it's cancelled)."""
    with curcor.CancelScope() as outer:
        with curcor.timeout(5) as scope:
            outer.cancel()
            await curcor.sleep(10)
    assert outer.cancelled_caught
    assert not scope.cancelled_caught
    assert curcor.now() == 0


async def test_timeout_deadline_counts_from_entering_the_scope():
    """trio#2512 / anyio#514 (fail_after deadline is set on initialization not
    context entry); fixed in trio by computing it on entry."""
    scope = curcor.move_on_after(5)
    await curcor.sleep(5)
    with scope:
        await curcor.sleep(1)
    assert not scope.cancelled_caught


async def test_moving_a_deadline_earlier_wakes_the_sleeper_at_the_new_deadline():
    """trio test_timeouts / CancelScope.deadline setter: shrinking the deadline
    of a running scope must re-arm it."""
    with curcor.CancelScope(deadline=curcor.now() + 100) as scope:

        async def shrink():
            await curcor.sleep(1)
            scope.deadline = curcor.now() + 1

        curcor.go(shrink())
        await curcor.sleep(50)
    assert scope.cancelled_caught
    assert curcor.now() == pytest.approx(2)


async def test_shielded_cleanup_can_await_after_cancellation():
    """trio docs / trio#658: cleanup in ``finally`` of a cancelled task can
    await only inside a shield; unshielded awaits keep raising Cancelled
    (level-triggered), the shielded one completes."""
    log = []

    async def worker():
        try:
            await curcor.sleep(100)
        finally:
            try:
                await curcor.sleep(1)
                log.append("unshielded ran")
            except curcor.Cancelled:
                log.append("unshielded cancelled")
            with curcor.CancelScope(shield=True):
                await curcor.sleep(1)
                log.append("shielded ran")

    t = await spawn_blocked(worker())
    start = curcor.now()
    t.cancel()
    with pytest.raises(curcor.Cancelled):
        await t.join()
    assert log == ["unshielded cancelled", "shielded ran"]
    assert curcor.now() - start == pytest.approx(1)


async def test_exception_raised_while_handling_cancelled_escapes_the_scope():
    """trio#3291 / anyio#774 area: a scope swallows only Cancelled; another
    exception raised from cancellation cleanup must propagate through it."""
    with pytest.raises(ValueError):
        with curcor.move_on_after(1):
            try:
                await curcor.sleep(5)
            except curcor.Cancelled:
                raise ValueError("cleanup failed") from None


# -- TaskGroup --------------------------------------------------------------------


async def test_start_into_a_group_that_crashes_does_not_deadlock():
    """trio#1431 (Consider the behavior of nursery.start when the target
    nursery is cancelled): a task in ``inner.start()`` whose child waits for a
    sibling that crashed; the inner group must still unwind."""
    never = curcor.Event()

    async def needs_sibling(*, task_status=curcor.TASK_STATUS_IGNORED):
        await never.wait()
        task_status.started()

    async def crasher():
        await curcor.sleep(1)
        raise ValueError("boom")

    with curcor.timeout(10):
        with pytest.raises(BaseExceptionGroup) as info:
            async with curcor.TaskGroup() as outer:
                async with curcor.TaskGroup() as inner:
                    inner.go(crasher())

                    async def starter():
                        await inner.start(needs_sibling)

                    outer.go(starter())
    assert info.value.subgroup(ValueError) is not None


async def test_start_child_failing_after_started_fails_the_group_not_start():
    """trio test_run.py start() cases / trio#1696: an error after started()
    belongs to the group, start() already returned."""

    async def child(*, task_status=curcor.TASK_STATUS_IGNORED):
        task_status.started("ok")
        await curcor.sleep(1)
        raise KeyError("late")

    with pytest.raises(ExceptionGroup) as info:
        async with curcor.TaskGroup() as tg:
            assert await tg.start(child) == "ok"
    assert info.value.subgroup(KeyError) is not None


async def test_started_without_a_checkpoint_in_a_cancelled_group():
    """trio#1696 (Nursery: don't act as a checkpoint when not running
    anything): a child that calls started() and returns without a
    checkpoint gives its value even when the starter's scope is cancelled."""

    async def quick(*, task_status=curcor.TASK_STATUS_IGNORED):
        task_status.started("hi")

    async with curcor.TaskGroup() as tg:
        with curcor.CancelScope() as cs:
            cs.cancel()
            try:
                value = await tg.start(quick)
            except curcor.Cancelled:
                value = "cancelled"
                raise
    assert value in ("hi", "cancelled")


async def test_child_error_while_the_group_is_cancelled_from_outside_is_kept():
    """cpython GH-95704 (Don't suppress errors from tasks when TG is
    cancelled): the owner is cancelled while a child is failing; the child's
    error must not be replaced by the cancellation."""

    async def failing():
        try:
            await curcor.sleep(100)
        finally:
            raise ValueError("cleanup error")

    with curcor.CancelScope() as outer:
        with pytest.raises(ExceptionGroup) as info:
            async with curcor.TaskGroup() as tg:
                tg.go(failing())
                await wait_all_tasks_blocked()
                outer.cancel()
                await curcor.sleep(100)
    assert info.value.subgroup(ValueError) is not None


async def test_error_in_a_siblings_cancellation_cleanup_is_reported_too():
    """cpython gh-116720 / GH-95704 area: one child fails, the sibling's
    cleanup raises while being cancelled; both errors are reported."""

    async def first():
        await curcor.sleep(1)
        raise ValueError("first")

    async def second():
        try:
            await curcor.sleep(100)
        finally:
            raise KeyError("cleanup")

    with pytest.raises(ExceptionGroup) as info:
        async with curcor.TaskGroup() as tg:
            tg.go(first())
            tg.go(second())
    assert info.value.subgroup(ValueError) is not None
    assert info.value.subgroup(KeyError) is not None


async def test_keyboard_interrupt_in_a_child_is_not_lost_and_cancels_siblings():
    """cpython GH-90908 TaskGroup docs (KeyboardInterrupt/SystemExit in a
    child cancel the rest, then the BaseException propagates); trio wraps it
    in a BaseExceptionGroup. Either way it must reach the owner."""
    cancelled = []

    async def sibling():
        try:
            await curcor.sleep(100)
        except curcor.Cancelled:
            cancelled.append(True)
            raise

    async def interrupter():
        await curcor.sleep(1)
        raise KeyboardInterrupt

    with pytest.raises((KeyboardInterrupt, BaseExceptionGroup)) as info:
        async with curcor.TaskGroup() as tg:
            tg.go(sibling())
            tg.go(interrupter())
    if isinstance(info.value, BaseExceptionGroup):
        assert info.value.subgroup(KeyboardInterrupt) is not None
    assert cancelled == [True]


async def test_a_child_may_spawn_a_sibling_while_the_owner_waits_in_exit():
    """cpython gh-155418 / trio nursery semantics: tasks may be started into a
    group while its body has finished and it waits for children."""
    ran = []

    async def grandchild():
        await curcor.sleep(1)
        ran.append("grandchild")

    async def child(tg):
        await curcor.sleep(1)
        tg.go(grandchild())

    async with curcor.TaskGroup() as tg:
        tg.go(child(tg))
    assert ran == ["grandchild"]


async def test_child_cancelling_its_group_before_its_first_await_does_not_hang():
    """cpython gh-155418 (asyncio.TaskGroup hangs on cancel with eager task
    factory): a child cancels the group before it suspends."""
    done = curcor.Event()

    async def child(scope):
        scope.cancel()
        await done.wait()

    with curcor.timeout(5):
        async with curcor.TaskGroup() as tg:
            tg.go(child(tg._scope))
            await wait_all_tasks_blocked()


# -- Tasks: join, contextvars ---------------------------------------------------------


async def test_a_task_joined_from_two_places_gives_both_its_result_or_error():
    """asyncio test_tasks (a task awaited by several coroutines hands each the
    same result or exception); curio's Task.join has the same contract."""

    async def value():
        await curcor.sleep(1)
        return 42

    async def boom():
        await curcor.sleep(1)
        raise ValueError("x")

    t1 = curcor.go(value())
    t2 = curcor.go(boom())
    results = []

    async def joiner(t):
        try:
            results.append(await t.join())
        except ValueError as e:
            results.append(repr(e))

    async with curcor.TaskGroup() as tg:
        for _ in range(2):
            tg.go(joiner(t1))
            tg.go(joiner(t2))
    assert sorted(map(str, results)) == [
        "42",
        "42",
        "ValueError('x')",
        "ValueError('x')",
    ]
    assert await t1.join() == 42  # and again after it finished


async def test_cancelling_one_joiner_does_not_cancel_the_joined_task():
    """asyncio.shield / wait_for docs (bpo-32751 discussion): cancelling a
    waiter of a task must not cancel the task itself."""

    async def work():
        await curcor.sleep(5)
        return "done"

    t = curcor.go(work())
    with curcor.move_on_after(1):
        await t.join()
    assert not t.done()
    assert await t.join() == "done"


VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def test_tasks_run_in_a_copy_of_the_spawners_context():
    """asyncio (PEP 567: tasks copy the context when created):
    the child sees the parent's value at spawn time, its writes do not leak
    back, and a later parent write does not reach an already started child."""
    VAR.set("parent")
    seen = []

    async def child():
        seen.append(VAR.get())
        VAR.set("child")
        await curcor.sleep(2)
        seen.append(VAR.get())

    t = curcor.go(child())
    await curcor.sleep(1)
    assert VAR.get() == "parent"
    VAR.set("parent-later")
    await t.join()
    assert seen == ["parent", "child"]
    assert VAR.get() == "parent-later"

    async with curcor.TaskGroup() as tg:
        tg.go(child())
    assert seen[-2] == "parent-later"


# -- Deadlock detection -------------------------------------------------------------


def test_a_pending_timer_is_not_a_deadlock():
    """golang/go#68497 / #69188 (timers vs. "all goroutines are asleep"): while
    a timer can still fire, blocked tasks are not deadlocked."""

    async def main():
        ch = curcor.Channel()

        async def later():
            await curcor.sleep(3)
            await ch.send("late")

        curcor.go(later())
        return await ch.recv()

    assert curcor.run(main(), clock=FakeClock()) == "late"


def test_thread_work_in_flight_is_not_a_deadlock():
    """Go deadlock detection counts only goroutines; curcor must also count a
    to_thread call as a possible waker (SPEC R-API)."""
    import time

    async def main():
        return await curcor.to_thread(lambda: (time.sleep(0.05), "ok")[1])

    assert curcor.run(main(), clock=FakeClock()) == "ok"


def test_a_real_deadlock_is_reported():
    """golang/go#14946 (all goroutines are asleep - deadlock!): two tasks each
    waiting for the other."""
    a, b = None, None

    async def main():
        nonlocal a, b
        a, b = curcor.Channel(), curcor.Channel()

        async def one():
            await a.recv()
            await b.send(1)

        curcor.go(one())
        await b.recv()

    with pytest.raises(curcor.DeadlockError, match="all tasks are asleep"):
        curcor.run(main(), clock=FakeClock())


# -- Context ------------------------------------------------------------------------


async def test_context_derived_from_a_cancelled_parent_is_born_cancelled():
    """Go context package (propagateCancel: a child of a done parent is
    cancelled at once)."""
    parent = curcor.background().with_cancel()
    parent.cancel()
    child = parent.with_timeout(100)
    assert isinstance(child.err(), curcor.ContextCancelled)
    assert await child.done().recv_ok() == (None, False)
    with child.scope() as scope:
        await curcor.sleep(1)
    assert scope.cancelled_caught


# -- More hand-off races, from threads and under parallel workers ----------------


async def test_condition_notify_skips_a_waiter_cancelled_before_the_notify():
    """anyio#1145 / cpython gh-112202: a withdrawn (cancelled) waiter at the
    head of the queue must not absorb notify(1)."""
    cond = curcor.Condition()
    woke = []

    async def waiter(name):
        async with cond:
            await cond.wait()
            woke.append(name)

    a = await spawn_blocked(waiter("a"))
    b = await spawn_blocked(waiter("b"))
    a.cancel()
    async with cond:
        cond.notify(1)
    with curcor.timeout(5):
        await b.join()
    await join_quietly(a)
    assert woke == ["b"]


async def test_event_wait_cancelled_then_set_is_harmless():
    """curio#86 / cpython gh-101359 area: a cancelled Event waiter is removed;
    a later set() must not resurrect or crash it, and others still wake."""
    ev = curcor.Event()
    a = await spawn_blocked(ev.wait())
    b = await spawn_blocked(ev.wait())
    a.cancel()
    await join_quietly(a)
    ev.set()
    await b.join()
    assert a.cancelled()


@pytest.mark.curcor(clock="real", maxprocs=4, seed=3)
async def test_task_cancel_and_event_set_from_a_plain_thread():
    """trio from_thread / asyncio call_soon_threadsafe bugs (cpython gh-122938,
    "Event.wait doesn't resume when set from a signal handler"): wake-ups that
    come from outside the runtime must reach parked tasks."""
    ev = curcor.Event()
    waiter = curcor.go(ev.wait())
    sleeper = curcor.go(curcor.sleep(1000))
    await wait_all_tasks_blocked()

    def from_outside():
        sleeper.cancel()
        ev.set()

    await curcor.to_thread(from_outside)
    with curcor.timeout(4):
        await waiter.join()
        with pytest.raises(curcor.Cancelled):
            await sleeper.join()


async def test_cancelled_to_thread_returns_at_once_and_drops_the_result():
    """anyio / trio to_thread cancellation (SPEC R-API): a cancelled call
    returns control at once; the thread's eventual result is dropped."""
    import threading

    release = threading.Event()
    with curcor.move_on_after(1) as scope:
        await curcor.to_thread(release.wait)
    assert scope.cancelled_caught
    release.set()
    assert await curcor.to_thread(lambda: 5) == 5


async def test_exception_raised_in_finally_while_cancelled_replaces_cancelled():
    """trio#1457 / asyncio: an exception raised by cleanup of a cancelled task
    is what join() reports; it must not be swallowed as a cancellation."""

    async def worker():
        try:
            await curcor.sleep(100)
        finally:
            raise ValueError("cleanup")

    t = await spawn_blocked(worker())
    t.cancel()
    with pytest.raises(ValueError, match="cleanup"):
        await t.join()


@pytest.mark.curcor(clock="real", maxprocs=4, seed=11)
async def test_mutex_and_semaphore_survive_random_cancellation_under_parallel_workers():
    """bpo-27585, gh-90155, anyio#387/#388 (race condition when cancelling
    acquire() in Lock or Semaphore), stress form: many tasks take a mutex and
    a semaphore while others cancel them at random; no lock or permit leaks
    and nobody deadlocks."""
    import random

    mu = curcor.Mutex()
    sem = curcor.Semaphore(3)
    inside = 0
    max_inside = 0
    counter = 0
    rng = random.Random(5)

    async def user():
        nonlocal inside, max_inside, counter
        for _ in range(30):
            async with sem:
                inside += 1
                max_inside = max(max_inside, inside)
                try:
                    async with mu:
                        counter += 1
                        await curcor.sleep(0)
                finally:
                    inside -= 1

    tasks = [curcor.go(user()) for _ in range(40)]
    for _ in range(60):
        await curcor.sleep(0)
        rng.choice(tasks).cancel()
    with curcor.timeout(4):
        for t in tasks:
            await join_quietly(t)
    assert not mu.locked()
    assert sem.value == 3
    assert max_inside <= 3
    assert counter > 0


@pytest.mark.curcor(clock="real", maxprocs=4, seed=13)
async def test_channel_values_survive_cancelled_receivers_under_parallel_workers():
    """python/asyncio#201 (wait()/wait_for() losing items on Queue.get()),
    stress form: receivers are cancelled at random while values are handed
    over; every value sent is received exactly once."""
    import random

    ch = curcor.Channel()
    received = []
    n_producers, per = 8, 50
    rng = random.Random(9)

    async def producer(p):
        for i in range(per):
            await ch.send((p, i))

    async def consumer():
        while True:
            with curcor.CancelScope() as scope:
                consumers_scopes.append(scope)
                try:
                    received.append(await ch.recv())
                except curcor.ChannelClosed:
                    return

    consumers_scopes: list = []
    producers = [curcor.go(producer(p)) for p in range(n_producers)]
    consumers = [curcor.go(consumer()) for _ in range(4)]
    for _ in range(200):
        await curcor.yield_now()
        if consumers_scopes:
            rng.choice(consumers_scopes[-8:]).cancel()
    with curcor.timeout(4):
        for t in producers:
            await t.join()
        while len(received) < n_producers * per:
            await curcor.sleep(0.001)
    ch.close()
    for t in consumers:
        await join_quietly(t)
    assert sorted(received) == sorted(
        (p, i) for p in range(n_producers) for i in range(per)
    )


async def test_start_child_is_cancelled_with_its_starter_before_started():
    """trio#1431 ("when a task is in nursery.start and hasn't yet called
    task_status.started(), it's still in the original task's cancel scope")
    and trio#2544: cancelling the task that waits in start() cancels the
    child that has not reported ready yet."""
    log = []

    async def slow_start(*, task_status=curcor.TASK_STATUS_IGNORED):
        try:
            await curcor.sleep(5)
            task_status.started()
            await curcor.sleep(100)
            log.append("ran to the end")
        except curcor.Cancelled:
            log.append(f"child cancelled at {curcor.now():g}")
            raise

    async def starter(tg):
        with curcor.move_on_after(1):
            await tg.start(slow_start)

    with curcor.timeout(50):
        async with curcor.TaskGroup() as tg:
            tg.go(starter(tg))
    assert log == ["child cancelled at 1"]


# -- Runtime: detached tasks and program end ----------------------------------------


def test_fire_and_forget_task_failure_is_never_lost():
    """python/asyncio#399 (asyncio swallows an exception raised in a task that
    is never awaited); SPEC R-API: logged, main cancelled, run re-raises."""

    async def fail():
        await curcor.sleep(1)
        raise ValueError("lost?")

    async def main():
        curcor.go(fail())
        await curcor.sleep(100)
        return "main finished"

    with pytest.raises(ValueError, match="lost"):
        curcor.run(main(), clock=FakeClock())


def test_fire_and_forget_task_without_a_handle_still_runs_to_completion():
    """cpython gh-104091 / asyncio create_task docs ("the event loop only keeps
    weak references to tasks"): an unreferenced task must not vanish."""
    import gc

    done = []

    async def work():
        await curcor.sleep(1)
        gc.collect()
        await curcor.sleep(1)
        done.append(True)

    async def main():
        curcor.go(work())
        gc.collect()
        await curcor.sleep(5)

    curcor.run(main(), clock=FakeClock())
    assert done == [True]


def test_main_returning_while_others_are_blocked_is_not_a_deadlock():
    """Go: the program ends with its main goroutine (golang/go#69188 shows
    deadlock detection only when main itself blocks)."""
    cleaned = []

    async def stuck(ch):
        try:
            await ch.recv()
        finally:
            cleaned.append(True)

    async def main():
        ch = curcor.Channel()
        curcor.go(stuck(ch))
        await wait_all_tasks_blocked()
        return "bye"

    assert curcor.run(main(), clock=FakeClock()) == "bye"
    assert cleaned == [True]


# -- time arguments, timers that nobody can receive from -----------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda bg, bad: bg.with_timeout(bad),
        lambda bg, bad: bg.with_deadline(bad),
        lambda bg, bad: curcor.sleep(bad),
        lambda bg, bad: curcor.Timer(bad),
        lambda bg, bad: curcor.Ticker(bad),
        lambda bg, bad: curcor.CancelScope(deadline=bad),
        lambda bg, bad: curcor.timeout(bad),
        lambda bg, bad: curcor.after(bad),
    ],
)
async def test_every_time_argument_refuses_nan_strings_and_huge_ints(make):
    """trio#1256-style: a NaN deadline on the timer heap never falls due and
    holds back every later timer. Found here: Context.with_timeout(nan)
    froze all timers and spun the poller."""
    bg = curcor.background()
    for bad, kind in [(float("nan"), ValueError), ("1", TypeError), (True, TypeError)]:
        with pytest.raises(kind, match=r"seconds|period"):
            make(bg, bad)
    with pytest.raises(ValueError, match="too large for a float"):
        make(bg, 10**400)
    with curcor.move_on_after(1) as scope:  # timers still fire
        await curcor.sleep(5)
    assert scope.cancelled_caught


async def test_a_ticker_period_below_a_nanosecond_is_refused():
    """A 1e-320 s period used to overflow the missed-tick arithmetic inside
    the timer callback, after the Ticker was made; Go's Duration is whole
    nanoseconds."""
    with pytest.raises(ValueError, match="at least 1e-9"):
        curcor.Ticker(1e-320)
    ticker = curcor.Ticker(1e-9)
    await ticker.c.recv()
    ticker.stop()


async def test_after_channels_that_lost_their_select_are_freed_at_once():
    """golang/go#8898 (fixed in Go 1.23): time.After in a select loop whose
    other case always wins kept every timer and channel until it fired."""
    ch = curcor.Channel(1)
    for i in range(5000):
        ch.try_send(i)
        await curcor.select(curcor.recv(ch), curcor.recv(curcor.after(3600)))
    await curcor.sleep(0)
    # Abandoned entries are purged once they outnumber the live ones.
    assert curcor.stats().timers_pending < 200
    late = curcor.after(0.5)  # a kept one still fires
    assert (await late.recv()) >= 0.5


# -- streams: asyncio's test_streams ---------------------------------------------


async def stream_pair():
    import socket

    from curcor import net

    a, b = socket.socketpair()
    return net.Stream(net.Socket(a)), net.Stream(net.Socket(b))


async def test_stream_read_zero_returns_nothing_and_consumes_nothing():
    """asyncio test_streams.test_read_zero: read(0) is b"" at once; it used
    to read (and drop for the caller) a whole buffer, or block."""
    st, peer = await stream_pair()
    with curcor.move_on_after(1) as scope:
        assert await st.read(0) == b""
    assert not scope.cancelled_caught
    peer.write(b"payload")
    await peer.drain()
    assert await st.read(0) == b""
    assert await st.read_exactly(7) == b"payload"
    st.close()
    peer.close()


async def test_stream_arguments_of_the_wrong_type_or_range_are_refused():
    """asyncio validates these; they used to fail deep inside (str + bytearray,
    slice indices) or be accepted (a write_limit that broke every write)."""
    from curcor import net

    st, peer = await stream_pair()
    with pytest.raises(ValueError, match="read_exactly"):
        await st.read_exactly(-1)
    with pytest.raises(TypeError, match="takes an int"):
        await st.read_exactly(1.5)
    with pytest.raises(TypeError, match="takes an int"):
        await st.read("3")
    with pytest.raises(ValueError, match="limit"):
        await st.read_until(b"\n", limit=0)
    with pytest.raises(TypeError, match="bytes separator"):
        await st.read_until("\n")
    with pytest.raises(TypeError, match="encode it"):
        st.write("text")
    with pytest.raises(TypeError, match="write_limit"):
        net.Stream(st.socket, write_limit="x")
    with pytest.raises(ValueError, match="write_limit"):
        net.Stream(st.socket, write_limit=-5)
    assert st.buffered == 0  # nothing half-written
    st.close()
    peer.close()


# -- cancel scopes: trio's test_cancel_scope_misnesting ---------------------------


async def test_a_cancel_scope_exited_from_another_task_is_refused_and_left_intact():
    """trio checks the exiting task; curcor used to let another task rewrite
    the owner's scope chain, and the owner's correct exit then failed."""
    scope = curcor.CancelScope()
    scope.__enter__()

    async def other():
        with pytest.raises(curcor.RuntimeMisuse, match="in the task that entered"):
            scope.__exit__(None, None, None)

    await curcor.go(other()).join()
    assert scope.__exit__(None, None, None) is False


async def test_a_misnested_scope_exit_closes_the_scopes_inside_it():
    """trio repairs its scope stack when it reports misnesting; here the
    async generator's scope stayed in the task's chain and its deadline
    later cancelled the task for good."""

    async def agen():
        with curcor.move_on_after(0.05):
            yield 1
            await curcor.sleep(1)
            yield 2

    gen = agen()
    assert await gen.__anext__() == 1
    with pytest.raises(curcor.RuntimeMisuse, match="reverse order"):
        with curcor.move_on_after(10):
            await gen.__anext__()
    await curcor.sleep(0.1)  # past the generator scope's deadline
    with curcor.move_on_after(0.02) as later:
        await curcor.sleep(5)
    assert later.cancelled_caught
    await curcor.sleep(0)  # not cancelled: the stale scope is gone

    outer, inner = curcor.CancelScope(), curcor.CancelScope()
    outer.__enter__()
    inner.__enter__()
    with pytest.raises(curcor.RuntimeMisuse):
        outer.__exit__(None, None, None)
    assert inner.__exit__(None, None, None) is False  # already closed: quiet


# -- sync arguments ------------------------------------------------------------------


def test_semaphore_and_condition_counts_must_be_ints_of_at_least_zero():
    """Semaphore(True) was accepted and Condition.notify(1.5) woke two."""
    for bad, kind in [(True, TypeError), (1.5, TypeError), (-1, ValueError)]:
        with pytest.raises(kind, match="Semaphore"):
            curcor.Semaphore(bad)
    cond = curcor.Condition()
    for bad, kind in [(1.5, TypeError), ("1", TypeError), (-1, ValueError)]:
        with pytest.raises(kind, match="notify"):
            cond.notify(bad)
    cond.notify(0)


def test_fake_clock_refuses_nan_strings_and_going_back():
    """A NaN fake clock hung run() for ever; advance(-5) moved a monotonic
    clock back."""
    for bad, kind in [(float("nan"), ValueError), ("x", TypeError)]:
        with pytest.raises(kind, match="FakeClock"):
            FakeClock(bad)
        with pytest.raises(kind, match="FakeClock"):
            FakeClock().advance(bad)
    for bad in (-5, float("inf")):
        with pytest.raises(ValueError, match="forward by a finite amount"):
            FakeClock().advance(bad)
    with pytest.raises(ValueError, match="finite"):
        FakeClock(float("inf"))
    clock = FakeClock(10)
    clock.advance(2.5)
    assert clock.now() == 12.5


async def test_go_refuses_a_plain_generator_and_channel_a_capacity_past_maxsize():
    """go() took a generator, which then failed later as a bad trap; Go
    panics on a channel size out of range."""
    import sys

    with pytest.raises(TypeError, match="not a generator"):
        curcor.go(x for x in [])
    with pytest.raises(ValueError, match=r"sys\.maxsize"):
        curcor.Channel(sys.maxsize + 1)
    async with curcor.TaskGroup() as tg:
        with pytest.raises(TypeError, match="async function"):
            await tg.start(5)


async def test_dropped_timers_and_tickers_are_freed_but_a_held_channel_keeps_them():
    """Go 1.23 frees unreferenced Timers and Tickers too; curcor kept every
    dropped Timer(3600) until it fired (56 MB per 20,000)."""
    import gc

    for _ in range(3):
        for _ in range(2000):
            curcor.Timer(3600)
            curcor.Ticker(3600)
        gc.collect()
        await curcor.sleep(0)
    assert curcor.stats().timers_pending < 2000
    ticks = curcor.Ticker(0.5).c  # the Ticker object itself is dropped
    fired = curcor.Timer(0.5).c
    gc.collect()
    assert (await ticks.recv()) >= 0.5
    assert (await ticks.recv()) >= 1.0
    assert (await fired.recv()) >= 0.5


def test_from_thread_checks_its_timeout_before_starting_the_call():
    """A timeout of "1" failed after the call had started (and run)."""
    import threading

    calls = []
    errors = []

    async def main():
        def outside():
            for bad in ("1", float("nan")):
                try:
                    curcor.from_thread(calls.append, bad, timeout=bad)
                except (TypeError, ValueError) as exc:
                    errors.append(type(exc))

        thread = threading.Thread(target=outside)
        thread.start()
        await curcor.to_thread(thread.join)

    curcor.run(main())
    assert errors == [TypeError, ValueError]
    assert calls == []


def test_asyncio_called_inside_a_task_fails_with_a_note_naming_the_bridge():
    """asyncio.sleep inside a task raised a bare "no running event loop"."""
    import asyncio

    async def main():
        await asyncio.sleep(0.01)

    with pytest.raises(RuntimeError, match="no running event loop") as info:
        curcor.run(main())
    assert "curcor.to_thread(asyncio.run" in "".join(info.value.__notes__)


async def test_select_default_must_be_a_bool():
    ch = curcor.Channel(1)
    with pytest.raises(TypeError, match="True or False"):
        await curcor.select(curcor.recv(ch), default="yes")
    assert await curcor.select(curcor.recv(ch), default=True) == (-1, None)


# -- third hunt: peers' own test suites ------------------------------------------


async def test_a_child_failing_after_its_starter_was_cancelled_fails_the_group():
    """trio's start() keeps a child under its starter until started(); here
    the starter was cancelled, start() raised Cancelled, and the child's
    later error vanished."""

    async def child(task_status):
        try:
            await curcor.sleep(10)
        finally:
            raise ValueError("cleanup failed")

    with pytest.raises(ExceptionGroup) as info:
        async with curcor.TaskGroup() as tg:
            with curcor.move_on_after(0.01):
                await tg.start(child)
    assert [str(e) for e in info.value.exceptions] == ["cleanup failed"]


async def test_once_refuses_a_coroutine_object_and_stays_unused():
    """Go's Once runs f even when it panics; a call that could never run f
    used to burn the Once for good."""
    once = curcor.Once()
    ran = []

    async def setup():
        ran.append(1)
        return 1

    with pytest.raises(TypeError, match=r"once\.do\(setup\)"):
        await once.do(setup())
    assert not once.done()
    assert await once.do(setup) == 1
    assert ran == [1]


async def test_a_moved_timeout_gives_its_real_limit_and_an_exited_scope_ignores_moves():
    """trio ignores deadline changes after the block; curcor re-armed them."""
    with pytest.raises(TimeoutError, match="after 4 s"):
        with curcor.timeout(1) as scope:
            scope.deadline = curcor.now() + 4
            await curcor.sleep(10)
    with curcor.CancelScope() as done:
        pass
    done.deadline = curcor.now() - 1
    await curcor.sleep(0)
    assert not done.cancel_called


async def test_start_of_a_plain_function_names_start_and_the_function():
    def not_async(task_status):
        return 5

    async with curcor.TaskGroup() as tg:
        with pytest.raises(TypeError, match=r"start.*not_async.*async def"):
            await tg.start(not_async)


async def test_incomplete_read_error_says_what_was_expected():
    """asyncio's IncompleteReadError carries .expected."""
    from curcor import net

    st, peer = await stream_pair()
    peer.write(b"abc")
    await peer.drain()
    peer.close()
    with pytest.raises(net.IncompleteReadError) as info:
        await st.read_exactly(10)
    assert (info.value.partial, info.value.expected) == (b"abc", 10)
    st.close()

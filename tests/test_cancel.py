"""Cancellation: level-triggered scopes, timeouts, shields, nesting, deadlines,
and ``Task.cancel`` waking a task whatever it is blocked on."""

from __future__ import annotations

import threading

import pytest

import curcor
from curcor.testing import wait_all_tasks_blocked

# -- level-triggered scopes -----------------------------------------------------


async def test_every_await_in_a_cancelled_scope_raises_until_the_scope_exits():
    ch = curcor.Channel(1)
    mu = curcor.Mutex()
    ev = curcor.Event()
    raised = []
    with curcor.CancelScope() as scope:
        scope.cancel()
        for name, make in [
            ("sleep", lambda: curcor.sleep(1)),
            ("sleep0", lambda: curcor.sleep(0)),
            ("recv", ch.recv),
            ("send", lambda: ch.send(1)),
            ("lock", mu.lock),
            ("event", ev.wait),
            ("select", lambda: curcor.select(curcor.recv(ch), default=True)),
            ("to_thread", lambda: curcor.to_thread(int)),
            ("sleep-again", lambda: curcor.sleep(1)),
        ]:
            try:
                await make()
            except curcor.Cancelled:
                raised.append(name)
    assert raised == [
        "sleep",
        "sleep0",
        "recv",
        "send",
        "lock",
        "event",
        "select",
        "to_thread",
        "sleep-again",
    ]
    # Nothing happened to the objects while cancelled.
    assert len(ch) == 0 and not mu.locked()
    # Outside the scope, awaits work again.
    await curcor.sleep(1)
    await ch.send(1)
    assert await ch.recv() == 1


async def test_cancellation_is_not_lost_when_the_task_swallows_it():
    progress = []

    async def stubborn():
        for i in range(3):
            try:
                await curcor.sleep(10)
            except curcor.Cancelled:
                progress.append(i)
        await curcor.sleep(10)
        progress.append("unreachable")

    task = curcor.go(stubborn())
    await wait_all_tasks_blocked()
    task.cancel()
    with pytest.raises(curcor.Cancelled):
        await task.join()
    assert progress == [0, 1, 2]
    assert task.cancelled()


async def test_scope_cancelled_from_another_task_wakes_the_sleeper():
    scope = curcor.CancelScope()
    reached = []

    async def sleeper():
        with scope:
            await curcor.sleep(1000)
            reached.append("after sleep")
        reached.append("after scope")

    task = curcor.go(sleeper())
    await wait_all_tasks_blocked()
    start = curcor.now()
    scope.cancel()
    await task.join()
    assert reached == ["after scope"]
    assert scope.cancelled_caught
    assert curcor.now() == start


async def test_scope_cancelled_before_entry_cancels_on_entry():
    scope = curcor.CancelScope()
    scope.cancel()
    assert scope.cancel_called
    with scope:
        await curcor.sleep(1)
        pytest.fail("the await should have raised")
    assert scope.cancelled_caught


async def test_cancelled_is_a_base_exception_not_caught_by_except_exception():
    assert issubclass(curcor.Cancelled, BaseException)
    assert not issubclass(curcor.Cancelled, Exception)
    caught_by_exception = False
    with curcor.move_on_after(1) as scope:
        try:
            await curcor.sleep(5)
        except Exception:
            caught_by_exception = True
    assert not caught_by_exception
    assert scope.cancelled_caught


async def test_a_scope_that_was_not_cancelled_does_not_swallow_cancelled():
    outer = curcor.CancelScope()
    with outer:
        with curcor.CancelScope() as inner:
            outer.cancel()
            await curcor.sleep(1)
        pytest.fail("Cancelled should have passed through the inner scope")
    assert not inner.cancelled_caught
    assert outer.cancelled_caught


async def test_cancelling_an_inner_scope_leaves_the_outer_running():
    with curcor.CancelScope() as outer:
        with curcor.CancelScope() as inner:
            inner.cancel()
            await curcor.sleep(1)
        await curcor.sleep(1)  # the outer scope is not cancelled
    assert inner.cancelled_caught
    assert not outer.cancelled_caught


async def test_scopes_must_exit_in_reverse_order():
    a = curcor.CancelScope()
    b = curcor.CancelScope()
    a.__enter__()
    b.__enter__()
    with pytest.raises(curcor.RuntimeMisuse):
        a.__exit__(None, None, None)
    b.__exit__(None, None, None)
    a.__exit__(None, None, None)


async def test_a_scope_cannot_be_entered_twice():
    scope = curcor.CancelScope()
    with scope:
        pass
    with pytest.raises(curcor.RuntimeMisuse):
        scope.__enter__()


# -- timeouts ------------------------------------------------------------------


async def test_timeout_raises_the_builtin_timeout_error_at_its_deadline():
    start = curcor.now()
    with pytest.raises(TimeoutError) as info:
        with curcor.timeout(2):
            await curcor.sleep(10)
    assert info.type is TimeoutError
    assert curcor.now() - start == pytest.approx(2)


async def test_timeout_that_does_not_expire_changes_nothing():
    with curcor.timeout(5) as scope:
        await curcor.sleep(1)
    assert not scope.cancelled_caught
    # The expired deadline must not reach code after the block.
    await curcor.sleep(10)


async def test_timeout_cancelled_by_hand_is_not_a_timeout_error():
    with curcor.timeout(5) as scope:
        scope.cancel()
        await curcor.sleep(1)
    assert scope.cancelled_caught


async def test_nested_timeout_raises_only_at_the_scope_that_expired():
    with pytest.raises(TimeoutError):
        with curcor.timeout(1):
            with curcor.timeout(5) as inner:
                await curcor.sleep(10)
    assert not inner.cancelled_caught
    assert curcor.now() == pytest.approx(1)


async def test_move_on_after_leaves_quietly_and_sets_cancelled_caught():
    start = curcor.now()
    reached = False
    with curcor.move_on_after(3) as scope:
        await curcor.sleep(100)
        reached = True
    assert not reached
    assert scope.cancelled_caught
    assert curcor.now() - start == pytest.approx(3)


async def test_move_on_after_that_does_not_expire_reports_not_caught():
    with curcor.move_on_after(3) as scope:
        await curcor.sleep(1)
    assert not scope.cancelled_caught
    assert not scope.cancel_called


@pytest.mark.parametrize("seconds", [0, -1, -1000])
async def test_deadline_in_the_past_cancels_the_first_await(seconds):
    start = curcor.now()
    with curcor.move_on_after(seconds) as scope:
        await curcor.sleep(0)
        pytest.fail("should have been cancelled")
    assert scope.cancelled_caught
    assert curcor.now() == start


async def test_cancel_scope_with_past_deadline_cancels_at_once():
    with curcor.CancelScope(deadline=curcor.now() - 5) as scope:
        await curcor.sleep(1)
    assert scope.cancelled_caught


async def test_moving_a_deadline_later_postpones_the_cancellation():
    start = curcor.now()
    with curcor.move_on_after(1) as scope:
        scope.deadline = start + 10
        await curcor.sleep(5)
        assert curcor.now() - start == pytest.approx(5)
        await curcor.sleep(10)
    assert scope.cancelled_caught
    assert curcor.now() - start == pytest.approx(10)


# -- shields -------------------------------------------------------------------


async def test_shield_protects_its_block_from_outer_cancellation():
    start = curcor.now()
    steps = []
    with curcor.move_on_after(1) as outer:
        with curcor.CancelScope(shield=True):
            await curcor.sleep(5)
            steps.append("shielded sleep finished")
        await curcor.sleep(0)
        steps.append("unreachable")
    assert steps == ["shielded sleep finished"]
    assert outer.cancelled_caught
    assert curcor.now() - start == pytest.approx(5)


async def test_shield_protects_against_task_cancel():
    done = []

    async def cleanup_heavy():
        try:
            await curcor.sleep(100)
        finally:
            with curcor.CancelScope(shield=True):
                await curcor.sleep(3)
                done.append("cleanup")

    task = curcor.go(cleanup_heavy())
    await wait_all_tasks_blocked()
    task.cancel()
    with pytest.raises(curcor.Cancelled):
        await task.join()
    assert done == ["cleanup"]


async def test_dropping_a_shield_lets_the_pending_cancellation_in():
    with curcor.move_on_after(1) as outer:
        with curcor.CancelScope(shield=True) as shield:
            await curcor.sleep(2)
            shield.shield = False
            await curcor.sleep(0)
            pytest.fail("the outer cancellation should arrive")
    assert outer.cancelled_caught


async def test_a_cancelled_shield_scope_still_cancels_its_own_block():
    with curcor.CancelScope(shield=True) as scope:
        scope.cancel()
        await curcor.sleep(1)
    assert scope.cancelled_caught


# -- Task.cancel ---------------------------------------------------------------


async def test_task_cancel_returns_true_before_finish_and_false_after():
    async def quick():
        return 1

    async def slow():
        await curcor.sleep(10)

    t = curcor.go(slow())
    await wait_all_tasks_blocked()
    assert t.cancel() is True
    assert t.cancel() is True  # still not finished: the request stands
    with pytest.raises(curcor.Cancelled):
        await t.join()
    assert t.cancel() is False

    q = curcor.go(quick())
    assert await q.join() == 1
    assert q.done()
    assert q.cancel() is False
    assert not q.cancelled()


async def test_task_cancelled_before_its_first_step_runs_its_finally():
    ran = []

    async def victim():
        try:
            ran.append("started")
            await curcor.sleep(1)
            ran.append("unreachable")
        finally:
            ran.append("finally")

    t = curcor.go(victim())
    assert t.cancel() is True
    with pytest.raises(curcor.Cancelled):
        await t.join()
    assert ran == ["started", "finally"]


def _blockers():
    """(name, factory) pairs; a factory returns (coroutine to block in, cleanup)."""

    def channel_recv():
        return curcor.Channel().recv(), None

    def channel_send():
        ch = curcor.Channel()
        return ch.send(1), None

    def sleep():
        async def sleeper():
            await curcor.sleep(1e6)

        return sleeper(), None

    def join():
        forever = curcor.go(curcor.Event().wait())

        async def joiner():
            try:
                await forever.join()
            finally:
                forever.cancel()

        return joiner(), None

    def mutex():
        mu = curcor.Mutex()
        assert mu.try_lock()
        return mu.lock(), None

    def rwmutex():
        rw = curcor.RWMutex()

        async def both():
            await rw.rlock()
            await rw.lock()

        return both(), None

    def semaphore():
        return curcor.Semaphore(0).acquire(), None

    def event():
        return curcor.Event().wait(), None

    def waitgroup():
        wg = curcor.WaitGroup()
        wg.add(1)
        return wg.wait(), None

    def condition():
        cond = curcor.Condition()

        async def waiter():
            async with cond:
                await cond.wait()

        return waiter(), None

    def select():
        return curcor.select(
            curcor.recv(curcor.Channel()), curcor.recv(curcor.after(1e6))
        ), None

    def select_nothing():
        return curcor.select(), None

    def to_thread():
        gate = threading.Event()
        return curcor.to_thread(gate.wait, 30), gate.set

    return [
        (f.__name__, f)
        for f in (
            channel_recv,
            channel_send,
            sleep,
            join,
            mutex,
            rwmutex,
            semaphore,
            event,
            waitgroup,
            condition,
            select,
            select_nothing,
            to_thread,
        )
    ]


@pytest.mark.parametrize("name,factory", _blockers(), ids=[n for n, _ in _blockers()])
async def test_task_cancel_wakes_a_task_blocked_on_anything(name, factory):
    coro, cleanup = factory()
    finished = []

    async def blocked():
        try:
            await coro
        finally:
            finished.append(curcor.now())

    t = curcor.go(blocked())
    await wait_all_tasks_blocked()
    assert not t.done(), f"{name} did not block"
    start = curcor.now()
    assert t.cancel() is True
    with pytest.raises(curcor.Cancelled):
        await t.join()
    # Woken by the cancel, not by a clock jump to some far deadline.
    assert finished == [start]
    if cleanup is not None:
        cleanup()

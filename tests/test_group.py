"""TaskGroup: waiting for children, failure propagation and sibling
cancellation, outer cancellation, and ``start`` with ``task_status``."""

from __future__ import annotations

import pytest

import curcor
from curcor.testing import wait_all_tasks_blocked


async def test_task_group_waits_for_every_child():
    finished = []

    async def child(i):
        await curcor.sleep(i)
        finished.append(i)

    start = curcor.now()
    async with curcor.TaskGroup() as tg:
        for i in (3, 1, 2):
            tg.go(child(i))
        assert finished == []
    assert sorted(finished) == [1, 2, 3]
    assert curcor.now() - start == pytest.approx(3)


async def test_task_group_with_no_children_exits_at_once():
    start = curcor.now()
    async with curcor.TaskGroup():
        pass
    assert curcor.now() == start


async def test_child_failure_cancels_siblings_and_raises_exception_group():
    cancelled = []

    async def sibling(i):
        try:
            await curcor.sleep(100)
        except curcor.Cancelled:
            cancelled.append(i)
            raise

    async def failing():
        await curcor.sleep(1)
        raise ValueError("child failed")

    start = curcor.now()
    with pytest.raises(ExceptionGroup) as info:
        async with curcor.TaskGroup() as tg:
            tg.go(sibling(0))
            tg.go(sibling(1))
            tg.go(failing())
    assert sorted(cancelled) == [0, 1]
    assert curcor.now() - start == pytest.approx(1)
    [error] = info.value.exceptions
    assert isinstance(error, ValueError)
    assert str(error) == "child failed"


async def test_child_failure_cancels_the_group_body():
    reached = []

    async def failing():
        raise KeyError("k")

    with pytest.raises(ExceptionGroup) as info:
        async with curcor.TaskGroup() as tg:
            tg.go(failing())
            try:
                await curcor.sleep(100)
            except curcor.Cancelled:
                reached.append("body cancelled")
                raise
    assert reached == ["body cancelled"]
    assert [type(e) for e in info.value.exceptions] == [KeyError]


async def test_several_child_failures_are_all_reported():
    async def failing(exc):
        await curcor.sleep(1)
        raise exc

    with pytest.raises(ExceptionGroup) as info:
        async with curcor.TaskGroup() as tg:
            tg.go(failing(ValueError("a")))
            tg.go(failing(TypeError("b")))
    assert sorted(type(e).__name__ for e in info.value.exceptions) == [
        "TypeError",
        "ValueError",
    ]


async def test_body_failure_cancels_children_and_is_in_the_group():
    cancelled = []

    async def child():
        try:
            await curcor.sleep(100)
        except curcor.Cancelled:
            cancelled.append(True)
            raise

    with pytest.raises(ExceptionGroup) as info:
        async with curcor.TaskGroup() as tg:
            tg.go(child())
            await wait_all_tasks_blocked()
            raise RuntimeError("body")
    assert cancelled == [True]
    assert [str(e) for e in info.value.exceptions] == ["body"]


async def test_outer_cancel_reaches_every_child():
    cancelled = []

    async def child(i):
        try:
            await curcor.sleep(100)
        finally:
            cancelled.append(i)

    with curcor.move_on_after(2):
        async with curcor.TaskGroup() as tg:
            for i in range(3):
                tg.go(child(i))
    assert sorted(cancelled) == [0, 1, 2]
    assert curcor.now() == pytest.approx(2)


async def test_group_cancelled_from_outside_raises_cancelled_at_its_exit():
    after_group = []

    async def child():
        await curcor.sleep(100)

    with curcor.move_on_after(2) as scope:
        async with curcor.TaskGroup() as tg:
            tg.go(child())
        after_group.append("ran")
    assert after_group == []
    assert scope.cancelled_caught


async def test_cancelling_the_task_that_owns_a_group_cancels_its_children():
    cancelled = []

    async def child():
        try:
            await curcor.sleep(100)
        finally:
            cancelled.append(True)

    async def owner():
        async with curcor.TaskGroup() as tg:
            tg.go(child())
            tg.go(child())

    t = curcor.go(owner())
    await wait_all_tasks_blocked()
    assert t.cancel() is True
    try:
        await t.join()
    except curcor.Cancelled:
        pass  # the expected outcome (checked strictly below)
    assert cancelled == [True, True]


async def test_task_cancelled_while_its_group_waits_ends_cancelled():
    async def owner():
        async with curcor.TaskGroup() as tg:
            tg.go(curcor.Event().wait())
        return "returned normally"

    t = curcor.go(owner())
    await wait_all_tasks_blocked()
    assert t.cancel() is True
    with pytest.raises(curcor.Cancelled):
        await t.join()
    assert t.cancelled()


async def test_group_exit_waits_for_children_cleanup_even_when_cancelled():
    order = []

    async def child():
        try:
            await curcor.sleep(100)
        finally:
            with curcor.CancelScope(shield=True):
                await curcor.sleep(5)
            order.append("child cleanup")

    with curcor.move_on_after(1):
        async with curcor.TaskGroup() as tg:
            tg.go(child())
    order.append("group exited")
    assert order == ["child cleanup", "group exited"]
    assert curcor.now() == pytest.approx(6)


async def test_children_return_values_through_their_tasks():
    async def child(i):
        await curcor.sleep(i)
        return i * 10

    async with curcor.TaskGroup() as tg:
        tasks = [tg.go(child(i)) for i in range(3)]
    assert [t.result() for t in tasks] == [0, 10, 20]


async def test_go_on_a_closed_group_is_misuse():
    async with curcor.TaskGroup() as tg:
        pass

    async def child():
        pass

    with pytest.raises(curcor.RuntimeMisuse):
        tg.go(child())


async def test_group_go_with_a_function_is_a_type_error_naming_the_fix():
    async def child(x):
        pass

    async with curcor.TaskGroup() as tg:
        with pytest.raises(TypeError, match=r"child\("):
            tg.go(child)


async def test_a_task_group_can_be_entered_only_once():
    tg = curcor.TaskGroup()
    async with tg:
        pass
    with pytest.raises(curcor.RuntimeMisuse):
        async with tg:
            pass


async def test_nested_groups_propagate_failures_outward():
    async def failing():
        raise ValueError("deep")

    with pytest.raises(ExceptionGroup) as info:
        async with curcor.TaskGroup() as outer:

            async def middle():
                async with curcor.TaskGroup() as inner:
                    inner.go(failing())

            outer.go(middle())
    [middle_error] = info.value.exceptions
    assert isinstance(middle_error, ExceptionGroup)
    assert isinstance(middle_error.exceptions[0], ValueError)


# -- start --------------------------------------------------------------------


async def test_start_returns_the_value_passed_to_started():
    progress = []

    async def server(port, *, task_status=curcor.TASK_STATUS_IGNORED):
        await curcor.sleep(1)
        task_status.started(port + 1)
        progress.append("serving")
        await curcor.sleep(10)
        progress.append("done")

    async with curcor.TaskGroup() as tg:
        port = await tg.start(server, 8000)
        assert port == 8001
        assert curcor.now() == pytest.approx(1)
        # start returned before the rest of the child ran past the wait.
        assert "done" not in progress
    assert progress == ["serving", "done"]


async def test_start_with_started_without_value_returns_none():
    async def child(*, task_status=curcor.TASK_STATUS_IGNORED):
        task_status.started()
        await curcor.sleep(1)

    async with curcor.TaskGroup() as tg:
        assert await tg.start(child) is None


async def test_child_failing_before_started_propagates_from_start():
    async def broken(*, task_status=curcor.TASK_STATUS_IGNORED):
        await curcor.sleep(1)
        raise OSError("bind failed")

    async with curcor.TaskGroup() as tg:
        with pytest.raises(OSError, match="bind failed"):
            await tg.start(broken)
    # The failure went to the starter, so the group itself has nothing to raise.


async def test_child_returning_without_started_is_a_runtime_error():
    async def lazy(*, task_status=curcor.TASK_STATUS_IGNORED):
        await curcor.sleep(1)

    async with curcor.TaskGroup() as tg:
        with pytest.raises(RuntimeError, match="started"):
            await tg.start(lazy)


async def test_child_failing_after_started_fails_the_group():
    async def flaky(*, task_status=curcor.TASK_STATUS_IGNORED):
        task_status.started("up")
        await curcor.sleep(1)
        raise ValueError("later")

    with pytest.raises(ExceptionGroup) as info:
        async with curcor.TaskGroup() as tg:
            assert await tg.start(flaky) == "up"
    assert [type(e) for e in info.value.exceptions] == [ValueError]


async def test_started_twice_is_misuse():
    errors = []

    async def twice(*, task_status=curcor.TASK_STATUS_IGNORED):
        task_status.started(1)
        try:
            task_status.started(2)
        except curcor.RuntimeMisuse as exc:
            errors.append(exc)

    async with curcor.TaskGroup() as tg:
        assert await tg.start(twice) == 1
    assert len(errors) == 1


async def test_cancelled_start_waiter_is_woken():
    async def never_ready(*, task_status=curcor.TASK_STATUS_IGNORED):
        await curcor.sleep(100)

    with curcor.move_on_after(2) as scope:
        async with curcor.TaskGroup() as tg:
            await tg.start(never_ready)
    assert scope.cancelled_caught
    assert curcor.now() == pytest.approx(2)

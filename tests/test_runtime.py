"""The runtime: run, go, Task handles and join, misuse errors, detached task
failures, deadlock detection, shutdown of tasks left behind, stats() and
contextvars."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import re
import threading

import pytest

import curcor
from curcor.config import load_config
from curcor.testing import FakeClock, wait_all_tasks_blocked


def run(coro, *, maxprocs: int = 1, seed: int | None = None):
    """Run ``coro`` on a fresh runtime with a fake clock and no outside config."""
    config = load_config(env={}, flags={"maxprocs": str(maxprocs)})
    return curcor.run(coro, config=config, clock=FakeClock(), seed=seed)


# pytest-timeout's "thread" method (the project default) keeps a non-daemon
# timer thread alive during each test. The runtime rightly counts such a
# thread as a possible waker (it may call from_thread), so a deadlock is
# never declared while it lives. Deadlock tests therefore use the signal
# method, which starts no thread.
SIGNAL_TIMEOUT = pytest.mark.timeout(30, method="signal")


# -- run ----------------------------------------------------------------------


def test_run_returns_the_main_coroutines_value():
    async def main():
        await curcor.sleep(1)
        return {"answer": 42}

    assert run(main()) == {"answer": 42}


def test_run_raises_the_main_coroutines_exception():
    async def main():
        await curcor.sleep(0)
        raise LookupError("from main")

    with pytest.raises(LookupError, match="from main"):
        run(main())


def test_run_of_a_function_is_a_type_error_naming_the_fix():
    async def main():
        pass

    with pytest.raises(TypeError, match=r"main\("):
        curcor.run(main)


def test_run_inside_a_task_is_misuse():
    errors = []

    async def inner():
        return 1

    async def main():
        try:
            curcor.run(inner())
        except curcor.RuntimeMisuse as exc:
            errors.append(str(exc))

    run(main())
    assert len(errors) == 1
    assert "curcor.go" in errors[0] or "await" in errors[0]


def test_a_second_runtime_in_another_thread_is_misuse():
    errors = []

    async def other():
        return 1

    def in_thread():
        try:
            run(other())
        except curcor.RuntimeMisuse as exc:
            errors.append(str(exc))

    async def main():
        t = threading.Thread(target=in_thread)
        t.start()
        await curcor.to_thread(t.join)

    run(main())
    assert len(errors) == 1
    assert "from_thread" in errors[0]


def test_the_runtime_can_run_again_after_it_stopped():
    async def main(i):
        await curcor.sleep(1)
        return i

    assert [run(main(i)) for i in range(3)] == [0, 1, 2]


# -- go and Task --------------------------------------------------------------


async def test_task_name_defaults_to_qualname_and_a_number():
    async def worker():
        pass

    a = curcor.go(worker())
    b = curcor.go(worker())
    assert re.fullmatch(r".*worker-\d+", a.name), a.name
    assert a.name.startswith(worker.__qualname__)
    assert a.name != b.name
    await a.join()
    await b.join()


async def test_task_name_can_be_given():
    async def worker():
        return curcor.current_task().name

    t = curcor.go(worker(), name="fetcher")
    assert t.name == "fetcher"
    assert await t.join() == "fetcher"


async def test_join_returns_the_value_and_done_tracks_completion():
    gate = curcor.Event()

    async def worker():
        await gate.wait()
        return "value"

    t = curcor.go(worker())
    await wait_all_tasks_blocked()
    assert not t.done()
    gate.set()
    assert await t.join() == "value"
    assert t.done()
    assert await t.join() == "value"  # joining again gives the same


async def test_join_raises_the_exception_of_a_task_that_already_failed():
    async def failing():
        raise ValueError("early")

    t = curcor.go(failing())
    await wait_all_tasks_blocked()
    assert t.done()
    with pytest.raises(ValueError, match="early"):
        await t.join()


def test_join_raises_the_exception_of_a_task_failing_while_joined():
    async def failing():
        await curcor.sleep(1)
        raise ValueError("while joined")

    async def main():
        t = curcor.go(failing())
        try:
            await t.join()
        except ValueError as exc:
            return f"caught {exc}"

    assert run(main()) == "caught while joined"


async def test_join_of_a_cancelled_task_raises_cancelled():
    t = curcor.go(curcor.Event().wait())
    await wait_all_tasks_blocked()
    t.cancel()
    with pytest.raises(curcor.Cancelled):
        await t.join()
    assert t.cancelled()


async def test_a_task_cannot_join_itself():
    async def selfish():
        return await curcor.current_task().join()

    errors = []

    async def wrapper():
        try:
            await selfish()
        except curcor.RuntimeMisuse as exc:
            errors.append(exc)

    await curcor.go(wrapper()).join()
    assert len(errors) == 1


async def test_many_tasks_can_join_one_task():
    gate = curcor.Event()

    async def worker():
        await gate.wait()
        return 7

    t = curcor.go(worker())

    async def joiner():
        return await t.join()

    joiners = [curcor.go(joiner()) for _ in range(5)]
    await wait_all_tasks_blocked()
    gate.set()
    assert [await j.join() for j in joiners] == [7] * 5


async def test_result_before_finish_is_misuse_naming_join():
    t = curcor.go(curcor.Event().wait())
    with pytest.raises(curcor.RuntimeMisuse, match="join"):
        t.result()
    t.cancel()


@pytest.mark.parametrize(
    "call",
    [
        lambda fn: curcor.go(fn, 1),
        lambda fn: curcor.go(fn),
    ],
    ids=["go(fn, 1)", "go(fn)"],
)
async def test_go_with_a_function_is_a_type_error_naming_the_fix(call):
    async def fetch(x=0):
        pass

    with pytest.raises(TypeError) as info:
        call(fetch)
    assert "curcor.go(fetch(" in str(info.value)


async def test_go_with_a_non_string_name_is_a_type_error_and_closes_the_coroutine():
    async def worker(x):
        pass

    coro = worker(1)
    with pytest.raises(TypeError, match=r"curcor\.go\(fn\(arg\)\)"):
        curcor.go(coro, 2)
    assert coro.cr_frame is None  # closed, so no "never awaited" warning


def test_go_outside_the_runtime_is_misuse_and_closes_the_coroutine():
    async def worker():
        pass

    coro = worker()
    with pytest.raises(curcor.RuntimeMisuse, match=r"curcor\.run"):
        curcor.go(coro)
    assert coro.cr_frame is None


def test_curcor_awaits_under_asyncio_run_are_misuse():
    async def under_asyncio():
        errors = []
        for make in (
            lambda: curcor.sleep(1),
            lambda: curcor.Channel(1).recv(),
            lambda: curcor.Mutex().lock(),
            lambda: curcor.to_thread(int),
        ):
            try:
                await make()
            except curcor.RuntimeMisuse as exc:
                errors.append(str(exc))
        return errors

    errors = asyncio.run(under_asyncio())
    assert len(errors) == 4
    assert all("curcor.run" in e for e in errors)


def test_awaiting_an_asyncio_future_inside_curcor_is_misuse_naming_the_bridge():
    loop = asyncio.new_event_loop()

    async def main():
        fut = loop.create_future()
        try:
            await fut
        except curcor.RuntimeMisuse as exc:
            return str(exc)

    try:
        message = run(main())
    finally:
        loop.close()
    assert "asyncio" in message
    assert "to_thread" in message


def test_current_task_outside_a_task_is_misuse():
    with pytest.raises(curcor.RuntimeMisuse):
        curcor.current_task()


async def test_current_task_is_the_handle_go_returned():
    async def worker():
        return curcor.current_task()

    t = curcor.go(worker())
    assert await t.join() is t


# -- detached task failures ---------------------------------------------------


def test_detached_task_failure_is_logged_cancels_main_and_run_reraises(caplog):
    main_cancelled = []

    async def boom():
        await curcor.sleep(1)
        raise ZeroDivisionError("in a detached task")

    async def main():
        curcor.go(boom(), name="bomb")
        try:
            await curcor.sleep(1000)
        except curcor.Cancelled:
            main_cancelled.append(curcor.now())
            raise

    with caplog.at_level(logging.ERROR, logger="curcor"):
        with pytest.raises(ZeroDivisionError, match="in a detached task"):
            run(main())
    assert main_cancelled == [pytest.approx(1)]
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "bomb" in record.getMessage()
    assert record.exc_info is not None
    assert record.exc_info[0] is ZeroDivisionError


def test_failure_of_a_held_unjoined_task_is_raised_when_main_ends(caplog):
    # Decision (docs/architecture.md, "Unhandled errors"): a held handle may
    # still be joined, so the error waits for join() or for the end of main.
    async def boom():
        await curcor.sleep(1)
        raise ZeroDivisionError("unjoined")

    async def main():
        handle = curcor.go(boom())
        await curcor.sleep(1000)
        return handle

    with caplog.at_level(logging.ERROR, logger="curcor"):
        with pytest.raises(ZeroDivisionError, match="unjoined"):
            run(main())
    assert any(r.levelno >= logging.ERROR for r in caplog.records)


def test_only_the_first_detached_failure_is_raised():
    async def boom(i):
        await curcor.sleep(i)
        raise ValueError(f"failure {i}")

    async def main():
        curcor.go(boom(1))
        curcor.go(boom(2))
        await curcor.sleep(1000)

    with pytest.raises(ValueError, match="failure 1"):
        run(main())


def test_every_failure_of_many_detached_tasks_is_logged_though_one_is_raised(caplog):
    """Found by a fresh-user trial: of ten detached tasks failing at once,
    one was logged; the others, held by the cancel scopes the shutdown gave
    them, waited in the unjoined list and run() never reported them."""

    async def bad(i):
        raise ValueError(f"boom {i}")

    async def main():
        for i in range(10):
            curcor.go(bad(i), name=f"bad{i}")
        await curcor.sleep(1)

    with caplog.at_level(logging.ERROR, logger="curcor"):
        with pytest.raises(ValueError, match="boom 0"):
            run(main())
    logged = {
        r.exc_info[1].args[0]
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.exc_info
    }
    assert logged == {f"boom {i}" for i in range(10)}


def test_a_detached_task_that_was_cancelled_is_not_an_error():
    async def main():
        t = curcor.go(curcor.Event().wait())
        await wait_all_tasks_blocked()
        t.cancel()
        del t
        await curcor.sleep(1)
        return "fine"

    assert run(main()) == "fine"


# -- end of main, deadlock ----------------------------------------------------


def test_tasks_left_blocked_when_main_returns_are_cancelled_and_clean_up():
    cleaned = []

    async def stuck(i):
        try:
            await curcor.Channel().recv()
        finally:
            cleaned.append(i)

    async def main():
        for i in range(5):
            curcor.go(stuck(i))
        await wait_all_tasks_blocked()
        return "main done"

    assert run(main(), maxprocs=2) == "main done"
    assert sorted(cleaned) == [0, 1, 2, 3, 4]


def test_a_sleeping_task_left_behind_does_not_delay_the_end_of_run():
    async def main():
        curcor.go(curcor.Event().wait())

        async def long_sleep():
            await curcor.sleep(10_000)

        curcor.go(long_sleep())
        await curcor.sleep(1)
        return curcor.now()

    assert run(main()) == pytest.approx(1)


@SIGNAL_TIMEOUT
def test_deadlock_is_reported_with_every_tasks_stack():
    async def waiter(ch):
        await ch.recv()

    async def main():
        a, b = curcor.Channel(), curcor.Channel()
        curcor.go(waiter(a), name="alpha")
        curcor.go(waiter(b), name="beta")
        await curcor.Channel().recv()

    with pytest.raises(curcor.DeadlockError) as info:
        run(main(), maxprocs=2)
    text = str(info.value)
    assert text.startswith("curcor: all tasks are asleep - deadlock!")
    for name in ("'alpha'", "'beta'", "main"):
        assert name in text
    # Each task has at least one stack line in this file.
    stack_lines = [line for line in text.splitlines() if __file__ in line]
    assert len(stack_lines) >= 3, text


@SIGNAL_TIMEOUT
def test_deadlock_of_two_tasks_locking_two_mutexes_in_opposite_order():
    async def main():
        a, b = curcor.Mutex(), curcor.Mutex()
        gate = curcor.WaitGroup()
        gate.add(2)

        async def one(first, second):
            await first.lock()
            gate.done()
            await gate.wait()
            await second.lock()

        async with curcor.TaskGroup() as tg:
            tg.go(one(a, b), name="ab")
            tg.go(one(b, a), name="ba")

    with pytest.raises(curcor.DeadlockError) as info:
        run(main())
    text = str(info.value)
    assert "'ab'" in text and "'ba'" in text
    assert "Mutex" in text


@SIGNAL_TIMEOUT
def test_a_pending_timer_is_not_a_deadlock():
    async def main():
        ch = curcor.Channel()

        async def late():
            await curcor.sleep(50)
            await ch.send("late")

        curcor.go(late())
        return await ch.recv()

    assert run(main()) == "late"


@SIGNAL_TIMEOUT
def test_deadlock_is_reported_on_a_real_clock_too():
    async def main():
        await curcor.Event().wait()

    config = load_config(env={}, flags={"maxprocs": "2"})
    with pytest.raises(curcor.DeadlockError):
        curcor.run(main(), config=config)


# -- stats --------------------------------------------------------------------


def test_stats_fields_exist_with_sane_values():
    seen = {}

    async def child():
        await curcor.sleep(0)

    async def main():
        for _ in range(10):
            curcor.go(child())
        await curcor.sleep(1)
        seen["during"] = curcor.stats()

    config = load_config(env={}, flags={"maxprocs": "2"})
    curcor.run(main(), config=config, clock=FakeClock())
    s = seen["during"]
    assert isinstance(s, curcor.Stats)
    assert s.maxprocs == 2
    assert len(s.workers) == 2
    assert all(isinstance(w, curcor.WorkerStats) for w in s.workers)
    assert [w.index for w in s.workers] == [0, 1]
    assert s.tasks_spawned >= 11  # main and ten children
    assert s.tasks_finished >= 10
    assert s.tasks_live == 1  # only main is left
    assert s.steps > 0
    assert s.steps == sum(w.steps for w in s.workers)
    assert s.backend
    assert s.uptime >= 0
    for name in (
        "tasks_runnable",
        "tasks_blocked",
        "timers_pending",
        "timers_fired",
        "netpoll_waits",
        "thread_calls_in_flight",
        "pool_hits",
        "pool_misses",
        "gc_collections",
        "gc_pause_total",
        "gc_pause_max",
    ):
        assert getattr(s, name) >= 0, name
    assert s.timers_fired >= 1  # the sleep(1)

    # After the run, stats() keeps the final figures.
    after = curcor.stats()
    assert after.tasks_spawned >= 11
    assert after.tasks_live == 0


def test_stats_is_a_frozen_dataclass():
    s = curcor.stats()
    assert dataclasses.is_dataclass(s)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.steps = 1  # type: ignore[misc]


# -- contextvars --------------------------------------------------------------

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def test_child_tasks_see_a_copy_of_the_spawners_context():
    VAR.set("parent")

    async def child():
        return VAR.get()

    t = curcor.go(child())
    VAR.set("changed after spawn")
    assert await t.join() == "parent"


async def test_a_childs_set_does_not_leak_to_parent_or_siblings():
    VAR.set("parent")
    gate = curcor.Event()

    async def child(i):
        VAR.set(f"child {i}")
        await gate.wait()
        return VAR.get()

    tasks = [curcor.go(child(i)) for i in range(3)]
    await wait_all_tasks_blocked()
    assert VAR.get() == "parent"
    gate.set()
    assert [await t.join() for t in tasks] == ["child 0", "child 1", "child 2"]
    assert VAR.get() == "parent"


async def test_a_task_without_vars_that_sets_one_keeps_it_across_awaits():
    async def child(i):
        assert VAR.get() == "unset"
        await curcor.sleep(i)
        VAR.set(f"mine {i}")
        for _ in range(5):
            await curcor.sleep(0)
            await curcor.sleep(1)
        return VAR.get()

    async def plain():
        values = []
        for _ in range(10):
            values.append(VAR.get())
            await curcor.sleep(1)
        return values

    tasks = [curcor.go(child(i)) for i in range(4)]
    others = [curcor.go(plain()) for _ in range(3)]
    assert [await t.join() for t in tasks] == [f"mine {i}" for i in range(4)]
    for o in others:
        assert await o.join() == ["unset"] * 10


def test_context_vars_set_in_a_task_do_not_leak_across_workers():
    async def main():
        async def setter(i):
            VAR.set(f"s{i}")
            await curcor.sleep(0)
            return VAR.get()

        async def reader():
            await curcor.sleep(0)
            return VAR.get()

        async with curcor.TaskGroup() as tg:
            setters = [tg.go(setter(i)) for i in range(20)]
            readers = [tg.go(reader()) for _ in range(20)]
        return [t.result() for t in setters], [t.result() for t in readers]

    for seed in range(5):
        setters, readers = run(main(), maxprocs=2, seed=seed)
        assert setters == [f"s{i}" for i in range(20)]
        assert readers == ["unset"] * 20


def test_main_sees_the_callers_context_and_does_not_write_back_to_it():
    token = VAR.set("caller")

    async def main():
        seen = VAR.get()
        VAR.set("main")
        return seen

    try:
        assert run(main()) == "caller"
        assert VAR.get() == "caller"
    finally:
        VAR.reset(token)


def test_main_setting_a_var_does_not_leak_into_the_caller():
    async def main():
        VAR.set("main")
        await curcor.sleep(0)
        return VAR.get()

    assert run(main()) == "main"
    assert VAR.get() == "unset"


async def _stubborn(cleanup):
    """A task whose cleanup ignores cancellation: it can only be abandoned."""
    try:
        await curcor.Event().wait()
    finally:
        with curcor.CancelScope(shield=True):
            await curcor.sleep(10_000)
            cleanup.append("finished")


def _stubborn_app(cleanup):
    coro = _stubborn(cleanup)

    async def main():
        curcor.go(coro, name="stubborn")
        await curcor.sleep(1)
        return "main done"

    return coro, main()


def _close_quietly(coro):
    try:
        coro.close()
    except BaseException:  # the bug below: closing it outside the runtime raises
        pass


def test_a_task_ignoring_cancellation_is_abandoned_after_shutdown_grace(caplog):
    cleanup = []
    coro, main = _stubborn_app(cleanup)
    config = load_config(env={}, flags={"maxprocs": "1", "shutdown_grace": "3"})
    clock = FakeClock()
    try:
        with caplog.at_level(logging.WARNING, logger="curcor"):
            assert curcor.run(main, config=config, clock=clock) == "main done"
        assert cleanup == []
        assert clock.now() == pytest.approx(4)  # main's 1 s, then the 3 s grace
        assert any("stubborn" in r.getMessage() for r in caplog.records)
    finally:
        _close_quietly(coro)


def test_run_closes_the_coroutines_of_abandoned_tasks():
    cleanup = []
    coro, main = _stubborn_app(cleanup)
    config = load_config(env={}, flags={"maxprocs": "1", "shutdown_grace": "3"})
    try:
        curcor.run(main, config=config, clock=FakeClock())
        # Otherwise the garbage collector closes it at some later moment, on
        # whatever thread, and its `with CancelScope` exit raises
        # RuntimeMisuse("no curcor runtime is running") there.
        assert coro.cr_frame is None
    finally:
        _close_quietly(coro)


def _live_task_names() -> list[str]:
    from curcor._core import runtime

    assert runtime._running is not None
    return [t.name.rsplit(".", 1)[-1] for t in runtime._running.sched.tasks()]


def test_the_task_list_holds_exactly_the_started_and_unfinished_tasks():
    async def wait(event):
        await event.wait()

    async def quick():
        return 1

    async def main():
        event = curcor.Event()
        finished = [curcor.go(quick(), name=f"done-{i}") for i in range(300)]
        blocked = [curcor.go(wait(event), name=f"blocked-{i}") for i in range(300)]
        for t in finished:
            await t.join()
        await wait_all_tasks_blocked()
        names = _live_task_names()
        event.set()
        for t in blocked:
            await t.join()
        return names, _live_task_names()

    names, after = curcor.run(main())
    assert sorted(names) == sorted([*(f"blocked-{i}" for i in range(300)), "main-1"])
    assert names[0] == "main-1"  # in id order
    assert after == ["main-1"]


def test_a_task_abandoned_by_one_run_is_not_listed_by_the_next():
    kept = []  # its handle outlives the run

    async def main():
        kept.append(curcor.go(_stubborn([]), name="stubborn"))
        await curcor.sleep(1)

    config = load_config(env={}, flags={"maxprocs": "1", "shutdown_grace": "3"})
    curcor.run(main(), config=config, clock=FakeClock())
    assert kept[0].done() and kept[0].cancelled()

    async def second():
        return _live_task_names()

    assert curcor.run(second()) == ["second-1"]


def test_a_task_that_swallows_cancellation_is_abandoned_and_run_returns(caplog):
    # Every await of a cancelled task raises at once, so this loop never
    # yields: after the grace period its awaits must wait instead, or run()
    # could never return (and, on worker 0, never give the thread back).
    rounds = []

    async def swallower():
        while True:
            try:
                await curcor.sleep(0.05)
            except curcor.Cancelled:
                rounds.append(1)

    async def main():
        curcor.go(swallower(), name="swallower")
        await curcor.sleep(0)  # it has started

    config = load_config(env={}, flags={"maxprocs": "1", "shutdown_grace": "0.2"})
    with caplog.at_level(logging.WARNING, logger="curcor"):
        curcor.run(main(), config=config)
    messages = [r.getMessage() for r in caplog.records]
    assert len(rounds) > 1  # it did swallow, many times
    assert any("abandoning 1 task(s): swallower" in m for m in messages)
    assert any("re-raise it" in m for m in messages)  # sysmon's hint


def test_joining_a_failed_task_again_and_again_does_not_grow_its_traceback():
    # A bare `raise exc` of the stored error appends each raise's frames to
    # the same traceback: a loop that catches and joins again grew it
    # without end (15 GB in a minute).
    import traceback

    async def boom():
        raise ZeroDivisionError("once")

    async def main():
        task = curcor.go(boom())
        lengths = []
        for _ in range(1000):
            try:
                await task.join()
            except ZeroDivisionError as exc:
                lengths.append(len(traceback.extract_tb(exc.__traceback__)))
            try:
                task.result()
            except ZeroDivisionError as exc:
                lengths.append(len(traceback.extract_tb(exc.__traceback__)))
        return lengths

    lengths = curcor.run(main())
    assert len(lengths) == 2000
    assert max(lengths) == lengths[0] <= 5


def test_a_task_that_joins_a_cancelled_task_in_a_loop_is_abandoned_too():
    # The joined task's Cancelled is raised at once by every join; after the
    # grace period the join must wait instead, or run() never returns.
    async def forever():
        await curcor.sleep(3600)

    async def stubborn():
        other = curcor.go(forever())
        while True:
            try:
                await other.join()
            except curcor.Cancelled:
                pass

    async def main():
        curcor.go(stubborn(), name="stubborn")
        await curcor.sleep(0)

    config = load_config(env={}, flags={"maxprocs": "1", "shutdown_grace": "0.2"})
    curcor.run(main(), config=config)

"""The pytest plugin: async tests and fixtures on curcor, the fake clock, the
``curcor`` marker and ``wait_all_tasks_blocked``."""

from __future__ import annotations

import time

import pytest

import curcor
from curcor.testing import wait_all_tasks_blocked

# -- async fixtures -------------------------------------------------------------

EVENTS: list[str] = []


@pytest.fixture
def event_log():
    """Checks, after the async fixtures were torn down, the order of it all."""
    EVENTS.clear()
    yield EVENTS
    assert EVENTS == [
        "outer setup",
        "inner setup",
        "plain setup",
        "test",
        "inner teardown",
        "outer teardown",
    ]


@pytest.fixture
async def outer(event_log):
    await curcor.sleep(1)
    event_log.append("outer setup")
    yield "outer"
    await curcor.sleep(1)
    event_log.append("outer teardown")


@pytest.fixture
async def inner(outer, event_log):
    assert outer == "outer"
    event_log.append("inner setup")
    yield f"inner of {outer}"
    event_log.append("inner teardown")


@pytest.fixture
async def plain(inner, event_log):
    event_log.append("plain setup")
    return "plain"


async def test_async_fixtures_set_up_in_order_and_tear_down_in_reverse(
    event_log, inner, plain
):
    assert inner == "inner of outer"
    assert plain == "plain"
    event_log.append("test")


@pytest.fixture
async def channel_fixture():
    ch = curcor.Channel(1)
    yield ch
    # Teardown runs on the same runtime, after the test.
    assert ch.try_recv() == ("from the test", True)


async def test_async_fixture_values_live_on_the_tests_runtime(channel_fixture):
    await channel_fixture.send("from the test")


# -- the clock and the marker ------------------------------------------------


async def test_a_test_sleeping_1000_seconds_finishes_at_once():
    real = time.monotonic()
    t0 = curcor.now()
    await curcor.sleep(1000)
    assert curcor.now() - t0 == 1000
    assert time.monotonic() - real < 30  # far below the 60 s test timeout


async def test_a_timeout_in_a_test_costs_no_real_time():
    with pytest.raises(TimeoutError):
        with curcor.timeout(500):
            await curcor.Event().wait()
    assert curcor.now() == 500


@pytest.mark.curcor(clock="real")
async def test_the_real_clock_marker_uses_the_monotonic_clock():
    assert abs(curcor.now() - time.monotonic()) < 5


@pytest.mark.curcor(maxprocs=2)
async def test_the_maxprocs_marker_sets_the_worker_count():
    s = curcor.stats()
    assert s.maxprocs == 2
    assert len(s.workers) == 2


async def test_the_default_is_a_fake_clock_starting_at_zero_and_one_runtime_each():
    assert curcor.now() == 0


@pytest.mark.curcor(seed=7, maxprocs=2)
async def test_the_seed_marker_still_runs_everything():
    ch = curcor.Channel()
    results = []

    async def worker(i):
        await ch.send(i)

    for i in range(20):
        curcor.go(worker(i))
    for _ in range(20):
        results.append(await ch.recv())
    assert sorted(results) == list(range(20))


# -- wait_all_tasks_blocked ----------------------------------------------------


async def test_wait_all_tasks_blocked_returns_when_everyone_is_stuck():
    ch = curcor.Channel()
    progress = []

    async def chain(i):
        for step in range(i):
            await curcor.sleep(0)
            progress.append((i, step))
        await ch.recv()

    for i in range(5):
        curcor.go(chain(i))
    await wait_all_tasks_blocked()
    assert len(progress) == sum(range(5))


async def test_wait_all_tasks_blocked_runs_before_the_fake_clock_jumps():
    woke = []

    async def sleeper():
        await curcor.sleep(10)
        woke.append(curcor.now())

    curcor.go(sleeper())
    await wait_all_tasks_blocked()
    assert woke == []
    assert curcor.now() == 0
    await curcor.sleep(11)
    assert woke == [10]


async def test_wait_all_tasks_blocked_can_be_cancelled():
    async def spinner():
        for _ in range(1000):
            await curcor.sleep(0)

    spin = curcor.go(spinner())  # keeps one task runnable: never all blocked
    waiter = curcor.go(wait_all_tasks_blocked())
    await curcor.sleep(0)
    assert not waiter.done()
    assert waiter.cancel() is True
    with pytest.raises(curcor.Cancelled):
        await waiter.join()
    assert not spin.done()
    spin.cancel()


# -- the plugin from outside: pytester ---------------------------------------


def test_a_failing_async_test_is_reported_as_a_failure(pytester):
    pytester.makepyfile(
        """
        import curcor

        async def test_fails():
            await curcor.sleep(1)
            assert 1 == 2

        async def test_passes():
            await curcor.sleep(1)
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)


def test_an_async_fixture_with_a_wider_scope_is_a_usage_error(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture(scope="module")
        async def wide():
            return 1

        async def test_it(wide):
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*function-scoped*"])
    assert result.ret != 0


def test_a_sync_test_using_an_async_fixture_is_a_usage_error(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        async def afix():
            return 1

        def test_it(afix):
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*async def*"])
    assert result.ret != 0


def test_the_seed_option_is_accepted_on_the_command_line(pytester):
    pytester.makepyfile(
        """
        import curcor

        async def test_it():
            await curcor.sleep(0)
        """
    )
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--curcor-seed", "3"
    )
    result.assert_outcomes(passed=1)


def test_a_deadlocked_async_test_fails_with_a_deadlock_error(pytester):
    pytester.makepyfile(
        """
        import curcor

        async def test_stuck():
            await curcor.Channel().recv()
        """
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-o",
        "timeout=3",
        "-o",
        "timeout_method=thread",
        timeout=30,
    )
    result.stdout.fnmatch_lines(["*DeadlockError*"])

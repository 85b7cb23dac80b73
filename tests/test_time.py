"""Time on the runtime's clock: sleep, now, after, Timer and Ticker, all driven
by the fake clock so no test waits in real time."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import curcor
from curcor.testing import FakeClock, wait_all_tasks_blocked


async def test_now_advances_exactly_by_the_slept_amount():
    t0 = curcor.now()
    await curcor.sleep(2.5)
    assert curcor.now() - t0 == 2.5
    await curcor.sleep(1000)
    assert curcor.now() - t0 == 1002.5


async def test_sleep_zero_and_negative_do_not_advance_the_clock():
    t0 = curcor.now()
    await curcor.sleep(0)
    await curcor.sleep(-5)
    assert curcor.now() == t0


async def test_sleepers_wake_in_deadline_order():
    woke = []

    async def sleeper(d):
        await curcor.sleep(d)
        woke.append((d, curcor.now()))

    async with curcor.TaskGroup() as tg:
        for d in (5, 1, 4, 2, 3, 0.5):
            tg.go(sleeper(d))
    assert [d for d, _ in woke] == [0.5, 1, 2, 3, 4, 5]
    assert all(now == d for d, now in woke)


async def test_sleep_rejects_non_numbers():
    with pytest.raises(TypeError):
        await curcor.sleep("1")
    with pytest.raises(ValueError):
        await curcor.sleep(float("nan"))


async def test_a_sleep_for_ever_ends_only_by_cancellation():
    with curcor.move_on_after(1e9) as scope:
        await curcor.sleep(float("inf"))
    assert scope.cancelled_caught


async def test_fake_clock_stands_still_while_a_task_is_runnable():
    t0 = curcor.now()

    async def sleeper():
        await curcor.sleep(10)
        return curcor.now()

    t = curcor.go(sleeper())
    for _ in range(100):
        await curcor.sleep(0)  # busy: never "all blocked"
    assert curcor.now() == t0
    assert await t.join() == t0 + 10


# -- after and Timer ----------------------------------------------------------


async def test_after_receives_the_time_once_after_the_delay():
    t0 = curcor.now()
    ch = curcor.after(3)
    assert await ch.recv() == t0 + 3
    assert curcor.now() == t0 + 3
    with pytest.raises(curcor.WouldBlock):
        ch.try_recv()


async def test_timer_fires_once_at_its_deadline():
    t0 = curcor.now()
    timer = curcor.Timer(2)
    assert await timer.c.recv() == t0 + 2
    # Firing again does not happen.
    with curcor.move_on_after(100) as scope:
        await timer.c.recv()
    assert scope.cancelled_caught


async def test_timer_stop_prevents_firing_and_reports_pending():
    timer = curcor.Timer(2)
    assert timer.stop() is True
    assert timer.stop() is False
    with curcor.move_on_after(10) as scope:
        await timer.c.recv()
    assert scope.cancelled_caught


async def test_timer_stop_after_firing_returns_false():
    timer = curcor.Timer(1)
    await timer.c.recv()
    assert timer.stop() is False


async def test_timer_reset_moves_the_deadline():
    t0 = curcor.now()
    timer = curcor.Timer(2)
    await curcor.sleep(1)
    assert timer.reset(5) is True  # still pending when reset
    assert await timer.c.recv() == t0 + 6
    assert timer.reset(1) is False  # had fired
    assert await timer.c.recv() == t0 + 7


# -- Ticker -------------------------------------------------------------------


async def test_ticker_ticks_every_period():
    t0 = curcor.now()
    ticker = curcor.Ticker(2)
    ticks = [await ticker.c.recv() for _ in range(4)]
    ticker.stop()
    assert ticks == [t0 + 2, t0 + 4, t0 + 6, t0 + 8]


async def test_ticker_drops_ticks_a_slow_reader_misses():
    t0 = curcor.now()
    ticker = curcor.Ticker(1)
    await curcor.sleep(5.5)
    # One tick waits in the channel; the others were dropped, not queued.
    assert len(ticker.c) == 1
    assert await ticker.c.recv() == t0 + 1
    assert await ticker.c.recv() == t0 + 6  # back on the grid
    ticker.stop()


async def test_ticker_stop_ends_ticking_and_async_for():
    ticker = curcor.Ticker(1)
    seen = []
    async for when in ticker:
        seen.append(when)
        if len(seen) == 3:
            ticker.stop()
    assert len(seen) == 3
    with curcor.move_on_after(10) as scope:
        await ticker.c.recv()
    assert scope.cancelled_caught


async def test_ticker_rejects_a_non_positive_period():
    with pytest.raises(ValueError):
        curcor.Ticker(0)


async def test_time_helpers_under_select_pick_the_earliest():
    t0 = curcor.now()
    i, (when, ok) = await curcor.select(
        curcor.recv(curcor.after(5)), curcor.recv(curcor.Timer(2).c)
    )
    assert (i, when, ok) == (1, t0 + 2, True)


# -- creating an awaitable in one task and awaiting it in another ---------------

_SLEEP_IN_OTHER_TASK = textwrap.dedent(
    """
    import curcor
    from curcor.config import load_config
    from curcor.testing import FakeClock

    async def main():
        t = curcor.go(curcor.sleep(1))
        await t.join()
        return "ok"

    config = load_config(env={}, flags={"maxprocs": "1"})
    print(curcor.run(main(), config=config, clock=FakeClock()))
    """
)


def test_go_of_a_sleep_coroutine_sleeps_in_the_new_task():
    # A subprocess: the bug this guards against (fixed in 9cc51c8) hung every
    # worker on the timer lock for ever.
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _SLEEP_IN_OTHER_TASK],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("hung: go(curcor.sleep(1)) never finished")
    assert proc.stdout.strip() == "ok", proc.stderr


async def test_sleep_awaited_in_the_task_that_created_it_is_fine():
    pending = curcor.sleep(1)
    await wait_all_tasks_blocked()
    await pending
    assert curcor.now() == 1


def test_fake_clock_can_be_advanced_by_hand():
    clock = FakeClock(100)
    assert clock.now() == 100
    clock.advance(5)
    assert clock.now() == 105
    clock.jump_to(50)  # never backwards
    assert clock.now() == 105

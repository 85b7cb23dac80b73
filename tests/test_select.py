"""select: ready cases, waiting cases, timers, disabled cases, the default,
fairness among ready cases, and withdrawal on cancellation without losing or
duplicating a value."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import curcor
from curcor.config import load_config
from curcor.testing import FakeClock, wait_all_tasks_blocked

HYPO = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def run(coro, *, maxprocs: int = 1, seed: int | None = None):
    """Run ``coro`` on a fresh runtime with a fake clock and no outside config."""
    config = load_config(env={}, flags={"maxprocs": str(maxprocs)})
    return curcor.run(coro, config=config, clock=FakeClock(), seed=seed)


async def test_select_receives_from_the_ready_case():
    a, b = curcor.Channel(1), curcor.Channel(1)
    await b.send("B")
    assert await curcor.select(curcor.recv(a), curcor.recv(b)) == (1, ("B", True))
    assert len(b) == 0


async def test_select_send_case_fills_a_buffer_and_returns_none():
    a, b = curcor.Channel(0), curcor.Channel(1)
    assert await curcor.select(curcor.send(a, 1), curcor.send(b, 2)) == (1, None)
    assert b.try_recv() == (2, True)
    with pytest.raises(curcor.WouldBlock):
        a.try_recv()


async def test_select_waits_until_a_case_becomes_ready():
    a, b = curcor.Channel(), curcor.Channel()
    task = curcor.go(curcor.select(curcor.recv(a), curcor.recv(b)))
    await wait_all_tasks_blocked()
    assert not task.done()
    await b.send("late")
    assert await task.join() == (1, ("late", True))
    # The select withdrew from ``a``: a send there finds no receiver.
    assert a.try_send("x") is False


async def test_select_send_case_completes_when_a_receiver_arrives():
    ch = curcor.Channel()
    task = curcor.go(curcor.select(curcor.send(ch, "v")))
    await wait_all_tasks_blocked()
    assert await ch.recv() == "v"
    assert await task.join() == (0, None)


async def test_select_recv_on_closed_channel_gives_none_false():
    ch = curcor.Channel()
    ch.close()
    assert await curcor.select(curcor.recv(ch)) == (0, (None, False))


async def test_select_recv_wakes_with_none_false_when_the_channel_closes():
    ch = curcor.Channel()
    task = curcor.go(curcor.select(curcor.recv(ch)))
    await wait_all_tasks_blocked()
    ch.close()
    assert await task.join() == (0, (None, False))


async def test_select_send_on_closed_channel_raises_channel_closed():
    ch = curcor.Channel(1)
    ch.close()
    with pytest.raises(curcor.ChannelClosed):
        await curcor.select(curcor.send(ch, 1))


async def test_waiting_select_send_raises_channel_closed_when_closed():
    ch = curcor.Channel()
    other = curcor.Channel()

    async def selecting():
        try:
            return await curcor.select(curcor.send(ch, 1), curcor.recv(other))
        except curcor.ChannelClosed:
            return "closed"

    task = curcor.go(selecting())
    await wait_all_tasks_blocked()
    ch.close()
    assert await task.join() == "closed"
    # The select withdrew from ``other`` too.
    assert other.try_send("x") is False


async def test_select_after_case_fires_at_its_deadline():
    ch = curcor.Channel()
    start = curcor.now()
    i, (when, ok) = await curcor.select(curcor.recv(ch), curcor.recv(curcor.after(5)))
    assert (i, ok) == (1, True)
    assert curcor.now() - start == pytest.approx(5)
    assert when == pytest.approx(start + 5)


async def test_select_prefers_a_ready_channel_over_a_pending_timer():
    ch = curcor.Channel(1)
    await ch.send("now")
    start = curcor.now()
    assert await curcor.select(curcor.recv(curcor.after(1)), curcor.recv(ch)) == (
        1,
        ("now", True),
    )
    assert curcor.now() == start


async def test_none_cases_are_disabled_and_never_chosen():
    ch = curcor.Channel(1)
    await ch.send(1)
    for _ in range(50):
        i, _v = await curcor.select(None, curcor.recv(ch), None, default=True)
        assert i in (1, -1)
        if i == 1:
            await ch.send(1)


async def test_select_with_only_none_cases_and_default_returns_minus_one():
    assert await curcor.select(None, None, default=True) == (-1, None)


async def test_default_returns_minus_one_none_when_nothing_is_ready():
    a = curcor.Channel()
    b = curcor.Channel(1)
    await b.send("full")
    assert await curcor.select(curcor.recv(a), curcor.send(b, 2), default=True) == (
        -1,
        None,
    )
    # Nothing was left registered: the channels are as they were.
    assert a.try_send(1) is False
    assert b.try_recv() == ("full", True)


async def test_default_is_not_taken_when_a_case_is_ready():
    ch = curcor.Channel(1)
    await ch.send(3)
    assert await curcor.select(curcor.recv(ch), default=True) == (0, (3, True))


async def test_select_picks_ready_cases_uniformly():
    a, b = curcor.Channel(1), curcor.Channel(1)
    counts = [0, 0]
    rounds = 2000
    for _ in range(rounds):
        a.try_send(1)
        b.try_send(1)
        i, _v = await curcor.select(curcor.recv(a), curcor.recv(b))
        counts[i] += 1
    # Binomial(2000, 0.5): sd ~ 22; 40-60% is a 9-sigma bound.
    assert 0.4 * rounds < counts[0] < 0.6 * rounds, counts


async def test_select_picks_uniformly_among_three_mixed_ready_cases():
    a, b, c = curcor.Channel(1), curcor.Channel(1), curcor.Channel(1)
    c.close()
    counts = [0, 0, 0]
    rounds = 3000
    for _ in range(rounds):
        a.try_send(1)
        # b: a send case with room; c: a closed channel is always ready.
        i, _v = await curcor.select(curcor.recv(a), curcor.send(b, 1), curcor.recv(c))
        counts[i] += 1
        if i == 1:
            b.try_recv()
    for n in counts:
        assert 0.25 * rounds < n < 0.42 * rounds, counts


async def test_select_with_no_cases_blocks_until_cancelled():
    with curcor.move_on_after(100) as scope:
        await curcor.select()
    assert scope.cancelled_caught
    with curcor.move_on_after(3) as scope:
        await curcor.select(None, None)
    assert scope.cancelled_caught


async def test_select_with_no_cases_ends_when_its_task_is_cancelled():
    task = curcor.go(curcor.select())
    await wait_all_tasks_blocked()
    assert not task.done()
    assert task.cancel() is True
    with pytest.raises(curcor.Cancelled):
        await task.join()


async def test_cancelled_select_withdraws_and_a_later_receiver_gets_the_value():
    a, b = curcor.Channel(), curcor.Channel()
    with curcor.move_on_after(1) as scope:
        await curcor.select(curcor.recv(a), curcor.recv(b))
    assert scope.cancelled_caught

    # A later sender's value goes to a later receiver, not the stale select.
    sender = curcor.go(a.send("value"))
    await wait_all_tasks_blocked()
    assert not sender.done()
    assert await a.recv() == "value"
    await sender.join()
    assert b.try_send("x") is False


async def test_cancelled_select_send_loses_nothing_and_delivers_nothing():
    ch = curcor.Channel()
    with curcor.move_on_after(1) as scope:
        await curcor.select(curcor.send(ch, "ghost"))
    assert scope.cancelled_caught
    receiver = curcor.go(ch.recv())
    await wait_all_tasks_blocked()
    assert not receiver.done()
    await ch.send("real")
    assert await receiver.join() == "real"


async def test_task_cancel_of_a_waiting_select_withdraws_from_every_channel():
    chans = [curcor.Channel() for _ in range(3)]
    task = curcor.go(curcor.select(*[curcor.recv(c) for c in chans]))
    await wait_all_tasks_blocked()
    task.cancel()
    with pytest.raises(curcor.Cancelled):
        await task.join()
    for c in chans:
        assert c.try_send(1) is False


async def test_select_case_must_be_a_case():
    ch = curcor.Channel()
    with pytest.raises(TypeError):
        await curcor.select(ch)
    with pytest.raises(TypeError):
        curcor.recv("not a channel")


async def test_select_on_the_same_channel_twice_works():
    ch = curcor.Channel(1)
    await ch.send(9)
    i, v = await curcor.select(curcor.recv(ch), curcor.recv(ch))
    assert i in (0, 1) and v == (9, True)


async def test_select_send_and_recv_on_one_channel_pair_up_with_another_select():
    ch = curcor.Channel()
    first = curcor.go(curcor.select(curcor.send(ch, "a"), curcor.recv(ch)))
    await wait_all_tasks_blocked()
    second = await curcor.select(curcor.send(ch, "b"), curcor.recv(ch))
    one = await first.join()
    # One sent and the other received, never both sending or both receiving.
    assert {one[0], second[0]} == {0, 1}
    received = one if one[0] == 1 else second
    assert received[1] in (("a", True), ("b", True))


# -- hypothesis -----------------------------------------------------------------


@HYPO
@given(
    caps=st.lists(st.integers(0, 2), min_size=1, max_size=3),
    producers=st.integers(1, 3),
    consumers=st.integers(1, 3),
    per_producer=st.integers(0, 15),
    cancel_every=st.integers(2, 7),
    seed=st.integers(0, 2**16),
)
def test_select_never_loses_or_duplicates_values(
    caps, producers, consumers, per_producer, cancel_every, seed
):
    """Producers and consumers both select over several channels; some of
    their selects are cancelled mid-wait and retried."""

    async def main():
        chans = [curcor.Channel(c) for c in caps]
        received: list[tuple[int, int]] = []

        async def produce(p):
            n = 0
            for i in range(per_producer):
                while True:
                    n += 1
                    cases = [curcor.send(ch, (p, i)) for ch in chans]
                    if n % cancel_every == 0:
                        with curcor.move_on_after(0.5):
                            await curcor.select(*cases)
                            break
                    else:
                        await curcor.select(*cases)
                        break

        async def consume(c):
            open_ = list(chans)
            n = c
            while any(ch is not None for ch in open_):
                n += 1
                cases = [curcor.recv(ch) if ch is not None else None for ch in open_]
                if n % cancel_every == 0:
                    with curcor.move_on_after(0.25):
                        i, (v, ok) = await curcor.select(*cases)
                        if ok:
                            received.append(v)
                        else:
                            open_[i] = None
                    continue
                i, (v, ok) = await curcor.select(*cases)
                if ok:
                    received.append(v)
                else:
                    open_[i] = None

        async with curcor.TaskGroup() as readers:
            for c in range(consumers):
                readers.go(consume(c))
            async with curcor.TaskGroup() as writers:
                for p in range(producers):
                    writers.go(produce(p))
            for ch in chans:
                ch.close()
        return received

    received = run(main(), maxprocs=2, seed=seed)
    expected = [(p, i) for p in range(producers) for i in range(per_producer)]
    assert sorted(received) == expected


@HYPO
@given(
    values=st.lists(st.integers(), max_size=20),
    seed=st.integers(0, 2**16),
)
def test_select_with_default_polling_receives_every_value_once(values, seed):
    async def main():
        ch = curcor.Channel(1)
        got = []

        async def produce():
            for v in values:
                await ch.send(v)
            ch.close()

        curcor.go(produce())
        while True:
            i, res = await curcor.select(curcor.recv(ch), default=True)
            if i == -1:
                await curcor.sleep(0)
                continue
            v, ok = res
            if not ok:
                return got
            got.append(v)

    assert run(main(), maxprocs=2, seed=seed) == values

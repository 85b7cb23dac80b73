"""Channels: Go semantics for rendezvous, buffering, closing, the non-blocking
calls and misuse, checked by example and against a model (hypothesis)."""

from __future__ import annotations

import threading
from collections import deque

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import curcor
from curcor.config import load_config
from curcor.testing import FakeClock, wait_all_tasks_blocked

HYPO = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def run(coro, *, maxprocs: int = 1, seed: int | None = None):
    """Run ``coro`` on a fresh runtime with a fake clock and no outside config."""
    config = load_config(env={}, flags={"maxprocs": str(maxprocs)})
    return curcor.run(coro, config=config, clock=FakeClock(), seed=seed)


# -- unbuffered -----------------------------------------------------------------


async def test_unbuffered_send_waits_for_a_receiver():
    ch = curcor.Channel()
    sent = []

    async def sender():
        await ch.send("x")
        sent.append(True)

    task = curcor.go(sender())
    await wait_all_tasks_blocked()
    assert sent == []
    assert len(ch) == 0
    assert await ch.recv() == "x"
    await task.join()
    assert sent == [True]


async def test_unbuffered_recv_waits_for_a_sender():
    ch = curcor.Channel()
    got = []

    async def receiver():
        got.append(await ch.recv())

    task = curcor.go(receiver())
    await wait_all_tasks_blocked()
    assert got == []
    await ch.send(7)
    await task.join()
    assert got == [7]


async def test_unbuffered_try_send_fails_without_a_waiting_receiver():
    ch = curcor.Channel()
    assert ch.try_send(1) is False
    assert len(ch) == 0
    with pytest.raises(curcor.WouldBlock):
        ch.try_recv()


async def test_unbuffered_try_send_hands_over_to_a_waiting_receiver():
    ch = curcor.Channel()
    task = curcor.go(ch.recv())
    await wait_all_tasks_blocked()
    assert ch.try_send("v") is True
    assert await task.join() == "v"


async def test_unbuffered_try_recv_takes_from_a_waiting_sender():
    ch = curcor.Channel()
    task = curcor.go(ch.send("v"))
    await wait_all_tasks_blocked()
    assert ch.try_recv() == ("v", True)
    assert await task.join() is None


# -- buffered -------------------------------------------------------------------


async def test_buffered_channel_keeps_fifo_order():
    ch = curcor.Channel(5)
    for i in range(5):
        await ch.send(i)
    assert [await ch.recv() for _ in range(5)] == [0, 1, 2, 3, 4]


async def test_len_and_cap_report_buffered_values_and_capacity():
    ch = curcor.Channel(3)
    assert (len(ch), ch.cap) == (0, 3)
    await ch.send("a")
    await ch.send("b")
    assert (len(ch), ch.cap) == (2, 3)
    await ch.recv()
    assert len(ch) == 1
    assert curcor.Channel().cap == 0


async def test_buffered_send_blocks_only_when_full():
    ch = curcor.Channel(2)
    progress = []

    async def sender():
        for i in range(3):
            await ch.send(i)
            progress.append(i)

    task = curcor.go(sender())
    await wait_all_tasks_blocked()
    assert progress == [0, 1]
    assert len(ch) == 2
    assert await ch.recv() == 0
    await task.join()
    assert progress == [0, 1, 2]
    assert [await ch.recv(), await ch.recv()] == [1, 2]


async def test_recv_from_full_buffer_refills_from_waiting_senders_in_order():
    ch = curcor.Channel(1)
    await ch.send(0)
    tasks = []
    for i in (1, 2, 3):
        tasks.append(curcor.go(ch.send(i)))
        await wait_all_tasks_blocked()
    assert [await ch.recv() for _ in range(4)] == [0, 1, 2, 3]
    for t in tasks:
        await t.join()


async def test_blocked_receivers_are_served_in_arrival_order():
    ch = curcor.Channel()
    got = []

    async def receiver(i):
        got.append((i, await ch.recv()))

    tasks = []
    for i in range(4):
        tasks.append(curcor.go(receiver(i)))
        await wait_all_tasks_blocked()
    for v in "abcd":
        await ch.send(v)
    for t in tasks:
        await t.join()
    # Who got what (the order they then ran in is the scheduler's business).
    assert sorted(got) == [(0, "a"), (1, "b"), (2, "c"), (3, "d")]


async def test_try_send_on_full_buffer_returns_false_and_keeps_contents():
    ch = curcor.Channel(1)
    assert ch.try_send(1) is True
    assert ch.try_send(2) is False
    assert ch.try_recv() == (1, True)
    with pytest.raises(curcor.WouldBlock):
        ch.try_recv()


# -- closing --------------------------------------------------------------------


async def test_recv_drains_the_buffer_after_close_then_raises_channel_closed():
    ch = curcor.Channel(3)
    await ch.send(1)
    await ch.send(2)
    ch.close()
    assert ch.closed
    assert await ch.recv() == 1
    assert await ch.recv() == 2
    with pytest.raises(curcor.ChannelClosed):
        await ch.recv()
    with pytest.raises(curcor.ChannelClosed):
        await ch.recv()


async def test_recv_ok_reports_values_then_none_false_after_close():
    ch = curcor.Channel(1)
    await ch.send(None)
    ch.close()
    assert await ch.recv_ok() == (None, True)
    assert await ch.recv_ok() == (None, False)
    assert await ch.recv_ok() == (None, False)


async def test_try_recv_after_close_and_drain_returns_none_false():
    ch = curcor.Channel(1)
    ch.try_send("x")
    ch.close()
    assert ch.try_recv() == ("x", True)
    assert ch.try_recv() == (None, False)


async def test_send_on_closed_channel_raises_channel_closed():
    for cap in (0, 2):
        ch = curcor.Channel(cap)
        ch.close()
        with pytest.raises(curcor.ChannelClosed):
            await ch.send(1)
        with pytest.raises(curcor.ChannelClosed):
            ch.try_send(1)
        assert len(ch) == 0


async def test_second_close_raises_channel_closed():
    ch = curcor.Channel()
    ch.close()
    with pytest.raises(curcor.ChannelClosed):
        ch.close()


async def test_close_wakes_waiting_senders_with_channel_closed():
    ch = curcor.Channel(1)
    await ch.send("kept")
    outcomes = []

    async def sender(i):
        try:
            await ch.send(i)
            outcomes.append(("sent", i))
        except curcor.ChannelClosed:
            outcomes.append(("closed", i))

    tasks = [curcor.go(sender(i)) for i in range(3)]
    await wait_all_tasks_blocked()
    ch.close()
    for t in tasks:
        await t.join()
    assert sorted(outcomes) == [("closed", 0), ("closed", 1), ("closed", 2)]
    # The value buffered before the close is still delivered.
    assert await ch.recv_ok() == ("kept", True)
    assert await ch.recv_ok() == (None, False)


async def test_close_wakes_every_waiting_receiver():
    ch = curcor.Channel()
    results = []

    async def plain():
        try:
            await ch.recv()
        except curcor.ChannelClosed:
            results.append("closed")

    async def ok():
        results.append(await ch.recv_ok())

    tasks = [curcor.go(plain()), curcor.go(ok()), curcor.go(plain())]
    await wait_all_tasks_blocked()
    ch.close()
    for t in tasks:
        await t.join()
    assert sorted(map(str, results)) == ["(None, False)", "closed", "closed"]


async def test_async_for_reads_until_close_and_drains_the_buffer():
    ch = curcor.Channel(2)

    async def producer():
        for i in range(10):
            await ch.send(i)
        ch.close()

    curcor.go(producer())
    got = [v async for v in ch]
    assert got == list(range(10))


async def test_async_for_over_a_closed_empty_channel_ends_at_once():
    ch = curcor.Channel()
    ch.close()
    assert [v async for v in ch] == []


# -- construction and misuse ----------------------------------------------------


@pytest.mark.parametrize("bad", [-1, -100])
def test_negative_capacity_is_a_value_error(bad):
    with pytest.raises(ValueError, match="capacity"):
        curcor.Channel(bad)


@pytest.mark.parametrize("bad", ["x", 1.5, None, True])
def test_non_integer_capacity_is_rejected(bad):
    with pytest.raises((TypeError, ValueError), match="capacity"):
        curcor.Channel(bad)


async def test_channel_calls_from_a_plain_thread_are_misuse_naming_from_thread():
    ch = curcor.Channel(1)
    errors = []

    def in_thread():
        for call in (lambda: ch.try_send(1), ch.try_recv, ch.close):
            try:
                call()
            except curcor.RuntimeMisuse as exc:
                errors.append(str(exc))
        # The awaitables check too, on their first step.
        for coro in (ch.send(1), ch.recv(), ch.recv_ok()):
            try:
                coro.send(None)
            except curcor.RuntimeMisuse as exc:
                errors.append(str(exc))
            finally:
                coro.close()

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    assert len(errors) == 6, errors
    for message in errors[:3]:
        assert "from_thread" in message
    # The channel was left untouched.
    assert len(ch) == 0 and not ch.closed


def test_channel_awaited_outside_any_runtime_is_misuse():
    ch = curcor.Channel(1)
    coro = ch.recv()
    with pytest.raises(curcor.RuntimeMisuse):
        coro.send(None)
    coro.close()


async def test_from_thread_reaches_a_channel_as_the_misuse_message_suggests():
    ch = curcor.Channel()

    def in_thread():
        curcor.from_thread(ch.send, "hello")
        curcor.from_thread(ch.send, "world")

    t = threading.Thread(target=in_thread)
    t.start()
    assert [await ch.recv(), await ch.recv()] == ["hello", "world"]
    await curcor.to_thread(t.join)


# -- models (hypothesis) --------------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(0, 1000)),
        st.just(("recv",)),
        st.just(("recv_ok",)),
        st.just(("close",)),
        st.just(("len",)),
    ),
    max_size=40,
)


@HYPO
@given(cap=st.integers(0, 4), ops=OPS)
def test_non_blocking_ops_match_a_deque_model(cap, ops):
    """try_send/try_recv/close/len on one task behave like a bounded deque."""

    async def main():
        ch = curcor.Channel(cap)
        model: deque[int] = deque()
        closed = False
        for op in ops:
            if op[0] == "send":
                if closed:
                    with pytest.raises(curcor.ChannelClosed):
                        ch.try_send(op[1])
                elif len(model) < cap:
                    assert ch.try_send(op[1]) is True
                    model.append(op[1])
                else:
                    assert ch.try_send(op[1]) is False
            elif op[0] == "recv":
                if model:
                    assert ch.try_recv() == (model.popleft(), True)
                elif closed:
                    assert ch.try_recv() == (None, False)
                else:
                    with pytest.raises(curcor.WouldBlock):
                        ch.try_recv()
            elif op[0] == "recv_ok":
                # Only when it cannot block: a value or a closed channel.
                if model:
                    assert await ch.recv_ok() == (model.popleft(), True)
                elif closed:
                    assert await ch.recv_ok() == (None, False)
            elif op[0] == "close":
                if closed:
                    with pytest.raises(curcor.ChannelClosed):
                        ch.close()
                else:
                    ch.close()
                    closed = True
            assert len(ch) == len(model)
            assert ch.closed == closed

    run(main())


@HYPO
@given(
    cap=st.integers(0, 3),
    producers=st.integers(1, 4),
    consumers=st.integers(1, 4),
    per_producer=st.integers(0, 30),
    seed=st.integers(0, 2**16),
)
def test_many_producers_and_consumers_deliver_every_value_exactly_once(
    cap, producers, consumers, per_producer, seed
):
    async def main():
        ch = curcor.Channel(cap)
        received: list[tuple[int, int]] = []

        async def produce(p):
            for i in range(per_producer):
                await ch.send((p, i))

        async def consume():
            async for v in ch:
                received.append(v)

        async with curcor.TaskGroup() as readers:
            for _ in range(consumers):
                readers.go(consume())
            async with curcor.TaskGroup() as writers:
                for p in range(producers):
                    writers.go(produce(p))
            ch.close()
        return received

    received = run(main(), maxprocs=2, seed=seed)
    expected = [(p, i) for p in range(producers) for i in range(per_producer)]
    assert sorted(received) == expected
    # With one consumer, each producer's values arrive in the order sent.
    for p in range(producers if consumers == 1 else 0):
        mine = [i for q, i in received if q == p]
        assert mine == sorted(mine)

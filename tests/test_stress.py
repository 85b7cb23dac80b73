"""Bounded stress tests: many tasks, cancellation racing completion, real
threads calling in, shuffled scheduling on two workers, lock contention.

Each is bounded in count and should take well under ten seconds."""

from __future__ import annotations

import threading

import pytest

import curcor
from curcor.config import load_config
from curcor.testing import FakeClock

pytestmark = pytest.mark.stress


def run(coro, *, maxprocs: int = 2, seed: int | None = None, clock=None):
    config = load_config(env={}, flags={"maxprocs": str(maxprocs)})
    return curcor.run(coro, config=config, clock=clock, seed=seed)


def test_100k_tasks_are_spawned_and_all_finish():
    n = 100_000
    counter = [0]

    async def child():
        counter[0] += 1

    async def main():
        wg = curcor.WaitGroup()
        wg.add(n)

        async def tracked():
            await child()
            wg.done()

        for _ in range(n):
            curcor.go(tracked())
        await wg.wait()
        return curcor.stats()

    during = run(main())
    assert counter[0] == n
    assert during.tasks_spawned >= n + 1
    # Once the run is over, every task spawned has finished.
    final = curcor.stats()
    assert final.tasks_live == 0
    assert final.tasks_finished == final.tasks_spawned >= n + 1


def test_cancel_racing_completion_never_hangs_or_loses_the_outcome():
    rounds = 500

    async def quick(i):
        await curcor.sleep(0)
        return i

    async def main():
        outcomes = {"value": 0, "cancelled": 0}
        for i in range(rounds):
            t = curcor.go(quick(i))
            # Give it a varying head start so cancel lands before, during
            # and after its last step.
            for _ in range(i % 3):
                await curcor.sleep(0)
            requested = t.cancel()
            try:
                assert await t.join() == i
                outcomes["value"] += 1
            except curcor.Cancelled:
                assert requested, "cancelled although cancel() said too late"
                outcomes["cancelled"] += 1
            assert t.done()
        return outcomes

    for seed in (None, 1, 2):
        outcomes = run(main(), seed=seed)
        assert sum(outcomes.values()) == rounds


def test_cancel_racing_completion_across_two_workers():
    rounds = 500

    async def main():
        done = 0
        for i in range(rounds):
            ch = curcor.Channel(1)

            async def worker(ch=ch, i=i):
                await ch.send(i)
                return i

            t = curcor.go(worker())
            got = await ch.recv()
            t.cancel()
            try:
                assert await t.join() == got
            except curcor.Cancelled:
                pass
            done += 1
        return done

    assert run(main(), clock=FakeClock()) == rounds


def test_real_threads_calling_from_thread_concurrently():
    threads_n = 4
    calls = 200

    async def main():
        total = curcor.Channel(threads_n * calls)

        async def record(x):
            await curcor.sleep(0)
            await total.send(x)
            return x * 2

        errors = []

        def caller(k):
            try:
                for j in range(calls):
                    assert curcor.from_thread(record, (k, j)) == (k, j) * 2
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=caller, args=(k,)) for k in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            await curcor.to_thread(t.join)
        assert errors == []
        got = []
        while len(got) < threads_n * calls:
            got.append(await total.recv())
        return got

    got = run(main())
    assert sorted(got) == sorted((k, j) for k in range(threads_n) for j in range(calls))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_two_workers_with_a_seeded_shuffle_keep_every_invariant(seed):
    """A pipeline of channels, a mutex-guarded counter and a group, on two
    workers with shuffled run queues."""

    async def main():
        src, mid = curcor.Channel(4), curcor.Channel()
        mu = curcor.Mutex()
        box = {"sum": 0, "count": 0}

        async def produce():
            for i in range(500):
                await src.send(i)
            src.close()

        async def square():
            async for v in src:
                await mid.send(v * v)

        async def collect():
            async for v in mid:
                async with mu:
                    s = box["sum"]
                    await curcor.sleep(0)
                    box["sum"] = s + v
                    box["count"] += 1

        async with curcor.TaskGroup() as outer:
            for _ in range(3):
                outer.go(collect())
            async with curcor.TaskGroup() as inner:
                inner.go(produce())
                for _ in range(3):
                    inner.go(square())
            mid.close()
        return box

    box = run(main(), seed=seed, clock=FakeClock())
    assert box == {"sum": sum(i * i for i in range(500)), "count": 500}


def test_many_tasks_contending_one_mutex():
    tasks_n = 200
    rounds = 20

    async def main():
        mu = curcor.Mutex()
        holder = [None]
        count = [0]

        async def worker(k):
            for _ in range(rounds):
                async with mu:
                    assert holder[0] is None
                    holder[0] = k
                    await curcor.sleep(0)
                    assert holder[0] == k
                    holder[0] = None
                    count[0] += 1

        async with curcor.TaskGroup() as tg:
            for k in range(tasks_n):
                tg.go(worker(k))
        assert not mu.locked()
        return count[0]

    assert run(main()) == tasks_n * rounds
    assert run(main(), seed=9, clock=FakeClock()) == tasks_n * rounds


def test_many_selects_with_timeouts_on_a_real_clock_lose_nothing():
    async def main():
        ch = curcor.Channel()
        got = []

        async def consumer():
            while True:
                i, v = await curcor.select(
                    curcor.recv(ch), curcor.recv(curcor.after(0))
                )
                if i == 0:
                    if not v[1]:
                        return
                    got.append(v[0])

        async with curcor.TaskGroup() as tg:
            for _ in range(4):
                tg.go(consumer())
            for j in range(2000):
                await ch.send(j)
            ch.close()
        return got

    assert sorted(run(main())) == list(range(2000))


def test_cancel_from_a_plain_thread_racing_completion():
    rounds = 300

    async def quick(i):
        await curcor.sleep(0)
        await curcor.sleep(0)
        return i

    async def main():
        counts = {"value": 0, "cancelled": 0}
        for i in range(rounds):
            t = curcor.go(quick(i))
            canceller = threading.Thread(target=t.cancel)
            canceller.start()
            try:
                assert await t.join() == i
                counts["value"] += 1
            except curcor.Cancelled:
                counts["cancelled"] += 1
            await curcor.to_thread(canceller.join)
        return counts

    counts = run(main())
    assert sum(counts.values()) == rounds

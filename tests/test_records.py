"""Task records: spawning in steady state reuses records from the free list."""

from __future__ import annotations

import curcor
from curcor.config import load_config


def test_spawning_in_steady_state_allocates_no_task_records():
    # Counted by the runtime (a spawn that found no free record), so the
    # claim holds for the pure-Python and the compiled build alike.
    async def child(wg):
        await curcor.sleep(0)
        wg.done()

    async def burst(n):
        wg = curcor.WaitGroup()
        wg.add(n)
        for _ in range(n):
            curcor.go(child(wg))
        await wg.wait()

    async def main():
        await burst(500)  # warm-up: records are made, then returned
        before = curcor.stats()
        for _ in range(20):
            await burst(500)
        after = curcor.stats()
        return (
            after.task_record_misses - before.task_record_misses,
            after.task_record_hits - before.task_record_hits,
        )

    config = load_config(env={}, flags={"maxprocs": "1"})
    assert curcor.run(main(), config=config) == (0, 20 * 500)


def test_a_held_handle_keeps_its_record_so_join_after_completion_works():
    async def value(i):
        return i

    async def main():
        handles = [curcor.go(value(i)) for i in range(100)]
        await curcor.sleep(0)
        await curcor.sleep(0)
        # Spawn more: none may reuse a record whose handle is still held.
        more = [curcor.go(value(-1)) for _ in range(100)]
        for t in more:
            await t.join()
        return [await t.join() for t in handles]

    assert curcor.run(main()) == list(range(100))

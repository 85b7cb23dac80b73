"""One benchmark run in this process; prints one JSON line on stdout.

    python benchmarks/workloads.py --runtime asyncio --workload spawn --n 100000

``benchmarks/run.py`` starts this file once per run, in a fresh interpreter, so
no run inherits another's heap, caches or GC state. The file is laid out by
workload: a comment block saying what the workload does, its default size
and why, then one self-contained function per runtime
(``<runtime>_<workload>``). They share nothing but the measuring shell at the
end. The Go versions of the same workloads are in ``benchmarks/go/main.go``.

Runtimes: ``curcor``, ``asyncio``, ``uvloop`` (the asyncio code on
``uvloop.run``), ``trio``, ``floor`` (``benchmarks/floor.py``: a deque and
``coro.send``, no features, with curcor's governed GC settings) and
``floor-defgc`` (the same with CPython's default GC). ``go`` is accepted for
the startup workload only (``--go-bin``); run.py starts the Go binary itself
for the others.

Measured here, in the child:

- ``wall_s``: ``time.perf_counter()`` around the workload call only, after the
  runtime's imports and a ``gc.collect()``; it includes the runtime's own boot
  and shutdown (``asyncio.run``, ``trio.run``, ``curcor.run``...).
- ``gc_s`` / ``gc_collections``: every collection that happens inside that
  window, timed with ``gc.callbacks`` (the time from each "start" phase to its
  "stop" phase, summed). Collections on any thread are counted.
- ``peak_rss_mb``: the peak resident set of the whole process in MiB
  (interpreter and imports included), ``VmHWM`` of /proc/self/status at the
  end (elsewhere ``ru_maxrss``, which on Linux also counts the parent's peak
  before the exec); ``rss_before_mb`` is the same figure just before the
  timed window.

The startup workloads (``startup``, ``version``) are the exception: they time
fresh processes instead (see their comment block).

Exit status: 0 ok, 1 the workload failed, 3 the runtime cannot be imported
(the harness then skips that runtime's remaining runs).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_FAILED = 1
EXIT_UNAVAILABLE = 3

# Workload parameters other than n (n is the command-line size). Each is
# explained in its workload's comment block below.
FANIN_MSGS = 10  # values each producer sends
FANIN_CAP = 100  # the shared channel's capacity
TREE_FANOUT = 6  # children per inner node
MUTEX_TASKS = 100  # tasks contending for one lock
SELECT_CHANNELS = 4  # channels the consumer selects over
TIMERS_MAX_S = 0.5  # deadlines are uniform in [0, TIMERS_MAX_S)
TIMERS_SEED = 1  # the same deadlines for every runtime

# Default sizes (the full run); run.py's --quick uses smaller ones.
DEFAULT_N = {
    "spawn": 100_000,
    "pingpong": 200_000,
    "fanin": 10_000,
    "tree": 6,
    "mutex": 100_000,
    "select": 100_000,
    "timers": 100_000,
    "startup": 10,
    "version": 10,
}
WORKLOADS = tuple(DEFAULT_N)
PROCESS_WORKLOADS = ("startup", "version")  # timed as whole processes


def expected(workload: str, n: int) -> int | None:
    """The value a correct run returns, or None when nothing is checked."""
    if workload in ("pingpong", "timers"):
        return n
    if workload == "mutex":
        return n // MUTEX_TASKS * MUTEX_TASKS
    if workload == "fanin":
        return n * sum(range(FANIN_MSGS))
    if workload == "tree":
        return TREE_FANOUT**n  # leaves
    if workload == "select":
        return n * (n - 1) // 2  # values 0..n-1 spread over the channels
    return None


def _import_curcor() -> Any:
    try:
        import curcor
    except ModuleNotFoundError as exc:
        if exc.name != "curcor":
            raise
        # Not installed in this interpreter: use the checkout's src/ layout.
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
        import curcor
    if os.environ.get("EXPECT_COMPILED") == "1":
        from curcor._core import scheduler

        if str(scheduler.__file__).endswith(".py"):
            raise ImportError(
                f"the compiled build was expected, but {scheduler.__file__} loaded"
                " (build it with tools/mypyc_build.py and put it on PYTHONPATH)"
            )
    if not hasattr(curcor, "run"):  # e.g. src/curcor without its __init__ yet
        where = list(getattr(curcor, "__path__", [])) or curcor.__file__
        raise ImportError(f"curcor at {where} has no run() (runtime not built)")
    # `import curcor` is lazy (its names load on first use); load the ones the
    # workloads use now, so their import stays out of the timed window, as
    # the other runtimes' imports do.
    names = ("run", "go", "sleep", "Channel", "select", "recv", "Mutex", "WaitGroup")
    for name in names:
        getattr(curcor, name)
    return curcor


class FloorRuntime:
    """``benchmarks/floor.py`` with one GC mode ("governed" or "default")."""

    def __init__(self, gc_mode: str) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import floor

        self.fl = floor
        self.gc_mode = gc_mode
        self.__version__ = f"floor (gc={gc_mode})"

    def run(self, coro: Any) -> Any:
        return self.fl.run(coro, gc_mode=self.gc_mode)


# ====================================================================== spawn
# spawn N (100k and 1M): main starts N tasks without yielding in between, so
# all N are alive at once; each awaits one sleep(0) and finishes; main waits
# for all. The cost of creating, scheduling and freeing a task; at 1M it is
# also the GC and memory test of R-MEM (1M live coroutines).


def curcor_spawn(curcor: Any, n: int) -> None:
    async def child(wg: Any) -> None:
        await curcor.sleep(0)
        wg.done()

    async def main() -> None:
        wg = curcor.WaitGroup()
        wg.add(n)
        for _ in range(n):
            curcor.go(child(wg))
        await wg.wait()

    curcor.run(main())


async def _asyncio_spawn(n: int) -> None:
    # Fastest idiomatic form measured (100k, 2 runs each): create_task per
    # child with references kept in a list, and an Event set by the last
    # child: ~0.95 s; asyncio.gather ~1.2 s; asyncio.TaskGroup ~1.2 s.
    import asyncio

    done = asyncio.Event()
    remaining = n

    async def child() -> None:
        nonlocal remaining
        await asyncio.sleep(0)
        remaining -= 1
        if not remaining:
            done.set()

    create_task = asyncio.get_running_loop().create_task
    tasks = [create_task(child()) for _ in range(n)]  # the loop holds weak refs
    await done.wait()
    assert len(tasks) == n


def trio_spawn(trio: Any, n: int) -> None:
    async def child() -> None:
        await trio.sleep(0)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(child)

    trio.run(main)


def floor_spawn(rt: FloorRuntime, n: int) -> None:
    fl = rt.fl

    async def child(wg: Any) -> None:
        await fl.sleep(0)
        wg.done()

    async def main() -> None:
        wg = fl.WaitGroup()
        wg.add(n)
        for _ in range(n):
            fl.go(child(wg))
        await wg.wait()

    rt.run(main())


# =================================================================== pingpong
# pingpong N (200k): two tasks pass a counter back and forth N round trips
# (2N hand-offs) over two unbuffered channels. The cost of one blocking
# hand-off between two tasks: the latency path of every channel program.
# Checked: the counter ends at N.


def curcor_pingpong(curcor: Any, n: int) -> int:
    async def pong(a: Any, b: Any) -> None:
        for _ in range(n):
            v = await a.recv()
            await b.send(v + 1)

    async def main() -> int:
        a, b = curcor.Channel(), curcor.Channel()  # unbuffered (rendezvous)
        task = curcor.go(pong(a, b))
        v = 0
        for _ in range(n):
            await a.send(v)
            v = await b.recv()
        await task.join()
        return v

    result: int = curcor.run(main())
    return result


async def _asyncio_pingpong(n: int) -> int:
    # asyncio has no rendezvous channel. Each side parks on a future that the
    # other side resolves: the cheapest fair hand-off (200k round trips ~1.0 s,
    # against ~1.6 s for two asyncio.Queue(maxsize=1)).
    import asyncio

    new_future = asyncio.get_running_loop().create_future
    box = [new_future(), new_future()]  # [0]: ping -> pong, [1]: pong -> ping

    async def pong() -> None:
        for _ in range(n):
            v = await box[0]
            box[0] = new_future()  # armed before ping can send again
            box[1].set_result(v + 1)

    task = asyncio.get_running_loop().create_task(pong())
    v = 0
    for _ in range(n):
        box[1] = new_future()
        box[0].set_result(v)
        v = await box[1]
    await task
    return v


def trio_pingpong(trio: Any, n: int) -> int:
    async def pong(rx: Any, tx: Any) -> None:
        for _ in range(n):
            v = await rx.receive()
            await tx.send(v + 1)

    async def main() -> int:
        a_tx, a_rx = trio.open_memory_channel(0)
        b_tx, b_rx = trio.open_memory_channel(0)
        v = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pong, a_rx, b_tx)
            for _ in range(n):
                await a_tx.send(v)
                v = await b_rx.receive()
        return v

    result: int = trio.run(main)
    return result


def floor_pingpong(rt: FloorRuntime, n: int) -> int:
    fl = rt.fl

    async def pong(a: Any, b: Any) -> None:
        for _ in range(n):
            v = await a.recv()
            await b.send(v + 1)

    async def main() -> int:
        a, b = fl.Channel(), fl.Channel()
        fl.go(pong(a, b))
        v = 0
        for _ in range(n):
            await a.send(v)
            v = await b.recv()
        return v

    result: int = rt.run(main())
    return result


# ====================================================================== fanin
# fanin N (10k producers, one consumer): N producer tasks each send
# FANIN_MSGS (10) values into one channel of capacity FANIN_CAP (100); main
# receives all 10N. Many writers contending for one buffered channel: the
# shape of a worker pool reporting results. The capacity lets producers run
# ahead a little, as a results channel in Go usually does. Checked: the sum.
# Peers: asyncio.Queue(maxsize=100); trio: one memory channel, a clone of
# the send side per producer (trio's idiom; the receive loop ends when every
# clone is closed).


def curcor_fanin(curcor: Any, n: int) -> int:
    async def producer(ch: Any) -> None:
        for i in range(FANIN_MSGS):
            await ch.send(i)

    async def main() -> int:
        ch = curcor.Channel(FANIN_CAP)
        for _ in range(n):
            curcor.go(producer(ch))
        total = 0
        for _ in range(n * FANIN_MSGS):
            total += await ch.recv()
        return total

    result: int = curcor.run(main())
    return result


async def _asyncio_fanin(n: int) -> int:
    import asyncio

    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=FANIN_CAP)

    async def producer() -> None:
        for i in range(FANIN_MSGS):
            await queue.put(i)

    create_task = asyncio.get_running_loop().create_task
    tasks = [create_task(producer()) for _ in range(n)]
    total = 0
    for _ in range(n * FANIN_MSGS):
        total += await queue.get()
    assert len(tasks) == n
    return total


def trio_fanin(trio: Any, n: int) -> int:
    async def producer(tx: Any) -> None:
        async with tx:
            for i in range(FANIN_MSGS):
                await tx.send(i)

    async def main() -> int:
        tx, rx = trio.open_memory_channel(FANIN_CAP)
        total = 0
        async with trio.open_nursery() as nursery:
            async with tx:
                for _ in range(n):
                    nursery.start_soon(producer, tx.clone())
            async for v in rx:
                total += v
        return total

    result: int = trio.run(main)
    return result


def floor_fanin(rt: FloorRuntime, n: int) -> int:
    fl = rt.fl

    async def producer(ch: Any) -> None:
        for i in range(FANIN_MSGS):
            await ch.send(i)

    async def main() -> int:
        ch = fl.Channel(FANIN_CAP)
        for _ in range(n):
            fl.go(producer(ch))
        total = 0
        for _ in range(n * FANIN_MSGS):
            total += await ch.recv()
        return total

    result: int = rt.run(main())
    return result


# ======================================================================= tree
# tree N (depth 6): a spawn tree; every inner node starts TREE_FANOUT (6)
# children and waits for all of them, each leaf returns 1, each node the sum
# of its children. Depth 6 is 55,987 tasks and 46,656 leaves, with at most
# one path of waiting parents per leaf: recursive structured concurrency
# (divide and conquer, a crawler), where spawn and join both matter.
# Checked: the root returns 6**6. curcor: go + Task.join; asyncio:
# create_task + await each task; trio: a nursery per node.


def curcor_tree(curcor: Any, n: int) -> int:
    async def node(depth: int) -> int:
        if not depth:
            return 1
        tasks = [curcor.go(node(depth - 1)) for _ in range(TREE_FANOUT)]
        total = 0
        for task in tasks:
            total += await task.join()
        return total

    result: int = curcor.run(node(n))
    return result


async def _asyncio_tree(n: int) -> int:
    import asyncio

    create_task = asyncio.get_running_loop().create_task

    async def node(depth: int) -> int:
        if not depth:
            return 1
        tasks = [create_task(node(depth - 1)) for _ in range(TREE_FANOUT)]
        total = 0
        for task in tasks:
            total += await task
        return total

    return await node(n)


def trio_tree(trio: Any, n: int) -> int:
    async def node(depth: int, out: list[int]) -> None:
        if not depth:
            out.append(1)
            return
        results: list[int] = []
        async with trio.open_nursery() as nursery:
            for _ in range(TREE_FANOUT):
                nursery.start_soon(node, depth - 1, results)
        out.append(sum(results))

    async def main() -> int:
        out: list[int] = []
        await node(n, out)
        return out[0]

    result: int = trio.run(main)
    return result


def floor_tree(rt: FloorRuntime, n: int) -> int:
    # The floor has no join: each child appends its sum to its parent's list
    # and counts down the parent's WaitGroup.
    fl = rt.fl

    async def node(depth: int, out: list[int], parent: Any) -> None:
        if not depth:
            out.append(1)
        else:
            results: list[int] = []
            wg = fl.WaitGroup()
            wg.add(TREE_FANOUT)
            for _ in range(TREE_FANOUT):
                fl.go(node(depth - 1, results, wg))
            await wg.wait()
            out.append(sum(results))
        if parent is not None:
            parent.done()

    async def main() -> int:
        out: list[int] = []
        await node(n, out, None)
        return out[0]

    result: int = rt.run(main())
    return result


# ====================================================================== mutex
# mutex N (100k acquisitions): MUTEX_TASKS (100) tasks share one lock and
# N / 100 iterations each: take the lock, increment a counter, yield
# (sleep(0)) while holding it, release. Yielding inside the critical section
# makes every other task find the lock taken, so each release is a hand-off
# to a parked waiter: the contended path of a lock, FIFO fairness included.
# Checked: the counter ends at N. curcor.Mutex; asyncio.Lock; trio.Lock.


def curcor_mutex(curcor: Any, n: int) -> int:
    per_task = n // MUTEX_TASKS
    counter = 0

    async def worker(mu: Any, wg: Any) -> None:
        nonlocal counter
        for _ in range(per_task):
            async with mu:
                counter += 1
                await curcor.sleep(0)
        wg.done()

    async def main() -> int:
        mu, wg = curcor.Mutex(), curcor.WaitGroup()
        wg.add(MUTEX_TASKS)
        for _ in range(MUTEX_TASKS):
            curcor.go(worker(mu, wg))
        await wg.wait()
        return counter

    result: int = curcor.run(main())
    return result


async def _asyncio_mutex(n: int) -> int:
    import asyncio

    per_task = n // MUTEX_TASKS
    counter = 0
    lock = asyncio.Lock()

    async def worker() -> None:
        nonlocal counter
        for _ in range(per_task):
            async with lock:
                counter += 1
                await asyncio.sleep(0)

    await asyncio.gather(*(worker() for _ in range(MUTEX_TASKS)))
    return counter


def trio_mutex(trio: Any, n: int) -> int:
    per_task = n // MUTEX_TASKS
    counter = 0

    async def worker(lock: Any) -> None:
        nonlocal counter
        for _ in range(per_task):
            async with lock:
                counter += 1
                await trio.sleep(0)

    async def main() -> int:
        lock = trio.Lock()
        async with trio.open_nursery() as nursery:
            for _ in range(MUTEX_TASKS):
                nursery.start_soon(worker, lock)
        return counter

    result: int = trio.run(main)
    return result


def floor_mutex(rt: FloorRuntime, n: int) -> int:
    fl = rt.fl
    per_task = n // MUTEX_TASKS
    counter = 0

    async def worker(mu: Any, wg: Any) -> None:
        nonlocal counter
        for _ in range(per_task):
            await mu.lock()
            counter += 1
            await fl.sleep(0)
            mu.unlock()
        wg.done()

    async def main() -> int:
        mu, wg = fl.Mutex(), fl.WaitGroup()
        wg.add(MUTEX_TASKS)
        for _ in range(MUTEX_TASKS):
            fl.go(worker(mu, wg))
        await wg.wait()
        return counter

    result: int = rt.run(main())
    return result


# ===================================================================== select
# select N (100k values): SELECT_CHANNELS (4) producers each send their share
# of the values 0..N-1 on their own unbuffered channel; main receives all N
# with a select over the 4 channels. The cost of waiting on several sources
# at once (a server loop over inputs, a timeout and a quit channel).
# Checked: the sum. curcor: curcor.select(recv(c0), ..., recv(c3)); the
# floor: its minimal receive-only select.
# Peers have no select. asyncio: its closest idiom, one pending
# queue.get() task per asyncio.Queue(maxsize=1) and asyncio.wait(...,
# FIRST_COMPLETED), re-arming the get of each queue that completed. trio:
# its idiom for many sources, a forwarding task per memory channel (size 0)
# into one merged channel that main receives from (one extra hop per value).


def _select_share(n: int, k: int) -> range:
    return range(k, n, SELECT_CHANNELS)


def curcor_select(curcor: Any, n: int) -> int:
    async def producer(ch: Any, values: range) -> None:
        for v in values:
            await ch.send(v)

    async def main() -> int:
        chans = [curcor.Channel() for _ in range(SELECT_CHANNELS)]
        for k, ch in enumerate(chans):
            curcor.go(producer(ch, _select_share(n, k)))
        cases = [curcor.recv(ch) for ch in chans]
        select, total = curcor.select, 0
        for _ in range(n):
            _i, (v, _ok) = await select(*cases)
            total += v
        return total

    result: int = curcor.run(main())
    return result


async def _asyncio_select(n: int) -> int:
    import asyncio

    queues: list[asyncio.Queue[int]] = [
        asyncio.Queue(maxsize=1) for _ in range(SELECT_CHANNELS)
    ]

    async def producer(q: asyncio.Queue[int], values: range) -> None:
        for v in values:
            await q.put(v)

    create_task = asyncio.get_running_loop().create_task
    producers = [
        create_task(producer(q, _select_share(n, k))) for k, q in enumerate(queues)
    ]
    getters = {create_task(q.get()): q for q in queues}
    total = received = 0
    while received < n:
        done, _ = await asyncio.wait(getters, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            q = getters.pop(task)
            total += task.result()
            received += 1
            if received < n:
                getters[create_task(q.get())] = q
    for task in getters:
        task.cancel()
    await asyncio.gather(*producers)
    return total


def trio_select(trio: Any, n: int) -> int:
    async def producer(tx: Any, values: range) -> None:
        for v in values:
            await tx.send(v)

    async def forward(rx: Any, merged: Any) -> None:
        while True:
            await merged.send(await rx.receive())

    async def main() -> int:
        merged_tx, merged_rx = trio.open_memory_channel(0)
        total = 0
        async with trio.open_nursery() as nursery:
            for k in range(SELECT_CHANNELS):
                tx, rx = trio.open_memory_channel(0)
                nursery.start_soon(producer, tx, _select_share(n, k))
                nursery.start_soon(forward, rx, merged_tx)
            for _ in range(n):
                total += await merged_rx.receive()
            nursery.cancel_scope.cancel()  # the forwarders wait forever
        return total

    result: int = trio.run(main)
    return result


def floor_select(rt: FloorRuntime, n: int) -> int:
    fl = rt.fl

    async def producer(ch: Any, values: range) -> None:
        for v in values:
            await ch.send(v)

    async def main() -> int:
        chans = [fl.Channel() for _ in range(SELECT_CHANNELS)]
        for k, ch in enumerate(chans):
            fl.go(producer(ch, _select_share(n, k)))
        select, total = fl.select_recv, 0
        for _ in range(n):
            _i, v = await select(chans)
            total += v
        return total

    result: int = rt.run(main())
    return result


# ===================================================================== timers
# timers N (100k sleepers): N tasks each sleep for a random time, uniform in
# [0, TIMERS_MAX_S) = [0, 0.5) s (seeded: the same deadlines everywhere), then
# finish; main waits for all. The timer heap under load: N pending deadlines
# inserted in random order and fired in deadline order (timeouts on many
# connections). The wall time cannot be below 0.5 s; what is above it is
# the runtime's cost (the spawning of N tasks overlaps the first deadlines).
# Checked: N sleepers finished.


def _deadlines(n: int) -> list[float]:
    rng = random.Random(TIMERS_SEED)
    return [rng.random() * TIMERS_MAX_S for _ in range(n)]


def curcor_timers(curcor: Any, n: int) -> int:
    delays = _deadlines(n)
    finished = 0

    async def sleeper(delay: float, wg: Any) -> None:
        nonlocal finished
        await curcor.sleep(delay)
        finished += 1
        wg.done()

    async def main() -> None:
        wg = curcor.WaitGroup()
        wg.add(n)
        for delay in delays:
            curcor.go(sleeper(delay, wg))
        await wg.wait()

    curcor.run(main())
    return finished


async def _asyncio_timers(n: int) -> int:
    import asyncio

    delays = _deadlines(n)
    done = asyncio.Event()
    finished = 0

    async def sleeper(delay: float) -> None:
        nonlocal finished
        await asyncio.sleep(delay)
        finished += 1
        if finished == n:
            done.set()

    create_task = asyncio.get_running_loop().create_task
    tasks = [create_task(sleeper(d)) for d in delays]
    await done.wait()
    assert len(tasks) == n
    return finished


def trio_timers(trio: Any, n: int) -> int:
    delays = _deadlines(n)
    finished = 0

    async def sleeper(delay: float) -> None:
        nonlocal finished
        await trio.sleep(delay)
        finished += 1

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for delay in delays:
                nursery.start_soon(sleeper, delay)

    trio.run(main)
    return finished


def floor_timers(rt: FloorRuntime, n: int) -> int:
    fl = rt.fl
    delays = _deadlines(n)
    finished = 0

    async def sleeper(delay: float) -> None:
        nonlocal finished
        await fl.sleep(delay)
        finished += 1

    async def main() -> None:
        for delay in delays:
            fl.go(sleeper(delay))

    rt.run(main())  # run() returns once every task, sleepers included, ended
    return finished


# ========================================================= asyncio and uvloop
# The asyncio coroutines above run on asyncio.run or uvloop.run.


def _on_asyncio(factory: Callable[[int], Any]) -> Callable[[Any, int], Any]:
    def run(_: Any, n: int) -> Any:
        import asyncio

        return asyncio.run(factory(n))

    return run


def _on_uvloop(factory: Callable[[int], Any]) -> Callable[[Any, int], Any]:
    def run(uvloop: Any, n: int) -> Any:
        return uvloop.run(factory(n))

    return run


for _name in ("spawn", "pingpong", "fanin", "tree", "mutex", "select", "timers"):
    _factory = globals()[f"_asyncio_{_name}"]
    globals()[f"asyncio_{_name}"] = _on_asyncio(_factory)
    globals()[f"uvloop_{_name}"] = _on_uvloop(_factory)


# ============================================================ startup, version
# startup N (10 process starts per run): a fresh interpreter that imports
# the runtime and exits, `python -c "import curcor"` (and asyncio, uvloop,
# trio), started N times one after the other; the floor is the bare
# interpreter (`python -c pass`), Go is the compiled binary starting and
# exiting. What a command-line tool or a short job pays before its first
# line of work (R-CLI: `import curcor` under 50 ms).
# version N (10): `curcor version`, the console script, N times (R-CLI:
# under 100 ms); curcor only.
# wall_s = the median wall time of one whole process (fork and exec
# included); import_s = the median time of the import statement alone,
# measured inside the process; gc_s / gc_collections = the median GC time
# and collections during the import; peak_rss_mb = the largest child's peak
# RSS (VmHWM). `version` has no in-process figures (the script cannot be
# timed from inside without changing it); its RSS is an upper bound (the
# children's ru_maxrss, which includes this process's size at the fork).

_STARTUP_CODE = """\
import gc, sys, time
_g = [0.0, 0.0, 0]
def _cb(phase, info):
    if phase == "start":
        _g[0] = time.perf_counter()
    else:
        _g[1] += time.perf_counter() - _g[0]
        _g[2] += 1
gc.callbacks.append(_cb)
_t0 = time.perf_counter()
{statement}
_t1 = time.perf_counter()
gc.callbacks.remove(_cb)
try:
    _hwm = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
except (OSError, IndexError):
    _hwm = "0"
sys.stdout.write("%r %r %d %s" % (_t1 - _t0, _g[1], _g[2], _hwm))
"""
_IMPORTS = {
    "curcor": "import curcor",
    "asyncio": "import asyncio",
    "uvloop": "import uvloop",
    "trio": "import trio",
    "floor": "pass",
}


def _time_processes(
    cmd: list[str], n: int, inner: bool, shown: str, hwm_only: bool = False
) -> dict[str, Any]:
    """Start ``cmd`` n times; ``inner``: it prints _STARTUP_CODE's figures,
    ``hwm_only``: it prints its peak RSS in KiB (the Go binary)."""
    walls, imports, gcs, colls, hwms = [], [], [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        walls.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()
            raise RuntimeError(f"{cmd!r} failed: {tail[-1] if tail else '?'}")
        if inner:
            imp, gc_s, count, hwm_kib = proc.stdout.split()
            imports.append(float(imp))
            gcs.append(float(gc_s))
            colls.append(int(count))
            hwms.append(int(hwm_kib) / 1024)
        elif hwm_only:
            hwms.append(int(proc.stdout.split()[0]) / 1024)
    # The children's own peak (VmHWM) when they report it. Otherwise
    # ru_maxrss of the children, which is at least this process's own size
    # at the fork (see _rss_mb): an upper bound.
    rss = max(hwms) if hwms and max(hwms) > 0 else _children_rss_mb()
    out: dict[str, Any] = {
        "wall_s": statistics.median(walls),
        "walls_s": walls,
        "peak_rss_mb": round(rss, 1),
        "command": shown,
        "gc_s": statistics.median(gcs) if inner else None,
        "gc_collections": statistics.median(colls) if inner else None,
    }
    if inner:
        out["import_s"] = statistics.median(imports)
        out["imports_s"] = imports
    return out


def _children_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def startup(runtime: str, n: int, go_bin: str | None) -> dict[str, Any]:
    if runtime == "go":
        if not go_bin:
            raise ValueError("the go startup workload needs --go-bin")
        cmd = [go_bin, "-workload", "startup"]
        return _time_processes(cmd, n, False, " ".join(cmd), hwm_only=True)
    if runtime not in _IMPORTS:
        raise ValueError(f"no startup workload for {runtime!r}")
    statement = _IMPORTS[runtime]
    code = _STARTUP_CODE.format(statement=statement)
    shown = f"{sys.executable} -c '{statement}' (timed inside, see _STARTUP_CODE)"
    return _time_processes([sys.executable, "-c", code], n, True, shown)


def version(runtime: str, n: int) -> dict[str, Any]:
    if runtime != "curcor":
        raise ValueError("the version workload is curcor's only")
    script = Path(sys.executable).with_name("curcor")
    if script.exists():
        cmd = [str(script), "version"]
    else:  # not installed as a script here: the same entry point via -m
        cmd = [sys.executable, "-m", "curcor", "version"]
    return _time_processes(cmd, n, False, " ".join(cmd))


# ================================================================== the shell


def _import_asyncio() -> Any:
    import asyncio

    return asyncio


def _import_uvloop() -> Any:
    import uvloop

    return uvloop


def _import_trio() -> Any:
    import trio

    return trio


RUNTIMES: dict[str, Callable[[], Any]] = {
    "curcor": _import_curcor,
    "asyncio": _import_asyncio,
    "uvloop": _import_uvloop,
    "trio": _import_trio,
    "floor": lambda: FloorRuntime("governed"),
    "floor-defgc": lambda: FloorRuntime("default"),
}


def _check(workload: str, n: int, result: Any) -> None:
    want = expected(workload, n)
    if want is not None and result != want:
        raise AssertionError(f"{workload} returned {result!r}, expected {want}")


def _rss_mb() -> float:
    """This process's peak RSS in MiB.

    Linux: ``VmHWM`` from /proc/self/status. Not ``ru_maxrss``: that one
    keeps the parent's peak across fork and exec, so a small child would
    report the harness's size.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def _process_workload(args: argparse.Namespace, record: dict[str, Any]) -> int:
    runtime = "floor" if args.runtime == "floor-defgc" else args.runtime
    try:
        if args.workload == "startup":
            figures = startup(runtime, args.n, args.go_bin)
        else:
            figures = version(runtime, args.n)
    except Exception as exc:
        traceback.print_exc()
        _emit({**record, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return EXIT_FAILED
    _emit({**record, "ok": True, **figures})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runtime", required=True, choices=[*RUNTIMES, "go"])
    parser.add_argument("--workload", required=True, choices=WORKLOADS)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--go-bin", help="the built benchmarks/go binary")
    args = parser.parse_args(argv)

    record: dict[str, Any] = {
        "runtime": args.runtime,
        "workload": args.workload,
        "n": args.n,
        "pid": os.getpid(),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "gil": getattr(sys, "_is_gil_enabled", lambda: True)(),
        "curcor_maxprocs": os.environ.get("CURCOR_MAXPROCS"),
        "curcor_gc": os.environ.get("CURCOR_GC"),
    }
    if args.workload in PROCESS_WORKLOADS:
        return _process_workload(args, record)
    if args.runtime == "go":
        parser.error("--runtime go: run the benchmarks/go binary for this workload")
    try:
        module = RUNTIMES[args.runtime]()
    except Exception as exc:
        traceback.print_exc()
        _emit({**record, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return EXIT_UNAVAILABLE
    record["runtime_version"] = getattr(module, "__version__", None)
    if args.runtime == "asyncio":
        record["runtime_version"] = platform.python_version()
    if args.runtime == "curcor":
        record["curcor_file"] = getattr(module, "__file__", None)
        from curcor._core import scheduler

        compiled = not str(scheduler.__file__).endswith(".py")
        record["curcor_hot_path"] = "mypyc" if compiled else "python"
    family = "floor" if args.runtime.startswith("floor") else args.runtime
    workload = globals()[f"{family}_{args.workload}"]

    pauses: list[float] = []
    by_gen = [0, 0, 0]
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - started[0])
            gen = info.get("generation", 2)
            by_gen[min(gen, 2)] += 1

    gc.collect()
    record["rss_before_mb"] = round(_rss_mb(), 1)
    gc.callbacks.append(on_gc)
    try:
        t0 = time.perf_counter()
        result = workload(module, args.n)
        wall = time.perf_counter() - t0
    except BaseException as exc:
        gc.callbacks.remove(on_gc)
        traceback.print_exc()
        _emit({**record, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return EXIT_FAILED
    gc.callbacks.remove(on_gc)
    try:
        _check(args.workload, args.n, result)
    except AssertionError as exc:
        _emit({**record, "ok": False, "error": f"AssertionError: {exc}"})
        return EXIT_FAILED

    record.update(
        ok=True,
        wall_s=wall,
        gc_s=sum(pauses),
        gc_collections=len(pauses),
        gc_collections_by_gen=by_gen,
        gc_max_pause_s=max(pauses, default=0.0),
        peak_rss_mb=round(_rss_mb(), 1),
    )
    _emit(record)
    return 0


if __name__ == "__main__":
    sys.exit(main())

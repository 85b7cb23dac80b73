"""One benchmark run in this process; prints one JSON line on stdout.

    python benchmarks/workloads.py --runtime asyncio --workload spawn --n 100000

``benchmarks/run.py`` starts this file once per run, in a fresh interpreter, so
no run inherits another's heap, caches or GC state. Each runtime has one
self-contained function per workload (below); they share nothing but this
measuring shell.

Measured here, in the child:

- ``wall_s``: ``time.perf_counter()`` around the workload call only, after the
  runtime's imports and a ``gc.collect()``; it includes the runtime's own boot
  and shutdown (``asyncio.run``, ``trio.run``, ``curcor.run``...).
- ``gc_s`` / ``gc_collections``: every collection that happens inside that
  window, timed with ``gc.callbacks`` (the time from each "start" phase to its
  "stop" phase, summed). Collections on any thread are counted.
- ``peak_rss_mb``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` at the end
  (KiB on Linux) / 1024, i.e. MiB, for the whole process (interpreter and
  imports included; ``rss_before_mb`` is the same figure just before the
  timed window).

Exit status: 0 ok, 1 the workload failed, 3 the runtime cannot be imported
(the harness then skips that runtime's remaining runs).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_FAILED = 1
EXIT_UNAVAILABLE = 3

# --------------------------------------------------------------------- curcor


def _import_curcor() -> Any:
    try:
        import curcor
    except ModuleNotFoundError as exc:
        if exc.name != "curcor":
            raise
        # Not installed in this interpreter: use the checkout's src/ layout.
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
        import curcor
    if not hasattr(curcor, "run"):  # e.g. src/curcor without its __init__ yet
        where = list(getattr(curcor, "__path__", [])) or curcor.__file__
        raise ImportError(f"curcor at {where} has no run() (runtime not built)")
    return curcor


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

    return curcor.run(main())


# -------------------------------------------------------------------- asyncio
# Shared by the asyncio and uvloop runtimes; only the runner differs.


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


def asyncio_spawn(_: Any, n: int) -> None:
    import asyncio

    asyncio.run(_asyncio_spawn(n))


def asyncio_pingpong(_: Any, n: int) -> int:
    import asyncio

    return asyncio.run(_asyncio_pingpong(n))


def uvloop_spawn(uvloop: Any, n: int) -> None:
    uvloop.run(_asyncio_spawn(n))


def uvloop_pingpong(uvloop: Any, n: int) -> int:
    return uvloop.run(_asyncio_pingpong(n))


# ----------------------------------------------------------------------- trio


def trio_spawn(trio: Any, n: int) -> None:
    async def child() -> None:
        await trio.sleep(0)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(child)

    trio.run(main)


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

    return trio.run(main)


# ------------------------------------------------------------------ the shell


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
}
WORKLOADS = ("spawn", "pingpong")


def _check(workload: str, n: int, result: Any) -> None:
    if workload == "pingpong" and result != n:
        raise AssertionError(f"pingpong ended at {result!r}, expected {n}")


def _rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", required=True, choices=sorted(RUNTIMES))
    parser.add_argument("--workload", required=True, choices=WORKLOADS)
    parser.add_argument("--n", type=int, required=True)
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
    }
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
    workload = globals()[f"{args.runtime}_{args.workload}"]

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

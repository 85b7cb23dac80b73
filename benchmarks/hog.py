"""The hog benchmark: how late do other tasks run while one task hogs its
worker with pure-Python CPU work and another blocks it in ``time.sleep``?

    python benchmarks/hog.py [--runs 3] [--runtimes curcor-p1,curcor-p2,asyncio,trio]
        [--quick] [--json FILE] [--timeout S] [--python PATH] [--check]
    python benchmarks/hog.py --child RUNTIME [--quick]      # one run, one JSON line

This is the check of preemption (SPEC R-SCHED): a worker stuck in one task
step must not hold up timers, I/O and the other tasks for long. Each run is
one process holding, for every runtime alike:

- an echo server on 127.0.0.1 port 0 and, in the same program, one echo
  client connection that starts a 64-byte round trip at every point of a
  2 ms grid (``ECHO_PERIOD_S``) and checks every echoed byte;
- a ticker that wants to run at every point of a 5 ms grid
  (``TICK_PERIOD_S``; intended time = start + k * 5 ms), sleeping the
  remaining time before each;
- the hog: a task that sums integers in a plain Python loop for 2 s and
  never awaits;
- the sleeper: a task that calls ``time.sleep(1)``, started 0.5 s after
  the hog.

Timeline: 0.2 s warm-up (not counted), 1 s "quiet" phase (ticker and echo
alone), then the "hog" phase: it starts when the hog is meant to start and
lasts until the hog and the sleeper have both finished, and at least 2.5 s.
A runtime that cannot run the sleeper while the hog runs (one thread)
stretches the phase to about 3 s.

What is counted, per phase, by grid point (not by wake-up), so that the
time a task spent held up weighs in proportion to its length:

- ticker lateness: for every 5 ms grid point, the first time the ticker
  ran at or after it, minus the point. A wake-up that comes after several
  points counts once for each of them (a 2 s stall is 400 late ticks, not
  one);
- echo latency: for every 2 ms grid point, the time its round trip
  completed minus the point. A point that passed while the previous round
  trip was still in flight is counted with that round trip's completion
  (a lower bound: its own request would have taken longer), so a stall is
  not hidden by the client sending less (no "coordinated omission"). The
  next round trip starts at the next grid point. The raw round-trip times
  (send to echo, one per round trip actually made) are reported too.

Runtimes: ``curcor-pN`` (curcor with maxprocs N; ``curcor-pN-nopreempt``
with ``preempt = false``), ``asyncio`` (``asyncio.run``) and ``trio``. The
harness runs every (runtime, run) in a process of its own, interleaving the
runtimes (run r starts at the r-th runtime), kills a child past
``--timeout`` by its pid, prints Markdown tables of the medians over the
runs and writes every run to ``benchmarks/results/hog.json``.

On a GIL build a C call that holds the GIL (a long regex match,
``sum(range(10**9))``, sorting a large list) cannot be preempted by any
runtime: nothing else runs Python until it returns. The hog here is a
Python loop, which the interpreter's switch interval (5 ms) does interrupt.

Exit status: 0 when every run succeeded (with ``--check`` also the curcor-p2
target met), 1 otherwise, 2 on bad arguments. A child exits 0, 1 on a
failure, 3 when its runtime cannot be imported.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"  # the echo server listens here only; the client dials it
EXIT_FAILED = 1
EXIT_UNAVAILABLE = 3

TICK_PERIOD_S = 0.005  # the ticker's grid (the issue asks for 5 ms)
ECHO_PERIOD_S = 0.002  # the echo client's grid; arbitrary: light load, so
# the echo measures latency rather than throughput
ECHO_SIZE = 64  # bytes per round trip
POLL_S = 0.02  # how often main checks whether the phase is over
PHASE_LIMIT_S = 15.0  # a run whose phases take longer fails (a full run: ~4 s)

# Targets of the preemption issue, on curcor with maxprocs 2 (hog phase).
TARGET_RUNTIME = "curcor-p2"
TARGET_TICK_P99_MS = 20.0
TARGET_ECHO_P99_MS = 30.0

# Ticks of the hog phase later than this are listed in the JSON with their
# offset from the hog's start, to show when the stalls happen (at most
# LATE_TICKS_KEPT of them). 10 ms = the default preempt_ms.
LATE_TICK_S = 0.010
LATE_TICKS_KEPT = 200

STDERR_KEPT = 8000  # characters of a failed child's stderr kept in the JSON

RUNTIMES = ("curcor-p1", "curcor-p2", "asyncio", "trio")
RESULTS = Path(__file__).resolve().parent / "results" / "hog.json"


class Plan:
    """The timeline of one run, in ``time.monotonic()`` seconds.

    Every runtime measures with the same clock, whatever clock its own
    ``sleep`` uses: only differences are ever slept.
    """

    def __init__(self, quick: bool) -> None:
        if quick:
            self.warm, self.quiet = 0.1, 0.4
            self.hog_s, self.sleeper_delay, self.sleeper_s = 0.6, 0.15, 0.3
            self.span = 0.8
        else:
            self.warm, self.quiet = 0.2, 1.0
            self.hog_s, self.sleeper_delay, self.sleeper_s = 2.0, 0.5, 1.0
            self.span = 2.5
        self.t0 = 0.0  # set by start()
        self.stop_at = math.inf  # set when the hog phase is over
        self.ticks: list[tuple[float, float]] = []  # (grid point, lateness)
        self.echoes: list[tuple[float, float]] = []  # (grid point, latency)
        self.rtts: list[tuple[float, float]] = []  # (send time, round trip)
        self.events: dict[str, float] = {}  # hog/sleeper start and end
        self.hog_chunks = 0
        self.done: set[str] = set()  # tasks that have ended
        self.errors: list[str] = []
        # Lock rule: none needed. Each list above is written by one task;
        # ``done`` and ``errors`` by several, one ``add``/``append`` at a
        # time, which is atomic on GIL and free-threaded builds alike. Main
        # reads them only after the writers have ended (or to poll ``done``).

    def start(self) -> None:
        self.t0 = time.monotonic()

    @property
    def quiet_start(self) -> float:
        return self.t0 + self.warm

    @property
    def hog_start(self) -> float:
        return self.quiet_start + self.quiet


Sleep = Callable[[float], Awaitable[Any]]
RoundTrip = Callable[[bytes], Awaitable[bytes]]


async def _sleep_until(sleep: Sleep, when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        await sleep(delay)


async def _guard(plan: Plan, name: str, body: Awaitable[None]) -> None:
    """Run one task's body; record its failure instead of raising it, so
    that main never waits on a task that has died."""
    try:
        await body
    except Exception as exc:
        plan.errors.append(f"{name}: {type(exc).__name__}: {exc}")
        traceback.print_exc()
    finally:
        plan.done.add(name)


async def ticker(plan: Plan, sleep: Sleep) -> None:
    """Wake at every grid point; record each point's lateness."""
    k = 1
    while True:
        point = plan.quiet_start + k * TICK_PERIOD_S
        if point >= plan.stop_at:
            return
        await _sleep_until(sleep, point)
        now = time.monotonic()

        # Every point passed by now was served by this wake-up.
        while point <= now and point < plan.stop_at:
            plan.ticks.append((point, now - point))
            k += 1
            point = plan.quiet_start + k * TICK_PERIOD_S


async def echo_client(plan: Plan, sleep: Sleep, round_trip: RoundTrip) -> None:
    """One round trip per free grid point; record each point's latency."""
    payloads = [bytes([i]) * ECHO_SIZE for i in range(1, 17)]
    k = 0
    while True:
        point = plan.quiet_start + k * ECHO_PERIOD_S
        if point >= plan.stop_at:
            return
        await _sleep_until(sleep, point)

        # One round trip, every byte checked.
        payload = payloads[k % 16]
        sent = time.monotonic()
        got = await round_trip(payload)
        done = time.monotonic()
        if got != payload:
            raise AssertionError(f"echo of round trip {k} differs from its message")
        plan.rtts.append((sent, done - sent))

        # This point and every point that passed meanwhile complete now.
        while point <= done and point < plan.stop_at:
            plan.echoes.append((point, done - point))
            k += 1
            point = plan.quiet_start + k * ECHO_PERIOD_S


def burn(seconds: float) -> int:
    """Pure-Python CPU work for ``seconds`` of wall time; never yields.

    Returns how many chunks of 10,000 additions it did, which shows how much
    of the CPU the hog got.
    """
    end = time.monotonic() + seconds
    chunks = 0
    total = 0
    while True:
        for i in range(10_000):
            total += i
        chunks += 1
        if time.monotonic() >= end:
            return chunks


async def hog(plan: Plan, sleep: Sleep) -> None:
    await _sleep_until(sleep, plan.hog_start)
    plan.events["hog_start"] = time.monotonic()
    plan.hog_chunks = burn(plan.hog_s)
    plan.events["hog_end"] = time.monotonic()


async def sleeper(plan: Plan, sleep: Sleep) -> None:
    await _sleep_until(sleep, plan.hog_start + plan.sleeper_delay)
    plan.events["sleeper_start"] = time.monotonic()
    time.sleep(plan.sleeper_s)  # deliberately blocking: what is measured
    plan.events["sleeper_end"] = time.monotonic()


async def drive(
    plan: Plan,
    sleep: Sleep,
    round_trip: RoundTrip,
    spawn: Callable[[str, Awaitable[None]], None],
) -> None:
    """The body of a run, the same for every runtime.

    ``spawn(name, coro)`` starts a task of the runtime; ``round_trip`` is
    one echo over the client connection.
    """
    plan.start()
    spawn("ticker", _guard(plan, "ticker", ticker(plan, sleep)))
    spawn("echo", _guard(plan, "echo", echo_client(plan, sleep, round_trip)))
    spawn("hog", _guard(plan, "hog", hog(plan, sleep)))
    spawn("sleeper", _guard(plan, "sleeper", sleeper(plan, sleep)))
    limit = plan.t0 + PHASE_LIMIT_S

    # The hog phase lasts until the hog and the sleeper are done, and at
    # least plan.span; then the ticker and the echo client stop.
    while not {"hog", "sleeper"} <= plan.done and time.monotonic() < limit:
        await sleep(POLL_S)
    plan.stop_at = max(plan.hog_start + plan.span, time.monotonic())
    while not {"ticker", "echo"} <= plan.done and time.monotonic() < limit:
        await sleep(POLL_S)
    if len(plan.done) < 4:
        missing = sorted({"ticker", "echo", "hog", "sleeper"} - plan.done)
        plan.errors.append(f"still running after {PHASE_LIMIT_S:g} s: {missing}")


# -------------------------------------------------------------------- runtimes
# Each runs drive() with an echo server and one client connection, and
# returns the runtime's version.


def _import_curcor() -> Any:
    try:
        import curcor
    except ModuleNotFoundError as exc:
        if exc.name != "curcor":
            raise
        # Not installed in this interpreter: use the checkout's src/ layout.
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
        import curcor
    return curcor


def run_curcor(plan: Plan, maxprocs: int, preempt: bool, info: dict) -> str:
    curcor = _import_curcor()
    from curcor import net
    from curcor.config import load_config

    # The environment applies (CURCOR_PREEMPT_MS=5 to try another value);
    # these flags override it.
    flags = {"maxprocs": str(maxprocs)}
    if not preempt:
        flags["preempt"] = "false"
    config = load_config(flags=flags)
    info["config"] = dict(config)

    async def echo(stream: Any) -> None:
        try:
            while data := await stream.read():
                stream.write(data)
                await stream.drain()
        except ConnectionError:
            pass

    async def main() -> None:
        async with curcor.TaskGroup() as tg:
            port = await tg.start(net.serve_tcp, echo, HOST, 0)
            stream = await net.dial_tcp(HOST, port)

            async def round_trip(payload: bytes) -> bytes:
                stream.write(payload)
                await stream.drain()
                return bytes(await stream.read_exactly(len(payload)))

            def spawn(name: str, coro: Awaitable[None]) -> None:
                curcor.go(coro, name=name)

            try:
                await drive(plan, curcor.sleep, round_trip, spawn)
            finally:
                stream.close()
                tg.cancel_scope.cancel()

    curcor.run(main(), config=config)
    return str(getattr(curcor, "__version__", "?"))


def run_asyncio(plan: Plan, info: dict) -> str:
    import asyncio
    import socket

    async def echo(reader: Any, writer: Any) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(echo, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(HOST, port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tasks: list[asyncio.Task] = []

        async def round_trip(payload: bytes) -> bytes:
            writer.write(payload)
            await writer.drain()
            return await reader.readexactly(len(payload))

        def spawn(name: str, coro: Awaitable[None]) -> None:
            tasks.append(asyncio.ensure_future(coro))

        try:
            await drive(plan, asyncio.sleep, round_trip, spawn)
        finally:
            writer.close()
            server.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    return platform.python_version()


def run_trio(plan: Plan, info: dict) -> str:
    import functools

    import trio
    from echo import trio_echo  # (benchmarks/ is this script's directory)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            serve = functools.partial(trio.serve_tcp, trio_echo, 0, host=HOST)
            listeners = await nursery.start(serve)
            port = listeners[0].socket.getsockname()[1]
            stream = await trio.open_tcp_stream(HOST, port)
            buffer = bytearray()

            async def round_trip(payload: bytes) -> bytes:
                await stream.send_all(payload)
                while len(buffer) < len(payload):
                    data = await stream.receive_some(65536)
                    if not data:
                        raise ConnectionError("echo server closed the stream")
                    buffer.extend(data)
                got = bytes(buffer[: len(payload)])
                del buffer[: len(payload)]
                return got

            async def call(coro: Awaitable[None]) -> None:
                await coro

            def spawn(name: str, coro: Awaitable[None]) -> None:
                nursery.start_soon(call, coro, name=name)

            try:
                await drive(plan, trio.sleep, round_trip, spawn)
            finally:
                await stream.aclose()
                nursery.cancel_scope.cancel()

    trio.run(main)
    return str(trio.__version__)


# ------------------------------------------------------------------ one run


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of a non-empty list (p in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summarize(values: list[float], prefix: str) -> dict[str, Any]:
    """Count, p50, p99 and max of ``values`` (seconds) in milliseconds."""
    if not values:
        return {f"{prefix}_n": 0}
    return {
        f"{prefix}_n": len(values),
        f"{prefix}_p50_ms": percentile(values, 50) * 1e3,
        f"{prefix}_p99_ms": percentile(values, 99) * 1e3,
        f"{prefix}_max_ms": max(values) * 1e3,
    }


def phase_stats(plan: Plan, phase: str) -> dict[str, Any]:
    """The statistics of the points of one phase, "quiet" or "hog".

    A point belongs to the quiet phase when it was both due and served
    before the hog phase began; every later point up to ``plan.stop_at``
    belongs to the hog phase (so a round trip sent just before the hog
    started and held up by it counts against the hog).
    """
    start, cut, end = plan.quiet_start, plan.hog_start, plan.stop_at

    def within(pairs: list[tuple[float, float]]) -> list[float]:
        if phase == "quiet":
            return [v for when, v in pairs if start <= when and when + v < cut]
        return [v for when, v in pairs if start <= when < end and when + v >= cut]

    ticks = within(plan.ticks)
    out = {"seconds": (cut - start) if phase == "quiet" else (end - cut)}
    out.update(summarize(ticks, "tick"))
    out.update(summarize(within(plan.echoes), "echo"))
    out.update(summarize(within(plan.rtts), "rtt"))
    if ticks:
        late = sum(t > TARGET_TICK_P99_MS / 1e3 for t in ticks)
        out["tick_over_target"] = late / len(ticks)
    return out


def child_main(name: str, quick: bool, dump_after: float | None) -> int:
    if dump_after:
        # Every thread's stack on stderr before the harness kills a hung run.
        import faulthandler

        faulthandler.dump_traceback_later(dump_after, exit=False)
    plan = Plan(quick)
    record: dict[str, Any] = {
        "runtime": name,
        "pid": os.getpid(),
        "python": platform.python_version(),
        "switch_interval_s": sys.getswitchinterval(),
        "gil_enabled": getattr(sys, "_is_gil_enabled", lambda: True)(),
        "cpus": sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "ok": False,
    }
    try:
        if name.startswith("curcor-p"):
            spec = name[len("curcor-p") :]
            preempt = not spec.endswith("-nopreempt")
            maxprocs = int(spec.removesuffix("-nopreempt"))
            version = run_curcor(plan, maxprocs, preempt, record)
        elif name == "asyncio":
            version = run_asyncio(plan, record)
        elif name == "trio":
            version = run_trio(plan, record)
        else:
            raise ValueError(f"unknown runtime {name!r}")
    except ImportError as exc:
        traceback.print_exc()
        print(f"hog {name}: unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except BaseException as exc:
        traceback.print_exc()
        record["error"] = f"{type(exc).__name__}: {exc}"
        version = None
    record["runtime_version"] = version
    if plan.errors:
        record["error"] = "; ".join(plan.errors)
    elif "error" not in record:
        record["ok"] = True

    # Phases relative to the hog's intended start; events likewise.
    origin = plan.hog_start
    if plan.stop_at == math.inf:  # failed before the hog phase ended
        plan.stop_at = time.monotonic()
    record["events_s"] = {k: v - origin for k, v in plan.events.items()}
    record["hog_chunks"] = plan.hog_chunks
    record["quiet"] = phase_stats(plan, "quiet")
    record["hog"] = phase_stats(plan, "hog")
    late = [
        [round((point - origin) * 1e3, 1), round(value * 1e3, 1)]
        for point, value in plan.ticks
        if point >= origin and value > LATE_TICK_S
    ]
    record["late_ticks_ms"] = late[:LATE_TICKS_KEPT]  # [offset, lateness]
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    return 0 if record["ok"] else EXIT_FAILED


# ------------------------------------------------------------------ harness


def _busy_jiffies() -> int | None:
    """CPU time all processes used so far, in clock ticks (Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    return sum(values) - values[3] - values[4]  # minus idle and iowait


def run_child(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """One run in a fresh process, killed by its pid past ``args.timeout``."""
    argv = [args.python, __file__, "--child", name]
    argv += ["--dump-after", str(max(1.0, args.timeout - 3))]
    if args.quick:
        argv.append("--quick")
    load_before = os.getloadavg()
    busy0 = _busy_jiffies()
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        if name.startswith("curcor"):
            # curcor answers SIGQUIT with every task's stack, then exits.
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
        proc.kill()  # SIGKILL to proc.pid: the child starts no processes
        out, err = proc.communicate()
        return {
            "runtime": name,
            "ok": False,
            "error": f"killed after the {args.timeout:g} s timeout",
            "stderr": err[-STDERR_KEPT:],
        }
    wall = time.monotonic() - t0
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1 = _busy_jiffies()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode == EXIT_UNAVAILABLE or not lines:
        return {
            "runtime": name,
            "ok": False,
            "unavailable": proc.returncode == EXIT_UNAVAILABLE,
            "error": f"exit status {proc.returncode}, no result line",
            "stderr": err[-STDERR_KEPT:],
        }
    record = json.loads(lines[-1])
    if not record.get("ok"):
        record["stderr"] = err[-STDERR_KEPT:]
    record["wall_s"] = wall
    record["load_before"] = load_before
    record["load_after"] = os.getloadavg()
    if busy0 is not None and busy1 is not None:
        child_cpu = (usage1.ru_utime + usage1.ru_stime) - (
            usage0.ru_utime + usage0.ru_stime
        )
        busy = (busy1 - busy0) / os.sysconf("SC_CLK_TCK")
        record["child_cpu_cores"] = child_cpu / wall
        record["foreign_cpu_cores"] = max(0.0, busy - child_cpu) / wall
    return record


COLUMNS = (
    ("tick_p50_ms", "tick p50"),
    ("tick_p99_ms", "tick p99"),
    ("tick_max_ms", "tick max"),
    ("echo_p50_ms", "echo p50"),
    ("echo_p99_ms", "echo p99"),
    ("echo_max_ms", "echo max"),
    ("rtt_p99_ms", "RTT p99"),
    ("rtt_max_ms", "RTT max"),
)


def medians(records: list[dict[str, Any]], phase: str) -> dict[str, float]:
    """The median over the good runs of every numeric statistic of a phase."""
    good = [r[phase] for r in records if r.get("ok")]
    keys = sorted({k for stats in good for k in stats})
    out = {}
    for key in keys:
        values = [s[key] for s in good if key in s]
        if values:
            out[key] = statistics.median(values)
    return out


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def table(results: dict[str, list[dict[str, Any]]], phase: str) -> str:
    """A Markdown table of the medians of one phase, in milliseconds."""
    header = ["runtime", *(title for _, title in COLUMNS), "phase s", "runs"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for name, records in results.items():
        med = medians(records, phase)
        good = sum(1 for r in records if r.get("ok"))
        cells = [name, *(_ms(med.get(key)) for key, _ in COLUMNS)]
        seconds = med.get("seconds")
        cells.append("-" if seconds is None else f"{seconds:.2f}")
        cells.append(f"{good}/{len(records)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_line(results: dict[str, list[dict[str, Any]]]) -> tuple[str, bool]:
    """Whether the curcor-p2 medians meet the issue's targets."""
    records = results.get(TARGET_RUNTIME)
    if not records or not any(r.get("ok") for r in records):
        return f"target: no good {TARGET_RUNTIME} run, not checked", True
    med = medians(records, "hog")
    tick, echo = med.get("tick_p99_ms", math.inf), med.get("echo_p99_ms", math.inf)
    met = tick <= TARGET_TICK_P99_MS and echo <= TARGET_ECHO_P99_MS
    verdict = "met" if met else "NOT met"
    text = (
        f"target on {TARGET_RUNTIME} (hog phase): tick p99 {tick:.1f} ms "
        f"(<= {TARGET_TICK_P99_MS:g}), echo p99 {echo:.1f} ms "
        f"(<= {TARGET_ECHO_P99_MS:g}): {verdict}; tick max "
        f"{med.get('tick_max_ms', math.nan):.1f} ms, echo max "
        f"{med.get('echo_max_ms', math.nan):.1f} ms"
    )
    return text, met


def machine() -> dict[str, Any]:
    import sysconfig

    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "platform": platform.platform(),
        "python": sys.version,
        "free_threaded_build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "loadavg": os.getloadavg(),
    }


def harness(args: argparse.Namespace) -> int:
    names = args.runtimes
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    unavailable: set[str] = set()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    load_start = os.getloadavg()
    for run in range(args.runs):
        # Interleave: run r starts at the r-th runtime.
        order = names[run % len(names) :] + names[: run % len(names)]
        for name in order:
            if name in unavailable:
                continue
            print(f"hog: run {run + 1}/{args.runs} {name} ...", file=sys.stderr)
            record = run_child(args, name)
            record["run"] = run
            results[name].append(record)
            if record.get("unavailable"):
                unavailable.add(name)
            if not record.get("ok"):
                print(f"hog: {name}: {record.get('error')}", file=sys.stderr)
                print(record.get("stderr", "")[-800:], file=sys.stderr)
    load_end = os.getloadavg()

    print("Hog phase (ms; medians of per-run p50/p99/max):\n")
    print(table(results, "hog"))
    print("\nQuiet phase, no hog (ms):\n")
    print(table(results, "quiet"))
    text, met = target_line(results)
    print("\n" + text)
    foreign = [
        r["foreign_cpu_cores"]
        for rs in results.values()
        for r in rs
        if "foreign_cpu_cores" in r
    ]
    load = ", ".join(f"{x:.2f}" for x in load_start)
    note = f"load average at start {load}, at end "
    note += ", ".join(f"{x:.2f}" for x in load_end)
    if foreign:
        note += f"; other processes used {max(foreign):.2f} cores at most during a run"
    print(note)

    document = {
        "benchmark": "hog",
        "started": started,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "load_start": load_start,
        "load_end": load_end,
        "params": {
            "quick": args.quick,
            "runs": args.runs,
            "tick_period_s": TICK_PERIOD_S,
            "echo_period_s": ECHO_PERIOD_S,
            "echo_size": ECHO_SIZE,
            "plan": {
                k: v
                for k, v in vars(Plan(args.quick)).items()
                if k in ("warm", "quiet", "hog_s", "sleeper_delay", "sleeper_s", "span")
            },
        },
        "medians": {
            name: {"hog": medians(rs, "hog"), "quiet": medians(rs, "quiet")}
            for name, rs in results.items()
        },
        "target": {"text": text, "met": met},
        "runs": results,
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)

    all_ok = all(r.get("ok") for rs in results.values() for r in rs)
    if not all_ok:
        return 1
    return 1 if args.check and not met else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--child", metavar="RUNTIME", help="one run, in this process")
    parser.add_argument("--runs", "-k", type=int, default=None, help="runs each")
    parser.add_argument(
        "--runtimes",
        default=",".join(RUNTIMES),
        help="comma-separated: curcor-pN[-nopreempt], asyncio, trio",
    )
    parser.add_argument("--quick", action="store_true", help="shorter phases")
    parser.add_argument("--json", default=str(RESULTS), help="where to write")
    parser.add_argument("--timeout", type=float, default=None, help="per run, s")
    parser.add_argument("--python", default=sys.executable, help="for children")
    parser.add_argument("--dump-after", type=float, help=argparse.SUPPRESS)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the target is not met"
    )
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child, args.quick, args.dump_after)

    args.runtimes = [n.strip() for n in args.runtimes.split(",") if n.strip()]
    for name in args.runtimes:
        ok = name in ("asyncio", "trio") or (
            name.startswith("curcor-p")
            and name[len("curcor-p") :].removesuffix("-nopreempt").isdigit()
        )
        if not ok:
            parser.error(f"unknown runtime {name!r}")
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.timeout is None:
        args.timeout = 10.0 if args.quick else 20.0
    return harness(args)


if __name__ == "__main__":
    sys.exit(main())

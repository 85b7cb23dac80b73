"""``curcor profile``: run a program and write an HTML report of runtime samples.

The program runs as ``curcor run`` runs it. Meanwhile a daemon thread wakes
every ``--interval`` seconds and, while a runtime runs, records:

- the scheduler: tasks live, runnable and blocked, and per worker its step
  count, whether it holds a task (busy), is parked (idle) or stuck;
- the GC governor's inputs and decisions: every collection (from its own
  ``gc.callbacks`` entry: generation, objects reclaimed, pause) and the
  generation-0 threshold in force;
- the buffer pool (bytes owned and lent) and sysmon's ``stuck_steps``;
- for each busy worker, where its task is: the innermost frame outside
  curcor (``curcor.debug.hot_site``), counted by file and line.

When the program ends, however it ends, one self-contained HTML file is
written: a summary, four plots as PNGs embedded in base64 (matplotlib), the
hottest places and per-worker figures. The exit status is the program's.
matplotlib is imported only to draw the report; the sampler needs nothing.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from curcor.cli import run
from curcor.cli._files import write_whole
from curcor.cli.debug import rename, split_flags

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = ["Sampler", "configure", "main", "write_report"]

USAGE = (
    "curcor profile [-o REPORT.html] [--interval SECONDS] [run flags] "
    "FILE.py | -m MODULE | MODULE:FUNC [args...]"
)
DEFAULT_OUTPUT = "curcor-profile.html"
DEFAULT_INTERVAL = 0.01
INSTALL = (
    "python -m pip install 'curcor[profile]' (or: python -m pip install matplotlib)"
)

# Samples kept before the sampler halves them and its rate (about 30 minutes
# at the default interval; arbitrary, bounds memory to tens of MB).
MAX_SAMPLES = 200_000
# Rows in the table of hottest places.
HOT_ROWS = 25

# This command's own flags, and whether each takes a value.
_OWN = {"-o": True, "--output": True, "--interval": True}


def configure(parser: argparse.ArgumentParser) -> None:
    """Describe the flags of ``curcor profile`` for its ``--help``."""
    run.configure(parser)
    parser.usage = USAGE
    parser.epilog = (
        "-o and --interval go before the target or right after it; the rest "
        "after the target is the program's sys.argv[1:]. The report is written "
        "when the program ends, also when it fails; the exit status is the "
        "program's."
    )
    own = parser.add_argument_group("profile")
    own.add_argument(
        "-o",
        "--output",
        metavar="REPORT.html",
        help=f"where to write the report (default {DEFAULT_OUTPUT})",
    )
    own.add_argument(
        "--interval",
        metavar="SECONDS",
        help=f"seconds between samples (default {DEFAULT_INTERVAL})",
    )


def main(argv: list[str], parser: argparse.ArgumentParser) -> int:
    """Run ``curcor profile`` with the arguments after ``profile``; return the
    status."""
    configure(parser)
    try:
        own, rest = split_flags(argv, _OWN, "profile")
        output = str(own.get("--output", own.get("-o", DEFAULT_OUTPUT)))
        interval = _parse_interval(own.get("--interval", DEFAULT_INTERVAL))
        request = run.parse(rest)
    except run.UsageError as exc:
        print(f"curcor: {rename(exc, 'profile')}", file=sys.stderr)
        return 2
    if request is None:
        parser.print_help()
        return 0
    return execute(request, output, interval)


def _parse_interval(text: object) -> float:
    """Seconds between samples, from 0.001 to 10.

    Raises:
        run.UsageError: not a number in that range.
    """
    try:
        value = float(str(text))
    except ValueError:
        value = -1.0
    if not 0.001 <= value <= 10:
        raise run.UsageError(
            f"--interval {text} is not a sampling interval; give seconds from "
            f"0.001 to 10, e.g. curcor profile --interval 0.01 app.py"
        )
    return value


def _check_output(path: str) -> None:
    """Make sure the report can be written, before the program runs.

    Raises:
        run.UsageError: the path is a directory, its directory is missing,
            or it cannot be written.
    """
    if os.path.isdir(path):
        raise run.UsageError(
            f"-o {path}: is a directory; name a file, e.g. -o "
            f"{os.path.join(path, DEFAULT_OUTPUT)}"
        )
    if os.path.exists(path) and not os.path.isfile(path):
        raise run.UsageError(
            f"-o {path}: is not a regular file (a device or a FIFO); name a "
            f"file, e.g. -o {DEFAULT_OUTPUT}"
        )
    existed = os.path.exists(path)
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise run.UsageError(
            f"cannot write the report to {path}: {exc.strerror}; choose a "
            f"writable path with -o, e.g. -o {DEFAULT_OUTPUT}"
        )
    if not existed:
        os.unlink(path)


def execute(request: run.Request, output: str, interval: float) -> int:
    """Run ``request`` under the sampler and write the report to ``output``.

    Returns:
        The program's exit status as ``curcor run`` gives it (also when the
        report was written after a failure); 2 for usage errors found
        before the program runs; 1 when matplotlib is missing or the report
        could not be written after a program that succeeded.
    """
    import importlib.util

    output = os.path.abspath(output)
    try:
        if request.kind == "file" and not os.path.exists(request.target):
            raise run.UsageError(
                f"can't open file {request.target!r}: no such file; check the path"
            )
        _check_output(output)
    except run.UsageError as exc:
        print(f"curcor: {rename(exc, 'profile')}", file=sys.stderr)
        return 2
    if importlib.util.find_spec("matplotlib") is None:
        print(
            f"curcor: curcor profile draws its report with matplotlib, which is "
            f"not installed here ({sys.executable}); install it with: {INSTALL}",
            file=sys.stderr,
        )
        return 1

    sampler = Sampler(interval)
    argv = [request.target, *request.args]
    sampler.start()
    try:
        status = run.execute(request)
    finally:
        sampler.stop()
    try:
        write_report(output, sampler, argv, status)
    except OSError as exc:
        print(
            f"curcor: cannot write the report to {output}: "
            f"{exc.strerror or exc}; any earlier report there is unchanged; "
            "free some space or choose a writable path with -o",
            file=sys.stderr,
        )
        return status or 1
    except ImportError as exc:
        print(
            f"curcor: the report needs matplotlib ({exc}); install it with "
            "pip install 'curcor[profile]'",
            file=sys.stderr,
        )
        return status or 1
    print(
        f"curcor: profile written to {output} ({len(sampler.samples)} samples "
        f"over {sampler.elapsed():.2f} s)",
        file=sys.stderr,
    )
    return status


# -- sampling ------------------------------------------------------------------


class Sample:
    """The figures of one look at the runtime (``t`` seconds after start)."""

    __slots__ = (
        "blocked",
        "capacity",
        "gc_collections",
        "gc_pause_total",
        "lent",
        "live",
        "pool",
        "runnable",
        "stuck_steps",
        "t",
        "threshold0",
        "workers",
    )

    def __init__(self, t: float, stats: Any, workers: list[tuple]) -> None:
        self.t = t
        self.live = stats.tasks_live
        self.runnable = stats.tasks_runnable
        self.blocked = stats.tasks_blocked
        self.gc_collections = stats.gc_collections
        self.gc_pause_total = stats.gc_pause_total
        self.threshold0 = stats.gc_threshold0
        self.pool = stats.pool_bytes
        self.lent = stats.pool_bytes_lent
        self.capacity = stats.pool_capacity
        self.stuck_steps = stats.stuck_steps
        # (index, steps, busy, idle, stuck) per worker
        self.workers = workers


class Sampler:
    """The sampling thread and what it gathered.

    Lock rule: ``samples``, ``sites`` and the counters are written by the
    sampling thread only and read once it has stopped; ``collections`` is
    appended to by whichever thread runs a garbage collection.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.samples: list[Sample] = []
        self.sites: dict[tuple[str, int, str], int] = {}  # (file, line, fn) -> n
        self.busy_samples = 0  # worker samples that found a task running
        self.curcor_samples = 0  # of those, ones in curcor's own code
        self.collections: list[tuple[float, int, int, float]] = []  # t, gen, n, s
        self.final: Any = None  # the last runtime's final stats
        self._gc_started = 0.0
        self._start = 0.0
        self._end = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def elapsed(self) -> float:
        return (self._end or time.monotonic()) - self._start

    def start(self) -> None:
        """Start sampling (a daemon thread) and timing collections."""
        import gc

        self._start = time.monotonic()
        gc.callbacks.append(self._gc)
        self._thread = threading.Thread(
            target=self._run, name="curcor-profile", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling; record the last runtime's final figures."""
        import gc

        from curcor._core.runtime import snapshot

        self._end = time.monotonic()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)
        self.final = snapshot(None)

    def _gc(self, phase: str, info: dict) -> None:
        """A ``gc.callbacks`` entry: time each collection (any thread)."""
        now = time.perf_counter()
        if phase == "start":
            self._gc_started = now
            return
        started = self._gc_started or now
        self.collections.append(
            (
                time.monotonic() - self._start,
                int(info.get("generation", 0)),
                int(info.get("collected", 0)),
                now - started,
            )
        )

    def _run(self) -> None:
        from curcor._core.runtime import running_runtime, snapshot

        while not self._stop.wait(self.interval):
            rt = running_runtime()
            if rt is None:
                continue
            try:
                self.sample(rt, snapshot)
            except Exception:
                # The runtime shut down under us: skip this look.
                continue

    def sample(self, rt: Any, snapshot: Any) -> None:
        """Take one look at runtime ``rt`` (sampling thread only)."""
        from curcor.debug import hot_site

        stats = snapshot(rt)
        frames = sys._current_frames()
        sched = rt.sched
        idle = list(sched.idle)
        workers = []
        for w in list(sched.workers):
            parked = w in idle
            busy = w.current is not None and not parked and not w.retired
            workers.append((w.index, w.steps, busy, parked, w.stuck))
            if not busy:
                continue
            site = hot_site(frames.get(w.ident))
            self.busy_samples += 1
            if site is None:
                self.curcor_samples += 1
            else:
                self.sites[site] = self.sites.get(site, 0) + 1
        del frames
        self.samples.append(Sample(time.monotonic() - self._start, stats, workers))
        if len(self.samples) >= MAX_SAMPLES:
            self.samples = self.samples[::2]
            self.interval *= 2


# -- the report ----------------------------------------------------------------


def write_report(path: str, sampler: Sampler, argv: list[str], status: int) -> None:
    """Write the HTML report of ``sampler`` to ``path``.

    Raises:
        OSError: the file cannot be written.
        ImportError: matplotlib is missing.
    """
    plots = _plots(sampler) if sampler.samples else []
    html = _html(sampler, argv, status, plots)
    write_whole(path, html)


def _png(fig: Any) -> str:
    """The figure as a base64 PNG."""
    import base64
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(title: str) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2))
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("seconds since start")
    ax.grid(True, alpha=0.3)
    return fig, ax


def _plots(s: Sampler) -> list[tuple[str, str, str]]:
    """(title, base64 PNG, caption) of each plot."""
    return [
        _plot_tasks(s),
        _plot_gc(s),
        _plot_pool(s),
        _plot_workers(s),
    ]


def _plot_tasks(s: Sampler) -> tuple[str, str, str]:
    title = "Tasks"
    fig, ax = _figure(title)
    t = [x.t for x in s.samples]
    ax.plot(t, [x.runnable for x in s.samples], label="runnable", lw=1.2)
    ax.plot(t, [x.blocked for x in s.samples], label="blocked", lw=1.2)
    ax.plot(t, [x.live for x in s.samples], label="live", lw=1, ls="--")
    ax.set_ylabel("tasks")
    ax.legend(loc="upper right", fontsize=8)
    caption = "Tasks runnable (queued to run), blocked (waiting) and live, sampled."
    return title, _png(fig), caption


def _plot_gc(s: Sampler) -> tuple[str, str, str]:
    title = "Garbage collections and the governor"
    fig, ax = _figure(title)
    colours = ("tab:blue", "tab:orange", "tab:red")
    for gen in range(3):
        found = [c for c in s.collections if min(c[1], 2) == gen]
        if found:
            ax.vlines(
                [c[0] for c in found],
                0,
                [c[3] * 1000 for c in found],
                colors=colours[gen],
                lw=2,
                label=f"generation {gen} pause",
            )
    ax.set_ylabel("pause ms")
    right = ax.twinx()
    right.step(
        [x.t for x in s.samples],
        [x.threshold0 for x in s.samples],
        where="post",
        color="tab:green",
        lw=1,
        label="threshold0 (governor)",
    )
    right.set_ylabel("generation-0 threshold")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=8)
    caption = (
        "Each collection's pause by generation (bars), and the generation-0 "
        "threshold the GC governor set (line; docs/gc.md)."
    )
    return title, _png(fig), caption


def _plot_pool(s: Sampler) -> tuple[str, str, str]:
    title = "Buffer pool"
    fig, ax = _figure(title)
    mb = 1 << 20
    t = [x.t for x in s.samples]
    ax.plot(t, [x.pool / mb for x in s.samples], label="owned", lw=1.2)
    ax.plot(t, [x.lent / mb for x in s.samples], label="lent out", lw=1.2)
    ax.plot(t, [x.capacity / mb for x in s.samples], label="capacity", lw=1, ls="--")
    ax.set_ylabel("MB")
    ax.legend(loc="upper right", fontsize=8)
    caption = "Bytes the I/O buffer pool owns and lends out, against its cap."
    return title, _png(fig), caption


def _plot_workers(s: Sampler) -> tuple[str, str, str]:
    title = "Worker utilisation"
    fig, ax = _figure(title)
    t = [x.t for x in s.samples]
    window = max(1, min(25, len(s.samples) // 20))
    count = max(len(x.workers) for x in s.samples)
    for index in range(count):
        busy = [_busy(x, index) for x in s.samples]
        ax.plot(t, _rolling(busy, window), label=f"worker {index}", lw=1.2)
    stuck = [x.t for x in s.samples if any(w[4] for w in x.workers)]
    if stuck:
        ax.plot(stuck, [1.02] * len(stuck), "|", color="tab:red", label="stuck")
    ax.set_ylabel("share of samples busy")
    ax.set_ylim(-0.02, 1.08)
    ax.legend(loc="lower right", fontsize=8)
    caption = (
        f"Share of samples in which each worker held a task (a moving average "
        f"of {window} samples); red ticks: sysmon found a worker stuck."
    )
    return title, _png(fig), caption


def _busy(sample: Sample, index: int) -> float:
    for w in sample.workers:
        if w[0] == index:
            return 1.0 if w[2] else 0.0
    return 0.0


def _rolling(values: list[float], window: int) -> list[float]:
    out = []
    total = 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _html(s: Sampler, argv: list[str], status: int, plots: list) -> str:
    """The whole report as one HTML page."""
    from html import escape

    final = s.final
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>curcor profile: {escape(' '.join(argv))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>curcor profile: {escape(' '.join(argv))}</h1>",
        _table(["", ""], _summary(s, status, final)),
    ]
    if not s.samples:
        parts.append(
            "<p>No samples: the program ended before a curcor runtime ran for "
            f"one interval ({s.interval} s).</p>"
        )
    for title, png, caption in plots:
        parts.append(f"<h2>{escape(title)}</h2>")
        parts.append(f'<img alt="{escape(title)}" src="data:image/png;base64,{png}">')
        parts.append(f"<p>{escape(caption)}</p>")
    parts.append("<h2>Hottest places</h2>")
    parts.append(
        f"<p>Where the busy workers' tasks were, by the innermost frame outside "
        f"curcor: {s.busy_samples} busy worker samples, "
        f"{s.curcor_samples} of them in curcor's own code.</p>"
    )
    parts.append(_table(["place", "function", "samples", "share"], _hot(s)))
    parts.append("<h2>Workers</h2>")
    parts.append(
        _table(
            ["worker", "steps", "busy", "idle", "stuck samples", "steals", "parks"],
            _worker_rows(s, final),
        )
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:60em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:0.2em 0.6em;text-align:left}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "img{max-width:100%}"
)


def _table(headers: list[str], rows: list[list]) -> str:
    from html import escape

    head = "".join(f"<th>{escape(h)}</th>" for h in headers) if any(headers) else ""
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{value}</td>'
            if isinstance(value, (int, float))
            else f"<td>{escape(str(value))}</td>"
            for value in row
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table>{'<tr>' + head + '</tr>' if head else ''}{''.join(body)}</table>"


def _summary(s: Sampler, status: int, final: Any) -> list[list]:
    rows: list[list] = [
        ["exit status", status],
        ["wall time", f"{s.elapsed():.3f} s"],
        ["samples", f"{len(s.samples)} every {s.interval} s"],
    ]
    if final is None or not final.maxprocs:
        return rows
    gens = "/".join(str(n) for n in final.gc_collections_by_generation)
    sites = ", ".join(f"{f}:{n} ({c})" for (f, n), c in final.stuck_sites[:5])
    peak = max((x.runnable for x in s.samples), default=0)
    rows += [
        ["workers (maxprocs)", final.maxprocs],
        ["poller backend", final.backend],
        ["tasks spawned", final.tasks_spawned],
        ["most tasks runnable at once (sampled)", peak],
        ["task steps", final.steps],
        ["gc mode", final.gc_mode],
        ["gc collections (generation 0/1/2)", gens],
        [
            "gc pause total / longest",
            f"{final.gc_pause_total * 1000:.1f} ms / "
            f"{final.gc_pause_max * 1000:.1f} ms",
        ],
        [
            "governor threshold0 at the end, changes",
            f"{final.gc_threshold0}, {final.gc_adjustments}",
        ],
        ["buffer pool hits / misses", f"{final.pool_hits} / {final.pool_misses}"],
        ["stuck steps (sysmon)", final.stuck_steps],
        ["where steps were stuck", sites or "-"],
    ]
    return rows


def _hot(s: Sampler) -> list[list]:
    ranked = sorted(s.sites.items(), key=lambda item: (-item[1], item[0]))
    total = max(1, s.busy_samples)
    return [
        [f"{f}:{line}", fn, n, f"{100 * n / total:.1f}%"]
        for (f, line, fn), n in ranked[:HOT_ROWS]
    ]


def _worker_rows(s: Sampler, final: Any) -> list[list]:
    rows = []
    count = max((len(x.workers) for x in s.samples), default=0)
    finals = {w.index: w for w in getattr(final, "workers", ())}
    n = max(1, len(s.samples))
    for index in range(count):
        mine = [w for x in s.samples for w in x.workers if w[0] == index]
        end = finals.get(index)
        rows.append(
            [
                index,
                end.steps if end else (mine[-1][1] if mine else 0),
                f"{100 * sum(1 for w in mine if w[2]) / n:.0f}%",
                f"{100 * sum(1 for w in mine if w[3]) / n:.0f}%",
                sum(1 for w in mine if w[4]),
                end.steals if end else 0,
                end.parks if end else 0,
            ]
        )
    return rows

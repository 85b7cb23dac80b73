"""``curcor top``: a live view of a running application's scheduler, read
from its control socket every ``--interval`` seconds: tasks by state and by
what they wait on, the workers, the garbage collector, the buffer pool.

Drawn with ``rich`` (the ``cli`` extra), imported only here, so that the
other commands and ``import curcor`` never pay for it.
"""

from __future__ import annotations

import os
import sys
import time

from curcor.cli._control import ControlError, add_socket_option, request, socket_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = ["configure", "execute", "render"]


# Refresh interval bounds: faster than 10 ms only loads the application it
# watches; an hour is plenty (time.sleep overflows near 9.2e9 s).
MIN_INTERVAL = 0.01
MAX_INTERVAL = 3600.0


def _interval(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds from {MIN_INTERVAL:g} to "
            f"{MAX_INTERVAL:g}, e.g. --interval 0.5"
        )
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``curcor top``."""
    add_socket_option(parser)
    parser.add_argument(
        "--interval",
        type=_interval,
        default=1.0,
        metavar="SECONDS",
        help="seconds between refreshes (default 1.0)",
    )
    parser.add_argument("--once", action="store_true", help="print one frame and exit")


def render(reply: dict[str, Any]) -> Any:
    """One frame of the view (a rich renderable) for a ``top`` answer."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    s = reply["stats"]
    header = Text(
        f"curcor top - pid {reply.get('pid', '?')}  up {s['uptime']:.1f}s  "
        f"{s['backend']}, maxprocs {s['maxprocs']}  steps {s['steps']}",
        style="bold",
    )

    tasks = Table(title="tasks", title_justify="left")
    tasks.add_column("state")
    tasks.add_column("now", justify="right")
    tasks.add_row("live", str(s["tasks_live"]))
    for state, n in sorted(reply.get("states", {}).items()):
        tasks.add_row(state, str(n))
    for kind, n in sorted(reply.get("waiting", {}).items()):
        tasks.add_row(f"  blocked on {kind}", str(n))
    tasks.add_row("spawned", str(s["tasks_spawned"]))
    tasks.add_row("finished", str(s["tasks_finished"]))

    workers = Table(title="workers", title_justify="left")
    for name in ("worker", "steps", "steals", "parks", "handoffs", "queued"):
        workers.add_column(name, justify="right")
    workers.add_column("stuck")
    for w in s["workers"]:
        stuck = "STUCK" if w.get("stuck") else ""
        workers.add_row(
            *(str(w[k]) for k in ("index", "steps", "steals", "parks", "handoffs")),
            str(w["queued"]),
            stuck,
        )

    return Group(header, tasks, workers, _runtime_table(s))


def _runtime_table(s: dict[str, Any]) -> Any:
    """GC, buffer pool, timers, I/O and preemption figures."""
    from rich.table import Table

    table = Table(title="runtime", title_justify="left")
    table.add_column("what")
    table.add_column("figures")
    gens = "/".join(str(n) for n in s["gc_collections_by_generation"])
    table.add_row(
        "gc",
        f"{s['gc_mode']}: {s['gc_collections']} collections ({gens} by "
        f"generation), pauses {s['gc_pause_total'] * 1000:.1f} ms total, "
        f"{s['gc_pause_max'] * 1000:.1f} ms max, thresholds "
        f"{s['gc_threshold0']}/{s['gc_threshold1']}",
    )
    table.add_row(
        "pool",
        f"{s['pool_hits']} hits, {s['pool_misses']} misses, "
        f"{s['pool_bytes']} bytes ({s['pool_bytes_lent']} lent) of "
        f"{s['pool_capacity']}",
    )
    table.add_row("timers", f"{s['timers_pending']} pending, {s['timers_fired']} fired")
    table.add_row(
        "io",
        f"{s['netpoll_waits']} netpoll waits, {s['thread_calls_in_flight']} "
        "to_thread calls in flight",
    )
    table.add_row(
        "preemption",
        f"{s['stuck_steps']} stuck steps, {s['spare_workers']} spares running "
        f"(max {s['spare_workers_max']})",
    )
    return table


def execute(args: argparse.Namespace) -> int:
    """Show the view until Ctrl-C (one frame with ``--once``); 1 on failure."""
    try:
        path = socket_path(args.socket)
        reply = request(path, "top")
    except ControlError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        from rich.console import Console
        from rich.live import Live
    except ImportError:
        print(
            "curcor: curcor top needs rich; install it with pip install 'curcor[cli]'",
            file=sys.stderr,
        )
        return 1
    if args.once:
        Console().print(render(reply))
        return 0
    try:
        with Live(render(reply), auto_refresh=False) as live:
            while True:
                time.sleep(args.interval)
                try:
                    reply = request(path, "top")
                except ControlError as exc:
                    live.stop()
                    # Connected before: a socket file that is gone now was
                    # removed by the application's clean shutdown.
                    if exc.stopped or not os.path.exists(path):
                        print(f"curcor: the application at {path} stopped")
                        return 0
                    print(exc, file=sys.stderr)
                    return 1
                live.update(render(reply), refresh=True)
    except KeyboardInterrupt:
        return 0

"""``curcor ps``: the tasks of a running application, read from its control
socket: a table (id, name, state, what each waits on), then each task's
stack, as a SIGQUIT dump shows them; ``--json`` prints the answer as is.
"""

from __future__ import annotations

import sys

from curcor.cli._control import ControlError, add_socket_option, request, socket_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = ["configure", "execute", "render_text"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``curcor ps``."""
    add_socket_option(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the application's answer as JSON: pid and, per task, id, "
        "name, state, worker, waiting_on and stack",
    )


def _state(task: dict[str, Any]) -> str:
    if task["state"] == "running" and task.get("worker") is not None:
        return f"running on worker {task['worker']}"
    return str(task["state"])


def _waiting(task: dict[str, Any]) -> str:
    wait = task.get("waiting_on")
    return str(wait["text"]) if wait else "-"


def render_text(reply: dict[str, Any]) -> str:
    """The table of tasks, then one stack per task."""
    tasks = reply["tasks"]
    rows = [("ID", "NAME", "STATE", "WAITING ON")]
    for t in tasks:
        name = t["name"] + (" (main)" if t.get("main") else "")
        rows.append((str(t["id"]), name, _state(t), _waiting(t)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"pid {reply.get('pid', '?')}: {len(tasks)} tasks", ""]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[3]]))
    for t in tasks:
        lines.append("")
        where = _waiting(t)
        detail = f"{_state(t)}" + (f": {where}" if where != "-" else "")
        lines.append(f"task {t['id']} {t['name']!r} [{detail}]:")
        stack = t.get("stack") or []
        for frame in stack:
            lines.append(
                f'  File "{frame["file"]}", line {frame["line"]}, '
                f"in {frame['function']}"
            )
        if not stack:
            lines.append("  (no frames: not started, or running a step now)")
    return "\n".join(lines)


def execute(args: argparse.Namespace) -> int:
    """Ask the application for its tasks and print them; 1 on failure."""
    try:
        path = socket_path(args.socket)
        reply = request(path, "ps")
    except ControlError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.json:
        import json

        document = {"pid": reply.get("pid"), "tasks": reply["tasks"]}
        print(json.dumps(document, indent=2))
    else:
        print(render_text(reply))
    return 0

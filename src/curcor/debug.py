"""What every curcor task is doing, for a person at a debugger.

A debugger that speaks DAP (VS Code, or any client of debugpy) lists
threads, and a thread is a curcor worker, not a task: the tasks that wait
on a channel or a timer have no thread and no stack in its views. While the
program is paused, evaluate this in the debug console::

    curcor.debug.tasks()

It shows every live task with its state and where it is suspended
(``curcor debug`` imports this module first, so ``curcor.debug`` resolves
in any frame that sees ``curcor``; elsewhere run ``import curcor.debug``).
The value also expands in the console's tree: ``tasks`` holds one
``TaskInfo`` per task. The module reads the runtime without taking its
locks, since the debugger may have paused a thread that holds one.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["TaskInfo", "TaskList", "tasks"]

# Frames of files under this directory are curcor's own, not the program's.
CURCOR_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

# Deepest stack shown for one task (a guard against a runaway await chain).
MAX_FRAMES = 64


class TaskInfo:
    """One task as the debugger shows it.

    Attributes:
        id: the task's number (``Task.id``).
        name: its name (``Task.name``).
        state: ``runnable``, ``running``, ``blocked`` or ``done``.
        waiting_on: what a blocked task waits on (as ``curcor ps`` says it),
            else "".
        worker: the index of the worker running it, else None; that
            worker's thread is the one to select in the debugger.
        stack: ``File "...", line N, in f`` lines, outermost call first.
    """

    __slots__ = ("id", "name", "stack", "state", "waiting_on", "worker")

    def __init__(
        self,
        id: int,
        name: str,
        state: str,
        waiting_on: str,
        worker: int | None,
        stack: tuple[str, ...],
    ) -> None:
        self.id = id
        self.name = name
        self.state = state
        self.waiting_on = waiting_on
        self.worker = worker
        self.stack = stack

    def header(self) -> str:
        """``task 3 [blocked on Channel] 'worker-3'`` (or ``running on worker 1``)."""
        what = self.state
        if self.waiting_on:
            what += f" on {self.waiting_on}"
        if self.worker is not None:
            what += f" on worker {self.worker}"
        return f"task {self.id} [{what}] {self.name!r}"

    def __str__(self) -> str:
        return "\n".join([self.header() + ":", *(self.stack or ("  (not started)",))])

    def __repr__(self) -> str:
        return f"<{self.header()}>"


class TaskList:
    """The tasks of the running runtime at one moment; prints as a dump.

    Attributes:
        tasks: a list of ``TaskInfo``, in the order the tasks were started.
    """

    __slots__ = ("tasks",)

    def __init__(self, tasks: list[TaskInfo]) -> None:
        self.tasks = tasks

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Any:
        return iter(self.tasks)

    def __getitem__(self, index: int) -> TaskInfo:
        return self.tasks[index]

    def __repr__(self) -> str:
        if not self.tasks:
            return "no curcor tasks (no runtime is running)"
        counts: dict[str, int] = {}
        for info in self.tasks:
            counts[info.state] = counts.get(info.state, 0) + 1
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        parts = [f"{len(self.tasks)} tasks: {summary}"]
        parts.extend(str(info) for info in self.tasks)
        return "\n\n".join(parts)

    __str__ = __repr__


def tasks() -> TaskList:
    """Every live task of the running runtime, with its state and stack.

    Safe to call from any thread, a paused one included: it takes no lock
    (the figures are a racy snapshot, exact while every thread is paused).

    Returns:
        A ``TaskList``; empty when no runtime is running. Its ``repr`` (what
        a debug console shows) is one block per task, as the deadlock report
        prints them.
    """
    from curcor._core.runtime import _wait_describer, running_runtime

    rt = running_runtime()
    if rt is None:
        return TaskList([])
    sched = rt.sched
    running = {}
    for w in list(sched.workers):
        task = w.current
        if task is not None and w.ident:
            running[id(task)] = w
    frames = sys._current_frames()
    waits = _wait_describer(sched)  # the words `curcor ps` and dumps use
    infos = [
        _describe(task, running.get(id(task)), frames, waits) for task in _live(sched)
    ]
    return TaskList(infos)


def _live(sched: Any) -> list[Any]:
    """The scheduler's live tasks, by id."""
    return list(sched.tasks())


def _describe(task: Any, worker: Any, frames: dict[int, Any], waits: Any) -> TaskInfo:
    """The ``TaskInfo`` of ``task``; ``worker`` is the one running it, if any;
    ``waits(task)`` says what a blocked task waits on."""
    from curcor._core.task import BLOCKED, RUNNING, STATE_NAMES, describe_stack

    state = task._state
    waiting = task._waiting_on
    waiting_on = waits(task) if waiting is not None else ""
    stack: list[str] = []
    index = None
    if worker is not None and state == RUNNING:
        index = worker.index
        stack = [_line(f) for f in task_frames(frames.get(worker.ident))]
    if not stack:
        stack = describe_stack(task)
        if _not_started(task.coro):
            stack.append("  (not started)")
    name = STATE_NAMES.get(state, "?")
    if state == BLOCKED and not waiting_on:
        waiting_on = "wake-up"
    return TaskInfo(task._id, task.name, name, waiting_on, index, tuple(stack))


def _not_started(coro: Any) -> bool:
    """Whether a coroutine was created and has not run yet (as inspect tells)."""
    if getattr(coro, "cr_running", True) or getattr(coro, "cr_suspended", True):
        return False
    return getattr(coro, "cr_frame", None) is not None


def _line(frame: Any) -> str:
    code = frame.f_code
    return f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}'


def task_frames(frame: Any) -> list[Any]:
    """The frames of the task a worker thread runs, outermost first.

    ``frame`` is the thread's innermost frame (``sys._current_frames()``).
    The task's frames are those above the worker's loop (``Worker._loop``,
    which steps the coroutine); none when the worker is between steps. A
    debugger's frames (an evaluation on a paused thread) and this module's
    are cut off with everything they called.
    """
    from curcor._core.scheduler import Worker

    loop = Worker._loop.__code__
    chain: list[Any] = []
    while frame is not None and len(chain) < MAX_FRAMES:
        if frame.f_code is loop:
            chain.reverse()
            return chain
        if _is_debugger(frame):
            chain.clear()
        else:
            chain.append(frame)
        frame = frame.f_back
    return []


# Modules whose frames are the debugger's or this module's, not the task's.
_DEBUGGER_MODULES = ("curcor.debug", "debugpy", "pydevd", "_pydevd", "_pydev")


def _is_debugger(frame: Any) -> bool:
    name = frame.f_globals.get("__name__") or ""
    return name.startswith(_DEBUGGER_MODULES)


def hot_site(frame: Any) -> tuple[str, int, str] | None:
    """(file, line, function) of the innermost frame outside curcor in the
    task a worker thread runs, or None when it runs curcor's own code or
    is between steps. ``frame`` is the thread's innermost frame."""
    for f in reversed(task_frames(frame)):
        code = f.f_code
        if not code.co_filename.startswith(CURCOR_DIR):
            return code.co_filename, f.f_lineno, code.co_name
    return None

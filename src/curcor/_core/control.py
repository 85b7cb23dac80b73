"""The control socket: a local Unix socket that ``curcor ps`` and ``curcor top``
read from a running application.

Switched on by the ``control`` key (``CURCOR_CONTROL=/tmp/app.sock``). The
socket is created at boot, mode 0600, and removed at shutdown; a daemon
thread answers one connection at a time.

Protocol
--------
The client sends one JSON object on one line and reads one JSON object
back, then the server closes the connection::

    {"cmd": "ps"}     -> {"ok": true, "pid": ..., "tasks": [TASK, ...]}
    {"cmd": "stats"}  -> {"ok": true, "pid": ..., "stats": {...}}
    {"cmd": "top"}    -> {"ok": true, "pid": ..., "stats": {...},
                          "states": {"blocked": n, ...},
                          "waiting": {"channel": n, ...}}
    anything else    -> {"ok": false, "error": "..."}

``stats`` is ``dataclasses.asdict(curcor.stats())``. A TASK is ``{"id",
"name", "state", "main", "worker", "waiting_on", "stack"}``: ``worker`` is the
index of the worker running it (or null), ``waiting_on`` is null or
``{"kind", "text", ...}`` (kinds: channel, select, sync, sleep, fd, join,
thread, taskgroup, barrier, other), and ``stack`` lists ``{"file", "line",
"function"}`` outermost first.

Who may connect
---------------
Only the user running the application: the file's mode is 0600, and on
Linux every peer's uid is checked (``SO_PEERCRED``), which also covers the
instant between ``bind`` and ``chmod`` and a root user who can open any
file. A refused peer gets a JSON error saying why.

Reading the tasks
-----------------
The tasks are read from this thread while workers run them: the list comes
from ``Scheduler.tasks()`` (a scan of the collector's objects), and each
task's fields are read once, without locks. A task may finish, or its record be reused,
while it is described; the answer is then a little stale, never an error.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import threading

from .errors import ConfigError

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any

# Longest request accepted, in bytes. Arbitrary: requests are a few bytes.
MAX_REQUEST = 64 * 1024

# Seconds a client gets to send its request and to read the answer, so a
# stuck client delays the others (and shutdown) by this much at most.
CLIENT_TIMEOUT = 5.0

COMMANDS = ("ps", "stats", "top")


class ControlServer:
    """The control socket of one runtime.

    Created at boot, before any worker starts: the constructor binds the
    socket (so a path in use stops boot); ``start`` starts the thread, and
    ``stop`` (idempotent) ends it and removes the socket file.

    Raises:
        ConfigError: the path is in use by a live process, is not a
            socket, or cannot be created.
    """

    def __init__(self, sched: Any, snapshot: Any, path: str, source: str) -> None:
        self.sched = sched
        self.snapshot = snapshot
        self.path = path
        self.served = 0  # connections answered (tests)
        self._sock = _listen(path, source)
        st = os.lstat(path)
        self._inode = (st.st_dev, st.st_ino)
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- life -----------------------------------------------------------------

    def start(self) -> None:
        """Start the server thread (a daemon, registered as the runtime's)."""
        from .runtime import start_runtime_thread

        self._thread = start_runtime_thread(self.sched, self._run, "curcor-control")

    def stop(self) -> None:
        """End the thread, close the socket and remove its file (idempotent)."""
        self._stop.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # closed already
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=CLIENT_TIMEOUT + 1)
        self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        # Remove the file only if it is still ours: another process may have
        # replaced it (a stale-file takeover after this one hung).
        try:
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._inode:
                os.unlink(self.path)
        except OSError:
            pass

    def _run(self) -> None:
        import selectors

        # A selector, not select.select: descriptor numbers of a busy server
        # can pass FD_SETSIZE.
        with selectors.DefaultSelector() as sel:
            sel.register(self._sock, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._stop.is_set():
                ready = sel.select()
                if self._stop.is_set():
                    return
                if any(key.fileobj is self._sock for key, _ in ready):
                    self._accept()

    def _accept(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except OSError:
            return  # the peer gave up already
        with conn:
            conn.settimeout(CLIENT_TIMEOUT)
            try:
                self._serve(conn)
            except OSError:
                pass  # the client went away or timed out
            self.served += 1

    # -- one connection -------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        import json

        # The request is read even from a refused peer, so that it is not
        # reset while sending and always gets to read the refusal.
        line = _read_line(conn)
        refusal = _refusal(conn)
        if refusal is not None:
            reply: dict[str, Any] = {"ok": False, "error": refusal}
        else:
            reply = self.answer(line)
        reply.setdefault("pid", os.getpid())
        conn.sendall(json.dumps(reply, default=str).encode() + b"\n")

    def answer(self, raw: bytes | None) -> dict[str, Any]:
        """The reply to one request line (on the server thread)."""
        import json

        example = 'send one JSON object on one line, e.g. {"cmd": "ps"}'
        if raw is None:
            return {"ok": False, "error": f"request too long or incomplete; {example}"}
        try:
            request = json.loads(raw)
        except ValueError as exc:
            return {"ok": False, "error": f"bad request ({exc}); {example}"}
        cmd = request.get("cmd") if isinstance(request, dict) else None
        if cmd == "ps":
            return {"ok": True, "tasks": self.tasks(stacks=True)}
        if cmd == "stats":
            return {"ok": True, "stats": self.stats()}
        if cmd == "top":
            return {"ok": True, "stats": self.stats(), **self.counts()}
        known = ", ".join(COMMANDS)
        return {"ok": False, "error": f"unknown command {cmd!r}; known: {known}"}

    # -- what the commands read -----------------------------------------------

    def stats(self) -> dict[str, Any]:
        """``curcor.stats()`` as a dict, with each worker's stuck flag."""
        import dataclasses

        return dataclasses.asdict(self.snapshot())

    def tasks(self, stacks: bool) -> list[dict[str, Any]]:
        """Every live task, described (see "Reading the tasks")."""
        from .task import DONE, FREE, STATE_NAMES, stack_frames

        sched = self.sched
        running = {w.current: w.index for w in list(sched.workers) if w.current}
        look = _Look(sched)
        out = []
        for task in sched.tasks():
            state = task._state
            if state in (DONE, FREE):
                continue
            info: dict[str, Any] = {
                "id": task._id,
                "name": _name(task),
                "state": STATE_NAMES.get(state, "?"),
                "main": task is sched.main,
                "worker": running.get(task),
                "waiting_on": describe_wait(task, look),
            }
            if stacks:
                info["stack"] = [
                    {"file": f, "line": line, "function": fn}
                    for f, line, fn in stack_frames(task)
                ]
            out.append(info)
        return out

    def counts(self) -> dict[str, Any]:
        """Tasks by state and by the kind of what they wait on (for top).

        One pass reading two fields per task, no description, so that a
        refresh every second stays cheap at 100,000 tasks (see docs/guide.md,
        "Seeing inside a running program").
        """
        from .task import DONE, FREE, STATE_NAMES

        by_state: dict[int, int] = {}
        by_type: dict[type, int] = {}
        for task in self.sched.tasks():
            state = task._state
            by_state[state] = by_state.get(state, 0) + 1
            obj = task._waiting_on
            if obj is not None:
                by_type[type(obj)] = by_type.get(type(obj), 0) + 1
        states = {
            STATE_NAMES.get(k, "?"): n
            for k, n in by_state.items()
            if k not in (DONE, FREE)
        }
        waiting: dict[str, int] = {}
        for cls, n in by_type.items():
            kind = KINDS.get(cls.__name__, "other")
            waiting[kind] = waiting.get(kind, 0) + n
        return {"states": states, "waiting": waiting}


# -- binding --------------------------------------------------------------------


def _listen(path: str, source: str) -> socket.socket:
    """Bind and listen at ``path``, taking over a stale file from a crash."""
    where = f"the control socket {path} (from {source})"
    try:
        st: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ConfigError(f"{where} cannot be checked: {exc.strerror}") from None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise ConfigError(
                f"{where} exists and is not a socket; remove that file or choose "
                "another path for control"
            )
        _take_over(path, where)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(16)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"{where} cannot be created: {exc.strerror}; choose a path in a "
            "directory you can write, e.g. /tmp/app.sock"
        ) from None
    return sock


def _take_over(path: str, where: str) -> None:
    """A socket file exists: remove it if nobody listens (a crashed run)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # stale: its process is gone
        return
    except FileNotFoundError:
        return  # removed meanwhile
    except PermissionError:
        raise ConfigError(
            f"{where} belongs to another user (uid {os.lstat(path).st_uid}); "
            "choose another path for control"
        ) from None
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror
        raise ConfigError(
            f"{where} is in use and did not answer ({reason}); stop the process "
            "listening there, or choose another path for control"
        ) from None
    finally:
        probe.close()
    raise ConfigError(
        f"{where} is in use: another running process listens there "
        f"(curcor ps --socket {path} shows its tasks); stop it, or give this "
        "one another path for control"
    )


def _refusal(conn: socket.socket) -> str | None:
    """Why the peer may not ask anything, or None (Linux checks its uid)."""
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None  # elsewhere the file's mode 0600 is the check
    fmt = "iII"  # struct ucred: pid, uid, gid
    pid, uid, _ = struct.unpack(fmt, conn.getsockopt(socket.SOL_SOCKET, opt, 12))
    me = os.geteuid()
    if uid == me:
        return None
    return (
        f"refused: this control socket answers only its own user (uid {me}); "
        f"the peer (pid {pid}) runs as uid {uid}. Run curcor ps as the user "
        "running the application"
    )


def _read_line(conn: socket.socket) -> bytes | None:
    """The request line (without its newline), or None when too long."""
    data = b""
    while b"\n" not in data:
        if len(data) > MAX_REQUEST:
            return None
        chunk = conn.recv(4096)
        if not chunk:
            return data if data.strip() else None
        data += chunk
    return data.split(b"\n", 1)[0]


# -- describing tasks -----------------------------------------------------------


def _name(task: Any) -> str:
    try:
        return str(task.name)
    except Exception:  # the record was recycled mid-read
        return f"task-{task._id}"


class _Look:
    """What one request learns once and reuses for every task: the sleep
    deadlines, the clock, and the members of each wait queue looked into
    (so that describing n waiters of one channel costs O(n), not O(n^2))."""

    def __init__(self, sched: Any) -> None:
        self.sleeps = _sleep_deadlines(sched)
        self.now = sched.clock.now()
        self._queues: dict[int, tuple[Any, dict[Any, Any]]] = {}

    def entry(self, queue: Any, task: Any) -> Any:
        """``task``'s entry in the wait queue ``queue``, or None (racy)."""
        known = self._queues.get(id(queue))
        if known is None:
            try:
                entries = list(queue)
            except RuntimeError:
                entries = []
            members = {e[0]: e for e in entries if e[0] is not None}
            # The queue is kept in the tuple so that its id stays its own.
            known = self._queues[id(queue)] = (queue, members)
        return known[1].get(task)


def _sleep_deadlines(sched: Any) -> dict[Any, float]:
    """Sleeping tasks and their deadlines, from a copy of the timer heap."""
    from .timers import WAKE

    out: dict[Any, float] = {}
    for entry in list(sched.timers.heap):
        try:
            if entry[2] == WAKE and entry[3] is not None:
                out[entry[3]] = entry[0]
        except (IndexError, TypeError):
            continue
    return out


# The kind of wait, by the class name of a task's ``_waiting_on``.
KINDS = {
    "Channel": "channel",
    "_SelectWait": "select",
    "_Forever": "select",
    "Timers": "sleep",
    "FdWait": "fd",
    "Task": "join",
    "_Job": "thread",
    "TaskGroup": "taskgroup",
    "_Unabortable": "taskgroup",
    "_Barrier": "barrier",
    "Mutex": "sync",
    "RWMutex": "sync",
    "Semaphore": "sync",
    "Event": "sync",
    "WaitGroup": "sync",
    "Condition": "sync",
}


def describe_wait(task: Any, look: _Look) -> Any:
    """What ``task`` waits on, as ``{"kind", "text", ...}``, or None."""
    obj = task._waiting_on
    if obj is None:
        return None
    try:
        return _describe(obj, task, look)
    except Exception as exc:  # the wait ended, or the object changed, mid-read
        return {"kind": "other", "text": f"{type(obj).__name__} ({exc!r})"}


def _describe(obj: Any, task: Any, look: _Look) -> Any:
    kind = type(obj).__name__
    where = f"0x{id(obj):x}"
    if kind == "Channel":
        op = "send" if look.entry(obj._sendq, task) is not None else "recv"
        size = len(obj._buf)
        text = f"channel {op}: Channel({obj.cap}) at {where}, {size} buffered"
        return {"kind": "channel", "text": text, "op": op, "cap": obj.cap}
    if kind == "_SelectWait":
        return {"kind": "select", "text": "select"}
    if kind == "_Forever":
        return {"kind": "select", "text": "select with no cases (forever)"}
    if kind == "Timers":
        deadline = look.sleeps.get(task)
        if deadline is None:
            return {"kind": "sleep", "text": "sleep"}
        left = max(0.0, deadline - look.now)
        return {"kind": "sleep", "text": f"sleep, {left:.3f}s left", "left": left}
    if kind == "FdWait":
        reader = obj.reader
        op = "read" if reader is not None and reader[0] is task else "write"
        owner = type(obj.owner).__name__ if obj.owner is not None else None
        text = f"fd {obj.fd} {op}" + (f" ({owner})" if owner else "")
        return {"kind": "fd", "text": text, "fd": obj.fd, "op": op}
    if kind == "Task":
        text = f"join of task {obj._id} ({_name(obj)})"
        return {"kind": "join", "text": text, "task": obj._id}
    if kind == "_Job":
        return {"kind": "thread", "text": f"to_thread({_callable_name(obj)})"}
    if kind == "TaskGroup":
        return {"kind": "taskgroup", "text": "TaskGroup.start: a child to start"}
    if kind == "_Unabortable":
        left = obj.group._count
        return {"kind": "taskgroup", "text": f"TaskGroup exit: {left} children left"}
    if kind == "_Barrier":
        return {"kind": "barrier", "text": "wait_all_tasks_blocked"}
    return _describe_sync(kind, obj, task, where, look)


def _callable_name(job: Any) -> str:
    """The function a ``to_thread`` job calls (seen through ``Context.run``,
    which wraps it when the task has context variables)."""
    fn, args = job.fn, job.args
    if type(getattr(fn, "__self__", None)).__name__ == "Context" and args:
        fn = args[0]
    fn = getattr(fn, "func", fn)  # functools.partial
    return getattr(fn, "__qualname__", None) or repr(fn)


def _describe_sync(kind: str, obj: Any, task: Any, where: str, look: _Look) -> Any:
    if kind == "Mutex":
        text = f"Mutex.lock at {where}"
    elif kind == "RWMutex":
        entry = look.entry(obj._waiters, task)
        op = "lock" if entry is not None and entry[2] else "rlock"
        text = f"RWMutex.{op} at {where}"
    elif kind == "Semaphore":
        text = f"Semaphore.acquire at {where} (value {obj._value})"
    elif kind == "Event":
        text = f"Event.wait at {where}"
    elif kind == "WaitGroup":
        text = f"WaitGroup.wait at {where} (count {obj._count})"
    elif kind == "Condition":
        text = f"Condition.wait at {where}"
    else:
        return {"kind": "other", "text": f"{kind} at {where}"}
    return {"kind": "sync", "text": text}

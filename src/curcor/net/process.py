"""Child processes whose pipes and exit are awaited on the runtime's poller.

``await run_process(argv)`` runs a command to completion, as
``subprocess.run`` does; ``await open_process(argv, stdout=PIPE)`` starts one
and gives a ``Process`` whose pipes are ``Stream`` objects.

How the pieces fit:

- Pipes are created here, not by ``subprocess``: the parent's ends are
  switched to non-blocking mode and wrapped in a ``PipeEnd``, which offers
  the ``recv``/``send``/``close``/``closed`` a ``Stream`` uses.
- The child is started by ``subprocess.Popen`` on the calling worker; with
  no ``preexec_fn`` that is a ``vfork``/``exec`` and takes well under a
  millisecond, so no thread is needed for it.
- Waiting for the exit: on Linux 5.3 and later a pidfd (``os.pidfd_open``)
  becomes readable when the child exits, so the task parks on the poller
  like any other descriptor wait. Elsewhere ``Popen.wait`` runs on the
  thread pool (``to_thread``), never on a worker. In both cases the status
  is collected by ``Popen`` itself, so it is never lost, even when the
  waiting task is cancelled halfway.
- A child is never left behind: leaving ``async with proc:``, and any
  failure or cancellation inside ``run_process``, closes the pipes, stops a
  child still running (SIGTERM, then SIGKILL after ``TERMINATE_GRACE``
  seconds) and reaps it, shielded from cancellation, before the exception
  travels on.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .._core.cancel import CancelScope, move_on_after
from .._core.group import TaskGroup
from .._core.io import (
    ClosedResourceError,
    notify_closing,
    retry_readable,
    retry_writable,
    wait_readable,
)
from .._core.sync import Mutex
from .._core.threads import to_thread
from .._core.traps import yield_now
from .socket import _checkpoint, _io_checkpoint
from .stream import Stream

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT
CompletedProcess = subprocess.CompletedProcess
CalledProcessError = subprocess.CalledProcessError

# Seconds a child gets to exit after SIGTERM before it is sent SIGKILL, when
# it has to be stopped (cancellation, leaving ``async with``). Arbitrary: long
# enough for a well-behaved program to clean up, short enough for a cancel.
TERMINATE_GRACE = 0.5

# Bytes asked of the kernel per read while collecting output. A pipe holds
# 64 KiB by default on Linux; reading more at once buys nothing.
_COLLECT_SIZE = 64 * 1024


class PipeEnd:
    """The parent's end of a pipe to a child: non-blocking and awaitable.

    It has the ``recv``/``send``/``close``/``closed`` a ``Stream`` uses, so
    ``Stream(PipeEnd(fd))`` reads or writes a pipe with the stream API.
    ``PipeEnd(fd)`` takes ownership of ``fd`` and closes it in ``close()``.
    """

    __slots__ = ("_closed", "_fd")

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self._fd = fd
        self._closed = False

    def fileno(self) -> int:
        """The descriptor (-1 once closed)."""
        return -1 if self._closed else self._fd

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedResourceError(errno.EBADF, "the pipe is closed")

    async def recv(self, bufsize: int) -> bytes:
        """Read up to ``bufsize`` bytes; ``b""`` once the child closed its end.

        Raises:
            ClosedResourceError: the pipe was closed, here or by another task.
        """
        if _io_checkpoint("PipeEnd.recv()"):
            await yield_now()
        while True:
            self._check_open()
            try:
                return os.read(self._fd, bufsize)
            except (BlockingIOError, InterruptedError):
                await retry_readable(self._fd, self)

    async def send(self, data: Any) -> int:
        """Write some of ``data``; the number of bytes written.

        Raises:
            BrokenPipeError: the child closed its end (or exited).
            ClosedResourceError: the pipe was closed, here or by another task.
        """
        if _io_checkpoint("PipeEnd.send()"):
            await yield_now()
        while True:
            self._check_open()
            try:
                return os.write(self._fd, data)
            except (BlockingIOError, InterruptedError):
                await retry_writable(self._fd, self)

    def close(self) -> None:
        """Close now: tasks waiting on it get ``ClosedResourceError``.

        The descriptor leaves the poller before it is closed; closing twice
        is harmless.
        """
        if self._closed:
            return
        self._closed = True
        notify_closing(self._fd)
        os.close(self._fd)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._fd}"
        return f"<curcor.net.process.PipeEnd {state}>"


def _pipe_stream(fd: int) -> Stream:
    # Stream only calls recv/send/close/closed, which PipeEnd provides; its
    # constructor is annotated for a Socket.
    return Stream(PipeEnd(fd))


def _open_pidfd(pid: int) -> int:
    """A pidfd for ``pid``, or -1 when none can be had (then: a thread)."""
    if not hasattr(os, "pidfd_open"):
        return -1
    try:
        return os.pidfd_open(pid)
    except OSError:
        # ENOSYS (kernel before 5.3), EPERM (a seccomp filter), EMFILE: the
        # child runs already, so fall back rather than fail and orphan it.
        return -1


class Process:
    """A running (or finished) child process; made by ``open_process``.

    Attributes:
        args: the argv it was started with.
        pid: its process id.
        stdin: a ``Stream`` to write to its standard input (with
            ``stdin=PIPE``), else None. ``await proc.stdin.aclose()`` sends
            what is buffered and then end-of-file.
        stdout: a ``Stream`` reading its standard output (with
            ``stdout=PIPE``), else None.
        stderr: the same for standard error (``stderr=PIPE``).

    ``async with proc:`` closes the pipes at the end and, if the child is
    still running then, stops it (SIGTERM, then SIGKILL) and reaps it.
    """

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        stdin: Stream | None,
        stdout: Stream | None,
        stderr: Stream | None,
    ) -> None:
        self._popen = popen
        self.args = popen.args
        self.pid = popen.pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self._pidfd = _open_pidfd(popen.pid)
        # Guards closing the pidfd against a signal sent through it from a
        # task on another worker; held briefly, never across an await.
        self._pidfd_lock = threading.Lock()
        # One task at a time waits on the pidfd (the poller allows a single
        # reader); the others queue here and find the status collected.
        self._wait_lock = Mutex()

    @property
    def returncode(self) -> int | None:
        """The exit status, or None while the child runs; ``-N`` means it
        was ended by signal N. Reading it never blocks."""
        return self._popen.poll()

    async def wait(self) -> int:
        """Wait until the child exits, reap it and return its exit status.

        Several tasks may wait at once. Cancelling a waiting task leaves
        the child running (``async with proc:`` stops it).
        """
        _checkpoint("Process.wait()")
        async with self._wait_lock:
            while self._popen.poll() is None:
                if self._pidfd >= 0:
                    await wait_readable(self._pidfd)
                else:
                    # Popen.wait records the status itself: a cancelled wait
                    # leaves a thread that still reaps the child, and a later
                    # wait finds the status (Popen serialises the waitpid).
                    await to_thread(self._popen.wait)
                    if self._popen.returncode is None:
                        raise RuntimeError("Process.wait: Popen.wait did not reap")
            self._close_pidfd()
        assert self._popen.returncode is not None
        return self._popen.returncode

    def _close_pidfd(self) -> None:
        with self._pidfd_lock:
            if self._pidfd >= 0:
                fd, self._pidfd = self._pidfd, -1
                notify_closing(fd)
                os.close(fd)

    # -- signals -----------------------------------------------------------------

    def send_signal(self, sig: int) -> None:
        """Send signal ``sig``; does nothing once the child has been reaped
        (so a reused process id is never signalled)."""
        with self._pidfd_lock:
            # Through the pidfd, a signal cannot reach another process that
            # reused the id, even if a task on another worker reaps the child
            # at this moment.
            if self._pidfd >= 0 and hasattr(signal, "pidfd_send_signal"):
                try:
                    signal.pidfd_send_signal(self._pidfd, sig)
                except ProcessLookupError:
                    pass
                return
        self._popen.send_signal(sig)

    def terminate(self) -> None:
        """Ask the child to exit: SIGTERM."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """End the child at once: SIGKILL."""
        self.send_signal(signal.SIGKILL)

    # -- ending ------------------------------------------------------------------

    def _close_pipes(self) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream.close()

    async def aclose(self) -> None:
        """Close the pipes; stop the child if it still runs; reap it.

        A running child gets SIGTERM, and SIGKILL when it has not exited
        ``TERMINATE_GRACE`` seconds later. This runs to the end even in a
        cancelled scope, so no child is left behind; ``Cancelled`` is
        raised afterwards.
        """
        self._close_pipes()
        with CancelScope(shield=True):
            if self.returncode is None:
                self.terminate()
                with move_on_after(TERMINATE_GRACE):
                    await self.wait()
            if self.returncode is None:
                self.kill()
            await self.wait()

    async def __aenter__(self) -> Process:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # A Process dropped unreaped: Popen.__del__ queues the child for
        # reaping; only the pidfd is ours to release. No task waits on it
        # (a waiter would keep this object alive) and a finished wait leaves
        # it unregistered, so it is closed without notify_closing, whose
        # poller lock a finalizer must not take.
        fd = getattr(self, "_pidfd", -1)
        if fd >= 0:
            self._pidfd = -1
            try:
                os.close(fd)
            except OSError:
                pass

    def __repr__(self) -> str:
        code = self.returncode
        state = "running" if code is None else f"returncode={code}"
        return f"<curcor.net.process.Process pid={self.pid} {state}>"


# -- starting ----------------------------------------------------------------------


def _check_argv(argv: Any) -> list[Any]:
    """``argv`` as a list, or a TypeError/ValueError that says how to fix it."""
    if isinstance(argv, str | bytes):
        raise TypeError(
            f"argv must be a sequence of arguments, not a single string "
            f"({argv!r}): write [{argv!r}] for a program without arguments, "
            f"or shlex.split({argv!r}) to split a command line"
        )
    if not isinstance(argv, Sequence):
        raise TypeError(
            f"argv must be a list of str, bytes or os.PathLike, not "
            f"{type(argv).__name__}: write e.g. ['ls', '-l']"
        )
    if not argv:
        raise ValueError("argv is empty: it needs at least the program to run")
    for i, arg in enumerate(argv):
        if not isinstance(arg, str | bytes | os.PathLike):
            raise TypeError(
                f"argv[{i}] is {type(arg).__name__} ({arg!r}); every argument "
                f"must be str, bytes or os.PathLike: write str({arg!r})"
            )
    return list(argv)


def _check_target(name: str, target: Any, *, allow_stdout: bool = False) -> None:
    if target is STDOUT and not allow_stdout:
        raise ValueError(f"{name}=STDOUT is only meaningful for stderr")
    if target in (None, PIPE, DEVNULL, STDOUT):
        return
    if isinstance(target, int) and target >= 0:
        return
    if hasattr(target, "fileno"):
        return
    raise TypeError(
        f"{name}={target!r}: use PIPE, DEVNULL, None (inherit), a file "
        "descriptor or a file object"
    )


async def open_process(
    argv: Sequence[str | bytes | os.PathLike[Any]],
    *,
    stdin: Any = None,
    stdout: Any = None,
    stderr: Any = None,
    cwd: str | bytes | os.PathLike[Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Process:
    """Start ``argv`` as a child process and return its ``Process``.

    ``stdin``, ``stdout`` and ``stderr`` each take ``PIPE`` (a ``Stream`` on
    the process), ``DEVNULL``, None (inherit this process's), a descriptor
    or a file object; ``stderr=STDOUT`` merges it into standard output.
    The program is looked up on ``PATH`` as ``subprocess`` does.

    Use ``async with await open_process(...) as proc:`` so the child is
    stopped and reaped however the block ends.

    Raises:
        FileNotFoundError: no such program (or no such ``cwd``).
        PermissionError: the program is not executable.
        TypeError, ValueError: ``argv`` or a pipe argument is malformed.
    """
    args = _check_argv(argv)
    _check_target("stdin", stdin)
    _check_target("stdout", stdout)
    _check_target("stderr", stderr, allow_stdout=True)
    _checkpoint("open_process()")

    # Our own pipes (close-on-exec), so the parent's ends can be made
    # non-blocking; the child's ends are closed here once it has them.
    ours: list[int] = []
    theirs: list[int] = []

    def pipe(target: Any, child_reads: bool) -> Any:
        if target is not PIPE:
            return target
        r, w = os.pipe()
        ours.append(w if child_reads else r)
        theirs.append(r if child_reads else w)
        return theirs[-1]

    try:
        child_in = pipe(stdin, True)
        child_out = pipe(stdout, False)
        child_err = pipe(stderr, False)
        popen = subprocess.Popen(
            args,
            stdin=child_in,
            stdout=child_out,
            stderr=child_err,
            cwd=cwd,
            env=env,
        )
    except FileNotFoundError as exc:
        for fd in ours:
            os.close(fd)
        raise _not_found(exc, args, cwd) from None
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)

    it = iter(ours)
    return Process(
        popen,
        _pipe_stream(next(it)) if stdin is PIPE else None,
        _pipe_stream(next(it)) if stdout is PIPE else None,
        _pipe_stream(next(it)) if stderr is PIPE else None,
    )


def _not_found(exc: FileNotFoundError, args: list[Any], cwd: Any) -> OSError:
    """A FileNotFoundError that says which of program and cwd is missing."""
    program = os.fsdecode(args[0])
    missing = exc.filename
    # Popen names the directory when chdir(cwd) failed, the program otherwise.
    named_cwd = cwd is not None and missing is not None
    if named_cwd and os.fsdecode(missing) == os.fsdecode(cwd):
        return FileNotFoundError(
            errno.ENOENT, f"cannot start {program!r}: no directory {cwd!r}", cwd
        )
    where = "" if os.sep in program else " on PATH"
    return FileNotFoundError(
        errno.ENOENT, f"cannot start {program!r}: no such program{where}", program
    )


# -- running to completion ---------------------------------------------------------


async def _feed(stream: Stream, data: bytes) -> None:
    """Write ``data``, then end-of-file; a child that stops reading early is
    not an error (as with ``subprocess.run``)."""
    view = memoryview(data)
    try:
        while view:
            piece = view[: stream.write_limit]
            stream.write(piece)
            await stream.drain()
            view = view[len(piece) :]
    except BrokenPipeError:
        pass
    finally:
        stream.close()


async def _collect(stream: Stream, into: bytearray) -> None:
    """Read ``stream`` to its end into ``into``."""
    while data := await stream.read(_COLLECT_SIZE):
        into += data


async def run_process(
    argv: Sequence[str | bytes | os.PathLike[Any]],
    *,
    input: bytes | None = None,
    capture_stdout: bool = False,
    capture_stderr: bool = False,
    check: bool = True,
    cwd: str | bytes | os.PathLike[Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` to completion, as ``subprocess.run`` does, without
    blocking a worker.

    ``input`` is written to the child's standard input, then end-of-file
    (with None the child inherits this process's). Captured output is
    returned as bytes in ``.stdout`` / ``.stderr`` (None when not captured;
    uncaptured output goes where this process's goes).

    When the awaiting task is cancelled (or anything else fails), the child
    is stopped (SIGTERM, then SIGKILL after ``TERMINATE_GRACE`` s) and
    reaped before the exception travels on.

    Raises:
        subprocess.CalledProcessError: ``check`` is true and the exit status
            is not zero (it carries the captured output).
        FileNotFoundError: no such program (or no such ``cwd``).
        TypeError: ``argv`` is malformed, or ``input`` is not bytes.
    """
    if input is not None and not isinstance(input, bytes | bytearray | memoryview):
        raise TypeError(
            f"input must be bytes, not {type(input).__name__}: write "
            "input=text.encode() to send text"
        )
    proc = await open_process(
        argv,
        stdin=PIPE if input is not None else None,
        stdout=PIPE if capture_stdout else None,
        stderr=PIPE if capture_stderr else None,
        cwd=cwd,
        env=env,
    )
    out = bytearray()
    err = bytearray()
    async with proc:
        async with TaskGroup() as tg:
            if proc.stdin is not None and input is not None:
                tg.go(_feed(proc.stdin, bytes(input)))
            if proc.stdout is not None:
                tg.go(_collect(proc.stdout, out))
            if proc.stderr is not None:
                tg.go(_collect(proc.stderr, err))
        returncode = await proc.wait()

    stdout = bytes(out) if capture_stdout else None
    stderr = bytes(err) if capture_stderr else None
    if check and returncode != 0:
        raise CalledProcessError(returncode, proc.args, stdout, stderr)
    return CompletedProcess(proc.args, returncode, stdout, stderr)


__all__ = [
    "DEVNULL",
    "PIPE",
    "STDOUT",
    "CalledProcessError",
    "CompletedProcess",
    "PipeEnd",
    "Process",
    "open_process",
    "run_process",
]

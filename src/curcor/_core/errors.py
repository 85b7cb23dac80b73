"""The exceptions of the runtime core, all re-exported by ``curcor``; and
``without_frames``, which cuts curcor's own frames out of a traceback."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Cancelled",
    "ChannelClosed",
    "ConfigError",
    "DeadlockError",
    "RuntimeMisuse",
    "Terminated",
    "ThreadCreateError",
    "WouldBlock",
]


class Cancelled(BaseException):
    """Raised inside a task at each await once an enclosing scope is cancelled.

    It is a ``BaseException`` so that ``except Exception`` cannot swallow it:
    cancellation is level-triggered and keeps being raised until the cancelled
    scope exits.
    """


class ChannelClosed(Exception):
    """A send on a closed channel, a second close, or a receive once drained."""


class WouldBlock(Exception):
    """``Channel.try_recv`` found nothing to take and the channel is open."""


class DeadlockError(RuntimeError):
    """Every task is blocked and nothing can wake any of them.

    The message starts with ``curcor: all tasks are asleep - deadlock!`` and
    holds a stack dump of every task.
    """


class ConfigError(ValueError):
    """A configuration value is bad; the message says what, where and what fits.

    ``curcor run`` prints it as ``curcor: scheduler init panic: <message>``
    and exits with status 2.
    """


class ThreadCreateError(RuntimeError):
    """A worker thread could not be created; nothing was left half started.

    ``curcor run`` prints it as ``curcor: failed to create OS thread: <reason>``
    and exits with status 2.
    """


class RuntimeMisuse(RuntimeError):
    """The API was used in a way that cannot work; the message names the fix."""


class Terminated(BaseException):
    """``curcor.run`` was stopped by SIGTERM after a graceful shutdown.

    ``curcor run`` turns it into exit status 0 when it was the only failure.
    """


# Show the public module in tracebacks: ``curcor.DeadlockError``, not the
# private module that defines it.
for _cls in (
    Cancelled,
    ChannelClosed,
    ConfigError,
    DeadlockError,
    RuntimeMisuse,
    Terminated,
    ThreadCreateError,
    WouldBlock,
):
    _cls.__module__ = "curcor"


def check_seconds(value: Any, what: str) -> float:
    """``value`` as a float number of seconds (or a deadline), or a clear
    ``TypeError`` or ``ValueError`` naming ``what``: every time argument of
    the runtime goes through here, so none can put NaN on the timer heap
    (where it would never fall due and hold back every later timer)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{what} takes seconds as a number (int or float), not {value!r}"
        )
    if value != value:
        raise ValueError(f"{what} got NaN seconds; give a number (math.inf: never)")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(
            f"{what} got a number of seconds too large for a float; "
            "use math.inf for no limit"
        ) from None


def without_frames(tb: Any, ours: Any) -> Any:
    """``tb`` without the frames whose file ``ours(filename)`` claims. The
    innermost frame stays even when it is claimed, so an error raised there
    still shows where."""
    import types

    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    keep = [
        t
        for i, t in enumerate(entries)
        if i == len(entries) - 1 or not ours(t.tb_frame.f_code.co_filename)
    ]
    if len(keep) == len(entries):
        return entries[0]
    rebuilt = None
    for t in reversed(keep):
        rebuilt = types.TracebackType(rebuilt, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return rebuilt


def curcor_log() -> Any:
    """The ``curcor`` logger. ``logging`` is imported at the first message,
    not at every boot (3 ms); if that import cannot open its files (the
    process is out of descriptors, EMFILE), a stand-in writes the message to
    stderr instead, so that reporting a problem never raises one."""
    try:
        import logging
    except OSError:
        return _StderrLog()
    return logging.getLogger("curcor")


class _StderrLog:
    """What ``curcor_log`` returns when ``logging`` cannot be imported."""

    def _write(self, msg: str, *args: Any, **kwargs: Any) -> None:
        import sys

        try:
            sys.stderr.write("curcor: " + (msg % args if args else msg) + "\n")
        except Exception:  # a closed stderr: nowhere left to say it
            pass

    debug = info = warning = error = exception = _write

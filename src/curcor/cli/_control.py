"""The client side of the control socket, shared by ``curcor ps`` and ``top``.

One request per connection: send ``{"cmd": ...}`` on one line, read the
JSON answer to EOF (the protocol is described in curcor/_core/control.py).
Every failure becomes a ``ControlError`` whose message names the path and
what to do; the commands print it and exit with status 1.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = ["ControlError", "add_socket_option", "request", "socket_path"]

# Seconds to wait for an answer. Arbitrary: a ps of 100,000 tasks takes
# about a second to build.
TIMEOUT = 30.0


class ControlError(Exception):
    """The control socket could not be asked; the message says why and how
    to fix it. ``stopped`` is True when nothing listens (any more)."""

    def __init__(self, message: str, stopped: bool = False) -> None:
        super().__init__(message)
        self.stopped = stopped


def add_socket_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--socket PATH`` with its help."""
    parser.add_argument(
        "--socket",
        metavar="PATH",
        help="the application's control socket (default: CURCOR_CONTROL, else "
        "the control key of the curcor.toml found from the current directory)",
    )


def socket_path(given: str | None) -> str:
    """The socket to ask: ``given``, else the ``control`` key in force here.

    Raises:
        ControlError: none is given or configured, or the setting is bad.
    """
    if given:
        return given
    from curcor._core.config import ConfigError, load_key

    try:
        value, _ = load_key("control", start=os.getcwd())
    except ConfigError as exc:
        raise ControlError(f"curcor: {exc}") from None
    if not value:
        raise ControlError(
            "curcor: no control socket given; pass --socket PATH, or set "
            "CURCOR_CONTROL=PATH as for the application (which must have been "
            'started with CURCOR_CONTROL=PATH, or control = "PATH" in its '
            "curcor.toml)"
        )
    return str(value)


def request(path: str, cmd: str) -> dict[str, Any]:
    """Send ``{"cmd": cmd}`` to the socket at ``path``; return the answer.

    Raises:
        ControlError: no such socket, nobody listening, not allowed, no
            answer, or the application refused the request.
    """
    import json
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    try:
        try:
            sock.connect(path)
        except OSError as exc:
            raise _connect_error(path, exc) from None
        try:
            sock.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
            data = _read_all(sock)
        except TimeoutError:
            raise ControlError(
                f"curcor: {path} did not answer within {TIMEOUT:.0f} s; the "
                "application may be stuck (kill -QUIT PID dumps its stacks)"
            ) from None
        except OSError as exc:
            raise ControlError(
                f"curcor: the connection to {path} failed: {exc.strerror or exc}",
                stopped=True,
            ) from None
    finally:
        sock.close()
    if not data.strip():
        raise ControlError(
            f"curcor: {path} closed the connection without an answer (the "
            "application is shutting down?)",
            stopped=True,
        )
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError(
            f"curcor: {path} answered something other than JSON; is it a curcor "
            "application's control socket?"
        ) from None
    if not isinstance(reply, dict) or not reply.get("ok"):
        error = reply.get("error") if isinstance(reply, dict) else reply
        raise ControlError(f"curcor: {path}: {error}")
    return reply


def _read_all(sock: Any) -> bytes:
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _connect_error(path: str, exc: OSError) -> ControlError:
    """The message for a failed connect, by cause."""
    start = (
        f"start the application with CURCOR_CONTROL={path} "
        f'(or control = "{path}" in its curcor.toml)'
    )
    if isinstance(exc, FileNotFoundError):
        return ControlError(
            f"curcor: no control socket at {path}; {start}, or pass the right "
            "path with --socket"
        )
    import stat

    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None and not stat.S_ISSOCK(st.st_mode):
        return ControlError(
            f"curcor: {path} is not a socket; pass the application's control "
            "socket with --socket"
        )
    if isinstance(exc, ConnectionRefusedError):
        return ControlError(
            f"curcor: nothing is listening on {path}: the application is not "
            f"running (the file was left by a run that crashed); {start}, "
            "which replaces the stale file",
            stopped=True,
        )
    if isinstance(exc, PermissionError):
        owner = f"uid {st.st_uid}" if st is not None else "another user"
        return ControlError(
            f"curcor: permission denied for {path}: the control socket belongs "
            f"to {owner} and answers only that user; run this command as that "
            "user"
        )
    return ControlError(f"curcor: cannot connect to {path}: {exc.strerror or exc}")

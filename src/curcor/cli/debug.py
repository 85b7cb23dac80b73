"""``curcor debug``: run a program under debugpy so a DAP client can attach.

The program runs exactly as ``curcor run`` runs it (same flags, targets and
exit statuses); before it starts, debugpy listens on 127.0.0.1:PORT (5678
unless ``--port``), so VS Code's "Remote Attach" or any DAP client attaches
with no launch configuration. ``--wait`` holds the program until a client
has attached and finished configuring (breakpoints set).

Task-awareness: DAP has threads and no tasks, so this command imports
``curcor.debug`` before the program starts; evaluating
``curcor.debug.tasks()`` in the debug console lists every task with its
state and stack (docs/cli.md, "curcor debug"). debugpy is imported only
here, when the command runs: ``curcor version`` never loads it.
"""

from __future__ import annotations

import os
import sys

from curcor.cli import run

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

__all__ = ["DEFAULT_PORT", "HOST", "configure", "main", "split_flags"]

HOST = "127.0.0.1"
DEFAULT_PORT = 5678  # debugpy's and VS Code's usual port
USAGE = (
    "curcor debug [--port N] [--wait] [run flags] "
    "FILE.py | -m MODULE | MODULE:FUNC [args...]"
)
INSTALL = "python -m pip install 'curcor[debug]' (or: python -m pip install debugpy)"

# This command's own flags, and whether each takes a value.
_OWN = {"--port": True, "--wait": False}


def configure(parser: argparse.ArgumentParser) -> None:
    """Describe the flags of ``curcor debug`` for its ``--help``."""
    run.configure(parser)
    parser.usage = USAGE
    parser.epilog = (
        "--port and --wait go before the target or right after it; the rest "
        "after the target is the program's sys.argv[1:] ('--' right after the "
        "target passes a program its own --port). Evaluate "
        "curcor.debug.tasks() in the debug console for the task list."
    )
    own = parser.add_argument_group("debugger")
    own.add_argument(
        "--port",
        metavar="N",
        help=f"listen for the DAP client on {HOST}:N (default {DEFAULT_PORT})",
    )
    own.add_argument(
        "--wait",
        action="store_true",
        help="start the program only once a client has attached",
    )


def split_flags(
    argv: list[str], own: dict[str, bool], command: str
) -> tuple[dict[str, str | bool], list[str]]:
    """Take a command's own flags out of ``curcor run``-style arguments.

    Own flags are read before the target and directly after it; the first
    other token after the target starts the program's arguments, and a
    ``--`` there is dropped (so ``app.py -- --port 80`` gives the program
    ``--port 80``). Everything else is left, in order, for ``run.parse``.

    Returns:
        ({flag: value, or True for a flag without one}, the other tokens).

    Raises:
        run.UsageError: an own flag lacks its value or has one it cannot take.
    """
    found: dict[str, str | bool] = {}
    rest: list[str] = []
    target_seen = False
    i = 0
    while i < len(argv):
        token = argv[i]
        name, eq, _ = token.partition("=")
        if name in own:
            i = _take_own(argv, i, own[name], found, command)
            continue
        if target_seen:
            rest.extend(argv[i + 1 :] if token == "--" else argv[i:])
            break
        rest.append(token)
        i += 1
        if token in ("--", "-m"):
            # The target (or module) follows: take it too.
            rest.extend(argv[i : i + 1])
            i += 1
            target_seen = True
        elif token.startswith("-m") or token in ("-h", "--help"):
            target_seen = token != "-h" and token != "--help"
        elif token.startswith("--"):
            # One of curcor run's flags: its value too, unless given with =.
            if not eq and i < len(argv):
                rest.append(argv[i])
                i += 1
        else:
            target_seen = True
    return found, rest


def _take_own(
    argv: list[str], i: int, takes_value: bool, found: dict, command: str
) -> int:
    """Record the own flag at ``argv[i]``; return the next index."""
    name, eq, value = argv[i].partition("=")
    if not takes_value:
        if eq:
            raise run.UsageError(
                f"{name} takes no value; write curcor {command} {name}"
            )
        found[name] = True
        return i + 1
    if not eq:
        if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
            raise run.UsageError(
                f"{name} needs a value, e.g. curcor {command} {name} VALUE app.py"
            )
        i += 1
        value = argv[i]
    found[name] = value
    return i + 1


def parse_port(text: str | bool) -> int:
    """The TCP port ``--port`` names (0: any free port).

    Raises:
        run.UsageError: it is not a number from 0 to 65535.
    """
    try:
        port = int(str(text))
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise run.UsageError(
            f"--port {text} is not a TCP port; give a number from 0 to 65535 "
            "(0 picks a free port), "
            f"e.g. curcor debug --port {DEFAULT_PORT} app.py"
        )
    return port


def rename(exc: run.UsageError, command: str) -> str:
    """``curcor run``'s usage message, spoken as ``curcor COMMAND``."""
    return str(exc).replace("curcor run", f"curcor {command}")


def main(argv: list[str], parser: argparse.ArgumentParser) -> int:
    """Run ``curcor debug`` with the arguments after ``debug``; return the status."""
    configure(parser)
    try:
        own, rest = split_flags(argv, _OWN, "debug")
        port = parse_port(own.get("--port", str(DEFAULT_PORT)))
        request = run.parse(rest)
    except run.UsageError as exc:
        print(f"curcor: {rename(exc, 'debug')}", file=sys.stderr)
        return 2
    if request is None:
        parser.print_help()
        return 0
    return execute(request, port, bool(own.get("--wait")))


def execute(request: run.Request, port: int, wait: bool) -> int:
    """Start debugpy on ``port``, then run ``request`` as ``curcor run`` does.

    Returns:
        The program's exit status as ``curcor run`` gives it; 1 when debugpy
        is missing or the port is taken; 2 for a missing target file.
    """
    if request.kind == "file" and not os.path.exists(request.target):
        return run.exit_status(run.UsageError(_no_file(request.target)))
    import importlib.util

    if importlib.util.find_spec("debugpy") is None:
        print(
            f"curcor: curcor debug needs debugpy, which is not installed here "
            f"({sys.executable}); install it with: {INSTALL}",
            file=sys.stderr,
        )
        return 1
    busy = _port_in_use(port, request.target)
    if busy:
        print(f"curcor: {busy}", file=sys.stderr)
        return 1
    try:
        port = _listen(port)
    except RuntimeError as exc:
        print(
            f"curcor: debugpy could not listen on {HOST}:{port}: {exc}", file=sys.stderr
        )
        return 1

    # The task list must resolve as curcor.debug in the debug console.
    import curcor.debug  # noqa: F401

    print(
        f"curcor: debugger listening on {HOST}:{port} (DAP); attach a client, "
        f"e.g. VS Code's Python Debugger: Remote Attach",
        file=sys.stderr,
    )
    if wait:
        print(
            "curcor: waiting for the client before the program starts (--wait)",
            file=sys.stderr,
        )
        sys.stderr.flush()
        import debugpy

        try:
            debugpy.wait_for_client()
        except KeyboardInterrupt:
            sys.stderr.write("curcor: interrupted while waiting for a debugger\n")
            return 130
    return run.execute(request)


def _no_file(target: str) -> str:
    return f"can't open file {target!r}: no such file; check the path"


def _port_in_use(port: int, target: str) -> str:
    """A message naming the fix when ``port`` is taken on HOST, else ""."""
    import errno
    import socket

    if port == 0:
        return ""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((HOST, port))
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
            return f"cannot listen on {HOST}:{port}: {exc.strerror}; pick another port"
        why = "is in use" if exc.errno == errno.EADDRINUSE else "needs privileges"
        return (
            f"port {port} on {HOST} {why} (another debugger or program listens "
            f"there); pick a free one with --port N, e.g. curcor debug "
            f"--port {port + 1 if port < 65535 else 5679} {target}"
        )
    finally:
        probe.close()
    return ""


def _listen(port: int) -> int:
    """Start debugpy's server on HOST:port; return the port it listens on.

    Raises:
        RuntimeError: debugpy could not listen.
    """
    # pydevd warns at import that breakpoints in frozen standard-library
    # modules may be missed; that says nothing about the program's code.
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    import debugpy

    # The adapter runs in this process: no adapter process to outlive the
    # program, and clients that cannot reach a separate adapter still attach.
    # (older debugpy releases returned None here.)
    endpoint = debugpy.listen((HOST, port), in_process_debug_adapter=True)
    return int(endpoint[1]) if endpoint else port

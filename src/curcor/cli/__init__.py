"""The ``curcor`` command: a table of subcommands, one module each.

``main`` builds the argument parser, imports only the module of the command
asked for (so ``curcor version`` stays fast), and returns the exit status;
the console script and ``python -m curcor`` exit with it. ``curcor run``
parses its own arguments, since everything after the target belongs to the
program it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["COMMANDS", "main"]

# name -> one-line summary; the module curcor.cli.<name> implements it with
# ``configure(parser)`` and ``execute(args) -> int``.
COMMANDS = {
    "version": "print the version of curcor",
    "env": "print the effective configuration and where each value came from",
    "doctor": "check the environment and show the results as a table",
    "run": "run a program on the curcor runtime",
    "init": "create a new curcor application",
    "ps": "list the tasks of a running application and their stacks",
    "top": "a live view of a running application's scheduler",
    "debug": "run a program under debugpy for a DAP client (VS Code) to attach",
    "profile": "run a program and write an HTML report of runtime samples",
}

# Commands the spec names for later sections (SPEC section 2) that are not
# built yet: asked for, they get a plain answer instead of argparse's
# "invalid choice".
PLANNED = (
    "work",
    "module",
    "discover",
    "registry",
    "proxy",
    "grid",
    "release",
    "toolchain",
    "build",
)

# Commands that run a program and parse their own arguments (``main``).
_RUNNERS = ("run", "debug", "profile")


def _parser() -> tuple[argparse.ArgumentParser, dict]:
    """The top-level parser and its subparsers by command name."""
    parser = argparse.ArgumentParser(
        prog="curcor",
        description="Curcor: Go-style concurrency on an M:N coroutine runtime.",
        epilog="Run 'curcor COMMAND --help' for the options of a command.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers = {}
    for name, summary in COMMANDS.items():
        subparsers[name] = commands.add_parser(
            name, help=summary, description=summary[0].upper() + summary[1:] + "."
        )
    return parser, subparsers


def _command_module(name: str):
    """The module implementing command ``name``."""
    return importlib.import_module(f"curcor.cli.{name}")


def _exit_code(exc: SystemExit) -> int:
    """The status a SystemExit stands for, as the interpreter reads it."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run the ``curcor`` command line and return its exit status.

    Args:
        argv: the arguments after the program name; ``sys.argv[1:]`` when
            None.

    Returns:
        0 on success, 1 when something failed (an uncaught exception in a
        program, a failed doctor check), 2 for usage and configuration
        errors, or whatever the program run asked for.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    parser, subparsers = _parser()

    # No command: the help, as a usage error.
    if not args:
        parser.print_help(sys.stderr)
        return 2

    if args[0] in PLANNED:
        print(
            f"curcor: `curcor {args[0]}` is planned but not built yet (README, "
            f"Status); the commands today: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2

    # curcor run (and debug and profile, which run a program as it does) own
    # everything after their own flags.
    if args[0] in _RUNNERS:
        return _command_module(args[0]).main(args[1:], subparsers[args[0]])

    if args[0] in subparsers:
        _command_module(args[0]).configure(subparsers[args[0]])
    try:
        namespace = parser.parse_args(args)
    except SystemExit as exc:
        return _exit_code(exc)
    if namespace.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return _command_module(namespace.command).execute(namespace)
    except BrokenPipeError:
        # The reader went away (curcor env | head): stop quietly, as cat does.
        _silence_stdout()
        return 1
    except OSError as exc:
        # Mostly a full disk or device behind stdout (curcor env > /dev/full).
        where = exc.filename or "its output"
        print(
            f"curcor {namespace.command}: cannot write {where}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        _silence_stdout()
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the exit-time flush cannot fail again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)

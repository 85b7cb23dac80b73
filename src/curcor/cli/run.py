"""``curcor run``: run a program on the curcor runtime.

The target is a file (``FILE.py``, or a directory or zip with
``__main__.py``), a module (``-m MODULE``) or an async function
(``MODULE:FUNC``). The steps, in order:

1. split the arguments: curcor's flags come before the target, the
   program's arguments after it;
2. resolve the configuration from the target's project root; a bad value
   stops here with one ``scheduler init panic`` line and status 2;
3. hand the configuration to the runtime as the process default, with the
   boot line announced (nothing is written to stderr before it);
4. run the target as ``__main__``; when a file or module neither called
   ``curcor.run`` nor has its own ``if __name__ == "__main__":`` block, but
   defines ``async def main``, run ``curcor.run(main())``;
5. turn the outcome into an exit status (see :func:`exit_status`).
"""

from __future__ import annotations

import os
import sys

from curcor._core.config import KEYS, ConfigError, load_config
from curcor._core.errors import DeadlockError, Terminated, ThreadCreateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator, Mapping

__all__ = ["Request", "UsageError", "configure", "exit_status", "main", "parse"]

PANIC = "curcor: scheduler init panic: "
USAGE = "curcor run [flags] FILE.py | -m MODULE | MODULE:FUNC [args...]"
_FLAGS = {key.flag: key.name for key in KEYS.values()}


class UsageError(Exception):
    """The command line or its target is wrong; the message names the fix."""


class Request:
    """What to run: ``kind`` is ``file``, ``module`` or ``func``."""

    __slots__ = ("args", "flags", "kind", "target")

    def __init__(self, kind: str, target: str, args: list[str], flags: dict):
        self.kind = kind
        self.target = target
        self.args = args
        self.flags = flags

    def __repr__(self) -> str:
        return f"Request({self.kind!r}, {self.target!r}, {self.args!r})"


def configure(parser: argparse.ArgumentParser) -> None:
    """Describe the flags of ``curcor run`` for its ``--help``."""
    parser.usage = USAGE
    parser.epilog = (
        "Flags override CURCOR_* variables, which override curcor.toml. "
        "Arguments after the target are the program's sys.argv[1:]."
    )
    group = parser.add_argument_group("runtime flags (--key value or --key=value)")
    for key in KEYS.values():
        help_text = f"{key.meaning} Default: {key.default_text}."
        group.add_argument(key.flag, metavar="VALUE", help=help_text)
    parser.add_argument("-m", metavar="MODULE", help="run a module as __main__")
    parser.add_argument(
        "target", nargs="?", help="FILE.py, or MODULE:FUNC naming an async function"
    )
    parser.add_argument("args", nargs="*", help="arguments for the program")


def _suggest_flag(flag: str) -> str:
    import difflib

    close = difflib.get_close_matches(flag, list(_FLAGS), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _take_flag(argv: list[str], i: int, flags: dict) -> int:
    """Record the flag at ``argv[i]`` in ``flags``; return the next index.

    Raises:
        UsageError: the flag is unknown or has no value.
    """
    flag, eq, value = argv[i].partition("=")
    if flag not in _FLAGS:
        raise UsageError(
            f"unknown flag {flag} for curcor run{_suggest_flag(flag)}; "
            f"see curcor run --help for the flags"
        )
    if not eq:
        if i + 1 >= len(argv):
            sample = KEYS[_FLAGS[flag]].sample
            raise UsageError(f"{flag} needs a value, e.g. {flag} {sample}")
        i += 1
        value = argv[i]
    flags[_FLAGS[flag]] = value
    return i + 1


def _kind(target: str) -> str:
    """Tell a file from ``MODULE:FUNC``; anything else is taken as a file."""
    if target.endswith(".py") or os.path.exists(target) or ":" not in target:
        return "file"
    return "func"


def parse(argv: list[str]) -> Request | None:
    """Split ``curcor run``'s arguments; None means ``--help`` was asked.

    Raises:
        UsageError: a flag is wrong or there is nothing to run.
    """
    flags: dict[str, str] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in ("-h", "--help"):
            return None
        if token == "-m" or (token.startswith("-m") and len(token) > 2):
            name = token[2:] or (argv[i + 1] if i + 1 < len(argv) else "")
            rest = argv[i + (1 if token[2:] else 2) :]
            if not name:
                raise UsageError("-m needs a module: curcor run -m MODULE [args...]")
            return Request("module", name, rest, flags)
        if token == "--" and i + 1 < len(argv):
            return Request(_kind(argv[i + 1]), argv[i + 1], argv[i + 2 :], flags)
        if token.startswith("--"):
            i = _take_flag(argv, i, flags)
            continue
        if token.startswith("-") and token != "-":
            raise UsageError(
                f"unknown option {token} for curcor run; flags are --key value "
                f"(see curcor run --help), program arguments go after the target"
            )
        return Request(_kind(token), token, argv[i + 1 :], flags)
    raise UsageError(f"nothing to run; usage: {USAGE}, e.g. curcor run app.py")


def main(argv: list[str], parser: argparse.ArgumentParser) -> int:
    """Run ``curcor run`` with the arguments after ``run``; return the status."""
    configure(parser)
    try:
        request = parse(argv)
    except UsageError as exc:
        print(f"curcor: {exc}", file=sys.stderr)
        return 2
    if request is None:
        parser.print_help()
        return 0
    return execute(request)


# -- running -------------------------------------------------------------------


def _root_start(request: Request) -> str:
    """Where the search for the project root begins."""
    if request.kind != "file":
        return os.getcwd()
    path = os.path.abspath(request.target)
    return path if os.path.isdir(path) else os.path.dirname(path)


def _check_file(target: str) -> str:
    """The absolute path of a runnable file target.

    Raises:
        UsageError: it does not exist or is a directory without __main__.py.
    """
    path = os.path.abspath(target)
    if not os.path.exists(path):
        hint = (
            ""
            if target.endswith(".py")
            else f", or run a module: curcor run -m {target}"
        )
        raise UsageError(
            f"can't open file {target!r}: no such file; check the path{hint}"
        )
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "__main__.py")):
        raise UsageError(
            f"{target!r} is a directory without __main__.py; name the file to run, "
            f"e.g. curcor run {os.path.join(target, 'main.py')}"
        )
    return path


def _runtime():
    """The runtime module with the two calls ``curcor run`` needs.

    Raises:
        UsageError: this build of curcor has no runtime yet.
    """
    try:
        from curcor._core import runtime
    except ImportError as exc:
        raise UsageError(
            f"the curcor runtime cannot be imported ({exc}); reinstall curcor"
        )
    for name in ("set_process_defaults", "run_was_called"):
        if not hasattr(runtime, name):
            raise UsageError(
                f"this build of curcor lacks curcor._core.runtime.{name}; "
                f"reinstall curcor"
            )
    return runtime


def _missing_module(exc: ModuleNotFoundError, name: str) -> bool:
    """Whether ``exc`` says that ``name`` itself (or a parent) is missing."""
    missing = exc.name or ""
    return bool(missing) and (name == missing or name.startswith(missing + "."))


def _no_module(name: str) -> UsageError:
    hint = ""
    if name.endswith(".py") or os.sep in name:
        hint = f"; to run a file write curcor run {name}"
    return UsageError(
        f"no module named {name!r}{hint}; check the name and that its directory "
        f"is on sys.path (curcor run adds the current directory)"
    )


def _check_module(name: str) -> str | None:
    """Check that ``-m name`` can run; return the file of its code, if any.

    Raises:
        UsageError: the module does not exist, or is a package without
            ``__main__``.
    """
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None:
            spec = importlib.util.find_spec(name + ".__main__")
            if spec is None:
                raise UsageError(
                    f"{name!r} is a package without a __main__ module; add "
                    f"{name}/__main__.py, or run a function: curcor run {name}:main"
                )
    except ModuleNotFoundError as exc:
        if not _missing_module(exc, name):
            raise
        spec = None
    except ValueError:
        spec = None
    if spec is None:
        raise _no_module(name)
    return spec.origin if spec.has_location else None


def _has_main_guard(path: str | None) -> bool:
    """Whether a source file has its own ``if __name__ == "__main__":`` block."""
    if path and os.path.isdir(path):
        path = os.path.join(path, "__main__.py")
    if not path or not path.endswith(".py"):
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            lines = file.readlines()
    except OSError:
        return False
    for line in lines:
        text = line.strip()
        if text.startswith("if") and "__name__" in text and "__main__" in text:
            return True
    return False


def _run_main_of(namespace: Mapping, source: str | None, runtime) -> None:
    """Run ``async def main`` of a program that did not start the runtime."""
    import inspect

    if runtime.run_was_called() or _has_main_guard(source):
        return
    entry = namespace.get("main")
    if entry is None or not inspect.iscoroutinefunction(entry):
        return
    import curcor

    with _as_main(namespace):
        curcor.run(entry())


def _as_main(namespace: Mapping):
    """Install the program's namespace as ``__main__`` while its main runs.

    runpy restores the previous ``__main__`` when the code has run; pickling
    and introspection during ``main`` still need to find the program there.
    """
    import contextlib
    import types

    @contextlib.contextmanager
    def installed() -> Iterator[None]:
        module = types.ModuleType("__main__")
        module.__dict__.update(namespace)
        saved = sys.modules.get("__main__")
        sys.modules["__main__"] = module
        try:
            yield
        finally:
            if saved is not None:
                sys.modules["__main__"] = saved

    return installed()


def _run_func(target: str) -> None:
    """Import ``MODULE`` and run its async ``FUNC`` with ``curcor.run``.

    Raises:
        UsageError: the module, the function or its async-ness is missing.
    """
    import importlib
    import inspect

    module_name, _, func_path = target.partition(":")
    if not module_name or not func_path:
        raise UsageError(
            f"{target!r} is not MODULE:FUNC; write e.g. curcor run app:main"
        )
    try:
        entry: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not _missing_module(exc, module_name):
            raise
        raise _no_module(module_name)
    for part in func_path.split("."):
        entry = getattr(entry, part, None)
        if entry is None:
            raise UsageError(
                f"module {module_name!r} has no {func_path!r}; check the name "
                f"after the colon, e.g. curcor run {module_name}:main"
            )
    if not inspect.iscoroutinefunction(entry):
        raise UsageError(
            f"{target} is not an async function; curcor run MODULE:FUNC needs "
            f"'async def {func_path.rpartition('.')[2]}(): ...', or run the file "
            f"itself with curcor run FILE.py"
        )
    import curcor

    curcor.run(entry())


def _check_target(request: Request) -> str | None:
    """Check that the target exists before boot; return its source file.

    Raises:
        UsageError: the file or module is missing.
    """
    if request.kind == "file":
        return _check_file(request.target)
    if request.kind == "module":
        return _check_module(request.target)
    return None


def _launch(request: Request, source: str | None, runtime) -> None:
    """Run the target as the main program (step 4)."""
    import runpy

    if request.kind == "func":
        _run_func(request.target)
        return
    if request.kind == "module":
        namespace = runpy.run_module(
            request.target, run_name="__main__", alter_sys=True
        )
    else:
        namespace = runpy.run_path(source or request.target, run_name="__main__")
    _run_main_of(namespace, source, runtime)


def _is_ours(filename: str) -> bool:
    """Whether a frame belongs to runpy or to curcor's CLI and core."""
    if filename == "<frozen runpy>" or filename.endswith(f"{os.sep}runpy.py"):
        return True
    return filename.startswith(_CURCOR_DIRS)


_CURCOR_DIRS = tuple(
    os.path.join(os.path.dirname(os.path.dirname(__file__)), part) + os.sep
    for part in ("cli", "_core")
)


def _print_traceback(exc: BaseException) -> None:
    """Print an uncaught exception as Python would, without curcor's frames.

    The leading frames of runpy, this command and the runtime are dropped
    when a frame of the program follows them; a failure inside curcor
    itself keeps its whole traceback.
    """
    tb = exc.__traceback__
    while tb is not None and _is_ours(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    if tb is None:
        tb = exc.__traceback__
    sys.excepthook(type(exc), exc.with_traceback(tb), tb)


def exit_status(exc: BaseException) -> int:
    """Report how a program ended and return ``curcor run``'s exit status.

    SystemExit(n) gives n; ``Terminated`` (a graceful SIGTERM shutdown) 0;
    an uncaught exception 1 after its traceback; ConfigError,
    ThreadCreateError, DeadlockError and usage errors 2 after one message;
    KeyboardInterrupt 130, as a shell reports SIGINT.
    """
    if isinstance(exc, SystemExit):
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    if isinstance(exc, Terminated):
        return 0
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, ConfigError):
        print(PANIC + str(exc), file=sys.stderr)
    elif isinstance(exc, ThreadCreateError):
        print(f"curcor: failed to create OS thread: {exc}", file=sys.stderr)
    elif isinstance(exc, DeadlockError):
        print(str(exc), file=sys.stderr)
    elif isinstance(exc, UsageError):
        print(f"curcor: {exc}", file=sys.stderr)
    else:
        _print_traceback(exc)
        return 1
    return 2


def execute(request: Request) -> int:
    """Configure the runtime, run the request and return the exit status."""
    start = _root_start(request)
    try:
        config = load_config(start=start, flags=request.flags)
        sys.path.insert(0, start)
        source = _check_target(request)
        runtime = _runtime()
    except BaseException as exc:
        return exit_status(exc)
    runtime.set_process_defaults(config, announce=True)
    sys.argv = [request.target, *request.args]
    try:
        _launch(request, source, runtime)
    except BaseException as exc:
        return exit_status(exc)
    return 0

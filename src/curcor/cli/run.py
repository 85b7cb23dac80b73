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

from curcor._core.config import KEYS, ConfigError, load_config, parse_flag
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
    key = KEYS[_FLAGS[flag]]
    if not eq:
        if i + 1 >= len(argv):
            raise UsageError(f"{flag} needs a value, e.g. {flag} {key.sample_text}")
        i += 1
        value = argv[i]
        _check_not_swallowed(flag, value, argv[i + 1 :])
    flags[key.name] = value
    return i + 1


def _check_not_swallowed(flag: str, value: str, rest: list[str]) -> None:
    """Refuse a flag that took as its value what was meant as the next flag
    or as the target (``curcor run --maxprocs app.py``).

    A value spelt as a flag or ``-m`` was the next flag. A value ending in
    .py was the target; so was one, when no target is left after it, that
    the key refuses or that names a path or a ``MODULE:FUNC``.

    Raises:
        UsageError: the flag has no value of its own.
    """
    key = KEYS[_FLAGS[flag]]
    fix = f"{flag} {key.sample_text}"
    if value.partition("=")[0] in (*_FLAGS, "--") or value.startswith("-m"):
        raise UsageError(f"{flag} needs a value before {value}, e.g. {fix}")
    if value.endswith(".py") or (
        not _target_left(rest)
        and (os.path.exists(value) or _looks_like_func(value) or not _fits(key, value))
    ):
        raise UsageError(
            f"{flag} needs a value before the target; write curcor run {fix} {value}"
        )


def _target_left(rest: list[str]) -> bool:
    """Whether anything but flags with their values follows in ``rest``."""
    j = 0
    while j < len(rest):
        if not rest[j].startswith("--") or rest[j] == "--":
            return True
        j += 1 if "=" in rest[j] else 2
    return False


def _fits(key, value: str) -> bool:
    """Whether ``value`` is a good value for ``key`` given as a flag."""
    try:
        parse_flag(key.name, value)
    except ConfigError:
        return False
    return True


def _looks_like_func(target: str) -> bool:
    """Whether ``target`` is spelt like MODULE:FUNC."""
    module, colon, func = target.partition(":")
    parts = [*module.split("."), *func.split(".")]
    return bool(colon) and all(part.isidentifier() for part in parts)


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
    except ValueError as exc:
        # find_spec's own ValueError (a parent whose __spec__ is None) means
        # no module; one raised by a parent package's code is the program's.
        if _has_program_frame(exc):
            raise
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
    """Whether a frame belongs to the machinery that loads the program:
    curcor's CLI and core, runpy, or importlib.
    """
    if filename.startswith(("<frozen runpy>", "<frozen importlib.")):
        return True
    return filename.startswith(_LOADER_DIRS) or filename == _RUNPY


_CURCOR_DIRS = tuple(
    os.path.join(os.path.dirname(os.path.dirname(__file__)), part) + os.sep
    for part in ("cli", "_core")
)
# Where runpy and importlib live when they are not frozen into the binary.
_STDLIB = os.path.dirname(os.__file__)
_RUNPY = os.path.join(_STDLIB, "runpy.py")
# A compiled build (tools/mypyc_build.py) names its frames' files relative to
# the build root.
_COMPILED = "curcor/_core/"
_LOADER_DIRS = (
    *_CURCOR_DIRS,
    _COMPILED,
    os.path.join(_STDLIB, "importlib") + os.sep,
)


def _print_traceback(exc: BaseException) -> None:
    """Print an uncaught exception as Python would, without curcor's frames.

    The leading frames of this command, the runtime, runpy and importlib
    are dropped when a frame of the program follows them: the traceback
    starts where the program's code does, also for an error raised while
    the target is imported. A SyntaxError in the program's own source has
    no frame of the program, and is printed as ``python FILE.py`` prints
    it: the file, line, caret and message, without a traceback. Any other
    failure inside curcor itself keeps its whole traceback.
    """
    tb = exc.__traceback__
    while tb is not None and _is_ours(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    if tb is None and not _is_syntax_error_of_program(exc):
        tb = exc.__traceback__
    elif tb is not None:
        # Also curcor's frames between the program's own: a file that
        # calls curcor.run itself runs through the runtime's frames.
        from curcor._core.errors import without_frames

        tb = without_frames(tb, _is_ours)
    sys.excepthook(type(exc), exc.with_traceback(tb), tb)


def _has_program_frame(exc: BaseException) -> bool:
    """Whether a frame of the program is in ``exc``'s traceback."""
    tb = exc.__traceback__
    while tb is not None:
        if not _is_ours(tb.tb_frame.f_code.co_filename):
            return True
        tb = tb.tb_next
    return False


def _is_syntax_error_of_program(exc: BaseException) -> bool:
    """Whether ``exc`` is a SyntaxError in a file that is not curcor's."""
    if not isinstance(exc, SyntaxError):
        return False
    return not _is_ours(os.path.abspath(exc.filename or ""))


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


def _argv0(request: Request, source: str | None) -> str:
    """``sys.argv[0]`` for the program, as ``python`` sets it: the file as
    written for FILE.py; the module's file for ``-m`` (python -m sets it so
    while the module runs, and it stays so while its async main runs).
    """
    if request.kind == "module" and source:
        return source
    return request.target


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
    sys.argv = [_argv0(request, source), *request.args]
    try:
        _launch(request, source, runtime)
    except BaseException as exc:
        return exit_status(exc)
    return 0

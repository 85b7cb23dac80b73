"""``curcor env``: the effective configuration, each value with its source,
as ``go env`` shows Go's.

The text form is valid TOML, so a line can be pasted into ``curcor.toml``;
comments above the keys name the interpreter (its version, and whether it
is a GIL or a free-threaded build) and the project root.
A key whose machinery is not built yet says so beside its source: its value
is validated and recorded, and has no effect yet.
"""

from __future__ import annotations

import os
import sys

from curcor._core.config import (
    KEYS,
    Config,
    ConfigError,
    find_root,
    format_size,
    load_config,
    resolve_backend,
)
from curcor.cli import _gil

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

__all__ = ["configure", "execute", "render_json", "render_text"]

PANIC = "curcor: scheduler init panic: "


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``curcor env``."""
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON object: the root and, for every key, its value and source",
    )


def _toml_value(name: str, value: object) -> str:
    """Spell a value as a TOML literal, sizes with their unit."""
    if name == "mempool_size" and isinstance(value, int):
        return f'"{format_size(value)}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def describe_python() -> dict[str, object]:
    """The interpreter running curcor: version, path and kind of build."""
    import platform

    free_threaded, enabled = _gil.gil_status()
    return {
        "version": platform.python_version(),
        "implementation": sys.implementation.name,
        "executable": sys.executable,
        "build": _gil.describe(free_threaded, enabled),
        "free_threaded": free_threaded,
        "gil_enabled": enabled,
    }


def describe_hot_path() -> str:
    """Whether curcor's hot path runs as Python or was compiled with mypyc
    (``tools/mypyc_build.py``), naming the compiled modules."""
    from curcor._core import runtime, scheduler, task

    compiled = [
        m.__name__.rsplit(".", 1)[1]
        for m in (task, scheduler, runtime)
        if not str(m.__file__).endswith(".py")
    ]
    if compiled:
        import os

        # The build root (OUT of tools/mypyc_build.py): a build is a copy of
        # src/ at build time, so naming it shows which build this is.
        root = os.path.dirname(os.path.dirname(os.path.dirname(str(task.__file__))))
        return f"compiled with mypyc ({', '.join(compiled)}) in {root}"
    return "pure Python"


def render_text(config: Config, root: str | None) -> str:
    """The configuration as TOML lines, each source in a trailing comment."""
    python = describe_python()
    lines = [
        f"# python: {python['version']}, {python['build']}",
        f"# hot path: {describe_hot_path()}",
        f"# root: {root or '(none: no curcor.toml or pyproject.toml found)'}",
    ]
    pairs = [f"{name} = {_toml_value(name, value)}" for name, value in config]
    width = max(len(pair) for pair in pairs)
    for (name, _), pair in zip(config, pairs, strict=True):
        note = config.sources[name]
        if name == "scheduler":
            note += f"; resolves to {resolve_backend(config.scheduler)}"
        pending = KEYS[name].pending
        if pending:
            note += f"; no effect until {pending} is built"
        lines.append(f"{pair:<{width}}  # {note}")
    return "\n".join(lines)


def render_json(config: Config, root: str | None) -> str:
    """The configuration as JSON: the interpreter, the root, then every key's
    value and source."""
    import json

    keys = {
        name: {"value": value, "source": config.sources[name]} for name, value in config
    }
    keys["scheduler"]["resolved"] = resolve_backend(config.scheduler)
    document = {
        "python": describe_python(),
        "hot_path": describe_hot_path(),
        "root": root,
        "keys": keys,
    }
    return json.dumps(document, indent=2)


def execute(args: argparse.Namespace) -> int:
    """Print the configuration of the current directory's project.

    Returns 0, or 2 after one ``scheduler init panic`` line when a value is
    bad.
    """
    cwd = os.getcwd()
    found = find_root(cwd)
    root = None if found is None else str(found)
    try:
        config = load_config(start=cwd)
    except ConfigError as exc:
        print(PANIC + str(exc), file=sys.stderr)
        return 2
    print(render_json(config, root) if args.json else render_text(config, root))
    return 0

"""``curcor init NAME``: scaffold a curcor application.

The tree it writes::

    NAME/
      pyproject.toml        depends on curcor; pytest finds src/
      curcor.toml           every key, commented out, with its default
                            (an example where the machine sets it)
      src/PACKAGE/__init__.py
      src/PACKAGE/main.py   async def main: a producer and a channel
      tests/test_main.py    an async test of main

PACKAGE is NAME in lower case with ``-`` turned into ``_``.
"""

from __future__ import annotations

import keyword
import os
import sys
import textwrap

from curcor._core.config import KEYS, format_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

__all__ = ["InitError", "configure", "execute", "package_name", "scaffold"]


class InitError(Exception):
    """NAME cannot be used; the message says why and suggests a fix."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the NAME argument of ``curcor init``."""
    parser.add_argument(
        "name",
        metavar="NAME",
        help="the directory to create; its package is NAME in lower case "
        "with '-' as '_'",
    )


def _suggestion(name: str) -> str:
    """A valid package name close to ``name``."""
    chars = [c if c.isascii() and c.isalnum() else "_" for c in name.lower()]
    fixed = "_".join(part for part in "".join(chars).split("_") if part)
    if not fixed or fixed[0].isdigit():
        fixed = "app_" + fixed if fixed else "myapp"
    if (
        keyword.iskeyword(fixed)
        or fixed in sys.stdlib_module_names
        or fixed == "curcor"
    ):
        fixed = "my" + fixed
    return fixed


def package_name(name: str) -> str:
    """The package for project ``name``: lower case, ``-`` as ``_``.

    Raises:
        InitError: ``name`` does not make a valid, unshadowed package name.
    """
    package = name.lower().replace("-", "_")
    problem = None
    if not package.isascii() or not package.isidentifier():
        problem = (
            "is not a valid name: use letters, digits, '_' or '-', not first a digit"
        )
    elif keyword.iskeyword(package):
        problem = "is a Python keyword"
    elif package in sys.stdlib_module_names or package == "curcor":
        problem = f"would shadow the {package!r} module"
    if problem:
        fix = f"choose another name, e.g. curcor init {_suggestion(name)}"
        raise InitError(f"{name!r} {problem}; {fix}")
    return package


# Keys whose default is computed from the machine: the template shows an
# example value and names the default in words, so the file written does not
# depend on the machine that ran curcor init.
_MACHINE_DEFAULTS = {
    "maxprocs": (4, "the CPUs this process may use"),
    "to_thread_max": (8, "min(32, the CPUs this process may use + 4)"),
}


def _curcor_toml() -> str:
    """A curcor.toml with every key commented out at its default.

    The text is the same on every machine (see _MACHINE_DEFAULTS).
    """
    lines = [
        "# Curcor settings for this project. Every key is shown at its default",
        "# (an example value where the default depends on the machine);",
        "# uncomment a line to change it. CURCOR_<KEY> variables and",
        "# `curcor run --<key> VALUE` flags override this file.",
        "",
    ]
    for key in KEYS.values():
        lines.extend(
            textwrap.wrap(key.meaning, 76, initial_indent="# ", subsequent_indent="# ")
        )
        lines.append(f"# {key.name} = {_default_literal(key)}")
        lines.append("")
    return "\n".join(lines)


def _default_literal(key) -> str:
    """The default of ``key`` as a TOML literal (an example where computed)."""
    if key.default is None:
        example, default = _MACHINE_DEFAULTS.get(
            key.name, (key.sample, key.default_text)
        )
        return f"{example}  # default: {default}"
    value = key.default
    if key.name == "mempool_size":
        return f'"{format_size(value)}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "0.1.0"
description = "A curcor application."
requires-python = ">=3.11"
dependencies = ["curcor"]

[project.optional-dependencies]
test = ["pytest>=8"]

[project.scripts]
{name} = "{package}.main:cli"

[tool.hatch.build.targets.wheel]
packages = ["src/{package}"]

[tool.pytest.ini_options]
pythonpath = ["src"]
testpaths = ["tests"]
"""

_MAIN = '''\
"""The entry point of {name}: a producer sends numbers over a channel and
main adds them up.

Run it with: curcor run src/{package}/main.py
"""

import curcor


async def produce(channel: curcor.Channel, count: int) -> None:
    """Send 0, 1, ... count - 1, then close the channel."""
    for number in range(count):
        await channel.send(number)
    channel.close()


async def main() -> int:
    """Start the producer as a task and sum what it sends."""
    channel = curcor.Channel()
    curcor.go(produce(channel, 10))
    total = 0
    async for number in channel:
        total += number
    print(f"sum of 0..9 = {{total}}")
    return total


def cli() -> None:
    """The console script: run main on the curcor runtime."""
    curcor.run(main())


if __name__ == "__main__":
    cli()
'''

_TEST = '''\
"""Tests of {package}.main; async tests run on curcor through its pytest plugin."""

from {package}.main import main


async def test_main_sums_what_the_producer_sends():
    assert await main() == 45
'''


def scaffold(name: str, parent: str = ".") -> str:
    """Create the application ``name`` under ``parent``; return its path.

    Raises:
        InitError: the name is invalid or the directory already exists.
    """
    package = package_name(name)
    root = os.path.join(parent, name)
    if os.path.lexists(root):
        raise InitError(
            f"{root!r} already exists; choose another name or remove it first"
        )
    fill = {"name": name, "package": package}
    files = {
        "pyproject.toml": _PYPROJECT.format(**fill),
        "curcor.toml": _curcor_toml(),
        f"src/{package}/__init__.py": f'"""The {name} application."""\n',
        f"src/{package}/main.py": _MAIN.format(**fill),
        "tests/test_main.py": _TEST.format(**fill),
    }
    try:
        for relative, text in files.items():
            path = os.path.join(root, *relative.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as file:
                file.write(text)
    except BaseException:
        # A half-made project would block the next try ("already exists").
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        raise
    return root


def execute(args: argparse.Namespace) -> int:
    """Create the scaffold; 2 with one message when NAME cannot be used."""
    if os.sep in args.name or (os.altsep and os.altsep in args.name):
        base = os.path.basename(args.name.rstrip("/\\")) or "myapp"
        print(
            f"curcor: init takes a name, not a path; cd to the parent directory "
            f"and run curcor init {base}",
            file=sys.stderr,
        )
        return 2
    try:
        root = scaffold(args.name)
    except InitError as exc:
        print(f"curcor: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"curcor: cannot create {args.name!r}: {exc.strerror}", file=sys.stderr)
        return 2
    package = package_name(args.name)
    print(f"created {os.path.relpath(root)}{os.sep}")
    print(f"next: cd {args.name} && curcor run src/{package}/main.py")
    return 0

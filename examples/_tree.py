"""What the tree-walking examples (treescan, mirror) share: choosing the
root directory, one-line errors for a bad one, and printing odd names."""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig

# Left out of the default tree: installed third-party packages.
DEFAULT_SKIP = frozenset({"site-packages", "dist-packages"})
EXAMPLE_DIR = "/usr/lib/python3"


def printable(text: str) -> str:
    """``text`` safe to print on one line: controls and odd bytes escaped.

    A file name may hold a newline, or bytes that are not UTF-8 (which
    ``os.scandir`` returns as lone surrogates that ``print`` cannot encode).
    """
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


def number(value: object) -> str:
    """An integer with thousands separators; anything else as it prints."""
    return f"{value:,}" if isinstance(value, int) else str(value)


def positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def resolve_root(
    args: argparse.Namespace, program: str, verb: str
) -> tuple[str, frozenset[str]]:
    """The directory to ``verb`` and the directory names to leave out.

    No root given: the standard library, without ``DEFAULT_SKIP``. A bad
    root prints one line to stderr and exits with status 2.
    """
    if args.root is None:
        return sysconfig.get_paths()["stdlib"], DEFAULT_SKIP
    root = os.path.abspath(args.root)
    problem = root_problem(root)
    if problem:
        hint = f"pass a directory to {verb}, e.g. curcor run examples/{program}.py"
        print(
            f"{program}: {printable(args.root)}: {problem}; {hint} {EXAMPLE_DIR}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return root, frozenset()


def root_problem(root: str) -> str | None:
    """What is wrong with ``root`` as a directory to walk, if anything."""
    if not os.path.exists(root):
        return "no such directory"
    if not os.path.isdir(root):
        return "not a directory"
    try:
        with os.scandir(root):
            return None
    except OSError as err:
        return f"cannot read it ({err.strerror or err})"

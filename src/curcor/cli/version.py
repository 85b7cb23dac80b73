"""``curcor version``: the version of curcor, and with ``--json`` the
interpreter, platform and poller backend too.

Kept light: it must answer in under 100 ms, so it never imports the runtime.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

__all__ = ["FALLBACK_VERSION", "configure", "execute", "get_version"]

FALLBACK_VERSION = "0.1.0.dev0+unknown"
"""The version reported when neither the build nor the metadata knows it."""


def get_version() -> str:
    """The version of curcor (PEP 440, with the build's commit when known).

    Read from ``curcor._version`` (written by hatch-vcs at build time), else
    from the installed distribution's metadata, else
    :data:`FALLBACK_VERSION`.
    """
    try:
        from curcor._version import version
    except ImportError:
        pass
    else:
        return str(version)
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("curcor")
    except PackageNotFoundError:
        return FALLBACK_VERSION


def describe() -> dict[str, str]:
    """The facts ``curcor version --json`` prints."""
    import platform

    from curcor._core.config import resolve_backend

    return {
        "curcor": get_version(),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "executable": sys.executable,
        "platform": platform.platform(),
        "backend": resolve_backend("auto"),
    }


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``curcor version``."""
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON object with the Python version, implementation, "
        "platform and the backend that auto resolves to",
    )


def execute(args: argparse.Namespace) -> int:
    """Print the version; return 0."""
    if args.json:
        import json

        print(json.dumps(describe(), indent=2))
    else:
        print(f"curcor {get_version()}")
    return 0

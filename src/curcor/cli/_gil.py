"""Which kind of CPython runs curcor, for ``curcor env`` and ``curcor doctor``:
a GIL build, or a free-threaded build (3.13t and later) whose GIL is disabled
or was re-enabled at run time.

Only a free-threaded build with the GIL disabled runs tasks of different
workers in parallel (SPEC R-SCHED); on the others the workers take turns.
"""

from __future__ import annotations

import os
import sys

__all__ = ["cause_of_gil", "describe", "gil_status"]


def gil_status() -> tuple[bool, bool]:
    """(free-threaded build, GIL enabled in this process).

    The build is ``Py_GIL_DISABLED`` of the interpreter's configuration; the
    run-time state is ``sys._is_gil_enabled()`` where it exists (3.13+),
    and True before, since older interpreters always have the GIL.
    """
    import sysconfig

    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    enabled = True if is_enabled is None else bool(is_enabled())
    return free_threaded, enabled


def describe(free_threaded: bool, enabled: bool) -> str:
    """The build in a few words: ``GIL build``, ``free-threaded build, GIL
    disabled`` or ``free-threaded build, GIL re-enabled``."""
    if not free_threaded:
        return "GIL build"
    if enabled:
        return "free-threaded build, GIL re-enabled"
    return "free-threaded build, GIL disabled"


def cause_of_gil() -> str:
    """Why a free-threaded build runs with its GIL, as far as can be told."""
    if os.environ.get("PYTHON_GIL") == "1":
        return "by PYTHON_GIL=1"
    if str(getattr(sys, "_xoptions", {}).get("gil")) == "1":
        return "by -X gil=1"
    return (
        "by an extension module that does not declare free-threading support "
        "(Python warned which one on import; PYTHON_GIL=0 keeps the GIL off at "
        "your own risk)"
    )

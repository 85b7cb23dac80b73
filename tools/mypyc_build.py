"""Build curcor's optional compiled hot path with mypyc.

    python tools/mypyc_build.py [--out build/mypyc]

Copies ``src/curcor`` to ``OUT/curcor`` and compiles the hot-path modules
(``COMPILED``) there with mypyc, next to their sources. Put ``OUT`` first on
``PYTHONPATH`` to run the compiled build; without it, curcor is the pure
Python it always is (``make compiled``, ``make test-compiled``, and the
``curcor-mypyc`` runtime of the benchmark suite use this). ``curcor env``
says which one runs.

Needs mypy (the ``lint`` extra) and a C compiler with the Python headers.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The modules compiled: the worker loop and task records (scheduler, task),
# and go/join (runtime). traps.py stays Python: its ``park`` is a generator
# coroutine (``types.coroutine``), which mypyc compiles into an object that
# ``await`` refuses.
COMPILED = (
    "curcor/_core/task.py",
    "curcor/_core/scheduler.py",
    "curcor/_core/runtime.py",
)


# Written into every build directory; only a directory holding it (or an
# empty one) is ever replaced, so a wrong --out cannot delete anything else.
MARKER = ".curcor-mypyc-build"


class BuildError(Exception):
    """A build that cannot go ahead: the message says why and what to do."""


def _is_build(out: Path) -> bool:
    """An earlier build: it holds the marker, or (from before the marker
    existed) only what a build holds, with mypyc's shared library."""
    if (out / MARKER).is_file():
        return True
    names = {p.name for p in out.iterdir()}
    shared = {n for n in names if "__mypyc." in n and n.endswith(".so")}
    return bool(shared) and names - shared <= {"curcor", "build", ".mypy_cache"}


def _empty(out: Path) -> None:
    """Remove what ``out`` holds, keeping the directory (and its mode)."""
    for entry in out.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _prepare(out: Path) -> None:
    """Make ``out`` an empty directory, replacing only an earlier build."""
    src = (ROOT / "src").resolve()
    if out == src or src in out.parents:
        raise BuildError(
            f"--out {out} is inside the sources it copies ({src}); pick a "
            "directory outside src/ (default: build/mypyc)"
        )
    if out.exists() or out.is_symlink():
        if not out.is_dir() or out.is_symlink():
            raise BuildError(
                f"--out {out} is not a directory; give a directory path "
                "(default: build/mypyc)"
            )
        if any(out.iterdir()) and not _is_build(out):
            raise BuildError(
                f"--out {out} is a directory that this tool did not create and "
                "it is not empty; it would be replaced, so pick a new or empty "
                "directory (default: build/mypyc), or delete it first"
            )
    try:
        if out.is_dir():
            _empty(out)
        else:
            out.mkdir(parents=True)
        (out / MARKER).write_text("made by tools/mypyc_build.py; safe to delete\n")
    except OSError as exc:
        raise BuildError(
            f"cannot create --out {out}: {exc.strerror or exc}; pick a "
            "writable directory (default: build/mypyc)"
        ) from None


def build(out: Path) -> Path:
    """Copy the sources to ``out`` and compile ``COMPILED`` there.

    Raises:
        BuildError: ``out`` cannot be used, or mypyc failed (``out`` is then
            emptied, so no half-built copy is left to be imported).
    """
    _prepare(out)
    try:
        _compile(out)
    except BaseException:
        with contextlib.suppress(OSError):
            _empty(out)
        raise
    return out


def _compile(out: Path) -> None:
    try:
        shutil.copytree(
            ROOT / "src" / "curcor",
            out / "curcor",
            ignore=shutil.ignore_patterns("__pycache__", "*.so"),
        )
    except (shutil.Error, OSError) as exc:
        # shutil.Error carries one (src, dst, reason) per failed file.
        failures = exc.args[0] if isinstance(exc, shutil.Error) else None
        reason = failures[0][2] if failures else str(exc)
        raise BuildError(
            f"cannot copy the sources to {out}: {reason}; free some space or "
            "choose another --out"
        ) from None
    cmd = [sys.executable, "-m", "mypyc", *COMPILED]
    proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise BuildError(
            f"mypyc failed (exit {proc.returncode}); the pure-Python curcor in "
            "src/ is unaffected. mypyc needs mypy (pip install '.[lint]') and "
            "a C compiler with the Python headers"
        )
    shutil.rmtree(out / "build", ignore_errors=True)
    built = sorted(p.name for p in (out / "curcor" / "_core").glob("*.so"))
    if len(built) != len(COMPILED):
        raise BuildError(f"mypyc built {built}, expected one per {COMPILED}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--out", default=str(ROOT / "build" / "mypyc"), help="where to build"
    )
    args = parser.parse_args(argv)
    if not args.out.strip():
        print("mypyc_build: --out is empty; give a directory path", file=sys.stderr)
        return 2
    try:
        out = build(Path(args.out).resolve())
    except BuildError as exc:
        print(f"mypyc_build: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

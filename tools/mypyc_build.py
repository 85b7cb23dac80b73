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


def build(out: Path) -> Path:
    """Copy the sources to ``out`` and compile ``COMPILED`` there."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copytree(
        ROOT / "src" / "curcor",
        out / "curcor",
        ignore=shutil.ignore_patterns("__pycache__", "*.so"),
    )
    cmd = [sys.executable, "-m", "mypyc", *COMPILED]
    proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(
            f"mypyc failed (exit {proc.returncode}); the pure-Python curcor in "
            "src/ is unaffected. mypyc needs mypy (pip install '.[lint]') and "
            "a C compiler with the Python headers"
        )
    shutil.rmtree(out / "build", ignore_errors=True)
    built = sorted(p.name for p in (out / "curcor" / "_core").glob("*.so"))
    if len(built) != len(COMPILED):
        raise SystemExit(f"mypyc built {built}, expected one per {COMPILED}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--out", default=str(ROOT / "build" / "mypyc"), help="where to build"
    )
    args = parser.parse_args(argv)
    out = build(Path(args.out).resolve())
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

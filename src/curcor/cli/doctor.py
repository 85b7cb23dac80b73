"""``curcor doctor``: check the environment and show the results as a table.

Each check returns rows of (check, status, detail) with status OK, WARN or
FAIL; the command exits 1 when any row fails. The checks: the interpreter,
the poller backend, the CURCOR_* variables, the project's config file, the
CPU quota against maxprocs, the open-file limit, and the integrity of every
installed distribution against the sha256 hashes of its RECORD. A row
"gil" says whether this is a GIL build or a free-threaded one, and whether
a free-threaded build runs with its GIL disabled.

A row reflects only its own check: a bad value is reported by the row of
the source it came from, and a row that needs one key (the backend,
maxprocs) reads that key alone.
"""

from __future__ import annotations

import os
import sys

from curcor._core.config import (
    KEYS,
    ConfigError,
    ConfigFileError,
    available_backends,
    cpu_quota,
    default_maxprocs,
    env_key,
    find_root,
    load_config,
    load_key,
    parse_env,
    resolve_backend,
    usable_cpus,
)
from curcor.cli import _gil

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable, Iterator

__all__ = ["CHECKS", "Row", "check_distributions", "configure", "execute"]

Row = tuple[str, str, str]

OK, WARN, FAIL = "OK", "WARN", "FAIL"

# Below this soft limit a server runs out of descriptors early; 1024 is the
# usual Linux default, so only limits lowered below it are flagged.
MIN_OPEN_FILES = 1024

# Hashing every installed file takes about a second in a typical virtual
# environment; past this budget the check reports how far it got.
# Arbitrary; no measurement of large environments yet.
INTEGRITY_BUDGET_S = 10.0

# Mismatches listed per distribution before the rest are counted.
MAX_LISTED = 3


def configure(parser: argparse.ArgumentParser) -> None:
    """``curcor doctor`` has no options besides --help."""
    parser.epilog = "Exit status: 0 when nothing failed, 1 when a check failed."


def check_interpreter() -> Iterator[Row]:
    """The interpreter; __main__ has already refused anything before 3.11."""
    version = ".".join(map(str, sys.version_info[:3]))
    detail = f"{sys.implementation.name} {version} at {sys.executable}"
    yield ("interpreter", OK, detail)


def check_gil() -> Iterator[Row]:
    """A GIL build, or a free-threaded one; WARN when its GIL came back."""
    free_threaded, enabled = _gil.gil_status()
    build = _gil.describe(free_threaded, enabled)
    if not free_threaded:
        yield ("gil", OK, f"{build}: workers take turns running Python code")
    elif not enabled:
        yield ("gil", OK, f"{build}: tasks on different workers run in parallel")
    else:
        detail = (
            f"{build} {_gil.cause_of_gil()}; tasks on different workers "
            "take turns as on a GIL build"
        )
        yield ("gil", WARN, detail)


def _setting(name: str) -> tuple[object, str, str]:
    """(value, source, note) of one key, read from the current directory.

    Bad values of other keys are not this row's business. A project file
    that cannot be parsed is left out (the config file row reports it), and
    the note says so.

    Raises:
        ConfigError: the key's own value is bad.
    """
    try:
        value, source = load_key(name, start=os.getcwd())
    except ConfigFileError:
        value, source = load_key(name, skip_file=True)
        return value, source, "; the project file was not read (it is bad)"
    return value, source, ""


def check_backend() -> Iterator[Row]:
    """The configured poller backend must be available here."""
    choices = ", ".join(available_backends())
    try:
        scheduler, _source, note = _setting("scheduler")
    except ConfigError as exc:
        yield ("backend", FAIL, str(exc))
        return
    assert isinstance(scheduler, str)
    resolved = resolve_backend(scheduler)
    detail = f"{scheduler} -> {resolved} (available: {choices}){note}"
    yield ("backend", OK, detail)


def _unknown_var(name: str) -> str:
    """The detail for a CURCOR_ variable that sets no key."""
    import difflib

    # Match the part after CURCOR_ so the shared prefix does not count.
    close = difflib.get_close_matches(name[len("CURCOR_") :].lower(), KEYS, n=1)
    hint = f"; did you mean {KEYS[close[0]].env}?" if close else ""
    return f"{name} is not a curcor setting and is ignored{hint}"


def check_env(environ: dict[str, str] | None = None) -> Iterator[Row]:
    """Every CURCOR_* variable (and GOMAXPROCS) must hold a valid value."""
    environ = dict(os.environ if environ is None else environ)
    names = sorted(n for n in environ if n.startswith("CURCOR_") or n == "GOMAXPROCS")
    if not names:
        yield ("env vars", OK, "no CURCOR_* variables set")
        return
    for name in names:
        if env_key(name) is None:
            yield ("env vars", WARN, _unknown_var(name))
            continue
        if environ[name] == "" and name != "CURCOR_CONTROL":
            yield ("env vars", OK, f"{name} is empty and counts as unset")
            continue
        try:
            parse_env(name, environ[name])
        except ConfigError as exc:
            yield ("env vars", FAIL, str(exc))
        else:
            yield ("env vars", OK, f"{name}={environ[name]}")


def check_config_file() -> Iterator[Row]:
    """The project's curcor.toml or [tool.curcor] must parse and validate."""
    root = find_root(os.getcwd())
    if root is None:
        yield ("config file", OK, "none found from here upward; defaults apply")
        return
    try:
        config = load_config(root=root, env={})
    except ConfigError as exc:
        yield ("config file", FAIL, str(exc))
        return
    files = sorted({s for s in config.sources.values() if s != "default"})
    detail = ", ".join(files) or f"{root} has no curcor settings; defaults apply"
    yield ("config file", OK, detail)
    if (root / "curcor.toml").is_file() and _has_tool_table(root / "pyproject.toml"):
        yield (
            "config file",
            WARN,
            f"{root} has both curcor.toml and [tool.curcor] in pyproject.toml; "
            f"curcor.toml wins, so move the settings there",
        )


def _has_tool_table(path) -> bool:
    """Whether a pyproject.toml has a [tool.curcor] table."""
    import tomllib

    try:
        with open(path, "rb") as file:
            return "curcor" in tomllib.load(file).get("tool", {})
    except (OSError, ValueError, AttributeError):
        return False


def check_cpus() -> Iterator[Row]:
    """maxprocs should not exceed the CPUs the quota and affinity allow."""
    cpus = usable_cpus()
    quota = cpu_quota()
    limit = f"{cpus} CPUs in the affinity mask, cgroup quota "
    limit += "none" if quota is None else f"{quota:g} CPUs"
    try:
        maxprocs, source, note = _setting("maxprocs")
    except ConfigError:
        # Its own row (env vars or config file) names the bad value.
        yield ("cpu quota", OK, limit + "; maxprocs not compared (its value is bad)")
        return
    assert isinstance(maxprocs, int)
    usable = default_maxprocs()
    detail = f"maxprocs {maxprocs} ({source}); {limit}{note}"
    if maxprocs > usable:
        tip = f"; lower maxprocs to {usable} to avoid oversubscription"
        yield ("cpu quota", WARN, detail + tip)
    else:
        yield ("cpu quota", OK, detail)


def check_open_files() -> Iterator[Row]:
    """The soft limit of open files should be at least MIN_OPEN_FILES."""
    try:
        import resource
    except ImportError:
        yield ("open files", OK, "no RLIMIT_NOFILE on this platform")
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    shown = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
    if soft != resource.RLIM_INFINITY and soft < MIN_OPEN_FILES:
        fix = f"raise it with ulimit -n {min(hard, 65536) if hard > 0 else 4096}"
        yield ("open files", WARN, f"soft limit {shown} < {MIN_OPEN_FILES}; {fix}")
    else:
        yield ("open files", OK, f"soft limit {shown}")


def _record_rows(dist) -> Iterator[tuple[str, str, int | None]]:
    """(path, sha256 digest, size) for the hashed files of a RECORD."""
    import csv

    text = dist.read_text("RECORD") or ""
    for row in csv.reader(text.splitlines()):
        if len(row) < 2 or not row[1].startswith("sha256="):
            continue
        size = int(row[2]) if len(row) > 2 and row[2].isdigit() else None
        yield row[0], row[1][len("sha256=") :], size


def _digest(path: str) -> str:
    """The urlsafe base64 sha256 of a file, as RECORD writes it."""
    import base64
    import hashlib

    with open(path, "rb") as file:
        raw = hashlib.file_digest(file, "sha256").digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _verify(dist) -> tuple[int, list[str]]:
    """Hash the files of one distribution: (files checked, problems)."""
    checked, problems = 0, []
    for relative, expected, _size in _record_rows(dist):
        path = os.fspath(dist.locate_file(relative))
        checked += 1
        try:
            actual = _digest(path)
        except FileNotFoundError:
            problems.append(f"{relative} missing")
            continue
        except OSError as exc:
            problems.append(f"{relative} unreadable ({exc.strerror})")
            continue
        if actual != expected:
            problems.append(f"{relative} changed")
    return checked, problems


def check_distributions(
    dists: Iterable | None = None,
    budget_s: float = INTEGRITY_BUDGET_S,
    clock: Callable[[], float] | None = None,
) -> Iterator[Row]:
    """Every installed file listed with a sha256 in a RECORD must match it."""
    import importlib.metadata
    import time

    clock = clock or time.monotonic
    deadline = clock() + budget_s
    if dists is None:
        dists = importlib.metadata.distributions()
    seen = files = bad = 0
    for dist in dists:
        if clock() > deadline:
            yield (
                "integrity",
                WARN,
                f"stopped after {seen} distributions "
                f"(time budget {budget_s:g} s); the rest were not checked",
            )
            break
        seen += 1
        checked, problems = _verify(dist)
        files += checked
        if problems:
            bad += 1
            yield ("integrity", FAIL, _problem_detail(dist, problems))
    summary = f"{seen} distributions, {files} hashed files checked"
    if bad:
        summary += f", {bad} with mismatches; reinstall them with pip"
    yield ("integrity", FAIL if bad else OK, summary)


def _problem_detail(dist, problems: list[str]) -> str:
    """One line naming a damaged distribution and its first problems."""
    name = dist.metadata["Name"] or "?"
    listed = "; ".join(problems[:MAX_LISTED])
    more = len(problems) - MAX_LISTED
    if more > 0:
        listed += f"; and {more} more"
    fix = f"reinstall: pip install --force-reinstall {name}=={dist.version}"
    return f"{name} {dist.version}: {listed}; {fix}"


CHECKS = (
    check_interpreter,
    check_gil,
    check_backend,
    check_env,
    check_config_file,
    check_cpus,
    check_open_files,
    check_distributions,
)


def render(rows: list[Row]) -> str:
    """The rows as an aligned table with a header."""
    table = [("CHECK", "STATUS", "DETAIL"), *rows]
    width0 = max(len(row[0]) for row in table)
    width1 = max(len(row[1]) for row in table)
    lines = [f"{a:<{width0}}  {b:<{width1}}  {c}" for a, b, c in table]
    return "\n".join(lines)


def execute(args: argparse.Namespace) -> int:
    """Run every check, print the table and a summary; 1 if any failed."""
    rows: list[Row] = []
    for check in CHECKS:
        rows.extend(check())
    print(render(rows))
    failed = sum(row[1] == FAIL for row in rows)
    warned = sum(row[1] == WARN for row in rows)
    print(f"\ndoctor: {failed} failed, {warned} warnings, {len(rows)} checks")
    return 1 if failed else 0

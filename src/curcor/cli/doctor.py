"""``curcor doctor``: check the environment and show the results as a table.

Each check yields rows of (check, status, detail) with status OK, WARN or
FAIL, and a detail that names the cause and the fix when the status is
not OK; the command exits 1 when any row fails (WARN alone exits 0).
``--json`` prints the same rows as a list of objects, each with extra
fields of its own (a setting's key, value and source; the open-file
limits; the integrity counts).

The checks: the interpreter and its build (GIL or free-threaded), the
poller backend, the CURCOR_* variables, the project's config file, one
row per configuration key with its effective value and source, the CPU
quota against maxprocs, the open-file limit, and the integrity of the
installed distributions against the sha256 hashes of their RECORD.

Each problem is reported once, by the row that owns it: a bad value by
its key's setting row (whatever its source), an unknown variable by the
env vars row, a file that does not parse or an unknown key in it by the
config file row. The backend and cpu quota rows read their one key and
leave a bad value to its setting row.
"""

from __future__ import annotations

import math
import os
import sys
from typing import NamedTuple

from curcor._core.config import (
    KEYS,
    Config,
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
from curcor.cli import _gil, _integrity

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from pathlib import Path

__all__ = ["CHECKS", "Row", "check_distributions", "configure", "execute"]

OK, WARN, FAIL = "OK", "WARN", "FAIL"


class Row(NamedTuple):
    """One line of the report; ``data`` holds the extra fields of --json."""

    check: str
    status: str
    detail: str
    data: Mapping[str, object] | None = None


# Below this soft limit a server runs out of descriptors early: each
# connection holds one. Go raises its soft limit to the hard one at start
# for the same reason; 4096 is a modest server's worth of connections
# (arbitrary; the usual Linux default of 1024 is below it on purpose).
MIN_OPEN_FILES = 4096

# What `ulimit -n` is suggested to raise a low soft limit to, when the hard
# limit allows it; a common production setting, not a measurement.
SUGGESTED_OPEN_FILES = 65536

# Hashing every installed file took 0.5 to 0.8 s for 40 distributions
# (283 MB) on a two-CPU machine, with the rest of doctor at about 0.15 s;
# this budget keeps doctor under 3 s in larger environments or on a cold
# disk cache, and --all lifts it.
INTEGRITY_BUDGET_S = 2.5

# Mismatches listed per distribution before the rest are counted.
MAX_LISTED = 3


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``curcor doctor``."""
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the rows as a JSON list of objects (check, status, detail, ...)",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help=f"hash every installed distribution, past the {INTEGRITY_BUDGET_S:g} s "
        "budget of the integrity check",
    )
    parser.epilog = (
        "Exit status: 0 when nothing failed (warnings allowed), 1 when a check failed."
    )


# -- the interpreter ------------------------------------------------------------


def check_interpreter() -> Iterator[Row]:
    """The interpreter; __main__ has already refused anything before 3.11."""
    version = ".".join(map(str, sys.version_info[:3]))
    detail = f"{sys.implementation.name} {version} at {sys.executable}"
    yield Row(
        "interpreter", OK, detail, {"version": version, "executable": sys.executable}
    )


def check_gil() -> Iterator[Row]:
    """A GIL build, or a free-threaded one; WARN when its GIL came back."""
    free_threaded, enabled = _gil.gil_status()
    build = _gil.describe(free_threaded, enabled)
    data = {"free_threaded": free_threaded, "gil_enabled": enabled}
    if not free_threaded:
        yield Row("gil", OK, f"{build}: workers take turns running Python code", data)
    elif not enabled:
        detail = f"{build}: tasks on different workers run in parallel"
        yield Row("gil", OK, detail, data)
    else:
        detail = (
            f"{build} {_gil.cause_of_gil()}; tasks on different workers "
            "take turns as on a GIL build"
        )
        yield Row("gil", WARN, detail, data)


# -- the configuration ----------------------------------------------------------


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
    """The poller backend that the scheduler key resolves to here."""
    choices = ", ".join(available_backends())
    try:
        scheduler, _source, note = _setting("scheduler")
    except ConfigError:
        detail = f"not resolved (scheduler's value is bad); available: {choices}"
        yield Row("backend", OK, detail)
        return
    assert isinstance(scheduler, str)
    resolved = resolve_backend(scheduler)
    detail = f"{scheduler} -> {resolved} (available: {choices}){note}"
    yield Row("backend", OK, detail, {"backend": resolved})


# CURCOR_ variables that are no setting but do act: test switches.
SWITCHES = {
    "CURCOR_FAULT_THREAD_CREATE": "makes starting the worker of that index fail",
}


def _close_key(word: str) -> str | None:
    """The key closest to ``word``, if any is close."""
    import difflib

    close = difflib.get_close_matches(word.lower(), KEYS, n=1)
    return close[0] if close else None


def check_env(environ: Mapping[str, str] | None = None) -> Iterator[Row]:
    """CURCOR_* variables (and GOMAXPROCS) that set no key are ignored: WARN.

    Their values are checked by the setting rows.
    """
    environ = os.environ if environ is None else environ
    names = sorted(n for n in environ if n.startswith("CURCOR_") or n == "GOMAXPROCS")
    known = [n for n in names if env_key(n) is not None]
    empty = [n for n in known if environ[n] == "" and n != "CURCOR_CONTROL"]
    used = [n for n in known if n not in empty]
    if used:
        detail = f"{', '.join(used)} set (values checked in the setting rows)"
        yield Row("env vars", OK, detail, {"variables": used})
    if empty:
        detail = f"{', '.join(empty)} empty, so unset (only CURCOR_CONTROL= means off)"
        yield Row("env vars", OK, detail, {"variables": empty})
    if not names:
        yield Row("env vars", OK, "no CURCOR_* variables set")
    for name in names:
        if name in SWITCHES:
            detail = (
                f"{name}={environ[name]} is a test switch that {SWITCHES[name]}; "
                f"unset it outside curcor's tests"
            )
            yield Row("env vars", WARN, detail, {"variable": name})
        elif env_key(name) is None:
            # Match the part after CURCOR_ so the shared prefix does not count.
            close = _close_key(name[len("CURCOR_") :])
            hint = f"; did you mean {KEYS[close].env}?" if close else ""
            detail = f"{name} is not a curcor setting and is ignored{hint}"
            yield Row("env vars", WARN, detail, {"variable": name})


def _file_table(root: Path) -> tuple[dict, str] | None:
    """The settings table of the project at ``root`` and the file it is in,
    once load_key has found the file sound, or None when there is none."""
    import tomllib

    path = root / "curcor.toml"
    if path.is_file():
        return tomllib.loads(path.read_text("utf-8")), str(path)
    path = root / "pyproject.toml"
    if not path.is_file():
        return None
    tool = tomllib.loads(path.read_text("utf-8")).get("tool")
    table = tool.get("curcor") if isinstance(tool, dict) else None
    return (table, f"[tool.curcor] of {path}") if isinstance(table, dict) else None


def check_config_file() -> Iterator[Row]:
    """The project's curcor.toml or [tool.curcor] must parse, and hold only
    known keys; the values are the setting rows' business."""
    root = find_root(os.getcwd())
    if root is None:
        detail = "no curcor.toml or pyproject.toml from here upward; defaults apply"
        yield Row("config file", OK, detail, {"file": None})
        return
    try:
        load_key("scheduler", root=root, env={})
    except ConfigFileError as exc:
        yield Row("config file", FAIL, str(exc), {"root": str(root)})
        return
    except ConfigError:
        pass  # a bad scheduler value: its setting row says so

    # The file parses: name its keys and refuse the unknown ones.
    found = _file_table(root)
    if found is None:
        detail = f"{root}/pyproject.toml has no [tool.curcor]; defaults apply"
        yield Row("config file", OK, detail, {"file": None})
    else:
        table, where = found
        unknown = [name for name in table if name not in KEYS]
        known = len(table) - len(unknown)
        count = f"{known} key{'s' if known != 1 else ''} set"
        yield Row("config file", OK, f"{where}: {count}", {"file": where})
        for name in unknown:
            close = _close_key(name)
            hint = f'did you mean "{close}"?' if close else f"keys: {', '.join(KEYS)}"
            detail = (
                f'unknown key "{name}" in {where}, and curcor run refuses it; '
                f"rename or remove it ({hint})"
            )
            yield Row("config file", FAIL, detail, {"key": name})
    if (root / "curcor.toml").is_file() and _has_tool_table(root / "pyproject.toml"):
        detail = (
            f"{root} has both curcor.toml and [tool.curcor] in pyproject.toml; "
            f"curcor.toml wins, so move the settings there"
        )
        yield Row("config file", WARN, detail)


def _has_tool_table(path: Path) -> bool:
    """Whether a pyproject.toml has a [tool.curcor] table."""
    import tomllib

    try:
        with open(path, "rb") as file:
            return "curcor" in tomllib.load(file).get("tool", {})
    except (OSError, ValueError, AttributeError):
        return False


def _env_vars(name: str) -> tuple[str, ...]:
    """The environment variables that set key ``name``, lowest first."""
    return ("GOMAXPROCS", KEYS[name].env) if name == "maxprocs" else (KEYS[name].env,)


def _key_errors(name: str, cwd: str, environ: Mapping[str, str], file_ok: bool):
    """The messages of every bad value that key ``name`` is given."""
    errors = []
    if file_ok:
        try:
            load_key(name, start=cwd, env={})
        except ConfigError as exc:
            errors.append(str(exc))
    for var in _env_vars(name):
        text = environ.get(var)
        if text is None or (text == "" and var != "CURCOR_CONTROL"):
            continue
        try:
            parse_env(var, text)
        except ConfigError as exc:
            errors.append(str(exc))
    return errors


def survey(
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, tuple[object, str]], dict[str, list[str]], str]:
    """Every key's (value, source), the errors of the bad ones, and a note.

    When the whole configuration loads, it is load_config's. Otherwise each
    key is read alone, so that one bad value hides no other: a key with a
    bad value (from any source) is in the errors instead, and the note says
    when the project file was left out because it does not parse.
    """
    cwd = os.getcwd()
    environ = os.environ if environ is None else environ
    try:
        config = load_config(start=cwd, env=environ)
    except ConfigError:
        pass
    else:
        return {name: (value, config.sources[name]) for name, value in config}, {}, ""

    # Is the file as a whole readable? Its own row reports when not.
    file_ok, note = True, ""
    try:
        load_key("scheduler", start=cwd, env={})
    except ConfigFileError:
        file_ok, note = False, "; the project file was not read (it is bad)"
    except ConfigError:
        pass

    # Each key alone: its errors, else its value and source.
    errors: dict[str, list[str]] = {}
    found: dict[str, tuple[object, str]] = {}
    for name in KEYS:
        problems = _key_errors(name, cwd, environ, file_ok)
        if problems:
            errors[name] = problems
        else:
            found[name] = load_key(name, start=cwd, env=environ, skip_file=not file_ok)

    # Defaults that follow maxprocs (to_thread_max) follow the value found.
    given = {name: value for name, (value, src) in found.items() if src != "default"}
    computed = Config(**given)
    values = {name: (getattr(computed, name), src) for name, (_, src) in found.items()}
    return values, errors, note


def _origin(source: str) -> str:
    """Where a value came from, as the rows say it."""
    return "by default" if source == "default" else f"from {source}"


def _toml_value(name: str, value: object) -> str:
    """A value spelt as curcor env spells it."""
    from curcor.cli.env import _toml_value as spell

    return spell(name, value)


def check_settings(environ: Mapping[str, str] | None = None) -> Iterator[Row]:
    """One row per key: its effective value and source, or FAIL for each
    bad value it is given (from the file, GOMAXPROCS or CURCOR_<KEY>)."""
    values, errors, note = survey(environ)
    for name, key in KEYS.items():
        check = f"setting {name}"
        for message in errors.get(name, ()):
            yield Row(check, FAIL, message, {"key": name})
        if name not in values:
            continue
        value, source = values[name]
        extra = ""
        if name == "scheduler":
            assert isinstance(value, str)
            extra = f"; resolves to {resolve_backend(value)}"
        if key.pending:
            extra += f"; no effect until {key.pending} is built"
        detail = f"{_toml_value(name, value)} {_origin(source)}{extra}{note}"
        yield Row(check, OK, detail, {"key": name, "value": value, "source": source})


# -- the machine ------------------------------------------------------------------


def check_cpus() -> Iterator[Row]:
    """maxprocs should not exceed the CPUs the quota and affinity allow."""
    cpus = usable_cpus()
    quota = cpu_quota()
    usable = default_maxprocs()
    limit = f"{cpus} CPUs in the affinity mask, cgroup quota "
    limit += "none" if quota is None else f"{quota:g} CPUs"
    data: dict[str, object] = {"affinity": cpus, "quota": quota, "usable": usable}
    try:
        maxprocs, source, note = _setting("maxprocs")
    except ConfigError:
        # Its setting row names the bad value.
        detail = limit + "; maxprocs not compared (its value is bad)"
        yield Row("cpu quota", OK, detail, data)
        return
    assert isinstance(maxprocs, int)
    data["maxprocs"] = maxprocs
    detail = f"maxprocs {maxprocs} {_origin(source)}; {limit}{note}"
    if maxprocs > usable:
        tip = (
            f"; {_workers(maxprocs - usable)} no CPU of their own: lower "
            f"maxprocs to {usable}, or unset it to follow the CPUs"
        )
        yield Row("cpu quota", WARN, detail + tip, data)
    else:
        yield Row("cpu quota", OK, detail, data)


def _raise_nofile(soft: int, hard: int, infinity: int) -> str:
    """How to raise a soft limit of open files that is too low."""
    if hard == infinity or hard >= SUGGESTED_OPEN_FILES:
        target = SUGGESTED_OPEN_FILES
    elif hard >= MIN_OPEN_FILES:
        target = hard
    else:
        return (
            f"the hard limit {hard} is low too: raise it as root (LimitNOFILE= "
            "of a systemd unit, nofile in /etc/security/limits.conf, docker "
            f"run --ulimit nofile={SUGGESTED_OPEN_FILES})"
        )
    return (
        f"run ulimit -n {target} before starting it, or have the program raise "
        "its soft limit to the hard one (resource.setrlimit)"
    )


def check_open_files() -> Iterator[Row]:
    """The soft limit of open files should be at least MIN_OPEN_FILES."""
    try:
        import resource
    except ImportError:
        yield Row("open files", OK, "no RLIMIT_NOFILE on this platform")
        return
    infinity = resource.RLIM_INFINITY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    data = {
        "soft": None if soft == infinity else soft,
        "hard": None if hard == infinity else hard,
    }
    shown = {name: "unlimited" if n is None else n for name, n in data.items()}
    limits = f"soft limit {shown['soft']}, hard {shown['hard']}"
    if soft != infinity and soft < MIN_OPEN_FILES:
        detail = (
            f"{limits}: a server runs out of descriptors after about {soft} "
            f"connections (one each), below {MIN_OPEN_FILES}; "
            + _raise_nofile(soft, hard, infinity)
        )
        yield Row("open files", WARN, detail, data)
    else:
        detail = f"{limits}: room for about that many connections (one descriptor each)"
        yield Row("open files", OK, detail, data)


# -- the installed distributions ------------------------------------------------


def check_distributions(
    dists: Iterable | None = None,
    budget_s: float | None = INTEGRITY_BUDGET_S,
    clock: Callable[[], float] | None = None,
) -> Iterator[Row]:
    """Every installed file listed with a sha256 in a RECORD must match it.

    curcor and its requirements are checked first; past ``budget_s``
    seconds (None: no limit) the check stops with a WARN row.
    """
    import importlib.metadata
    import time

    clock = clock or time.monotonic
    start = clock()
    deadline = start + (math.inf if budget_s is None else budget_s)
    if dists is None:
        dists = importlib.metadata.distributions()
    dists = _integrity.ordered(dists)

    # Hash each distribution's files; a deadline can cut one short.
    seen = files = 0
    damaged = []
    for dist in dists:
        verdict = _integrity.verify(dist, deadline, clock)
        files += verdict.checked
        seen += verdict.complete
        if verdict.problems:
            damaged.append(_integrity.name_of(dist))
            detail = _problem_detail(dist, verdict.problems)
            yield Row("integrity", FAIL, detail, {"distribution": damaged[-1]})
        if not verdict.complete:
            detail = (
                f"stopped at the time budget ({budget_s:g} s): {seen} of "
                f"{len(dists)} distributions checked, curcor's first; run "
                f"curcor doctor --all to check the rest"
            )
            yield Row("integrity", WARN, detail, {"unchecked": len(dists) - seen})
            break

    # The summary.
    summary = f"{seen} distributions, {files} hashed files checked"
    if damaged:
        summary += f", {len(damaged)} with mismatches; reinstall them with pip"
    data = {
        "distributions": seen,
        "files": files,
        "damaged": damaged,
        "seconds": round(clock() - start, 3),
    }
    yield Row("integrity", FAIL if damaged else OK, summary, data)


def _problem_detail(dist, problems: list[str]) -> str:
    """One line naming a damaged distribution and its first problems."""
    name = _integrity.name_of(dist)
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
    check_settings,
    check_cpus,
    check_open_files,
    check_distributions,
)


def render(rows: list[Row]) -> str:
    """The rows as an aligned table with a header."""
    table = [("CHECK", "STATUS", "DETAIL"), *(row[:3] for row in rows)]
    width0 = max(len(row[0]) for row in table)
    width1 = max(len(row[1]) for row in table)
    lines = [f"{a:<{width0}}  {b:<{width1}}  {c}" for a, b, c in table]
    return "\n".join(lines)


def render_json(rows: list[Row]) -> str:
    """The rows as a JSON list of objects: check, status, detail, then the
    row's own fields."""
    import json

    objects = [
        {
            "check": row.check,
            "status": row.status,
            "detail": row.detail,
            **(row.data or {}),
        }
        for row in rows
    ]
    return json.dumps(objects, indent=2)


def execute(args: argparse.Namespace) -> int:
    """Run every check and print the rows; return 1 if any failed, else 0."""
    rows: list[Row] = []
    for check in CHECKS:
        if check is check_distributions:
            budget = None if args.all else INTEGRITY_BUDGET_S
            rows.extend(check_distributions(budget_s=budget))
        else:
            rows.extend(check())
    failed = sum(row.status == FAIL for row in rows)
    warned = sum(row.status == WARN for row in rows)
    if args.json:
        print(render_json(rows))
    else:
        print(render(rows))
        print(f"\ndoctor: {failed} failed, {warned} warnings, {len(rows)} checks")
    return 1 if failed else 0


def _workers(n: int) -> str:
    """ "1 worker has" or "N workers have"."""
    return "1 worker has" if n == 1 else f"{n} workers have"

"""``curcor doctor``: every check run as a user runs it, in a subprocess, and
the integrity check against distributions built in a temporary directory."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from curcor._core.config import KEYS, default_maxprocs, resolve_backend
from curcor.cli import doctor

SRC = Path(__file__).resolve().parents[1] / "src"


def clean_env(extra: dict | None = None, path: tuple = ()) -> dict[str, str]:
    """The test's environment without curcor settings, with src importable
    and ``path`` ahead of the rest of PYTHONPATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CURCOR_") and k != "GOMAXPROCS"
    }
    entries = [*map(str, path), str(SRC), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, entries))
    env.update(extra or {})
    return env


def ample_open_files() -> None:
    """In the child: the soft open-file limit raised as far as the doctor's
    threshold, so a machine's low default does not turn a row WARN."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = doctor.MIN_OPEN_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        top = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))


def few_open_files() -> None:
    """In the child: a soft open-file limit of 256."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


def run_doctor(
    *args: str, cwd: Path, env=None, path=(), limits=ample_open_files
) -> subprocess.CompletedProcess:
    """Run ``python -m curcor doctor ARGS`` and return the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "curcor", "doctor", *args],
        cwd=cwd,
        env=clean_env(env, path),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limits,
    )


def table_rows(stdout: str) -> list[tuple[str, str, str]]:
    """The rows of doctor's table, cut at the header's column starts."""
    lines = stdout.split("\n\n")[0].splitlines()
    header = lines[0]
    assert header.split() == ["CHECK", "STATUS", "DETAIL"]
    status, detail = header.index("STATUS"), header.index("DETAIL")
    return [
        (line[:status].strip(), line[status:detail].strip(), line[detail:])
        for line in lines[1:]
    ]


def by_check(rows) -> dict[str, list[tuple[str, str]]]:
    """(status, detail) of the rows, grouped by check."""
    found: dict[str, list[tuple[str, str]]] = {}
    for check, status, detail in rows:
        found.setdefault(check, []).append((status, detail))
    return found


def only(rows, check: str) -> tuple[str, str]:
    """The one row of ``check``."""
    [row] = by_check(rows)[check]
    return row


def not_ok(rows) -> list[tuple[str, str, str]]:
    return [row for row in rows if row[1] != "OK"]


# -- the whole report ------------------------------------------------------------


def test_doctor_is_all_ok_in_a_clean_project(tmp_path):
    (tmp_path / "curcor.toml").write_text('log = "info"\n')
    result = run_doctor(cwd=tmp_path)
    rows = table_rows(result.stdout)
    checks = {row[0] for row in rows}
    assert {"interpreter", "gil", "backend", "env vars", "config file"} <= checks
    assert {"cpu quota", "open files", "integrity"} <= checks
    assert {f"setting {name}" for name in KEYS} <= checks
    assert not_ok(rows) == []
    assert result.returncode == 0, result.stdout
    summary = result.stdout.rstrip().splitlines()[-1]
    assert summary == f"doctor: 0 failed, 0 warnings, {len(rows)} checks"


def test_setting_rows_show_every_key_with_the_value_and_source_env_shows(tmp_path):
    (tmp_path / "curcor.toml").write_text('log = "info"\nmempool_size = "1MB"\n')
    env = {"CURCOR_MAXPROCS": "3"}
    result = run_doctor("--json", cwd=tmp_path, env=env)
    settings = {o["key"]: o for o in json.loads(result.stdout) if "key" in o}
    shown = subprocess.run(
        [sys.executable, "-m", "curcor", "env", "--json"],
        cwd=tmp_path,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    keys = json.loads(shown.stdout)["keys"]
    assert list(settings) == list(KEYS)
    for name, entry in keys.items():
        assert (settings[name]["value"], settings[name]["source"]) == (
            entry["value"],
            entry["source"],
        )
    assert settings["maxprocs"]["detail"] == "3 from CURCOR_MAXPROCS"
    assert settings["to_thread_max"]["detail"] == "7 by default"
    toml = tmp_path / "curcor.toml"
    assert settings["log"]["detail"] == f'"info" from curcor.toml ({toml})'
    assert settings["mempool_size"]["detail"].startswith('"1MB" from curcor.toml')
    backend = resolve_backend("auto")
    assert (
        settings["scheduler"]["detail"] == f'"auto" by default; resolves to {backend}'
    )


def test_json_holds_the_rows_of_the_table_and_exits_as_it_does(tmp_path):
    env = {"CURCOR_PREEMPT": "maybe", "CURCOR_MAXPROC": "2"}
    table = run_doctor(cwd=tmp_path, env=env)
    listed = run_doctor("--json", cwd=tmp_path, env=env)
    objects = json.loads(listed.stdout)
    assert [(o["check"], o["status"], o["detail"]) for o in objects] == table_rows(
        table.stdout
    )
    assert table.returncode == listed.returncode == 1
    assert listed.stderr == ""


# -- the configuration ---------------------------------------------------------------


def test_a_bad_env_value_fails_its_setting_row_once_and_exits_1(tmp_path):
    result = run_doctor(cwd=tmp_path, env={"CURCOR_PREEMPT": "maybe"})
    rows = table_rows(result.stdout)
    assert not_ok(rows) == [
        (
            "setting preempt",
            "FAIL",
            'CURCOR_PREEMPT="maybe" is not a boolean; use true/false, 1/0, '
            "yes/no or on/off, e.g. CURCOR_PREEMPT=false",
        )
    ]
    assert only(rows, "env vars") == (
        "OK",
        "CURCOR_PREEMPT set (values checked in the setting rows)",
    )
    assert result.returncode == 1
    assert "doctor: 1 failed, 0 warnings" in result.stdout


def test_an_unknown_curcor_variable_warns_with_the_closest_key_and_exits_0(tmp_path):
    result = run_doctor(cwd=tmp_path, env={"CURCOR_MAXPROC": "2"})
    rows = table_rows(result.stdout)
    assert not_ok(rows) == [
        (
            "env vars",
            "WARN",
            "CURCOR_MAXPROC is not a curcor setting and is ignored; "
            "did you mean CURCOR_MAXPROCS?",
        )
    ]
    assert result.returncode == 0


def test_a_test_switch_in_the_environment_warns_that_it_acts():
    rows = list(doctor.check_env({"CURCOR_FAULT_THREAD_CREATE": "1"}))
    assert [row[:3] for row in rows] == [
        (
            "env vars",
            "WARN",
            "CURCOR_FAULT_THREAD_CREATE=1 is a test switch that makes starting "
            "the worker of that index fail; unset it outside curcor's tests",
        )
    ]


def test_rows_reflect_only_their_own_check(tmp_path):
    result = run_doctor(cwd=tmp_path, env={"CURCOR_MAXPROCS": "0"})
    rows = table_rows(result.stdout)
    backend = resolve_backend("auto")
    assert only(rows, "backend")[1].startswith(f"auto -> {backend} (available: auto")
    assert not_ok(rows) == [
        (
            "setting maxprocs",
            "FAIL",
            'CURCOR_MAXPROCS="0" is less than 1; '
            "set it to a whole number from 1 to 1024, e.g. CURCOR_MAXPROCS=2",
        )
    ]
    quota = only(rows, "cpu quota")[1]
    assert quota.endswith("; maxprocs not compared (its value is bad)")
    # The default that follows maxprocs follows the CPUs instead.
    threads = min(32, default_maxprocs() + 4)
    assert only(rows, "setting to_thread_max") == ("OK", f"{threads} by default")
    assert result.returncode == 1


def test_every_bad_source_of_a_key_gets_its_own_row(tmp_path):
    (tmp_path / "curcor.toml").write_text('maxprocs = "4"\n')
    result = run_doctor(cwd=tmp_path, env={"GOMAXPROCS": "x", "CURCOR_GC": "off"})
    rows = table_rows(result.stdout)
    details = [detail for _check, _status, detail in not_ok(rows)]
    assert [row[:2] for row in not_ok(rows)] == [("setting maxprocs", "FAIL")] * 2
    assert details[0].startswith('maxprocs = "4" in ')
    assert details[1].startswith('GOMAXPROCS="x" is not an integer')
    assert only(rows, "setting gc") == ("OK", '"off" from CURCOR_GC')
    assert only(rows, "config file")[0] == "OK"


def test_backend_and_cpu_rows_ignore_other_keys(tmp_path):
    env = {"CURCOR_SCHEDULER": "poll", "CURCOR_MAXPROCS": "1", "CURCOR_GC": "x"}
    rows = table_rows(run_doctor(cwd=tmp_path, env=env).stdout)
    assert only(rows, "backend")[1].startswith("poll -> poll ")
    status, detail = only(rows, "cpu quota")
    assert status == "OK"
    assert detail.startswith("maxprocs 1 from CURCOR_MAXPROCS; ")
    assert [row[0] for row in not_ok(rows)] == ["setting gc"]


def test_an_unknown_backend_fails_the_scheduler_row_not_the_backend_row(tmp_path):
    rows = table_rows(
        run_doctor(cwd=tmp_path, env={"CURCOR_SCHEDULER": "bogus"}).stdout
    )
    status, detail = only(rows, "setting scheduler")
    assert status == "FAIL"
    assert detail.startswith('CURCOR_SCHEDULER="bogus" is not a poller backend')
    assert only(rows, "backend")[1].startswith(
        "not resolved (scheduler's value is bad)"
    )


def test_maxprocs_beyond_the_usable_cpus_warns_with_the_number_to_use(tmp_path):
    usable = default_maxprocs()
    env = {"CURCOR_MAXPROCS": str(usable + 3)}
    result = run_doctor(cwd=tmp_path, env=env)
    status, detail = only(table_rows(result.stdout), "cpu quota")
    assert status == "WARN"
    assert detail.endswith(
        f"; 3 workers have no CPU of their own: lower maxprocs to {usable}, "
        "or unset it to follow the CPUs"
    )
    assert result.returncode == 0


def test_a_curcor_toml_that_does_not_parse_fails_with_its_line(tmp_path):
    (tmp_path / "curcor.toml").write_text('log = "info"\nmaxprocs = \n')
    result = run_doctor(cwd=tmp_path)
    rows = table_rows(result.stdout)
    status, detail = only(rows, "config file")
    assert status == "FAIL"
    assert detail == (
        f"{tmp_path / 'curcor.toml'} is not valid TOML: Invalid value "
        "(at line 2, column 12); fix the syntax there (keys look like maxprocs = 2)"
    )
    assert [row[0] for row in not_ok(rows)] == ["config file"]
    # The other rows read the rest of the sources, and say so.
    note = "; the project file was not read (it is bad)"
    assert only(rows, "backend")[1].endswith(note)
    assert only(rows, "setting log") == ("OK", '"warning" by default' + note)
    assert result.returncode == 1


def test_unknown_keys_of_curcor_toml_fail_each_with_the_closest_key(tmp_path):
    (tmp_path / "curcor.toml").write_text("maxproc = 1\nlog = 'info'\nzzz = 1\n")
    result = run_doctor(cwd=tmp_path)
    rows = by_check(table_rows(result.stdout))["config file"]
    path = tmp_path / "curcor.toml"
    assert rows[0] == ("OK", f"{path}: 1 key set")
    assert rows[1] == (
        "FAIL",
        f'unknown key "maxproc" in {path}, and curcor run refuses it; '
        'rename or remove it (did you mean "maxprocs"?)',
    )
    assert rows[2][0] == "FAIL"
    assert rows[2][1].endswith(f"(keys: {', '.join(KEYS)})")
    assert result.returncode == 1


def test_tool_curcor_and_curcor_toml_together_warn(tmp_path):
    (tmp_path / "curcor.toml").write_text("")
    (tmp_path / "pyproject.toml").write_text("[tool.curcor]\nmaxprocs = 1\n")
    rows = by_check(table_rows(run_doctor(cwd=tmp_path).stdout))["config file"]
    assert rows[0] == ("OK", f"{tmp_path / 'curcor.toml'}: 0 keys set")
    assert rows[1][0] == "WARN"
    assert rows[1][1].endswith("curcor.toml wins, so move the settings there")


# -- the machine ---------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="no RLIMIT_NOFILE")
def test_a_low_open_file_limit_warns_with_the_fix(tmp_path):
    result = run_doctor(cwd=tmp_path, limits=few_open_files)
    rows = table_rows(result.stdout)
    status, detail = only(rows, "open files")
    assert status == "WARN"
    assert detail.startswith("soft limit 256, hard ")
    assert "runs out of descriptors after about 256 connections" in detail
    assert "ulimit -n" in detail or "raise it as root" in detail
    assert not_ok(rows) == [("open files", status, detail)]
    assert result.returncode == 0


# -- integrity -------------------------------------------------------------------


def fake_dist(site: Path, name: str, files: dict[str, bytes], record: str):
    """A distribution in ``site`` with ``files`` and the given RECORD text."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
    )
    (info / "RECORD").write_text(record)
    for relative, data in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_bytes(data)
    return importlib.metadata.PathDistribution(info)


def record_line(path: str, data: bytes) -> str:
    """A RECORD line as a wheel installer writes it."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"{path},sha256={digest.decode()},{len(data)}\n"


def test_a_tampered_installed_file_fails_naming_the_file_and_the_fix(tmp_path):
    site, project = tmp_path / "site", tmp_path / "project"
    project.mkdir()
    code = b"VALUE = 1\n"
    record = (
        record_line("tamperme/__init__.py", code)
        + "tamperme/__pycache__/__init__.cpython-311.pyc,,\n"
        + "tamperme-1.0.dist-info/RECORD,,\n"
    )
    fake_dist(site, "tamperme", {"tamperme/__init__.py": code}, record)

    # Intact, it is checked and passes.
    before = run_doctor("--json", cwd=project, path=[site])
    [summary] = [o for o in json.loads(before.stdout) if o["check"] == "integrity"]
    assert summary["status"] == "OK"
    assert "tamperme" not in summary["damaged"]
    assert before.returncode == 0

    # Changed after installation, it fails.
    (site / "tamperme" / "__init__.py").write_bytes(b"VALUE = 2\n")
    after = run_doctor(cwd=project, path=[site])
    rows = by_check(table_rows(after.stdout))["integrity"]
    assert rows[0] == (
        "FAIL",
        "tamperme 1.0: tamperme/__init__.py changed; "
        "reinstall: pip install --force-reinstall tamperme==1.0",
    )
    assert rows[-1][0] == "FAIL"
    assert rows[-1][1].endswith(", 1 with mismatches; reinstall them with pip")
    assert after.returncode == 1


def test_integrity_check_reports_changed_and_missing_files(tmp_path):
    good = fake_dist(
        tmp_path,
        "good",
        {"good/a.py": b"a = 1\n"},
        record_line("good/a.py", b"a = 1\n") + "good-1.0.dist-info/RECORD,,\n",
    )
    bad = fake_dist(
        tmp_path,
        "bad",
        {"bad/a.py": b"tampered\n", "bad/b.py": b"b = 2\n"},
        record_line("bad/a.py", b"a = 1\n")
        + record_line("bad/gone.py", b"x")
        + record_line("bad/b.py", b"b = 3\n"),  # same size, other bytes
    )
    rows = list(doctor.check_distributions([good, bad]))
    assert rows[0][:2] == ("integrity", "FAIL")
    assert rows[0].detail == (
        "bad 1.0: bad/a.py changed; bad/gone.py missing; bad/b.py changed; "
        "reinstall: pip install --force-reinstall bad==1.0"
    )
    assert rows[-1][:3] == (
        "integrity",
        "FAIL",
        "2 distributions, 4 hashed files checked, 1 with mismatches; "
        "reinstall them with pip",
    )
    assert rows[-1].data is not None
    assert rows[-1].data["damaged"] == ["bad"]


def test_integrity_check_stops_at_its_time_budget_and_names_the_way_on(tmp_path):
    files = {f"d{i}/{n}.py": b"x" for i in range(3) for n in "ab"}
    dists = [
        fake_dist(
            tmp_path,
            f"d{i}",
            {},
            "".join(record_line(f"d{i}/{n}.py", b"x") for n in "ab"),
        )
        for i in range(3)
    ]
    for relative, data in files.items():
        (tmp_path / relative).parent.mkdir(exist_ok=True)
        (tmp_path / relative).write_bytes(data)
    ticks = iter(range(100))
    rows = list(
        doctor.check_distributions(dists, budget_s=2.5, clock=lambda: next(ticks))
    )
    assert rows[0][:2] == ("integrity", "WARN")
    assert rows[0].detail == (
        "stopped at the time budget (2.5 s): 1 of 3 distributions checked, "
        "curcor's first; run curcor doctor --all to check the rest"
    )
    assert rows[1][:3] == ("integrity", "OK", "1 distributions, 2 hashed files checked")


def test_curcor_and_its_requirements_are_checked_first(tmp_path):
    from curcor.cli import _integrity

    other = fake_dist(tmp_path, "other", {}, "")
    dep = fake_dist(tmp_path, "dep_lib", {}, "")
    extra = fake_dist(tmp_path, "extra-lib", {}, "")
    info = tmp_path / "curcor-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: curcor\nVersion: 1.0\n"
        "Requires-Dist: Dep.Lib>=1\n"
        'Requires-Dist: extra-lib; extra == "test"\n'
    )
    curcor = importlib.metadata.PathDistribution(info)
    names = [
        _integrity.name_of(d) for d in _integrity.ordered([other, extra, dep, curcor])
    ]
    assert names == ["curcor", "dep_lib", "other", "extra-lib"]

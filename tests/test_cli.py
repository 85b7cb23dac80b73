"""Tests of the ``curcor`` command line, run as ``python -m curcor`` in a
subprocess with ``src`` on PYTHONPATH, so they pass with or without an
install.

The ``curcor run`` tests come in two kinds: ones that drive the command
through a stand-in runtime (a driver script that installs a fake
``curcor._core.runtime`` before calling ``curcor.cli.main``), which check the
command's own logic, and ones that need the real runtime and are skipped
until ``curcor._core.runtime.set_process_defaults`` exists.
"""

from __future__ import annotations

import ast
import json
import os
import select
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from curcor._core.config import KEYS, load_config, resolve_backend
from curcor.cli import doctor

SRC = Path(__file__).resolve().parents[1] / "src"
PANIC = "curcor: scheduler init panic: "


def clean_env(extra: dict | None = None) -> dict[str, str]:
    """The test's environment without curcor settings, with src importable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CURCOR_") and k != "GOMAXPROCS"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def curcor(*args: str, cwd: Path, env: dict | None = None, python_args=()):
    """Run ``python -m curcor ARGS`` and return the completed process."""
    return subprocess.run(
        [sys.executable, *python_args, "-m", "curcor", *args],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def assert_one_line(result, status: int, prefix: str) -> str:
    """The process exited with ``status`` after one stderr line starting so."""
    lines = result.stderr.splitlines()
    assert result.returncode == status, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(prefix), lines[0]
    return lines[0]


# -- init panics ---------------------------------------------------------------


BAD_ENV = [
    ({"CURCOR_MAXPROCS": "0"}, 'CURCOR_MAXPROCS="0" is less than 1'),
    ({"CURCOR_MAXPROCS": "abc"}, 'CURCOR_MAXPROCS="abc" is not an integer'),
    ({"CURCOR_MEMPOOL_SIZE": "12XB"}, 'CURCOR_MEMPOOL_SIZE="12XB" is not a size'),
    ({"CURCOR_SCHEDULER": "bogus"}, 'CURCOR_SCHEDULER="bogus" is not a poller'),
    ({"GOMAXPROCS": "-1"}, 'GOMAXPROCS="-1" is less than 1'),
    ({"CURCOR_MAXPROCS": "99999"}, 'CURCOR_MAXPROCS="99999" is more than 1024'),
]


@pytest.mark.parametrize(("env", "what"), BAD_ENV)
@pytest.mark.parametrize("command", ["run", "env"])
def test_bad_env_value_panics_in_one_line_with_status_2(tmp_path, env, what, command):
    write(tmp_path / "app.py", "print('never')\n")
    args = ["run", "app.py"] if command == "run" else ["env"]
    result = curcor(*args, cwd=tmp_path, env=env)
    line = assert_one_line(result, 2, PANIC + what)
    assert ", e.g. " in line
    assert result.stdout == ""


@pytest.mark.skipif(hasattr(select, "kqueue"), reason="kqueue exists here")
def test_kqueue_where_it_is_missing_panics_as_unavailable(tmp_path):
    write(tmp_path / "app.py", "")
    result = curcor("run", "app.py", cwd=tmp_path, env={"CURCOR_SCHEDULER": "kqueue"})
    assert_one_line(result, 2, PANIC + 'CURCOR_SCHEDULER="kqueue" is not available')


@pytest.mark.parametrize(
    ("toml", "what"),
    [
        ("maxproc = 2\n", 'unknown key "maxproc" in '),
        ('maxprocs = "2"\n', 'maxprocs = "2" in '),
        ("maxprocs = \n", ""),
    ],
)
def test_bad_curcor_toml_panics_in_one_line_with_status_2(tmp_path, toml, what):
    path = write(tmp_path / "curcor.toml", toml)
    write(tmp_path / "app.py", "print('never')\n")
    result = curcor("run", "app.py", cwd=tmp_path)
    line = assert_one_line(result, 2, PANIC + what)
    assert str(path) in line


def test_maxprocs_beyond_1024_panics_at_once_naming_the_range(tmp_path):
    # Before the bound this started ~22,000 threads over minutes.
    write(tmp_path / "app.py", "print('never')\n")
    env = {"CURCOR_MAXPROCS": "99999"}
    result = subprocess.run(
        [sys.executable, "-m", "curcor", "run", "app.py"],
        cwd=tmp_path,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=20,
    )
    line = assert_one_line(result, 2, PANIC + 'CURCOR_MAXPROCS="99999"')
    assert "is more than 1024; set it to a whole number from 1 to 1024" in line


def test_bad_flag_value_panics_like_an_env_value(tmp_path):
    write(tmp_path / "app.py", "")
    result = curcor("run", "--preempt-ms=0", "app.py", cwd=tmp_path)
    assert_one_line(result, 2, PANIC + '--preempt-ms "0" is less than 1')


def test_config_is_read_from_the_files_project_not_the_cwd(tmp_path):
    write(tmp_path / "proj" / "curcor.toml", "maxprocs = 0\n")
    write(tmp_path / "proj" / "app.py", "")
    result = curcor("run", "proj/app.py", cwd=tmp_path)
    assert_one_line(result, 2, PANIC + "maxprocs = 0 in ")


# -- usage errors ------------------------------------------------------------------


def test_no_arguments_print_help_and_exit_2(tmp_path):
    result = curcor(cwd=tmp_path)
    assert result.returncode == 2
    assert "usage: curcor" in result.stderr
    for name in ("version", "env", "doctor", "run", "init"):
        assert name in result.stderr


def test_unknown_command_exits_2(tmp_path):
    assert curcor("bogus", cwd=tmp_path).returncode == 2


@pytest.mark.parametrize("command", ["version", "env", "doctor", "run", "init"])
def test_every_command_has_help(tmp_path, command):
    result = curcor(command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ")
    assert result.stderr == ""


def test_run_help_lists_a_flag_for_every_key(tmp_path):
    result = curcor("run", "--help", cwd=tmp_path)
    for key in KEYS.values():
        assert key.flag in result.stdout


def unwrapped(text: str) -> str:
    """``text`` with every run of whitespace as one space (undoes wrapping)."""
    return " ".join(text.split())


def test_every_key_takes_effect_and_nothing_says_otherwise(tmp_path):
    assert [key.name for key in KEYS.values() if key.pending] == []
    helptext = unwrapped(curcor("run", "--help", cwd=tmp_path).stdout)
    curcor("init", "app", cwd=tmp_path)
    template = (tmp_path / "app" / "curcor.toml").read_text()
    docs = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    env = curcor("env", cwd=tmp_path).stdout
    for text in (helptext, template, docs, env):
        assert "not yet built" not in text
        assert "no effect until" not in text
    for name in ("trace", "control"):
        line = next(x for x in env.splitlines() if x.startswith(name + " "))
        assert line.endswith("# default")


def test_run_of_a_missing_file_is_one_line_and_status_2(tmp_path):
    result = curcor("run", "missing.py", cwd=tmp_path)
    assert_one_line(result, 2, "curcor: can't open file 'missing.py': no such file")


def test_run_of_a_missing_name_suggests_dash_m(tmp_path):
    line = assert_one_line(curcor("run", "mymod", cwd=tmp_path), 2, "curcor: ")
    assert "curcor run -m mymod" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "curcor: nothing to run; usage: curcor run [flags]"),
        (
            ["--maxproc", "2", "a.py"],
            "curcor: unknown flag --maxproc for curcor run (did you mean --maxprocs?)",
        ),
        (["--maxprocs"], "curcor: --maxprocs needs a value, e.g. --maxprocs 2"),
        (["-x", "a.py"], "curcor: unknown option -x for curcor run"),
        (["-m"], "curcor: -m needs a module"),
        (["dir"], "curcor: 'dir' is a directory without __main__.py"),
    ],
)
def test_run_usage_errors_are_one_line_with_status_2(tmp_path, args, message):
    (tmp_path / "dir").mkdir()
    assert_one_line(curcor("run", *args, cwd=tmp_path), 2, message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--maxprocs", "app.py"],
            "--maxprocs needs a value before the target; "
            "write curcor run --maxprocs 2 app.py",
        ),
        (
            ["--maxprocs", "app.py", "arg"],
            "--maxprocs needs a value before the target; "
            "write curcor run --maxprocs 2 app.py",
        ),
        (
            ["--preempt", "dir"],
            "--preempt needs a value before the target; "
            "write curcor run --preempt false dir",
        ),
        (
            ["--control", "dir"],
            "--control needs a value before the target; "
            "write curcor run --control /tmp/app.sock dir",
        ),
        (
            ["--log", "app:main"],
            "--log needs a value before the target; "
            "write curcor run --log info app:main",
        ),
        (
            ["--maxprocs", "--log", "info", "app.py"],
            "--maxprocs needs a value before --log, e.g. --maxprocs 2",
        ),
        (["--maxprocs", "-m", "pkg"], "--maxprocs needs a value before -m"),
        (["--maxprocs", "2"], "nothing to run; usage: "),
        (["--maxprocs", "2", "--log", "info"], "nothing to run; usage: "),
    ],
)
def test_run_flag_that_swallowed_the_target_says_so(tmp_path, args, message):
    (tmp_path / "dir").mkdir()
    write(tmp_path / "app.py", "print('never')\n")
    result = curcor("run", *args, cwd=tmp_path)
    assert_one_line(result, 2, "curcor: " + message)
    assert result.stdout == ""


# -- version -------------------------------------------------------------------------


def test_version_prints_one_line_with_a_pep440_version(tmp_path):
    from packaging.version import Version

    result = curcor("version", cwd=tmp_path)
    assert result.returncode == 0
    name, version = result.stdout.strip().split(" ")
    assert name == "curcor"
    Version(version)


def test_version_json_adds_python_platform_and_backend(tmp_path):
    facts = json.loads(curcor("version", "--json", cwd=tmp_path).stdout)
    assert facts["python"] == ".".join(map(str, sys.version_info[:3]))
    assert facts["implementation"] == sys.implementation.name
    assert facts["platform"]
    assert facts["backend"] == resolve_backend("auto")


ISOLATE = """\
import sys, types
# Stand-ins for the packages, so their __init__ (the whole runtime) is not
# run and only what the code under test imports is counted.
for name in ("curcor", "curcor._core"):
    package = types.ModuleType(name)
    package.__path__ = [{src!r} + "/" + name.replace(".", "/")]
    sys.modules[name] = package
built = types.ModuleType("curcor._version")
built.version = "1.2.3"
sys.modules["curcor._version"] = built
before = set(sys.modules)
"""


def imports_of(tmp_path: Path, code: str) -> set[str]:
    """The modules ``code`` imports beyond a bare interpreter and the stubs."""
    script = ISOLATE.format(src=str(SRC)) + code
    script += "\nprint(sorted(set(sys.modules) - before), file=sys.stderr)\n"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return set(ast.literal_eval(result.stderr.splitlines()[-1]))


HEAVY = {"tomllib", "difflib", "json", "dataclasses", "pathlib", "importlib.metadata"}


def test_version_command_imports_nothing_heavy(tmp_path):
    code = "import curcor.cli\ncurcor.cli.main(['version'])\n"
    added = imports_of(tmp_path, code)
    assert "curcor.cli.version" in added
    assert not HEAVY & added
    assert {m for m in added if m.startswith("curcor._core")} <= set()


def test_version_json_imports_only_config_of_the_core(tmp_path):
    code = "import curcor.cli\ncurcor.cli.main(['version', '--json'])\n"
    added = imports_of(tmp_path, code)
    core = {m for m in added if m.startswith("curcor._core")}
    assert core == {"curcor._core.config", "curcor._core.errors"}


def imported_modules(tmp_path: Path, *args: str) -> set[str]:
    """The modules ``python -X importtime ARGS`` imports."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}


def test_version_does_not_import_the_runtime(tmp_path):
    command = imported_modules(tmp_path, "-m", "curcor", "version")
    assert "curcor._core.runtime" not in command


# -- env -----------------------------------------------------------------------------


def test_env_shows_every_key_with_its_value_and_source(tmp_path):
    path = write(tmp_path / "curcor.toml", 'log = "info"\n')
    result = curcor("env", cwd=tmp_path, env={"CURCOR_MAXPROCS": "3"})
    assert result.returncode == 0, result.stderr
    lines = {line.split(" ")[0]: line for line in result.stdout.splitlines()}
    assert lines["#"] == f"# root: {tmp_path}"
    assert lines["maxprocs"].startswith("maxprocs = 3 ")
    assert lines["maxprocs"].endswith("# CURCOR_MAXPROCS")
    assert f"# curcor.toml ({path})" in lines["log"]
    assert lines["shutdown_grace"].endswith("# default")
    assert set(KEYS) <= set(lines)


def test_env_text_is_valid_toml_that_loads_to_the_same_config(tmp_path):
    text = curcor("env", cwd=tmp_path, env={"CURCOR_TRACE": "5"}).stdout
    write(tmp_path / "copy" / "curcor.toml", text)
    copied = load_config(root=tmp_path / "copy", env={})
    assert copied == load_config(root=tmp_path, env={"CURCOR_TRACE": "5"})


def test_env_json_maps_each_key_to_value_and_source(tmp_path):
    result = curcor("env", "--json", cwd=tmp_path, env={"CURCOR_PREEMPT": "off"})
    document = json.loads(result.stdout)
    assert document["root"] is None
    assert document["keys"]["preempt"] == {"value": False, "source": "CURCOR_PREEMPT"}
    assert document["keys"]["mempool_size"]["value"] == 64 << 20
    assert document["keys"]["scheduler"]["resolved"] == resolve_backend("auto")
    assert list(document["keys"]) == list(KEYS)


# -- the kind of build, in env and doctor ----------------------------------------------

# (Py_GIL_DISABLED, sys._is_gil_enabled()) -> what env and doctor call it.
BUILDS = [
    (0, True, "GIL build"),
    (1, False, "free-threaded build, GIL disabled"),
    (1, True, "free-threaded build, GIL re-enabled"),
]


def fake_build(monkeypatch, gil_disabled: int, enabled: bool | None) -> None:
    """Make this interpreter look like the given build (None: before 3.13)."""
    import sysconfig

    real = sysconfig.get_config_var

    def get_config_var(name):
        return gil_disabled if name == "Py_GIL_DISABLED" else real(name)

    monkeypatch.setattr(sysconfig, "get_config_var", get_config_var)
    if enabled is None:
        monkeypatch.delattr(sys, "_is_gil_enabled", raising=False)
    else:
        monkeypatch.setattr(sys, "_is_gil_enabled", lambda: enabled, raising=False)


@pytest.mark.parametrize(("gil_disabled", "enabled", "build"), BUILDS)
def test_env_names_the_build_in_text_and_json(
    tmp_path, monkeypatch, gil_disabled, enabled, build
):
    from curcor.cli import env

    fake_build(monkeypatch, gil_disabled, enabled)
    config = load_config(root=tmp_path, env={})
    version = ".".join(map(str, sys.version_info[:3]))
    text = env.render_text(config, str(tmp_path))
    assert text.splitlines()[0] == f"# python: {version}, {build}"
    tomllib.loads(text)  # the comment keeps the text valid TOML
    python = json.loads(env.render_json(config, str(tmp_path)))["python"]
    assert python["build"] == build
    assert python["free_threaded"] is bool(gil_disabled)
    assert python["gil_enabled"] is enabled
    assert python["version"] == version


@pytest.mark.parametrize(
    ("gil_disabled", "enabled", "status", "detail"),
    [
        (0, True, "OK", "GIL build: workers take turns running Python code"),
        (
            1,
            False,
            "OK",
            "free-threaded build, GIL disabled: tasks on different workers "
            "run in parallel",
        ),
        (1, True, "WARN", "free-threaded build, GIL re-enabled by an extension"),
    ],
)
def test_doctor_gil_row_tells_the_three_builds_apart(
    monkeypatch, gil_disabled, enabled, status, detail
):
    monkeypatch.delenv("PYTHON_GIL", raising=False)
    fake_build(monkeypatch, gil_disabled, enabled)
    [row] = doctor.check_gil()
    assert row[:2] == ("gil", status)
    assert row[2].startswith(detail), row[2]


def test_doctor_gil_row_names_python_gil_1_as_the_cause(monkeypatch):
    monkeypatch.setenv("PYTHON_GIL", "1")
    fake_build(monkeypatch, 1, True)
    [row] = doctor.check_gil()
    assert row[:3] == (
        "gil",
        "WARN",
        "free-threaded build, GIL re-enabled by PYTHON_GIL=1; tasks on different "
        "workers take turns as on a GIL build",
    )


def test_a_python_without_is_gil_enabled_counts_as_having_the_gil(monkeypatch):
    from curcor.cli import _gil

    fake_build(monkeypatch, 0, None)
    assert _gil.gil_status() == (False, True)


def test_env_and_doctor_report_this_interpreters_real_build(tmp_path):
    import sysconfig

    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    python = json.loads(curcor("env", "--json", cwd=tmp_path).stdout)["python"]
    assert python["free_threaded"] is free_threaded
    assert python["executable"] == sys.executable
    rows = json.loads(curcor("doctor", "--json", cwd=tmp_path).stdout)
    [gil] = [row for row in rows if row["check"] == "gil"]
    assert gil["detail"].startswith(python["build"])
    assert gil["free_threaded"] is free_threaded


# -- init ------------------------------------------------------------------------------


def test_init_creates_a_scaffold_that_loads_and_parses(tmp_path):
    result = curcor("init", "my-app", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    root = tmp_path / "my-app"
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "my-app"
    assert "curcor" in pyproject["project"]["dependencies"]
    main = (root / "src" / "my_app" / "main.py").read_text()
    assert "async def main" in main and "curcor.go(" in main and "Channel(" in main
    test = (root / "tests" / "test_main.py").read_text()
    assert "async def test_" in test
    for source in (main, test):
        ast.parse(source)
    assert load_config(root=root, env={}) == load_config(root=tmp_path, env={})


def test_init_curcor_toml_lists_every_key_and_loads_uncommented(tmp_path):
    curcor("init", "app", cwd=tmp_path)
    text = (tmp_path / "app" / "curcor.toml").read_text()
    uncommented = "\n".join(
        line[2:]
        for line in text.splitlines()
        if line.startswith("# ") and " = " in line
    )
    assert set(tomllib.loads(uncommented)) == set(KEYS)
    write(tmp_path / "check" / "curcor.toml", uncommented)
    load_config(root=tmp_path / "check", env={})


def test_init_template_does_not_depend_on_the_machine(monkeypatch):
    from curcor._core import config as cfg
    from curcor.cli import init

    texts = set()
    for cpus in (1, 2, 5, 64):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cpus: set(range(n)))
        monkeypatch.setattr(os, "cpu_count", lambda n=cpus: n)
        monkeypatch.setattr(cfg, "cpu_quota", lambda *a, **k: None)
        texts.add(init._curcor_toml())
    assert len(texts) == 1
    lines = texts.pop().splitlines()
    assert "# maxprocs = 4  # default: the CPUs this process may use" in lines
    assert (
        "# to_thread_max = 8  # default: min(32, the CPUs this process may use + 4)"
        in lines
    )


def test_init_refuses_an_existing_directory(tmp_path):
    (tmp_path / "app").mkdir()
    line = assert_one_line(curcor("init", "app", cwd=tmp_path), 2, "curcor: ")
    assert "already exists" in line
    assert list((tmp_path / "app").iterdir()) == []


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("1app", "curcor init app_1app"),
        ("my app", "curcor init my_app"),
        ("class", "curcor init myclass"),
        ("json", "curcor init myjson"),
        ("a/b", "curcor init b"),
    ],
)
def test_init_refuses_a_bad_name_and_suggests_one(tmp_path, name, suggestion):
    line = assert_one_line(curcor("init", name, cwd=tmp_path), 2, "curcor: ")
    assert line.endswith(suggestion)
    assert list(tmp_path.iterdir()) == []


# Doctor's own tests are in test_doctor.py.


# -- run, through a stand-in runtime ---------------------------------------------------


FAKE_DRIVER = '''\
"""Run curcor.cli.main with a stand-in runtime that records what it is given."""
import sys, types
import curcor, curcor._core as core
from curcor._core import errors

state = {"called": False, "config": None}
runtime = types.ModuleType("curcor._core.runtime")

def set_process_defaults(config, announce):
    state["config"] = config
    state["announce"] = announce

def run(coro, *, config=None):
    state["called"] = True
    threads = state["config"].maxprocs
    sys.stderr.write(f"curcor: scheduler booted on {threads} OS threads\\n")
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the stand-in runtime cannot suspend")

runtime.set_process_defaults = set_process_defaults
runtime.run_was_called = lambda: state["called"]
runtime.run = run
sys.modules["curcor._core.runtime"] = core.runtime = runtime
curcor.run = run
from curcor.cli import main
sys.exit(main(sys.argv[1:]))
'''


def fake_run(tmp_path: Path, *args: str, env: dict | None = None):
    """``curcor run ARGS`` with the stand-in runtime, from ``tmp_path``."""
    driver = tmp_path / "_driver" / "driver.py"
    if not driver.exists():
        write(driver, FAKE_DRIVER)
    return subprocess.run(
        [sys.executable, str(driver), "run", *args],
        cwd=tmp_path,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_calls_async_main_of_a_file_that_does_not_start_the_runtime(tmp_path):
    write(
        tmp_path / "app.py",
        """\
        import sys
        async def main():
            print("main", sys.argv, sys.modules["__main__"].main is main)
        """,
    )
    result = fake_run(tmp_path, "--maxprocs", "3", "app.py", "a", "--log", "x")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "curcor: scheduler booted on 3 OS threads\n"
    assert result.stdout == "main ['app.py', 'a', '--log', 'x'] True\n"


def test_run_does_not_call_main_again_when_the_file_started_the_runtime(tmp_path):
    write(
        tmp_path / "app.py",
        """\
        import curcor
        async def main():
            print("main")
        curcor.run(main())
        """,
    )
    result = fake_run(tmp_path, "--maxprocs=2", "app.py")
    assert (result.returncode, result.stdout) == (0, "main\n")


def test_run_leaves_a_file_with_its_own_main_guard_alone(tmp_path):
    write(
        tmp_path / "app.py",
        """\
        async def main():
            print("main")
        if __name__ == "__main__":
            print("own entry")
        """,
    )
    result = fake_run(tmp_path, "app.py")
    assert (result.returncode, result.stdout, result.stderr) == (0, "own entry\n", "")


def test_run_puts_the_files_directory_first_on_sys_path(tmp_path):
    write(tmp_path / "proj" / "helper.py", "VALUE = 42\n")
    write(tmp_path / "proj" / "app.py", "import helper\nprint(helper.VALUE)\n")
    assert fake_run(tmp_path, "proj/app.py").stdout == "42\n"


def test_run_prints_a_traceback_without_curcors_frames_and_exits_1(tmp_path):
    write(tmp_path / "app.py", "def f():\n    raise ValueError('boom')\nf()\n")
    result = fake_run(tmp_path, "app.py")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1].startswith(f'  File "{tmp_path / "app.py"}", line 3')
    assert lines[-1] == "ValueError: boom"
    assert "runpy" not in result.stderr and "cli" not in result.stderr


def python_says(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """What plain ``python ARGS`` prints, from ``tmp_path``."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_of_a_file_with_a_syntax_error_prints_what_python_prints(tmp_path):
    write(tmp_path / "bad.py", "x = 1\ny = (2,\n")
    result = fake_run(tmp_path, "bad.py")
    assert result.returncode == 1
    assert result.stderr == python_says(tmp_path, "bad.py").stderr
    assert result.stderr.splitlines() == [
        f'  File "{tmp_path / "bad.py"}", line 2',
        "    y = (2,",
        "        ^",
        "SyntaxError: '(' was never closed",
    ]


@pytest.mark.parametrize("target", [["-m", "pkg.bad"], ["pkg.bad:main"]])
def test_run_of_a_module_with_a_syntax_error_shows_only_the_error(tmp_path, target):
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "bad.py", "def f(:\n    pass\n")
    result = fake_run(tmp_path, *target)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f'  File "{tmp_path / "pkg" / "bad.py"}", line 1',
        "    def f(:",
        "          ^",
        "SyntaxError: invalid syntax",
    ]


@pytest.mark.parametrize(
    ("target", "where"),
    [
        (["app.py"], "app.py"),
        (["-m", "pkg.boom"], "pkg/boom.py"),
        (["pkg.boom:main"], "pkg/boom.py"),
        (["-m", "broken.sub"], "broken/__init__.py"),
        (["broken.sub:main"], "broken/__init__.py"),
    ],
)
def test_run_errors_at_import_time_show_only_the_programs_frames(
    tmp_path, target, where
):
    boom = "def fail():\n    raise ValueError('top')\nfail()\n"
    write(tmp_path / "app.py", boom)
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "boom.py", boom)
    write(tmp_path / "broken" / "__init__.py", boom)
    write(tmp_path / "broken" / "sub.py", "")
    result = fake_run(tmp_path, *target)
    assert result.returncode == 1
    path = tmp_path / where
    # Python 3.13 adds caret lines (``~~~~^^``) under some calls: not frames.
    lines = [line for line in result.stderr.splitlines() if line.strip(" ~^") != ""]
    assert lines == [
        "Traceback (most recent call last):",
        f'  File "{path}", line 3, in <module>',
        "    fail()",
        f'  File "{path}", line 2, in fail',
        "    raise ValueError('top')",
        "ValueError: top",
    ]


def test_run_keeps_the_import_frames_of_the_programs_own_imports(tmp_path):
    write(tmp_path / "app.py", "import helper\n")
    write(tmp_path / "helper.py", "x = (\n")
    result = fake_run(tmp_path, "app.py")
    assert result.returncode == 1
    assert result.stderr == python_says(tmp_path, "app.py").stderr


ARGV_PROGRAM = """\
import sys
print("top", sys.argv)
async def main():
    print("main", sys.argv)
"""


def test_run_dash_m_sets_argv0_to_the_modules_file_as_python_does(tmp_path):
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "mod.py", ARGV_PROGRAM)
    write(tmp_path / "pkg" / "__main__.py", ARGV_PROGRAM)
    for module, path in [("pkg.mod", "pkg/mod.py"), ("pkg", "pkg/__main__.py")]:
        result = fake_run(tmp_path, "-m", module, "a", "b")
        assert result.returncode == 0, result.stderr
        argv = [str(tmp_path / path), "a", "b"]
        assert result.stdout == f"top {argv}\nmain {argv}\n"
        plain = python_says(tmp_path, "-m", module, "a", "b").stdout
        assert plain == f"top {argv}\n"


@pytest.mark.parametrize(
    ("body", "status", "stderr"),
    [
        ("raise SystemExit(3)", 3, ""),
        ("raise SystemExit('bye')", 1, "bye\n"),
        ("raise SystemExit", 0, ""),
        ("raise KeyboardInterrupt", 130, ""),
        ("raise errors.Terminated()", 0, ""),
        (
            "raise errors.DeadlockError('curcor: all tasks are asleep - deadlock!')",
            2,
            "curcor: all tasks are asleep - deadlock!\n",
        ),
        (
            "raise errors.ThreadCreateError('errno 11')",
            2,
            "curcor: failed to create OS thread: errno 11\n",
        ),
        ("raise errors.ConfigError('bad')", 2, PANIC + "bad\n"),
    ],
)
def test_run_maps_how_the_program_ended_to_an_exit_status(
    tmp_path, body, status, stderr
):
    write(tmp_path / "app.py", f"from curcor._core import errors\n{body}\n")
    result = fake_run(tmp_path, "app.py")
    assert (result.returncode, result.stderr) == (status, stderr)


def test_run_module_func_runs_the_async_function(tmp_path):
    write(tmp_path / "app.py", "async def serve():\n    print('serving')\n")
    result = fake_run(tmp_path, "app:serve")
    assert (result.returncode, result.stdout) == (0, "serving\n")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("app:sync", "curcor: app:sync is not an async function"),
        ("app:nothing", "curcor: module 'app' has no 'nothing'"),
        ("nomod:main", "curcor: no module named 'nomod'"),
    ],
)
def test_run_module_func_usage_errors_are_one_line(tmp_path, target, message):
    write(tmp_path / "app.py", "def sync():\n    pass\n")
    result = fake_run(tmp_path, target)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(message)
    assert "Traceback" not in result.stderr


def test_run_dash_m_runs_a_package_main_and_its_async_main(tmp_path):
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "__main__.py", "async def main():\n    print('pkg')\n")
    result = fake_run(tmp_path, "-m", "pkg", "x")
    assert (result.returncode, result.stdout) == (0, "pkg\n")


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("nosuch", "curcor: no module named 'nosuch'"),
        ("pkg.nosuch", "curcor: no module named 'pkg.nosuch'"),
        ("pkg", "curcor: 'pkg' is a package without a __main__ module"),
    ],
)
def test_run_dash_m_of_a_missing_module_is_one_line(tmp_path, module, message):
    write(tmp_path / "pkg" / "__init__.py", "")
    assert_one_line(fake_run(tmp_path, "-m", module), 2, message)


def test_run_import_errors_inside_the_program_are_tracebacks(tmp_path):
    write(tmp_path / "pkg" / "__init__.py", "import not_installed_anywhere\n")
    write(tmp_path / "pkg" / "__main__.py", "")
    result = fake_run(tmp_path, "-m", "pkg")
    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'not_installed_anywhere'" in (
        result.stderr
    )


# -- run, on the real runtime ----------------------------------------------------------


@pytest.fixture
def real_runtime():
    """Skip until the runtime offers what ``curcor run`` calls."""
    runtime = pytest.importorskip("curcor._core.runtime")
    if not hasattr(runtime, "set_process_defaults"):
        pytest.skip("curcor._core.runtime.set_process_defaults does not exist yet")
    return runtime


def test_run_boots_with_the_flags_maxprocs_and_runs_main(tmp_path, real_runtime):
    write(tmp_path / "app.py", "async def main():\n    print('hello')\n")
    result = curcor("run", "--maxprocs", "3", "app.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == "curcor: scheduler booted on 3 OS threads"
    assert result.stdout == "hello\n"


def test_run_of_a_file_that_calls_curcor_run_boots_once(tmp_path, real_runtime):
    write(
        tmp_path / "app.py",
        """\
        import curcor
        async def main():
            print("once")
        curcor.run(main())
        """,
    )
    result = curcor("run", "app.py", cwd=tmp_path, env={"CURCOR_MAXPROCS": "2"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "once\n"
    assert result.stderr.count("scheduler booted on 2 OS threads") == 1


def test_run_exits_1_with_a_traceback_on_an_uncaught_error(tmp_path, real_runtime):
    write(tmp_path / "app.py", "async def main():\n    raise ValueError('boom')\n")
    result = curcor("run", "app.py", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith("curcor: scheduler booted on ")
    assert result.stderr.splitlines()[-1] == "ValueError: boom"


def test_run_exits_2_on_a_deadlock(tmp_path, real_runtime):
    write(
        tmp_path / "app.py",
        """\
        import curcor
        async def main():
            await curcor.Channel().recv()
        """,
    )
    result = curcor("run", "app.py", cwd=tmp_path)
    assert result.returncode == 2
    assert "curcor: all tasks are asleep - deadlock!" in result.stderr


def test_a_traceback_through_curcor_run_and_a_join_shows_only_program_frames(
    tmp_path,
):
    app = tmp_path / "raises.py"
    app.write_text(
        "import curcor\n"
        "async def work():\n"
        "    await curcor.sleep(0)\n"
        "    raise RuntimeError('boom from app')\n"
        "async def main():\n"
        "    await curcor.go(work()).join()\n"
        "curcor.run(main())\n"
    )
    result = curcor("run", str(app), cwd=tmp_path)
    assert result.returncode == 1
    assert "RuntimeError: boom from app" in result.stderr
    assert "_core" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("  File")]
    assert [ln.rsplit(", in ", 1)[1] for ln in lines] == ["<module>", "main", "work"]


@pytest.mark.parametrize("kind", ["directory", "broken symbolic link"])
def test_a_curcor_toml_that_is_not_a_file_panics_instead_of_being_ignored(
    tmp_path, kind
):
    path = tmp_path / "curcor.toml"
    if kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(tmp_path / "missing.toml")
    write(tmp_path / "pyproject.toml", "[tool.curcor]\nmaxprocs = 1\n")
    write(tmp_path / "app.py", "print('never')\n")
    result = curcor("run", "app.py", cwd=tmp_path)
    line = assert_one_line(result, 2, PANIC + str(path))
    assert f"is a {kind}" in line


def test_a_toml_nested_too_deeply_is_one_panic_line_not_a_recursion_error(tmp_path):
    write(tmp_path / "curcor.toml", "maxprocs = " + "[" * 50_000 + "]" * 50_000)
    write(tmp_path / "app.py", "print('never')\n")
    for command in (["run", "app.py"], ["env"]):
        result = curcor(*command, cwd=tmp_path)
        assert_one_line(result, 2, PANIC)
        assert "too deeply" in result.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_output_to_a_full_device_is_one_line_not_a_traceback(tmp_path):
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "curcor", "env"],
            cwd=tmp_path,
            env=clean_env(),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "curcor env: cannot write its output: No space left on device"
    )


def test_a_planned_command_says_it_is_not_built_yet(tmp_path):
    result = curcor("proxy", cwd=tmp_path)
    assert_one_line(result, 2, "curcor: `curcor proxy` is planned but not built yet")


def test_init_that_fails_midway_leaves_no_half_made_project(tmp_path, monkeypatch):
    from curcor.cli import init

    real_open = open
    calls = []

    def failing_open(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(OSError):
        init.scaffold("myapp", str(tmp_path))
    monkeypatch.undo()
    assert not (tmp_path / "myapp").exists()
    assert init.scaffold("myapp", str(tmp_path))  # a second try works


def test_a_report_that_cannot_be_written_whole_leaves_the_old_one(
    tmp_path, monkeypatch
):
    from curcor.cli._files import write_whole

    report = tmp_path / "report.html"
    report.write_text("OLD GOOD REPORT")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        write_whole(str(report), "<html>new</html>")
    assert report.read_text() == "OLD GOOD REPORT"
    assert os.listdir(tmp_path) == ["report.html"]  # no temporary file left
    monkeypatch.undo()
    write_whole(str(report), "<html>new</html>")
    assert report.read_text() == "<html>new</html>"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--shutdown-grace", "1e12", "app.py"], "is more than 86400"),
        (["run", "--trace", "9223372036855", "app.py"], "is more than 3600000"),
    ],
)
def test_durations_too_long_to_wait_for_are_refused_at_boot(tmp_path, args, message):
    write(tmp_path / "app.py", "print('never')\n")
    line = assert_one_line(curcor(*args, cwd=tmp_path), 2, PANIC)
    assert message in line


def test_top_refuses_an_interval_it_could_never_sleep(tmp_path):
    result = curcor("top", "--interval", "1e12", cwd=tmp_path)
    assert result.returncode == 2
    assert "from 0.01 to 3600" in result.stderr


def test_a_report_is_written_through_a_symlink_keeps_its_mode_and_spares_devices(
    tmp_path,
):
    from curcor.cli._files import write_whole

    target = tmp_path / "real.html"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.html"
    link.symlink_to(target)
    write_whole(str(link), "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert (target.stat().st_mode & 0o777) == 0o640
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        write_whole(str(fifo), "new")
    write(tmp_path / "app.py", "print('never')\n")
    result = curcor("profile", "-o", str(fifo), "app.py", cwd=tmp_path)
    assert_one_line(result, 2, f"curcor: -o {fifo}: is not a regular file")


def test_a_config_file_too_large_to_be_real_is_refused_at_once(tmp_path):
    with open(tmp_path / "curcor.toml", "wb") as file:
        file.truncate(3 << 30)  # sparse: 3 GB that cost no disk
    write(tmp_path / "app.py", "print('never')\n")
    line = assert_one_line(curcor("run", "app.py", cwd=tmp_path), 2, PANIC)
    assert "bytes is refused" in line

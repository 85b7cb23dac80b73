"""Tests of the configuration layer: parsing, validation, precedence of the
sources, and the CPU quota read from cgroup v1 and v2 fixture trees."""

from __future__ import annotations

import os
import pickle
import select
import subprocess
import sys
from pathlib import Path

import pytest

from curcor._core import config as cfg
from curcor._core.config import (
    KEYS,
    Config,
    ConfigError,
    cpu_quota,
    default_maxprocs,
    find_root,
    format_size,
    load_config,
    parse_size,
    resolve_backend,
)

FIXTURES = Path(__file__).parent / "fixtures" / "cgroup"


def load(tmp_path: Path, env: dict | None = None, **kw) -> Config:
    """Load with an explicit root and environment, isolated from the host."""
    return load_config(root=kw.pop("root", tmp_path), env=env or {}, **kw)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def panic(**kw) -> str:
    """The ConfigError message of load_config(**kw)."""
    with pytest.raises(ConfigError) as info:
        load_config(**kw)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture
def two_cpus(monkeypatch):
    """Pin the usable CPUs to 2 with no quota, for computed defaults."""
    monkeypatch.setattr(cfg, "default_maxprocs", lambda *a, **k: 2)


# -- the key table ---------------------------------------------------------------


def test_keys_table_lists_every_key_of_the_spec_in_order():
    assert list(KEYS) == [
        "scheduler",
        "maxprocs",
        "mempool_size",
        "preempt",
        "preempt_ms",
        "gc",
        "to_thread_max",
        "spare_workers_max",
        "shutdown_grace",
        "log",
        "trace",
        "control",
    ]
    for key in KEYS.values():
        assert key.type and key.meaning and key.default_text
        assert key.env == "CURCOR_" + key.name.upper()
        assert key.flag == "--" + key.name.replace("_", "-")


def test_keys_table_cannot_be_changed():
    with pytest.raises(TypeError):
        KEYS["new"] = KEYS["log"]  # type: ignore[index]


def test_defaults_match_the_spec(tmp_path, two_cpus):
    config = load(tmp_path)
    assert config.as_dict() == {
        "scheduler": "auto",
        "maxprocs": 2,
        "mempool_size": 64 * 1024 * 1024,
        "preempt": True,
        "preempt_ms": 10,
        "gc": "governed",
        "to_thread_max": 6,
        "spare_workers_max": 4,
        "shutdown_grace": 5.0,
        "log": "warning",
        "trace": 0,
        "control": "",
    }
    assert set(config.sources.values()) == {"default"}


def test_to_thread_max_default_is_capped_at_32(tmp_path, monkeypatch):
    monkeypatch.setattr(cfg, "default_maxprocs", lambda *a, **k: 64)
    assert load(tmp_path).to_thread_max == 32


def test_default_maxprocs_is_the_machine_value(tmp_path):
    assert load(tmp_path).maxprocs == default_maxprocs() >= 1


# -- sizes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("64MB", 67108864),
        ("64mb", 67108864),
        ("64MiB", 67108864),
        ("1024", 1024),
        ("7B", 7),
        ("2 KB", 2048),
        ("2kib", 2048),
        ("1GB", 1 << 30),
        ("1gib", 1 << 30),
        (" 0 ", 0),
    ],
)
def test_sizes_use_powers_of_1024_in_any_case(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "12XB", "1.5MB", "-1MB", "1 M", "1TB"])
def test_malformed_sizes_are_refused(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_format_size_picks_the_largest_exact_unit():
    assert format_size(64 << 20) == "64MB"
    assert format_size(3 << 30) == "3GB"
    assert format_size(1536) == "1536B"
    assert format_size(2048) == "2KB"
    assert format_size(1000) == "1000B"
    assert format_size(0) == "0B"


# -- booleans and every other key ------------------------------------------------


@pytest.mark.parametrize("word", ["true", "1", "yes", "on", "TRUE", "Yes", " On "])
def test_true_words_parse_as_true(tmp_path, word):
    assert load(tmp_path, {"CURCOR_PREEMPT": word}).preempt is True


@pytest.mark.parametrize("word", ["false", "0", "no", "off", "FALSE", "No", "OFF"])
def test_false_words_parse_as_false(tmp_path, word):
    assert load(tmp_path, {"CURCOR_PREEMPT": word}).preempt is False


@pytest.mark.parametrize(
    ("var", "text", "value"),
    [
        ("CURCOR_SCHEDULER", "select", "select"),
        ("CURCOR_SCHEDULER", "POLL", "poll"),
        ("CURCOR_MAXPROCS", "3", 3),
        ("CURCOR_MEMPOOL_SIZE", "1MB", 1 << 20),
        ("CURCOR_PREEMPT_MS", "5", 5),
        ("CURCOR_GC", "off", "off"),
        ("CURCOR_TO_THREAD_MAX", "1", 1),
        ("CURCOR_SPARE_WORKERS_MAX", "0", 0),
        ("CURCOR_SHUTDOWN_GRACE", "0.5", 0.5),
        ("CURCOR_LOG", "DEBUG", "debug"),
        ("CURCOR_TRACE", "1000", 1000),
        ("CURCOR_CONTROL", "/tmp/app.sock", "/tmp/app.sock"),
    ],
)
def test_every_key_accepts_a_good_value(tmp_path, var, text, value):
    config = load(tmp_path, {var: text})
    key = var.removeprefix("CURCOR_").lower()
    assert getattr(config, key) == value
    assert config.sources[key] == var


@pytest.mark.parametrize(
    ("var", "text", "expected"),
    [
        (
            "CURCOR_MAXPROCS",
            "abc",
            'CURCOR_MAXPROCS="abc" is not an integer; '
            "set it to a whole number from 1 to 1024, e.g. CURCOR_MAXPROCS=2",
        ),
        (
            "CURCOR_MAXPROCS",
            "0",
            'CURCOR_MAXPROCS="0" is less than 1; '
            "set it to a whole number from 1 to 1024, e.g. CURCOR_MAXPROCS=2",
        ),
        ("CURCOR_MAXPROCS", "-3", "is less than 1"),
        ("CURCOR_MAXPROCS", "2.5", "is not an integer"),
        (
            "CURCOR_MEMPOOL_SIZE",
            "12XB",
            'CURCOR_MEMPOOL_SIZE="12XB" is not a size; '
            "write an integer with an optional unit B, KB, MB, GB, KiB, MiB or GiB, "
            "e.g. CURCOR_MEMPOOL_SIZE=64MB",
        ),
        (
            "CURCOR_PREEMPT",
            "maybe",
            "is not a boolean; use true/false, 1/0, yes/no or on/off",
        ),
        ("CURCOR_PREEMPT_MS", "0", 'CURCOR_PREEMPT_MS="0" is less than 1'),
        ("CURCOR_GC", "fast", "is not a GC mode; use one of governed, default, off"),
        ("CURCOR_TO_THREAD_MAX", "0", "is less than 1"),
        ("CURCOR_SPARE_WORKERS_MAX", "-1", "is less than 0"),
        ("CURCOR_SHUTDOWN_GRACE", "soon", "is not a number of seconds"),
        ("CURCOR_SHUTDOWN_GRACE", "-1", "is less than 0"),
        ("CURCOR_SHUTDOWN_GRACE", "inf", "is not a finite number"),
        ("CURCOR_LOG", "loud", "is not a log level; use one of debug, info"),
        ("CURCOR_TRACE", "-5", "is less than 0"),
        ("CURCOR_TRACE", "9" * 5000, "has too many digits"),
        ("CURCOR_MAXPROCS", "9" * 5000, "has too many digits"),
        ("CURCOR_CONTROL", "/x" * 60, "is too long for a Unix socket (120 bytes"),
        (
            "CURCOR_SCHEDULER",
            "bogus",
            'CURCOR_SCHEDULER="bogus" is not a poller '
            "backend; use one of auto, epoll, kqueue, poll, select",
        ),
    ],
)
def test_every_key_refuses_a_bad_value_with_a_fix(tmp_path, var, text, expected):
    message = panic(root=tmp_path, env={var: text})
    assert expected in message
    assert f"e.g. {var}=" in message


@pytest.mark.parametrize(
    ("kw", "shown"),
    [
        ({"env": {"CURCOR_MAXPROCS": "99999"}}, 'CURCOR_MAXPROCS="99999"'),
        ({"env": {"GOMAXPROCS": "1025"}}, 'GOMAXPROCS="1025"'),
        ({"env": {}, "flags": {"maxprocs": "5000"}}, '--maxprocs "5000"'),
        ({"env": {}, "toml": "maxprocs = 2048\n"}, "maxprocs = 2048 in "),
    ],
)
def test_maxprocs_above_1024_is_refused_naming_value_source_and_range(
    tmp_path, kw, shown
):
    if "toml" in kw:
        write(tmp_path / "curcor.toml", kw.pop("toml"))
    message = panic(root=tmp_path, **kw)
    assert message.startswith(shown)
    assert "is more than 1024; set it to a whole number from 1 to 1024" in message


def test_maxprocs_of_1024_is_the_largest_accepted(tmp_path):
    assert load(tmp_path, {"CURCOR_MAXPROCS": "1024"}).maxprocs == 1024
    assert Config(maxprocs=1).maxprocs == 1
    with pytest.raises(ConfigError, match="is more than 1024"):
        Config(maxprocs=1025)


def test_default_maxprocs_is_capped_at_1024(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4096)))
    tree = FIXTURES / "none"
    result = default_maxprocs(
        str(tree / "sys-fs-cgroup"), str(tree / "proc-self-cgroup")
    )
    assert result == cfg.MAX_MAXPROCS == 1024


def test_close_misspelling_of_a_choice_is_suggested(tmp_path):
    message = panic(root=tmp_path, env={"CURCOR_SCHEDULER": "epol"})
    assert '(did you mean "epoll"?)' in message


@pytest.mark.parametrize("backend", ["epoll", "kqueue", "poll"])
def test_backend_missing_from_select_is_refused_as_unavailable(tmp_path, backend):
    if hasattr(select, backend):
        pytest.skip(f"select.{backend} exists here")
    message = panic(root=tmp_path, env={"CURCOR_SCHEDULER": backend})
    assert f'CURCOR_SCHEDULER="{backend}" is not available on {sys.platform}' in message
    assert f"no select.{backend}" in message
    assert backend not in message.split("use one of ")[1].split(", e.g.")[0]


def test_backend_availability_follows_the_select_module(tmp_path, monkeypatch):
    monkeypatch.delattr(select, "epoll", raising=False)
    monkeypatch.delattr(select, "kqueue", raising=False)
    assert resolve_backend("auto") in ("poll", "select")
    assert "not available" in panic(root=tmp_path, env={"CURCOR_SCHEDULER": "epoll"})


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="Linux only")
def test_auto_resolves_to_epoll_on_linux(tmp_path):
    config = load(tmp_path)
    assert config.scheduler == "auto"
    assert config.backend == "epoll"


def test_control_socket_path_may_be_set_empty_to_turn_it_off(tmp_path):
    write(tmp_path / "curcor.toml", 'control = "/tmp/a.sock"\n')
    assert load(tmp_path, {"CURCOR_CONTROL": ""}).control == ""


def test_empty_variable_counts_as_unset(tmp_path, two_cpus):
    config = load(tmp_path, {"CURCOR_MAXPROCS": "", "GOMAXPROCS": ""})
    assert config.maxprocs == 2
    assert config.sources["maxprocs"] == "default"


def test_error_messages_stay_on_one_line_for_values_with_newlines(tmp_path):
    message = panic(root=tmp_path, env={"CURCOR_LOG": "warn\ning"})
    assert 'CURCOR_LOG="warn\\ning"' in message


# -- sources and their precedence --------------------------------------------------


def test_each_source_overrides_the_ones_below_it(tmp_path, two_cpus):
    write(tmp_path / "curcor.toml", "maxprocs = 3\n")
    env = {"GOMAXPROCS": "4", "CURCOR_MAXPROCS": "5"}
    layers = [
        ({}, {}, 3, f"curcor.toml ({tmp_path / 'curcor.toml'})"),
        ({"GOMAXPROCS": "4"}, {}, 4, "GOMAXPROCS"),
        (env, {}, 5, "CURCOR_MAXPROCS"),
        (env, {"maxprocs": "6"}, 6, "flag --maxprocs"),
    ]
    for environ, flags, value, source in layers:
        config = load(tmp_path, environ, flags=flags)
        assert (config.maxprocs, config.sources["maxprocs"]) == (value, source)


def test_file_beats_defaults_and_env_beats_file_for_every_key(tmp_path):
    write(tmp_path / "curcor.toml", 'log = "info"\npreempt_ms = 7\n')
    config = load(tmp_path, {"CURCOR_PREEMPT_MS": "9"})
    assert (config.log, config.preempt_ms) == ("info", 9)
    assert config.sources["log"].startswith("curcor.toml (")
    assert config.sources["preempt_ms"] == "CURCOR_PREEMPT_MS"


def test_gomaxprocs_sets_only_maxprocs(tmp_path):
    config = load(tmp_path, {"GOMAXPROCS": "3"})
    assert config.maxprocs == 3
    assert [k for k, s in config.sources.items() if s != "default"] == ["maxprocs"]


def test_bad_gomaxprocs_is_refused_by_name(tmp_path):
    message = panic(root=tmp_path, env={"GOMAXPROCS": "x"})
    assert message.startswith('GOMAXPROCS="x" is not an integer')


def test_flags_accept_dashes_and_report_their_spelling(tmp_path):
    config = load(tmp_path, flags={"--preempt-ms": "5", "shutdown_grace": "1.5"})
    assert (config.preempt_ms, config.shutdown_grace) == (5, 1.5)
    assert config.sources["preempt_ms"] == "flag --preempt-ms"
    assert config.sources["shutdown_grace"] == "flag --shutdown-grace"


def test_bad_flag_value_is_reported_as_the_flag(tmp_path):
    message = panic(root=tmp_path, env={}, flags={"preempt_ms": "fast"})
    assert message.startswith('--preempt-ms "fast" is not an integer')
    assert message.endswith("e.g. --preempt-ms 10")


def test_unknown_flag_is_refused_with_a_suggestion(tmp_path):
    message = panic(root=tmp_path, env={}, flags={"maxproc": "1"})
    assert "unknown flag --maxproc (did you mean --maxprocs?)" in message


def test_pyproject_tool_table_is_read_when_there_is_no_curcor_toml(tmp_path):
    path = write(tmp_path / "pyproject.toml", "[tool.curcor]\nmaxprocs = 3\n")
    config = load(tmp_path)
    assert config.maxprocs == 3
    assert config.sources["maxprocs"] == f"pyproject.toml [tool.curcor] ({path})"


def test_pyproject_without_tool_table_leaves_defaults(tmp_path):
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    assert set(load(tmp_path).sources.values()) == {"default"}


def test_curcor_toml_wins_over_pyproject_at_the_same_root(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.curcor]\nmaxprocs = 3\ntrace = 5\n")
    write(tmp_path / "curcor.toml", "maxprocs = 4\n")
    config = load(tmp_path)
    assert (config.maxprocs, config.trace) == (4, 0)


def test_tool_curcor_that_is_not_a_table_is_refused(tmp_path):
    path = write(tmp_path / "pyproject.toml", "[tool]\ncurcor = 3\n")
    message = panic(root=tmp_path, env={})
    assert message.startswith(f"tool.curcor = 3 in {path} is an integer, not a table")


def test_root_is_the_nearest_directory_with_either_file(tmp_path):
    write(tmp_path / "curcor.toml", "maxprocs = 3\n")
    inner = tmp_path / "pkg" / "sub"
    inner.mkdir(parents=True)
    assert find_root(inner) == tmp_path
    write(tmp_path / "pkg" / "pyproject.toml", "[project]\n")
    assert find_root(inner) == tmp_path / "pkg"
    assert load_config(start=inner, env={}).sources["maxprocs"] == "default"


def test_root_is_found_from_start(tmp_path):
    write(tmp_path / "curcor.toml", "trace = 3\n")
    (tmp_path / "src").mkdir()
    assert load_config(start=tmp_path / "src", env={}).trace == 3


def test_root_defaults_to_the_main_modules_directory(tmp_path):
    write(tmp_path / "curcor.toml", "trace = 7\n")
    script = write(
        tmp_path / "app" / "main.py",
        "from curcor._core.config import load_config\n"
        "print(load_config(env={}).trace)\n",
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(Path(cfg.__file__).parents[2])},
        timeout=30,
    )
    assert result.stdout.strip() == "7", result.stderr


# -- file errors -----------------------------------------------------------------


def test_unknown_key_is_refused_with_the_close_match(tmp_path):
    path = write(tmp_path / "curcor.toml", "maxproc = 2\n")
    message = panic(root=tmp_path, env={})
    assert message.startswith(
        f'unknown key "maxproc" in {path} (did you mean "maxprocs"?); known keys: '
        "scheduler, maxprocs, mempool_size,"
    )


def test_unknown_key_in_pyproject_names_the_table(tmp_path):
    path = write(tmp_path / "pyproject.toml", "[tool.curcor]\nzzz = 1\n")
    message = panic(root=tmp_path, env={})
    assert message.startswith(f'unknown key "zzz" in [tool.curcor] of {path}; known')


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('maxprocs = "4"', 'maxprocs = "4" in {path} is a string, not an integer'),
        ("maxprocs = true", "maxprocs = true in {path} is a boolean, not an integer"),
        ("maxprocs = 2.0", "maxprocs = 2.0 in {path} is a float, not an integer"),
        ("preempt = 3", "preempt = 3 in {path} is not a boolean"),
        ("preempt = [1]", "preempt = [...] in {path} is an array, not a boolean"),
        ("gc = 1", "gc = 1 in {path} is an integer, not a GC mode"),
        ("shutdown_grace = '5'", "is a string, not a number of seconds"),
        ("control = 1", "control = 1 in {path} is an integer, not a path"),
        ("[maxprocs]", "maxprocs = {{...}} in {path} is a table, not an integer"),
        ("mempool_size = true", "is a boolean, not a size"),
    ],
)
def test_wrong_toml_type_is_refused_with_a_toml_example(tmp_path, line, expected):
    path = write(tmp_path / "curcor.toml", line + "\n")
    message = panic(root=tmp_path, env={})
    assert expected.format(path=path) in message
    key = line.strip("[]").split(" ")[0]
    assert f"e.g. {key} = " in message


@pytest.mark.parametrize(
    ("line", "attr", "value"),
    [
        ("preempt = false", "preempt", False),
        ('preempt = "off"', "preempt", False),
        ("mempool_size = 4096", "mempool_size", 4096),
        ('mempool_size = "1MiB"', "mempool_size", 1 << 20),
        ("shutdown_grace = 2", "shutdown_grace", 2.0),
        ('scheduler = "select"', "scheduler", "select"),
    ],
)
def test_toml_values_may_use_native_types(tmp_path, line, attr, value):
    write(tmp_path / "curcor.toml", line + "\n")
    assert getattr(load(tmp_path), attr) == value


def test_toml_syntax_error_names_the_file_and_line(tmp_path):
    path = write(tmp_path / "curcor.toml", "maxprocs = 2\nlog = = 1\n")
    message = panic(root=tmp_path, env={})
    assert message.startswith(f"{path} is not valid TOML: ")
    assert "line 2" in message


def test_pyproject_syntax_error_is_reported_too(tmp_path):
    path = write(tmp_path / "pyproject.toml", "[project\n")
    assert panic(root=tmp_path, env={}).startswith(f"{path} is not valid TOML")


def test_non_utf8_file_is_refused(tmp_path):
    (tmp_path / "curcor.toml").write_bytes(b"log = '\xff'\n")
    assert "is not UTF-8 text" in panic(root=tmp_path, env={})


# -- the record --------------------------------------------------------------------


def test_config_is_immutable_and_replace_checks_changes(tmp_path):
    config = load(tmp_path)
    with pytest.raises(AttributeError, match="immutable"):
        config.maxprocs = 3  # type: ignore[misc]
    changed = config.replace(maxprocs=3)
    assert (changed.maxprocs, changed.sources["maxprocs"]) == (3, "argument")
    assert changed.log == config.log
    with pytest.raises(ConfigError, match=r"Config\(maxprocs=0\) is less than 1"):
        config.replace(maxprocs=0)


def test_config_compares_by_value_hashes_and_pickles(tmp_path, two_cpus):
    first = load(tmp_path)
    second = Config(maxprocs=2)
    assert first == second and hash(first) == hash(second)
    assert pickle.loads(pickle.dumps(first)) == first
    assert repr(first).startswith("Config(scheduler='auto', maxprocs=2,")


def test_config_constructor_refuses_unknown_keys_with_a_hint():
    with pytest.raises(TypeError, match="did you mean 'maxprocs'"):
        Config(maxproc=2)


def test_import_loads_only_cheap_modules():
    src = str(Path(cfg.__file__).parents[2])
    code = (
        "import sys, types\n"
        "for name in ('curcor', 'curcor._core'):\n"
        "    package = types.ModuleType(name)\n"
        f"    package.__path__ = [{src!r} + '/' + name.replace('.', '/')]\n"
        "    sys.modules[name] = package\n"
        "before = set(sys.modules)\n"
        "import curcor._core.config\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    added = set(eval(result.stdout))
    assert added <= {
        "curcor._core.config",
        "curcor._core.errors",
        "__future__",
        "math",
        "types",
    }


# -- CPUs ----------------------------------------------------------------------------


def quota_of(case: str) -> float | None:
    tree = FIXTURES / case
    return cpu_quota(str(tree / "sys-fs-cgroup"), str(tree / "proc-self-cgroup"))


@pytest.mark.parametrize(
    ("case", "quota"),
    [
        ("v2-limited", 1.5),  # the parent's limit applies to the child
        ("v2-nested", 2.5),  # the smaller of two limits wins
        ("v2-unlimited", None),  # "max"
        ("v2-container", 0.5),  # host path missing: the mount root is ours
        ("v1-limited", 2.5),  # cpu,cpuacct with a parent at -1
        ("v1-container", 2.0),  # host path missing under the mount
        ("v1-cpu-only", 1.5),  # a mount named cpu alone
        ("v1-split-unlimited", None),  # this machine's shape: quota -1
        ("none", None),  # no /proc/self/cgroup
        ("garbage", None),  # unparseable cpu.max counts as no limit
    ],
)
def test_cpu_quota_reads_cgroup_v1_and_v2_trees(case, quota):
    assert quota_of(case) == quota


@pytest.mark.parametrize(
    ("affinity", "case", "expected"),
    [
        (8, "v2-limited", 2),  # 1.5 rounds up
        (8, "v2-container", 1),  # 0.5 rounds up to the minimum of 1
        (1, "v1-limited", 1),  # affinity below the quota
        (4, "v1-split-unlimited", 4),  # no quota: affinity alone
        (3, "none", 3),
    ],
)
def test_default_maxprocs_is_affinity_limited_by_quota(
    monkeypatch, affinity, case, expected
):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)))
    tree = FIXTURES / case
    result = default_maxprocs(
        str(tree / "sys-fs-cgroup"), str(tree / "proc-self-cgroup")
    )
    assert result == expected


def test_usable_cpus_falls_back_to_cpu_count_without_affinity(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert cfg.usable_cpus() == 6


# Keys whose machinery is not built yet, and what it is: none any more (the
# trace and the control socket were the last two).
PENDING: dict[str, str] = {}


def test_keys_without_their_machinery_say_they_take_effect_later():
    for key in KEYS.values():
        note = f"(validated; takes effect with {PENDING.get(key.name)}, not yet built)"
        assert key.pending == PENDING.get(key.name)
        assert (note in key.meaning) == (key.name in PENDING), key.name
        assert key.meaning.endswith(".")
    assert "adaptive)" not in KEYS["gc"].meaning


def test_trace_and_control_are_validated(tmp_path):
    for name in ("trace", "control"):
        message = panic(root=tmp_path, env={KEYS[name].env: "\x01" * 200})
        assert message.startswith(KEYS[name].env)


def test_load_key_reads_one_key_despite_bad_values_of_others(tmp_path):
    write(tmp_path / "curcor.toml", "maxproc = 1\npreempt = 3\nscheduler = 'poll'\n")
    env = {"CURCOR_MAXPROCS": "0", "CURCOR_GC": "fast"}
    assert cfg.load_key("scheduler", root=tmp_path, env=env)[0] == "poll"
    assert cfg.load_key("log", root=tmp_path, env=env) == ("warning", "default")
    with pytest.raises(ConfigError, match='CURCOR_MAXPROCS="0" is less than 1'):
        cfg.load_key("maxprocs", root=tmp_path, env=env)


def test_a_bad_file_as_a_whole_is_a_config_file_error(tmp_path):
    write(tmp_path / "curcor.toml", "maxprocs = \n")
    with pytest.raises(cfg.ConfigFileError):
        cfg.load_key("scheduler", root=tmp_path, env={})
    value = cfg.load_key("maxprocs", env={"GOMAXPROCS": "3"}, skip_file=True)
    assert value == (3, "GOMAXPROCS")
    write(tmp_path / "curcor.toml", "maxproc = 1\n")
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    assert not isinstance(info.value, cfg.ConfigFileError)


def test_docs_table_matches_the_keys():
    page = Path(__file__).parents[1] / "docs" / "configuration.md"
    text = page.read_text(encoding="utf-8")
    for key in KEYS.values():
        row = f"| `{key.name}` | {key.type} | {key.default_text} | {key.meaning} |"
        assert row in text


def test_the_thread_pool_default_follows_maxprocs():
    assert load_config(env={}, flags={"maxprocs": "8"}).to_thread_max == 12
    assert load_config(env={"CURCOR_MAXPROCS": "1"}, flags={}).to_thread_max == 5
    assert load_config(env={}, flags={"maxprocs": "64"}).to_thread_max == 32
    explicit = {"maxprocs": "8", "to_thread_max": "3"}
    assert load_config(env={}, flags=explicit).to_thread_max == 3

"""The optional compiled build (tools/mypyc_build.py) and how it is named.

``make test-compiled`` runs the whole suite against the compiled build with
``EXPECT_COMPILED=1``, so that a build that failed to load cannot pass as
the pure-Python one.
"""

from __future__ import annotations

import json
import os

from curcor._core import runtime, scheduler, task
from curcor.cli.env import describe_hot_path

COMPILED = not str(scheduler.__file__).endswith(".py")


def test_env_names_the_hot_path_this_process_runs():
    text = describe_hot_path()
    if COMPILED:
        assert text.startswith("compiled with mypyc (task, scheduler, runtime) in ")
    else:
        assert text == "pure Python"
    if os.environ.get("EXPECT_COMPILED") == "1":
        assert COMPILED, f"expected the compiled build, got {scheduler.__file__}"
        assert not str(task.__file__).endswith(".py")
        assert not str(runtime.__file__).endswith(".py")


def test_env_json_carries_the_hot_path(capsys):
    from curcor.cli import main

    assert main(["env", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["hot_path"] == describe_hot_path()


def _build_tool():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "tools" / "mypyc_build.py"
    spec = importlib.util.spec_from_file_location("mypyc_build", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_build_tool_never_replaces_a_directory_it_did_not_make(tmp_path):
    import pytest

    tool = _build_tool()
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(tool.BuildError, match="did not create and it is not empty"):
        tool._prepare(mine)
    assert (mine / "notes.txt").read_text() == "keep me"

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(tool.BuildError, match="is not a directory"):
        tool._prepare(a_file)
    assert a_file.read_text() == "x"

    with pytest.raises(tool.BuildError, match="cannot create"):
        tool._prepare(a_file / "below")


def test_the_build_tool_replaces_an_empty_directory_or_its_own_build(tmp_path):
    tool = _build_tool()
    out = tmp_path / "out"
    out.mkdir()
    tool._prepare(out)  # empty: fine
    (out / "curcor").mkdir()
    tool._prepare(out)  # an earlier build (it holds the marker): replaced
    assert sorted(p.name for p in out.iterdir()) == [tool.MARKER]


def test_the_build_tool_refuses_an_empty_out_argument(capsys):
    tool = _build_tool()
    assert tool.main(["--out", " "]) == 2
    assert capsys.readouterr().err == (
        "mypyc_build: --out is empty; give a directory path\n"
    )


def test_the_build_tool_keeps_an_empty_directory_and_refuses_the_sources(tmp_path):
    import pytest

    tool = _build_tool()
    out = tmp_path / "private"
    out.mkdir(mode=0o700)
    tool._prepare(out)
    assert out.stat().st_mode & 0o777 == 0o700  # emptied, not recreated
    with pytest.raises(tool.BuildError, match="inside the sources"):
        tool._prepare(tool.ROOT / "src" / "curcor" / "_nest")


def test_the_build_tool_recognises_a_build_from_before_its_marker(tmp_path):
    tool = _build_tool()
    old = tmp_path / "old"
    (old / "curcor").mkdir(parents=True)
    (old / "0d47b5939a13ce7a04eb__mypyc.cpython-311-x86_64-linux-gnu.so").write_text("")
    tool._prepare(old)
    assert sorted(p.name for p in old.iterdir()) == [tool.MARKER]


def test_tasks_running_a_sleep_are_named_sleep_in_both_builds():
    import curcor

    async def main() -> list[str]:
        tasks = [curcor.go(curcor.sleep(0.001)), curcor.go(curcor.sleep(0))]
        for t in tasks:
            await t.join()
        return [t.name.rsplit("-", 1)[0] for t in tasks]

    assert curcor.run(main()) == ["sleep", "sleep"]

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
        assert text == "compiled with mypyc (task, scheduler, runtime)"
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

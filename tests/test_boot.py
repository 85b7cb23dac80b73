"""Boot and shutdown of the runtime: the boot line, thread-creation failure,
and what `curcor run` prints and returns."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest

import curcor
from curcor.config import load_config


def _curcor(*args: str, env: dict[str, str] | None = None, cwd: str | None = None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CURCOR_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "curcor", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=60,
    )


async def _noop() -> int:
    return 7


def test_thread_create_failure_raises_and_leaves_no_worker_running(monkeypatch):
    monkeypatch.setenv("CURCOR_FAULT_THREAD_CREATE", "2")
    before = set(threading.enumerate())
    config = load_config(env={}, flags={"maxprocs": "4"})
    with pytest.raises(curcor.ThreadCreateError, match="2 of 4 workers"):
        curcor.run(_noop(), config=config)
    assert set(threading.enumerate()) <= before
    monkeypatch.delenv("CURCOR_FAULT_THREAD_CREATE")
    assert curcor.run(_noop(), config=config) == 7  # the runtime boots again


def test_curcor_run_prints_failed_to_create_os_thread_and_exits_2(tmp_path):
    app = tmp_path / "app.py"
    app.write_text("async def main():\n    print('ran')\n")
    result = _curcor(
        "run",
        str(app),
        env={"CURCOR_FAULT_THREAD_CREATE": "1", "CURCOR_MAXPROCS": "2"},
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("curcor: failed to create OS thread: ")
    assert "ran" not in result.stdout


def test_boot_line_is_the_first_stderr_line_of_curcor_run(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import sys
            async def main():
                print("warning from the app", file=sys.stderr)
            """
        )
    )
    result = _curcor("run", "--maxprocs", "3", str(app))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "curcor: scheduler booted on 3 OS threads"
    assert lines[1] == "warning from the app"


def test_plain_run_logs_the_boot_line_at_info(caplog):
    with caplog.at_level("INFO", logger="curcor"):
        curcor.run(_noop(), config=load_config(env={}, flags={"maxprocs": "2"}))
    assert "curcor: scheduler booted on 2 OS threads" in caplog.messages


def test_file_calling_curcor_run_itself_runs_once_under_curcor_run(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import curcor
            async def main():
                print("main ran")
            if __name__ == "__main__":
                curcor.run(main())
            """
        )
    )
    result = _curcor("run", str(app))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("main ran") == 1


def test_deadlock_under_curcor_run_exits_2_with_every_task_stack(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import curcor
            async def waiter(ch):
                await ch.recv()
            async def main():
                a, b = curcor.Channel(), curcor.Channel()
                curcor.go(waiter(a), name="stuck-waiter")
                await b.recv()
            """
        )
    )
    result = _curcor("run", str(app))
    assert result.returncode == 2
    err = result.stderr
    assert "curcor: all tasks are asleep - deadlock!" in err
    assert "'stuck-waiter'" in err and "'main-1'" in err
    assert err.count("in waiter") == 1 and err.count("in main") == 1


def test_uncaught_error_in_main_exits_1_with_traceback(tmp_path):
    app = tmp_path / "app.py"
    app.write_text("async def main():\n    raise ValueError('boom')\n")
    result = _curcor("run", str(app))
    assert result.returncode == 1
    assert "ValueError: boom" in result.stderr

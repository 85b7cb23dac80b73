"""Signals, in child processes: SIGINT cancels main and ends in
KeyboardInterrupt after cleanup, SIGTERM shuts down gracefully, SIGQUIT dumps
the tasks' stacks; and the exit statuses ``curcor run`` gives for each."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

CURCOR = Path(sys.executable).with_name("curcor")

PLAIN = """
import sys
import curcor

async def helper():
    await curcor.Event().wait()

async def main():
    curcor.go(helper(), name="helper-task")
    try:
        print("ready", flush=True)
        await curcor.sleep(1000)
    finally:
        print("main finally ran", flush=True)

try:
    curcor.run(main())
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(5)
except curcor.Terminated:
    print("Terminated", flush=True)
    sys.exit(6)
"""

APP = """
import curcor

async def main():
    try:
        print("ready", flush=True)
        await curcor.sleep(1000)
    finally:
        print("main finally ran", flush=True)
"""

SLOW_CLEANUP = """
import curcor

async def main():
    try:
        print("ready", flush=True)
        await curcor.sleep(1000)
    finally:
        print("cleaning", flush=True)
        with curcor.CancelScope(shield=True):
            await curcor.sleep(1000)
        print("cleanup finished", flush=True)
"""


def clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CURCOR_") and k not in ("GOMAXPROCS", "PYTHONPATH")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Child:
    """A child process we read line by line and always kill by pid."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []

    def wait_for(self, wanted: str, timeout: float = 20) -> None:
        """Read stdout until a line equals ``wanted``."""
        deadline = time.monotonic() + timeout
        out = self.proc.stdout
        assert out is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([out], [], [], 0.1)
            if not ready:
                continue
            line = out.readline()
            if not line:
                break
            self.lines.append(line.decode().rstrip("\n"))
            if self.lines[-1] == wanted:
                return
        raise AssertionError(f"no {wanted!r} line; got {self.lines}")

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def finish(self, timeout: float = 20) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        lines = "\n".join(self.lines)
        return self.proc.returncode, lines + "\n" + out.decode(), err.decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def spawn(tmp_path):
    children: list[Child] = []

    def start(source: str, *, via_cli: bool = False) -> Child:
        path = tmp_path / "app.py"
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        if via_cli:
            args = [str(CURCOR), "run", str(path)]
        else:
            args = [sys.executable, str(path)]
        child = Child(args, tmp_path)
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()


def test_sigint_raises_keyboard_interrupt_after_main_cleaned_up(spawn):
    child = spawn(PLAIN)
    child.wait_for("ready")
    child.signal(signal.SIGINT)
    code, out, err = child.finish()
    assert code == 5, (out, err)
    assert out.index("main finally ran") < out.index("KeyboardInterrupt")


def test_sigint_under_curcor_run_exits_130_after_cleanup(spawn):
    child = spawn(APP, via_cli=True)
    child.wait_for("ready")
    child.signal(signal.SIGINT)
    code, out, err = child.finish()
    assert code == 130, (out, err)
    assert "main finally ran" in out


def test_second_sigint_stops_at_once_with_130(spawn):
    child = spawn(SLOW_CLEANUP, via_cli=True)
    child.wait_for("ready")
    child.signal(signal.SIGINT)
    child.wait_for("cleaning")
    child.signal(signal.SIGINT)
    code, out, err = child.finish()
    assert code == 130, (out, err)
    assert "cleanup finished" not in out


def test_sigterm_shuts_down_gracefully_and_run_raises_terminated(spawn):
    child = spawn(PLAIN)
    child.wait_for("ready")
    child.signal(signal.SIGTERM)
    code, out, err = child.finish()
    assert code == 6, (out, err)
    assert out.index("main finally ran") < out.index("Terminated")


def test_sigterm_under_curcor_run_exits_0_after_cleanup(spawn):
    child = spawn(APP, via_cli=True)
    child.wait_for("ready")
    child.signal(signal.SIGTERM)
    code, out, err = child.finish()
    assert code == 0, (out, err)
    assert "main finally ran" in out


@pytest.mark.skipif(not hasattr(signal, "SIGQUIT"), reason="no SIGQUIT here")
def test_sigquit_dumps_every_tasks_stack_and_exits_2(spawn):
    child = spawn(PLAIN)
    child.wait_for("ready")
    child.signal(signal.SIGQUIT)
    code, out, err = child.finish()
    assert code == 2, (out, err)
    assert "main finally ran" not in out
    assert "'helper-task'" in err
    assert "main" in err
    # A stack line for each task, pointing into the app.
    assert err.count("app.py") >= 2, err


BLOCKED_AFTER_READY = """
    import time
    import curcor

    async def main():
        # Block worker 0 until sysmon has marked it stuck, then a while more.
        deadline = time.monotonic() + 10
        while not any(w.stuck for w in curcor.stats().workers):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        print("stuck", flush=True)
        time.sleep(1.5)
        await curcor.sleep(0)
        print("never reached")

    curcor.run(main())
"""


def test_a_signal_while_a_task_blocks_its_worker_says_why_nothing_happens_yet(spawn):
    child = spawn(BLOCKED_AFTER_READY, via_cli=True)
    child.wait_for("stuck")
    child.signal(signal.SIGINT)
    code, out, err = child.finish()
    assert code == 130, (out, err)
    assert "is blocking its worker" in err and "Ctrl-C again" in err
    assert "never reached" not in out

"""Child processes: pipes on the poller, exit status, no zombie left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

import curcor
from curcor.net import process
from curcor.net.process import DEVNULL, PIPE, STDOUT, open_process, run_process

real = pytest.mark.curcor(clock="real")

# Real-time bound on any single wait in these tests; each test ends well
# within it when the code under test works.
BOUND = 4.0


@pytest.fixture
def children():
    """Pids a test started; any still running at the end is killed and reaped
    (only our own unreaped children, so a reused pid is never touched)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            if os.waitpid(pid, os.WNOHANG) == (0, 0):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def assert_reaped(pid: int) -> None:
    """``pid`` was our child and has been reaped: neither zombie nor running."""
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def read_pid(path: os.PathLike[str] | str) -> int:
    """Wait (bounded) until a child has written its pid to ``path``."""
    with curcor.timeout(BOUND):
        while True:
            try:
                with open(path) as f:
                    text = f.read()
            except FileNotFoundError:
                text = ""
            if text.endswith("\n"):
                return int(text)
            await curcor.sleep(0.01)


# -- pipes -----------------------------------------------------------------------


@real
async def test_cat_echoes_what_is_written_to_its_stdin(children):
    async with await open_process(["cat"], stdin=PIPE, stdout=PIPE) as proc:
        children.append(proc.pid)
        assert proc.stdin is not None and proc.stdout is not None
        with curcor.timeout(BOUND):
            for i in range(20):
                line = f"line {i}\n".encode()
                proc.stdin.write(line)
                await proc.stdin.drain()
                assert await proc.stdout.read_until(b"\n") == line
            await proc.stdin.aclose()
            assert await proc.stdout.read() == b""
            assert await proc.wait() == 0
    assert proc.returncode == 0
    assert_reaped(proc.pid)


@real
async def test_run_process_feeds_input_and_captures_output():
    result = await run_process(["cat"], input=b"hello\nworld\n", capture_stdout=True)
    assert result.returncode == 0
    assert result.stdout == b"hello\nworld\n"
    assert result.stderr is None
    assert result.args == ["cat"]


@real
async def test_megabytes_in_and_out_at_once_do_not_deadlock():
    payload = os.urandom(8 * 1024 * 1024)
    with curcor.timeout(BOUND):
        result = await run_process(["cat"], input=payload, capture_stdout=True)
    assert result.stdout == payload


@real
async def test_large_stdout_and_stderr_are_both_drained():
    code = (
        "import sys\n"
        "for _ in range(40):\n"
        "    sys.stdout.buffer.write(b'o' * 100_000)\n"
        "    sys.stderr.buffer.write(b'e' * 100_000)\n"
    )
    with curcor.timeout(BOUND):
        result = await run_process(py(code), capture_stdout=True, capture_stderr=True)
    assert result.stdout == b"o" * 4_000_000
    assert result.stderr == b"e" * 4_000_000


@real
async def test_stderr_is_captured_apart_from_stdout():
    code = "import sys; print('to out'); print('to err', file=sys.stderr)"
    result = await run_process(py(code), capture_stdout=True, capture_stderr=True)
    assert result.stdout == b"to out\n"
    assert result.stderr == b"to err\n"


@real
async def test_stderr_can_be_merged_into_stdout():
    code = "import sys; print('a', flush=True); print('b', file=sys.stderr)"
    async with await open_process(py(code), stdout=PIPE, stderr=STDOUT) as proc:
        assert proc.stderr is None and proc.stdout is not None
        with curcor.timeout(BOUND):
            out = b""
            while data := await proc.stdout.read():
                out += data
            assert await proc.wait() == 0
    assert out == b"a\nb\n"


@real
async def test_a_child_that_stops_reading_early_is_not_an_error():
    result = await run_process(["true"], input=os.urandom(2 * 1024 * 1024))
    assert result.returncode == 0


@real
async def test_devnull_gives_an_empty_stdin():
    async with await open_process(
        py("import sys; print(len(sys.stdin.read()))"), stdin=DEVNULL, stdout=PIPE
    ) as proc:
        assert proc.stdin is None and proc.stdout is not None
        with curcor.timeout(BOUND):
            assert await proc.stdout.read_until(b"\n") == b"0\n"
            assert await proc.wait() == 0


# -- exit status -------------------------------------------------------------------


@real
async def test_exit_status_is_returned_when_check_is_false():
    result = await run_process(py("raise SystemExit(3)"), check=False)
    assert result.returncode == 3
    assert result.stdout is None


@real
async def test_check_raises_called_process_error_with_the_output():
    code = "import sys; print('partial'); print('boom', file=sys.stderr); sys.exit(7)"
    with pytest.raises(subprocess.CalledProcessError) as info:
        await run_process(py(code), capture_stdout=True, capture_stderr=True)
    assert info.value.returncode == 7
    assert info.value.stdout == b"partial\n"
    assert info.value.stderr == b"boom\n"
    assert "exit status 7" in str(info.value)


@real
async def test_a_signal_shows_as_a_negative_returncode(children):
    async with await open_process(["sleep", "10"]) as proc:
        children.append(proc.pid)
        assert proc.returncode is None
        proc.send_signal(signal.SIGUSR1)
        with curcor.timeout(BOUND):
            assert await proc.wait() == -signal.SIGUSR1
    assert_reaped(proc.pid)
    proc.kill()  # after reaping: a no-op, never a stray signal


@real
async def test_several_tasks_can_wait_for_the_same_child(children):
    async with await open_process(["sleep", "0.2"]) as proc:
        children.append(proc.pid)
        with curcor.timeout(BOUND):
            tasks = [curcor.go(proc.wait()) for _ in range(5)]
            assert [await t.join() for t in tasks] == [0] * 5
    assert_reaped(proc.pid)


@real
async def test_scripts_run_with_the_given_cwd_and_env(tmp_path):
    code = "import os; print(os.getcwd()); print(os.environ['CURCOR_PROBE'])"
    env = {**os.environ, "CURCOR_PROBE": "probe-value"}
    result = await run_process(py(code), cwd=tmp_path, env=env, capture_stdout=True)
    cwd, probe = result.stdout.decode().splitlines()
    assert os.path.samefile(cwd, tmp_path)
    assert probe == "probe-value"


@pytest.mark.curcor(clock="real")
async def test_twenty_processes_at_once_all_finish():
    results: list[int] = []

    async def one() -> None:
        results.append((await run_process(["true"])).returncode)

    with curcor.timeout(BOUND):
        async with curcor.TaskGroup() as tg:
            for _ in range(20):
                tg.go(one())
    assert results == [0] * 20


# -- stopping and cancellation ----------------------------------------------------


@real
async def test_cancelling_run_process_kills_and_reaps_the_child(tmp_path, children):
    pidfile = tmp_path / "pid"
    code = (
        "import os, sys, time\n"
        f"open({str(pidfile)!r}, 'w').write(f'{{os.getpid()}}\\n')\n"
        "time.sleep(10)\n"
    )
    task = curcor.go(run_process(py(code)))
    pid = await read_pid(pidfile)
    children.append(pid)
    task.cancel()
    with curcor.timeout(BOUND), pytest.raises(curcor.Cancelled):
        await task.join()
    assert_reaped(pid)  # reaped before Cancelled reached the joiner


@real
async def test_move_on_after_around_run_process_leaves_no_child(tmp_path, children):
    pidfile = tmp_path / "pid"
    argv = ["sh", "-c", 'echo $$ > "$0"; exec sleep 10', str(pidfile)]
    with curcor.move_on_after(1.0) as scope:
        await run_process(argv)
    assert scope.cancelled_caught
    pid = await read_pid(pidfile)
    children.append(pid)
    assert_reaped(pid)


@real
async def test_leaving_async_with_stops_a_running_child(children):
    async with await open_process(["sleep", "10"]) as proc:
        children.append(proc.pid)
    assert proc.returncode == -signal.SIGTERM
    assert_reaped(proc.pid)


@real
async def test_a_child_that_ignores_sigterm_gets_sigkill(children):
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(10)\n"
    )
    async with await open_process(py(code), stdout=PIPE) as proc:
        children.append(proc.pid)
        assert proc.stdout is not None
        with curcor.timeout(BOUND):
            assert await proc.stdout.read_until(b"\n") == b"ready\n"
    assert proc.returncode == -signal.SIGKILL
    assert_reaped(proc.pid)


@real
async def test_a_cancelled_wait_leaves_the_child_running_until_async_with_ends(
    children,
):
    async with await open_process(["sleep", "10"]) as proc:
        children.append(proc.pid)
        with curcor.move_on_after(0.05) as scope:
            await proc.wait()
        assert scope.cancelled_caught
        assert proc.returncode is None
    assert proc.returncode == -signal.SIGTERM
    assert_reaped(proc.pid)


@real
async def test_without_pidfd_waits_run_on_the_thread_pool(monkeypatch, children):
    monkeypatch.setattr(process, "_open_pidfd", lambda pid: -1)
    result = await run_process(["cat"], input=b"x", capture_stdout=True)
    assert result.stdout == b"x"

    async with await open_process(["sleep", "10"]) as proc:
        children.append(proc.pid)
        with curcor.move_on_after(0.05):
            await proc.wait()  # cancelled: its thread still reaps later
        assert proc.returncode is None
    assert proc.returncode == -signal.SIGTERM
    assert_reaped(proc.pid)


# -- misuse -------------------------------------------------------------------------


@real
async def test_a_missing_program_is_named_in_the_error():
    with pytest.raises(FileNotFoundError, match="no-such-program-curcor") as info:
        await run_process(["no-such-program-curcor", "-x"])
    assert info.value.filename == "no-such-program-curcor"
    assert "PATH" in str(info.value)


@real
async def test_a_missing_cwd_is_named_in_the_error(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere") as info:
        await run_process(["true"], cwd=missing)
    assert "no directory" in str(info.value)


@real
@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        ("ls -l", r"shlex\.split"),
        (b"ls", r"\[b'ls'\]"),
        (42, "list of str"),
        (["echo", 1], r"argv\[1\] is int"),
        (["echo", None], r"argv\[1\] is NoneType"),
    ],
)
async def test_malformed_argv_is_a_type_error_with_the_fix(argv, hint):
    with pytest.raises(TypeError, match=hint):
        await run_process(argv)


@real
async def test_empty_argv_and_text_input_are_refused():
    with pytest.raises(ValueError, match="argv is empty"):
        await run_process([])
    with pytest.raises(TypeError, match=r"text\.encode\(\)"):
        await run_process(["cat"], input="text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only meaningful for stderr"):
        await open_process(["true"], stdout=STDOUT)


@real
async def test_pathlike_arguments_are_accepted(tmp_path):
    target = tmp_path / "file.txt"
    target.write_bytes(b"contents")
    result = await run_process(["cat", target], capture_stdout=True)
    assert result.stdout == b"contents"

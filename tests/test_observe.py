"""Seeing inside a running program, end to end as a user does it: a real
application runs in a subprocess with ``CURCOR_CONTROL`` (and
``CURCOR_TRACE``), and ``curcor ps`` and ``curcor top`` run as subprocesses
against it. Every subprocess is bounded by a timeout and ended by its pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import curcor
from curcor._core.config import Config

SRC = Path(__file__).resolve().parents[1] / "src"
APP = Path(__file__).resolve().parent / "fixtures" / "observe" / "app.py"
TIMEOUT = 30.0

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "AF_UNIX"), reason="the control socket is a Unix socket"
)


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without curcor settings, with src importable."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("CURCOR_")}
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), out.get("PYTHONPATH")]))
    out.update(extra or {})
    return out


def wait_line(stream, want: str, deadline: float) -> list[str]:
    """Lines read from ``stream`` up to one containing ``want`` (bounded)."""
    lines = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], deadline - time.monotonic())
        if not ready:
            break
        line = stream.readline()
        if not line:
            break
        lines.append(line)
        if want in line:
            return lines
    raise AssertionError(f"no line with {want!r} in time; got {lines!r}")


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    """Close the app's stdin so it ends; kill it by pid if it does not."""
    try:
        _, err = proc.communicate(timeout=TIMEOUT)  # closes stdin first
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, err


@contextlib.contextmanager
def running_app(sock: Path, cwd: Path, extra: dict[str, str] | None = None):
    """The fixture application, started and ready, with its control socket."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "curcor", "run", str(APP)],
        cwd=cwd,
        env=env({"CURCOR_CONTROL": str(sock), **(extra or {})}),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_line(proc.stdout, "ready", time.monotonic() + TIMEOUT)
        yield proc
    finally:
        if proc.returncode is None:
            stop(proc)


def curcor_cmd(*args: str, cwd: Path, extra: dict[str, str] | None = None):
    """Run ``python -m curcor ARGS`` and return the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "curcor", *args],
        cwd=cwd,
        env=env(extra),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def marked_line(name: str) -> int:
    """The line of ``APP`` marked ``# WAIT: name``."""
    for number, line in enumerate(APP.read_text().splitlines(), start=1):
        if line.endswith(f"# WAIT: {name}"):
            return number
    raise AssertionError(name)


def ask(path: Path, request: bytes) -> dict:
    """Send raw bytes to the control socket and parse the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        s.connect(str(path))
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data)


def stale_socket(path: Path) -> None:
    """Leave a socket file nobody listens on, as a crashed run does."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()


# -- curcor ps ------------------------------------------------------------------


def test_ps_names_each_task_its_state_its_wait_and_its_stack(tmp_path):
    sock = tmp_path / "app.sock"
    with running_app(sock, tmp_path):
        result = curcor_cmd("ps", "--socket", str(sock), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    rows = {line.split()[1]: line for line in out.splitlines() if line[:1].isdigit()}
    assert "channel recv: Channel(0)" in rows["receiver"]
    assert "sleep, " in rows["sleeper"] and "s left" in rows["sleeper"]
    assert " read (Socket)" in rows["reader"] and "fd " in rows["reader"]
    assert "join of task" in rows["joiner"] and "(sleeper)" in rows["joiner"]
    assert "to_thread(" in rows["main-1"] and "(main)" in rows["main-1"]
    for row in rows.values():
        assert " blocked " in row
    for name in ("receiver", "sleeper", "reader", "joiner", "main"):
        frame = f'File "{APP}", line {marked_line(name)}, in {name}'
        assert frame in out, name


def test_ps_json_gives_each_task_with_a_structured_wait_and_stack(tmp_path):
    sock = tmp_path / "app.sock"
    with running_app(sock, tmp_path) as proc:
        result = curcor_cmd("ps", "--json", "--socket", str(sock), cwd=tmp_path)
        pid = proc.pid
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["pid"] == pid
    tasks = {t["name"]: t for t in document["tasks"]}
    kinds = {name: t["waiting_on"]["kind"] for name, t in tasks.items()}
    assert kinds == {
        "main-1": "thread",
        "receiver": "channel",
        "sleeper": "sleep",
        "reader": "fd",
        "joiner": "join",
    }
    assert tasks["reader"]["waiting_on"]["op"] == "read"
    assert tasks["joiner"]["waiting_on"]["task"] == tasks["sleeper"]["id"]
    assert tasks["main-1"]["main"] is True
    for name, task in tasks.items():
        assert task["state"] == "blocked"
        function = "main" if name == "main-1" else name
        top = task["stack"][0]
        assert top == {
            "file": str(APP),
            "line": marked_line(function),
            "function": function,
        }


def test_ps_finds_the_socket_from_curcor_toml(tmp_path):
    sock = tmp_path / "app.sock"
    (tmp_path / "curcor.toml").write_text(f'control = "{sock}"\n')
    with running_app(sock, tmp_path):
        result = curcor_cmd("ps", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "receiver" in result.stdout


# -- curcor top -----------------------------------------------------------------


def test_top_exits_0_and_says_so_when_the_application_ends(tmp_path):
    sock = tmp_path / "app.sock"
    with running_app(sock, tmp_path) as app:
        top = subprocess.Popen(
            [sys.executable, "-m", "curcor", "top", "--interval", "0.2"],
            cwd=tmp_path,
            env=env({"CURCOR_CONTROL": str(sock)}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(0.5)  # top has connected at least once
            status, _ = stop(app)  # a clean shutdown removes the socket file
            assert status == 0
            out, err = top.communicate(timeout=TIMEOUT)
        finally:
            if top.returncode is None:
                os.kill(top.pid, signal.SIGKILL)
                top.communicate(timeout=TIMEOUT)
    assert top.returncode == 0, err
    assert f"the application at {sock} stopped" in out


def test_top_once_prints_tasks_workers_and_runtime_figures(tmp_path):
    sock = tmp_path / "app.sock"
    with running_app(sock, tmp_path):
        result = curcor_cmd(
            "top", "--once", cwd=tmp_path, extra={"CURCOR_CONTROL": str(sock)}
        )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "curcor top - pid" in out
    for word in ("blocked on channel", "blocked on sleep", "blocked on fd"):
        assert word in out
    for column in ("steps", "steals", "parks", "handoffs", "stuck"):
        assert column in out
    assert "governed:" in out and "hits" in out


# -- the socket file ------------------------------------------------------------


def test_socket_is_private_and_removed_at_exit(tmp_path):
    sock = tmp_path / "app.sock"
    with running_app(sock, tmp_path) as proc:
        mode = os.stat(sock).st_mode
        status, err = stop(proc)
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    assert status == 0, err
    assert not sock.exists()


def test_a_stale_socket_file_is_replaced_at_boot(tmp_path):
    sock = tmp_path / "app.sock"
    stale_socket(sock)
    with running_app(sock, tmp_path) as proc:
        result = curcor_cmd("ps", "--socket", str(sock), cwd=tmp_path)
        status, err = stop(proc)
    assert result.returncode == 0 and "receiver" in result.stdout
    assert status == 0, err
    assert not sock.exists()


def test_a_socket_in_use_stops_the_second_boot_with_the_fix(tmp_path):
    sock = tmp_path / "app.sock"
    with running_app(sock, tmp_path):
        second = curcor_cmd(
            "run", str(APP), cwd=tmp_path, extra={"CURCOR_CONTROL": str(sock)}
        )
        still = curcor_cmd("ps", "--socket", str(sock), cwd=tmp_path)
    assert second.returncode == 2
    line = second.stderr.strip()
    assert line.startswith("curcor: scheduler init panic: the control socket")
    assert f"{sock} (from CURCOR_CONTROL) is in use" in line
    assert "another path" in line
    assert still.returncode == 0


def test_a_path_that_is_not_a_socket_is_left_alone(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("keep me")
    result = curcor_cmd(
        "run", str(APP), cwd=tmp_path, extra={"CURCOR_CONTROL": str(path)}
    )
    assert result.returncode == 2
    assert "exists and is not a socket" in result.stderr
    assert path.read_text() == "keep me"


# -- bad input ----------------------------------------------------------------------


def test_ps_with_no_such_socket_says_how_to_start_the_app(tmp_path):
    sock = tmp_path / "none.sock"
    result = curcor_cmd("ps", "--socket", str(sock), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    line = result.stderr.strip()
    assert line.startswith(f"curcor: no control socket at {sock}")
    assert f"CURCOR_CONTROL={sock}" in line


def test_ps_of_an_app_that_is_not_running_says_so(tmp_path):
    sock = tmp_path / "app.sock"
    stale_socket(sock)
    for command in (["ps"], ["top", "--once"]):
        result = curcor_cmd(*command, "--socket", str(sock), cwd=tmp_path)
        assert result.returncode == 1
        assert f"nothing is listening on {sock}" in result.stderr
        assert "not running" in result.stderr


def test_ps_with_no_socket_configured_says_what_to_pass(tmp_path):
    result = curcor_cmd("ps", cwd=tmp_path)
    assert result.returncode == 1
    assert "pass --socket PATH" in result.stderr


def test_unknown_commands_and_bad_requests_get_json_errors(tmp_path):
    sock = tmp_path / "app.sock"
    with running_app(sock, tmp_path):
        unknown = ask(sock, b'{"cmd": "fly"}\n')
        garbage = ask(sock, b"not json\n")
        stats = ask(sock, b'{"cmd": "stats"}\n')
    assert unknown["ok"] is False
    assert unknown["error"] == "unknown command 'fly'; known: ps, stats, top"
    assert garbage["ok"] is False and '{"cmd": "ps"}' in garbage["error"]
    assert stats["ok"] is True
    assert stats["stats"]["tasks_live"] == 5
    assert len(stats["stats"]["workers"]) == stats["stats"]["maxprocs"]


@pytest.mark.skipif(
    not hasattr(socket, "SO_PEERCRED") or os.geteuid() != 0,
    reason="needs Linux SO_PEERCRED and root to connect as another user",
)
def test_a_peer_of_another_uid_is_refused(tmp_path):
    # pytest's tmp_path is private to root: the socket goes where nobody
    # can reach it, so that only the server's own check can refuse.
    import shutil
    import tempfile

    shared = Path(tempfile.mkdtemp(prefix="curcor-peer-"))
    os.chmod(shared, 0o755)
    sock = shared / "app.sock"
    try:
        reply = _ask_as_nobody(sock, tmp_path)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    assert reply["ok"] is False
    assert reply["error"].startswith("refused: this control socket answers only")
    assert "uid 65534" in reply["error"]


# Run as root, this imports what it needs, becomes nobody, then asks (the
# interpreter's own files may be out of nobody's reach by then).
NOBODY_ASKS = """
import json, os, socket, sys
os.setgid(65534)
os.setuid(65534)
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
    s.settimeout(30)
    s.connect(sys.argv[1])
    s.sendall(b'{"cmd": "ps"}\\n')
    data = b""
    while chunk := s.recv(65536):
        data += chunk
sys.stdout.write(data.decode())
"""


def _ask_as_nobody(sock: Path, cwd: Path) -> dict:
    with running_app(sock, cwd):
        os.chmod(sock, 0o666)  # only the uid check stands in the way now
        result = subprocess.run(
            [sys.executable, "-c", NOBODY_ASKS, str(sock)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- the trace ----------------------------------------------------------------------


def test_trace_prints_a_summary_line_every_period(tmp_path):
    sock = tmp_path / "app.sock"
    with running_app(sock, tmp_path, {"CURCOR_TRACE": "100"}) as proc:
        deadline = time.monotonic() + TIMEOUT
        first = wait_line(proc.stderr, "curcor trace:", deadline)[-1]
        second = wait_line(proc.stderr, "curcor trace:", deadline)[-1]
        status, _ = stop(proc)
    assert status == 0
    for line in (first, second):
        words = line.split()
        assert words[:2] == ["curcor", "trace:"]
        fields = dict(word.split("=", 1) for word in words[3:])
        assert list(fields) == [
            "tasks", "runnable", "running", "blocked", "workers", "idle", "stuck",
            "spares",
            "steps", "steals", "parks", "netpoll", "timers", "gc", "pool",
        ]  # fmt: skip
        assert fields["tasks"] == "5"


# -- in process ---------------------------------------------------------------------


def test_trace_and_control_threads_end_with_the_runtime(tmp_path, capsys):
    sock = tmp_path / "in.sock"

    def ps() -> dict:
        return ask(sock, b'{"cmd": "ps"}\n')

    async def main():
        curcor.go(curcor.sleep(3600), name="nap")
        await curcor.sleep(0.25)
        return await curcor.to_thread(ps)

    reply = curcor.run(main(), config=Config(control=str(sock), trace=50))
    names = {t["name"]: t for t in reply["tasks"]}
    assert names["nap"]["waiting_on"]["kind"] == "sleep"
    main = next(t for t in reply["tasks"] if t["main"])
    assert main["waiting_on"]["kind"] == "thread"
    assert main["waiting_on"]["text"].endswith("<locals>.ps)")
    assert not sock.exists()
    assert "curcor trace: " in capsys.readouterr().err
    # The thread-leak guard (conftest.py) checks the threads are gone.


def test_stats_is_a_snapshot_of_counters_not_of_tasks():
    # The snapshot never walks the tasks: its cost does not grow with them
    # (measured: 0.13 ms at 100,000 live tasks, docs/guide.md).
    async def main():
        ch = curcor.Channel()
        for _ in range(1000):
            curcor.go(ch.recv())
        await curcor.sleep(0.01)
        s = curcor.stats()
        ch.close()
        return s

    with pytest.raises(curcor.ChannelClosed):
        curcor.run(main())
    s = curcor.stats()
    assert s.tasks_spawned == 1001
    assert all(not w.stuck for w in s.workers)

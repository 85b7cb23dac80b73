"""``curcor debug``: a real DAP session against the command, over a socket.

The test speaks the Debug Adapter Protocol itself (Content-Length framed
JSON) as VS Code would: attach, set a breakpoint in the program, read a
local variable at the stop, evaluate the task list, continue, and see the
program exit 0. Every wait is bounded; the process is killed by its pid.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

needs_debugpy = pytest.mark.skipif(
    importlib.util.find_spec("debugpy") is None,
    reason="debugpy is not installed (the debug extra)",
)

CURCOR = [sys.executable, "-m", "curcor"]
TIMEOUT = 30.0  # seconds for any one DAP exchange or process step

APP = textwrap.dedent(
    """\
    import curcor


    async def producer(ch, n):
        for i in range(n):
            await ch.send(i)
        ch.close()


    async def idler(stop):
        await stop.wait()


    async def main():
        ch = curcor.Channel()
        stop = curcor.Event()
        curcor.go(producer(ch, 3), name="producer")
        curcor.go(idler(stop), name="idler")
        total = 0
        async for value in ch:
            total += value
        await curcor.sleep(0.05)  # the idler runs and blocks
        answer = total * 7  # BREAK
        stop.set()
        print("answer", answer)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DAPClient:
    """A minimal DAP client: requests, responses and events over one socket."""

    def __init__(self, port: int, deadline: float) -> None:
        self.sock = self._connect(port, deadline)
        self.sock.settimeout(TIMEOUT)
        self.buffer = b""
        self.seq = 0
        self.events: list[dict] = []
        self.responses: dict[int, dict] = {}

    @staticmethod
    def _connect(port: int, deadline: float) -> socket.socket:
        last: OSError | None = None
        while time.monotonic() < deadline:
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError as exc:
                last = exc
                time.sleep(0.1)
        raise AssertionError(f"no DAP server on port {port}: {last}")

    def close(self) -> None:
        self.sock.close()

    def send(self, command: str, **arguments) -> int:
        self.seq += 1
        body = json.dumps(
            {
                "seq": self.seq,
                "type": "request",
                "command": command,
                "arguments": arguments,
            }
        ).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return self.seq

    def _read_message(self) -> dict:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        header, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in header.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return json.loads(body)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the DAP server closed the connection")
        self.buffer += chunk

    def _pump_until(self, done, what: str) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            found = done()
            if found is not None:
                return found
            message = self._read_message()
            if message["type"] == "response":
                self.responses[message["request_seq"]] = message
            elif message["type"] == "event":
                self.events.append(message)
        raise AssertionError(f"timed out waiting for {what}")

    def response(self, seq: int) -> dict:
        message = self._pump_until(lambda: self.responses.pop(seq, None), f"#{seq}")
        assert message["success"], message
        return message.get("body", {})

    def request(self, command: str, **arguments) -> dict:
        return self.response(self.send(command, **arguments))

    def event(self, name: str) -> dict:
        def find():
            for i, ev in enumerate(self.events):
                if ev["event"] == name:
                    return self.events.pop(i)
            return None

        return self._pump_until(find, f"the {name!r} event")


def _start(tmp_path: Path, *argv: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [*CURCOR, "debug", *argv],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill(proc: subprocess.Popen) -> tuple[str, str]:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    return proc.communicate(timeout=TIMEOUT)


@needs_debugpy
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_debug_attach_breakpoint_locals_and_task_list(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(APP)
    line = APP.splitlines().index("    answer = total * 7  # BREAK") + 1
    port = _free_port()
    proc = _start(tmp_path, str(app), "--port", str(port), "--wait")
    client = None
    try:
        client = DAPClient(port, time.monotonic() + TIMEOUT)
        client.request(
            "initialize",
            clientID="curcor-test",
            adapterID="debugpy",
            linesStartAt1=True,
            columnsStartAt1=True,
            pathFormat="path",
        )
        attach = client.send("attach", name="curcor", justMyCode=True)
        client.event("initialized")
        body = client.request(
            "setBreakpoints",
            source={"path": str(app)},
            breakpoints=[{"line": line}],
        )
        assert body["breakpoints"][0]["verified"], body
        client.request("configurationDone")
        client.response(attach)

        stopped = client.event("stopped")["body"]
        assert stopped["reason"] == "breakpoint", stopped
        thread_id = stopped["threadId"]
        threads = client.request("threads")["threads"]
        assert thread_id in [t["id"] for t in threads]

        frames = client.request("stackTrace", threadId=thread_id)["stackFrames"]
        top = frames[0]
        assert top["name"] == "main" and top["line"] == line, top
        scopes = client.request("scopes", frameId=top["id"])["scopes"]
        local = next(s for s in scopes if s["name"].lower().startswith("locals"))
        variables = client.request(
            "variables", variablesReference=local["variablesReference"]
        )["variables"]
        values = {v["name"]: v["value"] for v in variables}
        assert values["total"] == "3", values

        listing = client.request(
            "evaluate",
            expression="curcor.debug.tasks()",
            frameId=top["id"],
            context="repl",
        )["result"]
        assert "idler" in listing and "main" in listing, listing
        assert "blocked on" in listing and "running on worker" in listing, listing
        assert "in idler" in listing, listing  # the suspended task's stack

        client.request("continue", threadId=thread_id)
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
        assert "answer 21" in out
        assert f"debugger listening on 127.0.0.1:{port}" in err
    finally:
        if client is not None:
            client.close()
        _kill(proc)


@needs_debugpy
def test_debug_port_in_use_names_the_port_and_the_fix(tmp_path):
    app = tmp_path / "app.py"
    app.write_text("async def main():\n    pass\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _start(tmp_path, "--port", str(port), str(app))
        try:
            _, err = proc.communicate(timeout=TIMEOUT)
        finally:
            _kill(proc)
    assert proc.returncode == 1, err
    assert f"port {port} on 127.0.0.1 is in use" in err
    assert "--port N" in err
    assert "Traceback" not in err


def test_debug_missing_file_is_a_usage_error(tmp_path):
    proc = _start(tmp_path, "nope.py")
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        _kill(proc)
    assert proc.returncode == 2
    assert "can't open file 'nope.py'" in err


def test_debug_bad_port_is_a_usage_error(tmp_path):
    proc = _start(tmp_path, "--port", "http", "app.py")
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        _kill(proc)
    assert proc.returncode == 2
    assert "--port http is not a TCP port" in err


def test_tasks_outside_a_runtime_is_empty():
    import curcor.debug

    listing = curcor.debug.tasks()
    assert len(listing) == 0
    assert "no runtime is running" in repr(listing)


def test_debug_without_debugpy_names_the_install_command(tmp_path):
    (tmp_path / "app.py").write_text("async def main():\n    pass\n")
    hide = "import sys\nsys.modules['debugpy'] = None"
    code = hide + "\nfrom curcor.cli import main\nsys.exit(main(sys.argv[1:]))"
    result = subprocess.run(
        [sys.executable, "-c", code, "debug", str(tmp_path / "app.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 1
    assert "install it with: python -m pip install 'curcor[debug]'" in result.stderr
    assert "scheduler booted" not in result.stderr  # the program did not run

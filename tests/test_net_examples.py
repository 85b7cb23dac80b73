"""The network examples, run as a user would (a subprocess on port 0)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _start(name: str) -> tuple[subprocess.Popen[str], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURCOR_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "curcor", "run", str(EXAMPLES / name), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, int(line.rsplit(":", 1)[1])


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_echo_server_example_echoes_and_stops_on_sigterm():
    proc, port = _start("echo_server.py")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(b"hello echo\n")
            assert c.recv(100) == b"hello echo\n"
    finally:
        _stop(proc)
    assert proc.returncode == 0


def _read_line(sock: socket.socket) -> bytes:
    out = b""
    while not out.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        out += chunk
    return out


def test_chat_example_broadcasts_every_line_to_every_client():
    proc, port = _start("chat.py")
    try:
        a = socket.create_connection(("127.0.0.1", port), timeout=10)
        assert _read_line(a) == b"* client 1 joined\n"
        b = socket.create_connection(("127.0.0.1", port), timeout=10)
        assert _read_line(a) == b"* client 2 joined\n"
        assert _read_line(b) == b"* client 2 joined\n"
        a.sendall(b"hi all\n")
        assert _read_line(a) == b"1: hi all\n"
        assert _read_line(b) == b"1: hi all\n"
        a.close()
        assert _read_line(b) == b"* client 1 left\n"
        b.close()
    finally:
        _stop(proc)
    assert proc.returncode == 0

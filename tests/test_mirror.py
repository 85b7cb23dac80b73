"""Tests of examples/mirror.py: a full mirror run, the server's path rules.

The fixture tree is built in ``tmp_path``; its expected figures come from
``os.walk``. The full run goes through ``curcor run`` in a subprocess, as a
user would start it; the server's refusals are checked in-process against
``FileServer.app`` on a real socket.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import curcor
from curcor.net import http

pytestmark = pytest.mark.timeout(15)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "mirror.py"
ODD_NAME = "dír with spaces/naïve ünïcode €.txt"
NOT_UTF8 = b"latin1-\xe9t\xe9.bin"


# The examples import their shared helpers (examples/_tree.py) as a
# sibling module, as they do when run from their directory.
sys.path.insert(0, str(SCRIPT.parent))
mirror = importlib.import_module("mirror")


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Nested directories, an empty file, binary data, odd names, 2 MB."""
    root = tmp_path / "tree"
    _write(root, "top.txt", b"top\n")
    _write(root, "a/b/c/deep.txt", b"deep " * 100)
    _write(root, "a/empty", b"")
    _write(root, "bin/all-bytes.bin", bytes(range(256)) * 64)
    _write(root, ODD_NAME, "ünïcode body\n".encode())
    _write(root, "big/two-mb.bin", os.urandom(2 * 1024 * 1024))
    (root / "bin").joinpath(os.fsdecode(NOT_UTF8)).write_bytes(b"\x00\xff" * 99)
    return root


def _expected(root: Path) -> tuple[int, int]:
    """(files, bytes) of the regular files under ``root``."""
    sizes = [
        os.path.getsize(os.path.join(d, f))
        for d, _, files in os.walk(root)
        for f in files
    ]
    return len(sizes), sum(sizes)


# --- the whole program --------------------------------------------------------


def _run(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "curcor", "run", str(SCRIPT), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=12)


def test_mirror_fetches_every_file_and_matches_it(tree: Path) -> None:
    proc = _run(str(tree), "--conns", "8", "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    files, size = _expected(tree)
    assert (rep["files"], rep["bytes"]) == (files, size)
    assert (rep["matched"], rep["mismatches"], rep["errors"]) == (files, 0, 0)
    assert rep["requests_served"] == files
    assert 1 <= rep["connections"] <= 8
    assert rep["runtime"]["tasks_spawned"] > 8


def test_a_bad_root_is_one_line_and_status_2(tmp_path: Path) -> None:
    proc = _run(str(tmp_path / "nowhere"))
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("mirror: ") and "no such directory" in line


def test_a_mismatch_is_reported_with_status_1(
    tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    real_sha = mirror.file_sha256

    def lying_sha(path: str) -> str:
        return "0" * 64 if path.endswith("top.txt") else real_sha(path)

    monkeypatch.setattr(mirror, "file_sha256", lying_sha)
    status = curcor.run(mirror.main([str(tree), "--conns", "3", "--json"]))
    out, err = capsys.readouterr()
    rep = json.loads(out)
    assert status == 1
    assert (rep["mismatches"], rep["errors"]) == (1, 0)
    assert "top.txt: sha256" in err


# --- the server's path rules ----------------------------------------------------


def test_request_path_decodes_to_bytes_and_refuses_dot_dot() -> None:
    assert mirror.request_path("/a%20b/%C3%A9.txt?x=1") == "a b/é.txt".encode()
    assert mirror.request_path("//a///b") == b"a/b"
    assert mirror.request_path("/x/%E9") == b"x/\xe9"
    for target in ("/../x", "/a/../../x", "/%2e%2e/x", "/a/%2E%2E"):
        with pytest.raises(mirror.Refused) as caught:
            mirror.request_path(target)
        assert caught.value.status == 403
    for target in ("/", "/a%00b"):
        with pytest.raises(mirror.Refused) as caught:
            mirror.request_path(target)
        assert caught.value.status == 404


def test_server_refuses_paths_that_escape_the_tree(tmp_path: Path) -> None:
    root = tmp_path / "served"
    _write(root, "sub/inside.txt", b"inside")
    _write(tmp_path, "outside.txt", b"SECRET")
    (root / "link").symlink_to(tmp_path / "outside.txt")
    (root / "inner-link").symlink_to(root / "sub" / "inside.txt")

    async def scenario() -> dict[str, tuple[int, bytes]]:
        server = mirror.FileServer(str(root))
        serve = functools.partial(http.serve_http, server.app, "127.0.0.1", 0)
        seen = {}
        async with curcor.TaskGroup() as tg:
            port = await tg.start(serve)
            async with http.Client(f"http://127.0.0.1:{port}") as client:
                for target in (
                    "/sub/inside.txt",
                    "/inner-link",
                    "/../outside.txt",
                    "/sub/../../outside.txt",
                    "/%2e%2e/outside.txt",
                    "/link",
                    "/missing.txt",
                    "/sub",
                ):
                    r = await client.get(target)
                    seen[target] = (r.status, await r.read())
            tg.cancel_scope.cancel()
        return seen

    seen = curcor.run(scenario())
    assert seen.pop("/sub/inside.txt") == (200, b"inside")
    assert seen.pop("/inner-link") == (200, b"inside")
    statuses = {target: status for target, (status, _) in seen.items()}
    assert statuses == {
        "/../outside.txt": 403,
        "/sub/../../outside.txt": 403,
        "/%2e%2e/outside.txt": 403,
        "/link": 403,
        "/missing.txt": 404,
        "/sub": 404,
    }
    assert not any(b"SECRET" in body for _, body in seen.values())

"""Tests of examples/treescan.py: its report, its two modes and its errors.

The fixture tree is built in ``tmp_path``. The expected figures are computed
here independently (``os.walk``, one-shot ``hashlib`` and ``zlib``), and the
concurrent scan must give exactly the report of the sequential one.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "treescan.py"

PY_SOURCE = '''"""Spam eggs."""
import os


def alpha(beta, gamma):
    # beta beta
    if beta:
        return alpha(beta - 1, gamma) + 0x1F
    return os.path.join(rb"raw", gamma)
'''
BROKEN_PY = 'def f(:\n    """unterminated\n'
EXPECTED_IDENTIFIERS = [
    ("beta", 5),
    ("gamma", 3),
    ("alpha", 2),
    ("os", 2),
    ("Spam", 1),
    ("eggs", 1),
    ("f", 1),
    ("join", 1),
    ("path", 1),
    ("unterminated", 1),
]


# The examples import their shared helpers (examples/_tree.py) as a
# sibling module, as they do when run from their directory.
sys.path.insert(0, str(SCRIPT.parent))
treescan = importlib.import_module("treescan")


# --- the fixture ------------------------------------------------------------


def _write(root: Path, rel: str, data: bytes) -> None:
    """Write ``data`` to ``root/rel``, creating directories."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def build_tree(root: Path) -> None:
    """A small tree with every kind of thing treescan must handle."""

    # Duplicates: a group of three, a pair, and two empty files (no group).
    for rel in ("a/dup.txt", "b/dup.txt", "a/deep/copy.txt"):
        _write(root, rel, b"duplicate line\n" * 500)
    for rel in ("a/pair1.txt", "b/pair2.txt"):
        _write(root, rel, b"pair\n" * 100)
    _write(root, "a/empty.txt", b"")
    _write(root, "b/empty2.txt", b"")

    # Binary data, a file larger than one read chunk, Python sources.
    _write(root, "b/blob.bin", random.Random(7).randbytes(300_000))
    _write(root, "big.log", b"".join(b"line %d\n" % i for i in range(300_000)))
    _write(root, "mod.py", PY_SOURCE.encode())
    _write(root, "a/broken.py", BROKEN_PY.encode())
    _write(root, "site-packages/pkg/ignored.py", b"ignored_name = 1\n" * 50)

    # Entries that are never opened: symlinks (dangling, looping) and a FIFO.
    os.symlink("dup.txt", root / "a" / "link.txt")
    os.symlink("missing", root / "a" / "dangling")
    os.symlink("..", root / "b" / "up")
    os.mkfifo(root / "b" / "fifo")


def expected_files(root: Path) -> dict[str, bytes]:
    """The regular files treescan should read, by relative path."""
    found = {}
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "site-packages"]
        for name in files:
            path = Path(top, name)
            if path.is_file() and not path.is_symlink():
                found[str(path.relative_to(root))] = path.read_bytes()
    return found


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The fixture tree, in ``tmp_path/tree``."""
    root = tmp_path / "tree"
    build_tree(root)
    return root


def scan_both(root: Path, workers: int = 3):
    """The sequential and the concurrent report of ``root``."""
    import curcor  # the concurrent half needs the runtime

    skip = treescan.DEFAULT_SKIP
    sequential = treescan.scan_sequential(str(root), skip)
    concurrent = curcor.run(treescan.scan_concurrent(str(root), workers, skip))
    return sequential, concurrent


# --- the pure logic ---------------------------------------------------------


def test_sequential_report_matches_independent_computation(tree: Path) -> None:
    rep = treescan.scan_sequential(str(tree), treescan.DEFAULT_SKIP)
    files = expected_files(tree)
    assert rep.files == len(files) == 11
    assert rep.bytes == sum(map(len, files.values()))
    assert rep.empty_files == 2
    assert rep.compressed_bytes == sum(len(zlib.compress(d, 6)) for d in files.values())
    assert rep.compression_ratio == pytest.approx(rep.compressed_bytes / rep.bytes)

    # Duplicates: non-empty files grouped by content, ranked by waste.
    by_hash: dict[str, list[str]] = {}
    for rel, data in files.items():
        if data:
            by_hash.setdefault(hashlib.sha256(data).hexdigest(), []).append(rel)
    groups = [sorted(p) for p in by_hash.values() if len(p) > 1]
    assert rep.duplicate_groups == 2
    assert rep.duplicate_files == 5
    assert [g.paths for g in rep.top_duplicates] == sorted(groups, key=len)[::-1]
    assert rep.wasted_bytes == 2 * 7500 + 500

    # The largest files, the identifiers, what was left out.
    largest = sorted(files.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:10]
    assert rep.largest == [(rel, len(data)) for rel, data in largest]
    assert rep.identifiers == EXPECTED_IDENTIFIERS
    assert rep.python_files == 2
    assert rep.not_regular == 4
    assert rep.excluded_dirs == 1
    assert (rep.unreadable, rep.vanished, rep.problems) == (0, 0, [])


def test_identifiers_are_the_same_whatever_the_chunking() -> None:
    data = (PY_SOURCE + BROKEN_PY).encode() * 3
    whole: Counter[bytes] = Counter()
    treescan.count_identifiers(data, whole, final=True)
    for cut in range(len(data) + 1):
        parts: Counter[bytes] = Counter()
        carry = treescan.count_identifiers(data[:cut], parts, final=False)
        treescan.count_identifiers(carry + data[cut:], parts, final=True)
        assert parts == whole, cut


def test_process_file_reads_large_files_in_chunks(tree: Path) -> None:
    data = (tree / "big.log").read_bytes()
    assert len(data) > treescan.CHUNK
    res = treescan.process_file(str(tree / "big.log"))
    assert res.size == len(data)
    assert res.sha256 == hashlib.sha256(data).hexdigest()
    assert res.compressed == len(zlib.compress(data, 6))
    assert res.identifiers is None


def test_process_file_classifies_what_it_cannot_read(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _deny_open(monkeypatch, "secret.txt")
    _write(tree, "secret.txt", b"top secret")
    cases = {
        "ghost.txt": "vanished",
        "a/link.txt": "vanished",
        "b/fifo": "vanished",
        "secret.txt": "unreadable",
    }
    for rel, kind in cases.items():
        res = treescan.process_file(str(tree / rel))
        assert isinstance(res, treescan.Skipped), rel
        assert res.kind == kind, rel
        assert "\n" not in res.message() and res.message().startswith("treescan: ")


def _deny_open(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ``os.open`` of files named ``name`` fail with EACCES (root reads all)."""
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if os.path.basename(path) == name:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def _haunt(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Files that vanish or turn unreadable between the walk and the read.

    The root's listing gains a path that no longer exists, a symlink and a
    FIFO that took a file's place, and an unreadable file; listing ``b``
    fails with EACCES.
    """
    real_list_dir = treescan.list_dir
    real_scandir = os.scandir
    _deny_open(monkeypatch, "secret.txt")
    _write(root, "secret.txt", b"top secret")

    def list_dir(path, skip=frozenset()):
        listing = real_list_dir(path, skip)
        if path == str(root):
            extra = ("ghost.txt", "a/link.txt", "b/fifo")
            listing.files += [str(root / rel) for rel in extra]
        return listing

    def scandir(path="."):
        if os.fspath(path) == str(root / "b"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(treescan, "list_dir", list_dir)
    monkeypatch.setattr(os, "scandir", scandir)


def test_sequential_counts_skipped_files(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _haunt(monkeypatch, tree)
    rep = treescan.scan_sequential(str(tree), treescan.DEFAULT_SKIP)
    assert (rep.unreadable, rep.vanished) == (2, 3)
    assert len(rep.problems) == 5
    assert all(p.startswith("treescan: ") for p in rep.problems)
    assert f"treescan: {tree / 'b'}: permission denied (skipped)" in rep.problems


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 directory")
def test_unreadable_directory_without_root(tree: Path) -> None:
    locked = tree / "a" / "deep"
    locked.chmod(0)
    try:
        rep = treescan.scan_sequential(str(tree))
    finally:
        locked.chmod(0o755)
    assert rep.unreadable == 1


# --- the concurrent scan (needs the runtime) ----------------------------------


@pytest.mark.parametrize("workers", [1, 3, 16])
def test_concurrent_report_equals_sequential(tree: Path, workers: int) -> None:
    sequential, concurrent = scan_both(tree, workers)
    assert concurrent == sequential
    assert concurrent.files == 11
    assert concurrent.identifiers == EXPECTED_IDENTIFIERS


def test_concurrent_counts_skipped_files_like_sequential(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _haunt(monkeypatch, tree)
    sequential, concurrent = scan_both(tree)
    assert concurrent == sequential
    assert (concurrent.unreadable, concurrent.vanished) == (2, 3)


def test_concurrent_scan_of_empty_directory(tmp_path: Path) -> None:
    sequential, concurrent = scan_both(tmp_path)
    assert concurrent == sequential
    assert (concurrent.files, concurrent.bytes) == (0, 0)


# --- the command line ---------------------------------------------------------


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    """Run examples/treescan.py in a fresh interpreter with src/ on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p
    )
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_bad_root_exits_2_with_one_line(tmp_path: Path) -> None:
    proc = run_script("/nonexistent")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (
        "treescan: /nonexistent: no such directory; pass a directory to scan, "
        "e.g. curcor run examples/treescan.py /usr/lib/python3\n"
    )


def test_root_that_is_a_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    proc = run_script(str(tmp_path / "file.txt"))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert ": not a directory; pass a directory to scan" in proc.stderr


def test_sequential_command_prints_the_report(tree: Path) -> None:
    shutil.rmtree(tree / "site-packages")  # skipped only in the default tree
    proc = run_script("--sequential", str(tree))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    for text in ("files:       11", "duplicates:  2 group(s)", "beta", "MiB/s"):
        assert text in proc.stdout


def test_concurrent_command_prints_json_with_runtime_figures(tree: Path) -> None:
    shutil.rmtree(tree / "site-packages")  # skipped only in the default tree
    proc = run_script("--json", "--workers", "4", str(tree))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["mode"] == "concurrent"
    assert out["files"] == 11
    assert out["identifiers"] == [list(kv) for kv in EXPECTED_IDENTIFIERS]
    assert isinstance(out["runtime"], dict)
    if "tasks_spawned" in out["runtime"]:
        assert out["runtime"]["tasks_spawned"] >= 4 + 1

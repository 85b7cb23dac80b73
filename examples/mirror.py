"""mirror: serve a directory tree over HTTP and fetch all of it back, checked.

Usage::

    curcor run examples/mirror.py [DIR] [--conns N] [--json]

One program, two halves on one runtime. A curcor HTTP server serves DIR
(default: this interpreter's standard library, without any
``site-packages`` or ``dist-packages`` directory) on 127.0.0.1, on a port
the kernel picks. A curcor HTTP client fetches every regular file in the
tree over N keep-alive connections (default 200) and checks each body's
SHA-256 against the file on disk. The report gives files, bytes, elapsed
time, MB/s (10**6 bytes) and requests/s, the mismatches (there must be
none), the errors, and the runtime's own figures from ``curcor.stats()``.

The tasks::

    server: serve_http --> one task per connection --> app (a file each)
    client: walker --paths--> N fetchers --Tally (under a lock)

The walker lists one directory per ``to_thread`` call and sends file
paths into a bounded channel. Each fetcher takes paths one at a time,
asks for the file (its path URL-quoted from the file name's bytes) through
a shared ``Client`` whose keep-alive pool holds up to N connections, so N
fetchers use at most N connections, and streams the body into a SHA-256
fed on the thread pool in batches of ``HASH_BATCH`` bytes. The last batch
goes with the digest of the file on disk in one ``to_thread`` call.

The server reads a file on the thread pool: whole, with its open, when it
is at most ``WHOLE_FILE`` bytes; otherwise ``CHUNK`` bytes per thread call,
sent as a chunked body from an async generator. It decodes the request
path to bytes (file names need not be UTF-8), refuses a ``..`` segment
with 403, resolves symlinks and refuses anything that lands outside the
root with 403; a missing or non-regular file gets 404.

The server and the client run in one ``TaskGroup``; when the client is
done (and its connections closed) it cancels the group's scope, which
shuts the server down. Exit status: 0 when every file came back equal, 1
on any mismatch or error (each printed on stderr), 2 for a bad DIR.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import stat
import sys
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field

from _tree import number, positive, printable, resolve_root

import curcor
from curcor.net import http

# Files up to this size are read and sent whole; larger ones are streamed
# in CHUNK-byte reads. Both arbitrary; no measurement yet.
WHOLE_FILE = 256 * 1024
CHUNK = 256 * 1024

# Received bytes handed to the thread pool per SHA-256 update: one thread
# call per batch, and at most this much held per fetcher. Arbitrary.
HASH_BATCH = 1 << 20

DEFAULT_CONNS = 200
HOST = "127.0.0.1"
PROBLEMS_SHOWN = 20
RUNTIME_FIGURES = (
    "tasks_spawned",
    "steps",
    "gc_collections",
    "pool_hits",
    "pool_misses",
)

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)


# --- the server -------------------------------------------------------------


class Refused(Exception):
    """A request the file server will not answer with a file.

    ``status`` is the HTTP status to send (403, 404).
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class FileServer:
    """An HTTP app serving the regular files under ``root``, read-only.

    Also counts what it served; the counters are guarded by ``_lock``, as
    the app runs on every worker thread.
    """

    def __init__(self, root: str) -> None:
        self.root = os.fsencode(os.path.realpath(root))
        self._lock = threading.Lock()
        self.requests = 0
        self.peers: set[tuple] = set()

    async def app(self, request: http.Request) -> http.Response:
        """Answer GET or HEAD of ``/REL/PATH`` with the file's bytes."""
        with self._lock:
            self.requests += 1
            self.peers.add(request.client)
        if request.method not in ("GET", "HEAD"):
            return http.Response(405, {"allow": "GET, HEAD"}, "use GET\n")
        try:
            rel = request_path(request.target)
            body = await curcor.to_thread(self.open, rel)
        except Refused as exc:
            return http.Response(exc.status, body=f"{exc}\n")
        headers = {"content-type": "application/octet-stream"}
        if isinstance(body, int):
            return http.Response(200, headers, self._stream(rel))
        return http.Response(200, headers, body)

    def open(self, rel: bytes) -> bytes | int:
        """On a thread: the whole file if it is small, else its size.

        Raises:
            Refused: 403 outside the root, 404 missing or not a regular file.
        """
        path = self.resolve(rel)
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError as err:
            raise Refused(404, f"cannot open it ({err.strerror})") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise Refused(404, "not a regular file")
            if info.st_size > WHOLE_FILE:
                return info.st_size
            return _read_all(fd)
        finally:
            os.close(fd)

    def resolve(self, rel: bytes) -> bytes:
        """On a thread: the real path of ``rel``, which must be in the root.

        Raises:
            Refused: 403 when a symlink leads out of the root.
        """
        real = os.path.realpath(os.path.join(self.root, rel))
        if real != self.root and not real.startswith(self.root + os.sep.encode()):
            raise Refused(403, "outside the served tree")
        return real

    async def _stream(self, rel: bytes) -> AsyncIterator[bytes]:
        """The file in CHUNK-byte reads, each on the thread pool.

        A file that vanished since ``open`` ends the body early; the server
        then closes the connection without the last chunk, which the client
        sees as an incomplete body.
        """
        path = await curcor.to_thread(self.resolve, rel)
        fd = await curcor.to_thread(os.open, path, _OPEN_FLAGS)
        try:
            while chunk := await curcor.to_thread(os.read, fd, CHUNK):
                yield chunk
        finally:
            os.close(fd)


def request_path(target: str) -> bytes:
    """The relative file path named by a request target, as bytes.

    The path is percent-decoded to bytes, not text, so a file name that is
    not UTF-8 survives the round trip. Empty segments are dropped.

    Raises:
        Refused: 403 for a ``..`` segment, 404 for a NUL byte or no path.
    """
    raw = target.partition("?")[0]
    if "://" in raw:
        raw = urllib.parse.urlsplit(raw).path
    segments = [s for s in urllib.parse.unquote_to_bytes(raw).split(b"/") if s]
    if b".." in segments:
        raise Refused(403, "a path with '..' is refused")
    if not segments or any(b"\0" in s for s in segments):
        raise Refused(404, "no such file")
    return b"/".join(segments)


def _read_all(fd: int) -> bytes:
    """Read ``fd`` to its end."""
    parts = []
    while chunk := os.read(fd, CHUNK):
        parts.append(chunk)
    return b"".join(parts)


# --- the client ---------------------------------------------------------------


@dataclass
class Report:
    """What the mirror run found; ``problems`` are one-line messages."""

    root: str
    conns: int
    files: int = 0
    bytes: int = 0
    matched: int = 0
    mismatches: int = 0
    errors: int = 0
    requests_served: int = 0
    connections: int = 0
    elapsed_s: float = 0.0
    mb_per_s: float = 0.0
    requests_per_s: float = 0.0
    runtime: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class Tally:
    """The fetchers' results; ``add`` is called from any worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.files = self.bytes = self.matched = 0
        self.mismatches = self.errors = 0
        self.problems: list[str] = []

    def add(self, size: int, outcome: str, problem: str | None = None) -> None:
        """Count one file: ``outcome`` is matched, mismatch or error."""
        with self._lock:
            self.files += 1
            self.bytes += size
            if outcome == "matched":
                self.matched += 1
            elif outcome == "mismatch":
                self.mismatches += 1
            else:
                self.errors += 1
            if problem is not None:
                self.problems.append(problem)


def list_dir(path: str, skip: frozenset[str]) -> tuple[list[str], list[str]]:
    """On a thread: the regular files and the subdirectories of ``path``.

    Symlinks, special files and directories named in ``skip`` are left out;
    an unreadable directory counts as empty.
    """
    files: list[str] = []
    dirs: list[str] = []
    try:
        with os.scandir(path) as it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name not in skip:
                            dirs.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        files.append(entry.path)
                except OSError:
                    pass  # it vanished while being looked at
    except OSError:
        pass
    return files, dirs


def file_sha256(path: str) -> str:
    """On a thread: the SHA-256 of the file at ``path``, read in chunks."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_BATCH):
            sha.update(chunk)
    return sha.hexdigest()


def _finish(sha: hashlib._Hash, tail: bytes, path: str) -> tuple[str, str]:
    """On a thread: (digest of what came back, digest of the file on disk)."""
    sha.update(tail)
    return sha.hexdigest(), file_sha256(path)


def url_path(root: str, path: str) -> str:
    """The URL path for ``path``: its bytes below ``root``, percent-quoted."""
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    return "/" + urllib.parse.quote(os.fsencode(rel))


async def fetch_all(root: str, skip: frozenset[str], conns: int, port: int) -> Tally:
    """Fetch and check every file under ``root`` from the server on ``port``."""
    tally = Tally()
    paths = curcor.Channel(4 * conns)
    client = http.Client(
        f"http://{HOST}:{port}", max_idle_per_host=conns, max_body_bytes=1 << 62
    )
    async with client, curcor.TaskGroup() as tg:
        tg.go(_walk(root, skip, paths), name="mirror.walk")
        for i in range(conns):
            tg.go(_fetcher(client, root, paths, tally), name=f"mirror.fetch-{i}")
    return tally


async def _walk(root: str, skip: frozenset[str], paths: curcor.Channel) -> None:
    """List the tree a directory per thread call; send files down ``paths``."""
    try:
        stack = [root]
        while stack:
            files, dirs = await curcor.to_thread(list_dir, stack.pop(), skip)
            stack.extend(reversed(dirs))
            for path in files:
                await paths.send(path)
    finally:
        paths.close()


async def _fetcher(
    client: http.Client, root: str, paths: curcor.Channel, tally: Tally
) -> None:
    """Fetch files from ``paths`` one at a time and count each outcome."""
    async for path in paths:
        try:
            size, outcome, problem = await fetch_one(client, root, path)
        except (OSError, http.HTTPError) as exc:
            size, outcome = 0, "error"
            problem = f"mirror: {printable(path)}: {exc or type(exc).__name__}"
        tally.add(size, outcome, problem)


async def fetch_one(
    client: http.Client, root: str, path: str
) -> tuple[int, str, str | None]:
    """Fetch ``path`` and compare it: (bytes received, outcome, problem).

    Raises:
        OSError, http.HTTPError: the request failed.
    """
    response = await client.get(url_path(root, path), stream=True)
    if response.status != 200:
        await response.aclose()
        problem = f"mirror: {printable(path)}: HTTP {response.status}"
        return 0, "error", problem

    # The body into SHA-256, a batch per thread call.
    sha = hashlib.sha256()
    batch = bytearray()
    size = 0
    async for chunk in response.stream():
        size += len(chunk)
        batch += chunk
        if len(batch) >= HASH_BATCH:
            await curcor.to_thread(sha.update, bytes(batch))
            batch.clear()

    # The last batch, and the file on disk to compare with.
    try:
        got, want = await curcor.to_thread(_finish, sha, bytes(batch), path)
    except OSError as err:
        reason = err.strerror or str(err)
        return size, "error", f"mirror: {printable(path)}: cannot read it ({reason})"
    if got != want:
        problem = f"mirror: {printable(path)}: sha256 {got[:12]} != {want[:12]}"
        return size, "mismatch", problem
    return size, "matched", None


# --- the whole run --------------------------------------------------------------


async def mirror(root: str, skip: frozenset[str], conns: int) -> Report:
    """Serve ``root`` and fetch it back over ``conns`` connections.

    Must run on the curcor runtime: ``curcor.run(mirror(root, skip, 8))``.
    """
    server = FileServer(root)
    serve = functools.partial(http.serve_http, server.app, HOST, 0)
    async with curcor.TaskGroup() as tg:
        port = await tg.start(serve, name="mirror.server")
        start = time.perf_counter()
        tally = await fetch_all(root, skip, conns, port)
        elapsed = time.perf_counter() - start
        tg.cancel_scope.cancel()  # the client is done: shut the server down
    return build_report(root, conns, tally, server, elapsed)


def build_report(
    root: str, conns: int, tally: Tally, server: FileServer, elapsed: float
) -> Report:
    """The report of a finished run."""
    return Report(
        root=root,
        conns=conns,
        files=tally.files,
        bytes=tally.bytes,
        matched=tally.matched,
        mismatches=tally.mismatches,
        errors=tally.errors,
        requests_served=server.requests,
        connections=len(server.peers),
        elapsed_s=elapsed,
        mb_per_s=tally.bytes / 1e6 / elapsed if elapsed else 0.0,
        requests_per_s=tally.files / elapsed if elapsed else 0.0,
        runtime=runtime_figures(),
        problems=sorted(tally.problems),
    )


def runtime_figures() -> dict:
    """The figures of ``curcor.stats()`` that this runtime provides."""
    stats = curcor.stats()
    figures = {name: getattr(stats, name, None) for name in RUNTIME_FIGURES}
    return {k: v for k, v in figures.items() if v is not None}


# --- formatting ---------------------------------------------------------------


def format_report(rep: Report) -> str:
    """The report as text for a person."""
    shown = ", ".join(f"{k} {number(v)}" for k, v in rep.runtime.items())
    lines = [
        f"mirror: {printable(rep.root)} over {rep.conns} connections",
        "",
        f"files:       {rep.files:,} ({rep.bytes:,} bytes)",
        f"checked:     {rep.matched:,} matched, {rep.mismatches} mismatches, "
        f"{rep.errors} errors",
        f"server:      {rep.requests_served:,} requests on "
        f"{rep.connections} connections",
        f"time:        {rep.elapsed_s:.2f} s, {rep.mb_per_s:.1f} MB/s, "
        f"{rep.requests_per_s:,.0f} requests/s",
    ]
    if shown:
        lines.append(f"runtime:     {shown}")
    return "\n".join(lines)


def emit(args: argparse.Namespace, rep: Report) -> None:
    """Print the problems on stderr, then the report (text or JSON)."""
    for line in rep.problems[:PROBLEMS_SHOWN]:
        print(line, file=sys.stderr)
    if len(rep.problems) > PROBLEMS_SHOWN:
        more = len(rep.problems) - PROBLEMS_SHOWN
        print(f"mirror: ... and {more} more problems", file=sys.stderr)
    if args.json:
        print(json.dumps(asdict(rep), indent=2))
    else:
        print(format_report(rep))


# --- command line -------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse mirror's command line."""
    parser = argparse.ArgumentParser(prog="mirror", description=__doc__.splitlines()[0])
    parser.add_argument(
        "root", nargs="?", help="directory to serve and fetch (default: the stdlib)"
    )
    parser.add_argument(
        "--conns",
        type=positive,
        default=DEFAULT_CONNS,
        metavar="N",
        help=f"client connections (default {DEFAULT_CONNS})",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    """Mirror the tree on the curcor runtime; print the report; the status."""
    args = parse_args(argv)
    root, skip = resolve_root(args, "mirror", "mirror")
    rep = await mirror(root, skip, args.conns)
    emit(args, rep)
    return 0 if rep.files == rep.matched else 1


def cli(argv: list[str] | None = None) -> int:
    """Entry point: a bad root never boots the runtime."""
    resolve_root(parse_args(argv), "mirror", "mirror")
    try:
        return curcor.run(main(argv))
    except BrokenPipeError:  # stdout closed early, as by `| head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))

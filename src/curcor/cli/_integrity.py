"""Installed distributions checked against the hashes of their RECORD, for
``curcor doctor``.

A wheel's ``RECORD`` lists every installed file with the urlsafe base64
sha256 of its content (no padding) and its size; entries without a hash
(``RECORD`` itself, ``.pyc`` files written later) are skipped. A file
whose size or hash differs was changed after installation; one that is
gone was deleted.

Hashing is serial: on the two-CPU machine where this was measured, a
thread pool (2, 4 or 8 threads, per distribution or per file) was no
faster than one thread for 40 distributions and 283 MB (0.5 to 0.8 s
either way), since most of the time goes to reading and hashing under
the GIL. A time budget bounds the check instead; curcor and its
requirements come first, so they are always among the distributions
checked.
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from importlib.metadata import Distribution

__all__ = ["Verdict", "digest", "entries", "name_of", "ordered", "verify"]

# A requirement's project name: letters, digits, ".", "_" and "-" (PEP 508).
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def name_of(dist: Distribution) -> str:
    """The project name of a distribution, "?" when its METADATA lacks one."""
    return dist.metadata["Name"] or "?"


def _normal(name: str) -> str:
    """A project name normalized as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def ordered(dists: Iterable[Distribution], first: str = "curcor") -> list:
    """The distributions with ``first`` and what it requires (transitively,
    extras left out) at the front, the others after in their own order."""
    dists = list(dists)
    by_name: dict[str, list] = {}
    for dist in dists:
        by_name.setdefault(_normal(name_of(dist)), []).append(dist)

    # Walk the requirements from ``first``, skipping those of extras.
    wanted, todo = [], [_normal(first)]
    while todo:
        name = todo.pop(0)
        if name in wanted or name not in by_name:
            continue
        wanted.append(name)
        for requirement in by_name[name][0].requires or ():
            marker = requirement.partition(";")[2]
            match = _NAME.match(requirement)
            if match and "extra" not in marker:
                todo.append(_normal(match.group()))

    front = [dist for name in wanted for dist in by_name[name]]
    return front + [dist for dist in dists if dist not in front]


def entries(dist: Distribution) -> list[tuple[str, str, int | None]]:
    """(path, sha256 digest, size) of each hashed file of a RECORD."""
    import csv

    found = []
    text = dist.read_text("RECORD") or ""
    for row in csv.reader(text.splitlines()):
        if len(row) < 2 or not row[1].startswith("sha256="):
            continue
        size = int(row[2]) if len(row) > 2 and row[2].isdigit() else None
        found.append((row[0], row[1][len("sha256=") :], size))
    return found


def digest(path: str) -> str:
    """The urlsafe base64 sha256 of a file without padding, as RECORD has it.

    Raises:
        OSError: the file cannot be read.
    """
    import base64
    import hashlib

    with open(path, "rb") as file:
        raw = hashlib.file_digest(file, "sha256").digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _problem(path: str, expected: str, size: int | None) -> str | None:
    """What is wrong with one installed file, or None when it matches."""
    try:
        if size is not None and os.stat(path).st_size != size:
            return "changed"
        actual = digest(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return None if actual == expected else "changed"


class Verdict:
    """The outcome of checking one distribution: files checked, the problems
    found (``"pkg/a.py changed"``), and whether the deadline cut it short."""

    __slots__ = ("checked", "complete", "problems")

    def __init__(self) -> None:
        self.checked = 0
        self.problems: list[str] = []
        self.complete = True


def verify(dist: Distribution, deadline: float, clock: Callable[[], float]) -> Verdict:
    """Check each hashed file of ``dist`` until done or ``clock()`` passes
    ``deadline``."""
    verdict = Verdict()
    for relative, expected, size in entries(dist):
        if clock() > deadline:
            verdict.complete = False
            break
        verdict.checked += 1
        problem = _problem(str(dist.locate_file(relative)), expected, size)
        if problem is not None:
            verdict.problems.append(f"{relative} {problem}")
    return verdict

"""Suite-wide guards: no test may leave a thread running behind it."""

from __future__ import annotations

import threading
import time

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves a thread running (runtime workers included)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while True:
        extra = [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and not t.name.startswith("pytest")
        ]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not extra, f"test leaked threads: {[t.name for t in extra]}"

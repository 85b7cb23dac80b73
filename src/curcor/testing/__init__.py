"""Deterministic testing helpers: a fake clock, the all-blocked barrier.

``FakeClock`` stands still until every task is blocked, then jumps to the
next deadline, so timing tests run instantly and the same way every time.
``wait_all_tasks_blocked()`` returns once every other task is blocked. The
pytest plugin (``curcor.testing.plugin``) runs ``async def`` tests with both.
"""

from __future__ import annotations

from .._core.testing import wait_all_tasks_blocked
from .._core.timers import Clock, FakeClock

__all__ = ["Clock", "FakeClock", "wait_all_tasks_blocked"]

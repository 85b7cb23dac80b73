"""The GC governor: young collections follow what they actually reclaim (R-MEM).

The problem
-----------
CPython starts a young (generation-0) collection after 700 net allocations
of container objects. A burst of spawns allocates a coroutine and a task
record per task and keeps them all alive, so each young collection scans
hundreds of objects and frees none, every survivor is scanned again by the
middle generation, and the full collections that follow scan the whole heap
(asyncio at 1M tasks: 7 s in GC, one pause of 1.2 s).

The rule
--------
After every young or middle collection (generation 0 or 1), ``Governor``
looks at the callback's ``collected`` count against the threshold that
started the collection:

1. It reclaimed less than 1 in ``LOW_YIELD`` (1%): a burst is building live
   objects, collecting more often only rescans them. The generation-0
   threshold doubles, up to ``CEILING``.
2. Otherwise the program is making cyclic garbage: the threshold goes back
   to its floor at once (``runtime.GOVERNED_GEN0``), which is "normal".

The generation-1 threshold (young collections per middle one) is left as
it was: a burst of N live objects (about two per task) then costs about
N / ``CEILING`` young collections, and no middle one until ten have run.

Full collections (generation 2, also what a bare ``gc.collect()`` runs) say
nothing about young objects and leave the thresholds alone.

Why these bounds
----------------
- The floor is the fixed threshold this governor replaces (measured: past
  50,000 the wall time of spawn 1M stopped improving).
- ``CEILING`` bounds memory and pauses: between two young collections at
  most ``CEILING`` new container objects wait to be examined, so unreachable
  cycles made after a burst can pin at most that many objects (spawn 1M's
  average about 190 bytes: about 75 MB) until the next collection, which
  then finds them and restores the floor (rule 2). A young collection of
  ``CEILING`` objects measured 55 ms (90 ms on a busy machine).
- A middle collection scans up to 11 young generations' worth of objects,
  so past about 4M objects in one burst (2M tasks) one pause of about
  1.2 s follows (measured at 2.5M tasks; docs/gc.md, "Known limit").
  Shrinking generation 1's threshold as generation 0's grows was tried and
  rejected: survivors were then scanned twice, and at 1M tasks the middle
  pauses (0.2 s) exceeded the young ones they replaced.
- When a burst ends its records and coroutines are freed by reference
  counting, which lowers the young count, so a raised threshold costs
  nothing until allocation resumes; the first collection that then finds
  garbage restores the floor.

The governor does no timing itself: pauses are measured by the runtime's
``gc.callbacks`` hook and passed in, and the decisions depend only on the
sequence of ``(generation, collected)`` it is fed, so tests drive it with
made-up callback infos. Lock rule: none. The interpreter runs one collection
at a time and calls the callbacks from the collecting thread, so calls never
overlap; ``snapshot`` readers see plain integers and floats.
"""

from __future__ import annotations

import gc

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any

# Highest generation-0 threshold. Chosen by measurement (spawn 1M, see
# docs/gc.md): a young collection of this many objects took about 55 ms.
CEILING = 400_000

# A collection reclaiming fewer than threshold // LOW_YIELD objects counts as
# part of a burst (rule 1). Arbitrary: 1%; a burst measures 0 collected.
LOW_YIELD = 100


class Governor:
    """The thresholds and GC figures of one runtime (see the rule above).

    ``adaptive`` False (``gc = "default"`` or ``"off"``) only counts: the
    thresholds are never touched. ``set_threshold`` is ``gc.set_threshold``
    unless a test passes a recorder.
    """

    __slots__ = (
        "adaptive",
        "adjustments",
        "by_generation",
        "ceiling",
        "collected",
        "floor",
        "middle",
        "pause_max",
        "pause_total",
        "set_threshold",
        "threshold",
        "top",
    )

    def __init__(
        self,
        adaptive: bool,
        thresholds: tuple[int, int, int],
        floor: int,
        ceiling: int = CEILING,
        set_threshold: Any = gc.set_threshold,
    ) -> None:
        self.adaptive = adaptive
        self.floor = max(thresholds[0], floor) if adaptive else thresholds[0]
        self.ceiling = max(ceiling, self.floor)
        self.threshold = self.floor  # generation 0's threshold now
        self.middle = thresholds[1]  # generation 1's threshold
        self.top = thresholds[2]
        self.set_threshold = set_threshold
        self.adjustments = 0  # times the thresholds were changed
        self.by_generation = [0, 0, 0]  # collections of each generation
        self.collected = 0  # objects the collections reclaimed
        self.pause_total = 0.0
        self.pause_max = 0.0

    def start(self) -> None:
        """Put the floor in force (governed mode); called at boot."""
        if self.adaptive:
            self.set_threshold(self.threshold, self.middle, self.top)

    def collection(self, generation: int, collected: int, pause: float) -> None:
        """A collection of ``generation`` ended, freeing ``collected`` objects.

        ``pause`` is its duration in seconds (from the "start" callback to
        the "stop" one).
        """
        self.by_generation[min(generation, 2)] += 1
        self.collected += collected
        self.pause_total += pause
        if pause > self.pause_max:
            self.pause_max = pause
        if not self.adaptive or generation >= 2:
            return

        # Rule 1: a burst; rule 2: garbage again, back to the floor.
        if collected * LOW_YIELD < self.threshold:
            new = min(self.threshold * 2, self.ceiling)
        else:
            new = self.floor
        if new != self.threshold:
            self._apply(new)

    def _apply(self, threshold: int) -> None:
        """Put generation 0's new threshold in force."""
        self.threshold = threshold
        self.adjustments += 1
        self.set_threshold(threshold, self.middle, self.top)

    @property
    def collections(self) -> int:
        """Collections of every generation."""
        return sum(self.by_generation)


__all__ = ["CEILING", "LOW_YIELD", "Governor"]

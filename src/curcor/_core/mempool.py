"""The buffer pool: reusable receive buffers in size classes (R-MEM).

``BufferPool(capacity)`` hands out ``bytearray`` buffers rounded up to a
power-of-two size class between ``MIN_CLASS`` and ``MAX_CLASS``. A returned
buffer goes back to its class's free list and serves the next request of
that size (a hit). A request that finds no free buffer allocates a new one
while the pool's bytes stay within ``capacity`` (a miss that grows the
pool); beyond capacity, or above ``MAX_CLASS``, it falls back to a plain
heap buffer that is never pooled (a miss too).
"""

from __future__ import annotations

import threading

# Size classes: 4 KiB .. 1 MiB, powers of two. Arbitrary; no measurement yet.
MIN_CLASS = 4 * 1024
MAX_CLASS = 1024 * 1024


def size_class(size: int) -> int:
    """The class a request of ``size`` bytes is served from."""
    cls = MIN_CLASS
    while cls < size:
        cls <<= 1
    return cls


class BufferPool:
    """Reusable buffers in size classes, bounded by ``capacity`` bytes.

    Lock rule: ``_free``, ``pooled`` and the counters are guarded by
    ``_lock``; buffers are filled and read outside it.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._free: dict[int, list[bytearray]] = {}
        # The pool's own buffers by id(); holding them keeps ids unique.
        self._owned: dict[int, bytearray] = {}
        self.pooled = 0  # bytes the pool owns (free or lent out)
        self.lent = 0  # bytes lent out now
        self.hits = 0
        self.misses = 0

    def get(self, size: int) -> bytearray:
        """A buffer of at least ``size`` bytes; give it back with ``put``."""
        cls = size_class(size)
        with self._lock:
            free = self._free.get(cls)
            if free:
                self.hits += 1
                self.lent += cls
                return free.pop()
            self.misses += 1
            if cls > MAX_CLASS or self.pooled + cls > self.capacity:
                return bytearray(size)  # the heap fallback, never pooled
            self.pooled += cls
            self.lent += cls
            buf = bytearray(cls)
            self._owned[id(buf)] = buf
            return buf

    def put(self, buf: bytearray) -> None:
        """Give a buffer back; heap-fallback buffers are simply dropped."""
        with self._lock:
            if id(buf) not in self._owned:
                return
            cls = len(buf)
            self.lent -= cls
            self._free.setdefault(cls, []).append(buf)

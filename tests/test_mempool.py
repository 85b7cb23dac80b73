"""The buffer pool: size classes, reuse, the capacity bound, statistics."""

from __future__ import annotations

import socket as stdsocket

import pytest

import curcor
from curcor import net
from curcor._core.mempool import MAX_CLASS, MIN_CLASS, BufferPool, size_class
from curcor.config import load_config


def test_requests_round_up_to_power_of_two_classes():
    assert size_class(1) == MIN_CLASS
    assert size_class(MIN_CLASS + 1) == 2 * MIN_CLASS
    assert size_class(65536) == 65536


def test_a_returned_buffer_serves_the_next_request_of_its_class():
    pool = BufferPool(1 << 20)
    first = pool.get(5000)
    pool.put(first)
    again = pool.get(6000)
    assert again is first
    assert (pool.hits, pool.misses) == (1, 1)


def test_beyond_capacity_requests_fall_back_to_the_heap_and_count_a_miss():
    pool = BufferPool(2 * MIN_CLASS)
    a, b, c = pool.get(MIN_CLASS), pool.get(MIN_CLASS), pool.get(MIN_CLASS)
    assert pool.pooled == 2 * MIN_CLASS  # never above capacity
    assert pool.misses == 3
    for buf in (a, b, c):
        pool.put(buf)
    assert pool.lent == 0
    assert pool.get(MIN_CLASS) in (a, b)  # c was a heap buffer: not kept
    assert len(pool.get(MAX_CLASS * 2)) == MAX_CLASS * 2  # too big to pool


@pytest.mark.curcor(clock="real")
async def test_streams_read_through_the_pool_and_stats_show_it():
    a, b = stdsocket.socketpair()
    stream = net.Stream(net.Socket(a))
    for i in range(20):
        b.sendall(b"line %d\n" % i)
        assert await stream.read_until(b"\n") == b"line %d\n" % i
    stats = curcor.stats()
    assert stats.pool_hits >= 19
    assert stats.pool_bytes_lent == 0
    assert 0 < stats.pool_bytes <= 64 * 1024 * 1024
    stream.close()
    b.close()


def test_mempool_size_bounds_the_runtime_pool():
    async def main():
        w = curcor._core.scheduler.current_worker()
        return w.sched.mempool.capacity

    config = load_config(env={}, flags={"mempool_size": "1MB"})
    assert curcor.run(main(), config=config) == 1024 * 1024

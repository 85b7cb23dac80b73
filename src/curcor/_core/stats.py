"""The shape of ``curcor.stats()``: documented fields, only ever added to."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WorkerStats:
    """One worker's counters since boot."""

    index: int = 0
    steps: int = 0  # task steps run
    steals: int = 0  # successful steals from other workers
    handoffs: int = 0  # queues handed to others by sysmon (preemption)
    standdowns: int = 0  # times it gave its queue to another worker and parked
    parks: int = 0  # times it went idle
    queued: int = 0  # tasks in its run queue now
    stuck: bool = False  # now: sysmon found its current step over preempt_ms


@dataclass(frozen=True)
class Stats:
    """A snapshot of the runtime's figures (``curcor.stats()``).

    Fields are never renamed or removed; later releases only add fields.
    Times are seconds; counts are since boot unless they say "now".
    """

    maxprocs: int = 0  # worker threads
    backend: str = ""  # the poller backend in use
    uptime: float = 0.0
    tasks_live: int = 0  # now: started and not finished
    tasks_runnable: int = 0  # now: queued to run
    tasks_blocked: int = 0  # now: waiting on a channel, timer, lock, thread...
    tasks_spawned: int = 0
    tasks_finished: int = 0
    steps: int = 0  # task steps across all workers
    workers: tuple[WorkerStats, ...] = field(default_factory=tuple)
    timers_pending: int = 0  # now, including ones cancelled but not yet purged
    timers_fired: int = 0
    netpoll_waits: int = 0  # times an idle worker blocked in the poller
    stuck_steps: int = 0  # steps sysmon found over preempt_ms (preemptions)
    # ((file, line), count) for each place a stuck step was found, sorted
    stuck_sites: tuple[tuple[tuple[str, int], int], ...] = ()
    spare_workers: int = 0  # now: spare workers running (every worker stuck)
    spare_workers_started: int = 0
    spare_workers_max: int = 0  # the bound (spare_workers_max)
    thread_calls_in_flight: int = 0  # now: to_thread calls running
    pool_hits: int = 0  # buffer pool: requests served by a reused buffer
    pool_misses: int = 0  # requests that needed a new (or heap) buffer
    gc_collections: int = 0  # while the runtime ran
    gc_pause_total: float = 0.0
    gc_pause_max: float = 0.0
    pool_bytes: int = 0  # now: bytes the buffer pool owns (<= mempool_size)
    pool_bytes_lent: int = 0  # now: of those, lent out to readers
    pool_capacity: int = 0  # the buffer pool's cap in bytes (mempool_size)
    task_records_free: int = 0  # now: finished task records kept for reuse
    task_record_hits: int = 0  # spawns by tasks that reused a kept record
    task_record_misses: int = 0  # spawns by tasks that made a new record
    gc_mode: str = ""  # the gc key: governed, default or off
    gc_collections_by_generation: tuple[int, ...] = (0, 0, 0)  # young first
    gc_collected: int = 0  # objects the collections reclaimed
    gc_threshold0: int = 0  # now: generation 0's threshold (the governor's)
    gc_threshold1: int = 0  # now: young collections per generation-1 one
    gc_adjustments: int = 0  # times the governor changed the thresholds
    tasks_running: int = 0  # now: in a step on a worker (the caller included)

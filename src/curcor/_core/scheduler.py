"""The M:N scheduler: tasks on worker threads, with run queues and parking.

Terms
-----
- task: a coroutine plus its record (``task.Task``); Go's goroutine.
- worker: an OS thread that steps tasks; Go's M bound to a P. There are
  ``maxprocs`` of them; the thread that called ``curcor.run`` is worker 0.
- step: one ``coro.send`` or ``coro.throw``, up to the task's next trap.
- trap: what a task yields to its worker: ``YIELD`` (requeue me), or the
  lock of the wait list it just joined (park me, then release this lock; a
  tuple of locks for ``select``). That pair is "the park trap".
- run queue: a worker's local ``deque`` of runnable tasks, plus its one-slot
  ``runnext`` for the task it just woke.
- global queue: where tasks woken from outside any worker (thread pool,
  ``from_thread``, signals) wait for a worker.
- steal: an idle worker takes half of another worker's run queue.
- park: an idle worker blocks on its own lock until woken.
- poller: the one idle worker that blocks in the netpoller (``poller.py``)
  with a timeout up to the next timer, instead of on its lock.
- sysmon: the monitor thread (``sysmon.py``): it notices a worker stuck in
  one step (a CPU hog, a blocking call), hands its queue to the others and,
  when every worker is stuck, starts a spare worker.
- stuck: a worker whose current step has run longer than ``preempt_ms``. It
  counts as neither running nor idle.
- spare: an extra worker sysmon starts while every worker is stuck; it
  retires once no worker is stuck and it finds no work.

The problem
-----------
Run up to millions of coroutines on a few threads with as little work per
step as pure Python allows, never lose a wake-up between threads, never spin
an idle CPU, and notice when nothing can ever run again (deadlock).

Designs rejected
----------------
- Futures with done-callbacks for every wait (asyncio): an object and a
  callback list per await, and a trip through the ready queue for every
  resumption. Here a wait is the task itself on a wait list.
- One global run queue behind a lock: every step would take the lock.
- Waking an idle worker for every new runnable task (Go's ``wakep``): under
  the GIL two workers running Python only contend for the interpreter, so
  on GIL builds extra workers stay parked while one makes progress and serve
  wake-ups from outside; ``spread`` turns eager waking on for free-threaded
  builds, where workers really run in parallel.

The design
----------
Each worker loops: take ``runnext``, else the head of its local queue, else
(the slow path, ``Worker._find_task``) the global queue, due timers, a steal
from another worker, and finally park. Every 64 steps it also looks at the
global queue, the signal queue and the timers, so work from outside cannot
starve behind a busy queue. A task woken by a task goes to the waker's
``runnext`` (ping-pong stays on one thread); after 64 runnext picks in a row
the loop sends runnext to the queue's tail and takes the head instead, so a
pair cannot starve others. ``sleep(0)`` awaits a shared awaitable
(``traps.YieldNow``) whose ``__await__`` is a C method, rather than a generator.

The wait protocol (how a task blocks and is woken; numbered as used)
----------------------------------------------------------------------
1. The task takes the lock of the object it waits on (a channel, a mutex,
   the timer heap), checks that it must wait, appends ``(task, seq)`` to the
   object's wait list where ``seq`` is ``task._wait_seq``, and sets
   ``task._waiting_on`` to the object.
2. It yields the lock itself (the park trap), still holding it. The worker
   releases the lock after the coroutine has suspended, so no other worker
   can resume the task while its frame is still executing.
3. A waker takes the same lock, pops an entry and checks ``seq`` against
   ``task._wait_seq``: if they differ the entry is stale (the wait already
   ended) and is skipped. Otherwise it ends the wait by bumping
   ``_wait_seq`` and clearing ``_waiting_on``, and, after releasing the lock,
   queues the task with the value to resume with.
4. Cancellation ends a wait the same way through ``_waiting_on._abort(task)``
   under the same lock, so exactly one of waker and canceller wins. Before
   it yields, the task re-reads its ``_cancel_pending`` (after publishing
   ``_waiting_on``): a cancel that ran in between either saw the wait and
   aborts it, or is seen here, and the task withdraws and raises.
5. A ``select`` waits on several channels at once: it holds all their locks
   (taken in ``id`` order) while it registers, and its entries are claimed
   under the task's stripe lock (``Scheduler.stripe``) instead, which every
   channel's waker takes while holding its own channel lock.

Lock order: cancel lock -> an object's lock -> a stripe lock -> the
scheduler lock -> the timer lock (a leaf: nothing is taken while it is
held). Nothing takes a lock to the left of one it holds. The record pool's
``free_lock`` is a leaf too, taken with no other lock held.

Preemption (sysmon.py has the details)
--------------------------------------
A step cannot be interrupted, so preemption is a hand-off: sysmon moves the
stuck worker's queue to the global queue and gets an idle worker (or a new
spare) to take it, and that worker takes over polling and timers too. For
that, every count below of "workers running tasks" leaves stuck workers out:
``total - len(idle) - stuck``.

Standing down
-------------
On GIL builds two workers running Python at once only take turns at the
interpreter, and each turn can land inside a critical section: the other
worker then blocks on that object's lock and the two trade the lock and
the GIL through futex calls (spawn 1M with one hand-off: 178,000 context
switches, 5.5 s instead of 2.9 s). So, once no worker is stuck, a worker
that sees at its 64-step check that another one runs tasks too gives its
queue to that one (``Scheduler.stand_down``, under the scheduler lock) and
parks. The receiving worker re-checks its own queue before it parks, so the
tasks cannot be stranded. Free-threaded builds keep every worker running.

Idle protocol
-------------
A worker that found nothing takes the scheduler lock, re-checks the global
queue, and adds itself to the idle set. The first idle worker becomes the
poller; the others park on their own lock. ``Scheduler.wake_one`` (called
with the scheduler lock held) releases a parked worker's lock or wakes the
poller through the poller's wakeup descriptor. When the last worker goes
idle, all tasks are blocked: the scheduler then wakes tasks waiting in
``wait_all_tasks_blocked``, or jumps a fake clock to the next timer, or
declares a deadlock when nothing (timer, thread work, I/O, a foreign
thread) can wake any task.
"""

from __future__ import annotations

import sys
import threading
from collections import deque

from .poller import make_poller
from .task import BLOCKED, DONE, FREE, RUNNABLE, RUNNING, Task, refcount_baseline
from .timers import CALL, Clock, Timers

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any

# The requeue trap a task yields to its worker (identity-compared). The park
# trap is the lock to release (or a tuple of them), see "The wait protocol".
# A small int, one object in CPython (its small-int cache), so that
# ``await YIELD_NOW`` can iterate ``range(YIELD, YIELD + 1)``: a range
# iterator is not tracked by the garbage collector, where a tuple iterator
# yielding a string would be (one more tracked object per task suspended in
# ``sleep(0)``: a third of spawn 1M's young objects). Arbitrary within the
# cache (-5..256); foreign frameworks yield None, futures or tuples.
YIELD = 199
_LockType = type(threading.Lock())


# Steps between looks at the global queue, signals and timers. Arbitrary;
# Go uses 61. A power of two keeps the check a mask.
TICK_MASK = 63

# Socket operations a worker completes without waiting before the task doing
# the next one yields (a cooperative budget, as in Tokio): a peer that always
# has bytes ready cannot keep one task running and starve the others, nor
# keep the poller from running. 32 kept 50 keep-alive HTTP connections
# within 20% of each other (128: 2x apart); Tokio uses 128.
IO_BUDGET = 32

# Hand-offs through runnext in a row before a woken task queues at the tail.
# Arbitrary; bounds how long a ping-pong pair can delay queued tasks.
RUNNEXT_STREAK_MAX = 64

# Records kept for reuse while tasks run: each worker's own free list holds
# up to FREE_LIST_MAX; when it is full, FREE_BATCH of them move to the
# scheduler's shared pool (up to FREE_POOL_BATCHES batches), where a worker
# whose list is empty takes a batch, as Go's Ps share a global list of
# finished goroutines. A task spawned on one worker and finished on another
# (spawn 1M after sysmon's hand-off: half of them) is then still reused.
# Beyond both caps a finished record is freed at once. Sizes arbitrary; one
# worker can keep FREE_RECORDS_MAX (64 Ki) records, about 9 MB.
FREE_LIST_MAX = 1 << 12
FREE_BATCH = 1 << 11
FREE_POOL_BATCHES = 30
FREE_RECORDS_MAX = FREE_LIST_MAX + FREE_POOL_BATCHES * FREE_BATCH

# Records a worker keeps when it goes idle: a burst's records do not stay
# pinned while the program waits. Arbitrary; a steady stream of up to this
# many tasks between idle moments allocates no records.
FREE_LIST_IDLE = 1 << 10

# Task ids a worker reserves at a time, so spawning rarely takes the id lock.
ID_BLOCK = 4096

# Longest single poll, in seconds; a farther deadline just polls again.
# epoll takes at most INT_MAX milliseconds (about 24.8 days).
MAX_POLL_TIMEOUT = 86400.0

# Name prefixes of threads that never call into the runtime, so they cannot
# prevent a deadlock from being declared: pytest-timeout's watchdog timer.
WATCHDOG_THREADS: tuple[str, ...] = ("pytest_timeout",)

# Stripe locks guarding join lists and select claims. Arbitrary power of two.
STRIPES = 64

_REFS_UNSHARED = refcount_baseline()
_REFS_LOCAL = refcount_baseline(local=True)
# The loop recycles unshared records itself only where its own count is
# known: in the interpreter a call adds a reference, so the loop sees one
# fewer than ``_finish`` does. A compiled build (mypyc) passes arguments
# borrowed and may hold temporaries the probe cannot see (measured: the
# loop sees 2 where both probes see 1), so there ``_finish`` decides.
_RECYCLE_IN_LOOP = _REFS_LOCAL < _REFS_UNSHARED
_getrefcount = sys.getrefcount

# The worker the current thread runs, if any. Read on the hot path of every
# API call to find the current task.
_tls = threading.local()


def current_worker() -> Worker | None:
    """The worker running on this thread, or None outside the runtime."""
    return getattr(_tls, "worker", None)


class Worker:
    """One OS thread stepping tasks (see "Terms" above)."""

    # Slots: the loop reads these at every step, and a slot read is the
    # interpreter's fastest attribute access (an instance dict past 30 keys
    # stops sharing its keys, and every read becomes a dict lookup).
    __slots__ = (
        "base",
        "current",
        "finished",
        "free",
        "handoffs",
        "id_end",
        "id_next",
        "ident",
        "ids_taken",
        "index",
        "io_budget",
        "local",
        "native_id",
        "park_lock",
        "parks",
        "record_misses",
        "retired",
        "rng",
        "runnext",
        "sched",
        "spare",
        "spawn_hooks",
        "spawned_extra",
        "spread",
        "standdowns",
        "steals",
        "step_started",
        "steps",
        "stuck",
        "thread",
    )

    def __init__(self, sched: Scheduler, index: int) -> None:
        self.sched = sched
        self.index = index
        # Lock rule: ``local`` is appended and popped at the left by its
        # owner only; thieves popleft too. Each deque operation is atomic
        # (documented thread-safe, also on free-threaded builds), so no lock.
        self.local: deque[Task] = deque()
        # Owner-only: runnext, current, free and the counters. ``steps`` is
        # written at every step (sysmon reads it to tell a long step).
        self.runnext: Task | None = None
        self.current: Task | None = None
        self.free: list[Task] = []
        self.steps = 0
        self.steals = 0
        self.parks = 0
        self.handoffs = 0
        self.standdowns = 0  # times it gave its queue to another and parked
        self.ids_taken = 0  # ids in the blocks it reserved (see ``spawned``)
        self.spawned_extra = 0  # spawns that used no id of its blocks (main)
        self.finished = 0
        self.record_misses = 0  # spawns that made a new record
        self.step_started = 0.0  # for sysmon: when the running step began
        self.io_budget = IO_BUDGET  # see IO_BUDGET; spent by curcor.net
        # Written by sysmon with the scheduler lock held; see sysmon.py.
        self.stuck = False
        self.spare = False  # started by sysmon; retires when not needed
        self.retired = False
        self.ident = 0  # the thread's ident while it runs (stacks for sysmon)
        self.native_id = 0  # its kernel thread id (sysmon reads /proc)
        # Guarded by the scheduler lock: whether this worker is parked.
        self.park_lock = threading.Lock()
        self.park_lock.acquire()
        self.thread: threading.Thread | None = None
        self.id_next = 0  # owner-only: the next id of its reserved block
        self.id_end = 0
        self.base: Any = None  # owner-only: the shared empty context
        self.spread = sched.spread
        # Whether a spawn must look further (wake a thief, cancel a task born
        # while draining): one test on the hot path instead of two.
        self.spawn_hooks = sched.spread or sched.draining
        self.rng: Any = None  # a random.Random in shuffle mode (tests)

    # -- queueing -----------------------------------------------------------

    @property
    def spawned(self) -> int:
        """Tasks spawned on this worker: the ids it handed out (each spawn
        takes the next id of the worker's block), plus ``spawned_extra``.
        Derived rather than counted, to keep a store off every spawn."""
        return self.ids_taken - (self.id_end - self.id_next) + self.spawned_extra

    def spend_io(self) -> bool:
        """Spend one unit of the I/O budget; True when it ran out (and was
        refilled): the caller's task must yield before its operation."""
        self.io_budget -= 1
        if self.io_budget > 0:
            return False
        self.io_budget = IO_BUDGET
        return True

    def push_next(self, task: Task) -> None:
        """Owner only: make ``task`` run next (it was just woken here)."""
        task._state = RUNNABLE
        if self.rng is not None:
            self.local.append(task)
            return
        old = self.runnext
        self.runnext = task
        if old is not None:
            self.local.append(old)
        if self.sched.spread and self.sched.idle:
            self.sched.wake_for_steal()

    def new_record(self) -> Task:
        """Owner only, own free list empty: a batch of records from the
        shared pool (returning one of them), else a new record."""
        pool = self.sched.free_pool
        if pool:
            with self.sched.free_lock:
                batch = pool.pop() if pool else None
            if batch is not None:
                free = self.free
                free.extend(batch)
                return free.pop()
        self.record_misses += 1  # hits are spawned - record_misses
        return Task()

    def take_ids(self) -> int:
        """Owner only, its block of ids used up: reserve the next; its first."""
        tid = self.sched.id_block(ID_BLOCK)
        self.id_end = tid + ID_BLOCK
        self.ids_taken += ID_BLOCK
        return tid

    def spill(self) -> bool:
        """Owner only, own free list full: move a batch of it to the shared
        pool; False (nothing moved) when the pool is full too."""
        sched = self.sched
        free = self.free
        with sched.free_lock:
            if len(sched.free_pool) >= FREE_POOL_BATCHES:
                return False
            sched.free_pool.append(free[-FREE_BATCH:])
        del free[-FREE_BATCH:]
        return True

    def spawn(self, coro: Any, name: str | None, prepare: Any = None) -> Task:
        """Owner only: a new runnable task for ``coro`` on this run queue.

        ``prepare(task)``, if given, runs before the task is queued (a task
        group attaches its scope there, before any worker can run it).
        ``curcor.go`` inlines this (without ``prepare``): keep the two alike.
        """
        free = self.free
        task = free.pop() if free else self.new_record()
        task.coro = coro
        task._name = name
        tid = self.id_next
        if tid >= self.id_end:
            tid = self.take_ids()
        self.id_next = tid + 1
        task._id = tid

        # The child runs in a copy of the spawner's context, if it has one.
        parent = self.current
        if parent is not None and parent._ctx is not None:
            task._ctx = parent._ctx.copy()
        elif self.base:  # (a Context is true when it holds a variable)
            task._ctx = self.base.copy()
        if prepare is not None:
            prepare(task)
        task._state = RUNNABLE
        self.local.append(task)
        if self.spawn_hooks:
            self.spawn_hooks_run(task)
        return task

    def spawn_hooks_run(self, task: Task) -> None:
        """A spawn on a free-threaded build (wake an idle thief) or while
        draining (the task is born cancelled)."""
        sched = self.sched
        if self.spread and sched.idle:
            sched.wake_for_steal()
        if sched.draining:
            sched.late_spawn(task)

    # -- the loop -------------------------------------------------------------

    def run(self) -> None:
        """The worker's life: step tasks until the scheduler stops.

        Tasks without their own ``contextvars`` context run in a shared empty
        one; ``_loop`` returns when a task wrote to it, that context becomes
        the task's own, and the loop resumes in a fresh empty one.
        """
        import contextvars

        _tls.worker = self
        self.ident = threading.get_ident()
        self.native_id = threading.get_native_id()
        try:
            while not self.sched.stopping:
                base = self.base = contextvars.Context()
                if base.run(self._loop, base):
                    break
        finally:
            _tls.worker = None

    def _loop(self, base: Any) -> bool:
        """Step tasks; True when the scheduler stops, False to renew ``base``."""
        local = self.local
        popleft = local.popleft
        append = local.append
        sched = self.sched
        free = self.free
        streak = 0  # runnext hand-offs in a row
        steps = self.steps  # counted here, published at every step
        while True:
            # Stage 1: pick a task: runnext, the local queue, the slow path.
            # After RUNNEXT_STREAK_MAX hand-offs in a row, runnext waits its
            # turn at the tail, so a ping-pong pair cannot starve the queue.
            task = self.runnext
            if task is not None and streak < RUNNEXT_STREAK_MAX:
                self.runnext = None
                streak += 1
            else:
                if task is not None:
                    self.runnext = None
                    append(task)
                streak = 0
                try:
                    task = popleft()
                except IndexError:
                    task = self._find_task()
                    if task is None:
                        return True
            steps += 1
            self.steps = steps  # sysmon tells a long step by this not moving
            if not steps & TICK_MASK and sched.has_outside_work():
                self._tick(task)
                if sched.stopping:
                    return True  # tasks still queued are abandoned
                continue

            # Stage 2: step it.
            self.current = task
            task._state = RUNNING
            ctx = task._ctx
            try:
                exc = task._exc
                if exc is None:
                    value = task._value
                    task._value = None
                    if ctx is None:
                        trap = task.coro.send(value)
                    else:
                        trap = ctx.run(task.coro.send, value)
                else:
                    task._exc = None
                    if ctx is None:
                        trap = task.coro.throw(exc)
                    else:
                        trap = ctx.run(task.coro.throw, exc)
            except StopIteration as stop:
                # The common end, inlined: nobody else holds the record
                # (see _finish), so it goes back to the free list.
                self.current = None
                if not _RECYCLE_IN_LOOP:
                    self._finish(task, stop.value, None)
                elif _getrefcount(task) > _REFS_LOCAL or task._group is not None:
                    self._finish_shared(task, stop.value, None)
                elif sched.draining:
                    self._finish(task, stop.value, None)
                else:
                    self.finished += 1
                    if len(free) < FREE_LIST_MAX or (
                        len(sched.free_pool) < FREE_POOL_BATCHES and self.spill()
                    ):
                        task.coro = None
                        task._ctx = None
                        task._scope = None
                        task._cancel_pending = False
                        free.append(task)
                    # (else every list is full: the record is freed)
                task = None
            except BaseException as error:
                if type(error) is RuntimeError:
                    _explain_misuse(error)
                self._finish(task, None, error)
                task = None
            else:
                # Stage 3: act on the trap.
                if trap is YIELD:
                    task._state = RUNNABLE  # resumed with None (_value)
                    append(task)
                elif type(trap) is _LockType:
                    task._state = BLOCKED
                    trap.release()
                elif type(trap) is tuple:
                    task._state = BLOCKED
                    for lock in trap:
                        lock.release()
                else:
                    self._bad_trap(task, trap)

            # Stage 4: a context-less task wrote a context variable.
            if ctx is None and base:
                if task is not None and task._ctx is None:
                    task._ctx = base
                return False

    def _tick(self, task: Task) -> None:
        """Every 64 steps: requeue ``task`` behind outside work and take it;
        on GIL builds, stand down if another worker is running tasks too."""
        self.local.append(task)
        sched = self.sched
        sched.take_outside_work(self)
        if sched.surplus() and sched.stand_down(self):
            sched.idle_wait(self)

    def _bad_trap(self, task: Task, trap: Any) -> None:
        """A task yielded something that is not a curcor trap."""
        from .errors import RuntimeMisuse

        kind = type(trap)
        if hasattr(trap, "_asyncio_future_blocking") or "asyncio" in kind.__module__:
            msg = (
                f"task {task.name!r} awaited an asyncio object ({kind.__name__}) "
                "inside curcor; asyncio futures need an asyncio loop. Run the "
                "asyncio code in a thread: `await curcor.to_thread(asyncio.run, "
                "coro())`, or use curcor's own primitives"
            )
        else:
            msg = (
                f"task {task.name!r} yielded {trap!r}, which curcor cannot "
                "wait on; await only curcor primitives (sleep, Channel, "
                "select, sync, to_thread) inside curcor tasks"
            )
        task._exc = RuntimeMisuse(msg)
        task._state = RUNNABLE
        self.local.append(task)

    def _finish(self, task: Task, value: Any, exc: BaseException | None) -> None:
        """Record the outcome of ``task``, wake its joiners, recycle the record.

        (The loop does the common cases itself: it recycles an unshared
        record that ended without an error, and calls ``_finish_shared``
        for a shared one.)
        """
        self.current = None
        sched = self.sched

        # Nobody else holds the record: nobody can join it or read its
        # outcome; reuse it. (The main task is always shared: ``sched.main``.)
        if _getrefcount(task) <= _REFS_UNSHARED and task._group is None:
            self.finished += 1
            if exc is not None:
                sched.task_failed(task, exc, shared=False)
                task._value = None  # (a throw does not clear it)
            if sched.draining:
                task._state = DONE
                sched.task_ended(task)
                return
            if len(self.free) >= FREE_LIST_MAX and (
                len(sched.free_pool) >= FREE_POOL_BATCHES or not self.spill()
            ):
                return  # every list is full: the record is freed
            # Reset what the next spawn does not overwrite (``_exc`` is
            # None after any last step: the loop clears it first).
            task.coro = None
            task._ctx = None
            task._scope = None
            task._cancel_pending = False
            self.free.append(task)
            return
        self._finish_shared(task, value, exc)

    def _finish_shared(self, task: Task, value: Any, exc: Any) -> None:
        """``_finish`` of a record someone else holds: publish the outcome."""
        self.current = None
        self.finished += 1
        sched = self.sched

        # Publish DONE under the stripe lock and wake the joiners. A failed
        # task keeps the traceback it ended with in ``_value``: every join
        # re-raises the error with that one (take_result), so joins in a
        # loop do not grow it without end.
        task._value = value if exc is None else exc.__traceback__
        task._exc = exc
        stripe = sched._stripes[(id(task) >> 4) & (STRIPES - 1)]  # stripe()
        stripe.acquire()
        task._state = DONE
        joiners = task._joiners
        if joiners is None:  # nobody waits yet: the common case
            stripe.release()
            woken = False
        else:
            task._joiners = None
            woken = self._wake_joiners(task, joiners, stripe)
        group = task._group
        if group is not None:
            group._child_done(task, exc)
        elif exc is not None and not woken:
            sched.task_failed(task, exc, shared=True)
        if task is sched.main or sched.draining:
            sched.task_ended(task)

    def _wake_joiners(self, task: Task, joiners: list[Any], stripe: Any) -> bool:
        """Claim the live entries of ``joiners`` (``stripe`` held, released
        here) and queue their tasks; True if any was woken."""
        woken = []
        for waiter, seq in joiners:
            if waiter._wait_seq == seq and waiter._waiting_on is task:
                waiter._wait_seq = seq + 1
                waiter._waiting_on = None
                woken.append(waiter)
        stripe.release()
        # Joiners queue at the tail, not in runnext: a parent joining its
        # children one by one would otherwise run between every two of them
        # and park once per child; behind its queued siblings it finds them
        # done and parks once (spawn tree depth 6: 6 parks a node -> ~1).
        for waiter in woken:
            waiter._state = RUNNABLE
            self.local.append(waiter)
        if woken and self.spread and self.sched.idle:
            self.sched.wake_for_steal()
        return bool(woken)

    # -- the slow path --------------------------------------------------------

    def _find_task(self) -> Task | None:
        """Owner only, local queue empty: find work, or park; None = stop."""
        self.current = None  # hold no task while looking for work
        sched = self.sched
        while not sched.stopping:
            # Outside work: the global queue, signals, due timers.
            sched.take_outside_work(self)
            task = self._take_local()
            if task is not None:
                return task

            # Steal half of another worker's queue.
            if len(sched.workers) > 1:
                task = self._steal()
                if task is not None:
                    return task

            # A spare with nothing to do retires once no worker is stuck.
            if self.spare and sched.retire(self):
                return None

            # Nothing anywhere: park (or poll) until woken. A burst's records
            # beyond FREE_LIST_IDLE, and the shared pool's, go back to the
            # allocator first.
            if len(self.free) > FREE_LIST_IDLE:
                del self.free[FREE_LIST_IDLE:]
            if sched.free_pool:
                with sched.free_lock:
                    sched.free_pool.clear()
            sched.idle_wait(self)
            task = self._take_local()
            if task is not None:
                return task
        return None

    def _take_local(self) -> Task | None:
        task = self.runnext
        if task is not None:
            self.runnext = None
            return task
        try:
            return self.local.popleft()
        except IndexError:
            return None

    def _steal(self) -> Task | None:
        """Take the older half of the longest other run queue."""
        victim = None
        longest = 0
        for other in self.sched.workers:
            if other is not self and len(other.local) > longest:
                victim, longest = other, len(other.local)
        if victim is None:
            return None
        got: list[Task] = []
        for _ in range((longest + 1) // 2):
            try:
                got.append(victim.local.popleft())
            except IndexError:
                break
        if not got:
            return None
        self.steals += 1
        self.local.extend(got[1:])
        return got[0]


def _task_id(task: Task) -> int:
    return task._id


def _explain_misuse(error: RuntimeError) -> None:
    """Add a note to two of Python's errors that mean a misuse of curcor: a
    coroutine started twice, and asyncio called inside a curcor task."""
    if getattr(error, "__notes__", None):
        return
    text = str(error)
    if text == "cannot reuse already awaited coroutine":
        error.add_note(
            "curcor: this coroutine object was started twice; each go() or "
            "tg.go() needs a coroutine of its own: write go(work()) once per "
            "task, not go(c) twice with the same c = work()"
        )
    elif text == "no running event loop":
        error.add_note(
            "curcor: asyncio was called inside a curcor task, where no asyncio "
            "loop runs; use curcor's own primitives (curcor.sleep, "
            "curcor.timeout), or run the asyncio code in a thread: "
            "await curcor.to_thread(asyncio.run, coro())"
        )


def _no_hook(*args: Any, **kwargs: Any) -> None:
    """The default of a scheduler hook the runtime has not set."""


class Scheduler:
    """One runtime's workers, queues, timers and poller."""

    # Slots, as for Worker: 37 attributes would overflow a shared-key dict.
    __slots__ = (
        "_id_lock",
        "_next_id",
        "_stripes",
        "blocked_waiters",
        "cancel_lock",
        "clock",
        "deadlock",
        "draining",
        "free_lock",
        "free_pool",
        "gq",
        "idle",
        "late_spawn",
        "lock",
        "main",
        "mempool",
        "n",
        "on_all_blocked",
        "outside_spawned",
        "outside_work_hook",
        "poller",
        "poller_notified",
        "polling",
        "runtime_threads",
        "saved_switch",
        "seed",
        "sigq",
        "spread",
        "start_spare",
        "stopping",
        "stuck",
        "task_ended",
        "task_failed",
        "thread_work",
        "timers",
        "total",
        "workers",
    )

    def __init__(
        self,
        n: int,
        *,
        clock: Clock | None = None,
        backend: str = "auto",
        seed: int | None = None,
    ) -> None:
        self.n = n
        self.clock = clock or Clock()
        self.timers = Timers(self.clock)
        self.poller = make_poller(backend)
        self.timers.on_earlier = self.poke_poller
        # Free-threaded builds wake idle workers eagerly (see "Designs").
        gil = getattr(sys, "_is_gil_enabled", lambda: True)()
        self.spread = not gil
        self.draining = False  # main has returned; see start_draining
        self.mempool: Any = None  # the runtime's BufferPool, set at boot
        self.workers = [Worker(self, i) for i in range(n)]
        # Guarded by ``lock``: worker threads alive (n plus live spares) and
        # how many of them sysmon marked stuck. See "Preemption".
        self.total = n
        self.stuck = 0
        # The interpreter's switch interval before sysmon shortened it (see
        # sysmon.py, "The interpreter's turns"); None while none is stuck.
        self.saved_switch: float | None = None
        self.start_spare: Any = None  # set by sysmon: start a spare worker
        if seed is not None:
            import random

            from .traps import ShuffledDeque

            for w in self.workers:
                w.rng = random.Random(seed * 7919 + w.index)
                w.local = ShuffledDeque()  # (its module is never compiled)
                w.local.rng = w.rng
        self.seed = seed

        # Lock rule: ``lock`` guards gq, idle, polling, poller_notified,
        # stopping's transition, blocked_waiters and the all-idle decision.
        # ``gq`` and ``sigq`` are deques: appends from any thread (a signal
        # handler included) are atomic; only holders of ``lock`` pop ``gq``.
        self.lock = threading.Lock()
        self.gq: deque[Task] = deque()
        self.sigq: deque[int] = deque()
        self.idle: list[Worker] = []
        self.polling: Worker | None = None
        self.poller_notified = False
        self.stopping = False
        self.blocked_waiters: list[tuple[Task, int]] = []

        # Lock rule: cancel_lock guards every CancelScope tree and each
        # task's _scope and _cancel_pending; see cancel.py.
        self.cancel_lock = threading.RLock()
        self._stripes = [threading.Lock() for _ in range(STRIPES)]

        self.main: Task | None = None
        self.thread_work = 0  # to_thread calls in flight, guarded by ``lock``
        self.runtime_threads: set[int] = set()  # idents of threads we started
        self.deadlock: str | None = None
        # Hooks the runtime sets (plain attributes, not methods, so that a
        # compiled build can have them assigned too): decide a deadlock, take
        # signals, cancel a task spawned while draining, count a task that
        # ended (shutdown), report an unhandled error.
        self.on_all_blocked: Any = None
        self.outside_work_hook: Any = None
        self.late_spawn: Any = _no_hook
        self.task_ended: Any = _no_hook
        self.task_failed: Any = _no_hook
        self.outside_spawned = 0  # from_thread spawns, guarded by ``lock``
        # Batches of free task records any worker may take (see
        # FREE_LIST_MAX). Lock rule: guarded by ``free_lock``, a leaf lock;
        # unlocked reads only decide whether to take it.
        self.free_pool: list[list[Task]] = []
        self.free_lock = threading.Lock()
        self._next_id = 0
        self._id_lock = threading.Lock()

    # -- ids and stripes ------------------------------------------------------

    def start_draining(self) -> None:
        """Main has returned: tasks spawned from now on are born cancelled."""
        self.draining = True
        for w in self.workers:
            w.spawn_hooks = True

    def stripe(self, task: Task) -> threading.Lock:
        """The lock guarding ``task``'s join list and select claims."""
        return self._stripes[(id(task) >> 4) & (STRIPES - 1)]

    def id_block(self, size: int) -> int:
        """Reserve ``size`` task ids; return the first. Any thread."""
        with self._id_lock:
            first = self._next_id + 1
            self._next_id += size
            return first

    # -- outside work ---------------------------------------------------------

    def has_outside_work(self) -> bool:
        """A cheap unlocked look: anything for the 64-step check to do?"""
        return bool(
            self.gq
            or self.sigq
            or self.timers.heap
            or self.poller.waiters
            or self.stopping
            or self.surplus()
        )

    def surplus(self) -> bool:
        """GIL builds (racy look): more than one worker runs tasks while none
        is stuck. One is enough then (see "Standing down")."""
        return not self.spread and self.total - len(self.idle) - self.stuck > 1

    def stand_down(self, w: Worker) -> bool:
        """Give ``w``'s queue to another worker that runs tasks, so that ``w``
        can park; True when it did (see "Standing down")."""
        with self.lock:
            if self.stuck or self.stopping or self.running() < 2:
                return False
            for other in self.workers:
                if (
                    other is not w
                    and not other.retired
                    and not other.stuck
                    and other not in self.idle
                ):
                    break
            else:
                return False
            # Under ``lock``: ``other`` re-checks its own queue in idle_wait
            # before it parks, so these tasks cannot be stranded there.
            task = w.runnext
            if task is not None:
                w.runnext = None
                other.local.append(task)
            local = w.local
            while True:
                try:
                    other.local.append(local.popleft())
                except IndexError:
                    break
            w.standdowns += 1
            return True

    def take_outside_work(self, w: Worker) -> None:
        """Move global-queue tasks to ``w``, handle signals, fire due timers."""
        if self.sigq and self.outside_work_hook is not None:
            self.outside_work_hook()
        if self.gq:
            with self.lock:
                # Take a fair share so other workers get some too.
                share = len(self.gq) // max(1, self.running()) + 1
                for _ in range(min(share, len(self.gq))):
                    task = self.gq.popleft()
                    task._state = RUNNABLE
                    w.local.append(task)
        if self.timers.heap:
            self.fire_timers(w)
        if self.poller.waiters and self.polling is None:
            self.poll_now(w)

    def poll_now(self, w: Worker) -> None:
        """Poll descriptors without blocking, so a busy run queue cannot
        starve I/O; skipped while another worker holds the poll lock."""
        poller = self.poller
        if not poller.poll_lock.acquire(blocking=False):
            return
        try:
            events = poller.wait(0)
        finally:
            poller.poll_lock.release()
        if events:
            for task in poller.dispatch(events):
                task._value = None
                task._state = RUNNABLE
                w.local.append(task)

    def fire_timers(self, w: Worker) -> None:
        """Wake sleepers and run callbacks whose deadline has passed."""
        for entry in self.timers.pop_due(self.clock.now()):
            if entry[2] != CALL:
                w.push_next(entry[3])
                continue
            try:
                entry[3]()
            except Exception:
                from .errors import curcor_log

                curcor_log().exception("timer callback failed")

    def spawn_outside(self, coro: Any, name: str | None) -> Task | None:
        """From any thread: a new task on the global queue (``from_thread``).

        None, with ``coro`` closed, when the runtime is stopping. Like
        ``Worker.spawn``, a task born while draining is cancelled at once.
        """
        task = Task()
        task.coro = coro
        task._name = name
        task._id = self.id_block(1)
        with self.lock:
            if self.stopping:
                coro.close()
                return None
            self.outside_spawned += 1
        self.push_global(task)
        if self.draining:
            self.late_spawn(task)
        return task

    def push_global(self, task: Task) -> None:
        """Queue ``task`` from outside any worker of this runtime."""
        task._state = RUNNABLE
        with self.lock:
            self.gq.append(task)
            self.wake_one()

    def ready(self, task: Task, value: Any = None, exc: Any = None) -> None:
        """Make a task whose wait this caller ended runnable, from anywhere."""
        task._value = value
        task._exc = exc
        w = current_worker()
        if w is not None and w.sched is self:
            w.push_next(task)
        else:
            self.push_global(task)

    # -- parking --------------------------------------------------------------

    def wake_one(self) -> None:
        """Called with ``lock`` held: get one idle worker looking for work.

        On GIL builds a worker that is running tasks already picks up the
        global queue within 64 steps, so only an all-idle runtime wakes
        someone (the poller first); a second worker running Python beside
        the first would only fight it for the interpreter (see "Designs").
        """
        if not self.spread:
            if self.polling is not None:
                self._notify_poller()
                return
            if self.running() > 0:
                return  # a worker is running: it sees the work at its tick
        for i, w in enumerate(self.idle):
            if w is not self.polling:
                del self.idle[i]
                w.park_lock.release()
                return
        self._notify_poller()

    def _notify_poller(self) -> None:
        """Called with ``lock`` held: wake the poller, once per wait."""
        if self.polling is not None and not self.poller_notified:
            self.poller_notified = True
            self.poller.wakeup()

    def poke_poller(self) -> None:
        """Lock-free: make a waiting poller re-compute its timeout.

        Called after a timer was added with the timer lock held; reading
        ``polling`` without the scheduler lock is safe because the poller
        sets it before it reads the next deadline under the timer lock.
        """
        if self.polling is not None:
            self.poller.wakeup()

    def wake_for_steal(self) -> None:
        """Free-threaded builds: wake a parked worker to steal new work."""
        with self.lock:
            for i, w in enumerate(self.idle):
                if w is not self.polling:
                    del self.idle[i]
                    w.park_lock.release()
                    return

    def wake_all(self) -> None:
        """Called with ``lock`` held: wake every idle worker (stopping)."""
        for w in self.idle:
            if w is not self.polling:
                w.park_lock.release()
        self.idle = [w for w in self.idle if w is self.polling]
        if self.polling is not None:
            self.poller_notified = True
            self.poller.wakeup()

    def idle_wait(self, w: Worker) -> None:
        """Park ``w`` (or poll) until there may be work; see "Idle protocol"."""
        timeout: float | None = None
        with self.lock:
            if w.stuck:
                self.unstick(w)  # its long step ended before sysmon looked
            if self.gq or self.sigq or self.stopping:
                return
            if w.local or w.runnext is not None:
                return  # handed work by a worker that stood down
            if w.spare and not self.stuck:
                return  # not needed any more: back to _find_task to retire
            self.idle.append(w)
            w.parks += 1
            # Every worker idle means every task is blocked.
            all_idle = len(self.idle) == self.total and self.on_all_blocked is not None
            if all_idle and self.on_all_blocked(w):
                if w in self.idle:
                    self.idle.remove(w)
                return
            # GIL builds: while another worker runs tasks (and polls at its
            # ticks), an idle worker parks instead of polling, so I/O wakes
            # land on one worker rather than two fighting for the GIL.
            poll = self.polling is None and (self.spread or self.running() == 0)
            if poll:
                self.polling = w
                self.poller_notified = False
        if poll:
            deadline = self.timers.next_deadline()
            if deadline is not None and not self.clock.autojump:
                # (A fake clock moves only when all block: no timeout then.)
                # Capped: kernels reject huge timeouts, and inf is legal here.
                timeout = min(MAX_POLL_TIMEOUT, max(0.0, deadline - self.clock.now()))
            if self.foreign_wakers_possible():
                timeout = 0.1 if timeout is None else min(timeout, 0.1)
            with self.poller.poll_lock:
                events = self.poller.wait(timeout)
            if events:
                for task in self.poller.dispatch(events):
                    task._value = None
                    task._state = RUNNABLE
                    w.local.append(task)
            with self.lock:
                self.polling = None
                self.poller_notified = False
                if w in self.idle:
                    self.idle.remove(w)
        else:
            w.park_lock.acquire()

    def unstick(self, w: Worker) -> None:
        """Called with ``lock`` held: ``w``'s long step ended. Once no worker
        is stuck, idle spares are woken so that they retire."""
        if not w.stuck:
            return
        w.stuck = False
        self.stuck -= 1
        if self.stuck:
            return
        self.restore_switch()
        for i in range(len(self.idle) - 1, -1, -1):
            spare = self.idle[i]
            if spare.spare and spare is not self.polling:
                del self.idle[i]
                spare.park_lock.release()
        if self.polling is not None and self.polling.spare:
            self._notify_poller()

    def shorten_switch(self, interval: float) -> None:
        """Called with ``lock`` held: a worker is stuck; give the others
        turns every ``interval`` seconds (sysmon.py, "The interpreter's
        turns"), keeping the value to put back."""
        if self.saved_switch is None:
            self.saved_switch = sys.getswitchinterval()
            sys.setswitchinterval(min(self.saved_switch, interval))

    def restore_switch(self) -> None:
        """Called with ``lock`` held: put the switch interval back."""
        if self.saved_switch is not None:
            sys.setswitchinterval(self.saved_switch)
            self.saved_switch = None

    def spares_alive(self) -> int:
        """Spare workers running now (racy; exact under ``lock``)."""
        return sum(1 for w in self.workers if w.spare and not w.retired)

    def running(self) -> int:
        """Called with ``lock`` held (or racy): workers running tasks now."""
        return self.total - len(self.idle) - self.stuck

    def retire(self, w: Worker) -> bool:
        """A spare found no work: True (it leaves its loop) when no worker
        is stuck any more, so it is not needed."""
        with self.lock:
            if self.stuck or self.gq or w.local or w.runnext is not None:
                return False
            w.retired = True
            self.total -= 1
            # It may have been the poller: if nobody else runs tasks, a
            # parked worker must take that role, or timers and I/O would
            # wait for ever.
            if self.polling is None and self.running() == 0:
                self.wake_one()
            return True

    def foreign_wakers_possible(self) -> bool:
        """A live non-daemon thread we did not start may call from_thread.

        Threads whose name starts with one of ``WATCHDOG_THREADS`` (test
        watchdogs that never call into the runtime) do not count.
        """
        me = threading.get_ident()
        for t in threading.enumerate():
            if t.daemon or t.ident in self.runtime_threads or t.ident == me:
                continue
            if t.name.startswith(WATCHDOG_THREADS):
                continue
            if t is threading.main_thread() and not t.is_alive():
                continue
            return True
        return False

    def stop(self) -> None:
        """Make every worker leave its loop (idempotent, any thread)."""
        with self.lock:
            self.stopping = True
            self.wake_all()

    # -- counts ---------------------------------------------------------------

    def tasks(self) -> list[Task]:
        """Every task alive now (started and not finished), in id order.

        Diagnostics and shutdown only: the list comes from a scan of the
        objects the garbage collector tracks (about 30 ms per million), not
        from a set kept up to date. A set cost every spawn and every finish
        an insertion and a removal at random places in memory: 10% of
        spawn 1M (docs/benchmarks.md). Any thread; a task that ends during
        the scan may or may not be listed.
        """
        import gc

        main = self.main
        found = [
            o
            for o in gc.get_objects()
            if type(o) is Task
            and o.coro is not None
            and o._state != DONE
            and o._state != FREE
            and o is not main
        ]
        # The main task may be older than the boot-time gc.freeze(), which
        # hides it from the scan.
        if main is not None and main._state != DONE and main._state != FREE:
            found.append(main)
        found.sort(key=_task_id)
        return found

    def live_tasks(self) -> int:
        """Tasks spawned and not yet finished (a racy sum; exact when idle)."""
        return sum(w.spawned - w.finished for w in self.workers) + self.outside_spawned

    def runnable_tasks(self) -> int:
        """Tasks queued or about to run (racy)."""
        n = len(self.gq)
        for w in self.workers:
            n += len(w.local) + (w.runnext is not None)
        return n


__all__ = [
    "BLOCKED",
    "DONE",
    "FREE",
    "RUNNABLE",
    "RUNNING",
    "YIELD",
    "Scheduler",
    "Worker",
    "current_worker",
]

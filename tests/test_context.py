"""Go-style contexts: cancellation, deadlines, values, the done channel and
``ctx.scope()``."""

from __future__ import annotations

import math

import pytest

import curcor
from curcor.testing import wait_all_tasks_blocked


async def test_background_is_never_cancelled_and_has_no_deadline():
    bg = curcor.background()
    assert bg is curcor.background()
    assert bg.err() is None
    assert bg.deadline() == math.inf
    assert bg.value("anything") is None
    with pytest.raises(curcor.RuntimeMisuse):
        bg.cancel()


async def test_with_cancel_then_cancel_sets_err_and_closes_done():
    ctx = curcor.background().with_cancel()
    done = ctx.done()
    assert ctx.err() is None
    with pytest.raises(curcor.WouldBlock):
        done.try_recv()
    ctx.cancel()
    assert isinstance(ctx.err(), curcor.ContextCancelled)
    assert done.try_recv() == (None, False)
    ctx.cancel()  # idempotent
    assert isinstance(ctx.err(), curcor.ContextCancelled)


async def test_done_channel_wakes_a_waiting_receiver_on_cancel():
    ctx = curcor.background().with_cancel()

    async def watcher():
        return await ctx.done().recv_ok()

    t = curcor.go(watcher())
    await wait_all_tasks_blocked()
    assert not t.done()
    ctx.cancel()
    assert await t.join() == (None, False)


async def test_done_asked_after_cancel_is_already_closed():
    ctx = curcor.background().with_cancel()
    ctx.cancel()
    assert await ctx.done().recv_ok() == (None, False)


async def test_with_timeout_expires_with_deadline_exceeded():
    t0 = curcor.now()
    ctx = curcor.background().with_timeout(5)
    assert ctx.deadline() == t0 + 5
    assert await ctx.done().recv_ok() == (None, False)
    assert curcor.now() == t0 + 5
    err = ctx.err()
    assert isinstance(err, curcor.DeadlineExceeded)
    assert isinstance(err, TimeoutError)


async def test_with_timeout_cancelled_early_is_cancelled_not_deadline():
    ctx = curcor.background().with_timeout(5)
    ctx.cancel()
    assert isinstance(ctx.err(), curcor.ContextCancelled)
    await curcor.sleep(10)
    assert isinstance(ctx.err(), curcor.ContextCancelled)


async def test_child_deadline_is_never_later_than_the_parents():
    t0 = curcor.now()
    parent = curcor.background().with_timeout(2)
    child = parent.with_timeout(100)
    assert child.deadline() == t0 + 2
    await child.done().recv_ok()
    assert curcor.now() == t0 + 2
    assert isinstance(child.err(), curcor.DeadlineExceeded)


async def test_with_value_looks_up_through_ancestors():
    root = curcor.background().with_value("user", "ann")
    mid = root.with_cancel()
    leaf = mid.with_value("request", 7).with_value("user", "bob")
    assert leaf.value("request") == 7
    assert leaf.value("user") == "bob"  # the nearest wins
    assert mid.value("user") == "ann"
    assert mid.value("request") is None
    assert leaf.value("missing", "dflt") == "dflt"
    with pytest.raises(ValueError):
        root.with_value(None, 1)


async def test_cancelling_a_parent_cancels_every_descendant():
    parent = curcor.background().with_cancel()
    child = parent.with_cancel()
    grandchild = child.with_value("k", "v").with_timeout(100)
    other = curcor.background().with_cancel()
    parent.cancel()
    for ctx in (child, grandchild):
        assert isinstance(ctx.err(), curcor.ContextCancelled)
        assert await ctx.done().recv_ok() == (None, False)
    assert other.err() is None


async def test_cancelling_a_child_leaves_the_parent_alive():
    parent = curcor.background().with_cancel()
    child = parent.with_cancel()
    child.cancel()
    assert parent.err() is None


async def test_deriving_from_a_cancelled_context_gives_a_cancelled_child():
    parent = curcor.background().with_cancel()
    parent.cancel()
    child = parent.with_cancel()
    assert isinstance(child.err(), curcor.ContextCancelled)


async def test_ctx_scope_cancels_the_block_when_the_context_is_cancelled():
    ctx = curcor.background().with_cancel()
    reached = []

    async def worker():
        with ctx.scope() as scope:
            await curcor.sleep(1000)
            reached.append("unreachable")
        return scope.cancelled_caught

    t = curcor.go(worker())
    await wait_all_tasks_blocked()
    start = curcor.now()
    ctx.cancel()
    assert await t.join() is True
    assert curcor.now() == start
    assert reached == []


async def test_ctx_scope_follows_the_context_deadline():
    t0 = curcor.now()
    ctx = curcor.background().with_timeout(3)
    with ctx.scope() as scope:
        await curcor.sleep(100)
    assert scope.cancelled_caught
    assert curcor.now() == t0 + 3


async def test_ctx_scope_of_an_already_cancelled_context_cancels_at_once():
    ctx = curcor.background().with_cancel()
    ctx.cancel()
    with ctx.scope() as scope:
        await curcor.sleep(0)
    assert scope.cancelled_caught


async def test_a_context_is_never_applied_implicitly():
    ctx = curcor.background().with_cancel()
    ctx.cancel()
    await curcor.sleep(1)  # no scope: the cancelled context changes nothing


async def test_parent_cancel_reaches_a_scope_of_a_child_context():
    parent = curcor.background().with_cancel()
    child = parent.with_value("k", 1)

    async def worker():
        with child.scope() as scope:
            await curcor.Event().wait()
        return scope.cancelled_caught

    t = curcor.go(worker())
    await wait_all_tasks_blocked()
    parent.cancel()
    assert await t.join() is True


async def test_context_cancel_from_a_plain_thread_wakes_the_scope():
    ctx = curcor.background().with_cancel()

    async def worker():
        with ctx.scope() as scope:
            await curcor.Event().wait()
        return scope.cancelled_caught

    t = curcor.go(worker())
    await wait_all_tasks_blocked()
    await curcor.to_thread(ctx.cancel)
    assert await t.join() is True

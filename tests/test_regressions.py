"""Regression tests for bugs found while documenting and reviewing the API."""

from __future__ import annotations

import contextvars
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import curcor
from curcor.testing import FakeClock


async def test_a_loop_whose_only_await_is_yield_now_can_be_cancelled():
    turns = 0
    with curcor.move_on_after(1) as scope:
        while True:
            await curcor.yield_now()
            turns += 1
            if turns == 1000:
                scope.cancel()
    assert scope.cancelled_caught
    assert turns == 1000


async def test_contexts_made_per_request_do_not_pile_up_under_their_parent():
    parent = curcor.background().with_cancel()
    for _ in range(1000):
        child = parent.with_value("request", 1).with_timeout(5)
        child.cancel()
    for _ in range(1000):
        curcor.background().with_timeout(5).cancel()
    assert parent._children == {}
    assert curcor.background()._children == {}
    parent.cancel()


async def test_value_context_follows_its_cancellable_ancestor():
    parent = curcor.background().with_cancel()
    child = parent.with_value("k", "v")
    assert child.err() is None
    parent.cancel()
    assert isinstance(child.err(), curcor.ContextCancelled)
    assert await child.done().recv_ok() == (None, False)
    assert child.value("k") == "v"


async def test_stopping_a_ticker_ends_an_async_for_waiting_in_another_task():
    ticker = curcor.Ticker(10)
    seen = []

    async def reader():
        async for when in ticker:
            seen.append(when)

    t = curcor.go(reader())
    await curcor.sleep(25)
    ticker.stop()
    await t.join()
    assert seen == [10, 20]


async def test_to_thread_runs_the_call_with_the_tasks_context_variables():
    var = contextvars.ContextVar("var", default="unset")
    var.set("from the task")
    assert await curcor.to_thread(var.get) == "from the task"


async def test_an_empty_channel_is_still_true():
    ch = curcor.Channel(3)
    assert ch and len(ch) == 0
    assert (None or ch) is ch


async def test_go_accepts_a_sleep_zero_awaitable():
    t = curcor.go(curcor.sleep(0))
    await t.join()
    assert t.done()


def test_marker_with_an_unknown_clock_is_a_usage_error(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.curcor(clock="reel")
        async def test_x():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*clock='reel'*use 'fake' or 'real'*"])
    assert result.ret != 0


def test_sigterm_bounds_the_main_tasks_cleanup_by_the_grace_period(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import curcor, sys
            async def main():
                try:
                    print("ready", flush=True)
                    await curcor.sleep(1000)
                finally:
                    with curcor.CancelScope(shield=True):
                        await curcor.sleep(1000)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURCOR_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "curcor", "run", "--shutdown-grace", "0.5", str(app)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert time.monotonic() - started < 15  # bounded, not 1000 s
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_awaiting_a_task_says_to_use_join():
    async def value():
        return 1

    t = curcor.go(value())
    with pytest.raises(TypeError, match=r"await task\.join\(\)"):
        await t
    assert await t.join() == 1


def test_crash_traceback_starts_in_the_task_not_in_the_worker_loop():
    async def boom():
        raise ZeroDivisionError("in the task")

    async def main():
        curcor.go(boom())
        await curcor.sleep(10)

    with pytest.raises(ZeroDivisionError) as info:
        curcor.run(main(), clock=FakeClock())
    names = []
    tb = info.value.__traceback__
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert names[-1] == "boom"
    assert "_loop" not in names  # the worker loop's frame is trimmed


def test_sigterm_after_main_ended_logs_the_grace_warning_once(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import curcor
            async def stubborn():
                try:
                    await curcor.sleep(1000)
                finally:
                    with curcor.CancelScope(shield=True):
                        await curcor.sleep(1000)
            async def main():
                curcor.go(stubborn(), name="stubborn")
                await curcor.sleep(0.05)
                print("ready", flush=True)
                try:
                    await curcor.sleep(1000)
                finally:
                    pass
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURCOR_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "curcor", "run", "--shutdown-grace", "0.3", str(app)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert err.count("shutdown grace period over") == 1, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.curcor(clock="real")
async def test_from_thread_timeout_cancels_the_call_it_gives_up_on():
    import threading

    cancelled = curcor.Event()
    errors = []

    async def slow():
        try:
            await curcor.sleep(30)
        finally:
            cancelled.set()

    def caller():
        try:
            curcor.from_thread(slow, timeout=0.05)
        except TimeoutError as exc:
            errors.append(exc)

    thread = threading.Thread(target=caller)
    thread.start()
    with curcor.timeout(10):
        await cancelled.wait()
    await curcor.to_thread(thread.join)
    assert len(errors) == 1


# -- arguments of the wrong kind get a clear TypeError (fresh-user trial) --------


def test_run_refuses_a_dict_config_a_bad_clock_and_a_bad_seed():
    async def main() -> None:
        pass

    with pytest.raises(TypeError, match="load_config"):
        curcor.run(main(), config={"maxprocs": 2})
    with pytest.raises(TypeError, match="FakeClock"):
        curcor.run(main(), clock=1)
    with pytest.raises(TypeError, match="seed"):
        curcor.run(main(), seed="x")


async def test_waitgroup_add_refuses_what_is_not_an_int():
    with pytest.raises(TypeError, match="takes an int"):
        curcor.WaitGroup().add("x")


async def test_to_thread_refuses_an_async_function():
    async def work() -> None:
        pass

    with pytest.raises(TypeError, match="async function"):
        await curcor.to_thread(work)


async def test_recv_of_none_says_how_to_disable_a_case():
    with pytest.raises(TypeError, match="pass None to select"):
        curcor.recv(None)


def test_a_coroutine_started_twice_gets_a_note_saying_so():
    async def work() -> None:
        await curcor.sleep(0)

    async def main() -> None:
        c = work()
        first = curcor.go(c)
        second = curcor.go(c)
        await first.join()
        await second.join()

    with pytest.raises(RuntimeError) as info:
        curcor.run(main())
    assert "started twice" in "".join(getattr(info.value, "__notes__", []))


def test_a_log_message_without_descriptors_left_goes_to_stderr(monkeypatch, capsys):
    # curcor imports logging at its first message; when the process is out of
    # descriptors that import fails (EMFILE), and reporting must not raise.
    import builtins

    from curcor._core.errors import curcor_log

    real_import = builtins.__import__

    def no_files(name, *args, **kwargs):
        if name == "logging":
            raise OSError(24, "Too many open files")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_files)
    curcor_log().warning("accept on %s: %s", "port 1", "EMFILE")
    assert capsys.readouterr().err == "curcor: accept on port 1: EMFILE\n"

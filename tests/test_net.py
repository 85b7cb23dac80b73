"""The netpoller and sockets: real connections on 127.0.0.1."""

from __future__ import annotations

import os
import socket as stdsocket

import pytest

import curcor
from curcor import net

real = pytest.mark.curcor(clock="real")


async def _echo(stream: net.Stream) -> None:
    while data := await stream.read():
        stream.write(data)
        await stream.drain()


@real
async def test_many_clients_get_every_byte_echoed():
    async with curcor.TaskGroup() as tg:
        port = await tg.start(net.serve_tcp, _echo)

        async def client(i: int) -> None:
            async with await net.dial_tcp("127.0.0.1", port) as s:
                for k in range(50):
                    msg = f"{i}:{k}\n".encode()
                    s.write(msg)
                    await s.drain()
                    assert await s.read_until(b"\n") == msg

        async with curcor.TaskGroup() as clients:
            for i in range(40):
                clients.go(client(i))
        tg.cancel_scope.cancel()


@pytest.mark.curcor(clock="real", maxprocs=2)
async def test_echo_works_with_two_workers():
    async with curcor.TaskGroup() as tg:
        port = await tg.start(net.serve_tcp, _echo)
        s = await net.dial_tcp("localhost", port)
        payload = os.urandom(300_000)
        s.write(payload)

        async def reader() -> bytes:
            return await s.read_exactly(len(payload))

        t = curcor.go(reader())
        await s.drain()
        assert await t.join() == payload
        s.close()
        tg.cancel_scope.cancel()


@real
async def test_closing_a_socket_wakes_the_task_waiting_on_it():
    a, b = stdsocket.socketpair()
    sock = net.Socket(a)

    async def waiter() -> None:
        await sock.recv(10)

    t = curcor.go(waiter())
    await curcor.sleep(0.01)
    sock.close()
    with pytest.raises(net.ClosedResourceError, match="closed while"):
        await t.join()
    b.close()


@real
async def test_a_closed_descriptor_is_unregistered_before_its_number_is_reused():
    a, b = stdsocket.socketpair()
    sock = net.Socket(a)
    fd = sock.fileno()

    async def waiter() -> None:
        await sock.recv(10)

    t = curcor.go(waiter())
    await curcor.sleep(0.01)
    sock.close()
    with pytest.raises(net.ClosedResourceError):
        await t.join()
    # The next socket likely reuses the number; it must see only its own data.
    c, d = stdsocket.socketpair()
    assert c.fileno() == fd or d.fileno() == fd or True  # reuse is likely, not sure
    fresh = net.Socket(c)
    d.sendall(b"mine")
    assert await fresh.recv(10) == b"mine"
    fresh.close()
    for s in (b, d):
        s.close()


@real
async def test_recv_is_cancelled_by_a_timeout_and_the_socket_stays_usable():
    a, b = stdsocket.socketpair()
    sock = net.Socket(a)
    with curcor.move_on_after(0.05) as scope:
        await sock.recv(10)
    assert scope.cancelled_caught
    b.sendall(b"later")
    assert await sock.recv(10) == b"later"
    sock.close()
    b.close()


@real
async def test_two_readers_of_one_socket_is_a_clear_error():
    a, b = stdsocket.socketpair()
    sock = net.Socket(a)
    first = curcor.go(sock.recv(10))
    await curcor.sleep(0.01)
    with pytest.raises(net.BusyResourceError, match="one reader"):
        await sock.recv(10)
    b.sendall(b"x")
    assert await first.join() == b"x"
    sock.close()
    b.close()


@real
async def test_stream_reads_report_the_end_of_the_stream():
    a, b = stdsocket.socketpair()
    stream = net.Stream(net.Socket(a))
    b.sendall(b"abc\ndef")
    b.shutdown(stdsocket.SHUT_WR)
    assert await stream.read_until(b"\n") == b"abc\n"
    with pytest.raises(net.IncompleteReadError) as info:
        await stream.read_exactly(10)
    assert info.value.partial == b"def"
    assert await stream.read() == b""
    stream.close()
    b.close()


@real
async def test_read_until_refuses_lines_over_the_limit():
    a, b = stdsocket.socketpair()
    stream = net.Stream(net.Socket(a))
    b.sendall(b"x" * 100)
    with pytest.raises(net.LimitOverrunError, match="limit"):
        await stream.read_until(b"\n", limit=50)
    stream.close()
    b.close()


@real
async def test_write_refuses_to_buffer_past_its_limit_until_drained():
    a, b = stdsocket.socketpair()
    stream = net.Stream(net.Socket(a), write_limit=1000)
    stream.write(b"x" * 800)
    with pytest.raises(net.WriteBufferFull, match="drain"):
        stream.write(b"y" * 300)

    async def drain() -> None:
        await stream.drain()

    t = curcor.go(drain())
    got = b""
    while len(got) < 800:
        got += await curcor.to_thread(b.recv, 1000)
    await t.join()
    stream.write(b"y" * 300)  # room again
    stream.close()
    b.close()


@real
async def test_dial_to_a_closed_port_raises_connection_refused():
    probe = stdsocket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(OSError, match="could not connect"):
        await net.dial_tcp("127.0.0.1", port)


@real
async def test_a_plain_blocking_client_talks_to_a_curcor_server():
    async with curcor.TaskGroup() as tg:
        port = await tg.start(net.serve_tcp, _echo)

        def blocking_client() -> bytes:
            with stdsocket.create_connection(("127.0.0.1", port)) as c:
                c.sendall(b"hello over a thread")
                c.shutdown(stdsocket.SHUT_WR)
                out = b""
                while chunk := c.recv(100):
                    out += chunk
                return out

        assert await curcor.to_thread(blocking_client) == b"hello over a thread"
        tg.cancel_scope.cancel()


@real
async def test_udp_datagrams_round_trip():
    a = net.socket(stdsocket.AF_INET, stdsocket.SOCK_DGRAM)
    b = net.socket(stdsocket.AF_INET, stdsocket.SOCK_DGRAM)
    a.raw.bind(("127.0.0.1", 0))
    b.raw.bind(("127.0.0.1", 0))
    await a.sendto(b"ping", b.getsockname())
    data, addr = await b.recvfrom(100)
    assert (data, addr) == (b"ping", a.getsockname())
    a.close()
    b.close()


@real
async def test_busy_ready_tasks_do_not_starve_socket_readers():
    a, b = stdsocket.socketpair()
    sock = net.Socket(a)
    got = []

    async def reader() -> None:
        got.append(await sock.recv(10))

    async def spinner() -> None:
        while not got:
            await curcor.sleep(0)

    t = curcor.go(reader())
    spin = curcor.go(spinner())
    await curcor.sleep(0)
    b.sendall(b"data")
    with curcor.timeout(5):
        await t.join()
        await spin.join()
    assert got == [b"data"]
    sock.close()
    b.close()


@real
async def test_waiting_on_a_socket_is_not_a_deadlock():
    a, b = stdsocket.socketpair()
    sock = net.Socket(a)

    def later() -> None:
        import time

        time.sleep(0.05)
        b.sendall(b"wake")

    import threading

    thread = threading.Thread(target=later, daemon=True)
    thread.start()
    assert await sock.recv(10) == b"wake"
    thread.join()
    sock.close()
    b.close()


@real
async def test_accept_loop_backs_off_on_emfile_logs_once_and_keeps_serving(
    monkeypatch, caplog
):
    import errno
    import logging

    failures = {"left": 3}
    original = net.Socket.accept

    async def flaky_accept(self):
        if failures["left"]:
            failures["left"] -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return await original(self)

    monkeypatch.setattr(net.Socket, "accept", flaky_accept)
    with caplog.at_level(logging.WARNING, logger="curcor"):
        async with curcor.TaskGroup() as tg:
            port = await tg.start(net.serve_tcp, _echo)
            with curcor.timeout(5):
                s = await net.dial_tcp("127.0.0.1", port)
                s.write(b"still serving\n")
                await s.drain()
                assert await s.read_until(b"\n") == b"still serving\n"
            s.close()
            tg.cancel_scope.cancel()
    warnings = [r for r in caplog.records if "backing off" in r.getMessage()]
    assert len(warnings) == 1


def test_accept_loop_survives_a_real_descriptor_limit(tmp_path):
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "emfile.py"
    script.write_text(
        textwrap.dedent(
            """
            import resource, socket, curcor
            from curcor import net

            async def echo(stream):
                while data := await stream.read():
                    stream.write(data)
                    await stream.drain()

            async def main():
                async with curcor.TaskGroup() as tg:
                    port = await tg.start(net.serve_tcp, echo)
                    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
                    held = []
                    # Fill the table from plain sockets so accept hits EMFILE.
                    try:
                        while True:
                            held.append(socket.create_connection(("127.0.0.1", port)))
                    except OSError:
                        pass
                    await curcor.sleep(0.3)  # the server backs off meanwhile
                    for s in held:  # descriptors free up
                        s.close()
                    # The server now accepts the backlog of dead connections
                    # and closes them; then there is room for a new one.
                    await curcor.sleep(0.5)
                    s = await net.dial_tcp("127.0.0.1", port)
                    s.write(b"ok\\n")
                    await s.drain()
                    with curcor.timeout(10):
                        print((await s.read_until(b"\\n")).decode().strip())
                    s.close()
                    tg.cancel_scope.cancel()

            curcor.run(main())
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert "backing off" in result.stderr


@real
@pytest.mark.stress
async def test_close_racing_an_in_flight_write_never_hangs_or_corrupts():
    big = b"x" * (4 << 20)  # more than a socket buffer holds: sendall waits
    for _ in range(300):
        a, b = stdsocket.socketpair()
        sock = net.Socket(a)
        writer = curcor.go(sock.sendall(big))
        await curcor.sleep(0)
        sock.close()
        with curcor.timeout(5):
            try:
                await writer.join()
            except net.ClosedResourceError:
                pass
        b.close()


@real
@pytest.mark.stress
async def test_every_surviving_connection_gets_every_byte_when_a_tenth_drop():
    import random

    rng = random.Random(7)
    async with curcor.TaskGroup() as tg:
        port = await tg.start(net.serve_tcp, _echo)
        results = {"ok": 0, "dropped": 0}

        async def client(i: int) -> None:
            s = await net.dial_tcp("127.0.0.1", port)
            drop = rng.random() < 0.1
            payload = os.urandom(20_000)
            s.write(payload)
            if drop:
                s.close()  # vanish mid-transfer
                results["dropped"] += 1
                return
            reader = curcor.go(s.read_exactly(len(payload)))
            await s.drain()
            assert await reader.join() == payload
            s.close()
            results["ok"] += 1

        with curcor.timeout(30):
            async with curcor.TaskGroup() as clients:
                for i in range(300):
                    clients.go(client(i))
        assert results["ok"] + results["dropped"] == 300
        assert results["dropped"] > 0
        tg.cancel_scope.cancel()


@real
async def test_a_peer_reset_ends_its_connection_not_the_server():
    import struct

    async with curcor.TaskGroup() as tg:
        port = await tg.start(net.serve_tcp, _echo)

        def reset_client() -> None:
            c = stdsocket.create_connection(("127.0.0.1", port))
            c.sendall(b"x" * 100_000)
            c.setsockopt(
                stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            c.close()  # RST, with the echo still in flight

        for _ in range(20):
            await curcor.to_thread(reset_client)
        with curcor.timeout(5):
            s = await net.dial_tcp("127.0.0.1", port)
            s.write(b"alive\n")
            await s.drain()
            assert await s.read_until(b"\n") == b"alive\n"
        s.close()
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("backend", ["epoll", "poll", "select"])
def test_every_poller_backend_serves_the_same_echo(backend):
    import selectors

    from curcor.config import load_config

    if not hasattr(
        selectors,
        {"epoll": "EpollSelector", "poll": "PollSelector", "select": "SelectSelector"}[
            backend
        ],
    ):
        pytest.skip(f"{backend} is not available on this OS")

    async def main() -> bytes:
        async with curcor.TaskGroup() as tg:
            port = await tg.start(net.serve_tcp, _echo)
            got = []

            async def client(i: int) -> None:
                s = await net.dial_tcp("127.0.0.1", port)
                s.write(b"%d\n" % i)
                await s.drain()
                got.append(await s.read_until(b"\n"))
                s.close()

            async with curcor.TaskGroup() as clients:
                for i in range(20):
                    clients.go(client(i))
            tg.cancel_scope.cancel()
        return b"".join(sorted(got))

    config = load_config(env={}, flags={"scheduler": backend, "maxprocs": "2"})
    assert curcor.run(main(), config=config) == b"".join(
        sorted(b"%d\n" % i for i in range(20))
    )
    assert curcor.stats().backend == backend


def test_kqueue_backend_is_refused_clearly_where_the_os_lacks_it():
    import selectors

    from curcor.config import load_config

    if hasattr(selectors, "KqueueSelector"):
        pytest.skip("this OS has kqueue")
    with pytest.raises(curcor.ConfigError, match="not available"):
        load_config(env={}, flags={"scheduler": "kqueue"})


# -- the edge-triggered epoll poller and the I/O budget ------------------------


@real
async def test_a_number_closed_behind_the_pollers_back_still_works_for_its_next_owner():
    if curcor.stats().backend != "epoll":
        pytest.skip("the registration rule under test is epoll's")
    a, b = stdsocket.socketpair()
    old = net.Socket(a)
    fd = old.fileno()

    async def first_read() -> bytes:
        return await old.recv(10)  # waits: registers the number with epoll

    t = curcor.go(first_read())
    await curcor.sleep(0.01)
    b.sendall(b"one")
    assert await t.join() == b"one"
    # Closed without notify_closing: the kernel drops the registration, the
    # poller's record of it stays.
    a.close()
    old._closed = True
    c, d = stdsocket.socketpair()
    if fd not in (c.fileno(), d.fileno()):
        pytest.skip("the descriptor number was not reused")
    fresh = net.Socket(c if c.fileno() == fd else d)
    peer = d if c.fileno() == fd else c

    async def send_later() -> None:
        await curcor.sleep(0.02)
        peer.sendall(b"mine")

    curcor.go(send_later())
    with curcor.timeout(2):
        assert await fresh.recv(10) == b"mine"
    fresh.close()
    for s in (b, peer):
        s.close()


@real
async def test_wait_readable_reports_a_level_so_waiting_twice_without_reading_returns():
    a, b = stdsocket.socketpair()
    sock = net.Socket(a)
    b.sendall(b"x")
    with curcor.timeout(2):
        await net.wait_readable(sock.fileno(), sock)
        await net.wait_readable(sock.fileno(), sock)
        assert await sock.recv(10) == b"x"
    sock.close()
    b.close()


@pytest.mark.curcor(clock="real", maxprocs=1)
async def test_a_task_whose_reads_never_wait_still_lets_other_tasks_run():
    from curcor._core.scheduler import IO_BUDGET

    a, b = stdsocket.socketpair()
    sock = net.Socket(a)
    n = IO_BUDGET * 4
    b.sendall(b"x" * n)  # every read finds a byte ready: none ever waits
    done = 0
    seen_at: list[int] = []

    async def other() -> None:
        seen_at.append(done)

    curcor.go(other())
    for _ in range(n):
        assert await sock.recv(1) == b"x"
        done += 1
    await curcor.sleep(0)
    assert seen_at and seen_at[0] <= IO_BUDGET
    sock.close()
    b.close()


@real
async def test_try_read_never_waits_and_tells_empty_from_the_end():
    a, b = stdsocket.socketpair()
    stream = net.Stream(net.Socket(a))
    assert stream.try_read() is None  # nothing yet: would wait
    b.sendall(b"abc")
    await net.wait_readable(stream.socket.fileno(), stream.socket)
    assert stream.try_read() == b"abc"
    b.close()
    await net.wait_readable(stream.socket.fileno(), stream.socket)
    assert stream.try_read() == b""  # the end
    assert await stream.read() == b""
    stream.close()
    with pytest.raises(net.ClosedResourceError):
        stream.socket.try_recv(10)


@pytest.mark.parametrize("port", [65536, 99999, -1, "70000"])
async def test_a_port_outside_0_to_65535_is_refused_not_wrapped(port):
    with pytest.raises(ValueError, match="out of range: use 0 to 65535"):
        await net.listen_tcp("127.0.0.1", port)
    with pytest.raises(ValueError, match="out of range"):
        await net.dial_tcp("127.0.0.1", port)


async def test_a_port_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match="port must be an int"):
        await net.listen_tcp("127.0.0.1", 80.5)


@real
async def test_writing_to_a_closed_stream_is_a_clear_error():
    a, b = stdsocket.socketpair()
    stream = net.Stream(net.Socket(a))
    stream.close()
    with pytest.raises(net.ClosedResourceError, match="closed stream"):
        stream.write(b"lost")
    b.close()

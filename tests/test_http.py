"""HTTP/1.1 over curcor.net: server, client, limits, timeouts, shutdown.

Every test talks over real sockets on 127.0.0.1, and against the standard
library's client and server and curl, to catch what a self-consistent pair
would miss.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import curcor
from curcor import net
from curcor.net import http as h
from httpkit import app, run_curl, serving, stdlib_serving

pytestmark = pytest.mark.timeout(5)

real = pytest.mark.curcor(clock="real")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "http_hello.py"


async def exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes; everything the server sends until it closes."""
    s = await net.dial_tcp("127.0.0.1", port)
    try:
        s.write(data)
        await s.drain()
        out = b""
        with curcor.timeout(3):
            while chunk := await s.read():
                out += chunk
        return out
    finally:
        s.close()


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


# -- round trips ------------------------------------------------------------------


@real
async def test_hello_round_trip():
    async with serving() as port:
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            r = await c.get("/")
            assert (r.status, r.reason, await r.read()) == (200, "OK", b"hello")
            assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
            assert r.headers["content-length"] == "5"
            assert r.headers.get("server") == "curcor"
            assert (await c.get("/nope")).status == 404


@real
async def test_health_handler_reports_version_and_weight_as_json():
    async with serving() as port:
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            r = await c.get("/v1/health")
            assert r.headers["content-type"] == "application/json"
            assert await r.json() == {"status": "ok", "version": "1.2.3", "weight": 7}
            assert (await c.post("/v1/health", body=b"")).status == 405


def test_health_handler_refuses_bad_arguments():
    with pytest.raises(ValueError, match="0 or more"):
        h.health_handler("1.0", weight=-1)
    with pytest.raises(TypeError, match="weight"):
        h.health_handler("1.0", weight=True)


@real
async def test_head_gets_the_headers_without_the_body():
    async with serving() as port:
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            r = await c.head("/")
            assert r.status == 200
            assert r.headers["content-length"] == "5"
            assert await r.read() == b""
            assert await (await c.get("/")).read() == b"hello"  # still in step


@real
async def test_keep_alive_serves_many_requests_on_one_connection():
    async with serving() as port:
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            peers = {await (await c.get("/peer")).read() for _ in range(30)}
    assert len(peers) == 1


@real
async def test_pipelined_requests_are_answered_in_order():
    async with serving() as port:
        s = await net.dial_tcp("127.0.0.1", port)
        s.write(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        )
        await s.drain()
        with curcor.timeout(3):
            first = await s.read_until(b"hello")
            second = await s.read_until(b"abc")
        s.close()
    assert first.startswith(b"HTTP/1.1 200 ")
    assert second.startswith(b"HTTP/1.1 200 ")


@real
async def test_chunked_request_and_response_bodies():
    seen: list[str | None] = []

    async def stream_echo(request: h.Request) -> h.Response:
        seen.append(request.header("transfer-encoding"))

        async def back() -> AsyncIterator[bytes]:
            async for chunk in request.stream():
                yield chunk.upper()

        return h.Response(body=back())

    async def upload() -> AsyncIterator[bytes]:
        for word in (b"one ", b"two ", b"three"):
            yield word

    async with serving(stream_echo) as port:
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            r = await c.post("/", body=upload())
            assert r.headers["transfer-encoding"] == "chunked"
            assert await r.read() == b"ONE TWO THREE"
    assert seen == ["chunked"]


@real
async def test_a_streamed_response_arrives_chunk_by_chunk():
    async with serving() as port:
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            r = await c.get("/chunks", stream=True)
            got = [chunk async for chunk in r.stream()]
            assert b"".join(got) == b"part0;part1;part2;"
            assert await (await c.get("/")).read() == b"hello"  # connection reused


@real
async def test_large_bodies_cross_in_both_directions():
    payload = os.urandom(3_000_000)  # over the stream's 1 MiB write buffer
    async with serving(max_body_bytes=4_000_000) as port:
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            r = await c.post("/echo", body=payload)
            assert await r.read() == payload


@real
async def test_a_streamed_body_that_fails_midway_is_cut_short_and_logged(caplog):
    async def broken(request: h.Request) -> h.Response:
        async def parts() -> AsyncIterator[bytes]:
            yield b"first;"
            raise RuntimeError("the stream broke")

        return h.Response(body=parts())

    caplog.set_level("ERROR", logger="curcor.http")
    async with serving(broken) as port:
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            with pytest.raises(h.ProtocolError):
                await c.get("/")
    assert "after the head was sent" in caplog.text


# -- limits and errors ---------------------------------------------------------------


@real
async def test_a_head_over_the_limit_gets_431():
    big = b"X-Big: " + b"a" * 20_000 + b"\r\n"
    async with serving() as port:
        complete = await exchange(port, GET[:-2] + big + b"\r\n")
        endless = await exchange(port, GET[:-2] + big)
    assert status_of(complete) == 431
    assert status_of(endless) == 431


@real
async def test_a_declared_body_over_the_limit_gets_413_before_the_app_runs():
    ran = []

    async def counting(request: h.Request) -> h.Response:
        ran.append(request.path)
        return h.Response()

    async with serving(counting, max_body_bytes=1000) as port:
        raw = await exchange(
            port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n"
        )
    assert status_of(raw) == 413
    assert b"connection: close" in raw.lower()
    assert ran == []


@real
async def test_a_chunked_body_over_the_limit_gets_413():
    async def upload() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 500

    async with serving(max_body_bytes=1000) as port:
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            r = await c.post("/echo", body=upload())
            assert r.status == 413
            assert b"max_body_bytes" in await r.read()


@real
async def test_a_malformed_request_gets_400():
    async with serving() as port:
        garbage = await exchange(port, b"THIS IS NOT HTTP\r\n\r\n")
        bad_length = await exchange(
            port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: nine\r\n\r\n"
        )
        bad_chunk = await exchange(
            port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\n",
        )
    assert status_of(garbage) == 400
    assert status_of(bad_length) == 400
    assert status_of(bad_chunk) == 400


@real
async def test_a_failing_handler_gets_500_and_is_logged(caplog):
    caplog.set_level("ERROR", logger="curcor.http")
    async with serving() as port:
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            r = await c.get("/boom")
            assert r.status == 500
            assert b"the handler broke" not in await r.read()  # no leak to clients
            assert (await c.get("/")).status == 200  # a new connection serves on
    [record] = [r for r in caplog.records if r.name == "curcor.http"]
    assert "GET /boom" in record.getMessage()
    assert record.exc_info is not None
    assert "the handler broke" in str(record.exc_info[1])


@real
async def test_a_handler_that_returns_no_response_gets_500(caplog):
    async def wrong(request: h.Request) -> object:
        return "hello"

    caplog.set_level("ERROR", logger="curcor.http")
    async with serving(wrong) as port:
        assert status_of(await exchange(port, GET)) == 500
    assert "return Response(" in caplog.text


# -- timeouts -----------------------------------------------------------------------


@real
async def test_a_half_sent_request_line_is_closed_at_the_header_timeout():
    async with serving(header_timeout=0.3) as port:
        start = curcor.now()
        raw = await exchange(port, b"GET / HT")
        elapsed = curcor.now() - start
    assert status_of(raw) == 408
    assert 0.25 <= elapsed < 2.0


@real
async def test_a_client_dribbling_its_head_is_cut_off_at_the_header_timeout():
    async with serving(header_timeout=0.3) as port:
        s = await net.dial_tcp("127.0.0.1", port)
        s.write(b"GET / HTTP/1.1\r\n")
        await s.drain()

        async def dribble() -> None:
            for i in range(100):
                await curcor.sleep(0.05)
                s.write(f"X-{i}: y\r\n".encode())
                await s.drain()

        start = curcor.now()
        async with curcor.TaskGroup() as tg:
            tg.go(dribble())
            out = b""
            with curcor.timeout(2):
                while chunk := await s.read():
                    out += chunk
            tg.cancel_scope.cancel()
        elapsed = curcor.now() - start
        s.close()
    assert status_of(out) == 408
    assert elapsed < 1.5


@real
async def test_an_idle_keep_alive_connection_is_closed_at_the_idle_timeout():
    async with serving(idle_timeout=0.3) as port:
        s = await net.dial_tcp("127.0.0.1", port)
        s.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await s.drain()
        with curcor.timeout(2):
            assert (await s.read_until(b"hello")).startswith(b"HTTP/1.1 200")
            answered = curcor.now()
            assert await s.read() == b""
        idle = curcor.now() - answered
        s.close()
    assert 0.25 <= idle < 2.0


@real
async def test_the_client_recovers_when_the_server_closed_its_pooled_connection():
    async with serving(idle_timeout=0.1) as port:
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            first = await (await c.get("/peer")).read()
            await curcor.sleep(0.3)  # the server closes the pooled connection
            second = await (await c.get("/peer")).read()
    assert first != second


@real
async def test_a_request_lost_on_a_reused_connection_is_retried_once():
    async def flaky(stream: net.Stream) -> None:
        # Answer the first request, then drop the connection at the second,
        # as a server does that closes an idle connection just then.
        await stream.read_until(b"\r\n\r\n")
        stream.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await stream.drain()
        await stream.read_until(b"\r\n\r\n")

    async with curcor.TaskGroup() as tg:
        port = await tg.start(net.serve_tcp, flaky)
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            await c.get("/")
            assert await (await c.get("/")).read() == b"ok"  # retried
            await c.get("/")  # one more on a reused connection, then a POST
            with pytest.raises(h.ProtocolError, match="before responding"):
                await c.post("/", body=b"not idempotent")
        tg.cancel_scope.cancel()


@real
async def test_a_stalled_request_body_gets_408():
    async with serving(idle_timeout=0.3) as port:
        raw = await exchange(
            port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"
        )
    assert status_of(raw) == 408


@real
async def test_client_timeout_and_caller_scopes_end_a_slow_request():
    async def slow(request: h.Request) -> h.Response:
        if request.path == "/slow":
            await curcor.sleep(10)
        return h.Response(body="fast")

    async with serving(slow, shutdown_grace=0.1) as port:
        async with h.Client(base_url=f"http://127.0.0.1:{port}", timeout=0.2) as c:
            with pytest.raises(TimeoutError):
                await c.get("/slow")
            assert await (await c.get("/fast")).read() == b"fast"
        async with h.Client(base_url=f"http://127.0.0.1:{port}", timeout=None) as c:
            with curcor.move_on_after(0.2) as scope:
                await c.get("/slow")
            assert scope.cancelled_caught
            assert await (await c.get("/fast")).read() == b"fast"


# -- shutdown -----------------------------------------------------------------------


@real
async def test_shutdown_finishes_a_request_in_flight_and_closes_idle_ones():
    entered = curcor.Event()

    async def slow(request: h.Request) -> h.Response:
        if request.path == "/slow":
            entered.set()
            await curcor.sleep(0.3)
            return h.Response(body="done")
        return h.Response(body="ok")

    async def fetch(port: int) -> tuple[bytes, str | None, float]:
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            r = await c.get("/slow")
            return await r.read(), r.headers.get("connection"), curcor.now()

    async def eof_at(s: net.Stream) -> float:
        with curcor.timeout(3):
            assert await s.read() == b""
        s.close()
        return curcor.now()

    async with curcor.TaskGroup() as clients:
        async with curcor.TaskGroup() as server:
            serve = functools.partial(h.serve_http, slow, shutdown_grace=3.0)
            port = await server.start(serve)
            idle = await net.dial_tcp("127.0.0.1", port)
            idle.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await idle.drain()
            await idle.read_until(b"ok")
            in_flight = clients.go(fetch(port))
            await entered.wait()
            idle_closed = clients.go(eof_at(idle))
            server.cancel_scope.cancel()
    body, connection, answered = await in_flight.join()
    assert (body, connection) == (b"done", "close")
    assert await idle_closed.join() < answered
    with pytest.raises(OSError):
        await net.dial_tcp("127.0.0.1", port)


@real
async def test_shutdown_cancels_what_outlives_the_grace():
    entered = curcor.Event()

    async def stuck(request: h.Request) -> h.Response:
        entered.set()
        await curcor.sleep(60)
        return h.Response()

    async def fetch(port: int) -> BaseException | None:
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            try:
                await c.get("/")
            except h.ProtocolError as exc:
                return exc
        return None

    async with curcor.TaskGroup() as clients:
        async with curcor.TaskGroup() as server:
            port = await server.start(
                functools.partial(h.serve_http, stuck, shutdown_grace=0.2)
            )
            failed = clients.go(fetch(port))
            await entered.wait()
            start = curcor.now()
            server.cancel_scope.cancel()
        took = curcor.now() - start
    assert isinstance(await failed.join(), h.ProtocolError)
    assert 0.15 <= took < 2.0


# -- load ------------------------------------------------------------------------------


@real
async def test_fifty_concurrent_clients_each_keep_their_connection():
    lock = threading.Lock()
    peers: set[int] = set()

    async def counting(request: h.Request) -> h.Response:
        with lock:
            peers.add(request.client[1])
        return h.Response(body=request.path)

    async def client(port: int, i: int) -> None:
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            for k in range(5):
                r = await c.get(f"/{i}/{k}")
                assert await r.read() == f"/{i}/{k}".encode()

    async with serving(counting) as port:
        async with curcor.TaskGroup() as tg:
            for i in range(50):
                tg.go(client(port, i))
    assert len(peers) == 50


@real
async def test_one_client_shared_by_fifty_tasks():
    async with serving() as port:
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:

            async def one(i: int) -> None:
                r = await c.post("/echo", body=str(i))
                assert await r.text() == str(i)

            async with curcor.TaskGroup() as tg:
                for i in range(50):
                    tg.go(one(i))
            assert sum(len(v) for v in c._idle.values()) <= c.max_idle_per_host


# -- against other implementations ---------------------------------------------------


@real
async def test_stdlib_http_client_against_the_curcor_server():
    def talk(port: int) -> list[tuple[int, bytes]]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        try:
            out = []
            for path in ("/peer", "/", "/peer", "/chunks"):
                conn.request("GET", path)
                r = conn.getresponse()
                out.append((r.status, r.read()))
            conn.request("POST", "/echo", body=iter([b"ab", b"cd"]))  # chunked
            r = conn.getresponse()
            out.append((r.status, r.read()))
            return out
        finally:
            conn.close()

    async with serving() as port:
        got = await curcor.to_thread(talk, port)
    assert [status for status, _ in got] == [200] * 5
    assert got[0][1] == got[2][1]  # kept alive
    assert [body for _, body in got[1::2]] == [b"hello", b"part0;part1;part2;"]
    assert got[4][1] == b"abcd"


@real
async def test_the_curcor_client_against_a_stdlib_server():
    async with stdlib_serving() as port:
        base = f"http://127.0.0.1:{port}"
        async with h.Client(base_url=base) as c:
            one = await (await c.get("/a", params={"q": "1 2"})).text()
            two = await (await c.get("/b")).text()
            r = await c.post("/rev", body=b"abc")
            assert (r.status, await r.read()) == (201, b"cba")
            assert await (await c.get("/until-close")).read() == b"to the end"
    assert one.startswith("stdlib /a?q=1+2 ")
    assert one.split()[-1] == two.split()[-1]  # same client port: kept alive


@real
async def test_curl_against_the_curcor_server():
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")

    def curl_(*args: str) -> tuple[int, bytes, bytes]:
        return run_curl(curl, *args)

    async with serving() as port:
        base = f"http://127.0.0.1:{port}"
        # Two URLs in one run: the second reuses the connection (0 connects).
        code, out, err = await curcor.to_thread(
            curl_, "-w", "|%{http_code}|%{num_connects}\n", f"{base}/", f"{base}/"
        )
        assert (code, err) == (0, b""), err
        assert out == b"hello|200|1\nhello|200|0\n"
        # A body over 1 KiB makes curl ask for 100-continue first.
        payload = "y" * 5000
        code, out, err = await curcor.to_thread(
            curl_, "--data-binary", payload, f"{base}/echo"
        )
        assert (code, err, out) == (0, b"", payload.encode())


@real
async def test_the_example_serves_hello_and_health():
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = await curcor.to_thread(proc.stdout.readline)
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, f"the example printed {line!r}, not its address"
        async with h.Client(base_url=match.group(0)) as c:
            assert await (await c.get("/")).read() == b"hello"
            health = await (await c.get("/v1/health")).json()
            assert health["status"] == "ok"
            assert health["weight"] == 100
        proc.send_signal(signal.SIGINT)
        assert await curcor.to_thread(proc.wait, 3) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


# -- pieces ---------------------------------------------------------------------------


def test_headers_are_case_insensitive_and_keep_repeats():
    headers = h.Headers([("Accept", "a"), ("accept", "b"), ("X-One", "1")])
    assert headers["ACCEPT"] == "a, b"
    assert headers.get_all("accept") == ["a", "b"]
    assert "x-one" in headers and "x-two" not in headers
    assert headers.get("x-two", "none") == "none"
    headers.set("Accept", "c")
    assert headers.items() == [("X-One", "1"), ("Accept", "c")]
    with pytest.raises(KeyError):
        headers["missing"]


def test_response_bodies_are_checked_when_made():
    assert h.Response(body="é").body == "é".encode()
    assert json.loads(h.Response.json({"a": 1}).body) == {"a": 1}
    with pytest.raises(TypeError, match="async iterable"):
        h.Response(body=[b"a list"])
    with pytest.raises(ValueError, match="200-599"):
        h.Response(101)


def test_the_client_refuses_other_schemes_and_relative_urls_without_a_base():
    with pytest.raises(ValueError, match="not an http:// or https:// URL"):
        h.Client(base_url="ftp://example.org")
    with pytest.raises(ValueError, match="no base_url"):
        h.Client()._resolve("/x", None)


# -- responses framed by the server itself (bytes bodies) ---------------------------


def _fields(raw: bytes) -> dict[bytes, bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    pairs = (line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    return {name.strip().lower(): value.strip() for name, value in pairs}


@real
async def test_an_http10_request_gets_its_response_then_a_close():
    async with serving() as port:
        raw = await exchange(port, b"GET / HTTP/1.0\r\n\r\n")
    assert status_of(raw) == 200
    assert _fields(raw)[b"connection"] == b"close"
    assert raw.endswith(b"\r\n\r\nhello")


@real
async def test_a_request_asking_to_close_is_answered_and_closed():
    async with serving() as port:
        raw = await exchange(
            port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    assert _fields(raw)[b"connection"] == b"close"
    assert raw.count(b"HTTP/1.1 ") == 1 and raw.endswith(b"hello")


@real
async def test_a_header_value_with_a_line_break_gets_500_not_an_injected_field(caplog):
    async def injecting(request: h.Request) -> h.Response:
        return h.Response(200, {"x-note": "a\r\nset-cookie: evil=1"}, b"body")

    async with serving(injecting) as port:
        raw = await exchange(port, GET)
    assert status_of(raw) == 500
    assert b"\r\nset-cookie" not in raw.lower()
    assert "invalid response header" in caplog.text


@real
async def test_content_length_is_the_servers_and_204_carries_none():
    async def lying(request: h.Request) -> h.Response:
        if request.path == "/empty":
            return h.Response(204, {"content-length": "9"}, b"")
        return h.Response(200, {"Content-Length": "99", "X-A": "1"}, b"hi")

    async with serving(lying) as port:
        raw = await exchange(
            port,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /empty HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    first, second = raw.split(b"HTTP/1.1 ")[1:]
    assert _fields(b"HTTP/1.1 " + first)[b"content-length"] == b"2"
    assert _fields(b"HTTP/1.1 " + first)[b"x-a"] == b"1"
    assert first.endswith(b"\r\n\r\nhi")
    assert second.startswith(b"204 ")
    assert b"content-length" not in second.lower()
    assert second.endswith(b"\r\n\r\n")


@real
async def test_versions_other_than_1_0_and_1_1_get_505():
    async with serving() as port:
        raw = await exchange(port, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
    assert status_of(raw) == 505


@real
async def test_a_request_with_two_framings_gets_400():
    async with serving() as port:
        raw = await exchange(
            port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        )
    assert status_of(raw) == 400
    assert b"Transfer-Encoding" in raw


@real
async def test_a_streamed_chunk_that_is_not_bytes_cuts_the_body_short(caplog):
    async def bad(request: h.Request) -> h.Response:
        async def parts() -> AsyncIterator[object]:
            yield "a"
            yield 42

        return h.Response(body=parts())

    async with serving(bad) as port:
        raw = await exchange(port, GET)
    assert b"\x00" not in raw
    assert not raw.endswith(b"0\r\n\r\n")  # no clean end: the body is cut
    assert "bytes or str chunks" in caplog.text


@real
async def test_the_client_enforces_max_header_bytes_on_a_head_read_at_once():
    big = b"x" * 5000

    async def handler(stream: net.Stream) -> None:
        await stream.read_until(b"\r\n\r\n")
        stream.write(
            b"HTTP/1.1 200 OK\r\nX-Big: " + big + b"\r\nContent-Length: 0\r\n\r\n"
        )
        await stream.drain()
        await stream.read()

    async with curcor.TaskGroup() as tg:
        port = await tg.start(net.serve_tcp, handler)
        async with h.Client(max_header_bytes=1024) as c:
            with pytest.raises(h.ProtocolError, match="max_header_bytes"):
                await c.get(f"http://127.0.0.1:{port}/")
        tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"timeout": "5"}, TypeError),
        ({"timeout": -1}, ValueError),
        ({"max_body_bytes": -5}, ValueError),
        ({"max_idle_per_host": -1}, ValueError),
        ({"max_header_bytes": 0}, ValueError),
    ],
)
def test_client_arguments_are_checked_when_it_is_made(kwargs, error):
    with pytest.raises(error, match="Client: "):
        h.Client(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_header_bytes": 0}, ValueError),
        ({"max_body_bytes": -1}, ValueError),
        ({"idle_timeout": "5"}, TypeError),
        ({"header_timeout": -1}, ValueError),
    ],
)
async def test_serve_http_arguments_are_checked_before_it_listens(kwargs, error):
    with pytest.raises(error, match="serve_http: "):
        await h.serve_http(app, **kwargs)


@real
async def test_a_request_to_switch_protocols_is_answered_with_connection_close():
    """RFC 9112 section 9.6: a server that closes after a response says so.
    An Upgrade (or CONNECT) request ends the connection, since this server
    does not switch protocols; the response did not say "close"."""
    async with serving() as port:
        for head in (
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n"
            b"Upgrade: websocket\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n",
        ):
            raw = await exchange(port, head)
            assert raw.count(b"HTTP/1.1 ") == 1
            assert b"\r\nconnection: close\r\n" in raw.lower()


@real
async def test_the_client_sends_no_fragment_and_refuses_non_ascii_targets():
    async with serving() as port:
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            assert (await c.get("/#part")).status == 200  # the fragment stays
            with pytest.raises(ValueError, match="percent-encode"):
                await c.get("/ü")


@real
async def test_serve_http_takes_a_backlog_and_checks_it():
    import functools

    with pytest.raises(ValueError, match="backlog"):
        await h.serve_http(app, backlog=0)
    async with curcor.TaskGroup() as tg:
        port = await tg.start(functools.partial(h.serve_http, app, backlog=1024))
        async with h.Client(base_url=f"http://127.0.0.1:{port}") as c:
            assert (await c.get("/")).status == 200
        tg.cancel_scope.cancel()


@real
async def test_a_response_head_past_the_clients_limit_names_the_limit():
    async def huge_head(stream):
        await stream.read()
        stream.write(b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 100_000)
        await stream.drain()
        await curcor.sleep(5)

    async with curcor.TaskGroup() as tg:
        port = await tg.start(
            lambda task_status: net.serve_tcp(huge_head, task_status=task_status)
        )
        async with h.Client(
            base_url=f"http://127.0.0.1:{port}", max_header_bytes=1000
        ) as c:
            with pytest.raises(h.ProtocolError, match="max_header_bytes"):
                await c.get("/")
        tg.cancel_scope.cancel()

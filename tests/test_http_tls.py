"""HTTPS in curcor.net.http: the server with ``ssl=``, the client on https://.

A certificate authority is made in the test (trustme); every connection
goes to 127.0.0.1. The curcor server is checked against curl and the
standard library's client, the curcor client against the standard
library's server, and both against each other; then the failures a user
meets: an untrusted CA, a wrong host name, plain HTTP on the TLS port.
"""

from __future__ import annotations

import functools
import http.client
import os
import shutil
import ssl
from typing import Any

import pytest
import trustme

import curcor
from curcor import net
from curcor.net import http as h
from httpkit import app, run_curl, serving, stdlib_serving

pytestmark = pytest.mark.timeout(10)

real = pytest.mark.curcor(clock="real")

# The names the test certificate is issued for. "curcor.test" resolves to
# 127.0.0.1 only where a test says so (see resolve_test_names).
NAMES = ("127.0.0.1", "curcor.test")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*NAMES).configure_cert(ctx)
    return ctx


@pytest.fixture(scope="module")
def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def resolve_test_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make *.test names resolve to 127.0.0.1 for dial_tcp, without DNS."""
    real_getaddrinfo = net.getaddrinfo

    async def fake(host: Any, port: Any, *args: Any, **kw: Any) -> list[Any]:
        if isinstance(host, str) and host.endswith(".test"):
            host = "127.0.0.1"
        return await real_getaddrinfo(host, port, *args, **kw)

    monkeypatch.setattr("curcor.net.stream.getaddrinfo", fake)


# -- the curcor client and server ---------------------------------------------------


@real
async def test_https_round_trips_and_keep_alive_between_curcor_client_and_server(
    server_ctx, client_ctx
):
    payload = os.urandom(3_000_000)  # over the stream's 1 MiB write buffer
    async with serving(ssl=server_ctx, max_body_bytes=4_000_000) as port:
        base = f"https://127.0.0.1:{port}"
        async with h.Client(base_url=base, ssl=client_ctx) as c:
            r = await c.get("/")
            assert (r.status, await r.read()) == (200, b"hello")
            peers = {await (await c.get("/peer")).read() for _ in range(20)}
            assert len(peers) == 1  # one TLS connection, kept alive
            r = await c.post("/echo", body=payload)
            assert await r.read() == payload
            r = await c.get("/chunks", stream=True)
            assert b"".join([x async for x in r.stream()]) == b"part0;part1;part2;"
            assert await (await c.get("/host")).read() == f"127.0.0.1:{port}".encode()

            [conn] = c._idle[("https", "127.0.0.1", port)]
            assert isinstance(conn.stream.socket, net.TLSSocket)
            assert conn.stream.socket.getpeercert()["subjectAltName"]


@pytest.mark.curcor(clock="real", maxprocs=2)
async def test_one_https_client_shared_by_tasks_on_two_workers(server_ctx, client_ctx):
    async with serving(ssl=server_ctx) as port:
        async with h.Client(base_url=f"https://127.0.0.1:{port}", ssl=client_ctx) as c:

            async def one(i: int) -> None:
                for k in range(3):
                    r = await c.post("/echo", body=f"{i}:{k}")
                    assert await r.text() == f"{i}:{k}"

            async with curcor.TaskGroup() as tg:
                for i in range(30):
                    tg.go(one(i))
            assert sum(len(v) for v in c._idle.values()) <= c.max_idle_per_host


@real
async def test_the_pool_keeps_http_and_https_connections_apart(server_ctx, client_ctx):
    async with serving() as plain, serving(ssl=server_ctx) as tls:
        async with h.Client(ssl=client_ctx) as c:
            for _ in range(3):
                assert (await c.get(f"http://127.0.0.1:{plain}/")).status == 200
                assert (await c.get(f"https://127.0.0.1:{tls}/")).status == 200
            assert set(c._idle) == {
                ("http", "127.0.0.1", plain),
                ("https", "127.0.0.1", tls),
            }
            [plain_conn] = c._idle[("http", "127.0.0.1", plain)]
            assert isinstance(plain_conn.stream.socket, net.Socket)


@real
async def test_the_client_redials_when_the_server_closed_its_pooled_tls_connection(
    server_ctx, client_ctx
):
    async with serving(ssl=server_ctx, idle_timeout=0.1) as port:
        async with h.Client(base_url=f"https://127.0.0.1:{port}", ssl=client_ctx) as c:
            first = await (await c.get("/peer")).read()
            await curcor.sleep(0.3)  # the server closes the pooled connection
            second = await (await c.get("/peer")).read()
    assert first != second


@real
async def test_a_request_lost_on_a_reused_tls_connection_is_retried_once(
    server_ctx, client_ctx
):
    async def flaky(stream: net.Stream) -> None:
        # Answer the first request, then drop the connection at the second.
        await stream.read_until(b"\r\n\r\n")
        stream.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await stream.drain()
        await stream.read_until(b"\r\n\r\n")

    async with curcor.TaskGroup() as tg:
        port = await tg.start(
            lambda task_status: net.serve_tcp(
                flaky, ssl=server_ctx, task_status=task_status
            )
        )
        base = f"https://127.0.0.1:{port}"
        async with h.Client(base_url=base, ssl=client_ctx) as c:
            await c.get("/")
            assert await (await c.get("/")).read() == b"ok"  # retried
            await c.get("/")  # one more on a reused connection, then a POST
            with pytest.raises(h.ProtocolError, match="before responding"):
                await c.post("/", body=b"not idempotent")
        tg.cancel_scope.cancel()


@real
async def test_the_client_checks_the_certificate_and_sends_sni_for_the_url_host(
    ca, client_ctx, resolve_test_names
):
    seen: list[str | None] = []
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*NAMES).configure_cert(ctx)
    ctx.sni_callback = lambda sock, name, context: seen.append(name)
    async with serving(ssl=ctx) as port:
        async with h.Client(ssl=client_ctx) as c:
            r = await c.get(f"https://curcor.test:{port}/host")
            assert await r.read() == f"curcor.test:{port}".encode()
            with pytest.raises(net.TLSError) as info:
                await c.get(f"https://other.test:{port}/")
    assert seen == ["curcor.test", "other.test"]
    message = str(info.value)
    assert f"https://other.test:{port}" in message
    assert "Hostname mismatch" in message
    assert "does not name 'other.test'" in message


# -- other implementations ---------------------------------------------------------


@real
async def test_stdlib_https_client_against_the_curcor_server(server_ctx, client_ctx):
    def talk(port: int) -> tuple[str | None, list[tuple[int, bytes]]]:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=3, context=client_ctx
        )
        try:
            out = []
            for path in ("/peer", "/", "/peer", "/chunks"):
                conn.request("GET", path)
                r = conn.getresponse()
                out.append((r.status, r.read()))
            conn.request("POST", "/echo", body=iter([b"ab", b"cd"]))  # chunked
            r = conn.getresponse()
            out.append((r.status, r.read()))
            assert conn.sock is not None
            return conn.sock.version(), out
        finally:
            conn.close()

    async with serving(ssl=server_ctx) as port:
        version, got = await curcor.to_thread(talk, port)
    assert version is not None and version.startswith("TLSv1")
    assert [status for status, _ in got] == [200] * 5
    assert got[0][1] == got[2][1]  # kept alive
    assert [body for _, body in got[1::2]] == [b"hello", b"part0;part1;part2;"]
    assert got[4][1] == b"abcd"


@real
async def test_curl_against_the_curcor_https_server(server_ctx, ca_file):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    curl_ = functools.partial(run_curl, curl)

    async with serving(ssl=server_ctx) as port:
        base = f"https://127.0.0.1:{port}"
        # Two URLs in one run: the second reuses the TLS connection.
        code, out, err = await curcor.to_thread(
            curl_,
            "--cacert",
            ca_file,
            "-w",
            "|%{http_code}|%{num_connects}\n",
            f"{base}/",
            f"{base}/",
        )
        assert (code, err) == (0, b""), err
        assert out == b"hello|200|1\nhello|200|0\n"

        # By name (SNI and the name check), still to 127.0.0.1.
        code, out, err = await curcor.to_thread(
            curl_,
            "--cacert",
            ca_file,
            "--resolve",
            f"curcor.test:{port}:127.0.0.1",
            f"https://curcor.test:{port}/host",
        )
        assert (code, err, out) == (0, b"", f"curcor.test:{port}".encode())

        # A body over 1 KiB: curl asks for 100-continue first.
        payload = "y" * 5000
        code, out, err = await curcor.to_thread(
            curl_, "--cacert", ca_file, "--data-binary", payload, f"{base}/echo"
        )
        assert (code, err, out) == (0, b"", payload.encode())

        # Without the CA curl refuses the certificate (exit 60).
        code, out, err = await curcor.to_thread(curl_, f"{base}/")
        assert code == 60, err
        assert out == b""

        # And the server still serves.
        code, out, err = await curcor.to_thread(curl_, "--cacert", ca_file, f"{base}/")
        assert (code, out) == (0, b"hello"), err


@real
async def test_the_curcor_client_against_a_stdlib_https_server(server_ctx, client_ctx):
    # The handshake runs on the first read, in the connection's thread.
    def wrap(sock):
        return server_ctx.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )

    async with stdlib_serving(wrap) as port:
        base = f"https://127.0.0.1:{port}"
        async with h.Client(base_url=base, ssl=client_ctx) as c:
            one = await (await c.get("/a", params={"q": "1 2"})).text()
            two = await (await c.get("/b")).text()
            r = await c.post("/rev", body=b"abc")
            assert (r.status, await r.read()) == (201, b"cba")
    assert one.startswith("stdlib /a?q=1+2 ")
    assert one.split()[-1] == two.split()[-1]  # same client port: kept alive


# -- failures ----------------------------------------------------------------------


@real
@pytest.mark.parametrize("trust", ["system CAs", "no CA at all"])
async def test_a_client_that_does_not_trust_the_ca_gets_a_clear_error(
    server_ctx, client_ctx, trust
):
    ctx = None if trust == "system CAs" else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    async with serving(ssl=server_ctx) as port:
        async with h.Client(ssl=ctx) as c:
            with pytest.raises(net.TLSError) as info:
                await c.get(f"https://127.0.0.1:{port}/")
        # The server goes on serving clients that do trust it.
        async with h.Client(ssl=client_ctx) as c:
            assert (await c.get(f"https://127.0.0.1:{port}/")).status == 200
    message = str(info.value)
    assert message.startswith(f"https://127.0.0.1:{port}: TLS handshake failed")
    assert "certificate verify failed" in message
    assert "not signed by a CA this Client trusts" in message
    assert "Client(ssl=ssl.create_default_context(cafile=" in message
    assert isinstance(info.value, OSError)  # callers catching OSError still do
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


@real
async def test_a_certificate_for_another_host_gets_a_clear_error(ca, client_ctx):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("curcor.test").configure_cert(ctx)  # not 127.0.0.1
    async with serving(ssl=ctx) as port:
        async with h.Client(base_url=f"https://127.0.0.1:{port}", ssl=client_ctx) as c:
            with pytest.raises(net.TLSError) as info:
                await c.get("/")
    message = str(info.value)
    assert message.startswith(f"https://127.0.0.1:{port}: TLS handshake failed")
    assert "mismatch" in message
    assert "the certificate does not name '127.0.0.1'" in message
    assert "subjectAltName" in message


@real
async def test_https_to_a_plain_http_server_says_to_use_http(client_ctx):
    async with serving() as port:
        async with h.Client(ssl=client_ctx, timeout=3) as c:
            with pytest.raises(net.TLSError) as info:
                await c.get(f"https://127.0.0.1:{port}/")
            assert (await c.get(f"http://127.0.0.1:{port}/")).status == 200
    message = str(info.value)
    assert f"https://127.0.0.1:{port}: TLS handshake failed" in message
    assert "use an http:// URL" in message


@real
async def test_plain_http_on_the_https_port_neither_hangs_nor_stops_the_server(
    server_ctx, client_ctx, caplog
):
    caplog.set_level("ERROR", logger="curcor.http")

    async def plain_request(port: int) -> bytes:
        """A plaintext GET; everything the server sends until it closes."""
        s = await net.dial_tcp("127.0.0.1", port)
        try:
            s.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await s.drain()
            out = b""
            with curcor.timeout(3):
                while chunk := await s.read():
                    out += chunk
            return out
        finally:
            s.close()

    async with serving(ssl=server_ctx, header_timeout=1.0) as port:
        # One plaintext client says nothing at all, and holds its connection.
        silent = await net.dial_tcp("127.0.0.1", port)
        async with h.Client(base_url=f"https://127.0.0.1:{port}", ssl=client_ctx) as c:
            async with curcor.TaskGroup() as tg:
                plain = [tg.go(plain_request(port)) for _ in range(10)]
                tls = [tg.go(c.get("/peer")) for _ in range(10)]
            for t in plain:
                assert b"HTTP/1.1" not in await t.join()  # a TLS alert, then EOF
            for t in tls:
                assert (await t.join()).status == 200

            # The curcor client on http:// to the TLS port: an error, no hang.
            async with h.Client(timeout=3) as wrong:
                with pytest.raises(h.ProtocolError):
                    await wrong.get(f"http://127.0.0.1:{port}/")

            # The silent one is closed at the header timeout; TLS goes on.
            with curcor.timeout(5):
                assert await silent.read() == b""
            silent.close()
            assert await (await c.get("/")).read() == b"hello"
    assert [r.getMessage() for r in caplog.records] == []


@real
async def test_serve_http_and_client_refuse_the_wrong_kind_of_context(
    server_ctx, client_ctx
):
    with pytest.raises(ValueError, match="needs a server context"):
        await h.serve_http(app, ssl=client_ctx)
    with pytest.raises(TypeError, match=r"takes an ssl\.SSLContext"):
        await h.serve_http(app, ssl=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a client context"):
        h.Client(ssl=server_ctx)
    with pytest.raises(TypeError, match=r"takes an ssl\.SSLContext"):
        h.Client(ssl="ca.pem")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not an http:// or https:// URL"):
        h.Client(base_url="wss://127.0.0.1/")


@real
async def test_an_early_413_over_https_lingers_and_logs_nothing(
    server_ctx, client_ctx, caplog
):
    caplog.set_level("ERROR", logger="curcor.http")
    async with serving(ssl=server_ctx, max_body_bytes=1000) as port:
        s = await net.dial_tcp("127.0.0.1", port, ssl=client_ctx)
        s.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        s.write(b"x" * 2000)
        await s.drain()
        with curcor.timeout(3):
            head = await s.read_until(b"\r\n")
        s.close()
    assert head.startswith(b"HTTP/1.1 413 ")
    assert [r.getMessage() for r in caplog.records] == []

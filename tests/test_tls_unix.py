"""TLS (with a certificate authority made in the test) and Unix sockets."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess

import pytest
import trustme

import curcor
from curcor import net

real = pytest.mark.curcor(clock="real")


@pytest.fixture
def ca():
    return trustme.CA()


@pytest.fixture
def server_context(ca):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture
def client_context(ca):
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


async def _echo(stream: net.Stream) -> None:
    while data := await stream.read():
        stream.write(data)
        await stream.drain()


@real
async def test_tls_echo_with_a_verified_certificate(server_context, client_context):
    async with curcor.TaskGroup() as tg:
        port = await tg.start(
            lambda task_status: net.serve_tcp(
                _echo, ssl=server_context, task_status=task_status
            )
        )
        s = await net.dial_tcp("localhost", port, ssl=client_context)
        payload = os.urandom(200_000)
        s.write(payload)
        reader = curcor.go(s.read_exactly(len(payload)))
        await s.drain()
        assert await reader.join() == payload
        assert s.socket.getpeercert()["subjectAltName"]  # type: ignore[attr-defined]
        s.close()
        tg.cancel_scope.cancel()


@real
async def test_tls_handshake_with_an_untrusted_certificate_is_a_clear_error(
    server_context,
):
    async with curcor.TaskGroup() as tg:
        port = await tg.start(
            lambda task_status: net.serve_tcp(
                _echo, ssl=server_context, task_status=task_status
            )
        )
        untrusting = ssl.create_default_context()  # does not know the test CA
        with pytest.raises(net.TLSError, match=r"handshake with .* failed"):
            await net.dial_tcp("localhost", port, ssl=untrusting)
        tg.cancel_scope.cancel()


@real
async def test_tls_checks_the_server_name(server_context, client_context):
    async with curcor.TaskGroup() as tg:
        port = await tg.start(
            lambda task_status: net.serve_tcp(
                _echo, ssl=server_context, task_status=task_status
            )
        )
        with pytest.raises(net.TLSError, match="failed"):
            await net.dial_tcp(
                "127.0.0.1", port, ssl=client_context, server_hostname="example.org"
            )
        tg.cancel_scope.cancel()


@real
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
async def test_openssl_s_client_talks_to_a_tls_server(ca, server_context, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    async def one_line(stream: net.Stream) -> None:
        stream.write(await stream.read_until(b"\n"))
        await stream.drain()  # then the server closes; s_client exits

    async with curcor.TaskGroup() as tg:
        port = await tg.start(
            lambda task_status: net.serve_tcp(
                one_line, ssl=server_context, task_status=task_status
            )
        )

        def client() -> str:
            out = subprocess.run(
                [
                    "openssl",
                    "s_client",
                    "-connect",
                    f"127.0.0.1:{port}",
                    "-servername",
                    "localhost",
                    "-CAfile",
                    str(ca_file),
                    "-quiet",
                    "-ign_eof",
                    "-verify_return_error",
                ],
                input=b"through openssl\n",
                capture_output=True,
                timeout=20,
            )
            return out.stdout.decode()

        assert "through openssl" in await curcor.to_thread(client)
        tg.cancel_scope.cancel()


@real
async def test_unix_socket_echo(tmp_path):
    path = str(tmp_path / "echo.sock")
    async with curcor.TaskGroup() as tg:
        where = await tg.start(
            lambda task_status: net.serve_unix(_echo, path, task_status=task_status)
        )
        assert where == path
        s = await net.dial_unix(path)
        s.write(b"over unix\n")
        await s.drain()
        assert await s.read_until(b"\n") == b"over unix\n"
        s.close()
        tg.cancel_scope.cancel()


@real
async def test_a_client_that_breaks_tls_ends_its_connection_not_the_server(
    server_context, client_context
):
    async with curcor.TaskGroup() as tg:
        port = await tg.start(
            lambda task_status: net.serve_tcp(
                _echo, ssl=server_context, task_status=task_status
            )
        )
        bad = await net.dial_tcp("localhost", port, ssl=client_context)
        # A record with a bad MAC, written under the TLS layer.
        await bad.socket.socket.sendall(b"\x17\x03\x03\x00\x05hello")
        await curcor.sleep(0.05)
        bad.close()
        with curcor.timeout(5):
            good = await net.dial_tcp("localhost", port, ssl=client_context)
            good.write(b"still here\n")
            await good.drain()
            assert await good.read_until(b"\n") == b"still here\n"
        good.close()
        tg.cancel_scope.cancel()


def test_tls_error_reads_as_its_message():
    assert str(net.TLSError("handshake failed")) == "handshake failed"


@real
async def test_a_cancelled_tls_drain_loses_and_repeats_nothing(
    server_context, client_context
):
    """Found by a trial: a drain cancelled while the peer did not read
    dropped encrypted records and re-encrypted their bytes; the peer then
    failed with a bad record MAC."""
    payload = os.urandom(8 << 20)  # far more than the socket buffers hold
    async with await net.listen_tcp(ssl=server_context) as listener:
        dialing = curcor.go(
            net.dial_tcp("127.0.0.1", listener.port, ssl=client_context)
        )
        server = await listener.accept()
        await server.socket.do_handshake()
        client = await dialing.join()
        client.write_limit = len(payload) + 1
        client.write(payload)
        with curcor.move_on_after(0.2) as scope:
            await client.drain()  # the server is not reading yet
        assert scope.cancelled_caught
        reader = curcor.go(server.read_exactly(len(payload)))
        await client.drain()
        assert await reader.join() == payload
        client.close()
        server.close()

"""An echo server on curcor: every byte a client sends comes back.

    curcor run examples/echo_server.py --port 7000
    # then, e.g.: printf 'hello\\n' | nc 127.0.0.1 7000

``--port 0`` picks a free port; the port is printed on the first line.
"""

from __future__ import annotations

import argparse

import curcor
from curcor import net


async def echo(stream: net.Stream) -> None:
    """Send back everything the client sends until it closes."""
    while data := await stream.read():
        stream.write(data)
        await stream.drain()


async def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM ends it gracefully)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7000)
    args = parser.parse_args(argv)
    async with curcor.TaskGroup() as tg:
        port = await tg.start(
            lambda task_status: net.serve_tcp(
                echo, args.host, args.port, task_status=task_status
            )
        )
        print(f"echo server listening on {args.host}:{port}", flush=True)


if __name__ == "__main__":
    curcor.run(main())

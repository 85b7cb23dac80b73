"""http_hello: the smallest curcor HTTP service.

Usage::

    python examples/http_hello.py [--port 8080] [--host 127.0.0.1]

It serves ``hello`` on ``/`` and the health report every curcor service
exposes on ``/v1/health`` (``{"status": "ok", "version": ..., "weight":
100}``). It prints the address it listens on (``--port 0`` picks a free
port). Ctrl-C or SIGTERM shuts it down gracefully: requests in flight get
up to five seconds to finish.
"""

from __future__ import annotations

import argparse
import functools
import sys

import curcor
from curcor.net import http


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8080, help="0 picks one")
    return parser.parse_args(argv)


def make_app(version: str) -> http.App:
    """Route ``/`` to hello and ``/v1/health`` to the health handler."""
    health = http.health_handler(version)

    async def app(request: http.Request) -> http.Response:
        if request.path == "/v1/health":
            return await health(request)
        if request.path == "/":
            return http.Response(body="hello")
        return http.Response(404, body="not found\n")

    return app


async def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    app = make_app(curcor.__version__)
    async with curcor.TaskGroup() as tg:
        serve = functools.partial(http.serve_http, app, args.host, args.port)
        port = await tg.start(serve)
        print(f"listening on http://{args.host}:{port}/", flush=True)


def cli(argv: list[str] | None = None) -> int:
    """Run until interrupted; exit 0 after a graceful shutdown."""
    try:
        curcor.run(main(argv))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))

"""A chat server: many clients, one broadcast hub on channels.

    curcor run examples/chat.py --port 7001
    # then connect several clients, e.g.: nc 127.0.0.1 7001

Each client's lines go to a hub task over a channel; the hub sends every
line to every client's own outbox channel, and a writer task per client
sends its outbox to the socket. A slow client's outbox fills up and it is
dropped rather than slowing everyone down.
"""

from __future__ import annotations

import argparse
import itertools

import curcor
from curcor import net

# Lines a client may fall behind before it is dropped. Arbitrary.
OUTBOX = 256


class Hub:
    """The broadcast hub: one task owns the set of clients."""

    def __init__(self) -> None:
        self.inbox = curcor.Channel(1024)
        self.joins = curcor.Channel()
        self.leaves = curcor.Channel()
        self.clients: dict[int, curcor.Channel] = {}

    async def run(self) -> None:
        """Route joins, leaves and lines until cancelled."""
        while True:
            i, value = await curcor.select(
                curcor.recv(self.joins),
                curcor.recv(self.leaves),
                curcor.recv(self.inbox),
            )
            item, _ok = value
            if i == 0:
                self.clients[item[0]] = item[1]
            elif i == 1:
                outbox = self.clients.pop(item, None)
                if outbox is not None and not outbox.closed:
                    outbox.close()
            else:
                self.broadcast(item)

    def broadcast(self, line: bytes) -> None:
        """Offer ``line`` to every client; drop those whose outbox is full."""
        for cid, outbox in list(self.clients.items()):
            if not outbox.try_send(line):
                del self.clients[cid]
                outbox.close()


async def session(hub: Hub, ids: itertools.count, stream: net.Stream) -> None:
    """One client: read its lines into the hub, write the hub's lines out."""
    cid = next(ids)
    outbox = curcor.Channel(OUTBOX)
    await hub.joins.send((cid, outbox))
    await hub.inbox.send(b"* client %d joined\n" % cid)

    async def writer() -> None:
        async for line in outbox:
            stream.write(line)
            await stream.drain()

    try:
        async with curcor.TaskGroup() as tg:
            tg.go(writer())
            while True:
                try:
                    line = await stream.read_until(b"\n", limit=4096)
                except (net.IncompleteReadError, net.LimitOverrunError):
                    break
                await hub.inbox.send(b"%d: %s" % (cid, line))
            tg.cancel_scope.cancel()
    finally:
        # Say goodbye even when cancelled, but briefly: while the server
        # shuts down the hub may already be gone.
        with curcor.CancelScope(shield=True, deadline=curcor.now() + 1):
            await hub.leaves.send(cid)
            await hub.inbox.send(b"* client %d left\n" % cid)


async def main(argv: list[str] | None = None) -> None:
    """Serve the chat until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7001)
    args = parser.parse_args(argv)
    hub = Hub()
    ids = itertools.count(1)
    async with curcor.TaskGroup() as tg:
        tg.go(hub.run(), name="chat.hub")
        port = await tg.start(
            lambda task_status: net.serve_tcp(
                lambda s: session(hub, ids, s),
                args.host,
                args.port,
                task_status=task_status,
            )
        )
        print(f"chat listening on {args.host}:{port}", flush=True)


if __name__ == "__main__":
    curcor.run(main())

"""A TCP proxy the campaign owns between one service and the RabbitMQ cluster.

It plays the load balancer a production cluster has in front of it (a new connection goes to the
first node that accepts), and it is where a network partition is made: `cut()` stops the
service's traffic both ways (nothing is closed, nothing gets through, as when a link drops every
packet) until `heal()`, when what was held goes on as TCP's retransmissions would. No iptables
needed, and it only ever touches ports the campaign owns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

from twinbill_common.mongo import free_port


class Proxy:
    """Listens on `port`; each connection is forwarded to the first upstream port that accepts."""

    def __init__(self, name: str, upstreams: list[int]) -> None:
        self.name = name
        self.upstreams = upstreams
        self.port = free_port()
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.connections: Counter[int] = Counter()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    def cut(self) -> None:
        """Partition: stop forwarding anything, both ways, for existing and new connections."""
        self.flowing.clear()

    def heal(self) -> None:
        self.flowing.set()

    def prefer(self, port: int) -> None:
        """New connections try upstream `port` first (the load balancer moved a client's node)."""
        self.upstreams = [port, *(p for p in self.upstreams if p != port)]

    def reset(self) -> None:
        """Close every connection through the proxy (its clients reconnect, to `upstreams[0]`)."""
        for writer in list(self._writers):
            writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self.flowing.wait()
            upstream = await self._connect()
            if upstream is None:
                return
            port, (up_reader, up_writer) = upstream
            self._writers.add(up_writer)
            self.connections[port] += 1
            try:
                await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
            finally:
                self.connections[port] -= 1
                self._writers.discard(up_writer)
                up_writer.close()
        finally:
            self._writers.discard(writer)
            writer.close()
            self._tasks.discard(task)

    async def _connect(self) -> tuple[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None:
        for port in self.upstreams:
            try:
                return port, await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 3.0)
            except (OSError, TimeoutError):
                continue
        return None

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await source.read(65536)
                if not data:
                    break
                # Partitioned: hold the bytes until the link heals, as TCP retransmits across a
                # short outage (dropping them would corrupt the stream rather than partition it).
                await self.flowing.wait()
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                sink.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

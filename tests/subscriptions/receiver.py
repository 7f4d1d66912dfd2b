"""A real local HTTP receiver for notifications: an asyncio server, stoppable and restartable.

It records every request (path, headers, JSON body) and answers with ``status`` (204 default):
in ``received`` when that is a success, else in ``refused``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field
from typing import Any

import httptools
import orjson


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def data_of(note: dict[str, Any]) -> list[dict[str, Any]]:
    """A notification's entities: ``data``, or its Features when it is a FeatureCollection."""
    data = note["data"]
    return list(data["features"]) if isinstance(data, dict) else list(data)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


class _Proto:
    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body = b""
        self.done = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    status: int = 204
    limit: int | None = None  # answer 413 to a notification of more entities than this
    received: list[Received] = field(default_factory=list)
    refused: list[Received] = field(default_factory=list)  # answered with a non-2xx status
    _server: asyncio.AbstractServer | None = None
    _event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port,
                                                  reuse_address=True)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            # Kept-alive connections must go too, or the sender would still get through.
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    def __post_init__(self) -> None:
        self._writers: set[asyncio.StreamWriter] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                proto = _Proto()
                parser = httptools.HttpRequestParser(proto)
                while not proto.done:
                    chunk = await reader.read(65536)
                    if not chunk:
                        return
                    parser.feed_data(chunk)
                if self._server is None:
                    return
                body = orjson.loads(proto.body) if proto.body else None
                note = Received(proto.url.decode(), proto.headers, body)
                status = self.status
                if self.limit is not None and len(data_of(body)) > self.limit:
                    status = 413
                (self.received if 200 <= status < 300 else self.refused).append(note)
                self._event.set()
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, httptools.HttpParserError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    def entities(self) -> list[dict[str, Any]]:
        """Every entity received, in order (a GeoJSON notification's Features)."""
        return [e for r in self.received for e in data_of(r.body)]

    async def wait_for(self, count: int, seconds: float = 10.0) -> list[Received]:
        """Wait until ``count`` notifications arrived (fails the test on timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while len(self.received) < count:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(
                    f"expected {count} notifications, got {len(self.received)}")
            self._event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), min(left, 0.5))
        return self.received

    async def wait_refused(self, count: int, seconds: float = 10.0) -> None:
        """Wait until ``count`` requests were refused (answered with a non-2xx ``status``)."""
        async with asyncio.timeout(seconds):
            while len(self.refused) < count:
                self._event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), 0.5)

    async def wait_for_entities(self, count: int, seconds: float = 10.0) -> list[dict[str, Any]]:
        """Wait until notifications holding ``count`` entities in all arrived (a notification
        carries every change that was waiting, so tests of *what* is sent count entities);
        fails the test on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while len(self.entities()) < count:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"expected {count} entities, got {len(self.entities())}"
                                     f" in {len(self.received)} notifications")
            self._event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), min(left, 0.5))
        return self.entities()

    async def quiet(self, seconds: float = 0.5) -> None:
        """Let pending deliveries arrive (to check that nothing more comes)."""
        await asyncio.sleep(seconds)

"""Sending one notification: HTTP(S) POST on a kept-alive connection, or an MQTT publish.

HTTP uses a small HTTP/1.1 client on asyncio streams with httptools' response parser (already
a dependency through uvicorn[standard]): one connection per subscription worker, kept alive, so
in-order delivery costs one round trip per notification and no connection set-up. A general
client (httpx) spends several times more CPU per request, which is what caps notifications/s.

MQTT follows the NGSI-LD MQTT binding: the message is ``{"metadata": {...headers}, "body":
notification}`` published to the URI's path as topic, with QoS from ``notifierInfo``
``MQTT-QoS`` (default 0) — one client per broker, shared by the subscriptions using it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import httptools
import orjson

from nakhon.core.logs import get_logger

log = get_logger("nakhon.subscriptions.delivery")


class DeliveryError(Exception):
    """A failed attempt. ``retry`` tells a transient failure from a refusal; ``status`` is the
    receiver's HTTP status, when it answered."""

    def __init__(self, detail: str, *, retry: bool = True, status: int | None = None) -> None:
        super().__init__(detail)
        self.retry = retry
        self.status = status


@dataclass(slots=True)
class _Response:
    status: int = 0
    done: bool = False
    close: bool = False


class _Parser:
    """httptools callbacks."""

    def __init__(self, response: _Response) -> None:
        self.response = response

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"connection" and value.lower() == b"close":
            self.response.close = True

    def on_message_complete(self) -> None:
        self.response.done = True


class HttpConnection:
    """One kept-alive HTTP/1.1 connection to one origin."""

    def __init__(self, uri: str) -> None:
        parts = urlsplit(uri)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.host_header = parts.netloc.rsplit("@", 1)[-1]
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._head: tuple[list[tuple[str, str]], bytes] | None = None

    async def _connect(self) -> None:
        ctx = ssl.create_default_context() if self.https else None
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port, ssl=ctx)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def post(self, headers: list[tuple[str, str]], body: bytes, seconds: float) -> int:
        """POST ``body``; returns the status. Raises DeliveryError on network trouble."""
        reused = self._writer is not None
        try:
            async with asyncio.timeout(seconds):  # no task per request (unlike wait_for)
                return await self._post(headers, body)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, EOFError,
                httptools.HttpParserError) as exc:
            self.close()
            if reused:  # the receiver may have closed an idle kept-alive connection: once more
                try:
                    async with asyncio.timeout(seconds):
                        return await self._post(headers, body)
                except (ConnectionError, OSError, asyncio.IncompleteReadError, EOFError,
                        httptools.HttpParserError) as again:
                    self.close()
                    raise DeliveryError(f"{type(again).__name__}: {again}") from again
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        except TimeoutError as exc:
            self.close()
            raise DeliveryError(f"no answer within {seconds:g} s") from exc

    async def _post(self, headers: list[tuple[str, str]], body: bytes) -> int:
        if self._writer is None:
            await self._connect()
        assert self._reader is not None and self._writer is not None
        head = self._head
        if head is None or head[0] is not headers:  # encoded once per headers list
            lines = [f"POST {self.target} HTTP/1.1", f"Host: {self.host_header}"]
            lines += [f"{k}: {v}" for k, v in headers]
            head = self._head = (headers, ("\r\n".join(lines) + "\r\n").encode("latin-1"))
        self._writer.write(b"%sContent-Length: %d\r\n\r\n%s" % (head[1], len(body), body))
        await self._writer.drain()
        response = _Response()
        parser = httptools.HttpResponseParser(_Parser(response))
        while not response.done:
            chunk = await self._reader.read(65536)
            if not chunk:
                raise EOFError("connection closed before the response was complete")
            parser.feed_data(chunk)
        response.status = parser.get_status_code()
        if response.close or not parser.should_keep_alive():
            self.close()
        return response.status


def classify(status: int) -> None:
    """Raise DeliveryError unless ``status`` is a success. 5xx, 408 and 429 are retried;
    other refusals are not (the receiver does not want this notification)."""
    if 200 <= status < 300:
        return
    retry = status >= 500 or status in (408, 429)
    raise DeliveryError(f"the receiver answered {status}", retry=retry, status=status)


class MqttHub:
    """One aiomqtt client per broker (host, port, credentials), connected on first use."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, int, str | None, str | None, bool], Any] = {}
        self._locks: dict[tuple[str, int, str | None, str | None, bool], asyncio.Lock] = {}

    async def publish(self, uri: str, qos: int, message: bytes, seconds: float) -> None:
        parts = urlsplit(uri)
        topic = unquote(parts.path.lstrip("/"))
        if not topic:
            raise DeliveryError("the MQTT endpoint has no topic", retry=False)
        tls = parts.scheme == "mqtts"
        key = (parts.hostname or "", parts.port or (8883 if tls else 1883),
               unquote(parts.username) if parts.username else None,
               unquote(parts.password) if parts.password else None, tls)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                client: Any = self._clients.get(key)
                if client is None:
                    client = await asyncio.wait_for(self._connect(key), seconds)
                    self._clients[key] = client
            await asyncio.wait_for(client.publish(topic, message, qos=qos), seconds)
        except Exception as exc:
            await self._drop(key)
            raise DeliveryError(f"MQTT {type(exc).__name__}: {exc}") from exc

    async def _connect(self, key: tuple[str, int, str | None, str | None, bool]) -> Any:
        import aiomqtt

        host, port, user, password, tls = key
        client = aiomqtt.Client(host, port, username=user, password=password,
                                tls_context=ssl.create_default_context() if tls else None)
        await client.__aenter__()
        return client

    async def _drop(self, key: tuple[str, int, str | None, str | None, bool]) -> None:
        client = self._clients.pop(key, None)
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    async def close(self) -> None:
        for key in list(self._clients):
            await self._drop(key)


def mqtt_message(headers: list[tuple[str, str]], body: bytes) -> bytes:
    """The MQTT binding's envelope: metadata (the would-be HTTP headers) and body (the
    notification's JSON as it is, not decoded and encoded again)."""
    return b'{"metadata":%s,"body":%s}' % (orjson.dumps(dict(headers)), body)

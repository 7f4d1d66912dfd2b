"""Fetching remote @context documents: bounded in time and size, public addresses only.

A request's ``@context`` (or ``Link`` header) makes the broker download a URL the client chose.
:class:`ContextFetcher` bounds that download and, by default, refuses any hop that would reach
a loopback, private or link-local address, so a client cannot use the broker to probe the
network it runs in (server-side request forgery). ``NAKHON_CONTEXT_FETCH_PRIVATE`` lifts that for
a context server inside a closed network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import httpx
import orjson

from nakhon.core.errors import LdContextNotAvailable

_MAX_REDIRECTS = 3



class ContextFetcher:
    """Bounded download of remote @context documents with httpx.

    The whole fetch (connect, redirects, body) must finish within ``timeout`` seconds, the body
    may not exceed ``max_bytes`` and at most 3 redirects are followed. The Content-Type is not
    checked (many published contexts are served as ``text/plain``); the body must be a JSON
    object with an ``@context`` member. Every failure is ``LdContextNotAvailable``.

    Unless ``allow_private`` is set, every hop (the URL and each redirect) must be http(s) to a
    host whose addresses are all public, and the connection actually made is checked again
    (a DNS answer that changes between the check and the connect is caught too): a client's
    @context must not make the broker reach its own network (server-side request forgery).
    """

    def __init__(self, *, timeout: float, max_bytes: int, allow_private: bool = False) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.allow_private = allow_private
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # Redirects are followed here, hop by hop, so that each target is checked.
            self._client = httpx.AsyncClient(
                follow_redirects=False, timeout=httpx.Timeout(self.timeout),
                headers={"Accept": "application/ld+json, application/json;q=0.9, */*;q=0.1"})
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client, if one was opened."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch(self, url: str) -> dict[str, Any]:
        """The JSON document at ``url`` (an object with ``@context``)."""
        try:
            async with asyncio.timeout(self.timeout):
                body = await self._get(url)
        except TimeoutError:
            raise LdContextNotAvailable(
                f"@context {url} not retrieved within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise LdContextNotAvailable(
                f"@context {url} could not be retrieved: {type(exc).__name__} {exc}".strip()
            ) from None
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise LdContextNotAvailable(f"@context {url} is not JSON") from None
        if not isinstance(doc, dict) or "@context" not in doc:
            raise LdContextNotAvailable(
                f"@context {url} is not a JSON-LD context document (no @context member)")
        return doc

    async def _get(self, url: str) -> bytes:
        target = httpx.URL(url)
        for _ in range(_MAX_REDIRECTS + 1):
            await self._check_target(url, target)
            async with self._http().stream("GET", target) as resp:
                self._check_peer(url, resp)
                if resp.is_redirect and "location" in resp.headers:
                    target = resp.url.join(resp.headers["location"])
                    continue
                return await self._body(url, resp)
        raise LdContextNotAvailable(
            f"@context {url} could not be retrieved: more than {_MAX_REDIRECTS} redirects")

    async def _body(self, url: str, resp: httpx.Response) -> bytes:
        if resp.status_code != 200:
            raise LdContextNotAvailable(
                f"@context {url} could not be retrieved: HTTP {resp.status_code}")
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise LdContextNotAvailable(self._too_big(url))
        buf = bytearray()
        async for chunk in resp.aiter_bytes():
            buf += chunk
            if len(buf) > self.max_bytes:
                raise LdContextNotAvailable(self._too_big(url))
        return bytes(buf)

    async def _check_target(self, url: str, target: httpx.URL) -> None:
        if target.scheme not in ("http", "https") or not target.host:
            raise LdContextNotAvailable(
                f"@context {url} could not be retrieved: only http(s) URLs are fetched")
        if self.allow_private:
            return
        port = target.port or (443 if target.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                target.host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise LdContextNotAvailable(
                f"@context {url} could not be retrieved: {target.host} does not resolve "
                f"({exc.strerror or exc})") from None
        for info in infos:
            if not is_public_address(str(info[4][0])):
                raise self._refused(url, target.host)

    def _check_peer(self, url: str, resp: httpx.Response) -> None:
        if self.allow_private:
            return
        stream = resp.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        if peer and not is_public_address(str(peer[0])):
            raise self._refused(url, resp.url.host)

    @staticmethod
    def _refused(url: str, host: str) -> LdContextNotAvailable:
        return LdContextNotAvailable(
            f"@context {url} is not fetched: {host} is not a public address (loopback, private "
            "and link-local networks are refused; see NAKHON_CONTEXT_FETCH_PRIVATE)")

    def _too_big(self, url: str) -> str:
        return f"@context {url} is larger than {self.max_bytes} bytes"


def is_public_address(text: str) -> bool:
    """Is this IP address globally routable? (IPv4-mapped IPv6 is judged as its IPv4.)"""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast

"""@context resolution: core, inline, remote (served from a local HTTP server), errors, caching.

The remote @contexts are the Smart Data Models ones in ../shared/data/sdm, served by a real
``http.server`` on 127.0.0.1 started by the fixture; nothing here touches the internet.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nakhon.broker import jsonld
from nakhon.broker.jsonld import (
    CORE_CONTEXT_URL,
    CORE_CONTEXT_URLS,
    CORE_TERM_MAP,
    DEFAULT_VOCAB,
    ContextResolver,
    TermMap,
)
from nakhon.core.errors import BadRequestData, LdContextNotAvailable

SDM = Path(__file__).resolve().parents[3] / "shared" / "data" / "sdm"
if not SDM.is_dir():  # running from another checkout layout
    SDM = Path("/work/shared/data/sdm")
DOMAINS = sorted(p.name for p in SDM.iterdir() if (p / "context.jsonld").is_file())
NGSI = "https://uri.etsi.org/ngsi-ld/"
TIMEOUT = 0.5
MAX_BYTES = 32_768


class ContextServer:
    """A threaded HTTP server with canned @context responses and a request counter."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.flaky_ok = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.hits[self.path] += 1
                server.respond(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.base + path

    def respond(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path
        if path.startswith("/sdm/"):
            file = SDM / path.removeprefix("/sdm/")
            if file.is_file():
                return self._send(h, 200, file.read_bytes(), "application/ld+json")
            return self._send(h, 404, b"{}")
        routes: dict[str, tuple[int, bytes]] = {
            "/nested.jsonld": (200, json.dumps({"@context": [
                self.url("/sdm/Weather/context.jsonld"),
                {"extra": "http://example.org/extra"}]}).encode()),
            "/prefixed.jsonld": (200, json.dumps({"@context": {
                "ex": "http://example.org/", "thing": "ex:thing",
                "kind": {"@id": "ex:kind", "@type": "@vocab"},
                "core": "ngsi-ld:coreish"}}).encode()),
            "/notjson": (200, b"<html>not json</html>"),
            "/nocontext": (200, b'{"terms": {}}'),
            "/array": (200, b"[1, 2]"),
            "/missing": (404, b"{}"),
            "/error": (500, b"{}"),
            "/big": (200, b'{"@context": {"a": "' + b"x" * MAX_BYTES + b'"}}'),
            "/flaky": (200 if self.flaky_ok else 500, b'{"@context": {"f": "http://f.org/f"}}'),
        }
        if path == "/slow":
            time.sleep(TIMEOUT * 3)
            return self._send(h, 200, b'{"@context": {}}')
        if path == "/big-unsized":  # no Content-Length: the limit must hold while streaming
            h.send_response(200)
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(b'{"@context": {"a": "' + b"y" * MAX_BYTES + b'"}}')
            h.close_connection = True
            return None
        if path == "/redirect":
            return self._redirect(h, self.url("/sdm/Parking/context.jsonld"))
        if path.startswith("/loop"):
            return self._redirect(h, self.url(f"/loop{len(path)}x"))
        status, body = routes.get(path, (404, b"{}"))
        return self._send(h, status, body, "text/plain" if path == "/prefixed.jsonld" else None)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes,
              ctype: str | None = "application/json") -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype or "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    @staticmethod
    def _redirect(h: BaseHTTPRequestHandler, to: str) -> None:
        h.send_response(302)
        h.send_header("Location", to)
        h.send_header("Content-Length", "0")
        h.end_headers()


@pytest.fixture
async def resolver() -> AsyncIterator[ContextResolver]:
    res = ContextResolver(timeout=TIMEOUT, max_bytes=MAX_BYTES, ttl=3600.0,
                          allow_private=True)  # the test server is on 127.0.0.1
    try:
        yield res
    finally:
        await res.aclose()


def _sdm_terms(domain: str) -> dict[str, str]:
    ctx = json.loads((SDM / domain / "context.jsonld").read_text())["@context"]
    out = {}
    for term, d in ctx.items():
        iri = d["@id"] if isinstance(d, dict) else d
        if not iri.startswith("@") and term not in jsonld.CORE_TERMS:
            out[term] = iri
    return out


# -- core --------------------------------------------------------------------------------


def test_core_urls_cover_every_published_version() -> None:
    assert f"{NGSI}v1/ngsi-ld-core-context.jsonld" in CORE_CONTEXT_URLS
    for minor in range(3, 10):
        assert f"{NGSI}v1/ngsi-ld-core-context-v1.{minor}.jsonld" in CORE_CONTEXT_URLS
    assert CORE_CONTEXT_URL in CORE_CONTEXT_URLS


async def test_core_only_contexts_need_no_network(resolver: ContextResolver,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_network(url: str) -> dict[str, Any]:
        raise AssertionError(f"fetched {url}")

    monkeypatch.setattr(resolver.fetcher, "fetch", no_network)
    ctx: Any
    for ctx in [None, [], *sorted(CORE_CONTEXT_URLS)]:
        assert await resolver.resolve(ctx) is CORE_TERM_MAP
    listed = await resolver.resolve(sorted(CORE_CONTEXT_URLS))
    assert listed == CORE_TERM_MAP and listed.source == sorted(CORE_CONTEXT_URLS)


def test_core_expand_and_compact() -> None:
    core = CORE_TERM_MAP
    assert core.expand("location") == NGSI + "location"
    assert core.expand("observedAt") == NGSI + "observedAt"
    assert core.expand("temperature") == DEFAULT_VOCAB + "temperature"
    assert core.expand("ngsi-ld:foo") == NGSI + "foo"
    assert core.expand("geojson:Point") == "https://purl.org/geojson/vocab#Point"
    assert core.expand("urn:ngsi-ld:Thing:1") == "urn:ngsi-ld:Thing:1"
    assert core.expand("http://example.org/a") == "http://example.org/a"
    assert core.compact(NGSI + "location") == "location"
    assert core.compact(NGSI + "hasJSON") == "json"
    assert core.compact(DEFAULT_VOCAB + "temperature") == "temperature"
    assert core.compact(NGSI + "notATerm") == "ngsi-ld:notATerm"
    assert core.compact("http://example.org/a") == "http://example.org/a"
    assert core.is_vocab_term("attributeList") and core.is_vocab_term(NGSI + "attributeList")
    assert not core.is_vocab_term("location")
    assert core.vocab == DEFAULT_VOCAB and core.link_url == CORE_CONTEXT_URL


def test_link_url_is_the_one_url_a_context_amounts_to() -> None:
    user = "http://example.org/ctx.jsonld"
    inline = {"a": "http://a.org/a"}
    cases: list[tuple[Any, str | None]] = [
        (None, CORE_CONTEXT_URL), ([], CORE_CONTEXT_URL), (user, user), ([user], user),
        ([CORE_CONTEXT_URL, user], user), ([user, sorted(CORE_CONTEXT_URLS)[0]], user),
        ([CORE_CONTEXT_URL], CORE_CONTEXT_URL), (inline, None), ([user, inline], None),
        ([user, user + "2"], None)]
    for source, expected in cases:
        assert TermMap(source, {}, {}, frozenset(), None).link_url == expected, source


def test_term_map_is_hashable_and_keyed_by_content() -> None:
    a = TermMap("x", {"a": "http://a/"}, {}, frozenset(), None)
    b = TermMap({"a": "http://a/"}, {"a": "http://a/"}, {}, frozenset(), None)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a.key != CORE_TERM_MAP.key and len(a.key) == 32


# -- remote --------------------------------------------------------------------------------


@pytest.mark.parametrize("domain", DOMAINS)
async def test_sdm_contexts_resolve_and_round_trip(resolver: ContextResolver,
                                                   server: ContextServer, domain: str) -> None:
    url = server.url(f"/sdm/{domain}/context.jsonld")
    tm = await resolver.resolve(url)
    terms = _sdm_terms(domain)
    assert terms
    for term, iri in terms.items():
        assert tm.expand(term) == iri
        assert tm.expand(tm.compact(iri)) == iri
    assert tm.expand("location") == NGSI + "location"
    assert tm.compact(NGSI + "location") == "location"
    assert tm.expand("undefinedThing") == DEFAULT_VOCAB + "undefinedThing"
    assert tm.source == url and tm.link_url == url
    # second resolve: the same object, no request
    before = server.hits[f"/sdm/{domain}/context.jsonld"]
    assert await resolver.resolve(url) is tm
    assert server.hits[f"/sdm/{domain}/context.jsonld"] == before == 1


async def test_list_mixing_core_remote_and_inline(resolver: ContextResolver,
                                                  server: ContextServer) -> None:
    ctx = [CORE_CONTEXT_URL, server.url("/sdm/Parking/context.jsonld"),
           {"myAttr": "http://example.org/myAttr", "ex": "http://example.org/ns#"}]
    tm = await resolver.resolve(ctx)
    assert tm.expand("myAttr") == "http://example.org/myAttr"
    assert tm.expand("availableSpotNumber") == _sdm_terms("Parking")["availableSpotNumber"]
    assert tm.expand("ex:z") == "http://example.org/ns#z"
    assert tm.compact("http://example.org/ns#z") == "ex:z"
    assert tm.expand("location") == NGSI + "location"
    assert tm.link_url is None and tm.source == ctx
    assert await resolver.resolve(json.loads(json.dumps(ctx))) is tm


async def test_nested_redirected_and_prefixed_remote_contexts(resolver: ContextResolver,
                                                              server: ContextServer) -> None:
    nested = await resolver.resolve(server.url("/nested.jsonld"))
    assert nested.expand("extra") == "http://example.org/extra"
    assert nested.expand("windSpeed") == _sdm_terms("Weather")["windSpeed"]
    redirected = await resolver.resolve(server.url("/redirect"))
    assert redirected.expand("occupancyDetectionType") == \
        _sdm_terms("Parking")["occupancyDetectionType"]
    # served as text/plain: accepted; prefixes of the user and of the core both work
    pre = await resolver.resolve(server.url("/prefixed.jsonld"))
    assert pre.expand("thing") == "http://example.org/thing"
    assert pre.expand("ex:other") == "http://example.org/other"
    assert pre.compact("http://example.org/other") == "ex:other"
    assert pre.expand("core") == NGSI + "coreish"
    assert pre.is_vocab_term("kind") and not pre.is_vocab_term("thing")


@pytest.mark.parametrize("path", ["/notjson", "/nocontext", "/array", "/missing", "/error",
                                  "/big", "/big-unsized", "/loop"])
async def test_unusable_remote_contexts(resolver: ContextResolver, server: ContextServer,
                                        path: str) -> None:
    with pytest.raises(LdContextNotAvailable) as err:
        await resolver.resolve(server.url(path))
    assert err.value.status == 503 and server.url(path) in err.value.detail


async def test_unreachable_and_slow_contexts_fail_within_the_timeout(
        resolver: ContextResolver, server: ContextServer) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    for url in (f"http://127.0.0.1:{port}/ctx.jsonld", server.url("/slow")):
        started = time.monotonic()
        with pytest.raises(LdContextNotAvailable):
            await resolver.resolve([url, {"a": "http://a.org/a"}])
        assert time.monotonic() - started < TIMEOUT + 0.5


async def test_expired_context_is_fetched_again_and_stale_copy_survives_outage(
        server: ContextServer) -> None:
    res = ContextResolver(timeout=TIMEOUT, max_bytes=MAX_BYTES, ttl=0.2, allow_private=True)
    url = server.url("/flaky")
    try:
        server.flaky_ok = True
        assert (await res.resolve(url)).expand("f") == "http://f.org/f"
        await res.resolve(url)
        assert server.hits["/flaky"] == 1
        await asyncio.sleep(0.3)
        await res.resolve(url)
        assert server.hits["/flaky"] == 2
        server.flaky_ok = False
        await asyncio.sleep(0.3)
        assert (await res.resolve(url)).expand("f") == "http://f.org/f"  # stale copy
        assert server.hits["/flaky"] == 3
    finally:
        server.flaky_ok = True
        await res.aclose()


# -- inline contexts and errors ----------------------------------------------------------


async def test_inline_context_with_prefixes_and_vocab_terms(resolver: ContextResolver) -> None:
    ctx = {"ex": "http://example.org/", "a": "ex:a",
           "colour": {"@id": "ex:colour", "@type": "@vocab"}, "Red": "ex:Red"}
    tm = await resolver.resolve(ctx)
    assert tm.expand("a") == "http://example.org/a"
    assert tm.expand("ex:b") == "http://example.org/b"
    assert tm.compact("http://example.org/a") == "a"
    assert tm.compact("http://example.org/b") == "ex:b"
    assert tm.is_vocab_term("colour") and tm.is_vocab_term("http://example.org/colour")
    assert tm.expand("Red") == "http://example.org/Red" and tm.compact(tm.expand("Red")) == "Red"
    assert tm.expand("plain") == DEFAULT_VOCAB + "plain"
    assert tm.compact(DEFAULT_VOCAB + "plain") == "plain"


async def test_user_vocab_replaces_default_and_core_terms_keep_their_meaning(
        resolver: ContextResolver) -> None:
    tm = await resolver.resolve({"@vocab": "http://example.org/v/",
                                 "location": "http://example.org/notTheCore"})
    assert tm.expand("anything") == "http://example.org/v/anything"
    assert tm.compact("http://example.org/v/anything") == "anything"
    assert tm.expand("location") == NGSI + "location"
    assert tm.compact(NGSI + "location") == "location"


@pytest.mark.parametrize("bad", [5, "not-a-url", "urn:x:y", [["http://a.org/"]], {"a": 5},
                                 {"@version": 2}, {"a": {"@id": "ex:a", "@container": "@bad"}},
                                 [None], {"@context": {"a": {"@reverse": 5}}}])
async def test_invalid_contexts_are_bad_request_data(resolver: ContextResolver,
                                                     bad: Any) -> None:
    with pytest.raises(BadRequestData) as err:
        await resolver.resolve(bad)
    assert err.value.status == 400 and "@context" in err.value.detail


async def test_seen_context_is_a_lookup_without_pyld(resolver: ContextResolver,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = {"speed": "http://example.org/speed"}
    first = await resolver.resolve(ctx)

    def boom(*args: Any) -> Any:
        raise AssertionError("PyLD called for a context already seen")

    monkeypatch.setattr(jsonld, "_process", boom)
    assert await resolver.resolve({"speed": "http://example.org/speed"}) is first
    assert first.expand("speed") is first.expand("speed")  # memoised


async def test_concurrent_resolves_agree(resolver: ContextResolver,
                                         server: ContextServer) -> None:
    path = "/sdm/KeyPerformanceIndicator/context.jsonld"
    before = server.hits[path]
    maps = await asyncio.gather(*(resolver.resolve(server.url(path)) for _ in range(5)))
    assert len({m.key for m in maps}) == 1
    assert server.hits[path] == before + 1  # one request for five concurrent resolves

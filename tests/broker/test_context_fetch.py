"""Remote @context fetching refuses non-public addresses by default (server-side request forgery).

The served @contexts come from the real HTTP server of ``test_jsonld`` on 127.0.0.1; the refused
addresses are refused before any connection is made, so nothing here leaves the machine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nakhon.broker import context_fetch
from nakhon.broker.context_fetch import ContextFetcher, is_public_address
from nakhon.broker.jsonld import ContextResolver
from nakhon.core.errors import LdContextNotAvailable
from tests.broker.test_jsonld import ContextServer
from tests.conftest import Api


@pytest.fixture
async def guarded() -> AsyncIterator[ContextResolver]:
    res = ContextResolver(timeout=2.0, max_bytes=65_536, ttl=60.0)  # the default: public only
    try:
        yield res
    finally:
        await res.aclose()


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("1.1.1.1", True), ("2606:4700:4700::1111", True),
    ("127.0.0.1", False), ("127.8.9.10", False), ("10.1.2.3", False), ("172.16.0.1", False),
    ("192.168.1.10", False), ("169.254.169.254", False), ("100.64.0.1", False),
    ("0.0.0.0", False), ("224.0.0.1", False), ("255.255.255.255", False),
    ("::1", False), ("::", False), ("fe80::1%eth0", False), ("fc00::1", False),
    ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False), ("::ffff:8.8.8.8", True),
    ("not-an-address", False),
])
def test_public_address_classification(address: str, public: bool) -> None:
    assert is_public_address(address) is public


async def test_loopback_context_is_refused_without_a_request(
        guarded: ContextResolver, server: ContextServer) -> None:
    url = server.url("/sdm/Parking/context.jsonld")
    before = server.hits[url.removeprefix(server.base)]
    with pytest.raises(LdContextNotAvailable) as err:
        await guarded.resolve(url)
    assert err.value.status == 503
    assert "not a public address" in err.value.detail and url in err.value.detail
    assert server.hits[url.removeprefix(server.base)] == before  # never contacted


@pytest.mark.parametrize("url", [
    "http://localhost:9/ctx.jsonld",
    "http://[::1]:9/ctx.jsonld",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.20.30.40/ctx.jsonld",
    "http://[::ffff:127.0.0.1]:9/ctx.jsonld",
    "http://2130706433/ctx.jsonld",  # 127.0.0.1 written as one number
])
async def test_internal_targets_are_refused(url: str) -> None:
    fetcher = ContextFetcher(timeout=2.0, max_bytes=65_536)
    try:
        with pytest.raises(LdContextNotAvailable) as err:
            await fetcher.fetch(url)
    finally:
        await fetcher.aclose()
    assert "not a public address" in err.value.detail or "does not resolve" in err.value.detail


async def test_only_http_urls_are_fetched() -> None:
    fetcher = ContextFetcher(timeout=2.0, max_bytes=65_536, allow_private=True)
    try:
        with pytest.raises(LdContextNotAvailable) as err:
            await fetcher.fetch("file:///etc/passwd")
    finally:
        await fetcher.aclose()
    assert "only http(s)" in err.value.detail


async def test_every_redirect_hop_is_checked(server: ContextServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A public first hop may not redirect the broker into its own network."""
    # Treat the test server's 127.0.0.1 as the "public" internet; everything else stays refused.
    monkeypatch.setattr(context_fetch, "is_public_address", lambda a: a == "127.0.0.1")
    fetcher = ContextFetcher(timeout=2.0, max_bytes=65_536)
    try:
        doc = await fetcher.fetch(server.url("/redirect"))  # → 127.0.0.1 again: allowed
        assert "@context" in doc
        monkeypatch.setattr(server, "base", server.base.replace("127.0.0.1", "[::1]"))
        with pytest.raises(LdContextNotAvailable) as err:  # → [::1]: refused at the hop
            await fetcher.fetch(server.url("/redirect").replace("[::1]", "127.0.0.1"))
    finally:
        await fetcher.aclose()
    assert "[::1]" in err.value.detail or "::1" in err.value.detail


async def test_private_fetching_can_be_allowed(server: ContextServer) -> None:
    res = ContextResolver(timeout=2.0, max_bytes=65_536, ttl=60.0, allow_private=True)
    try:
        terms = await res.resolve(server.url("/sdm/Parking/context.jsonld"))
    finally:
        await res.aclose()
    assert terms.expand("ParkingSpot").startswith("https://")


async def test_the_app_refuses_a_loopback_link_header(api: Api, server: ContextServer) -> None:
    link = (f'<{server.url("/sdm/Parking/context.jsonld")}>; '
            'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"')
    resp = await api.get("/ngsi-ld/v1/entities", params={"type": "ParkingSpot"},
                         headers={"Link": link})
    assert resp.status_code == 503
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["type"] == "https://uri.etsi.org/ngsi-ld/errors/LdContextNotAvailable"

"""The /jsonldContexts service functions (clause 5.13) and the @context stores."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nakhon.broker.contexts import NAMESPACE, InMemoryContextStore, KvContextStore
from nakhon.broker.jsonld import (
    ContextResolver,
    add_context,
    delete_context,
    get_context,
    list_contexts,
)
from nakhon.core.errors import (
    BadRequestData,
    LdContextNotAvailable,
    OperationNotSupported,
    ResourceNotFound,
)

BASE = "http://broker.test:8000"
REMOTE = "http://remote.test/ctx.jsonld"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class FakeKv:
    """The key-value part of a storage engine, in memory."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], Any] = {}

    async def kv_get(self, namespace: str, key: str) -> Any | None:
        return self.data.get((namespace, key))

    async def kv_put(self, namespace: str, key: str, value: Any) -> None:
        self.data[(namespace, key)] = value

    async def kv_delete(self, namespace: str, key: str) -> bool:
        return self.data.pop((namespace, key), None) is not None

    async def kv_list(self, namespace: str) -> dict[str, Any]:
        return {k: v for (ns, k), v in self.data.items() if ns == namespace}


class FakeFetcher:
    """Stands in for the HTTP fetcher: counts calls, can be made to fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.term = "http://remote.test/a"

    async def fetch(self, url: str) -> dict[str, Any]:
        self.calls += 1
        if self.fail or url != REMOTE:
            raise LdContextNotAvailable(f"@context {url} could not be retrieved")
        return {"@context": {"a": self.term}}


@pytest.fixture
async def resolver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ContextResolver]:
    res = ContextResolver(timeout=1.0, max_bytes=65536, ttl=600.0,
                          store=KvContextStore(FakeKv()))
    monkeypatch.setattr(res, "fetcher", FakeFetcher())
    yield res


def fetcher(res: ContextResolver) -> FakeFetcher:
    f = res.fetcher
    assert isinstance(f, FakeFetcher)
    return f


async def test_add_serve_and_resolve_hosted_context(resolver: ContextResolver) -> None:
    body = {"@context": {"speed": "http://example.org/speed", "ex": "http://example.org/"}}
    info = await add_context(resolver, body, BASE + "/")
    assert info.kind == "Hosted" and info.local_id.startswith("urn:uuid:")
    assert info.url == f"{BASE}/ngsi-ld/v1/jsonldContexts/{info.local_id}"
    assert ISO.match(info.timestamp)
    assert await get_context(resolver, info.local_id) == body
    tm = await resolver.resolve(info.url)  # served locally: the fetcher is never asked
    assert tm.expand("speed") == "http://example.org/speed"
    assert fetcher(resolver).calls == 0
    # the same id under another host name (proxy, other Host header) is still local
    other = await resolver.resolve(f"http://10.0.0.1/ngsi-ld/v1/jsonldContexts/{info.local_id}")
    assert other.expand("ex:x") == "http://example.org/x" and fetcher(resolver).calls == 0


async def test_details_and_kind_filter(resolver: ContextResolver) -> None:
    hosted = await add_context(resolver, {"@context": [{"h": "http://h.org/h"}]}, BASE)
    await resolver.resolve(REMOTE)
    await resolver.resolve(hosted.url)
    await resolver.resolve(hosted.url)
    assert await list_contexts(resolver) == [hosted.url, REMOTE]
    assert await list_contexts(resolver, kind="hosted") == [hosted.url]
    assert await list_contexts(resolver, kind="Cached") == [REMOTE]
    assert await list_contexts(resolver, kind="ImplicitlyCreated") == []
    detailed = await list_contexts(resolver, details=True)
    h, c = detailed
    assert set(h) == {"URL", "localId", "kind", "timestamp", "lastUsage", "numberOfHits"}
    assert h["URL"] == hosted.url and h["kind"] == "Hosted" and h["numberOfHits"] == 2
    assert ISO.match(h["lastUsage"])
    assert c["kind"] == "Cached" and c["URL"] == REMOTE and c["numberOfHits"] == 1
    assert ISO.match(c["extraInfo"]["expiresAt"])
    with pytest.raises(BadRequestData):
        await list_contexts(resolver, kind="Remote")


async def test_cached_contexts_give_metadata_only_and_can_be_reloaded(
        resolver: ContextResolver) -> None:
    assert (await resolver.resolve(REMOTE)).expand("a") == "http://remote.test/a"
    [cached_id] = [d["localId"] for d in await list_contexts(resolver, details=True)]
    with pytest.raises(OperationNotSupported) as err:
        await get_context(resolver, cached_id)
    assert err.value.status == 422
    meta = await get_context(resolver, REMOTE, details=True)  # by original URL too
    assert meta["localId"] == cached_id and meta["kind"] == "Cached"
    # reload: fetched again now, the new content is used
    fetcher(resolver).term = "http://remote.test/b"
    await delete_context(resolver, REMOTE, reload=True)
    assert fetcher(resolver).calls == 2
    assert (await resolver.resolve(REMOTE)).expand("a") == "http://remote.test/b"
    # a failing reload changes nothing
    fetcher(resolver).fail = True
    with pytest.raises(LdContextNotAvailable):
        await delete_context(resolver, cached_id, reload=True)
    assert await list_contexts(resolver) == [REMOTE]
    # plain delete, then the next resolve fetches again
    fetcher(resolver).fail = False
    await delete_context(resolver, cached_id)
    assert await list_contexts(resolver) == []
    await resolver.resolve(REMOTE)
    assert fetcher(resolver).calls == 4


async def test_delete_hosted_and_errors(resolver: ContextResolver) -> None:
    info = await add_context(resolver, {"@context": {"x": "http://x.org/x"}}, BASE)
    with pytest.raises(BadRequestData):
        await delete_context(resolver, info.local_id, reload=True)
    await delete_context(resolver, info.local_id)
    with pytest.raises(ResourceNotFound):
        await get_context(resolver, info.local_id)
    with pytest.raises(ResourceNotFound):
        await delete_context(resolver, info.local_id)
    # its URL is ours: no network round trip to find out it is gone
    with pytest.raises(LdContextNotAvailable):
        await resolver.resolve(info.url)
    assert fetcher(resolver).calls == 0


@pytest.mark.parametrize("body", [None, [], "ctx", {"context": {}}, {"@context": "http://a/"},
                                  {"@context": 5}, {"@context": {"a": 5}}])
async def test_add_rejects_bad_bodies_and_stores_nothing(resolver: ContextResolver,
                                                         body: Any) -> None:
    with pytest.raises(BadRequestData):
        await add_context(resolver, body, BASE)
    assert await list_contexts(resolver) == []


async def test_add_needs_referenced_remote_contexts(resolver: ContextResolver) -> None:
    with pytest.raises(LdContextNotAvailable):
        await add_context(resolver, {"@context": ["http://down.test/c.jsonld"]}, BASE)
    info = await add_context(resolver, {"@context": [REMOTE, {"b": "http://b.org/b"}]}, BASE)
    tm = await resolver.resolve(info.url)
    assert tm.expand("a") == "http://remote.test/a" and tm.expand("b") == "http://b.org/b"


async def test_implicitly_created_link_url(resolver: ContextResolver) -> None:
    inline = {"t": "http://t.org/t"}
    tm = await resolver.resolve(inline)
    url = await resolver.link_url(tm, BASE)
    assert url.startswith(f"{BASE}/ngsi-ld/v1/jsonldContexts/urn:uuid:")
    assert await resolver.link_url(await resolver.resolve({"t": "http://t.org/t"}), BASE) == url
    assert await list_contexts(resolver, kind="implicitlycreated") == [url]
    served = await get_context(resolver, url.rsplit("/", 1)[1])
    assert served == {"@context": inline}
    assert await resolver.link_url(await resolver.resolve(REMOTE), BASE) == REMOTE
    assert (await resolver.resolve(url)).expand("t") == "http://t.org/t"


async def test_stored_contexts_survive_a_restart() -> None:
    kv = FakeKv()
    first = ContextResolver(timeout=1.0, max_bytes=65536, ttl=600.0, store=KvContextStore(kv))
    info = await add_context(first, {"@context": {"k": "http://k.org/k"}}, BASE)
    assert {ns for ns, _ in kv.data} == {NAMESPACE}
    second = ContextResolver(timeout=1.0, max_bytes=65536, ttl=600.0, store=KvContextStore(kv))
    assert await list_contexts(second) == [info.url]
    assert (await second.resolve(info.url)).expand("k") == "http://k.org/k"


async def test_in_memory_store_round_trip() -> None:
    store = InMemoryContextStore()
    await store.put("a", {"x": [1, "ไทย"]})
    assert await store.get("a") == {"x": [1, "ไทย"]}
    assert await store.list() == {"a": {"x": [1, "ไทย"]}}
    assert await store.delete("a") and not await store.delete("a")
    assert await store.get("a") is None

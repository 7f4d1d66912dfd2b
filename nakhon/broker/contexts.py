"""Stored @contexts and the ``/jsonldContexts`` API (ETSI GS CIM 009 V1.8.1, clause 5.13).

Three kinds of stored @context (clause 5.13.1):

* ``Hosted`` — added by a client (``POST /jsonldContexts``), served by the broker at
  ``{base}/ngsi-ld/v1/jsonldContexts/{localId}``;
* ``Cached`` — a remote @context the broker downloaded; kept ``ttl`` seconds, then fetched again;
* ``ImplicitlyCreated`` — an inline @context the broker had to give a URL (e.g. for the Link
  header of an ``application/json`` response), see ``ContextResolver.link_url``.

The service functions here are pure of HTTP; the adapter maps their results and errors to
status codes (201 + ``Location`` for :func:`add_context`, 204 for :func:`delete_context`).
Stored @contexts are global to the broker, not per tenant. ``numberOfHits`` and ``lastUsage``
are counted in memory (per process) and start again at a restart.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

import orjson

from nakhon.broker.context_fetch import ContextFetcher
from nakhon.core.errors import (
    BadRequestData,
    LdContextNotAvailable,
    OperationNotSupported,
    ResourceNotFound,
)

if TYPE_CHECKING:
    from nakhon.broker.jsonld import ContextResolver

NAMESPACE = "jsonldContexts"
KINDS = ("Hosted", "Cached", "ImplicitlyCreated")
_KIND_BY_LOWER = {k.lower(): k for k in KINDS}
_HOSTED_PATH = re.compile(r"/ngsi-ld/v1/jsonldContexts/([^/?#]+)$")


def new_local_id() -> str:
    """A fresh local identifier for a stored @context (a UUID URN)."""
    return f"urn:uuid:{uuid.uuid4()}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


# -- persistence ---------------------------------------------------------------------------


class ContextStore(Protocol):
    """Persistence for stored @contexts: small JSON documents by local id."""

    async def get(self, key: str) -> dict[str, Any] | None:
        """One record, or None."""

    async def put(self, key: str, doc: dict[str, Any]) -> None:
        """Create or replace a record."""

    async def delete(self, key: str) -> bool:
        """Delete a record; False when there was none."""

    async def list(self) -> dict[str, dict[str, Any]]:
        """Every record by key."""


class InMemoryContextStore:
    """A :class:`ContextStore` in a dict (tests, and a resolver without storage)."""

    def __init__(self) -> None:
        self._docs: dict[str, bytes] = {}

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = self._docs.get(key)
        return None if raw is None else dict(orjson.loads(raw))

    async def put(self, key: str, doc: dict[str, Any]) -> None:
        self._docs[key] = orjson.dumps(doc)

    async def delete(self, key: str) -> bool:
        return self._docs.pop(key, None) is not None

    async def list(self) -> dict[str, dict[str, Any]]:
        return {k: dict(orjson.loads(v)) for k, v in self._docs.items()}


class _KvStorage(Protocol):
    async def kv_get(self, namespace: str, key: str) -> Any | None: ...
    async def kv_put(self, namespace: str, key: str, value: Any) -> None: ...
    async def kv_delete(self, namespace: str, key: str) -> bool: ...
    async def kv_list(self, namespace: str) -> dict[str, Any]: ...


class KvContextStore:
    """A :class:`ContextStore` on a storage engine's key-value documents (``jsonldContexts``)."""

    def __init__(self, storage: _KvStorage) -> None:
        self._storage = storage

    async def get(self, key: str) -> dict[str, Any] | None:
        value = await self._storage.kv_get(NAMESPACE, key)
        return value if isinstance(value, dict) else None

    async def put(self, key: str, doc: dict[str, Any]) -> None:
        await self._storage.kv_put(NAMESPACE, key, doc)

    async def delete(self, key: str) -> bool:
        return await self._storage.kv_delete(NAMESPACE, key)

    async def list(self) -> dict[str, dict[str, Any]]:
        docs = await self._storage.kv_list(NAMESPACE)
        return {k: v for k, v in docs.items() if isinstance(v, dict)}


# -- one stored @context -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContextInfo:
    """The metadata of a stored @context (clause 5.13.3.5; JSON names in :meth:`to_json`)."""

    url: str
    local_id: str
    kind: str
    timestamp: str
    last_usage: str | None = None
    number_of_hits: int = 0
    extra_info: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``GET /jsonldContexts?details=true``."""
        out: dict[str, Any] = {"URL": self.url, "localId": self.local_id, "kind": self.kind,
                               "timestamp": self.timestamp, "numberOfHits": self.number_of_hits}
        if self.last_usage is not None:
            out["lastUsage"] = self.last_usage
        if self.extra_info:
            out["extraInfo"] = self.extra_info
        return out


@dataclass(slots=True)
class StoredContext:
    """A stored @context as the resolver keeps it (times are UNIX seconds)."""

    local_id: str
    url: str
    kind: str
    document: dict[str, Any]
    created_at: float
    fetched_at: float
    hits: int = 0
    last_usage: float | None = field(default=None)

    def to_record(self) -> dict[str, Any]:
        """The record kept in the :class:`ContextStore`."""
        return {"localId": self.local_id, "URL": self.url, "kind": self.kind,
                "createdAt": self.created_at, "fetchedAt": self.fetched_at,
                "document": self.document}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> StoredContext:
        """Inverse of :meth:`to_record`."""
        return cls(str(record["localId"]), str(record["URL"]), str(record["kind"]),
                   dict(record["document"]), float(record["createdAt"]),
                   float(record.get("fetchedAt", record["createdAt"])))

    def info(self, ttl: float | None = None) -> ContextInfo:
        """Its metadata; for Cached @contexts ``extraInfo`` tells when it expires."""
        extra = None
        if self.kind == "Cached" and ttl is not None:
            extra = {"expiresAt": _iso(self.fetched_at + ttl)}
        return ContextInfo(self.url, self.local_id, self.kind, _iso(self.created_at),
                           None if self.last_usage is None else _iso(self.last_usage),
                           self.hits, extra)


# -- the stored @contexts of one broker ---------------------------------------------------


class ContextRegistry:
    """Stored @contexts by local id and URL, and the document behind any @context URL:
    hosted (never fetched), cached while fresh, else fetched (one request per URL at a time)
    and recorded as Cached. :class:`~nakhon.broker.jsonld.ContextResolver` builds on it."""

    def __init__(self, store: ContextStore, fetcher: ContextFetcher, ttl: float) -> None:
        self.store = store
        self.fetcher = fetcher
        self.ttl = ttl
        self._by_url: dict[str, StoredContext] = {}
        self._by_id: dict[str, StoredContext] = {}
        self._own_bases: set[str] = set()
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._loaded = False

    def invalidate(self) -> None:
        """Called when a stored @context changed or went away (subclasses drop caches)."""

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.fetcher.aclose()

    async def load(self) -> None:
        """Read the stored @contexts from the store, once."""
        if self._loaded:
            return
        for record in (await self.store.list()).values():
            entry = StoredContext.from_record(record)
            self._by_id[entry.local_id] = entry
            self._by_url[entry.url] = entry
        self._loaded = True

    def touch(self, url: str, now: float) -> None:
        """Count one use of the stored @context at ``url``, if there is one."""
        entry = self._by_url.get(url)
        if entry is not None:
            entry.hits += 1
            entry.last_usage = now

    def expiry(self, url: str) -> float:
        """When the document behind ``url`` must be fetched again (never for local ones)."""
        entry = self._by_url.get(url)
        if entry is None or entry.kind != "Cached":
            return float("inf")
        return entry.fetched_at + self.ttl

    def _local(self, url: str) -> StoredContext | None:
        entry = self._by_url.get(url)
        if entry is not None and entry.kind != "Cached":
            return entry
        match = _HOSTED_PATH.search(url)  # ours under another host name or scheme?
        if match is not None:
            found = self._by_id.get(unquote(match.group(1)))
            if found is not None and found.kind != "Cached":
                return found
            if url[: match.start()] in self._own_bases:
                raise LdContextNotAvailable(f"No hosted @context at {url}")
        return None

    async def document(self, url: str) -> dict[str, Any]:
        """The document behind an @context URL (``{"@context": ...}``)."""
        await self.load()
        local = self._local(url)
        if local is not None:
            return local.document
        entry = self._by_url.get(url)
        now = time.time()
        if entry is not None and entry.fetched_at + self.ttl > now:
            return entry.document
        try:
            document = await self._fetch_once(url)
        except LdContextNotAvailable:
            if entry is None:
                raise
            # keep serving the stale copy; ask the network again in a minute at the earliest
            entry.fetched_at = now - self.ttl + min(self.ttl, 60.0)
            return entry.document
        if entry is None:
            entry = StoredContext(new_local_id(), url, "Cached", document, now, now)
        else:
            entry.document, entry.fetched_at = document, now
        await self._remember(entry)
        return document

    async def _fetch_once(self, url: str) -> dict[str, Any]:
        pending = self._inflight.get(url)
        if pending is None:
            pending = asyncio.ensure_future(self.fetcher.fetch(url))
            self._inflight[url] = pending
            pending.add_done_callback(lambda _f: self._inflight.pop(url, None))
        return await asyncio.shield(pending)

    async def _remember(self, entry: StoredContext) -> None:
        await self.store.put(entry.local_id, entry.to_record())
        self._by_id[entry.local_id] = entry
        self._by_url[entry.url] = entry

    async def add_local(self, context: Any, base_url: str, kind: str) -> StoredContext:
        """Store ``context`` (unchecked) as a Hosted or ImplicitlyCreated @context."""
        await self.load()
        base = base_url.rstrip("/")
        local_id = new_local_id()
        now = time.time()
        entry = StoredContext(local_id, f"{base}/ngsi-ld/v1/jsonldContexts/{local_id}", kind,
                              {"@context": context}, now, now)
        self._own_bases.add(base)
        await self._remember(entry)
        return entry

    async def entries(self) -> list[StoredContext]:
        """All stored @contexts, oldest first."""
        await self.load()
        return sorted(self._by_id.values(), key=lambda e: (e.created_at, e.local_id))

    async def find(self, id_or_url: str) -> StoredContext | None:
        """A stored @context by local id, or by its URL."""
        await self.load()
        return self._by_id.get(id_or_url) or self._by_url.get(id_or_url)

    async def forget(self, entry: StoredContext) -> None:
        """Delete a stored @context."""
        await self.store.delete(entry.local_id)
        self._by_id.pop(entry.local_id, None)
        if self._by_url.get(entry.url) is entry:
            del self._by_url[entry.url]
        self.invalidate()

    async def reload(self, entry: StoredContext) -> None:
        """Fetch a Cached @context again now (nothing changes if the fetch fails)."""
        document = await self.fetcher.fetch(entry.url)
        entry.document, entry.fetched_at = document, time.time()
        await self._remember(entry)
        self.invalidate()


# -- the /jsonldContexts service functions (clause 5.13) -----------------------------------


async def add_context(resolver: ContextResolver, body: Any, base_url: str) -> ContextInfo:
    """5.13.2 Add @context: store ``body["@context"]`` (an object or array) as Hosted.

    The @context is validated first (a remote @context it references must be available).
    The adapter answers 201 with ``Location: info.url``."""
    if not isinstance(body, dict) or "@context" not in body:
        raise BadRequestData("The body must be a JSON object with an @context member")
    context = body["@context"]
    if not isinstance(context, dict | list):
        raise BadRequestData("@context must be a JSON object or an array")
    entry = await resolver.host(context, base_url)
    return entry.info()


def _kind(kind: str | None) -> str | None:
    if kind is None or kind == "":
        return None
    found = _KIND_BY_LOWER.get(kind.lower())
    if found is None:
        raise BadRequestData(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return found


async def list_contexts(resolver: ContextResolver, details: bool = False,
                        kind: str | None = None) -> list[Any]:
    """5.13.3 List @contexts: their URLs, or their metadata objects when ``details``.

    ``kind`` (Hosted, Cached, ImplicitlyCreated; any letter case) filters. The built-in core
    @context is not a stored @context and is not listed."""
    wanted = _kind(kind)
    entries = [e for e in await resolver.entries() if wanted is None or e.kind == wanted]
    if details:
        return [e.info(resolver.ttl).to_json() for e in entries]
    return [e.url for e in entries]


async def get_context(resolver: ContextResolver, context_id: str,
                      details: bool = False) -> dict[str, Any]:
    """5.13.4 Serve @context: the document (``{"@context": ...}``) of a Hosted or
    ImplicitlyCreated @context, or the metadata of any kind when ``details``.

    ``context_id`` is the local id (or, for a Cached one, its original URL). Serving a Cached
    document is OperationNotSupported (422); an unknown id is ResourceNotFound."""
    entry = await resolver.find(context_id)
    if entry is None:
        raise ResourceNotFound(f"No stored @context {context_id}")
    if details:
        return entry.info(resolver.ttl).to_json()
    if entry.kind == "Cached":
        raise OperationNotSupported(
            f"@context {context_id} is Cached; only Hosted and ImplicitlyCreated @contexts are "
            "served (ask with details=true for its metadata)")
    return entry.document


async def delete_context(resolver: ContextResolver, context_id: str,
                         reload: bool = False) -> None:
    """5.13.5 Delete and Reload @context.

    Without ``reload`` the stored @context is deleted. With ``reload`` (Cached only, else
    BadRequestData) it is downloaded again now; if that fails the old copy stays and
    LdContextNotAvailable (503) is raised."""
    entry = await resolver.find(context_id)
    if entry is None:
        raise ResourceNotFound(f"No stored @context {context_id}")
    if reload:
        if entry.kind != "Cached":
            raise BadRequestData(f"reload=true applies to Cached @contexts; {context_id} is "
                                 f"{entry.kind}")
        await resolver.reload(entry)
        return
    await resolver.forget(entry)

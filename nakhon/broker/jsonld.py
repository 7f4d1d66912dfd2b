"""JSON-LD @context resolution: from a request's @context to a cached, flat term map.

DESIGN.md, "Resolve @contexts once": every distinct @context (by URL or by content) is processed
once with PyLD; the result is a :class:`TermMap` whose :meth:`TermMap.expand` and
:meth:`TermMap.compact` are memoised dict lookups. The NGSI-LD core @context ships with the
package and is pre-resolved at import, so no request ever waits on the network for it.

How a request's @context becomes the active context
---------------------------------------------------
The core @context is processed **first**, then the user's contexts in the order given (any core
URL among them is dropped, it is already there). On top of plain JSON-LD 1.1 that means:

* core prefixes (``ngsi-ld:``, ``geojson:``) may be used inside user contexts;
* a user ``@vocab`` replaces the core's default ``https://uri.etsi.org/ngsi-ld/default-context/``;
* user definitions of core terms are ignored: the core is ``@protected`` and NGSI-LD core terms
  cannot be redefined (clause 5.5.7 / 4.5). Plain JSON-LD would reject such a context with a
  "protected term redefinition" error; we keep the core meaning instead, which is what a
  processor sees when the core is the last context of the array.

Errors
------
* a remote context that cannot be fetched (refused, timeout, HTTP error, too big, not JSON, no
  ``@context`` member) raises ``LdContextNotAvailable`` (503, clause 6.3.5 / 5.5.2);
* a context that is not a valid JSON-LD context (bad term definition, a number where a context
  should be, nullification of the protected core …) raises ``BadRequestData`` (400) — the same
  choice as Orion-LD, which answers ``BadRequestData "Invalid @context"``.

Type- and property-scoped contexts are validated but not applied: the term map is flat, which is
all NGSI-LD's normalized payloads need.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType
from typing import Any, Final

import orjson
from pyld import jsonld as _pyld
from pyld.context_resolver import ContextResolver as _PyldResolver

from nakhon.broker.context_fetch import ContextFetcher
from nakhon.broker.contexts import (
    ContextInfo,
    ContextRegistry,
    ContextStore,
    InMemoryContextStore,
    KvContextStore,
    StoredContext,
    add_context,
    delete_context,
    get_context,
    list_contexts,
)
from nakhon.core.errors import BadRequestData

__all__ = [
    "CORE_CONTEXT",
    "CORE_CONTEXT_URL",
    "CORE_CONTEXT_URLS",
    "CORE_TERMS",
    "DEFAULT_VOCAB",
    "ContextInfo",
    "ContextResolver",
    "ContextStore",
    "InMemoryContextStore",
    "KvContextStore",
    "TermMap",
    "add_context",
    "delete_context",
    "get_context",
    "list_contexts",
]

_ETSI = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context"

CORE_CONTEXT_URL: Final = f"{_ETSI}-v1.8.jsonld"
"""The core @context URL we advertise (Link headers, ``@context`` of responses).

GS CIM 009 V1.8.1 names ``ngsi-ld-core-context-v1.8.jsonld`` as its core @context; what we serve
for it is the V1.9 document, a superset (same IRIs for every 1.8 term)."""

CORE_CONTEXT_URLS: Final = frozenset(
    [f"{_ETSI}.jsonld"] + [f"{_ETSI}-v1.{minor}.jsonld" for minor in range(3, 10)]
)
"""Every ETSI core @context URL; all resolve to the built-in copy, without network."""

DEFAULT_VOCAB: Final = "https://uri.etsi.org/ngsi-ld/default-context/"

CORE_CONTEXT: Final[dict[str, Any]] = orjson.loads(
    (resources.files("nakhon.broker") / "data" / "ngsi-ld-core-context-v1.9.jsonld").read_bytes()
)
"""The core @context document (``{"@context": {...}}``), as shipped."""

CORE_TERMS: Final = frozenset(k for k in CORE_CONTEXT["@context"] if not k.startswith("@"))

_MEMO_MAX = 8192
_MAX_FETCH_ROUNDS = 16
_CACHE_MAX = 4096  # distinct @contexts kept; the oldest goes first
_EMPTY_DOC: Final[dict[str, Any]] = {"@context": {}}


class TermMap:
    """A resolved active context: term ↔ IRI dictionaries with memoised look-ups.

    Immutable in meaning; equality and hash go by :attr:`key`, a stable hash of the term
    definitions, so two @contexts that define the same terms share one key.
    """

    __slots__ = ("_compact_memo", "_expand_memo", "_iri_terms", "_prefixes", "_terms",
                 "_vocab", "_vocab_iris", "_vocab_terms", "key", "source")

    def __init__(self, source: Any, terms: Mapping[str, str], prefixes: Mapping[str, str],
                 vocab_terms: frozenset[str], vocab: str | None) -> None:
        self.source = source
        self._terms = dict(terms)
        self._prefixes = dict(prefixes)
        self._vocab_terms = vocab_terms
        self._vocab_iris = frozenset(self._terms[t] for t in vocab_terms if t in self._terms)
        self._vocab = vocab
        # exact inverse: for each IRI the shortest term, then the lexicographically least
        best: dict[str, str] = {}
        for term, iri in sorted(self._terms.items(), key=lambda kv: (len(kv[0]), kv[0])):
            best.setdefault(iri, term)
        self._iri_terms = best
        self._expand_memo: dict[str, str] = {}
        self._compact_memo: dict[str, str] = {}
        digest = hashlib.sha256(orjson.dumps(
            [self._terms, self._prefixes, sorted(vocab_terms), vocab],
            option=orjson.OPT_SORT_KEYS))
        self.key: str = digest.hexdigest()[:32]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TermMap) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"TermMap(key={self.key!r}, terms={len(self._terms)}, vocab={self._vocab!r})"

    @property
    def terms(self) -> Mapping[str, str]:
        """Read-only view of term → expanded IRI (keyword aliases such as ``id`` left out)."""
        return MappingProxyType(self._terms)

    @property
    def vocab(self) -> str | None:
        """The ``@vocab`` in force (the core default-context unless the user set one)."""
        return self._vocab

    @property
    def link_url(self) -> str | None:
        """The single URL equivalent to this context (for a Link header), if there is one:
        a URL as given, or a list of one URL besides core ones (the core is implicit)."""
        src = self.source
        if isinstance(src, list):
            src = [c for c in src if not (isinstance(c, str) and c in CORE_CONTEXT_URLS)]
            src = src[0] if len(src) == 1 else (src or None)
        if src is None or (isinstance(src, str) and src in CORE_CONTEXT_URLS):
            return CORE_CONTEXT_URL
        return src if isinstance(src, str) else None

    def expand(self, term: str) -> str:
        """Expand a term, compact IRI (``ex:foo``) or absolute IRI to an absolute IRI."""
        hit = self._expand_memo.get(term)
        if hit is not None:
            return hit
        iri = self._expand(term)
        if len(self._expand_memo) < _MEMO_MAX:
            self._expand_memo[term] = iri
        return iri

    def _expand(self, term: str) -> str:
        iri = self._terms.get(term)
        if iri is not None:
            return iri
        if term.startswith("@"):
            return term
        prefix, colon, suffix = term.partition(":")
        if colon:
            if prefix == "_" or suffix.startswith("//"):
                return term  # blank node or absolute IRI with authority
            base = self._prefixes.get(prefix)
            return base + suffix if base is not None else term
        return self._vocab + term if self._vocab is not None else term

    def compact(self, iri: str) -> str:
        """Compact an IRI: a term defined as exactly ``iri``, else a ``@vocab``-relative name,
        else the shortest ``prefix:suffix``, else the IRI itself."""
        hit = self._compact_memo.get(iri)
        if hit is not None:
            return hit
        out = self._compact(iri)
        if len(self._compact_memo) < _MEMO_MAX:
            self._compact_memo[iri] = out
        return out

    def _compact(self, iri: str) -> str:
        term = self._iri_terms.get(iri)
        if term is not None:
            return term
        vocab = self._vocab
        if vocab and iri.startswith(vocab) and len(iri) > len(vocab):
            suffix = iri[len(vocab):]
            if ":" not in suffix and self._terms.get(suffix, iri) == iri:
                return suffix
        best: str | None = None
        for prefix, base in self._prefixes.items():
            if len(iri) > len(base) and iri.startswith(base):
                candidate = f"{prefix}:{iri[len(base):]}"
                if (best is None or (len(candidate), candidate) < (len(best), best)) and \
                        self._terms.get(candidate, iri) == iri:
                    best = candidate
        return best if best is not None else iri

    def is_vocab_term(self, term: str) -> bool:
        """Whether values of this term (given compact or expanded) are ``@vocab``-typed."""
        return term in self._vocab_terms or term in self._vocab_iris


def _strip_core(ctx: Any) -> Any:
    """A local context without its definitions of core terms (the core's meaning wins)."""
    if isinstance(ctx, dict):
        return {k: v for k, v in ctx.items() if k not in CORE_TERMS}
    if isinstance(ctx, list):
        return [_strip_core(c) for c in ctx if not (isinstance(c, str) and c in CORE_CONTEXT_URLS)]
    return ctx


def _no_scoped(ctx: dict[str, Any]) -> dict[str, Any]:
    """The core context without its scoped contexts (one points at a W3C URL; not needed)."""
    return {k: ({kk: vv for kk, vv in v.items() if kk != "@context"} if isinstance(v, dict) else v)
            for k, v in ctx.items()}


class _NeedDocument(Exception):
    """Raised inside PyLD's document loader for a URL not fetched yet."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(out) < 32:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


_PROCESSOR = _pyld.JsonLdProcessor()


def _process(local: Any, docs: Mapping[str, dict[str, Any]], base: Any) -> Any:
    """Run PyLD's context processing of ``local`` on top of ``base``; remote documents come from
    ``docs`` only (a missing one raises :class:`_NeedDocument` through PyLD)."""

    def loader(url: str, options: Any = None) -> dict[str, Any]:
        if url in CORE_CONTEXT_URLS:
            doc: Any = _EMPTY_DOC  # the core is already the base of every active context
        else:
            found = docs.get(url)
            if found is None:
                raise _NeedDocument(url)
            doc = {"@context": _strip_core(found.get("@context"))}
        return {"contextUrl": None, "documentUrl": url,
                "document": orjson.loads(orjson.dumps(doc))}

    options = {"documentLoader": loader, "base": "",
               "contextResolver": _PyldResolver({}, loader)}
    return _PROCESSOR.process_context(base, local, options)


def _term_map(source: Any, active: Any) -> TermMap:
    terms: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    vocab_terms: set[str] = set()
    for term, d in active["mappings"].items():
        if not d or d.get("reverse"):
            continue
        iri = d.get("@id")
        if not isinstance(iri, str) or iri.startswith("@"):
            continue
        terms[term] = iri
        if d.get("_prefix"):
            prefixes[term] = iri
        if d.get("@type") == "@vocab":
            vocab_terms.add(term)
    vocab = active.get("@vocab")
    return TermMap(source, terms, prefixes, frozenset(vocab_terms),
                   vocab if isinstance(vocab, str) else None)


_CORE_ACTIVE = _process({"@context": _no_scoped(CORE_CONTEXT["@context"])}, {},
                        _PROCESSOR._get_initial_context({}))
CORE_TERM_MAP: Final = _term_map(None, _CORE_ACTIVE)
"""The core @context alone, pre-resolved at import."""


def _check_shape(context: Any) -> list[Any]:
    items = context if isinstance(context, list) else [context]
    for item in items:
        if item is None or isinstance(item, dict):
            continue
        if isinstance(item, str):
            if not item.startswith(("http://", "https://")):
                raise BadRequestData(f"Invalid @context: {item!r} is not an http(s) URL")
            continue
        raise BadRequestData("Invalid @context: each entry must be a URL string or an object")
    return items


class _Cached:
    __slots__ = ("expires", "term_map", "urls")

    def __init__(self, term_map: TermMap, urls: tuple[str, ...], expires: float) -> None:
        self.term_map = term_map
        self.urls = urls
        self.expires = expires


class ContextResolver(ContextRegistry):
    """Resolves request @contexts to :class:`TermMap` s, caching by URL and by content.

    Remote contexts are fetched with a bounded HTTP client (``timeout`` seconds for the whole
    fetch, ``max_bytes``, at most 3 redirects, public addresses only unless ``allow_private``)
    and kept for ``ttl`` seconds; each fetched
    document is recorded as a "Cached" @context (clause 5.13) in ``store``. Hosted @contexts
    (added through ``/jsonldContexts``) are served from ``store`` without any network call.
    """

    def __init__(self, *, timeout: float, max_bytes: int, ttl: float,
                 store: ContextStore | None = None, allow_private: bool = False) -> None:
        fetcher = ContextFetcher(timeout=timeout, max_bytes=max_bytes,
                                 allow_private=allow_private)
        super().__init__(store if store is not None else InMemoryContextStore(), fetcher, ttl)
        self._cache: dict[str | bytes, _Cached] = {}

    def invalidate(self) -> None:
        """Drop every cached term map (after a stored @context changed)."""
        self._cache.clear()

    async def resolve(self, context: Any) -> TermMap:
        """The term map for a request's @context: ``None``/``[]`` (core only), a URL, an object,
        or a list of them. Raises LdContextNotAvailable or BadRequestData (module docstring)."""
        if context is None or context == []:
            return CORE_TERM_MAP
        if isinstance(context, str):
            if context in CORE_CONTEXT_URLS:
                return CORE_TERM_MAP
            key: str | bytes = context
        else:
            try:
                key = orjson.dumps(context, option=orjson.OPT_SORT_KEYS)
            except TypeError as exc:
                raise BadRequestData(f"Invalid @context: {exc}") from None
        hit = self._cache.get(key)
        now = time.time()
        if hit is not None and hit.expires > now:
            for url in hit.urls:
                self.touch(url, now)
            return hit.term_map
        return await self._resolve_slow(context, key, now)

    async def _resolve_slow(self, context: Any, key: str | bytes, now: float) -> TermMap:
        await self.load()
        items = [i for i in _check_shape(context)
                 if not (isinstance(i, str) and i in CORE_CONTEXT_URLS)]
        docs: dict[str, dict[str, Any]] = {}
        for item in items:
            if isinstance(item, str) and item not in docs:
                docs[item] = await self.document(item)
        local = _strip_core(items)
        for _ in range(_MAX_FETCH_ROUNDS):
            try:
                active = _process(local, docs, _CORE_ACTIVE)
                break
            except Exception as exc:  # PyLD wraps everything; look for what we raised
                need = next((e for e in _chain(exc) if isinstance(e, _NeedDocument)), None)
                if need is None:
                    raise BadRequestData(f"Invalid @context: {_describe(exc)}") from None
                docs[need.url] = await self.document(need.url)
        else:
            raise BadRequestData("Invalid @context: too many nested remote @contexts")
        term_map = _term_map(context, active)
        for url in docs:
            self.touch(url, now)
        expires = min((self.expiry(u) for u in docs), default=float("inf"))
        if len(self._cache) >= _CACHE_MAX:
            del self._cache[next(iter(self._cache))]
        self._cache[key] = _Cached(term_map, tuple(docs), expires)
        return term_map

    async def host(self, context: Any, base_url: str, kind: str = "Hosted") -> StoredContext:
        """Validate ``context`` (the value of ``@context``) and store it as a hosted @context."""
        await self.resolve(context)  # raises on an invalid or unavailable context
        return await self.add_local(context, base_url, kind)

    async def link_url(self, term_map: TermMap, base_url: str) -> str:
        """A URL for ``term_map`` to put in a Link header: the URL it was given as, else an
        "ImplicitlyCreated" hosted copy of its inline @context (made once per context)."""
        if term_map.link_url is not None:
            return term_map.link_url
        for entry in await self.entries():
            if entry.kind == "ImplicitlyCreated" and \
                    entry.document.get("@context") == term_map.source:
                return entry.url
        return (await self.add_local(term_map.source, base_url, "ImplicitlyCreated")).url


def _describe(exc: BaseException) -> str:
    for e in _chain(exc):
        code = getattr(e, "code", None)
        if code:
            return str(code)
    return str(exc) or type(exc).__name__

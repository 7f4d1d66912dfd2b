"""The domain catalogue: the seven smart-city domains and which entity types belong to each.

The built-in catalogue (``data/domains.json``) maps Smart Data Models and a few Nakhon types to
the domains of the Smart City Thailand programme. A city (tenant) extends it: it may add a type
to a domain (its own model, or an SDM the built-in list lacks) or hide a built-in mapping; the
changes are stored per tenant in storage kv (namespace ``domains``) and merged over the built-in
list on every read, so an upgrade of the built-in list reaches every city.

An entity type is recognised by its expanded IRI. Each catalogue type lists the IRIs it has in
the two vocabularies clients use: the NGSI-LD core context's default vocabulary (what a plain
``"type": "AirQualityObserved"`` expands to without a user @context) and, where one exists, the
Smart Data Model's IRI (what the SDM @context gives).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

from nakhon.broker.jsonld import DEFAULT_VOCAB
from nakhon.broker.query import Or, TypeExpr
from nakhon.broker.service import Broker
from nakhon.core.auth import Principal
from nakhon.core.errors import BadRequestData, NonexistentTenant, ResourceNotFound
from nakhon.storage.base import EntityQuery

KV_NAMESPACE = "domains"
LANGS = ("th", "en")
_TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,99}$")
_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")


@dataclass(frozen=True, slots=True)
class DomainType:
    """One entity type of a domain."""

    type: str
    sdm: str | None
    name: dict[str, str]
    builtin: bool = True
    extra_iris: tuple[str, ...] = ()

    @property
    def iris(self) -> tuple[str, ...]:
        """Every expanded IRI that identifies this type (default vocabulary first)."""
        found = [DEFAULT_VOCAB + self.type]
        for iri in (self.sdm, *self.extra_iris):
            if iri and iri not in found:
                found.append(iri)
        return tuple(found)

    def doc(self, lang: str | None = None) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name.get(lang, self.type) if lang else dict(self.name),
            "iris": list(self.iris),
            "smartDataModel": self.sdm is not None,
            "builtin": self.builtin,
        }


@dataclass(frozen=True, slots=True)
class Domain:
    """One of the seven domains."""

    id: str
    name: dict[str, str]
    description: dict[str, str]
    types: tuple[DomainType, ...] = field(default_factory=tuple)

    def doc(self, lang: str | None = None, *, with_types: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name[lang] if lang else dict(self.name),
            "description": self.description[lang] if lang else dict(self.description),
        }
        if with_types:
            out["types"] = [t.doc(lang) for t in self.types]
        return out


@cache
def builtin_domains() -> tuple[Domain, ...]:
    """The built-in catalogue, in the programme's order (environment … governance)."""
    raw = resources.files("nakhon.domains").joinpath("data/domains.json").read_text("utf-8")
    return tuple(
        Domain(
            d["id"],
            dict(d["name"]),
            dict(d["description"]),
            tuple(DomainType(t["type"], t["sdm"], dict(t["name"])) for t in d["types"]),
        )
        for d in json.loads(raw)["domains"]
    )


def apply_extension(domains: tuple[Domain, ...], ext: dict[str, Any] | None) -> list[Domain]:
    """The built-in catalogue with a city's extension document merged in (pure).

    ``ext`` is ``{"added": {domain: {type: {"iri": str|None, "name": {...}}}},
    "hidden": {domain: [type, ...]}}``; unknown domains in it are ignored."""
    ext = ext or {}
    added: dict[str, dict[str, Any]] = ext.get("added") or {}
    hidden: dict[str, list[str]] = ext.get("hidden") or {}
    out: list[Domain] = []
    for domain in domains:
        gone = set(hidden.get(domain.id) or [])
        types = [t for t in domain.types if t.type not in gone]
        builtin_names = {t.type for t in types}
        for name, spec in sorted((added.get(domain.id) or {}).items()):
            iri = spec.get("iri")
            extra = (iri,) if iri else ()
            entry_name = {**dict.fromkeys(LANGS, name), **(spec.get("name") or {})}
            if name in builtin_names:
                # A city may add its own IRI or names to a built-in type.
                names = spec.get("name") or {}
                types = [
                    replace(t, extra_iris=t.extra_iris + extra, name={**t.name, **names})
                    if t.type == name
                    else t
                    for t in types
                ]
            else:
                types.append(DomainType(name, None, entry_name, False, extra))
        out.append(replace(domain, types=tuple(types)))
    return out


def domains_of_type(domains: list[Domain], type_iri_or_name: str) -> list[str]:
    """The ids of the domains an entity type (term or expanded IRI) belongs to."""
    return [
        d.id
        for d in domains
        if any(type_iri_or_name == t.type or type_iri_or_name in t.iris for t in d.types)
    ]


def type_iris(name: str) -> tuple[str, ...]:
    """The expanded IRIs of a type name: the default vocabulary's, then any Smart Data Model
    IRI the built-in catalogue knows for it."""
    found = [DEFAULT_VOCAB + name]
    for domain in builtin_domains():
        for entry in domain.types:
            if entry.type == name:
                found += [iri for iri in entry.iris if iri not in found]
    return tuple(found)


def check_lang(lang: str | None) -> str | None:
    """A ``lang`` parameter: None, ``th`` or ``en``; anything else is BadRequestData."""
    if lang is None or lang == "":
        return None
    if lang not in LANGS:
        raise BadRequestData(f"lang must be one of {', '.join(LANGS)}; got {lang!r}.")
    return lang


def _type_expr(entry: DomainType) -> TypeExpr:
    iris = entry.iris
    return iris[0] if len(iris) == 1 else Or(tuple(iris))


class Catalogue:
    """Use cases of the catalogue; each checks authorisation through the broker's Access."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def _extension(self, tenant: str) -> dict[str, Any]:
        doc = await self.broker.storage.kv_get(KV_NAMESPACE, tenant)
        return doc if isinstance(doc, dict) else {}

    async def domains(self, principal: Principal, tenant: str) -> list[Domain]:
        """The tenant's catalogue (built-in plus the city's extension)."""
        await self.broker.access.require_read(principal, tenant)
        return apply_extension(builtin_domains(), await self._extension(tenant))

    async def domain(self, principal: Principal, tenant: str, domain_id: str) -> Domain:
        for domain in await self.domains(principal, tenant):
            if domain.id == domain_id:
                return domain
        raise ResourceNotFound(
            f"No domain {domain_id!r}; the domains are "
            + ", ".join(d.id for d in builtin_domains())
            + "."
        )

    async def entity_counts(
        self, principal: Principal, tenant: str, domain: Domain
    ) -> dict[str, int]:
        """Entities of each of the domain's types in the tenant (0 for an unused tenant).

        One count query per type (an index lookup on (tenant, type)), run concurrently; the
        number of queries is bounded by the catalogue, never by the data."""

        async def count(entry: DomainType) -> int:
            query = EntityQuery(type_expr=_type_expr(entry), limit=0, count=True)
            try:
                page = await self.broker.query_entities(principal, tenant, query)
            except NonexistentTenant:
                return 0
            return page.count or 0

        results = await asyncio.gather(*(count(t) for t in domain.types))
        return {t.type: n for t, n in zip(domain.types, results, strict=True)}

    async def put_type(
        self,
        principal: Principal,
        tenant: str,
        domain_id: str,
        type_name: str,
        spec: dict[str, Any],
    ) -> Domain:
        """Add (or show again) ``type_name`` in a domain for this city."""
        self.broker.access.require_write(principal, tenant)
        _check_type_name(type_name)
        clean = _check_spec(spec)
        await self.domain(principal, tenant, domain_id)
        ext = await self._extension(tenant)
        hidden = ext.setdefault("hidden", {})
        if type_name in (hidden.get(domain_id) or []):
            hidden[domain_id] = [t for t in hidden[domain_id] if t != type_name]
        is_builtin = any(
            t.type == type_name for d in builtin_domains() if d.id == domain_id for t in d.types
        )
        if not is_builtin or clean:
            ext.setdefault("added", {}).setdefault(domain_id, {})[type_name] = clean
        await self.broker.storage.kv_put(KV_NAMESPACE, tenant, ext)
        return await self.domain(principal, tenant, domain_id)

    async def delete_type(
        self, principal: Principal, tenant: str, domain_id: str, type_name: str
    ) -> None:
        """Remove a city's type from a domain, or hide a built-in one for this city."""
        self.broker.access.require_write(principal, tenant)
        domain = await self.domain(principal, tenant, domain_id)
        if not any(t.type == type_name for t in domain.types):
            raise ResourceNotFound(f"Domain {domain_id!r} has no type {type_name!r}.")
        ext = await self._extension(tenant)
        added = ext.setdefault("added", {}).setdefault(domain_id, {})
        added.pop(type_name, None)
        if any(t.type == type_name and t.builtin for t in domain.types):
            hidden = ext.setdefault("hidden", {}).setdefault(domain_id, [])
            if type_name not in hidden:
                hidden.append(type_name)
        await self.broker.storage.kv_put(KV_NAMESPACE, tenant, ext)


def _check_type_name(name: str) -> None:
    if not _TYPE_NAME.match(name):
        raise BadRequestData(
            f"Entity type {name!r} must be a term: a letter, then up to 99 letters, digits, "
            "'_' or '-'."
        )


def _check_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Validate a PUT body: ``{"iri": str?, "name": {"th": str?, "en": str?}?}``."""
    unknown = set(spec) - {"iri", "name"}
    if unknown:
        raise BadRequestData(f"Unknown members {sorted(unknown)}; allowed: iri, name.")
    clean: dict[str, Any] = {}
    iri = spec.get("iri")
    if iri is not None:
        if not isinstance(iri, str) or not _IRI.match(iri):
            raise BadRequestData("iri must be an absolute IRI (e.g. https://city.example/ns/Bus).")
        clean["iri"] = iri
    name = spec.get("name")
    if name is not None:
        if (
            not isinstance(name, dict)
            or not name
            or any(
                k not in LANGS or not isinstance(v, str) or not v.strip() or len(v) > 200
                for k, v in name.items()
            )
        ):
            raise BadRequestData('name must be {"th": text, "en": text} (non-empty, ≤ 200).')
        clean["name"] = dict(name)
    return clean

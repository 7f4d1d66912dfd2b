"""Conversions between PostgreSQL rows and the entity normal form.

JSON goes through orjson in asyncpg's *binary* jsonb format (a version byte, then the text): it
skips the bytes→str round trip of the text format and is the fastest path asyncpg offers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import shapely
from shapely.geometry import shape

from nakhon.broker.model import Entity, Instance
from nakhon.core.errors import BadRequestData

_JSONB_VERSION = b"\x01"


def _encode_jsonb(value: Any) -> bytes:
    return _JSONB_VERSION + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection set-up: jsonb (and json) through orjson."""
    await conn.set_type_codec(
        "jsonb",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        schema="pg_catalog",
        format="binary",
    )
    await conn.set_type_codec(
        "json",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


# Columns every entity read selects, in the order row_to_entity expects.
ENTITY_COLUMNS = "e.id, e.types, e.scopes, e.created_at, e.modified_at, e.doc"


def row_to_entity(row: Mapping[str, Any]) -> Entity:
    """A row with :data:`ENTITY_COLUMNS` → Entity."""
    scopes = row["scopes"]
    return Entity(
        id=row["id"],
        types=list(row["types"]),
        attrs=row["doc"].get("attrs", {}),
        scope=list(scopes) if scopes is not None else None,
        created_at=row["created_at"],
        modified_at=row["modified_at"],
    )


def now_iso() -> str:
    """The transaction timestamp: ISO 8601 UTC with ``Z``, microsecond precision."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 string → aware datetime; None when absent or unreadable.

    Times were validated at the edge; an unreadable one here only loses its history index
    column (the instance itself is kept whole), it never fails a write.
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def geo_values(entity: Entity | None) -> list[tuple[str, Any]]:
    """Every GeoProperty instance of ``entity`` as (attribute IRI, GeoJSON geometry)."""
    if entity is None:
        return []
    out: list[tuple[str, Any]] = []
    for attr, instances in entity.attrs.items():
        for inst in instances:
            if inst.get("type") == "GeoProperty" and "value" in inst:
                out.append((attr, inst["value"]))
    return out


def geo_rows(entity: Entity) -> list[tuple[str, bytes]]:
    """(attribute, EWKB with SRID 4326) for each GeoProperty instance.

    Converting here rather than with ST_GeomFromGeoJSON in SQL means a bad geometry fails only
    its own operation (BadRequestData) instead of the database rejecting the whole batch.
    """
    rows: list[tuple[str, bytes]] = []
    for attr, value in geo_values(entity):
        try:
            geom = shape(value)
            if geom.is_empty:
                raise ValueError("empty geometry")
            geom = shapely.set_srid(geom, 4326)
            wkb = shapely.to_wkb(geom, include_srid=True)
        except Exception as exc:  # shapely raises many types for malformed GeoJSON
            raise BadRequestData(f"Invalid GeoJSON geometry in {attr}: {exc}") from exc
        rows.append((attr, bytes(wkb)))
    return rows


SeriesKey = tuple[str, str, str]
"""(tenant, entity_id, attribute IRI or ``@entity``): one row of ``history_series``."""


def history_rows(
    sids: Mapping[SeriesKey, int],
    tenant: str,
    entity_id: str,
    changed: list[tuple[str, Instance]],
    now: str,
    now_dt: datetime | None,
    times: dict[str, datetime | None],
) -> list[tuple[Any, ...]]:
    """attr_history records (:data:`HISTORY_COLUMNS`) for the (attribute, instance) pairs an
    outcome changed; ``sids`` must hold the series of every pair.

    ``now``/``now_dt``: the transaction time as written into the instances and parsed once;
    ``modifiedAt`` is nearly always exactly that string, so it is parsed only when it is not.
    ``times``: observation times already parsed in this transaction (devices of one batch
    mostly report on the same clock ticks: 288 parses instead of 14,400 for a backfill call of
    50 device-days), filled here.
    """
    rows: list[tuple[Any, ...]] = []
    last_attr: str | None = None
    sid = 0
    for attr, inst in changed:
        if attr is not last_attr:  # consecutive instances of one attribute: one look-up
            sid = sids[(tenant, entity_id, attr)]
            last_attr = attr
        text = inst.get("observedAt")
        observed = times.get(text) if text.__class__ is str else None
        if observed is None and text is not None:
            observed = parse_time(text)
            if observed is not None:  # a str, then
                times[text] = observed
        modified = inst.get("modifiedAt")
        rows.append(
            (
                sid,
                inst.get("datasetId"),
                observed,
                now_dt if modified == now else (parse_time(modified) or now_dt),
                inst,
            )
        )
    return rows


HISTORY_COLUMNS = ("sid", "dataset_id", "observed_at", "modified_at", "instance")
"""The attr_history columns :func:`history_rows` fills, in order (binary COPY)."""

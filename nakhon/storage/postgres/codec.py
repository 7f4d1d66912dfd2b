"""Conversions between PostgreSQL rows and the entity normal form.

JSON goes through orjson in asyncpg's *binary* jsonb format (a version byte, then the text): it
skips the bytes→str round trip of the text format and is the fastest path asyncpg offers.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import shapely
from shapely.geometry import shape

from nakhon.broker.model import Entity, Instance
from nakhon.core.errors import BadRequestData
from nakhon.storage.rows import numeric

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


_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_NULL = b"\xff\xff\xff\xff"  # a NULL field: length -1
_ROW_HEAD = struct.Struct("!hii")  # field count, then the sid field: length 4, int4
_FLOAT8 = struct.Struct("!id")  # length 8, float8
_TIMESTAMP = struct.Struct("!iq")  # length 8, int8 microseconds since 2000-01-01 UTC
_LENGTH = struct.Struct("!i")
_JSONB_HEAD = struct.Struct("!iB")  # length, then jsonb's binary version byte (1)
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no extension
COPY_TRAILER = b"\xff\xff"  # field count -1
_TRUE = b"\x00\x00\x00\x01\x01"  # length 1, bool
_FALSE = b"\x00\x00\x00\x01\x00"


def time_field(value: Any) -> bytes:
    """``value`` (an ISO 8601 string) as a binary COPY ``timestamptz`` field; NULL when absent
    or unreadable (see :func:`parse_time`)."""
    at = parse_time(value)
    if at is None:
        return _NULL
    delta = at - _PG_EPOCH
    return _TIMESTAMP.pack(8, (delta.days * 86_400 + delta.seconds) * 1_000_000
                           + delta.microseconds)


def history_copy(
    out: list[bytes],
    sids: Mapping[SeriesKey, int],
    tenant: str,
    entity_id: str,
    changed: list[tuple[str, Instance]],
    now: str,
    now_field: bytes,
    times: dict[str, bytes],
) -> None:
    """Append to ``out`` the binary COPY rows (:data:`HISTORY_COLUMNS`) of the (attribute,
    instance) pairs an outcome changed; ``sids`` must hold the series of every pair.

    The rows are encoded here rather than by asyncpg's ``copy_records_to_table``, whose
    per-value encoders cost ~3.5 µs a row (two aware datetimes ~2.8 µs of it) against ~0.8 µs
    here: a time is encoded once per distinct string in a transaction (``times``; the devices
    of a batch report on the same clock ticks), ``modifiedAt`` is nearly always exactly the
    transaction time ``now`` (``now_field``, encoded once), and the instance goes as
    ``orjson`` bytes behind jsonb's version byte, as :func:`init_connection`'s codec sends it.
    An unreadable ``observedAt`` is stored as NULL, an unreadable ``modifiedAt`` as ``now``.
    The derived columns (migration 0009) follow: ``ts`` (``observedAt``, else ``modifiedAt``),
    ``num`` (:func:`~nakhon.storage.rows.numeric`) and ``deleted`` (a ``deletedAt`` marker).
    """
    last_attr: str | None = None
    head = b""
    dumps = orjson.dumps
    jsonb_head = _JSONB_HEAD.pack
    float8 = _FLOAT8.pack
    for attr, inst in changed:
        if attr is not last_attr:  # consecutive instances of one attribute: one look-up
            head = _ROW_HEAD.pack(8, 4, sids[(tenant, entity_id, attr)])
            last_attr = attr
        text = inst.get("observedAt")
        if text.__class__ is str:
            observed = times.get(text)
            if observed is None:
                observed = times[text] = time_field(text)
        else:
            observed = _NULL
        modified = inst.get("modifiedAt")
        if modified == now:
            modified_field = now_field
        else:
            modified_field = time_field(modified)
            if modified_field is _NULL:
                modified_field = now_field
        dataset = inst.get("datasetId")
        if dataset is None:
            dataset_field = _NULL
        else:
            raw = str(dataset).encode()
            dataset_field = _LENGTH.pack(len(raw)) + raw
        number = numeric(inst)
        num_field = _NULL if number is None else float8(8, number)
        doc = dumps(inst)
        out.append(b"".join((head, dataset_field, observed, modified_field,
                             jsonb_head(len(doc) + 1, 1), doc,
                             modified_field if observed is _NULL else observed, num_field,
                             _TRUE if "deletedAt" in inst else _FALSE)))


HISTORY_COLUMNS = (
    "sid", "dataset_id", "observed_at", "modified_at", "instance", "ts", "num", "deleted"
)
"""The attr_history columns :func:`history_copy` encodes, in order (binary COPY)."""


HistoryRows = Sequence[tuple[str, str, list[tuple[str, Instance]]]]
"""(tenant, entity id, the (attribute, instance) pairs written) per entity of a transaction."""

COPY_CHUNK_ROWS = 2_000
"""History rows per chunk of a streamed COPY (~0.5 MB)."""


def history_source(
    history: HistoryRows, sids: Mapping[SeriesKey, int], now: str
) -> memoryview | AsyncIterator[bytes]:
    """The binary COPY data of a transaction's history rows, for ``copy_to_table(source=…)``.

    Up to :data:`COPY_CHUNK_ROWS` rows (an ingest batch) it is encoded at once (a memoryview:
    asyncpg would take bytes for a file name). More (a backfill: tens of thousands) are
    streamed chunk by chunk, so that the server inserts one chunk while this process encodes
    the next instead of waiting for the whole stream. Encoding errors (a value JSON, UTF-8 or
    float8 cannot carry) surface as TypeError, ValueError or OverflowError, also from inside
    the COPY."""
    now_field = time_field(now)
    times: dict[str, bytes] = {}
    if sum(len(written) for _, _, written in history) <= COPY_CHUNK_ROWS:
        data = [COPY_HEADER]
        for tenant, entity_id, written in history:
            history_copy(data, sids, tenant, entity_id, written, now, now_field, times)
        data.append(COPY_TRAILER)
        return memoryview(b"".join(data))

    async def chunks() -> AsyncIterator[bytes]:
        data = [COPY_HEADER]
        for tenant, entity_id, written in history:
            history_copy(data, sids, tenant, entity_id, written, now, now_field, times)
            if len(data) >= COPY_CHUNK_ROWS:
                yield b"".join(data)
                data.clear()
        data.append(COPY_TRAILER)
        yield b"".join(data)

    return chunks()

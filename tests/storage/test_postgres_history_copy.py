"""The PostgreSQL writer's history rows in binary COPY format (codec.history_copy): decoded
field by field here, and written through the engine and read back by the server — odd times
(no zone, other offsets, fractions, before 2000, unreadable, not a string), datasets, non-ASCII
text — the same values asyncpg's own encoders stored before."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from nakhon.core.errors import BadRequestData
from nakhon.storage.base import Mutation, Outcome, WriteOp
from nakhon.storage.postgres import PostgresStorage, codec
from nakhon.storage.postgres.codec import history_copy, time_field

from .test_contract import ent, prop

pytestmark = pytest.mark.postgres

TEMP = "https://example.org/temperature"
HUM = "https://example.org/humidity"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _decode(row: bytes) -> tuple[Any, ...]:
    """One binary COPY row of HISTORY_COLUMNS → (sid, dataset, observed, modified, instance,
    ts, num, deleted)."""
    count, = struct.unpack_from("!h", row)
    assert count == 8
    pos, fields = 2, []
    for _ in range(count):
        size, = struct.unpack_from("!i", row, pos)
        pos += 4
        fields.append(None if size < 0 else row[pos:pos + size])
        pos += max(size, 0)
    assert pos == len(row)
    sid, dataset, observed, modified, doc, ts, num, deleted = fields

    def at(raw: bytes | None) -> datetime | None:
        return None if raw is None else EPOCH + timedelta(
            microseconds=struct.unpack("!q", raw)[0])

    assert sid is not None and doc is not None and doc[:1] == b"\x01"
    assert ts is not None and deleted in (b"\x00", b"\x01")
    return (struct.unpack("!i", sid)[0], None if dataset is None else dataset.decode(),
            at(observed), at(modified), orjson.loads(doc[1:]), at(ts),
            None if num is None else struct.unpack("!d", num)[0], deleted == b"\x01")


def test_rows_encode_each_time_once_and_keep_odd_ones() -> None:
    now = "2024-05-01T10:09:00.000000Z"
    now_dt = datetime(2024, 5, 1, 10, 9, tzinfo=UTC)
    sids = {("", "urn:e:1", TEMP): 7, ("", "urn:e:1", HUM): 8}
    times: dict[str, bytes] = {}
    changed: list[tuple[str, dict[str, Any]]] = [
        (TEMP, {"value": 1, "observedAt": "2024-05-01T10:00:00Z", "modifiedAt": now}),
        (TEMP, {"value": 2, "observedAt": "2024-05-01T10:00:00Z", "modifiedAt": now,
                "datasetId": "urn:ds:1"}),
        (HUM, {"value": 3, "observedAt": "2024-05-01T17:05:00+07:00",
               "modifiedAt": "2024-05-01T10:08:00Z"}),
        (HUM, {"value": 4, "observedAt": "not a time", "modifiedAt": "garbage"}),
        (HUM, {"value": 5, "observedAt": 12, "modifiedAt": now}),
        (HUM, {"value": 6}),
        (HUM, {"value": "ไทย", "observedAt": "1999-12-31T23:59:59.999999",
               "datasetId": "urn:ds:ข"}),
        (HUM, {"value": True, "observedAt": "2024-05-01T10:00:00Z"}),
        (HUM, {"type": "Property", "value": "urn:ngsi-ld:null", "deletedAt": now}),
    ]
    out: list[bytes] = []
    history_copy(out, sids, "", "urn:e:1", changed, now, time_field(now), times)
    rows = [_decode(r) for r in out]
    ten = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert [r[:4] for r in rows] == [
        (7, None, ten, now_dt),
        (7, "urn:ds:1", ten, now_dt),
        (8, None, datetime(2024, 5, 1, 10, 5, tzinfo=UTC), datetime(2024, 5, 1, 10, 8, tzinfo=UTC)),
        (8, None, None, now_dt),
        (8, None, None, now_dt),
        (8, None, None, now_dt),
        (8, "urn:ds:ข", datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), now_dt),
        (8, None, ten, now_dt),
        (8, None, None, now_dt),
    ]
    assert [r[4] for r in rows] == [inst for _, inst in changed]
    # The derived columns (migration 0009): observedAt else modifiedAt; numbers but not
    # booleans or strings; the deletion marker.
    assert [r[5] for r in rows] == [r[2] if r[2] is not None else r[3] for r in rows]
    assert [r[6] for r in rows] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, None, None, None]
    assert [r[7] for r in rows] == [False] * 8 + [True]
    assert set(times) == {"2024-05-01T10:00:00Z", "2024-05-01T17:05:00+07:00", "not a time",
                          "1999-12-31T23:59:59.999999"}


@pytest.fixture(params=["whole", "streamed"])
async def store(
    pg_dsn: str, schema: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[PostgresStorage]:
    """The engine, sending its history rows at once (ingest-sized batches) or streamed in
    chunks of 2 rows (as a backfill's tens of thousands are)."""
    if request.param == "streamed":
        monkeypatch.setattr(codec, "COPY_CHUNK_ROWS", 2)
    storage = PostgresStorage(pg_dsn, schema=schema)
    await storage.open()
    try:
        yield storage
    finally:
        await storage.close()


def _append(instances: dict[str, list[dict[str, Any]]]) -> Mutation:
    """A mutation that creates the entity and reports ``instances`` as written (the shape a
    bulk history append hands the writer)."""

    def mutate(current: Any, now: str) -> Outcome:
        entity = ent("urn:c:1", n=prop(1))
        changed = [(attr, {**inst, "createdAt": now, "modifiedAt": now})
                   for attr, insts in instances.items() for inst in insts]
        return Outcome(entity=entity, created=True, changed=changed)

    return mutate


async def test_the_server_reads_back_what_was_written(store: PostgresStorage) -> None:
    plus7 = timezone(timedelta(hours=7))
    instances: dict[str, list[dict[str, Any]]] = {
        TEMP: [
            {"type": "Property", "value": 1.5, "observedAt": "2024-05-01T17:00:00+07:00"},
            {"type": "Property", "value": 2, "observedAt": "2024-05-01T10:00:00.123456Z",
             "datasetId": "urn:ds:ก"},
            {"type": "Property", "value": "ว่าง", "observedAt": "1970-01-01T00:00:00"},
        ],
        HUM: [{"type": "Property", "value": {"a": [1, None, True]}},
              {"type": "Property", "value": 3, "observedAt": "garbage"}],
    }
    [result] = await store.write([WriteOp("", "urn:c:1", _append(instances))])
    assert isinstance(result, Outcome)
    got = await store.pool.fetch(
        "SELECT s.attr, h.dataset_id, h.observed_at, h.modified_at, h.ts, h.num, h.deleted,"
        " h.instance FROM attr_history h JOIN history_series s USING (sid) ORDER BY h.hid")
    modified = got[0]["modified_at"]
    assert abs(modified - datetime.now(UTC)) < timedelta(minutes=5)
    assert [(r["attr"], r["dataset_id"], r["observed_at"], r["num"], r["deleted"])
            for r in got] == [
        (TEMP, None, datetime(2024, 5, 1, 17, tzinfo=plus7), 1.5, False),
        (TEMP, "urn:ds:ก", datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC), 2.0, False),
        (TEMP, None, datetime(1970, 1, 1, tzinfo=UTC), None, False),
        (HUM, None, None, None, False),
        (HUM, None, None, 3.0, False),
    ]
    assert all(r["modified_at"] == modified for r in got)
    assert [r["ts"] for r in got][3:] == [modified, modified]
    assert [{k: v for k, v in r["instance"].items() if k not in ("createdAt", "modifiedAt")}
            for r in got] == [*instances[TEMP], *instances[HUM]]


async def test_a_row_that_cannot_be_encoded_fails_only_its_own_operation(
    store: PostgresStorage,
) -> None:
    # Five good rows before the bad one (streamed: it fails in the third chunk, mid-COPY):
    # nothing of the operation may be kept.
    bad = {TEMP: [*({"type": "Property", "value": k, "observedAt": f"2024-05-01T10:0{k}:00Z"}
                    for k in range(5)),
                  {"type": "Property", "value": "\ud800", "observedAt": "2024-05-01T10:06:00Z"}]}
    good = {TEMP: [{"type": "Property", "value": 1, "observedAt": "2024-05-01T10:00:00Z"}]}

    def for_entity(eid: str, instances: dict[str, list[dict[str, Any]]]) -> Mutation:
        inner = _append(instances)

        def mutate(current: Any, now: str) -> Outcome:
            outcome = inner(current, now)
            assert outcome.entity is not None
            outcome.entity.id = eid
            return outcome

        return mutate

    results = await store.write([WriteOp("", "urn:c:bad", for_entity("urn:c:bad", bad)),
                                 WriteOp("", "urn:c:1", for_entity("urn:c:1", good))])
    assert isinstance(results[0], BadRequestData)
    assert isinstance(results[1], Outcome)
    got = await store.pool.fetch(
        "SELECT s.entity_id, h.instance FROM attr_history h JOIN history_series s USING (sid)")
    assert [(r["entity_id"], r["instance"]["value"]) for r in got] == [("urn:c:1", 1)]
    assert await store.pool.fetchval("SELECT count(*) FROM entities") == 1

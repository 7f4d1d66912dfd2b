"""What both engines' migration-6 tests check (history keyed by series): the old-style rows they
write, and what a migrated store must answer about them."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from nakhon.storage.base import WriteOp
from nakhon.storage.history_base import (
    ENTITY_MARKER,
    AggregateQuery,
    Buckets,
    DeletedQuery,
    InstanceQuery,
    TimeWindow,
)

from .test_contract import create, ent, prop

TEMP = "https://example.org/temperature"
HUM = "https://example.org/humidity"
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _inst(value: object, minute: int, **extra: object) -> dict[str, object]:
    return {"type": "Property", "value": value,
            "observedAt": f"2024-05-01T10:{minute:02d}:00Z", **extra}


# (tenant, entity, attr, dataset, observed minute or None, instance)
OLD_ROWS: list[tuple[str, str, str, str | None, int | None, dict[str, object]]] = [
    ("", "urn:m:1", TEMP, None, 0, _inst(20, 0)),
    ("", "urn:m:1", TEMP, None, 5, _inst(22, 5)),
    ("", "urn:m:1", TEMP, "urn:ds:b", 5, _inst(30, 5, datasetId="urn:ds:b")),
    ("", "urn:m:1", HUM, None, 0, _inst(55, 0)),
    ("city", "urn:m:1", TEMP, None, 0, _inst(-1, 0)),
    ("", "urn:m:2", TEMP, None, 1, _inst(18, 1)),
    ("", "urn:m:2", TEMP, None, 9, {"type": "Property", "value": "urn:ngsi-ld:null",
                                    "deletedAt": "2024-05-01T10:09:00Z"}),
    ("", "urn:m:2", ENTITY_MARKER, None, None,
     {"types": ["https://example.org/Sensor"], "createdAt": "2024-05-01T09:00:00Z",
      "deletedAt": "2024-05-01T10:09:00Z"}),
]


async def check_migrated(store: Any, hids: list[int]) -> None:
    """The migrated rows read back through the engine with their ids (``hids``, in
    ``OLD_ROWS`` order); a new row lands on the same series with a greater id."""
    window = TimeWindow()
    got = await store.history_instances(
        InstanceQuery("", [("urn:m:1", TEMP), ("urn:m:1", HUM), ("urn:m:2", TEMP)],
                      window, limit=100))
    by_pair: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i in got:
        by_pair[(i.entity_id, i.attr)].append(i.hid)
    assert by_pair == {
        ("urn:m:1", TEMP): [hids[0], hids[1], hids[2]],
        ("urn:m:1", HUM): [hids[3]],
        ("urn:m:2", TEMP): [hids[5], hids[6]],
    }
    assert [i.instance["value"] for i in got][:3] == [20, 22, 30]
    city = await store.history_instances(
        InstanceQuery("city", [("urn:m:1", TEMP)], window, limit=10))
    assert [(i.hid, i.instance["value"]) for i in city] == [(hids[4], -1)]

    one = await store.history_get("", "urn:m:1", TEMP, hids[1])
    assert one is not None and one.instance["value"] == 22
    assert await store.history_get("city", "urn:m:1", TEMP, hids[1]) is None

    rows = await store.history_aggregate(AggregateQuery(
        "", [("urn:m:1", TEMP)], window, Buckets(T0), frozenset({"totalCount", "max"})))
    assert sorted((r.dataset_id or "", r.values["totalCount"], r.values["max"])
                  for r in rows) == [("", 2, 22.0), ("urn:ds:b", 1, 30.0)]
    assert await store.history_attrs("", ["urn:m:1", "urn:m:2"]) == {
        "urn:m:1": [HUM, TEMP], "urn:m:2": [TEMP]}
    deleted = await store.history_deleted(DeletedQuery(""))
    assert [(d.id, d.types) for d in deleted] == [("urn:m:2", ["https://example.org/Sensor"])]

    # New rows: through the writer, on the migrated series, with hids after the old ones.
    e = ent("urn:m:1", temperature=prop(25, observedAt="2024-05-01T10:10:00Z"))
    e.attrs[TEMP] = e.attrs.pop("temperature")
    await store.write([WriteOp("", e.id, create(e))])
    newest = await store.history_instances(
        InstanceQuery("", [("urn:m:1", TEMP)], window, limit=1, newest_first=True))
    assert newest[0].instance["value"] == 25 and newest[0].hid > max(hids)

"""``history_mark`` and ``history_written_after`` on both engines (the KPI engine's late-data
look-up): only rows written after the mark count, only those of the pairs asked about, in the
window, reported as bucket indexes — here daily buckets, with late readings of an old day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nakhon.storage.base import Storage, WriteOp
from nakhon.storage.history_base import Buckets, TimeWindow, WrittenQuery

from .test_contract import create, ent, set_attr

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _day(days: int, hour: int = 12) -> str:
    return (T0 + timedelta(days=days, hours=hour)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reading(value: float, at: str) -> list[dict[str, object]]:
    return [{"type": "Property", "value": value, "observedAt": at}]


async def test_only_rows_written_after_the_mark_of_the_pairs_count(storage: Storage) -> None:
    store = storage  # the engines implement the change-tracking protocol
    for eid in ("urn:w:1", "urn:w:2", "urn:w:3"):
        await storage.write([WriteOp("t", eid, create(ent(eid, temp=_reading(1, _day(0)))))])
    for day in range(1, 4):
        for eid in ("urn:w:1", "urn:w:2", "urn:w:3"):
            await storage.write([WriteOp("t", eid, set_attr("temp", _reading(day, _day(day))))])
    mark = await store.history_mark()  # type: ignore[attr-defined]
    window = TimeWindow(start=T0, end=T0 + timedelta(days=10))
    daily = Buckets(T0, seconds=86_400)

    def query(pairs: list[tuple[str, str]], since: int) -> WrittenQuery:
        return WrittenQuery("t", pairs, window, daily, since)

    asked = [("urn:w:1", "temp"), ("urn:w:2", "temp")]
    assert await store.history_written_after(query(asked, mark)) == set()  # type: ignore[attr-defined]
    # Late readings: day 1 for urn:w:2 (asked), day 2 for urn:w:3 (not asked), day 5 and
    # one outside the window for urn:w:1, another tenant's day 3.
    await storage.write([WriteOp("t", "urn:w:2", set_attr("temp", _reading(9, _day(1, 18))))])
    await storage.write([WriteOp("t", "urn:w:3", set_attr("temp", _reading(9, _day(2, 18))))])
    await storage.write([WriteOp("t", "urn:w:1", set_attr("temp", _reading(9, _day(5))))])
    await storage.write([WriteOp("t", "urn:w:1", set_attr("temp", _reading(9, _day(20))))])
    other = create(ent("urn:w:1", temp=_reading(1, _day(3))))
    await storage.write([WriteOp("u", "urn:w:1", other)])
    assert await store.history_written_after(query(asked, mark)) == {1, 5}  # type: ignore[attr-defined]
    assert await store.history_written_after(  # type: ignore[attr-defined]
        query([("urn:w:3", "temp")], mark)) == {2}
    assert await store.history_written_after(  # type: ignore[attr-defined]
        query([("urn:w:9", "temp")], mark)) == set()
    # Everything, from the start: every day any asked pair has a row on.
    assert await store.history_written_after(query(asked, 0)) == {0, 1, 2, 3, 5}  # type: ignore[attr-defined]
    later = await store.history_mark()  # type: ignore[attr-defined]
    assert later > mark
    assert await store.history_written_after(query(asked, later)) == set()  # type: ignore[attr-defined]

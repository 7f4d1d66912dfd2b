"""``history_state_durations`` on both engines: every string value's holding time per bucket,
whatever its length (SQLite keeps strings of up to 64 characters in its index and reads longer
ones from the instance), with numbers holding time unreported and markers left out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nakhon.storage.base import Storage, WriteOp
from nakhon.storage.history_base import Buckets, StateQuery, TimeWindow

from .test_contract import create, ent, set_attr

T0 = datetime(2024, 5, 1, tzinfo=UTC)
LONG = "a state name far longer than any index should hold, " * 3


def _at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_state_durations_of_short_long_and_numeric_values(storage: Storage) -> None:
    values: list[object] = ["free", LONG, 7, "free", LONG]
    await storage.write([WriteOp("", "urn:s:1", create(ent("urn:s:1", status=[
        {"type": "Property", "value": "occupied", "observedAt": _at(0)}])))])
    for k, v in enumerate(values, start=1):
        await storage.write([WriteOp("", "urn:s:1", set_attr("status", [
            {"type": "Property", "value": v, "observedAt": _at(10 * k)}]))])
    rows = await storage.history_state_durations(  # type: ignore[attr-defined]
        StateQuery("", [("urn:s:1", "status")], TimeWindow(start=T0), Buckets(T0, seconds=3600),
                   until=T0 + timedelta(minutes=60)))
    got = {r.value: r.seconds for r in rows}
    # occupied 0–10, free 10–20 and 40–50, LONG 20–30 and 50–60; 7 holds 30–40, unreported.
    assert got == {"occupied": 600.0, "free": 1200.0, LONG: 1200.0}

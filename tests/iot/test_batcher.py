"""The ingest batcher on a real storage engine: a storage outage is retried until it passes,
while a defect one measurement triggers (any other exception) must not stall ingest — that
measurement alone is refused and counted, every other one in its batch is written."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from nakhon.core.auth import SYSTEM, Access
from nakhon.iot import stats as reasons
from nakhon.iot.batcher import Batcher, transient
from nakhon.iot.service import Measurement, ingest_measurements
from nakhon.iot.stats import IngestStats
from nakhon.storage import storage_for
from nakhon.storage.base import Outcome

TEMP = "https://example.org/temperature"
TYPES = ["https://example.org/Sensor"]


@pytest.fixture
async def storage(iot_db: str) -> AsyncIterator[Any]:
    store = storage_for(iot_db)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def _measure(tenant: str, n: int) -> Measurement:
    inst = {"type": "Property", "value": n, "observedAt": "2024-05-01T10:00:00Z"}
    return Measurement(tenant, f"urn:ngsi-ld:Sensor:{n}", TYPES, {TEMP: [inst]})


async def test_a_poisoned_measurement_is_refused_alone_and_the_rest_written(
    storage: Any,
) -> None:
    tenant = f"b{uuid.uuid4().hex[:8]}"
    access = Access(storage, enabled=False, anonymous_read=True)
    calls: list[int] = []
    failures = iter([OSError("connection reset"), OSError("connection reset")])

    async def write(items: Sequence[Measurement]) -> list[Outcome | Exception]:
        calls.append(len(items))
        if len(calls) == 1:  # the storage is unreachable at first: the batch waits and retries
            raise next(failures)
        if any(m.entity_id.endswith(":13") for m in items):
            raise KeyError("a defect this measurement triggers")
        return await ingest_measurements(access, storage, SYSTEM, items)

    stats = IngestStats(100)
    batcher = Batcher(write, stats, max_items=1000, max_wait=0.05)
    batcher.start()
    try:
        results = await asyncio.wait_for(
            batcher.submit([_measure(tenant, n) for n in range(40)]), timeout=30)
    finally:
        await batcher.stop()
    assert calls[:2] == [40, 40]  # the outage: the same batch again
    assert stats.counters["retries"] == 1
    assert [n for n, r in enumerate(results) if not isinstance(r, Outcome)] == [13]
    assert isinstance(results[13], KeyError)
    assert stats.rejected[reasons.WRITE_REFUSED] == 1
    # Halving isolates the one item in about 2·log2(40) writes, not 40.
    assert len(calls) <= 2 + 2 * 6
    stored = [await storage.get(tenant, f"urn:ngsi-ld:Sensor:{n}") for n in range(40)]
    assert [n for n, e in enumerate(stored) if e is None] == [13]
    assert stored[12].attrs[TEMP][0]["value"] == 12


def test_what_counts_as_the_storage_being_unreachable() -> None:
    import asyncpg

    assert transient(ConnectionRefusedError())
    assert transient(TimeoutError())
    assert transient(asyncpg.exceptions.ConnectionDoesNotExistError())
    assert not transient(KeyError("x"))
    assert not transient(TypeError("x"))
    assert not transient(asyncpg.exceptions.DataError("x"))

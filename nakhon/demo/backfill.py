"""Backfill: the demo city's past days, written in bulk straight into attribute history.

Readings are turned into attribute instances by each device's own registry mapping (the same
:class:`~nakhon.iot.convert.Target` the ingest path uses, so history looks exactly like ingested
data) and written as mutations through the storage writer — many devices per ``storage.write``
call, one transaction each (DESIGN rule 4): every instance goes to ``attr_history`` (the writer
appends ``Outcome.changed`` in the same transaction), the newest becomes the current value.

**Idempotent by construction.** A device's history is written only *after* the newest
``observedAt`` its entity already has; the check runs inside the write transaction (in the
mutation), so a second ``nakhon demo`` — or one interrupted half-way — never writes an instant
twice: it fills only the gap since the device last reported.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from nakhon.broker.model import Instance
from nakhon.core.auth import SYSTEM, Access
from nakhon.demo.model import DemoDevice
from nakhon.iot.convert import Target
from nakhon.iot.payloads import Measure, iso_utc
from nakhon.iot.registry import Registry
from nakhon.storage.base import Outcome, Storage, WriteOp
from nakhon.temporal.bulk import Instances, latest_observed
from nakhon.temporal.bulk import append_in_order as after_latest

DEVICES_PER_WRITE = 12
"""Devices per transaction: ~12 × 720 hourly readings × ~4 attributes ≈ 35k history rows —
big enough to amortise the commit, small enough to keep other writers' latency low."""


@dataclass(slots=True)
class BackfillReport:
    devices: int = 0
    instances: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Attribute instances written per second."""
        return self.instances / self.seconds if self.seconds > 0 else 0.0


def series(
    dev: DemoDevice, target: Target, seed: int, start: float, end: float, step: int
) -> Instances:
    """The device's readings every ``step`` seconds in ``[start, end)`` as instances."""
    out: dict[str, list[Instance]] = {}
    offset = dev.hid % 60  # devices do not all report on the same second
    t = (int(start) // step) * step + offset
    if t < start:
        t += step
    while t < end:
        at = iso_utc(datetime.fromtimestamp(t, UTC))
        for iri, insts in target.to_attrs(
            Measure(dev.reading(seed, t, step), at), at, text=False
        ).items():
            out.setdefault(iri, []).extend(insts)
        t += step
    return out


async def backfill(
    storage: Storage,
    access: Access,
    registry: Registry,
    devices: Sequence[DemoDevice],
    *,
    tenant: str,
    seed: int,
    start: float,
    end: float,
    step: int,
) -> BackfillReport:
    """Write every device's readings in ``[start, end)`` (only what is missing)."""
    access.require_write(SYSTEM, tenant)
    report = BackfillReport()
    began = time.perf_counter()
    pending: asyncio.Task[list[Outcome | Exception]] | None = None
    try:
        for first in range(0, len(devices), DEVICES_PER_WRITE):
            chunk = devices[first : first + DEVICES_PER_WRITE]
            targets = [await registry.resolve(d.kind.apikey, d.device_id) for d in chunk]
            cuts = [
                await _start_after(storage, tenant, d, t, start, step)
                for d, t in zip(chunk, targets, strict=True)
            ]
            # Building ~100k instances is pure Python work: off the event loop, so the API
            # keeps answering while the city fills in.
            jobs = list(zip(chunk, targets, cuts, strict=True))
            batches = await asyncio.to_thread(_build, jobs, seed, end, step)
            ops = [
                WriteOp(tenant, t.entity_id, after_latest(t.entity_id, t.types, b))
                for t, b in zip(targets, batches, strict=True)
                if b
            ]
            if pending is not None:
                _count(await pending, report)
                pending = None
            if ops:
                # Pipelined: the next chunk is built while this one commits (SQLite releases
                # the GIL while it writes pages).
                pending = asyncio.create_task(storage.write(ops))
        if pending is not None:
            _count(await pending, report)
    finally:
        if pending is not None and not pending.done():
            # Cancelled mid-way: the write still commits; just never leave its error unread.
            pending.add_done_callback(lambda t: t.cancelled() or t.exception())
    report.seconds = time.perf_counter() - began
    return report


def _count(results: list[Outcome | Exception], report: BackfillReport) -> None:
    for result in results:
        if isinstance(result, Exception):
            raise result
        report.instances += len(result.changed)
        report.devices += 0 if result.unchanged else 1


def _build(
    jobs: list[tuple[DemoDevice, Target, float]], seed: int, end: float, step: int
) -> list[Instances]:
    return [series(d, t, seed, s, end, step) for d, t, s in jobs]


async def _start_after(
    storage: Storage, tenant: str, dev: DemoDevice, target: Target, start: float, step: int
) -> float:
    """Where this device's backfill begins: ``start``, or just after its newest reading
    (saves building instances the mutation would drop anyway)."""
    entity = await storage.get(tenant, target.entity_id)
    cut = latest_observed(entity, [r.iri for r in target.rules.values()])
    if cut is None:
        return start
    last = datetime.fromisoformat(cut.replace("Z", "+00:00")).timestamp()
    return max(start, last + 1)

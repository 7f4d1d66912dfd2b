"""The live city: every device reports on its own schedule through the real ingest path.

Each reading is encoded as the device would send it — a JSON object or an UltraLight 2.0 line,
with the device's timestamp — and handed to the IoT runtime's :class:`~nakhon.iot.service.
Ingestor` (registry look-up, payload parsing, mapping, dead letters) and then its batcher (one
storage transaction per batch), exactly what an MQTT message or an ``/iot/json`` request goes
through, minus the socket. Intervals are the kinds' (1–10 minutes) divided by ``speed``.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from nakhon.core.logs import get_logger
from nakhon.demo.model import DemoDevice
from nakhon.iot.payloads import iso_utc
from nakhon.iot.registry import Rejected
from nakhon.iot.runtime import IotRuntime
from nakhon.iot.service import Measurement

log = get_logger("nakhon.demo")
TRANSPORT = "demo"


def encode(dev: DemoDevice, values: dict[str, Any], at: str) -> bytes:
    """The device's message: JSON with ``TimeInstant``, or UL 2.0 ``<time>|k|v|k|v``."""
    if dev.kind.fmt == "json":
        return orjson.dumps({**values, "TimeInstant": at})
    fields = [at]
    for key, value in values.items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        fields += [key, text]
    return "|".join(fields).encode()


@dataclass(slots=True)
class LiveStats:
    messages: int = 0
    measurements: int = 0
    rejected: int = 0
    last_tick: float = 0.0


class LiveCity:
    """Runs the devices' schedules until cancelled."""

    def __init__(
        self,
        iot: IotRuntime,
        devices: Sequence[DemoDevice],
        *,
        seed: int,
        speed: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.iot = iot
        self.devices = list(devices)
        self.seed = seed
        self.speed = max(0.01, speed)
        self.clock = clock
        self.stats = LiveStats()

    def _period(self, dev: DemoDevice) -> float:
        return dev.kind.interval / self.speed

    async def run(self) -> None:
        now = self.clock()
        # Spread first reports over each device's interval so the city does not pulse.
        due = [
            (now + (dev.hid % 997) / 997 * self._period(dev), i)
            for i, dev in enumerate(self.devices)
        ]
        heapq.heapify(due)
        while due:
            now = self.clock()
            items: list[Measurement] = []
            while due and due[0][0] <= now:
                at_due, i = heapq.heappop(due)
                dev = self.devices[i]
                items += await self._message(dev, now)
                nxt = at_due + self._period(dev)
                heapq.heappush(due, (nxt if nxt > now else now + self._period(dev), i))
            if items:
                # Wait for the commit: if storage is slow the city slows down instead of
                # queueing without bound.
                try:
                    await self.iot.batcher.submit(items, TRANSPORT)
                    self.stats.measurements += len(items)
                except Exception:  # a bad moment must not end the city; the next tick retries
                    log.exception("demo tick failed")
            self.stats.last_tick = now
            await asyncio.sleep(min(1.0, max(0.02, due[0][0] - self.clock())))

    async def tick_all(self) -> int:
        """Every device reports once, now (tests and a first live sample after backfill)."""
        now = self.clock()
        items: list[Measurement] = []
        for dev in self.devices:
            items += await self._message(dev, now)
        if items:
            await self.iot.batcher.submit(items, TRANSPORT)
            self.stats.measurements += len(items)
        return len(items)

    async def _message(self, dev: DemoDevice, now: float) -> list[Measurement]:
        at = iso_utc(datetime.fromtimestamp(now, UTC))
        payload = encode(dev, dev.reading(self.seed, now, self._period(dev)), at)
        self.stats.messages += 1
        try:
            return await self.iot.ingestor.prepare(
                transport=TRANSPORT,
                apikey=dev.kind.apikey,
                device_id=dev.device_id,
                payload=payload,
                fmt=dev.kind.fmt,
            )
        except Rejected as rej:  # already counted and dead-lettered by the ingestor
            self.stats.rejected += 1
            log.warning("demo message rejected", device=dev.device_id, reason=rej.reason)
            return []
        except Exception:  # e.g. storage unreachable on a registry miss: skip this reading
            self.stats.rejected += 1
            log.exception("demo message failed", device=dev.device_id)
            return []

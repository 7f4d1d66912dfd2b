"""The demo city inside a running Nakhon: provision, backfill, then live reporting.

:func:`attach` wraps an app from :func:`nakhon.app.create_app` so that, once the platform has
started (storage open, IoT runtime running, admin credential bootstrapped), a background task
runs :meth:`DemoCity.run`. The server answers from the first second; the backfill fills the
past while it does, and the live devices start when it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette

from nakhon.core.auth import SYSTEM
from nakhon.core.logs import get_logger
from nakhon.demo import fleet
from nakhon.demo.backfill import BackfillReport, backfill
from nakhon.demo.geo import Province, load_province
from nakhon.demo.live import LiveCity
from nakhon.demo.model import DemoDevice
from nakhon.iot.registry import Registry
from nakhon.iot.runtime import IotRuntime

log = get_logger("nakhon.demo")
PROVISION_CONCURRENCY = 32


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``nakhon demo`` was asked for."""

    province: str = "Chachoengsao"
    devices: int = 500
    seed: int = 2567
    days: float = 30.0
    speed: float = 1.0
    history_step: int = 3600
    """Seconds between backfilled readings (live readings come every 1–10 minutes)."""
    tenant: str = ""


@dataclass(slots=True)
class DemoStatus:
    """Progress, for logs, tests and anyone curious (``app.state.demo.status``)."""

    phase: str = "starting"
    devices: int = 0
    provisioned: int = 0
    provision_seconds: float = 0.0
    backfill: BackfillReport = field(default_factory=BackfillReport)
    error: str | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once provisioning and backfill are done and live reporting has begun."""


async def provision(
    registry: Registry, province: Province, devices: Sequence[DemoDevice], tenant: str
) -> int:
    """Create the kinds' service groups and the devices missing from the registry (through
    the registry's service functions, which also upsert each device's entity). Returns how
    many devices were new."""
    groups = {g.apikey for g in await registry.list_groups(SYSTEM, tenant)}
    for kind in {d.kind.key: d.kind for d in devices}.values():
        if kind.apikey not in groups:
            await registry.create_group(SYSTEM, fleet.group_doc(kind), tenant)
    known, _ = await registry.list_devices(SYSTEM, tenant, limit=10**9, offset=0)
    have = {d.device_id for d in known}
    missing = [d for d in devices if d.device_id not in have]
    gate = asyncio.Semaphore(PROVISION_CONCURRENCY)

    async def one(dev: DemoDevice) -> None:
        # Concurrent provisioning lets the storage writer commit many devices per transaction.
        async with gate:
            await registry.create_device(SYSTEM, fleet.device_doc(dev, province), tenant)

    await asyncio.gather(*(one(d) for d in missing))
    return len(missing)


class DemoCity:
    """The simulated city of one app."""

    def __init__(self, iot: IotRuntime, options: DemoOptions) -> None:
        self.iot = iot
        self.options = options
        self.province = load_province(options.province)
        self.devices = fleet.plan(self.province, options.devices, options.seed)
        self.live = LiveCity(iot, self.devices, seed=options.seed, speed=options.speed)
        self.status = DemoStatus(devices=len(self.devices))

    async def prepare(self, now: float | None = None) -> None:
        """Provision the fleet and backfill the past up to ``now``."""
        opts = self.options
        now = time.time() if now is None else now
        self.status.phase = "provisioning"
        began = time.perf_counter()
        self.status.provisioned = await provision(
            self.iot.registry, self.province, self.devices, opts.tenant
        )
        self.status.provision_seconds = time.perf_counter() - began
        log.info(
            "demo city provisioned",
            province=self.province.name_en,
            devices=len(self.devices),
            new=self.status.provisioned,
            seconds=round(self.status.provision_seconds, 2),
        )
        self.status.phase = "backfilling"
        report = await backfill(
            self.iot.storage,
            self.iot.access,
            self.iot.registry,
            self.devices,
            tenant=opts.tenant,
            seed=opts.seed,
            start=now - opts.days * 86400,
            end=now,
            step=opts.history_step,
        )
        self.status.backfill = report
        log.info(
            "demo history backfilled",
            days=opts.days,
            devices=report.devices,
            instances=report.instances,
            seconds=round(report.seconds, 2),
            instances_per_second=round(report.rate),
        )

    async def run(self) -> None:
        """Prepare, then report live until cancelled. Errors are logged, never raised: the
        platform keeps serving whatever the demo does."""
        try:
            await self.prepare()
            # Everyone reports once right away: the backfill's last reading may be up to a
            # history step old, and the sensor-offline rule would flag the whole city.
            await self.live.tick_all()
            self.status.phase = "live"
            self.status.ready.set()
            log.info(
                "demo city live",
                devices=len(self.devices),
                speed=self.options.speed,
                messages_per_minute=round(self.messages_per_minute(), 1),
            )
            await self.live.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.status.phase = "failed"
            self.status.error = str(exc)
            self.status.ready.set()
            log.exception("demo city failed")

    def messages_per_minute(self) -> float:
        return sum(60.0 / (d.kind.interval / self.options.speed) for d in self.devices)


def attach(app: Starlette, options: DemoOptions) -> DemoCity:
    """Run a demo city inside ``app`` (an app from ``create_app``) for its whole lifespan."""
    iot: IotRuntime = app.state.iot
    city = DemoCity(iot, options)
    app.state.demo = city
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            task = asyncio.create_task(city.run(), name="nakhon-demo-city")
            try:
                yield state
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app.router.lifespan_context = lifespan
    return city

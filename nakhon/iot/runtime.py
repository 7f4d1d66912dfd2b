"""Wiring of the IoT capability: registry, stats, ingestor, batcher and (optional) MQTT consumer.

The app creates one :class:`IotRuntime` and starts/stops it with its lifespan. MQTT starts only
when ``NAKHON_MQTT_URL`` is set: embedded mode needs no broker, HTTP ingest always works.
"""

from __future__ import annotations

from collections.abc import Sequence

from nakhon.broker.service import Broker
from nakhon.config import Settings
from nakhon.core.auth import SYSTEM, Access
from nakhon.core.logs import get_logger
from nakhon.iot.batcher import Batcher, Results
from nakhon.iot.mqtt import MqttConsumer
from nakhon.iot.registry import Registry
from nakhon.iot.service import Ingestor, Measurement, ingest_measurements
from nakhon.iot.stats import IngestStats
from nakhon.storage.base import Storage

log = get_logger("nakhon.iot")


class IotRuntime:
    """Everything IoT ingest needs at run time, for one app."""

    def __init__(self, settings: Settings, storage: Storage, access: Access,
                 broker: Broker) -> None:
        self.settings = settings
        self.access = access
        self.storage = storage
        self.registry = Registry(storage, access, broker)
        self.stats = IngestStats(settings.iot_dead_letters_max, storage)
        self.ingestor = Ingestor(self.registry, self.stats)
        self.batcher = Batcher(self._write, self.stats, max_items=settings.iot_batch_max,
                               max_wait=settings.iot_batch_wait_ms / 1000.0)
        self.mqtt: MqttConsumer | None = None
        if settings.mqtt_url:
            self.mqtt = MqttConsumer(
                settings.mqtt_url, settings.mqtt_client_id, self.ingestor, self.batcher,
                reconnect_max=settings.mqtt_reconnect_max,
                ack_after_commit=settings.mqtt_ack_after_commit,
            )

    async def _write(self, items: Sequence[Measurement]) -> Results:
        # The ingest loop writes as the platform itself; the device's apikey authenticated it.
        return await ingest_measurements(self.access, self.storage, SYSTEM, items)

    async def start(self) -> None:
        await self.registry.load()
        self.stats.start()
        self.batcher.start()
        if self.mqtt is not None:
            self.mqtt.start()
            log.info("mqtt ingest starting", url=self.settings.mqtt_url)

    async def stop(self) -> None:
        if self.mqtt is not None:
            await self.mqtt.stop()
        await self.batcher.stop()
        await self.stats.stop()  # after the batcher: its last refusals are letters too

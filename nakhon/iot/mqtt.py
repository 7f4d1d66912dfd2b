"""MQTT ingest: a persistent QoS 1 subscription on a real broker (Mosquitto).

Topics, as the FIWARE IoT Agents read them (``+`` is one level)::

    /<apikey>/<device_id>/attrs              JSON object/array, or UltraLight 2.0 text
    /<apikey>/<device_id>/attrs/<object_id>  the bare value of one attribute
    /json/<apikey>/<device_id>/attrs[/<object_id>]   JSON (iotagent-json)
    /ul/<apikey>/<device_id>/attrs[/<object_id>]     UltraLight (iotagent-ul)

Delivery guarantees: the client connects with a stable client id and ``clean_session=False``
and subscribes with QoS 1, so the broker keeps the session — and queues messages — while Nakhon
is stopped or the connection is down. Acknowledgement is manual (paho's ``manual_ack``, reached
through aiomqtt's client object because aiomqtt 2.x does not expose it): a message is PUBACKed
only after the batch holding its measurements has committed, so a crash between receipt and
commit loses nothing — the broker redelivers. Rejected messages (dead letters) are acked at once:
redelivering poison would only loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt

from nakhon.core.logs import get_logger
from nakhon.iot import stats as reasons
from nakhon.iot.batcher import Batcher, Results
from nakhon.iot.registry import Rejected
from nakhon.iot.service import Format, Ingestor

log = get_logger("nakhon.iot.mqtt")

TOPICS = (
    "/+/+/attrs", "/+/+/attrs/+",
    "/json/+/+/attrs", "/json/+/+/attrs/+",
    "/ul/+/+/attrs", "/ul/+/+/attrs/+",
)


@dataclass(slots=True)
class TopicParts:
    apikey: str
    device_id: str
    fmt: Format
    attr: str | None


def parse_topic(topic: str) -> TopicParts | None:
    """The apikey, device id, payload format and (attribute topics) object id of a topic."""
    levels = topic.split("/")
    if len(levels) < 4 or levels[0] != "":
        return None
    if levels[3] == "attrs" and len(levels) in (4, 5):
        attr = levels[4] if len(levels) == 5 else None
        return TopicParts(levels[1], levels[2], "auto", attr or None) if levels[1] else None
    if levels[1] in ("json", "ul") and len(levels) in (5, 6) and levels[4] == "attrs":
        fmt: Format = "json" if levels[1] == "json" else "ul"
        attr = levels[5] if len(levels) == 6 else None
        return TopicParts(levels[2], levels[3], fmt, attr or None) if levels[2] else None
    return None


@dataclass(frozen=True, slots=True)
class MqttTarget:
    host: str
    port: int
    username: str | None
    password: str | None


def parse_url(url: str) -> MqttTarget:
    """``mqtt://[user[:password]@]host[:port]`` → connection parameters."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp"):
        raise ValueError(f"NAKHON_MQTT_URL must be mqtt://host:port, got {url!r}")
    return MqttTarget(parts.hostname or "127.0.0.1", parts.port or 1883,
                      unquote(parts.username) if parts.username else None,
                      unquote(parts.password) if parts.password else None)


class MqttConsumer:
    """Subscribes, feeds the batcher, acks after commit, reconnects with backoff forever."""

    def __init__(self, url: str, client_id: str, ingestor: Ingestor, batcher: Batcher, *,
                 reconnect_max: float = 30.0, ack_after_commit: bool = True) -> None:
        self.target = parse_url(url)
        self.client_id = client_id
        self.ingestor = ingestor
        self.batcher = batcher
        self.reconnect_max = reconnect_max
        self.ack_after_commit = ack_after_commit
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="nakhon-iot-mqtt")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._session()
                delay = 0.5
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self.ingestor.stats.counters["reconnects"] += 1
                log.warning("mqtt connection lost; reconnecting", error=str(exc),
                            delay=round(delay, 2))
            # Jitter spreads the reconnects of several Nakhon processes after a broker restart.
            await asyncio.sleep(delay * (0.75 + random.random() / 2))
            delay = min(delay * 2, self.reconnect_max)

    async def _session(self) -> None:
        client = aiomqtt.Client(
            self.target.host, self.target.port,
            username=self.target.username, password=self.target.password,
            identifier=self.client_id, clean_session=False,
            protocol=aiomqtt.ProtocolVersion.V311, keepalive=30,
        )
        paho: Any = client._client
        if self.ack_after_commit:
            paho.manual_ack_set(True)
        async with client:
            await client.subscribe([(t, 1) for t in TOPICS])
            self.connected.set()
            log.info("mqtt ingest subscribed", host=self.target.host, port=self.target.port,
                     client_id=self.client_id)
            async for message in client.messages:
                await self._handle(paho, message)

    async def _handle(self, paho: Any, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        payload = bytes(message.payload)
        ack = self._acker(paho, message.mid, message.qos)
        parts = parse_topic(topic)
        if parts is None:
            self.ingestor.stats.counters["received"] += 1
            self.ingestor.stats.reject(reasons.BAD_TOPIC, "not an IoT Agent measure topic",
                                       transport="mqtt", payload=payload, topic=topic)
            ack(None)
            return
        try:
            items = await self.ingestor.prepare(
                transport="mqtt", apikey=parts.apikey, device_id=parts.device_id,
                payload=payload, fmt=parts.fmt, attr=parts.attr, topic=topic)
        except Rejected:
            ack(None)
            return
        except Exception as exc:  # a bug must not stop the loop; keep the message as a letter
            self.ingestor.stats.reject(reasons.BAD_PAYLOAD, f"internal error: {exc!r}",
                                       transport="mqtt", payload=payload, topic=topic)
            log.exception("iot message handling failed", topic=topic)
            ack(None)
            return
        self.batcher.put(items, ack, "mqtt")

    def _acker(self, paho: Any, mid: int, qos: int) -> Callable[[Results | None], None]:
        if not self.ack_after_commit or qos == 0:
            return _no_ack

        def ack(_: Results | None) -> None:
            # After a reconnect the old mid means nothing; the broker redelivers it anyway.
            if paho.is_connected():
                paho.ack(mid, qos)

        return ack


def _no_ack(_: Results | None) -> None:
    return None

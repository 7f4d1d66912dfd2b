"""MQTT ingest: a persistent QoS 1 subscription on a real broker (Mosquitto).

Topics, as the FIWARE IoT Agents read them (``+`` is one level)::

    /<apikey>/<device_id>/attrs              JSON object/array, or UltraLight 2.0 text
    /<apikey>/<device_id>/attrs/<object_id>  the bare value of one attribute
    /json/<apikey>/<device_id>/attrs[/<object_id>]   JSON (iotagent-json)
    /ul/<apikey>/<device_id>/attrs[/<object_id>]     UltraLight (iotagent-ul)

Delivery guarantees: the client (:mod:`nakhon.iot.wire`, MQTT 5) connects with a stable client
id, no clean start and a session that never expires, and subscribes with QoS 1, so the broker
keeps the session — and queues messages — while Nakhon is stopped or the connection is down.
A message is PUBACKed only after the batch holding its measurements has committed, so a crash
between receipt and commit loses nothing — the broker redelivers. Rejected messages (dead
letters) are acked at once: redelivering poison would only loop. The client declares a
``Receive Maximum`` (:data:`RECEIVE_MAX`): that many messages may be unacknowledged — received,
waiting for their commit — at once; MQTT 3.1.1 left this to the broker (Mosquitto: 20), which
capped a consumer that acks after commit at 20 messages per commit.

Hot path: the wire client hands over every PUBLISH of one socket read as one list; messages of
devices already in the registry cache are converted synchronously and go to the batcher as ONE
submission whose PUBACKs are written together after the commit. A cache miss (first message of
a device) and everything after it in arrival order take the asynchronous path, which reads the
registry from storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from nakhon.core.logs import get_logger
from nakhon.iot import stats as reasons
from nakhon.iot.batcher import Batcher, Results
from nakhon.iot.payloads import iso_utc
from nakhon.iot.registry import Rejected
from nakhon.iot.service import Format, Ingestor, Measurement
from nakhon.iot.wire import Message, WireClient, WireError

log = get_logger("nakhon.iot.mqtt")

RECEIVE_MAX = 10_000
"""Most unacknowledged QoS 1 messages the broker may send before it waits for PUBACKs (MQTT 5
``Receive Maximum``): two seconds of messages at 5,000/s. Throughput is at most this window
over the time from receipt to PUBACK (one or two group commits), and what does not fit waits in
the broker's queue for the session, which Mosquitto caps (``max_queued_messages``, default
1,000) by dropping: a wide window rides out a slow commit without loss."""

KEEPALIVE = 30
GC_THRESHOLDS = (10_000, 100, 10)
_GC_RELAXED = False
_TOPIC_CACHE_MAX = 100_000

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
                 reconnect_max: float = 30.0, ack_after_commit: bool = True,
                 receive_max: int = RECEIVE_MAX) -> None:
        self.target = parse_url(url)
        self.client_id = client_id
        self.ingestor = ingestor
        self.batcher = batcher
        self.reconnect_max = reconnect_max
        self.ack_after_commit = ack_after_commit
        self.receive_max = receive_max
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._topics: dict[str, TopicParts | None] = {}
        # Messages waiting behind a registry miss, in arrival order, and the task draining them.
        self._backlog: deque[tuple[WireClient, list[Message]]] = deque()
        self._drainer: asyncio.Task[None] | None = None

    def start(self) -> None:
        relax_gc()
        self._task = asyncio.create_task(self._run(), name="nakhon-iot-mqtt")

    async def stop(self) -> None:
        for task in (self._task, self._drainer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._drainer = None
        self._backlog.clear()

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._session()
                delay = 0.5
            except WireError as exc:
                self.connected.clear()
                self.ingestor.stats.counters["reconnects"] += 1
                log.warning("mqtt connection lost; reconnecting", error=str(exc),
                            delay=round(delay, 2))
            # Jitter spreads the reconnects of several Nakhon processes after a broker restart.
            await asyncio.sleep(delay * (0.75 + random.random() / 2))
            delay = min(delay * 2, self.reconnect_max)

    async def _session(self) -> None:
        client = WireClient(lambda batch: self._received(client, batch))
        try:
            await client.connect(
                self.target.host, self.target.port, client_id=self.client_id,
                username=self.target.username, password=self.target.password,
                keepalive=KEEPALIVE, clean_start=False, receive_max=self.receive_max)
            await client.subscribe(TOPICS, 1)
            self.connected.set()
            log.info("mqtt ingest subscribed", host=self.target.host, port=self.target.port,
                     client_id=self.client_id)
            await client.closed()
        finally:
            self.connected.clear()
            await client.disconnect()

    # --- message handling ------------------------------------------------------------------

    def _received(self, client: WireClient, batch: list[Message]) -> None:
        """Every PUBLISH of one read, in order (called by the wire client)."""
        if self._drainer is None:
            batch = self._handle_cached(client, batch)
            if not batch:
                return
            self._drainer = asyncio.create_task(self._drain(), name="nakhon-iot-mqtt-misses")
        self._backlog.append((client, batch))

    def _parts(self, topic: str) -> TopicParts | None:
        try:
            return self._topics[topic]
        except KeyError:
            if len(self._topics) >= _TOPIC_CACHE_MAX:
                self._topics.clear()
            parts = self._topics[topic] = parse_topic(topic)
            return parts

    def _handle_cached(self, client: WireClient, batch: list[Message]) -> list[Message]:
        """Handle messages while their devices are cached; the rest from the first miss on."""
        items: list[Measurement] = []
        accepted: list[int] = []
        refused: list[int] = []
        ingestor, cached = self.ingestor, self.ingestor.registry.cached
        received = iso_utc(datetime.now(UTC))
        rest: list[Message] = []
        for k, msg in enumerate(batch):
            parts = self._parts(msg.topic)
            if parts is None:
                self._bad_topic(msg)
                refused.append(msg.mid)
                continue
            target = cached(parts.apikey, parts.device_id)
            if target is None:
                rest = batch[k:]
                break
            try:
                items += ingestor.prepare_for(
                    target, transport="mqtt", payload=msg.payload, fmt=parts.fmt,
                    attr=parts.attr, received=received, topic=msg.topic)
            except Rejected:
                refused.append(msg.mid)
                continue
            except Exception as exc:  # a bug must not stop the loop; keep it as a letter
                self._internal_error(msg, exc)
                refused.append(msg.mid)
                continue
            accepted.append(msg.mid)
        if refused:
            client.ack(refused)
        if items:
            if self.ack_after_commit:
                self.batcher.put(items, lambda _: client.ack(accepted), "mqtt")
            else:
                client.ack(accepted)
                self.batcher.put(items, None, "mqtt")
        return rest

    async def _drain(self) -> None:
        """The slow path: one message at a time while misses are resolved, in order."""
        try:
            while self._backlog:
                client, batch = self._backlog.popleft()
                while batch:
                    batch = self._handle_cached(client, batch)
                    if batch:  # a registry miss: resolve it (reads storage), then go on
                        await self._handle_one(client, batch[0])
                        batch = batch[1:]
        finally:
            self._drainer = None

    async def _handle_one(self, client: WireClient, msg: Message) -> None:
        parts = self._parts(msg.topic)
        if parts is None:
            self._bad_topic(msg)
            client.ack((msg.mid,))
            return
        try:
            items = await self.ingestor.prepare(
                transport="mqtt", apikey=parts.apikey, device_id=parts.device_id,
                payload=msg.payload, fmt=parts.fmt, attr=parts.attr, topic=msg.topic)
        except Rejected:
            client.ack((msg.mid,))
            return
        except Exception as exc:
            self._internal_error(msg, exc)
            client.ack((msg.mid,))
            return
        if self.ack_after_commit:
            self.batcher.put(items, _acker(client, msg.mid), "mqtt")
        else:
            client.ack((msg.mid,))
            self.batcher.put(items, None, "mqtt")

    def _bad_topic(self, msg: Message) -> None:
        self.ingestor.stats.counters["received"] += 1
        self.ingestor.stats.reject(reasons.BAD_TOPIC, "not an IoT Agent measure topic",
                                   transport="mqtt", payload=msg.payload, topic=msg.topic)

    def _internal_error(self, msg: Message, exc: Exception) -> None:
        self.ingestor.stats.reject(reasons.BAD_PAYLOAD, f"internal error: {exc!r}",
                                   transport="mqtt", payload=msg.payload, topic=msg.topic)
        log.exception("iot message handling failed", topic=msg.topic)


def relax_gc() -> None:
    """Make Python's cyclic garbage collector cheap for a process that ingests MQTT.

    Ingest allocates a few dozen dicts and lists per message; with the default thresholds
    (700, 10, 10) the collector ran thousands of times a minute and every full collection walked
    every object of the app (modules, the registry, in-flight batches). Measured in process
    (``ingest_measurements`` batches of 1,600, writer and loop together): 39 µs of collector time
    per measurement with the defaults, 23 µs with (10,000, 10, 10) (31 µs with 50,000: fewer
    but longer collections, as in-flight messages survive them). The objects alive at start are
    frozen (moved out of the collector's reach: they live as long as the process), the first
    generation collects after 10,000 allocations instead of 700, and the second after 100 of
    those instead of 10 (each of its collections walks every message still in flight). Nothing
    is leaked by this: reference counting frees acyclic garbage at once, and cycles are still
    collected.
    Done once per process (the first consumer to start)."""
    global _GC_RELAXED
    if _GC_RELAXED:
        return
    _GC_RELAXED = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLDS[0], GC_THRESHOLDS[1], GC_THRESHOLDS[2])


def _acker(client: WireClient, mid: int) -> Callable[[Results | None], None]:
    return lambda _: client.ack((mid,))

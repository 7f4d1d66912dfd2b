"""Ingest counters and the dead letters.

Every message that cannot be ingested — unreadable payload, unknown API key or device, a key
that does not own the device, a write the broker refused — is counted by reason, logged with the
reason, and kept as a dead letter: in storage when the runtime gives one
(:mod:`nakhon.iot.dead_letters`: batched, bounded, shared by every process on the database),
else in a bounded list in memory. Nothing here ever raises or waits: the ingest loop must go on
whatever arrives, so recording is O(1) and logging is rate-limited.

A letter never holds a device's API key in clear: the key, the key's level of an MQTT topic and
the key quoted in a detail are masked to their first few characters (``ab12…``). Every field is
cut to a bounded length, and NUL and unpaired surrogates are replaced so any engine stores it.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from nakhon.core.logs import get_logger
from nakhon.iot.dead_letters import DeadLetter, DeadLetterLog, DeadLetterStorage
from nakhon.iot.payloads import iso_utc

__all__ = ["DeadLetter", "IngestStats", "mask_apikey", "mask_topic"]

log = get_logger("nakhon.iot")

PREVIEW_BYTES = 512
DETAIL_CHARS = 512
TOPIC_CHARS = 256
ID_CHARS = 256
LOG_PER_SECOND = 20

# Reasons (stable strings: they are metric labels and API values).
BAD_PAYLOAD = "bad-payload"
UNKNOWN_APIKEY = "unknown-apikey"
UNKNOWN_DEVICE = "unknown-device"
WRONG_APIKEY = "wrong-apikey"
BAD_TOPIC = "bad-topic"
WRITE_REFUSED = "write-refused"


def mask_apikey(apikey: str) -> str:
    """The first characters of a key (a quarter of it, at most 4) and an ellipsis."""
    return apikey[:min(4, len(apikey) // 4)] + "…"


def mask_topic(topic: str) -> str:
    """An MQTT IoT Agent topic with its apikey level masked (``/<apikey>/<device>/attrs…``,
    ``/json|ul/<apikey>/…``; the levels read as ``nakhon.iot.mqtt.parse_topic`` reads them)."""
    levels = topic.split("/")
    if len(levels) < 3 or levels[0] != "":
        return topic
    at = 2 if levels[1] in ("json", "ul") and len(levels) > 4 and levels[3] != "attrs" else 1
    if levels[at]:
        levels[at] = mask_apikey(levels[at])
    return "/".join(levels)


def _clean(text: str, limit: int) -> str:
    """At most ``limit`` characters, with no NUL (PostgreSQL's jsonb refuses it) and no
    unpaired surrogate (not UTF-8)."""
    text = text[:limit]
    if text.isascii():
        return text.replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def _topic(topic: str | None, transport: str) -> str | None:
    if topic is None:
        return None
    # MQTT topics carry the apikey (mask before cutting: a cut can hide the levels); HTTP paths
    # do not (it is in the query, never kept).
    return _clean(mask_topic(topic) if transport == "mqtt" else topic, TOPIC_CHARS)


def _opt(text: str | None, limit: int) -> str | None:
    return None if text is None else _clean(text, limit)


class IngestStats:
    """Counters (``received``, ``measures``, ``written``, ``rejected`` by reason, ``retries``)
    and the dead letters (durable when ``storage`` is given)."""

    def __init__(self, max_dead_letters: int, storage: DeadLetterStorage | None = None) -> None:
        self.counters: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.dead_letters = DeadLetterLog(max_dead_letters, storage)
        self._log_second = 0
        self._log_lines = 0
        self._log_suppressed = 0

    def reject(
        self,
        reason: str,
        detail: str,
        *,
        transport: str,
        payload: bytes | str = b"",
        tenant: str | None = None,
        apikey: str | None = None,
        device_id: str | None = None,
        topic: str | None = None,
    ) -> DeadLetter:
        """Count, log (rate-limited) and keep one refused message."""
        raw = payload[:PREVIEW_BYTES]
        preview = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        masked = None
        if apikey:
            masked = mask_apikey(apikey)
            detail = detail.replace(repr(apikey), repr(masked))
            if len(apikey) >= 8:
                detail = detail.replace(apikey, masked)
        letter = DeadLetter(
            iso_utc(datetime.now(UTC)), reason, _clean(detail, DETAIL_CHARS), transport,
            tenant, _opt(masked, ID_CHARS), _opt(device_id, ID_CHARS),
            _topic(topic, transport),
            _clean(preview, PREVIEW_BYTES))
        self.rejected[reason] += 1
        self.dead_letters.add(letter)
        self._log(letter)
        return letter

    def _log(self, letter: DeadLetter) -> None:
        # A flood of bad messages must not turn into a flood of log lines.
        second = int(time.monotonic())
        if second != self._log_second:
            if self._log_suppressed:
                log.warning("iot rejections not logged", count=self._log_suppressed)
            self._log_second, self._log_lines, self._log_suppressed = second, 0, 0
        if self._log_lines >= LOG_PER_SECOND:
            self._log_suppressed += 1
            return
        self._log_lines += 1
        log.warning("iot message rejected", reason=letter.reason, detail=letter.detail,
                    transport=letter.transport, apikey=letter.apikey,
                    device_id=letter.device_id, topic=letter.topic)

    def snapshot(self) -> dict[str, Any]:
        return {
            **dict(self.counters),
            "rejected": dict(self.rejected),
            "rejectedTotal": sum(self.rejected.values()),
            **self.dead_letters.snapshot(),
        }

    async def letters(
        self, tenants: frozenset[str] | None, limit: int, offset: int
    ) -> list[DeadLetter]:
        """Newest first; ``tenants`` None: all, else only letters of those tenants."""
        return await self.dead_letters.page(tenants, limit, offset)

    def start(self) -> None:
        self.dead_letters.start()

    async def stop(self) -> None:
        await self.dead_letters.stop()

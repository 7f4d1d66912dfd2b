"""Ingest counters and the bounded dead-letter list.

Every message that cannot be ingested — unreadable payload, unknown API key or device, a key
that does not own the device, a write the broker refused — is counted by reason, logged with the
reason, and kept here (newest last, oldest dropped beyond the bound) for the API to show.
Nothing here ever raises: the ingest loop must go on whatever arrives.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

from nakhon.core.logs import get_logger
from nakhon.iot.payloads import iso_utc

log = get_logger("nakhon.iot")

PREVIEW_BYTES = 512

# Reasons (stable strings: they are metric labels and API values).
BAD_PAYLOAD = "bad-payload"
UNKNOWN_APIKEY = "unknown-apikey"
UNKNOWN_DEVICE = "unknown-device"
WRONG_APIKEY = "wrong-apikey"
BAD_TOPIC = "bad-topic"
WRITE_REFUSED = "write-refused"


@dataclass(slots=True)
class DeadLetter:
    """One refused message: when, why, where from, and the start of its payload."""

    at: str
    reason: str
    detail: str
    transport: str
    tenant: str | None
    apikey: str | None
    device_id: str | None
    topic: str | None
    payload: str

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)


class IngestStats:
    """Counters (``received``, ``measures``, ``written``, ``rejected`` by reason, ``retries``)
    and the dead letters."""

    def __init__(self, max_dead_letters: int) -> None:
        self.counters: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.dead_letters: deque[DeadLetter] = deque(maxlen=max(1, max_dead_letters))

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
        """Count, log and keep one refused message."""
        from datetime import UTC, datetime

        raw = payload[:PREVIEW_BYTES]
        preview = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        letter = DeadLetter(iso_utc(datetime.now(UTC)), reason, detail, transport, tenant,
                            apikey, device_id, topic, preview)
        self.rejected[reason] += 1
        self.dead_letters.append(letter)
        log.warning("iot message rejected", reason=reason, detail=detail, transport=transport,
                    apikey=apikey, device_id=device_id, topic=topic)
        return letter

    def snapshot(self) -> dict[str, Any]:
        return {
            **dict(self.counters),
            "rejected": dict(self.rejected),
            "rejectedTotal": sum(self.rejected.values()),
            "deadLetters": len(self.dead_letters),
        }

    def letters(self, tenants: frozenset[str] | None, limit: int, offset: int) -> list[DeadLetter]:
        """Newest first; ``tenants`` None: all, else only letters of those tenants."""
        items = [d for d in reversed(self.dead_letters)
                 if tenants is None or (d.tenant is not None and d.tenant in tenants)]
        return items[offset:offset + limit]

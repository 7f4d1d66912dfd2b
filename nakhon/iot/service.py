"""The ingest use case: device messages → measurements → one batched broker write.

:func:`ingest_measurements` is the service function (DESIGN.md rule 2): it checks that the
principal may write every tenant involved (the ingest loop runs as ``SYSTEM``; the device's API
key was its credential) and writes all measurements with ONE ``storage.write`` call, each as an
upsert-update of the device's entity (created again if someone deleted it; existing attributes
overwritten, so each measure becomes a new instance in temporal history with its
``observedAt``; :mod:`nakhon.iot.update` is the fast form of that mutation). :class:`Ingestor`
is the edge both doors (MQTT and HTTP) share: resolve the device, parse the payload, convert by
the mapping, dead-letter what does not fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from nakhon.broker.model import Instance
from nakhon.core.auth import Access, Principal
from nakhon.iot import stats as reasons
from nakhon.iot.convert import Target
from nakhon.iot.payloads import (
    Measure,
    PayloadError,
    iso_utc,
    parse_json,
    parse_single,
    parse_timestamp,
    parse_ul,
)
from nakhon.iot.registry import Registry, Rejected
from nakhon.iot.stats import IngestStats
from nakhon.iot.update import measurement_update
from nakhon.storage.base import Outcome, Storage, WriteOp

Format = Literal["json", "ul", "auto"]


@dataclass(slots=True)
class Measurement:
    """One measure ready to write: attributes (with ``observedAt``) of one entity."""

    tenant: str
    entity_id: str
    types: list[str]
    attrs: dict[str, list[Instance]]


async def ingest_measurements(
    access: Access, storage: Storage, principal: Principal, items: Sequence[Measurement]
) -> list[Outcome | Exception]:
    """Write ``items`` in one storage transaction; one Outcome or error per item, in order."""
    for tenant in {m.tenant for m in items}:
        access.require_write(principal, tenant)
    return await storage.write([
        WriteOp(m.tenant, m.entity_id, measurement_update(m.entity_id, m.types, m.attrs))
        for m in items
    ])


def sniff(payload: bytes) -> Format:
    """``/<apikey>/<device>/attrs`` is shared by both agents: a JSON object or array is JSON,
    anything else UltraLight."""
    head = payload.lstrip()[:1]
    return "json" if head in (b"{", b"[") else "ul"


class Ingestor:
    """Turns one device message into measurements, or a dead letter."""

    def __init__(self, registry: Registry, stats: IngestStats) -> None:
        self.registry = registry
        self.stats = stats

    async def prepare(
        self,
        *,
        transport: str,
        apikey: str,
        device_id: str,
        payload: bytes,
        fmt: Format,
        attr: str | None = None,
        timestamp: str | None = None,
        topic: str | None = None,
    ) -> list[Measurement]:
        """Measurements of one message; raises :class:`Rejected` (already dead-lettered)."""
        target = self.registry.cached(apikey, device_id)
        if target is None:
            try:
                target = await self.registry.resolve(apikey, device_id)
            except Rejected as rej:
                self.stats.counters["received"] += 1
                self.stats.reject(rej.reason, rej.detail, transport=transport, payload=payload,
                                  tenant=rej.tenant, apikey=apikey, device_id=device_id,
                                  topic=topic)
                raise
        return self.prepare_for(target, transport=transport, payload=payload, fmt=fmt,
                                attr=attr, timestamp=timestamp, topic=topic)

    def prepare_for(
        self,
        target: Target,
        *,
        transport: str,
        payload: bytes,
        fmt: Format,
        attr: str | None = None,
        timestamp: str | None = None,
        received: str | None = None,
        topic: str | None = None,
    ) -> list[Measurement]:
        """:meth:`prepare` for a device already resolved (synchronous: the MQTT hot path).

        ``received`` is the receive time (ISO 8601 UTC), shared by the messages of one read."""
        self.stats.counters["received"] += 1
        try:
            if received is None:
                received = iso_utc(datetime.now(UTC))
            stamp = parse_timestamp(timestamp) if timestamp else None
            return self._convert(target, payload, fmt, attr, stamp, received)
        except PayloadError as exc:
            self.stats.reject(reasons.BAD_PAYLOAD, str(exc), transport=transport,
                              payload=payload, tenant=target.tenant, apikey=target.apikey,
                              device_id=target.device_id, topic=topic)
            raise Rejected(reasons.BAD_PAYLOAD, str(exc), target.tenant) from None

    def _convert(self, target: Target, payload: bytes, fmt: Format, attr: str | None,
                 stamp: str | None, received: str) -> list[Measurement]:
        if b"\x00" in payload or b"\\u0000" in payload:
            # PostgreSQL cannot keep NUL in text: refuse it here, not in a batch retried forever.
            raise PayloadError("the payload holds a NUL character")
        if fmt == "auto":
            fmt = sniff(payload)
        if attr is not None:
            # Attribute topic: the payload is the bare value of one object id.
            try:
                value = parse_single(payload)
            except UnicodeDecodeError:
                raise PayloadError("the attribute value is not UTF-8 text") from None
            measures = [Measure({attr: value})]
        else:
            measures = parse_json(payload) if fmt == "json" else parse_ul(payload)
        out: list[Measurement] = []
        text = fmt == "ul"
        for m in measures:
            if m.observed_at is None and stamp is not None:
                m.observed_at = stamp
            attrs = target.to_attrs(m, received, text=text)
            if attrs:
                out.append(Measurement(target.tenant, target.entity_id, target.types, attrs))
        if not out:
            raise PayloadError("no mapped attribute in the message")
        self.stats.counters["measures"] += len(out)
        return out

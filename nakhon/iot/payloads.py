"""Device payloads → measures: JSON (iotagent-json) and UltraLight 2.0 (iotagent-ul).

Parse at the edge (DESIGN.md rule 3): the output is a list of :class:`Measure` — raw values by
the device's *object id* plus an optional device timestamp — and nothing after this module sees
bytes. Every failure is a :class:`PayloadError`; no other exception leaves these parsers (a
hypothesis test holds the UL parser to that), so the ingest loop can dead-letter and go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

TIME_INSTANT = "TimeInstant"
"""The measure IoT Agents read as the device's own timestamp (``timestamp: true`` groups)."""

MAX_MEASURES = 1000
"""Most measure groups one message may carry; more is refused rather than ballooning a batch."""


class PayloadError(ValueError):
    """A payload that cannot be read; the message says why (it ends up in the dead letters)."""


@dataclass(slots=True)
class Measure:
    """One measurement of one device: ``values`` by object id, ``observed_at`` if the device
    said when (ISO 8601 UTC text), else None (the receive time is used)."""

    values: dict[str, Any] = field(default_factory=dict)
    observed_at: str | None = None


def iso_utc(dt: datetime) -> str:
    """NGSI-LD DateTime text in UTC with milliseconds and ``Z`` (the form storage keeps)."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_timestamp(raw: Any) -> str:
    """A device timestamp → ISO 8601 UTC text.

    Accepted as IoT Agents accept it: ISO 8601 (a missing zone means UTC, as the agents assume)
    or epoch seconds / milliseconds as a number.
    """
    if isinstance(raw, bool):
        raise PayloadError(f"timestamp {raw!r} is not a time")
    if isinstance(raw, int | float):
        seconds = raw / 1000 if abs(raw) > 10**11 else raw
        try:
            return iso_utc(datetime.fromtimestamp(seconds, UTC))
        except (OverflowError, OSError, ValueError) as exc:
            raise PayloadError(f"timestamp {raw!r} is out of range") from exc
    if not isinstance(raw, str) or not raw.strip():
        raise PayloadError(f"timestamp {raw!r} is not an ISO 8601 time")
    text = raw.strip()
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"timestamp {raw!r} is not an ISO 8601 time") from None
    if (len(text) >= 20 and text[-1] == "Z" and text[10] == "T" and text[19] in ".Z"
            and text[4] == "-" and text[0] != "0"):
        # Already UTC in the extended form (what most devices send): fromisoformat checked it;
        # only the fraction needs cutting or padding to milliseconds. strftime costs 5x more.
        return text[:19] + "." + (text[20:-1] + "000")[:3] + "Z"
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return iso_utc(dt)
    except (OverflowError, ValueError) as exc:
        raise PayloadError(f"timestamp {raw!r} is out of range") from exc


# --- JSON ---------------------------------------------------------------------------------


def _json_measure(obj: dict[str, Any]) -> Measure:
    values = obj  # freshly parsed, ours to change
    stamp = values.pop(TIME_INSTANT, None)
    if not values:
        raise PayloadError("the measure has no attributes")
    return Measure(values, parse_timestamp(stamp) if stamp is not None else None)


def parse_json(payload: bytes | str) -> list[Measure]:
    """An iotagent-json measure payload: one object ``{object_id: value, ...}`` or an array of
    them (several measures in one message). ``TimeInstant`` is the device timestamp."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if isinstance(doc, dict):
        return [_json_measure(doc)]
    if isinstance(doc, list) and doc:
        if len(doc) > MAX_MEASURES:
            raise PayloadError(f"more than {MAX_MEASURES} measures in one message")
        if not all(isinstance(item, dict) for item in doc):
            raise PayloadError("a JSON measure array must hold only objects")
        return [_json_measure(item) for item in doc]
    raise PayloadError("a JSON measure must be an object {object_id: value} or an array of them")


def parse_single(payload: bytes | str) -> Any:
    """The payload of an attribute topic (``.../attrs/<object_id>``): the bare value.

    JSON text is decoded (``25.3`` → number, ``"on"`` → string); anything else is the text."""
    text = payload.decode("utf-8", "strict") if isinstance(payload, bytes) else payload
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


# --- UltraLight 2.0 -----------------------------------------------------------------------


def parse_ul(payload: bytes | str) -> list[Measure]:
    """UltraLight 2.0: ``k1|v1|k2|v2`` pairs; ``#`` separates measure groups; a group with an odd
    number of fields starts with its timestamp (``2024-01-31T12:00:00Z|t|25``).

    Values stay text: UL has no types, the device's attribute mapping gives them
    (``nakhon.iot.convert``). Empty groups (a trailing ``#``) are skipped, as the agents do.
    """
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    except UnicodeDecodeError as exc:
        raise PayloadError(f"UltraLight payload is not UTF-8: {exc.reason}") from None
    groups = [g for g in text.strip().split("#") if g.strip()]
    if not groups:
        raise PayloadError("empty UltraLight payload")
    if len(groups) > MAX_MEASURES:
        raise PayloadError(f"more than {MAX_MEASURES} measure groups in one message")
    return [_ul_group(g) for g in groups]


def _ul_group(group: str) -> Measure:
    fields = [f.strip() for f in group.split("|")]
    stamp: str | None = None
    if len(fields) % 2 == 1:
        # An odd count can only be a leading timestamp (UL 2.0 syntax); a lone word is not.
        if len(fields) == 1:
            raise PayloadError(f"UltraLight group {group[:40]!r} has a key without a value")
        stamp = parse_timestamp(fields[0])
        fields = fields[1:]
    values: dict[str, Any] = {}
    for i in range(0, len(fields), 2):
        key = fields[i]
        if not key:
            raise PayloadError(f"UltraLight group {group[:40]!r} has an empty key")
        values[key] = fields[i + 1]
    if TIME_INSTANT in values:
        # Some UL devices send the timestamp as a pair; it is not an attribute.
        stamp = parse_timestamp(values.pop(TIME_INSTANT))
        if not values:
            raise PayloadError("the measure has no attributes")
    return Measure(values, stamp)

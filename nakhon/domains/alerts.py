"""Alert rules and their evaluation, as pure functions on entity state.

A rule watches one attribute of entities of some types, optionally only in an area, and decides
for each entity whether an alert is to be **raised** or **cleared**:

* ``threshold`` — ``attr op value`` (``>``, ``>=``, ``<``, ``<=``); the value may be the mean
  over a window (``1h``, ``8h``, ``24h``; see :mod:`nakhon.domains.averaging`) and the limit may
  be another attribute of the same entity (``valueAttr``, e.g. a flood station's own
  ``alertLevel``). ``clearValue`` adds hysteresis: once raised, the alert clears only when the
  condition fails against ``clearValue``.
* ``rate`` — the attribute changed by at least ``delta`` within ``minutes`` (``direction`` up,
  down or any), comparing the oldest recent value in that span with the current one.
* ``absence`` — no update for ``minutes`` (the attribute's ``observedAt``, else its
  ``modifiedAt``; without ``attr`` the later of the entity's ``modifiedAt`` and its newest
  ``observedAt``).

Types and attributes are matched by **name**: a rule's ``pm25`` matches an attribute whose
expanded IRI is ``pm25`` or ends in ``/pm25`` or ``#pm25``, so the same rule works for entities
written with the core @context and with a Smart Data Model @context. The area is a ``bbox``
``[minLon, minLat, maxLon, maxLat]``, a ``polygon`` (GeoJSON Polygon coordinates) — the entity's
``location`` must intersect it — or a ``scopeQ`` expression over the entity's scope.

Evaluation never reads storage: the caller passes the entity, the time and the recent values
(for windows and rates). ``None`` means "no decision" (rule does not apply, or not enough data),
and the alert keeps its state.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from nakhon.broker.model import LOCATION, Entity, Instance, default_instance
from nakhon.domains.averaging import Sample, parse_time, window_mean
from nakhon.domains.rules import OPS, Rule, parse_rule, parse_rules

__all__ = [
    "OPS",
    "Decision",
    "Rule",
    "applies",
    "evaluate",
    "find_attr",
    "local_name",
    "numeric",
    "observed_time",
    "parse_rule",
    "parse_rules",
]


@dataclass(frozen=True, slots=True)
class Decision:
    """Raise or clear the alert of ``rule_id`` about ``entity_id``."""

    rule_id: str
    entity_id: str
    active: bool
    value: float | None = None
    limit: float | None = None
    observed_at: datetime | None = None


# --- evaluation ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=8192)
def local_name(iri: str) -> str:
    """The last segment of an IRI (after '/', '#' or ':'): how rules name types and attrs.

    Cached: alert evaluation asks it for every attribute of every changed entity (ingest)."""
    return re.split(r"[/#:]", iri)[-1]


def find_attr(entity: Entity, name: str) -> tuple[str, Instance] | None:
    """The default instance of the attribute called ``name`` (see the module docstring)."""
    for iri, instances in entity.attrs.items():
        if iri == name or local_name(iri) == name:
            inst = default_instance(instances) or (instances[0] if instances else None)
            if inst is not None:
                return iri, inst
    return None


def numeric(instance: Instance) -> float | None:
    value = instance.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def applies(rule: Rule, entity: Entity) -> bool:
    """Is ``entity`` one the rule watches (enabled, type, area)?"""
    if not rule.enabled:
        return False
    names = {local_name(t) for t in entity.types}
    if not names.intersection(rule.types):
        return False
    if rule.area is not None and rule.area.geo is not None and LOCATION not in entity.attrs:
        return False
    return rule.area is None or rule.area.contains(entity)


def observed_time(entity: Entity, instance: Instance | None) -> datetime | None:
    """When a value was observed: ``observedAt``, else ``modifiedAt``, else the entity's."""
    for text in (
        instance.get("observedAt") if instance else None,
        instance.get("modifiedAt") if instance else None,
        entity.modified_at,
    ):
        if isinstance(text, str) and (moment := parse_time(text)) is not None:
            return moment
    return None


def last_heard(entity: Entity) -> datetime | None:
    """The latest sign of life of an entity: its ``modifiedAt`` or any attribute's
    ``observedAt``, whichever is later (a device may send readings stamped ahead of the
    broker's clock, or a backfill may write old readings now)."""
    times = [parse_time(entity.modified_at)] if entity.modified_at else []
    for instances in entity.attrs.values():
        times += [
            parse_time(i["observedAt"]) for i in instances if isinstance(i.get("observedAt"), str)
        ]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def evaluate(
    rule: Rule,
    entity: Entity,
    now: datetime,
    recent: Sequence[Sample] = (),
    *,
    active: bool = False,
) -> Decision | None:
    """Raise or clear for one rule and one entity, or None (no decision).

    ``recent`` holds the attribute's recent values (any order; the current value may or may
    not be among them) for windowed thresholds and rates. ``active`` tells whether the alert is
    currently raised (for hysteresis)."""
    if not applies(rule, entity):
        return None
    found = find_attr(entity, rule.attr) if rule.attr else None
    if rule.kind == "absence":
        last = observed_time(entity, found[1]) if found else last_heard(entity)
        if last is None:
            return None
        silent = now - last > timedelta(minutes=rule.minutes or 0)
        return Decision(rule.id, entity.id, silent, None, rule.minutes, last)
    if found is None or (current := numeric(found[1])) is None:
        return None
    at = observed_time(entity, found[1]) or now
    # The current value may already be in ``recent`` (a history fed by the same write).
    samples = [*recent] if any(t == at for t, _ in recent) else [*recent, (at, current)]
    if rule.kind == "rate":
        return _rate(rule, entity.id, samples, at)
    value: float | None = current
    if rule.window_hours:
        value = window_mean(samples, at, rule.window_hours)
    limit = rule.value
    if rule.value_attr is not None:
        other = find_attr(entity, rule.value_attr)
        limit = numeric(other[1]) if other else None
    if value is None or limit is None:
        return None
    test = OPS[rule.op]
    hit = test(value, limit)
    if active and not hit and rule.clear_value is not None:
        hit = test(value, rule.clear_value)  # still beyond the clear level: stay raised
    return Decision(rule.id, entity.id, hit, value, limit, at)


def _rate(rule: Rule, entity_id: str, samples: list[Sample], at: datetime) -> Decision | None:
    start = at - timedelta(minutes=rule.minutes or 0)
    span = sorted((t, v) for t, v in samples if start <= t <= at)
    if len(span) < 2:
        return None
    change = span[-1][1] - span[0][1]
    delta = rule.delta or 0.0
    if rule.direction == "up":
        hit = change >= delta
    elif rule.direction == "down":
        hit = -change >= delta
    else:
        hit = abs(change) >= delta
    return Decision(rule.id, entity_id, hit, change, delta, at)

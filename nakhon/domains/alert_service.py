"""Alert use cases: rules per city, evaluation entry point, NGSI-LD ``Alert`` entities.

* Rules live in storage kv (namespace ``alert-rules``, key = tenant); a city without its own
  list uses ``data/default-alert-rules.json``.
* :func:`evaluate_alerts` is what the outbox consumer (or any periodic task) calls with the
  entities that changed; :func:`sweep_absence` finds silent sensors; :class:`AlertMonitor` runs
  the sweep periodically from the app's lifespan.
* Alerts are Smart Data Model ``Alert`` entities written through the Broker with the SYSTEM
  principal, one per (rule, source entity) with a stable id, so raising, clearing and raising
  again update one entity (its temporal history is the alert log). Terms are expanded with the
  NGSI-LD core @context, so ``GET /entities?type=Alert`` finds them without a Link header.

Windowed thresholds and rates need recent values: the caller may pass a :class:`History`
(the temporal store's adapter); without one, a bounded in-process :class:`MemoryHistory` fed by
the evaluations themselves is used, which starts empty after a restart.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from nakhon.broker import validate
from nakhon.broker.jsonld import CORE_TERM_MAP
from nakhon.broker.model import LOCATION, Entity
from nakhon.broker.query import Or
from nakhon.broker.service import Broker
from nakhon.core.auth import SYSTEM, Principal
from nakhon.core.logs import get_logger
from nakhon.domains.alerts import (
    Decision,
    Rule,
    applies,
    evaluate,
    find_attr,
    local_name,
    numeric,
    observed_time,
    parse_rules,
)
from nakhon.domains.averaging import Sample
from nakhon.domains.catalogue import type_iris
from nakhon.storage.base import EntityQuery

log = get_logger("nakhon.domains.alerts")
RULES_NAMESPACE = "alert-rules"
ALERT_PREFIX = "urn:ngsi-ld:Alert:nakhon:"
ALERT_TYPE = CORE_TERM_MAP.expand("Alert")
BANGKOK = ZoneInfo("Asia/Bangkok")
_ID_CHUNK = 500


# --- rules -----------------------------------------------------------------------------------


@cache
def default_rule_docs() -> tuple[dict[str, Any], ...]:
    raw = resources.files("nakhon.domains").joinpath("data/default-alert-rules.json")
    return tuple(json.loads(raw.read_text("utf-8"))["rules"])


def default_rules() -> list[Rule]:
    return parse_rules(list(default_rule_docs()))


async def load_rules(broker: Broker, tenant: str) -> tuple[list[Rule], bool]:
    """The tenant's rules and whether they are the defaults."""
    doc = await broker.storage.kv_get(RULES_NAMESPACE, tenant)
    if isinstance(doc, dict) and isinstance(doc.get("rules"), list):
        return parse_rules(doc["rules"]), False
    return default_rules(), True


class AlertRules:
    """GET/PUT of a city's rules, with the authorisation checks."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def get(self, principal: Principal, tenant: str) -> dict[str, Any]:
        await self.broker.access.require_read(principal, tenant)
        rules, is_default = await load_rules(self.broker, tenant)
        return {"default": is_default, "rules": [r.doc() for r in rules]}

    async def put(self, principal: Principal, tenant: str, body: Any) -> dict[str, Any]:
        """Replace the city's rules (validated as a whole: a bad rule changes nothing)."""
        self.broker.access.require_write(principal, tenant)
        rules = parse_rules(body)
        docs = [r.doc() for r in rules]
        await self.broker.storage.kv_put(RULES_NAMESPACE, tenant, {"rules": docs})
        remember_tenant(tenant)
        return {"default": False, "rules": docs}

    async def reset(self, principal: Principal, tenant: str) -> dict[str, Any]:
        """Go back to the default rules."""
        self.broker.access.require_write(principal, tenant)
        await self.broker.storage.kv_delete(RULES_NAMESPACE, tenant)
        return {"default": True, "rules": list(default_rule_docs())}


# --- recent values ---------------------------------------------------------------------------


class History(Protocol):
    """Recent values of one attribute (the temporal store implements this)."""

    async def recent(
        self, tenant: str, entity_id: str, attr_iri: str, since: datetime
    ) -> list[Sample]: ...

    def observe(self, tenant: str, entity: Entity, attr_iris: Iterable[str]) -> None: ...


class MemoryHistory:
    """A bounded in-process store of recent numeric values, fed by :func:`evaluate_alerts`."""

    def __init__(
        self,
        horizon: timedelta = timedelta(hours=25),
        max_series: int = 200_000,
        max_points: int = 2_000,
    ) -> None:
        self.horizon = horizon
        self.max_series = max_series
        self.max_points = max_points
        self._series: OrderedDict[tuple[str, str, str], deque[Sample]] = OrderedDict()

    def observe(self, tenant: str, entity: Entity, attr_iris: Iterable[str]) -> None:
        for iri in attr_iris:
            for inst in entity.attrs.get(iri) or []:
                value = numeric(inst)
                moment = observed_time(entity, inst)
                if value is None or moment is None or "datasetId" in inst:
                    continue
                key = (tenant, entity.id, iri)
                points = self._series.get(key)
                if points is None:
                    points = self._series[key] = deque(maxlen=self.max_points)
                    if len(self._series) > self.max_series:
                        self._series.popitem(last=False)  # forget the oldest series
                if not points or points[-1][0] != moment:
                    points.append((moment, value))
                while points and points[0][0] < moment - self.horizon:
                    points.popleft()

    async def recent(
        self, tenant: str, entity_id: str, attr_iri: str, since: datetime
    ) -> list[Sample]:
        return [p for p in self._series.get((tenant, entity_id, attr_iri), ()) if p[0] >= since]


DEFAULT_HISTORY = MemoryHistory()
_TENANTS: set[str] = {""}


def remember_tenant(tenant: str) -> None:
    """Tenants the periodic absence sweep visits (besides those with stored rules)."""
    _TENANTS.add(tenant)


def known_tenants() -> set[str]:
    """The tenants :func:`remember_tenant` has seen (the default tenant always)."""
    return set(_TENANTS)


# --- Alert entities --------------------------------------------------------------------------


def alert_id(rule_id: str, entity_id: str) -> str:
    """The stable id of the alert of one rule about one entity."""
    return f"{ALERT_PREFIX}{rule_id}:{hashlib.sha1(entity_id.encode()).hexdigest()[:20]}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _thai_time(moment: datetime) -> str:
    return moment.astimezone(BANGKOK).strftime("%Y-%m-%d %H:%M")


def describe(rule: Rule, d: Decision) -> dict[str, str]:
    """The alert's description in Thai and English (times shown in Bangkok time)."""
    th, en = rule.title["th"], rule.title["en"]
    if rule.kind == "absence":
        since = _thai_time(d.observed_at) if d.observed_at else "?"
        return {
            "th": f"{th}: ไม่มีข้อมูลจาก {d.entity_id} ตั้งแต่ {since} น. (เกิน {rule.minutes:g} นาที)",
            "en": f"{en}: no data from {d.entity_id} since {since} Bangkok time "
            f"(more than {rule.minutes:g} minutes)",
        }
    value = f"{d.value:+.2f}" if rule.kind == "rate" else f"{d.value:.2f}"
    if rule.kind == "rate":
        return {
            "th": f"{th}: {rule.attr} เปลี่ยนแปลง {value} ภายใน {rule.minutes:g} นาที ที่ {d.entity_id}",
            "en": f"{en}: {rule.attr} changed by {value} within {rule.minutes:g} minutes "
            f"at {d.entity_id}",
        }
    window = f" ({rule.window})" if rule.window else ""
    limit = f"{d.limit:g}" if d.limit is not None else "?"
    return {
        "th": f"{th}: {rule.attr}{window} = {value} ({rule.op} {limit}) ที่ {d.entity_id}",
        "en": f"{en}: {rule.attr}{window} = {value} ({rule.op} {limit}) at {d.entity_id}",
    }


def alert_entity(rule: Rule, decision: Decision, source: Entity, now: datetime) -> Entity:
    """A raised alert as an entity in normal form (validated by the broker's own parser)."""
    data: dict[str, Any] = {"rule": rule.id, "kind": rule.kind}
    if rule.attr:
        data["attribute"] = rule.attr
    if decision.value is not None:
        data["value"] = round(decision.value, 4)
    if decision.limit is not None:
        data["limit"] = decision.limit
    body: dict[str, Any] = {
        "id": alert_id(rule.id, decision.entity_id),
        "type": "Alert",
        "category": {"type": "Property", "value": rule.category},
        "subCategory": {"type": "Property", "value": rule.sub_category},
        "severity": {"type": "Property", "value": rule.severity},
        "alertSource": {"type": "Relationship", "object": decision.entity_id},
        "dateIssued": {"type": "Property", "value": _iso(now)},
        "validFrom": {"type": "Property", "value": _iso(decision.observed_at or now)},
        "description": {"type": "LanguageProperty", "languageMap": describe(rule, decision)},
        "status": {"type": "Property", "value": "active"},
        "alertData": {"type": "Property", "value": data},
    }
    entity = validate.parse_entity(body, CORE_TERM_MAP.expand)
    location = source.attrs.get(LOCATION)
    if location:
        # Where the alert is: the source's location, so maps and geo-queries find it.
        entity.attrs[LOCATION] = [{k: v for k, v in location[0].items() if k in ("type", "value")}]
    return entity


def cleared_patch(rule: Rule, decision: Decision, now: datetime) -> Entity:
    """The merge that clears an alert: status ``cleared`` and ``validTo``."""
    body = {
        "id": alert_id(rule.id, decision.entity_id),
        "status": {"type": "Property", "value": "cleared"},
        "validTo": {"type": "Property", "value": _iso(now)},
    }
    return validate.parse_entity(body, CORE_TERM_MAP.expand, require_type=False)


STATUS = CORE_TERM_MAP.expand("status")


def _is_active(alert: Entity | None) -> bool:
    if alert is None:
        return False
    inst = (alert.attrs.get(STATUS) or [{}])[0]
    return inst.get("value") == "active"


# --- evaluation ------------------------------------------------------------------------------


async def _existing(broker: Broker, tenant: str, ids: list[str]) -> dict[str, Entity]:
    found: dict[str, Entity] = {}
    if not await broker.storage.tenant_exists(tenant):
        return found
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        page = await broker.query_entities(SYSTEM, tenant, EntityQuery(ids=chunk, limit=len(chunk)))
        found.update((e.id, e) for e in page.entities)
    return found


async def _apply(
    broker: Broker,
    tenant: str,
    pairs: list[tuple[Rule, Entity]],
    now: datetime,
    history: History,
) -> list[Decision]:
    """Evaluate (rule, entity) pairs against the stored alerts and write what changed."""
    existing = await _existing(broker, tenant, sorted({alert_id(r.id, e.id) for r, e in pairs}))
    raises: dict[str, Entity] = {}
    clears: dict[str, Entity] = {}
    decided: list[Decision] = []
    for rule, entity in pairs:
        aid = alert_id(rule.id, entity.id)
        active = _is_active(existing.get(aid))
        recent: list[Sample] = []
        if rule.kind != "absence" and (rule.window or rule.kind == "rate") and rule.attr:
            found = find_attr(entity, rule.attr)
            if found is not None:
                span = timedelta(hours=25) if rule.window else timedelta(minutes=rule.minutes or 0)
                recent = await history.recent(tenant, entity.id, found[0], now - span)
        decision = evaluate(rule, entity, now, recent, active=active)
        if decision is None or decision.active == active:
            continue
        decided.append(decision)
        if decision.active:
            raises[aid] = alert_entity(rule, decision, entity, now)
        else:
            clears[aid] = cleared_patch(rule, decision, now)
    if raises:
        result = await broker.batch(SYSTEM, tenant, "upsert", list(raises.values()))
        for eid, error in result.errors:
            log.error("alert not raised", tenant=tenant, alert=eid, error=str(error))
    if clears:
        result = await broker.batch(SYSTEM, tenant, "merge", list(clears.values()))
        for eid, error in result.errors:
            log.error("alert not cleared", tenant=tenant, alert=eid, error=str(error))
    return decided


def is_alert(entity: Entity) -> bool:
    """Alert entities are never evaluated themselves, so alerts cannot raise alerts."""
    return any(local_name(t) == "Alert" for t in entity.types)


async def evaluate_alerts(
    broker: Broker,
    tenant: str,
    changed_entities: Sequence[Entity],
    *,
    now: datetime | None = None,
    history: History | None = None,
) -> list[Decision]:
    """Evaluate the city's rules on entities that changed and raise/clear their alerts.

    Call it after commit (outbox consumer, periodic task), never inside a request. Returns the
    decisions that changed an alert. Alert entities themselves are skipped (no feedback)."""
    now = now or datetime.now(UTC)
    history = history or DEFAULT_HISTORY
    remember_tenant(tenant)
    rules, _ = await load_rules(broker, tenant)
    watched = {r.attr for r in rules if r.attr and (r.window or r.kind == "rate")}
    pairs: list[tuple[Rule, Entity]] = []
    for entity in changed_entities:
        if entity is None or is_alert(entity):
            continue
        iris = [i for i in entity.attrs if i in watched or local_name(i) in watched]
        if iris:
            history.observe(tenant, entity, iris)
        pairs.extend((rule, entity) for rule in rules if applies(rule, entity))
    if not pairs:
        return []
    return await _apply(broker, tenant, pairs, now, history)


async def sweep_absence(
    broker: Broker, tenant: str, *, now: datetime | None = None
) -> list[Decision]:
    """Check every entity watched by an absence rule (paged queries) and raise/clear."""
    now = now or datetime.now(UTC)
    if not await broker.storage.tenant_exists(tenant):
        return []
    rules, _ = await load_rules(broker, tenant)
    decided: list[Decision] = []
    for rule in rules:
        if rule.kind != "absence" or not rule.enabled:
            continue
        iris = tuple(i for name in rule.types for i in type_iris(name))
        query = EntityQuery(
            type_expr=iris[0] if len(iris) == 1 else Or(iris),
            geo=rule.area.geo if rule.area else None,
            scope_q=rule.area.scope if rule.area else None,
            limit=broker.max_limit,
        )
        while True:
            page = await broker.query_entities(SYSTEM, tenant, query)
            pairs = [(rule, e) for e in page.entities if applies(rule, e)]
            if pairs:
                decided += await _apply(broker, tenant, pairs, now, DEFAULT_HISTORY)
            if len(page.entities) < query.limit:
                break
            query.offset += query.limit
    return decided

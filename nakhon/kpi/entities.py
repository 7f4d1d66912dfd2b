"""KPI results as Smart Data Model ``KeyPerformanceIndicator`` entities.

One entity per (KPI, calculation frequency): ``urn:ngsi-ld:KeyPerformanceIndicator:nakhon:
<kpi>:<daily|monthly|yearly>``. Each computed period is an update of that entity whose
``kpiValue`` carries ``observedAt`` = the period's start (Bangkok midnight, in UTC), so the
temporal API answers "the monthly value of every month" with one query on ``kpiValue``
(``timeproperty=observedAt``), and subscriptions see every new value. The other attributes
describe the latest period written.

Terms are expanded with the core @context (as the alert entities are), so
``GET /ngsi-ld/v1/entities?type=KeyPerformanceIndicator`` finds them without a Link header.
Attribute names follow the SDM (kpiValue, calculationPeriod {from, to}, calculationFrequency,
calculationMethod, calculationFormula, category, organization, process, businessTarget,
currentStanding, aggregatedData, dateNextCalculation, effectiveSince, updatedAt); ``name`` and
``description`` are LanguageProperties (Thai and English). Nakhon adds ``domain``, ``kpiId``,
``kpiTarget``, ``kpiDirection``, ``kpiTrend`` and ``periodLabel`` (Buddhist Era in Thai).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nakhon.broker import validate
from nakhon.broker.jsonld import CORE_TERM_MAP
from nakhon.broker.model import Entity
from nakhon.kpi.definitions import KpiDefinition
from nakhon.kpi.periods import FREQUENCY, Kind, Period

ID_PREFIX = "urn:ngsi-ld:KeyPerformanceIndicator:nakhon:"


def entity_id(kpi_id: str, kind: Kind) -> str:
    return f"{ID_PREFIX}{kpi_id}:{FREQUENCY[kind]}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def standing(kpi: KpiDefinition, kind: Kind, value: float) -> str:
    """SDM ``currentStanding`` (veryGood … veryBad) from the value against the target."""
    target = kpi.target_for(kind)
    if target == 0:
        return "veryGood" if value <= 0 else "bad"
    if kpi.direction == "lowerIsBetter":
        ratio = value / target
    else:
        ratio = target / value if value > 0 else float("inf")
    for limit, name in ((0.5, "veryGood"), (1.0, "good"), (1.25, "fair"), (1.5, "bad")):
        if ratio <= limit:
            return name
    return "veryBad"


def trend(kpi: KpiDefinition, value: float, previous: float | None) -> dict[str, Any]:
    """Change against the previous period and whether that is better or worse."""
    if previous is None:
        return {"previousValue": None, "change": None, "assessment": "new"}
    change = round(value - previous, 6)
    if abs(change) < 1e-9:
        assessment = "stable"
    elif (change > 0) == (kpi.direction == "higherIsBetter"):
        assessment = "improving"
    else:
        assessment = "worsening"
    return {"previousValue": previous, "change": change, "assessment": assessment}


def _dt(moment: datetime) -> dict[str, str]:
    return {"@type": "DateTime", "@value": iso(moment)}


def kpi_entity(
    kpi: KpiDefinition,
    period: Period,
    value: float,
    previous: float | None,
    *,
    tenant: str,
    now: datetime,
    next_run: datetime,
    effective_since: datetime,
) -> Entity:
    """The entity for one computed period (validated by the broker's own parser)."""
    unit = {"unitCode": kpi.unit_code}
    target = kpi.target_for(period.kind)
    sign = "≤" if kpi.direction == "lowerIsBetter" else "≥"
    body: dict[str, Any] = {
        "id": entity_id(kpi.id, period.kind),
        "type": "KeyPerformanceIndicator",
        "name": {"type": "LanguageProperty", "languageMap": dict(kpi.name)},
        "description": {"type": "LanguageProperty", "languageMap": dict(kpi.description)},
        "kpiValue": {
            "type": "Property",
            "value": value,
            "observedAt": iso(period.start_utc),
            **unit,
        },
        "calculationPeriod": {
            "type": "Property",
            "value": {"from": period.first.isoformat(), "to": period.last.isoformat()},
        },
        "periodLabel": {"type": "LanguageProperty", "languageMap": period.labels()},
        "calculationFrequency": {"type": "Property", "value": period.frequency},
        "calculationMethod": {"type": "Property", "value": "automatic"},
        "calculationFormula": {"type": "Property", "value": kpi.formula},
        "category": {"type": "Property", "value": list(kpi.category)},
        "organization": {"type": "Property", "value": tenant or "default"},
        "process": {"type": "Property", "value": kpi.process},
        "calculatedBy": {"type": "Property", "value": "Nakhon KPI engine"},
        "businessTarget": {"type": "Property", "value": f"{sign} {target:g} {kpi.unit}"},
        "currentStanding": {"type": "Property", "value": standing(kpi, period.kind, value)},
        "aggregatedData": {
            "type": "Property",
            "value": [{"entityType": kpi.entity_type, "attrs": list(kpi.attrs)}],
        },
        "dateNextCalculation": {"type": "Property", "value": _dt(next_run)},
        "effectiveSince": {"type": "Property", "value": _dt(effective_since)},
        "updatedAt": {"type": "Property", "value": _dt(now)},
        "domain": {"type": "Property", "value": kpi.domain},
        "kpiId": {"type": "Property", "value": kpi.id},
        "kpiTarget": {"type": "Property", "value": target, **unit},
        "kpiDirection": {"type": "Property", "value": kpi.direction},
        "kpiTrend": {"type": "Property", "value": trend(kpi, value, previous)},
    }
    return validate.parse_entity(body, CORE_TERM_MAP.expand)

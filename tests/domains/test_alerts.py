"""Alert rules: parsing (bad input is BadRequestData) and pure evaluation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nakhon.broker.jsonld import DEFAULT_VOCAB
from nakhon.broker.model import LOCATION, Entity
from nakhon.core.errors import BadRequestData
from nakhon.domains.alert_service import default_rules
from nakhon.domains.alerts import evaluate, parse_rule, parse_rules

NOW = datetime(2024, 2, 1, 12, 0, tzinfo=UTC)
SDM_ENV = "https://smartdatamodels.org/dataModel.Environment/"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def entity(
    etype: str = "AirQualityObserved",
    *,
    vocab: str = DEFAULT_VOCAB,
    at: datetime = NOW,
    point: tuple[float, float] | None = (101.07, 13.69),
    scope: list[str] | None = None,
    **values: float,
) -> Entity:
    attrs: dict[str, Any] = {
        vocab + name: [{"type": "Property", "value": v, "observedAt": iso(at)}]
        for name, v in values.items()
    }
    if point is not None:
        attrs[LOCATION] = [
            {"type": "GeoProperty", "value": {"type": "Point", "coordinates": list(point)}}
        ]
    return Entity("urn:ngsi-ld:X:1", [vocab + etype], attrs, scope, iso(at), iso(at))


def rule(**doc: Any) -> Any:
    base = {"id": "r", "kind": "threshold", "types": ["AirQualityObserved"], "attr": "pm25"}
    return parse_rule({**base, **doc})


def test_default_rules_for_thai_conditions() -> None:
    rules = {r.id: r for r in default_rules()}
    pm = rules["pm25-24h"]
    assert (pm.op, pm.value, pm.window, pm.severity) == (">", 37.5, "24h", "high")
    assert rules["flood-alert-level"].value_attr == "alertLevel"
    assert rules["sensor-offline"].kind == "absence" and rules["sensor-offline"].minutes == 30
    assert all(r.title["th"] and r.title["en"] for r in rules.values())


def test_plain_threshold_raises_and_clears() -> None:
    r = rule(op=">", value=50)
    up = evaluate(r, entity(pm25=60.0), NOW)
    assert up is not None and up.active and up.value == 60.0 and up.limit == 50
    down = evaluate(r, entity(pm25=40.0), NOW, active=True)
    assert down is not None and not down.active


def test_rules_match_names_in_either_vocabulary() -> None:
    r = rule(op=">", value=50)
    decision = evaluate(r, entity(vocab=SDM_ENV, pm25=60.0), NOW)
    assert decision is not None and decision.active
    assert evaluate(r, entity("NoiseLevelObserved", pm25=60.0), NOW) is None


def test_windowed_threshold_uses_the_24h_mean_and_needs_data() -> None:
    r = rule(op=">", value=37.5, window="24h")
    high = [(NOW - timedelta(hours=h), 40.0) for h in range(1, 24)]
    decision = evaluate(r, entity(pm25=40.0), NOW, high)
    assert decision is not None and decision.active and decision.value == pytest.approx(40.0)
    # A spike alone is not a 24-hour mean above the standard.
    low = [(NOW - timedelta(hours=h), 20.0) for h in range(1, 24)]
    decision = evaluate(r, entity(pm25=200.0), NOW, low)
    assert decision is not None and not decision.active
    # Too few hours: no decision.
    assert evaluate(r, entity(pm25=200.0), NOW, high[:5]) is None


def test_threshold_against_another_attribute_with_hysteresis() -> None:
    r = parse_rule(
        {
            "id": "flood",
            "kind": "threshold",
            "types": ["FloodMonitoring"],
            "attr": "currentLevel",
            "op": ">=",
            "valueAttr": "alertLevel",
            "clearValue": 10.5,
        }
    )
    hit = evaluate(r, entity("FloodMonitoring", currentLevel=11.0, alertLevel=11.0), NOW)
    assert hit is not None and hit.active and hit.limit == 11.0
    # Below the alert level but above the clear level: stays raised while active.
    stay = evaluate(
        r, entity("FloodMonitoring", currentLevel=10.7, alertLevel=11.0), NOW, active=True
    )
    assert stay is not None and stay.active
    gone = evaluate(
        r, entity("FloodMonitoring", currentLevel=10.0, alertLevel=11.0), NOW, active=True
    )
    assert gone is not None and not gone.active
    assert evaluate(r, entity("FloodMonitoring", currentLevel=12.0), NOW) is None


def test_rate_of_change() -> None:
    r = parse_rule(
        {
            "id": "rise",
            "kind": "rate",
            "types": ["WaterObserved"],
            "attr": "waterLevel",
            "delta": 0.5,
            "minutes": 60,
            "direction": "up",
        }
    )
    recent = [(NOW - timedelta(minutes=50), 1.0), (NOW - timedelta(minutes=90), 0.0)]
    up = evaluate(r, entity("WaterObserved", waterLevel=1.6), NOW, recent)
    assert up is not None and up.active and up.value == pytest.approx(0.6)
    flat = evaluate(r, entity("WaterObserved", waterLevel=1.2), NOW, recent)
    assert flat is not None and not flat.active
    falling = evaluate(r, entity("WaterObserved", waterLevel=0.2), NOW, recent)
    assert falling is not None and not falling.active
    assert evaluate(r, entity("WaterObserved", waterLevel=1.2), NOW, []) is None


def test_absence_of_data() -> None:
    r = parse_rule({"id": "off", "kind": "absence", "types": ["AirQualityObserved"], "minutes": 30})
    quiet = entity(pm25=10.0, at=NOW - timedelta(minutes=31))
    d = evaluate(r, quiet, NOW)
    assert d is not None and d.active and d.observed_at == NOW - timedelta(minutes=31)
    fresh = entity(pm25=10.0, at=NOW - timedelta(minutes=29))
    d = evaluate(r, fresh, NOW, active=True)
    assert d is not None and not d.active
    # With attr: the attribute's observedAt counts.
    r2 = parse_rule(
        {
            "id": "off2",
            "kind": "absence",
            "types": ["AirQualityObserved"],
            "attr": "pm25",
            "minutes": 30,
        }
    )
    d = evaluate(r2, entity(pm25=1.0, at=NOW - timedelta(hours=2)), NOW)
    assert d is not None and d.active


def test_area_bbox_polygon_and_scope() -> None:
    chachoengsao = [100.9, 13.4, 101.6, 13.9]
    r = rule(op=">", value=50, area={"bbox": chachoengsao})
    assert evaluate(r, entity(pm25=60.0), NOW) is not None
    assert evaluate(r, entity(pm25=60.0, point=(100.5, 13.75)), NOW) is None  # Bangkok
    assert evaluate(r, entity(pm25=60.0, point=None), NOW) is None
    ring = [[100.9, 13.4], [101.6, 13.4], [101.6, 13.9], [100.9, 13.4]]
    r = rule(op=">", value=50, area={"polygon": [ring]})
    assert evaluate(r, entity(pm25=60.0, point=(101.5, 13.5)), NOW) is not None
    assert evaluate(r, entity(pm25=60.0, point=(101.0, 13.85)), NOW) is None
    r = rule(op=">", value=50, area={"scopeQ": "/Chachoengsao/#"})
    assert evaluate(r, entity(pm25=60.0, scope=["/Chachoengsao/Mueang"]), NOW) is not None
    assert evaluate(r, entity(pm25=60.0, scope=["/Rayong"]), NOW) is None


def test_disabled_rules_decide_nothing() -> None:
    assert evaluate(rule(value=1, enabled=False), entity(pm25=60.0), NOW) is None


def test_rules_round_trip_through_their_json_form() -> None:
    for r in default_rules():
        assert parse_rule(r.doc()) == r


BAD: list[tuple[Any, str]] = [
    ("not a rule", "JSON object"),
    ({"kind": "threshold"}, "needs an id"),
    ({"id": "a b", "kind": "threshold"}, "needs an id"),
    ({"id": "x", "kind": "magic", "types": ["A"]}, "kind"),
    ({"id": "x", "kind": "threshold", "types": [], "attr": "a", "value": 1}, "types"),
    ({"id": "x", "kind": "threshold", "types": ["A"], "value": 1}, "needs attr"),
    ({"id": "x", "kind": "threshold", "types": ["A"], "attr": "a"}, "exactly one"),
    ({"id": "x", "kind": "threshold", "types": ["A"], "attr": "a", "value": "1"}, "number"),
    ({"id": "x", "kind": "threshold", "types": ["A"], "attr": "a", "value": 1, "op": "=="}, "op"),
    (
        {"id": "x", "kind": "threshold", "types": ["A"], "attr": "a", "value": 1, "window": "2h"},
        "window",
    ),
    (
        {
            "id": "x",
            "kind": "threshold",
            "types": ["A"],
            "attr": "a",
            "value": 1,
            "severity": "urgent",
        },
        "severity",
    ),
    ({"id": "x", "kind": "rate", "types": ["A"], "attr": "a", "minutes": 5}, "delta"),
    ({"id": "x", "kind": "rate", "types": ["A"], "attr": "a", "delta": 1}, "minutes"),
    ({"id": "x", "kind": "absence", "types": ["A"], "minutes": -5}, "greater than 0"),
    ({"id": "x", "kind": "absence", "types": ["A"], "minutes": 5, "colour": "red"}, "unknown"),
    (
        {
            "id": "x",
            "kind": "absence",
            "types": ["A"],
            "minutes": 5,
            "area": {"bbox": [1, 2, 0, 3]},
        },
        "bbox",
    ),
    (
        {
            "id": "x",
            "kind": "absence",
            "types": ["A"],
            "minutes": 5,
            "area": {"polygon": [[[0, 0], [1, 0], [1, 1]]]},
        },
        "polygon",
    ),
    (
        {"id": "x", "kind": "absence", "types": ["A"], "minutes": 5, "area": {"scopeQ": "no/"}},
        "scopeQ",
    ),
    ({"id": "x", "kind": "absence", "types": ["A"], "minutes": 5, "title": {"fr": "x"}}, "title"),
]


@pytest.mark.parametrize(("doc", "says"), BAD)
def test_bad_rules_are_refused_with_a_reason(doc: Any, says: str) -> None:
    with pytest.raises(BadRequestData) as err:
        parse_rule(doc)
    assert says in err.value.detail


def test_rule_lists() -> None:
    ok = {"id": "x", "kind": "absence", "types": ["A"], "minutes": 5}
    assert len(parse_rules({"rules": [ok]})) == 1
    assert parse_rules([]) == []
    with pytest.raises(BadRequestData, match="twice"):
        parse_rules([ok, ok])
    with pytest.raises(BadRequestData):
        parse_rules({"rules": "x"})

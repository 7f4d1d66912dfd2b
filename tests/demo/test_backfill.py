"""The backfill mutation: history after the newest reading only, newest becomes current."""

from __future__ import annotations

from typing import Any

from nakhon.broker.model import Entity
from nakhon.demo.backfill import after_latest, latest_observed

PM = "https://uri.etsi.org/ngsi-ld/default-context/pm25"
NAME = "https://uri.etsi.org/ngsi-ld/default-context/name"
NOW = "2026-11-22T12:00:00.000Z"


def _inst(value: float, at: str, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, "observedAt": at, **extra}


def _series() -> dict[str, list[dict[str, Any]]]:
    return {
        PM: [_inst(v, f"2026-11-22T0{h}:00:00.000Z") for h, v in ((1, 10.0), (2, 20.0), (3, 30.0))]
    }


def test_fresh_entity_gets_every_instance_and_the_newest_as_current() -> None:
    out = after_latest("urn:x:1", ["T"], _series())(None, NOW)
    assert out.created and out.entity is not None
    assert [i["value"] for _, i in out.changed] == [10.0, 20.0, 30.0]
    assert out.entity.attrs[PM][0]["value"] == 30.0
    assert all(i["createdAt"] == NOW == i["modifiedAt"] for _, i in out.changed)


def test_only_newer_than_the_current_reading_is_written() -> None:
    current = Entity(
        "urn:x:1",
        ["T"],
        {
            PM: [
                _inst(20.0, "2026-11-22T02:00:00Z", createdAt="2026-11-01T00:00:00.000Z"),
                _inst(5.0, "2026-11-22T02:30:00Z", datasetId="urn:ds:other"),
            ],
            NAME: [{"type": "Property", "value": "static"}],
        },
        None,
        "2026-11-01T00:00:00.000Z",
        "2026-11-22T02:00:00.000Z",
    )
    assert latest_observed(current, [PM]) == "2026-11-22T02:30:00.000Z"
    out = after_latest("urn:x:1", ["T"], _series())(current, NOW)
    assert [i["value"] for _, i in out.changed] == [30.0]
    assert out.changed[0][1]["createdAt"] == "2026-11-01T00:00:00.000Z"
    assert out.entity is not None
    assert [i["value"] for i in out.entity.attrs[PM]] == [30.0, 5.0]  # other dataset kept
    assert out.entity.attrs[NAME] == current.attrs[NAME]
    assert current.attrs[PM][0]["value"] == 20.0  # the stored state is not touched
    # Everything already there: nothing to write.
    assert after_latest("urn:x:1", ["T"], _series())(out.entity, NOW).unchanged


def test_instants_not_text_decide_what_is_newer() -> None:
    """The same instant written without milliseconds or with an offset is not newer (text
    comparison would take ``…:00Z`` for later than ``…:00.000Z``): a repeat writes nothing."""
    stored = Entity("urn:x:1", ["T"], {PM: [_inst(20.0, "2026-11-22T02:00:00.000Z")]})
    again = {PM: [_inst(20.0, "2026-11-22T02:00:00Z"), _inst(21.0, "2026-11-22T09:00:00+07:00")]}
    assert after_latest("urn:x:1", ["T"], again)(stored, NOW).unchanged
    later = {PM: [_inst(1.0, "2026-11-22T09:00:00+07:00"), _inst(2.0, "2026-11-22T02:00:01Z")]}
    out = after_latest("urn:x:1", ["T"], later)(stored, NOW)
    assert [i["value"] for _, i in out.changed] == [2.0]


def test_a_repeated_day_of_whole_second_readings_writes_nothing() -> None:
    day = {PM: [_inst(float(m), f"2026-11-22T10:{m:02d}:00Z") for m in range(0, 60, 5)]}
    first = after_latest("urn:x:1", ["T"], day)(None, NOW)
    assert len(first.changed) == 12 and first.entity is not None
    repeat = {PM: [_inst(float(m), f"2026-11-22T10:{m:02d}:00Z") for m in range(0, 60, 5)]}
    assert after_latest("urn:x:1", ["T"], repeat)(first.entity, NOW).unchanged

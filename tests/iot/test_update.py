"""The fast measurement mutation equals the general Batch Upsert (update) it stands for."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nakhon.broker import ops
from nakhon.broker.model import Entity
from nakhon.iot.update import measurement_update

V = "https://uri.etsi.org/ngsi-ld/default-context/"
T = [V + "Sensor"]
NOW = "2024-05-01T00:00:10.000Z"


def _inst(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, "observedAt": "2024-05-01T00:00:09.000Z",
            **extra}


def _stored(value: Any, **extra: Any) -> dict[str, Any]:
    return {**_inst(value, **extra), "createdAt": "2024-01-01T00:00:00.000Z",
            "modifiedAt": "2024-04-01T00:00:00.000Z"}


CURRENT = [
    None,
    Entity("urn:e", list(T), {}, None, "2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00.000Z"),
    Entity("urn:e", list(T), {V + "t": [_stored(1)], V + "h": [_stored(2, unitCode="P1")],
                              V + "name": [_stored("x")]}, ["/a"],
           "2024-01-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z"),
    Entity("urn:e", [V + "Other"], {V + "t": [_stored(1)]}, None,
           "2024-01-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z"),
    Entity("urn:e", list(T), {V + "t": [_stored(1, datasetId="urn:ds:1"), _stored(5)]}, None,
           "2024-01-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z"),
    Entity("urn:e", list(T), {V + "t": [_stored(1, datasetId="urn:ds:1")]}, None,
           "2024-01-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z"),
]
ATTRS = [
    {V + "t": [_inst(21.5)]},
    {V + "t": [_inst(22, unitCode="CEL")], V + "h": [_inst(40)], V + "new": [_inst("on")]},
    {V + "t": [_inst("urn:ngsi-ld:null")]},
    {V + "loc": [{"type": "GeoProperty", "value": {"type": "Point", "coordinates": [100, 13]},
                  "observedAt": "2024-05-01T00:00:09.000Z"}]},
]


@pytest.mark.parametrize("current", CURRENT)
@pytest.mark.parametrize("attrs", ATTRS)
def test_same_outcome_as_the_general_upsert(current: Entity | None,
                                            attrs: dict[str, Any]) -> None:
    before = copy.deepcopy(current)
    general = ops.upsert_entity(Entity("urn:e", T, attrs), mode="update")
    fast = measurement_update("urn:e", T, attrs)
    try:
        want = general(copy.deepcopy(current), NOW)
    except Exception as exc:
        with pytest.raises(type(exc)):
            fast(current, NOW)
        return
    got = fast(current, NOW)
    assert got.entity == want.entity
    assert list(got.entity.attrs) == list(want.entity.attrs)  # type: ignore[union-attr]
    assert got.changed == want.changed and got.removed == want.removed
    assert (got.created, got.deleted, got.unchanged) == (want.created, want.deleted,
                                                         want.unchanged)
    assert got.result == want.result and got.previous == current
    assert current == before  # the current state is never changed in place

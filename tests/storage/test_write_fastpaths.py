"""Regression checks for the write path's fast paths: each must agree with the plain definition.

``rows.geo_unchanged`` skips the geometry comparison when the attribute lists that differ hold
no GeoProperty; ``ops_attrs.is_null`` decides numbers and strings inline. Both run for every
write, so they are checked here against the straightforward versions they replace.
"""

from __future__ import annotations

from typing import Any

import pytest

from nakhon.broker.model import VALUE_MEMBER, Entity
from nakhon.broker.ops_attrs import NGSI_LD_NULL, Draft, _null_value, is_null
from nakhon.storage.rows import geo_unchanged, geo_values

LOC = "https://uri.etsi.org/ngsi-ld/location"
T = "urn:t"
POINT = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [100.5, 13.7]}}


def _entity(**attrs: list[dict[str, Any]]) -> Entity:
    return Entity("urn:e:1", ["urn:T"], {k.replace("_", ":"): v for k, v in attrs.items()})


def _cases() -> list[tuple[Entity | None, Entity | None]]:
    base = Entity("urn:e:1", ["urn:T"], {LOC: [POINT], T: [{"type": "Property", "value": 1}]})
    out: list[tuple[Entity | None, Entity | None]] = [(None, None), (None, base), (base, None)]
    for patch in (
        [(T, {"type": "Property", "value": 2})],  # other attribute written: geometry shared
        [(LOC, dict(POINT))],  # same geometry rewritten (a new, equal dict)
        [(LOC, {"type": "GeoProperty",
                "value": {"type": "Point", "coordinates": [100.6, 13.7]}})],
        [(LOC, {"type": "GeoProperty", "datasetId": "urn:d",
                "value": {"type": "Point", "coordinates": [1, 2]}})],
        [("urn:g2", POINT)],  # a second geometry attribute
        [(T, {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [3, 4]}})],
    ):
        draft = Draft(base, "2026-01-01T00:00:00Z")
        for iri, inst in patch:
            draft.put(iri, inst)
        out.append((base, draft.entity))
        out.append((draft.entity, base))
    for iri in (LOC, T):
        draft = Draft(base, "2026-01-01T00:00:00Z")
        draft.drop_all(iri)
        out.append((base, draft.entity))
        out.append((draft.entity, base))
    # Lists replaced by equal copies (as after loading from storage): compared in full.
    copy = Entity(base.id, base.types, {k: [dict(i) for i in v] for k, v in base.attrs.items()})
    out.append((base, copy))
    return out


@pytest.mark.parametrize("case", range(len(_cases())))
def test_geo_unchanged_agrees_with_geo_values(case: int) -> None:
    before, after = _cases()[case]
    assert geo_unchanged(before, after) == (geo_values(before) == geo_values(after))


def _is_null_reference(instance: Any) -> bool:
    if instance is None:
        return True
    if not isinstance(instance, dict):
        return False
    members = frozenset(VALUE_MEMBER.values())
    return any(_null_value(m, instance[m]) for m in members if m in instance)


VALUES: list[Any] = [
    None, 0, 1, 1.5, True, False, "", "x", NGSI_LD_NULL, [NGSI_LD_NULL], [NGSI_LD_NULL, "a"],
    [{"object": NGSI_LD_NULL}], [{"object": "urn:x"}], ["a"], [], {"@none": NGSI_LD_NULL},
    {"@none": "x"}, {"th": NGSI_LD_NULL}, {"type": "Point"},
]


@pytest.mark.parametrize("member", sorted(set(VALUE_MEMBER.values())))
def test_is_null_agrees_with_the_definition(member: str) -> None:
    for value in VALUES:
        for extra in ({}, {"value": 3}, {"object": NGSI_LD_NULL}):
            inst = {"type": "Property", **extra, member: value}
            assert is_null(inst) == _is_null_reference(inst), (member, value, extra)
    for other in (None, 3, "x", NGSI_LD_NULL, [1]):
        assert is_null(other) == _is_null_reference(other)


def test_put_ignores_client_system_times_and_copies() -> None:
    base = _entity()
    draft = Draft(base, "2026-01-01T00:00:00Z")
    sent = {"type": "Property", "value": 1, "createdAt": "1999-01-01T00:00:00Z"}
    plain = {"type": "Property", "value": 2}
    a = draft.put("urn:a", sent)
    b = draft.put("urn:b", plain)
    assert a["createdAt"] == a["modifiedAt"] == "2026-01-01T00:00:00Z"
    assert b is not plain and "createdAt" not in plain
    assert sent["createdAt"] == "1999-01-01T00:00:00Z"

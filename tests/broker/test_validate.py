"""broker.validate: normalized and concise payloads → normal form, and precise errors."""

from __future__ import annotations

from typing import Any

import pytest

from nakhon.broker.model import LOCATION, Entity
from nakhon.broker.validate import (
    check_datetime,
    parse_attribute,
    parse_attributes,
    parse_entity,
    validate_geometry,
)
from nakhon.core.errors import BadRequestData

EX = "https://example.org/"


def expand(term: str) -> str:
    """A stand-in @context: core names to their IRIs, anything else under EX."""
    core = {"location": LOCATION, "observationSpace": "https://uri.etsi.org/ngsi-ld/observationSpace"}
    if term in core:
        return core[term]
    return term if ":" in term else EX + term


POINT = {"type": "Point", "coordinates": [100.5018, 13.7563]}


def entity(**attrs: Any) -> Entity:
    return parse_entity({"id": "urn:ngsi-ld:Thing:1", "type": "Thing", **attrs}, expand)


def bad(fragment: str, body: Any, **kw: Any) -> None:
    with pytest.raises(BadRequestData) as err:
        parse_entity(body, expand, **kw)
    assert fragment in err.value.detail, err.value.detail


BASE = {"id": "urn:ngsi-ld:Thing:1", "type": "Thing"}


def test_normalized_entity() -> None:
    e = entity(
        temperature={"type": "Property", "value": 31.5, "unitCode": "CEL",
                     "observedAt": "2024-04-13T06:00:00Z",
                     "accuracy": {"type": "Property", "value": 0.1}},
        isIn={"type": "Relationship", "object": "urn:ngsi-ld:Park:1", "objectType": "Park"},
        location={"type": "GeoProperty", "value": POINT},
    )
    assert e.id == "urn:ngsi-ld:Thing:1" and e.types == [EX + "Thing"]
    assert e.attrs[EX + "temperature"] == [{
        "type": "Property", "value": 31.5, "unitCode": "CEL",
        "observedAt": "2024-04-13T06:00:00Z",
        EX + "accuracy": {"type": "Property", "value": 0.1}}]
    assert e.attrs[EX + "isIn"][0]["objectType"] == EX + "Park"
    assert e.attrs[LOCATION] == [{"type": "GeoProperty", "value": POINT}]


@pytest.mark.parametrize(("body", "expected"), [
    ({"object": "urn:x:1"}, {"type": "Relationship", "object": "urn:x:1"}),
    ({"languageMap": {"th": "สวน", "en": "park"}},
     {"type": "LanguageProperty", "languageMap": {"th": "สวน", "en": "park"}}),
    ({"vocab": "Open"}, {"type": "VocabProperty", "vocab": EX + "Open"}),
    ({"valueList": [1, 2]}, {"type": "ListProperty", "valueList": [1, 2]}),
    ({"objectList": ["urn:x:1", {"object": "urn:x:2"}]},
     {"type": "ListRelationship", "objectList": [{"object": "urn:x:1"}, {"object": "urn:x:2"}]}),
    ({"json": {"a": [1, None]}}, {"type": "JsonProperty", "json": {"a": [1, None]}}),
    ({"value": 3}, {"type": "Property", "value": 3}),
    ({"value": POINT}, {"type": "GeoProperty", "value": POINT}),
    (POINT, {"type": "GeoProperty", "value": POINT}),
    ("ถนน \"สุขุมวิท\" [ซอย 11]", {"type": "Property", "value": "ถนน \"สุขุมวิท\" [ซอย 11]"}),
    ([1, "a"], {"type": "Property", "value": [1, "a"]}),
    ({"street": "x", "type": "PostalAddress"},
     {"type": "Property", "value": {"street": "x", "type": "PostalAddress"}}),
    (False, {"type": "Property", "value": False}),
])
def test_concise_inference(body: Any, expected: dict[str, Any]) -> None:
    assert parse_attribute("a", body, expand) == [expected]


def test_concise_location_value_is_geoproperty() -> None:
    assert entity(location={"value": POINT}).attrs[LOCATION][0]["type"] == "GeoProperty"


def test_concise_sub_attributes_and_bare_list_of_objects() -> None:
    got = parse_attribute("speed", {"value": 50, "source": "radar", "by": {"object": "urn:x"}},
                          expand)
    assert got == [{"type": "Property", "value": 50,
                    EX + "source": {"type": "Property", "value": "radar"},
                    EX + "by": {"type": "Relationship", "object": "urn:x"}}]
    hours = [{"opens": "08:00"}, {"opens": "09:00"}]
    assert parse_attribute("hours", hours, expand) == [{"type": "Property", "value": hours}]


def test_multi_attribute_default_first_and_duplicate_dataset() -> None:
    got = parse_attribute("name", [
        {"type": "Property", "value": "B", "datasetId": "urn:ds:b"},
        {"type": "Property", "value": "A"},
    ], expand)
    assert [i.get("datasetId") for i in got] == [None, "urn:ds:b"]
    with pytest.raises(BadRequestData, match="two instances with datasetId 'urn:ds:b'"):
        parse_attribute("name", [{"value": 1, "datasetId": "urn:ds:b"},
                                 {"value": 2, "datasetId": "urn:ds:b"}], expand)
    with pytest.raises(BadRequestData, match="default instance"):
        parse_attribute("name", [{"value": 1}, {"value": 2}], expand)


def test_system_members_ignored_and_types_deduplicated() -> None:
    e = parse_entity({**BASE, "type": ["Thing", "Thing", "Other"],
                      "createdAt": "2020-01-01T00:00:00Z", "modifiedAt": "x",
                      "a": {"type": "Property", "value": 1, "createdAt": "whatever"},
                      "@context": ["https://example.org/ctx.jsonld"]}, expand)
    assert e.types == [EX + "Thing", EX + "Other"]
    assert e.attrs == {EX + "a": [{"type": "Property", "value": 1}]}


def test_scope_and_optional_id_type() -> None:
    assert entity(scope="/Bangkok/Pathum_Wan").scope == ["/Bangkok/Pathum_Wan"]
    assert entity(scope=["/a", "/b/c"]).scope == ["/a", "/b/c"]
    e = parse_entity({"a": 1}, expand, require_id=False, require_type=False)
    assert (e.id, e.types) == ("", [])


@pytest.mark.parametrize(("body", "fragment"), [
    ([], "must be a JSON object"),
    ({"type": "T"}, "'id' is required"),
    ({"id": "urn:x:1"}, "'type' is required"),
    ({"id": "no-scheme", "type": "T"}, "must be a URI"),
    ({"id": "urn:x:has space", "type": "T"}, "must be a URI"),
    ({"id": 5, "type": "T"}, "must be a URI"),
    ({"id": "urn:x:1", "type": []}, "empty list"),
    ({"id": "urn:x:1", "type": [1]}, "string or a list of strings"),
    ({"id": "urn:x:1", "type": "Bad<Type"}, "forbidden character '<'"),
    ({**BASE, "bad name": 1}, "forbidden character ' '"),
    ({**BASE, "a=b": 1}, "forbidden character '='"),
    ({**BASE, "@graph": 1}, "JSON-LD keyword"),
    ({**BASE, "a": None}, "null is not a value"),
    ({**BASE, "a": {"type": "Property"}}, "needs a non-null 'value'"),
    ({**BASE, "a": {"type": "Property", "value": None}}, "needs a non-null 'value'"),
    ({**BASE, "a": {"type": "string", "value": "x"}}, "unknown attribute type 'string'"),
    ({**BASE, "a": {"type": "Property", "value": 1, "object": "urn:x"}}, "has no 'object'"),
    ({**BASE, "a": {"value": 1, "object": "urn:x"}}, "ambiguous"),
    ({**BASE, "a": {"type": "Relationship", "object": "not a uri"}}, "object must be a URI"),
    ({**BASE, "a": {"type": "Relationship", "Object": ["urn:x"]}}, "needs a non-null 'object'"),
    ({**BASE, "a": {"type": "Relationship", "object": []}}, "empty list"),
    ({**BASE, "location": {"type": "Property", "value": POINT}}, "must be a GeoProperty"),
    ({**BASE, "location": "Bangkok"}, "must be a GeoProperty"),
    ({**BASE, "a": {"value": 1, "observedAt": "2020-03-17TT08:45:00Z"}}, "ISO 8601"),
    ({**BASE, "a": {"value": 1, "observedAt": "2020-03-17T08:45:00"}}, "time zone"),
    ({**BASE, "a": {"value": 1, "datasetId": "ds1"}}, "datasetId must be a URI"),
    ({**BASE, "a": {"value": 1, "unitCode": 5}}, "'unitCode' must be"),
    ({**BASE, "a": {"value": 1, "objectType": "T"}}, "only relationships"),
    ({**BASE, "scope": "no-slash"}, "invalid scope"),
    ({**BASE, "scope": "/a/#"}, "invalid scope"),
    ({**BASE, "scope": ["/a", 3]}, "invalid scope"),
    ({**BASE, "a": {"languageMap": {"not a tag": "x"}}}, "BCP 47"),
    ({**BASE, "a": {"languageMap": {"th": 5}}}, "must be a string or a list"),
    ({**BASE, "a": {"languageMap": {}}}, "non-empty"),
    ({**BASE, "a": {"valueList": 3}}, "must be an array"),
    ({**BASE, "a": {"vocab": 3}}, "vocab must be"),
    ({**BASE, "a": {"value": 1, "sub": [{"value": 1}, {"value": 2}]}}, "several instances"),
    ({**BASE, "a": {"value": 1, "sub": {"type": "Relationship", "object": "x"}}}, "object"),
])
def test_errors(body: Any, fragment: str) -> None:
    bad(fragment, body)


@pytest.mark.parametrize(("geometry", "fragment"), [
    ({"type": "Point", "coordinates": [200, 13]}, "outside longitude"),
    ({"type": "Point", "coordinates": [100, 95]}, "outside longitude"),
    ({"type": "Point", "coordinates": ["100", 13]}, "position"),
    ({"type": "Point", "coordinates": [100, True]}, "position"),
    ({"type": "Point", "coordinates": [100]}, "position"),
    ({"type": "LineString", "coordinates": [[100, 13]]}, "at least 2"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}, "closed"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, "at least 4"),
    ({"type": "Polygon", "coordinates": []}, "at least one ring"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
     "Self-intersection"),
    ({"type": "Circle", "coordinates": [0, 0]}, "GeoJSON geometry"),
    ({"type": "GeometryCollection"}, "'geometries'"),
])
def test_geometry_errors(geometry: dict[str, Any], fragment: str) -> None:
    with pytest.raises(BadRequestData, match=fragment):
        validate_geometry(geometry, "location")


def test_valid_geometries() -> None:
    for geometry in (
        POINT,
        {"type": "Point", "coordinates": [100.5, 13.7, 12.0]},
        {"type": "MultiPoint", "coordinates": [[100, 13], [101, 14]]},
        {"type": "LineString", "coordinates": [[100, 13], [101, 14]]},
        {"type": "MultiLineString", "coordinates": [[[100, 13], [101, 14]]]},
        {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
        {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]]]},
        {"type": "GeometryCollection", "geometries": [POINT]},
    ):
        validate_geometry(geometry, "location")


def test_datetimes() -> None:
    for ok in ("2024-01-31T12:00:00Z", "2024-01-31T19:00:00+07:00", "2024-01-31T12:00:00.123Z"):
        assert check_datetime(ok, "observedAt") == ok
    for no in ("2024-01-31", "2024-13-31T12:00:00Z", "yesterday", 5):
        with pytest.raises(BadRequestData):
            check_datetime(no, "observedAt")


def test_attribute_fragment() -> None:
    got = parse_attributes({"@context": "x", "a": 1, "b": {"object": "urn:x:1"}}, expand)
    assert got == {EX + "a": [{"type": "Property", "value": 1}],
                   EX + "b": [{"type": "Relationship", "object": "urn:x:1"}]}
    assert parse_attributes({"id": "urn:x:1", "type": "T", "scope": "/a"}, expand) == {}
    with pytest.raises(BadRequestData, match="JSON object"):
        parse_attributes([1], expand)


def test_user_text_kept_byte_for_byte() -> None:
    text = "ตลาดนัด 'จตุจักร' (Chatuchak) {weekend} <b>; a=b \\ \"q\" 🙂"
    e = entity(name=text, note={"type": "Property", "value": {"th": text, "list": [text]}})
    assert e.attrs[EX + "name"][0]["value"] == text
    assert e.attrs[EX + "note"][0]["value"] == {"th": text, "list": [text]}

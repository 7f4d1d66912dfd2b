"""broker.render: normalized, concise, simplified, GeoJSON, lang, sysAttrs and projections."""

from __future__ import annotations

from typing import Any

import pytest

from nakhon.broker.model import LOCATION, NGSI_LD, Entity
from nakhon.broker.render import (
    RenderOptions,
    pick_language,
    render_attribute,
    render_entity,
    render_geojson_collection,
    render_geojson_feature,
)
from nakhon.broker.validate import parse_entity

EX = "https://example.org/"
CORE = {"location": LOCATION, "observationSpace": NGSI_LD + "observationSpace"}


def expand(term: str) -> str:
    if term in CORE:
        return CORE[term]
    return term if ":" in term else EX + term


def compact(iri: str) -> str:
    for term, full in CORE.items():
        if iri == full:
            return term
    return iri[len(EX):] if iri.startswith(EX) else iri


POINT = {"type": "Point", "coordinates": [100.5018, 13.7563]}
SPACE = {"type": "Polygon", "coordinates": [[[100, 13], [101, 13], [101, 14], [100, 13]]]}

NORMALIZED: dict[str, Any] = {
    "id": "urn:ngsi-ld:Park:lumphini",
    "type": ["Park", "GreenSpace"],
    "scope": "/Bangkok/Pathum_Wan",
    "name": {"type": "LanguageProperty", "languageMap": {"th": "สวนลุมพินี", "en": "Lumphini Park"}},
    "visitors": {"type": "Property", "value": 1200, "observedAt": "2024-04-13T06:00:00Z",
                 "unitCode": "C62", "source": {"type": "Property", "value": "gate counter"}},
    "tags": {"type": "Property", "value": ["quiet", "lake"]},
    "status": {"type": "VocabProperty", "vocab": "Open"},
    "readings": {"type": "ListProperty", "valueList": [1, 2, 3]},
    "gates": {"type": "ListRelationship",
              "objectList": [{"object": "urn:ngsi-ld:Gate:1"}, {"object": "urn:ngsi-ld:Gate:2"}]},
    "raw": {"type": "JsonProperty", "json": {"type": "Feature", "value": [1]}},
    "managedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Org:bma"},
    "location": {"type": "GeoProperty", "value": POINT},
    "observationSpace": {"type": "GeoProperty", "value": SPACE},
    "level": [
        {"type": "Property", "value": 3},
        {"type": "Property", "value": 4, "datasetId": "urn:ngsi-ld:Dataset:sensor2"},
    ],
}


@pytest.fixture
def park() -> Entity:
    e = parse_entity(NORMALIZED, expand)
    e.created_at, e.modified_at = "2024-04-13T06:00:00Z", "2024-04-13T07:00:00Z"
    return e


def test_normalized_round_trip(park: Entity) -> None:
    assert render_entity(park, compact, RenderOptions()) == NORMALIZED


def test_simplified(park: Entity) -> None:
    got = render_entity(park, compact, RenderOptions(format="simplified"))
    assert got == {
        "id": "urn:ngsi-ld:Park:lumphini",
        "type": ["Park", "GreenSpace"],
        "scope": "/Bangkok/Pathum_Wan",
        "name": {"languageMap": {"th": "สวนลุมพินี", "en": "Lumphini Park"}},
        "visitors": 1200,
        "tags": ["quiet", "lake"],
        "status": "Open",
        "readings": [1, 2, 3],
        "gates": ["urn:ngsi-ld:Gate:1", "urn:ngsi-ld:Gate:2"],
        "raw": {"json": {"type": "Feature", "value": [1]}},
        "managedBy": "urn:ngsi-ld:Org:bma",
        "location": POINT,
        "observationSpace": SPACE,
        "level": {"dataset": {"@none": 3, "urn:ngsi-ld:Dataset:sensor2": 4}},
    }


def test_concise_is_lossless_and_drops_inferable_types(park: Entity) -> None:
    got = render_entity(park, compact, RenderOptions(format="concise"))
    assert got["visitors"] == {"value": 1200, "observedAt": "2024-04-13T06:00:00Z",
                               "unitCode": "C62", "source": "gate counter"}
    assert got["tags"] == ["quiet", "lake"]
    assert got["name"] == {"languageMap": {"th": "สวนลุมพินี", "en": "Lumphini Park"}}
    assert got["managedBy"] == {"object": "urn:ngsi-ld:Org:bma"}
    assert got["status"] == {"vocab": "Open"}
    assert got["location"] == {"value": POINT}
    assert got["level"] == [{"value": 3},
                            {"value": 4, "datasetId": "urn:ngsi-ld:Dataset:sensor2"}]
    assert parse_entity(got, expand).attrs == park.attrs


@pytest.mark.parametrize("value", [
    {"type": "Point", "coordinates": [1, 2]},      # would read back as a GeoProperty
    {"value": 1, "note": "x"},                      # would read back as an instance
    [{"object": "urn:x:1"}],                        # would read back as a multi-attribute
    {"type": "Relationship", "x": 1},               # has an attribute type
])
def test_concise_keeps_type_where_needed(value: Any) -> None:
    e = parse_entity({"id": "urn:x:1", "type": "T", "a": {"type": "Property", "value": value}},
                     expand)
    got = render_entity(e, compact, RenderOptions(format="concise"))
    assert parse_entity(got, expand).attrs == e.attrs


@pytest.mark.parametrize(("lang", "value", "tag"), [
    ("th", "สวนลุมพินี", "th"),
    ("en", "Lumphini Park", "en"),
    ("fr-CH,fr;q=0.9,en;q=0.8,*;q=0.5", "Lumphini Park", "en"),
    ("de", "สวนลุมพินี", "th"),           # no match, no @none: the first entry
    ("*", "สวนลุมพินี", "th"),
    ("th-TH", "สวนลุมพินี", "th"),        # truncated range
])
def test_lang_filter(park: Entity, lang: str, value: str, tag: str) -> None:
    got = render_entity(park, compact, RenderOptions(lang=lang))
    assert got["name"] == {"type": "Property", "value": value, "lang": tag}
    simple = render_entity(park, compact, RenderOptions(format="simplified", lang=lang))
    assert simple["name"] == value
    concise = render_entity(park, compact, RenderOptions(format="concise", lang=lang))
    assert concise["name"] == {"value": value, "lang": tag}


def test_pick_language_prefers_none_over_first_when_nothing_matches() -> None:
    assert pick_language({"en": "a", "@none": "b"}, "th") == "@none"
    assert pick_language({"en-GB": "a", "th": "b"}, "en") == "en-GB"
    assert pick_language({"en": "a", "th": "b"}, "th;q=0.5,en;q=0.9") == "en"
    assert pick_language({"en": "a", "th": "b"}, "en;q=0,th") == "th"


def test_sys_attrs(park: Entity) -> None:
    park.attrs[EX + "tags"][0]["createdAt"] = "2024-04-13T06:00:00Z"
    plain = render_entity(park, compact, RenderOptions())
    assert "createdAt" not in plain and "createdAt" not in plain["tags"]
    got = render_entity(park, compact, RenderOptions(sys_attrs=True))
    assert got["createdAt"] == "2024-04-13T06:00:00Z"
    assert got["modifiedAt"] == "2024-04-13T07:00:00Z"
    assert got["tags"]["createdAt"] == "2024-04-13T06:00:00Z"


def test_projections(park: Entity) -> None:
    got = render_entity(park, compact, RenderOptions(attrs={EX + "visitors"}))
    assert set(got) == {"id", "type", "scope", "visitors"}
    got = render_entity(park, compact, RenderOptions(pick={"id", EX + "tags"}))
    assert got == {"id": "urn:ngsi-ld:Park:lumphini", "tags": NORMALIZED["tags"]}
    got = render_entity(park, compact, RenderOptions(omit={"id", "type", EX + "tags"}))
    assert "id" not in got and "type" not in got and "tags" not in got and "visitors" in got


def test_dataset_filter(park: Entity) -> None:
    got = render_entity(park, compact,
                        RenderOptions(dataset_id={"urn:ngsi-ld:Dataset:sensor2"}))
    assert set(got) == {"id", "type", "scope", "level"}
    assert got["level"] == NORMALIZED["level"][1]
    got = render_entity(park, compact, RenderOptions(dataset_id={"@none"}))
    assert got["level"] == NORMALIZED["level"][0] and "visitors" in got


def test_render_attribute(park: Entity) -> None:
    inst = park.attrs[EX + "level"]
    assert render_attribute(EX + "level", inst, compact, RenderOptions()) == NORMALIZED["level"]
    assert render_attribute(EX + "level", inst, compact,
                            RenderOptions(dataset_id={"urn:none:such"})) is None


def test_geojson(park: Entity) -> None:
    feature = render_geojson_feature(park, compact, RenderOptions(format="simplified"))
    assert feature["id"] == "urn:ngsi-ld:Park:lumphini"
    assert feature["type"] == "Feature"
    assert feature["geometry"] == POINT
    assert feature["properties"]["type"] == ["Park", "GreenSpace"]
    assert feature["properties"]["location"] == POINT
    assert "id" not in feature["properties"]
    other = render_geojson_feature(
        park, compact, RenderOptions(geoproperty=NGSI_LD + "observationSpace"))
    assert other["geometry"] == SPACE
    assert other["properties"]["visitors"] == NORMALIZED["visitors"]
    missing = render_geojson_feature(park, compact, RenderOptions(geoproperty=EX + "nothing"))
    assert missing["geometry"] is None
    collection = render_geojson_collection([park, park], compact, RenderOptions())
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 2
    assert render_geojson_collection([], compact, RenderOptions())["features"] == []

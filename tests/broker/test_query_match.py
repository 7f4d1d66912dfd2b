"""Python evaluation of q, type selections and scopeQ against the clause 4.9/4.17/4.19 rules."""

from __future__ import annotations

from typing import Any

import pytest

from nakhon.broker.model import Entity
from nakhon.broker.query import (
    match_q,
    match_scope,
    match_types,
    parse_q,
    parse_scope_q,
    parse_type_selection,
    sqlite_regexp,
)

X = "https://example.org/"


def expand(name: str) -> str:
    return X + name


def entity(**attrs: Any) -> Entity:
    return Entity(
        "urn:e", [X + "T"], {X + k: v if isinstance(v, list) else [v] for k, v in attrs.items()}
    )


def p(value: Any, **meta: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **meta}


def q(text: str, e: Entity) -> bool:
    return match_q(parse_q(text, expand), e)


CAR = entity(
    speed=p(55, observedAt="2017-12-24T12:30:00Z", unitCode="KMH"),
    brandName=p("Mercedes"),
    colors=p(["blue", "red", "green"]),
    isParked={"type": "Relationship", "object": "urn:ngsi-ld:OffStreetParking:Downtown1"},
    address=p({"city": "Berlin", "street": "Ulrich Strasse"}),
    label={"type": "LanguageProperty", "languageMap": {"fr": "rouge", "en": "red", "th": "แดง"}},
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("speed", True),
        ("rpm", False),
        ("!rpm", True),
        ("!speed", False),
        ('speed>50;brandName!="Mercedes"', False),
        ('speed>50;brandName=="Mercedes"', True),
        ('(speed>60|brandName=="Mercedes");speed<=55', True),
        ("speed==50..60", True),
        ("speed!=50..60", False),
        ('speed=="55"', False),  # a string never equals a number
        ('speed!="55"', True),  # ... so they are unequal
        ('speed>"1"', False),  # ordering across types is simply false
        ("speed.observedAt>=2017-12-24T12:00:00Z", True),
        ("speed.observedAt<2017-12-24T19:00:00+07:00", False),  # offsets become UTC
        ('speed.unitCode=="KMH"', True),
        ('isParked=="urn:ngsi-ld:OffStreetParking:Downtown1"', True),
        ("isParked==urn:ngsi-ld:OffStreetParking:Downtown1", True),
        ('isParked~="Downtown"', False),  # relationships: only == and !=
        ('colors=="red"', True),
        ('colors=="black","red"', True),
        ('colors!="red"', False),
        ('colors!="black","white"', True),
        ('address[city]=="Berlin"', True),
        ('address[city]!="Berlin"', False),
        ("address[zip]", False),
        ("!address[zip]", True),
        ("address[city.x]", False),
        ('label=="red"', True),
        ('label[en]=="red"', True),
        ('label[fr]=="red"', False),
        ('label[*]=="แดง"', True),
        ('label!="red"', False),
        ('label[th]~="^แ"', True),
        ('brandName~="^Merc"', True),
        ('brandName!~="^Merc"', False),
        ('brandName!~="^Volvo"', True),
        ('speed~="5"', False),  # patterns need a string
        ('speed!~="5"', False),
    ],
)
def test_car(text: str, expected: bool) -> None:
    assert q(text, CAR) is expected


def test_any_instance_matches() -> None:
    e = entity(temperature=[p(10, datasetId="urn:a"), p(30, datasetId="urn:b")])
    assert q("temperature>20", e)
    assert q("temperature<20", e)
    assert q("temperature!=10", e)  # the second instance differs
    assert not q("temperature==20", e)
    assert q('temperature.datasetId=="urn:b"', e)


def test_sub_attributes_and_compound_values() -> None:
    e = entity(sensor=p(40) | {X + "rawdata": p({"airquality": {"particulate": 40, "PM20": 85}})})
    assert q("sensor.rawdata[airquality.particulate]==40", e)
    assert q("sensor.rawdata[airquality.PM20]>80", e)
    assert not q("sensor.rawdata[airquality.PM10]", e)
    assert q("sensor.rawdata", e)
    assert not q("sensor.other", e)


def test_other_attribute_types() -> None:
    e = entity(
        gender={"type": "VocabProperty", "vocab": X + "Male"},
        readings={"type": "ListProperty", "valueList": [1, 2, 3]},
        members={"type": "ListRelationship", "objectList": [{"object": "urn:p:1"}]},
        tickets={"type": "JsonProperty", "json": {"value": "Overstay 60 minutes"}},
        flag=p(False),
    )
    assert q("gender==Male", e) and q('gender=="Male"', e) and not q("gender==Female", e)
    assert q("readings==2", e) and q("readings>2", e) and not q("readings>3", e)
    assert q("members==urn:p:1", e) and not q("members!=urn:p:1", e)
    assert q('tickets[value]=="Overstay 60 minutes"', e)
    assert q("flag==false", e) and not q("flag==true", e) and not q("flag==0", e)


def test_thai_text() -> None:
    e = Entity("urn:e", [X + "T"], {X + "ชื่อ": [p('ถนน "สีลม"')]})
    assert q('ชื่อ=="ถนน \\"สีลม\\""', e)
    assert q('ชื่อ~="สีลม"', e)
    assert q('ชื่อ>"ก"', e)


def test_types() -> None:
    types = [X + "Home", X + "Vehicle"]
    assert match_types(parse_type_selection("(Home;Vehicle)|Motorhome", expand), types)
    assert match_types(parse_type_selection("Building,Home", expand), types)
    assert not match_types(parse_type_selection("(Home;Building)", expand), types)
    assert not match_types(parse_type_selection("Motorhome", expand), types)


@pytest.mark.parametrize(
    ("query", "scopes", "expected"),
    [
        ("/Madrid", ["/Madrid"], True),
        ("/Madrid", ["/Madrid/Gardens"], False),
        ("/Madrid/Gardens/#", ["/Madrid/Gardens"], True),
        ("/Madrid/Gardens/#", ["/Madrid/Gardens/ParqueNorte/Parterre1"], True),
        ("/Madrid/Gardens/#", ["/Madrid/GardensX"], False),
        ("/Madrid/+/ParqueNorte", ["/Madrid/Sights/ParqueNorte"], True),
        ("/Madrid/+/ParqueNorte", ["/Madrid/a/b/ParqueNorte"], False),
        ("(/Madrid/Districts;/CompanyA)", ["/Madrid/Districts", "/CompanyA"], True),
        ("(/Madrid/Districts;/CompanyA)", ["/Madrid/Districts"], False),
        ("(/Madrid/Districts;/CompanyA),/CompanyB", ["/CompanyB"], True),
        ("/#", ["/x"], True),
        ("/#", [], False),
        ("/#", None, False),
        ("/Madrid", ["Madrid"], True),  # the leading slash is optional in a Scope
        ("/a.b", ["/aXb"], False),  # levels are literal, not patterns
    ],
)
def test_scopes(query: str, scopes: list[str] | None, expected: bool) -> None:
    assert match_scope(parse_scope_q(query), scopes) is expected


def test_sqlite_regexp() -> None:
    assert sqlite_regexp("^a", "abc")
    assert not sqlite_regexp("^a", 5)
    assert not sqlite_regexp("(", "(")  # invalid pattern: no match, no error

"""Payload parsers and topics: JSON, UltraLight 2.0 (with property tests), conversion."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nakhon.iot.convert import compile_target
from nakhon.iot.model import AttrMapping, Device
from nakhon.iot.mqtt import parse_topic, parse_url
from nakhon.iot.payloads import PayloadError, parse_json, parse_timestamp, parse_ul


def test_ul_pairs_groups_and_timestamps() -> None:
    [m] = parse_ul("t|25.3|h|40")
    assert m.values == {"t": "25.3", "h": "40"} and m.observed_at is None
    a, b = parse_ul("2024-01-01T07:00:00+07:00|t|1#t|2#")
    assert a.observed_at == "2024-01-01T00:00:00.000Z" and a.values == {"t": "1"}
    assert b.values == {"t": "2"}
    [c] = parse_ul("t|5|TimeInstant|2024-02-02T00:00:00Z")
    assert c.observed_at == "2024-02-02T00:00:00.000Z" and c.values == {"t": "5"}


@pytest.mark.parametrize("bad", ["", "#", "t", "|5", "notatime|t|1", b"\xff|1"])
def test_ul_rejects(bad: str | bytes) -> None:
    with pytest.raises(PayloadError):
        parse_ul(bad)


def test_json_object_array_and_rejects() -> None:
    [m] = parse_json(b'{"t": 1, "TimeInstant": 1700000000000}')
    assert m.values == {"t": 1} and m.observed_at == "2023-11-14T22:13:20.000Z"
    assert len(parse_json(b'[{"a": 1}, {"b": 2}]')) == 2
    for bad in (b"", b"[]", b"3", b'"x"', b"[1]", b'{"TimeInstant": "2024-01-01T00:00:00Z"}',
                b'{"a": 1, "TimeInstant": "yesterday"}'):
        with pytest.raises(PayloadError):
            parse_json(bad)


def test_timestamps() -> None:
    assert parse_timestamp("2024-01-01T00:00:00") == "2024-01-01T00:00:00.000Z"
    assert parse_timestamp(1704067200) == "2024-01-01T00:00:00.000Z"
    for bad in (True, "", "x", 10**30, None):
        with pytest.raises(PayloadError):
            parse_timestamp(bad)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200),
                 st.lists(st.sampled_from(["|", "#", "t", "25.3", "", " ", "2024-01-01T00:00:00Z",
                                           "TimeInstant", "\x00", "é"]), max_size=30)
                 .map("".join)))
def test_ul_parser_raises_only_payload_errors(payload: str | bytes) -> None:
    try:
        measures = parse_ul(payload)
    except PayloadError:
        return
    assert measures and all(m.values for m in measures)
    for m in measures:
        assert all(isinstance(k, str) and k for k in m.values)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda s: "|" not in s
                                                             and "#" not in s
                                                             and s.strip() == s
                                                             and s != "TimeInstant"),
                       st.text(max_size=8).filter(lambda s: "|" not in s and "#" not in s
                                                  and s.strip() == s),
                       min_size=1, max_size=6))
def test_ul_round_trip(values: dict[str, str]) -> None:
    text = "|".join(f"{k}|{v}" for k, v in values.items())
    [m] = parse_ul(text)
    assert m.values == values


def test_topics() -> None:
    assert parse_topic("/k1/dev/attrs") is not None
    p = parse_topic("/json/k1/dev/attrs/t")
    assert p is not None and (p.apikey, p.device_id, p.fmt, p.attr) == ("k1", "dev", "json", "t")
    p = parse_topic("/ul/k1/dev/attrs")
    assert p is not None and p.fmt == "ul" and p.attr is None
    p = parse_topic("/k1/dev/attrs/h")
    assert p is not None and (p.fmt, p.attr) == ("auto", "h")
    for bad in ("k1/dev/attrs", "/k1/dev/cmd", "//dev/attrs", "/x/k/d/e/attrs"):
        assert parse_topic(bad) is None
    assert parse_url("mqtt://u:p%40@h:1884").password == "p@"
    with pytest.raises(ValueError):
        parse_url("http://h")


def test_conversion_casts_by_type() -> None:
    device = Device("d", "k", "urn:x:d", "Thing", attributes=[
        AttrMapping("b", "on", "Boolean"), AttrMapping("g", "location", "geo:point"),
        AttrMapping("r", "refRoad", "Relationship"), AttrMapping("i", "n", "Integer")])
    target = compile_target(device, None)
    [m] = parse_ul("b|true|g|13.7, 100.5|r|urn:ngsi-ld:Road:1|i|7")
    attrs = target.to_attrs(m, "2024-01-01T00:00:00.000Z", text=True)
    values = {k.rsplit("/", 1)[-1]: v[0] for k, v in attrs.items()}
    assert values["on"]["value"] is True
    assert values["location"] == {"type": "GeoProperty", "observedAt": "2024-01-01T00:00:00.000Z",
                                  "value": {"type": "Point", "coordinates": [100.5, 13.7]}}
    assert values["refRoad"]["object"] == "urn:ngsi-ld:Road:1"
    assert values["n"]["value"] == 7
    for bad in ("b|maybe", "g|north", "r|road", "i|7.5"):
        [m] = parse_ul(bad)
        with pytest.raises(PayloadError):
            target.to_attrs(m, "2024-01-01T00:00:00.000Z", text=True)

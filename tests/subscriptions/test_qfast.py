"""The prepared q of subscriptions (nakhon.subscriptions.qfast) means what match_q means."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from nakhon.broker.model import Entity
from nakhon.broker.query import match_q, parse_q
from nakhon.subscriptions.qfast import prepare_q

QUERIES = [
    "a>3", "a>=3;b<2", "a==1,2,\"x\"", "a==1..5", "a!=1..5", "a!=2", "a", "!a", "a|b",
    "(a>1|b==\"x\");!c", "a~=\"^x\"", "a!~=\"^x\"", "r==\"urn:x:1\"", "r!=\"urn:x:1\"", "r>1",
    "a.observedAt>=\"2026-01-01T00:00:00Z\"", "a.s>1", "l[en]==\"hi\"", "l==\"hi\"",
    "j[k]==1", "a==true", "a!=false", "v==\"x\"", "a<\"m\"", "a[k]>0",
]
_scalar = st.one_of(st.integers(-5, 8), st.floats(-5, 8, allow_nan=False), st.booleans(),
                    st.sampled_from(["x", "xy", "a", "m", "hi", "urn:x:1"]))
_value = st.one_of(_scalar, st.lists(_scalar, max_size=3),
                   st.dictionaries(st.sampled_from(["k", "en"]), _scalar, max_size=2))


@st.composite
def _instance(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Property", "Relationship", "LanguageProperty", "JsonProperty",
                                 "ListProperty", "VocabProperty"]))
    member = {"Property": "value", "Relationship": "object", "LanguageProperty": "languageMap",
              "JsonProperty": "json", "ListProperty": "valueList", "VocabProperty": "vocab"}[kind]
    inst: dict[str, Any] = {"type": kind, member: draw(_value)}
    if draw(st.booleans()):
        inst["observedAt"] = draw(st.sampled_from(["2025-12-31T00:00:00Z",
                                                   "2026-02-01T00:00:00Z"]))
    if draw(st.booleans()):
        inst["s"] = {"type": "Property", "value": draw(_scalar)}
    return inst


_attrs = st.dictionaries(st.sampled_from(["a", "b", "c", "r", "l", "j", "v"]),
                         st.lists(_instance(), min_size=1, max_size=2), max_size=5)


@settings(max_examples=300, deadline=None)
@given(q=st.sampled_from(QUERIES), attrs=_attrs)
def test_prepared_q_agrees_with_match_q(q: str, attrs: dict[str, Any]) -> None:
    expr = parse_q(q, lambda name: name)
    entity = Entity("urn:e:1", ["T"], attrs)
    assert prepare_q(expr)(entity) == match_q(expr, entity)

"""Parsing and printing of q, type selections and scopeQ (clauses 4.9, 4.17, 4.19)."""

from __future__ import annotations

import contextlib
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nakhon.broker.query import (
    And,
    Or,
    Path,
    QLiteral,
    ScopePattern,
    Term,
    parse_q,
    parse_scope_q,
    parse_type_selection,
    unparse_q,
    unparse_scope_q,
    unparse_types,
)
from nakhon.broker.query.nodes import Node
from nakhon.broker.query.q import Op
from nakhon.core.errors import BadRequestData

X = "https://example.org/"
L = TypeVar("L")


def expand(name: str) -> str:
    return X + name


def compact(iri: str) -> str:
    return iri[len(X) :]


def test_comparisons_and_precedence() -> None:
    expr = parse_q('speed>50;brandName!="Mercedes"|rpm<=3000', expand)
    assert expr == Or(
        (
            And(
                (
                    Term(Path(X + "speed"), ">", (QLiteral(50, "number"),)),
                    Term(
                        Path(X + "brandName"),
                        "!=",
                        (QLiteral("Mercedes", "string"),),
                        vocab_values=(X + "Mercedes",),
                    ),
                )
            ),
            Term(Path(X + "rpm"), "<=", (QLiteral(3000, "number"),)),
        )
    )


def test_paths() -> None:
    term = parse_q("sensor.rawdata[airquality.particulate]==40", expand)
    assert isinstance(term, Term)
    assert term.path == Path(X + "sensor", (X + "rawdata",), None, ("airquality", "particulate"))
    term = parse_q("temperature.observedAt>=2017-12-24T12:00:00Z", expand)
    assert isinstance(term, Term)
    assert term.path == Path(X + "temperature", (), "observedAt")
    assert term.values == (QLiteral("2017-12-24T12:00:00Z", "datetime"),)
    assert parse_q("name[*]", expand) == Term(Path(X + "name", trail=("*",)))
    assert parse_q("!isMonitoredBy", expand) == Term(Path(X + "isMonitoredBy"), negated=True)


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("a==1", (QLiteral(1, "number"),)),
        ("a==-1.5e3", (QLiteral(-1500.0, "number"),)),
        ('a=="อุณหภูมิ \\"สูง\\""', (QLiteral('อุณหภูมิ "สูง"', "string"),)),
        ("a==true", (QLiteral(True, "bool"),)),
        ("a==2024-01-01", (QLiteral("2024-01-01", "date"),)),
        ("a==12:30:00Z", (QLiteral("12:30:00Z", "time"),)),
        ("a==urn:ngsi-ld:Park:1", (QLiteral("urn:ngsi-ld:Park:1", "uri"),)),
        (
            'a==1,"x",false',
            (QLiteral(1, "number"), QLiteral("x", "string"), QLiteral(False, "bool")),
        ),
        ("a == 1 , 2", (QLiteral(1, "number"), QLiteral(2, "number"))),
    ],
)
def test_literals(text: str, values: tuple[QLiteral, ...]) -> None:
    term = parse_q(text, expand)
    assert isinstance(term, Term) and term.values == values


def test_datetime_with_offset_is_utc() -> None:
    term = parse_q("a.observedAt>2024-03-01T17:00:00.5+07:00", expand)
    assert isinstance(term, Term)
    assert term.values[0].value == "2024-03-01T10:00:00.5Z"


def test_range_and_patterns() -> None:
    term = parse_q("temperature==10..20", expand)
    assert isinstance(term, Term)
    assert term.range == (QLiteral(10, "number"), QLiteral(20, "number"))
    term = parse_q("a!=2024-01-01..2024-12-31", expand)
    assert isinstance(term, Term) and term.range is not None
    term = parse_q('brandName~="^Me.*(z|s)$"', expand)
    assert isinstance(term, Term) and term.pattern == "^Me.*(z|s)$"
    term = parse_q("brandName!~=^Me(a|b);x", expand)
    assert isinstance(term, And)
    first = term.items[0]
    assert isinstance(first, Term) and first.pattern == "^Me(a|b)" and first.op == "!~="


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a==",
        "a===1",
        "(a==1",
        "a==1)",
        "a==1;",
        "|a",
        "a>true",
        "a>urn:x",
        'a=="x',
        'a~="("',
        "a==1..true",
        'a==1.."x"',
        "!a==1",
        "a[b",
        "a{b}==1",
        "1a==2",
        "a..b",
        "a==1e999",
        'a=="\\x"',
        "(" * 40 + "a" + ")" * 40,
        "a;;b",
        "a b",
    ],
)
def test_q_errors_are_bad_request(text: str) -> None:
    with pytest.raises(BadRequestData) as info:
        parse_q(text, expand)
    assert info.value.detail


def test_error_says_where() -> None:
    with pytest.raises(BadRequestData, match="character 5"):
        parse_q("a==1)", expand)


def test_type_selection() -> None:
    assert parse_type_selection("Building", expand) == X + "Building"
    assert parse_type_selection("Building,House", expand) == Or((X + "Building", X + "House"))
    assert parse_type_selection("(Home;Vehicle)|Motorhome", expand) == Or(
        (And((X + "Home", X + "Vehicle")), X + "Motorhome")
    )
    assert parse_type_selection("A;B", expand) == And((X + "A", X + "B"))
    for bad in ("", "A,", "(A;B", "A;;B", ")"):
        with pytest.raises(BadRequestData):
            parse_type_selection(bad, expand)


def test_scope_q() -> None:
    assert parse_scope_q("/Madrid") == ScopePattern(("Madrid",))
    assert parse_scope_q("/Madrid/Gardens/#") == ScopePattern(("Madrid", "Gardens"), True)
    assert parse_scope_q("/#") == ScopePattern((), True)
    assert parse_scope_q("(/Madrid/Districts;/CompanyA),/CompanyB") == Or(
        (
            And((ScopePattern(("Madrid", "Districts")), ScopePattern(("CompanyA",)))),
            ScopePattern(("CompanyB",)),
        )
    )
    assert parse_scope_q("/Madrid/+/ParqueNorte") == ScopePattern(("Madrid", "+", "ParqueNorte"))
    assert parse_scope_q("/กรุงเทพ/บางรัก") == ScopePattern(("กรุงเทพ", "บางรัก"))
    for bad in ("", "/", "/a//b", "/a/#/b", "(/a", "/a;"):
        with pytest.raises(BadRequestData):
            parse_scope_q(bad)


# -- round trips: parse → unparse → parse ------------------------------------------------
NAMES = st.sampled_from(["a", "temperature", "อุณหภูมิ", "ns:b", "x_1"])
STRINGS = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
LITS = st.one_of(
    st.integers(-(10**20), 10**20).map(lambda n: QLiteral(n, "number")),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: QLiteral(f, "number")),
    STRINGS.map(lambda s: QLiteral(s, "string")),
    st.booleans().map(lambda b: QLiteral(b, "bool")),
    st.sampled_from(
        [
            QLiteral("2024-01-01", "date"),
            QLiteral("10:00:00Z", "time"),
            QLiteral("2024-01-01T10:00:00.25Z", "datetime"),
            QLiteral("urn:ngsi-ld:X:1", "uri"),
        ]
    ),
)


PATTERN_OPS: list[Op] = ["~=", "!~="]
ORDER_OPS: list[Op] = [">", ">=", "<", "<="]
EQ_OPS: list[Op] = ["==", "!="]


@st.composite
def terms(draw: st.DrawFn) -> Term:
    names = draw(st.lists(NAMES, min_size=1, max_size=3))
    member = draw(st.sampled_from([None, "observedAt", "unitCode", "datasetId"]))
    if member and len(names) == 0:
        member = None
    trail = draw(
        st.one_of(st.none(), st.just(("*",)), st.lists(NAMES, min_size=1, max_size=2).map(tuple))
    )
    path = Path(X + names[0], tuple(X + n for n in names[1:]), member, trail)
    kind = draw(st.sampled_from(["exists", "not", "eq", "order", "range", "pattern"]))
    if kind in ("exists", "not"):
        return Term(path, negated=kind == "not")
    if kind == "pattern":
        pattern = draw(st.sampled_from(["^a", "b|c", "(x)", "ก+", '"q"', "a\\.b"]))
        return Term(path, draw(st.sampled_from(PATTERN_OPS)), pattern=pattern)
    if kind == "order":
        lit = draw(LITS.filter(lambda v: v.kind not in ("bool", "uri")))
        return Term(path, draw(st.sampled_from(ORDER_OPS)), (lit,))
    op = draw(st.sampled_from(EQ_OPS))
    if kind == "range":
        low, high = draw(
            st.sampled_from(
                [
                    (QLiteral(1, "number"), QLiteral(2.5, "number")),
                    (QLiteral("a", "string"), QLiteral("b", "string")),
                    (QLiteral("2024-01-01", "date"), QLiteral("2024-12-31", "date")),
                ]
            )
        )
        return Term(path, op, range=(low, high))
    values = tuple(draw(st.lists(LITS, min_size=1, max_size=3)))
    vocab = tuple(X + str(v.value) for v in values if v.kind in ("string", "uri"))
    return Term(path, op, values, vocab_values=vocab)


def trees(leaves: st.SearchStrategy[L]) -> st.SearchStrategy[Node[L]]:
    return st.recursive(
        leaves,
        lambda kids: st.one_of(
            st.lists(kids, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
            st.lists(kids, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        ),
        max_leaves=6,
    )


def normal(node: Node[L]) -> Node[L]:
    """What the parser builds: no And directly inside And, no Or inside Or."""
    if isinstance(node, And | Or):
        kind = type(node)
        items: list[Node[L]] = []
        for child in (normal(c) for c in node.items):
            items.extend(child.items if isinstance(child, kind) else [child])
        return kind(tuple(items))
    return node


@settings(max_examples=400, deadline=None)
@given(trees(terms()))
def test_q_round_trip(expr: Node[Term]) -> None:
    text = unparse_q(expr, compact)
    assert parse_q(text, expand) == normal(expr)
    assert unparse_q(parse_q(text, expand), compact) == unparse_q(normal(expr), compact)


@settings(max_examples=200, deadline=None)
@given(trees(st.sampled_from(["Building", "House", "อาคาร", "ns:Car", "Car"]).map(expand)))
def test_type_round_trip(expr: Node[str]) -> None:
    text = unparse_types(expr, compact)
    assert parse_type_selection(text, expand) == normal(expr)


LEVELS = st.lists(st.sampled_from(["a", "B", "+", "กทม", "x_1"]), min_size=1, max_size=3)


@settings(max_examples=200, deadline=None)
@given(trees(st.builds(lambda lv, sub: ScopePattern(tuple(lv), sub), LEVELS, st.booleans())))
def test_scope_round_trip(expr: Node[ScopePattern]) -> None:
    assert parse_scope_q(unparse_scope_q(expr)) == normal(expr)


@given(st.text(max_size=30))
def test_parsers_never_crash(text: str) -> None:
    for parse in (
        lambda t: parse_q(t, expand),
        lambda t: parse_type_selection(t, expand),
        parse_scope_q,
    ):
        with contextlib.suppress(BadRequestData):  # a clear error is fine, a crash is not
            parse(text)

"""Properties of the SQL compilers: bound parameters only, and SQL == Python on random data."""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nakhon.broker.model import Entity
from nakhon.broker.query import (
    Dialect,
    compile_q,
    compile_scope,
    compile_types,
    match_q,
    match_scope,
    match_types,
    parse_q,
    parse_scope_q,
    parse_type_selection,
    sqlite_regexp,
)
from nakhon.storage.rows import query_values

X = "https://example.org/"


def expand(name: str) -> str:
    return X + name


def ent(n: int, **attrs: list[dict[str, Any]]) -> Entity:
    return Entity(f"urn:e:{n}", [X + "T"], {X + k: v for k, v in attrs.items()})


def sqlite_ids(entities: list[Entity], sql: str, params: list[Any]) -> set[str]:
    conn = sqlite3.connect(":memory:")
    try:
        conn.create_function("regexp", 2, sqlite_regexp, deterministic=True)
        conn.execute("CREATE TABLE entities (id TEXT, types TEXT, scopes TEXT, doc TEXT, qv TEXT)")
        conn.executemany(
            "INSERT INTO entities VALUES (?, ?, ?, ?, ?)",
            [
                (
                    e.id,
                    json.dumps(e.types),
                    None if e.scope is None else json.dumps(e.scope, ensure_ascii=n % 2 == 0),
                    json.dumps(e.doc(), ensure_ascii=n % 2 == 0),
                    query_values(e),
                )
                for n, e in enumerate(entities)
            ],
        )
        rows = conn.execute(f"SELECT e.id FROM entities AS e WHERE {sql}", params)
        return {r[0] for r in rows}
    finally:
        conn.close()


def test_placeholders_are_numbered_after_existing_params() -> None:
    q = parse_q('temperature>20;name=="x"', expand)
    types = parse_type_selection("A,(B;C)", expand)
    scopes = parse_scope_q("/a/#|/b/+")
    for which in ("q", "types", "scope"):
        params: list[Any] = ["already", "there"]
        if which == "q":
            sql = compile_q(q, "postgres", params)
        elif which == "types":
            sql = compile_types(types, "postgres", params)
        else:
            sql = compile_scope(scopes, "postgres", params)
        used = {int(n) for n in re.findall(r"\$(\d+)", sql)}
        assert params[:2] == ["already", "there"]
        assert used == set(range(3, len(params) + 1))
    for text in ('temperature>20;name=="x"', "a[b.c]!=1,2|!d"):
        lite_params: list[Any] = [1]
        lite_sql = compile_q(parse_q(text, expand), "sqlite", lite_params)
        assert lite_sql.count("?") == len(lite_params) - 1


def test_user_text_never_reaches_sql() -> None:
    nasty = "x'); DROP TABLE entities; --"
    dialects: tuple[Dialect, ...] = ("sqlite", "postgres")
    for dialect in dialects:
        params: list[Any] = []
        sql = compile_q(parse_q(f"brandName=={json.dumps(nasty)}", expand), dialect, params)
        assert "DROP" not in sql and nasty in params
        sql = compile_types(parse_type_selection("Room'--", expand), dialect, params)
        assert "'--" not in sql


# -- random entities: SQL == Python -------------------------------------------------------
NAMES = ["a", "b", "ไทย"]
SCALARS = st.one_of(
    st.integers(-5, 5),
    st.sampled_from([0.5, -1.5, 2.0]),
    st.booleans(),
    st.sampled_from(["x", "y", "ก", "X", "", "2024-01-01", 'a"b']),
    st.none(),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.sampled_from(NAMES), SCALARS, max_size=2),
)


@st.composite
def instances(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            [
                "Property",
                "Relationship",
                "LanguageProperty",
                "ListProperty",
                "VocabProperty",
                "JsonProperty",
            ]
        )
    )
    inst: dict[str, Any]
    if kind == "Relationship":
        inst = {"type": kind, "object": draw(st.sampled_from(["urn:x", "urn:y"]))}
    elif kind == "LanguageProperty":
        inst = {
            "type": kind,
            "languageMap": draw(
                st.dictionaries(
                    st.sampled_from(["en", "th"]), st.sampled_from(["x", "ก", "y"]), min_size=1
                )
            ),
        }
    elif kind == "ListProperty":
        inst = {"type": kind, "valueList": draw(st.lists(SCALARS, max_size=3))}
    elif kind == "VocabProperty":
        inst = {"type": kind, "vocab": X + draw(st.sampled_from(["x", "y"]))}
    elif kind == "JsonProperty":
        inst = {"type": kind, "json": draw(VALUES)}
    else:
        inst = {"type": kind, "value": draw(VALUES)}
    if draw(st.booleans()):
        inst["observedAt"] = draw(st.sampled_from(["2024-01-01T00:00:00Z", "2025-06-01T12:00:00Z"]))
    if draw(st.booleans()):
        inst[X + "b"] = {"type": "Property", "value": draw(SCALARS)}
    return inst


@st.composite
def entities(draw: st.DrawFn) -> list[Entity]:
    out = []
    for n in range(draw(st.integers(1, 6))):
        attrs = draw(
            st.dictionaries(
                st.sampled_from(NAMES), st.lists(instances(), min_size=1, max_size=2), max_size=3
            )
        )
        out.append(ent(n, **attrs))
    return out


LITERALS = st.sampled_from(
    [
        "1",
        "0.5",
        "-5",
        "true",
        "false",
        '"x"',
        '"ก"',
        '"a\\"b"',
        "2024-01-01",
        "2024-06-01T00:00:00Z",
        "urn:x",
        "x",
        "y",
    ]
)


@st.composite
def q_texts(draw: st.DrawFn) -> str:
    def term() -> str:
        path = draw(st.sampled_from(NAMES))
        path += draw(st.sampled_from(["", ".b", ".observedAt", "[a]", "[ไทย]", "[en]", "[*]"]))
        op = draw(st.sampled_from(["", "!", "==", "!=", ">", "<=", "~=", "!~=", "range"]))
        if op == "":
            return path
        if op == "!":
            return "!" + path
        if op in ("~=", "!~="):
            return path + op + draw(st.sampled_from(['"^x"', '"ก"', '"^$"', "y"]))
        if op == "range":
            return path + draw(st.sampled_from(["==-1..1", "!=0..10", '=="a".."y"']))
        value = draw(LITERALS)
        if op in (">", "<="):
            value = draw(st.sampled_from(["1", "0.5", '"x"', "2024-01-01"]))
        elif draw(st.booleans()):
            value += "," + draw(LITERALS)
        return path + op + value

    parts = [term() for _ in range(draw(st.integers(1, 3)))]
    text = parts[0]
    for part in parts[1:]:
        text = f"({text}){draw(st.sampled_from([';', '|']))}{part}"
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entities(), q_texts())
def test_random_entities_sqlite_equals_python(batch: list[Entity], text: str) -> None:
    expr = parse_q(text, expand)
    params: list[Any] = []
    sql = compile_q(expr, "sqlite", params)
    expected = {e.id for e in batch if match_q(expr, e)}
    assert sqlite_ids(batch, sql, params) == expected
    # The scalar projection fast path (the SQLite engine's) must agree too.
    params = []
    sql = compile_q(expr, "sqlite", params, fast_column="e.qv")
    assert sqlite_ids(batch, sql, params) == expected


TYPE_NAMES = ["A", "B", "C"]


@st.composite
def selections(draw: st.DrawFn, leaves: list[str], ors: list[str]) -> str:
    def go(depth: int) -> str:
        if depth == 0 or draw(st.booleans()):
            return draw(st.sampled_from(leaves))
        parts = [go(depth - 1) for _ in range(draw(st.integers(2, 3)))]
        return "(" + draw(st.sampled_from([";", *ors])).join(parts) + ")"

    return go(3)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(TYPE_NAMES), min_size=1, max_size=3), min_size=1),
    selections(TYPE_NAMES, ["|", ","]),
)
def test_random_types_sqlite_equals_python(type_lists: list[list[str]], text: str) -> None:
    batch = [Entity(f"urn:e:{n}", [X + t for t in ts]) for n, ts in enumerate(type_lists)]
    expr = parse_type_selection(text, expand)
    params: list[Any] = []
    sql = compile_types(expr, "sqlite", params)
    assert sqlite_ids(batch, sql, params) == {e.id for e in batch if match_types(expr, e.types)}


SCOPE_LEAVES = ["/a", "/a/#", "/a/+", "/+/b", "/#", "/b/c/#", "a/b", "/ก/+"]
SCOPES = st.sampled_from(["/a", "/a/b", "/a/b/c", "b/c", "/b", "/ก/x", "/ab", ""])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.lists(SCOPES, max_size=3)), min_size=1),
    selections(SCOPE_LEAVES, ["|", ","]),
)
def test_random_scopes_sqlite_equals_python(scopes: list[list[str] | None], text: str) -> None:
    batch = [Entity(f"urn:e:{n}", [X + "T"], scope=s) for n, s in enumerate(scopes)]
    expr = parse_scope_q(text)
    params: list[Any] = []
    sql = compile_scope(expr, "sqlite", params)
    assert sqlite_ids(batch, sql, params) == {e.id for e in batch if match_scope(expr, e.scope)}

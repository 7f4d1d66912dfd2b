"""compile_* on real SQLite and PostgreSQL select exactly what match_* selects."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest

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

X = "https://example.org/"
PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def expand(name: str) -> str:
    # "weird" stands for an IRI with a quote and a backslash, which no q name can spell
    if name == "weird":
        return X + 'we"ird\\'
    return name if "://" in name else X + name


def prop(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **extra}


def ent(n: int, types: list[str], scope: list[str] | None = None, **attrs: Any) -> Entity:
    return Entity(
        f"urn:ngsi-ld:T:{n:02d}",
        [X + t for t in types],
        {X + k: v if isinstance(v, list) else [v] for k, v in attrs.items()},
        scope,
        created_at=f"2024-01-{n % 28 + 1:02d}T00:00:00Z",
        modified_at=f"2024-02-{n % 28 + 1:02d}T00:00:00Z",
    )


SUB = X + "accuracy"
LANG = "LanguageProperty"
# fmt: off
ENTITIES = [
    ent(1, ["Room"], ["/Bangkok"], temperature=prop(20, observedAt="2024-03-01T10:00:00Z")),
    ent(2, ["Room"], ["/Bangkok/Bangrak"], temperature=prop(25.5, unitCode="CEL")),
    ent(3, ["Room", "Office"], ["/ChiangMai"], temperature=prop(-3)),
    ent(4, ["Office"], None, temperature=prop("20")),
    ent(5, ["Vehicle"], ["/Bangkok/Pathumwan/Siam"], speed=prop(80), brandName=prop("Mercedes")),
    ent(6, ["Vehicle"], ["/Bangkok", "/Phuket"], speed=prop(40), brandName=prop("Toyota")),
    ent(7, ["Vehicle", "Taxi"], ["Bangkok/Bangrak"], speed=prop(True), brandName=prop("โตโยต้า")),
    ent(8, ["Taxi"], [], brandName=prop(["Tata", "Mahindra"]), speed=prop([10, 90])),
    ent(9, ["Building"], ["/Phuket/Patong"],
        address=prop({"city": "Berlin", "street": "Ulrich Strasse", "zip": 10115})),
    ent(10, ["Building"], None, address=prop({"city": "เชียงใหม่", "ชั้น": {"ห้อง": 5}})),
    ent(11, ["Building"], None, address=prop("Berlin")),
    ent(12, ["Car"], None, isParked={"type": "Relationship", "object": "urn:ngsi-ld:Park:1"}),
    ent(13, ["Car"], None, isParked={"type": "Relationship",
                                     "object": ["urn:ngsi-ld:Park:1", "urn:ngsi-ld:Park:2"]}),
    ent(14, ["Car"], None, isParked={"type": "Relationship", "object": "urn:ngsi-ld:Park:3",
                                     "observedAt": "2023-12-31T23:59:59Z"}),
    ent(15, ["Street"], None, name={"type": LANG, "languageMap": {"en": "Silom Road",
                                                                  "th": "ถนนสีลม"}}),
    ent(16, ["Street"], None, name={"type": LANG, "languageMap": {"en": ["red", "cat"],
                                                                  "fr": ["rouge", "chat"]}}),
    ent(17, ["Street"], None, name=prop("Silom Road")),
    ent(18, ["Person"], None, gender={"type": "VocabProperty", "vocab": X + "Male"}),
    ent(19, ["Person"], None, gender={"type": "VocabProperty", "vocab": [X + "Female", X + "X"]}),
    ent(20, ["Series"], None, readings={"type": "ListProperty", "valueList": [1, 2, 3]}),
    ent(21, ["Series"], None, readings={"type": "ListProperty", "valueList": ["a", "b"]}),
    ent(22, ["Team"], None, members={"type": "ListRelationship",
                                    "objectList": [{"object": "urn:p:1"}, {"object": "urn:p:2"}]}),
    ent(23, ["Ticket"], None, parkingTickets={"type": "JsonProperty",
                                              "json": {"id": "85a6", "value": "Overstay 60"}}),
    ent(24, ["Sensor"], None, sensor=prop(40) | {
        X + "rawdata": prop({"airquality": {"particulate": 40, "PM20": 85}})}),
    ent(25, ["Sensor"], None, temperature=[prop(10, datasetId="urn:ds:a"),
                                           prop(30, datasetId="urn:ds:b")]),
    ent(26, ["Sensor"], None, temperature=prop(15) | {SUB: prop(0.5)}),
    ent(27, ["Sensor"], None, temperature=prop(None), flag=prop(False)),
    ent(28, ["Thing"], ["/a/b/c"], **{'we"ird\\': prop('q"uo\\te'), "อุณหภูมิ": prop(31.5)}),
    ent(29, ["Thing"], ["/a/x/c", "/z"], date=prop("2024-05-01"), time=prop("12:30:00Z"),
        big=prop(1e20), tiny=prop(0.1)),
    ent(30, ["Thing"], None, temperature=prop(21, observedAt="2024-03-02T10:00:00Z"),
        flag=prop(True), pattern=prop("abc|def")),
    ent(31, [X + "Full/Type"], None, empty=prop({}), nested=prop([[1, 2], {"a": 1}])),
]

Q_QUERIES = [
    "temperature", "!temperature", "temperature==20", "temperature==20.0", "temperature!=20",
    'temperature=="20"', 'temperature!="20"', "temperature>20", "temperature>=20",
    "temperature<20", "temperature<=-3", "temperature==10..25", "temperature!=10..25",
    "temperature==15,30", 'temperature==20,"20"', "temperature>=20;temperature<=25",
    "(temperature>=20;temperature<=25)|speed>50", '((speed>50|speed<20);brandName=="Tata")',
    "speed==true", "speed!=true", "speed>50", 'brandName!="Mercedes"', 'brandName=="Mercedes"',
    'brandName~="^Me"', 'brandName!~="^Me"', 'brandName~="(?i)toyota"', 'brandName~="โต"',
    'brandName=="Tata","Mercedes"', 'brandName!="Tata","Mercedes"', 'brandName>"S"',
    'address[city]=="Berlin"', "address[city]", "address[zip]>10000", "address[ชั้น.ห้อง]==5",
    'address=="Berlin"', 'address[city]~="^เชียง"', "address[nope]", "!address[city]",
    "isParked==urn:ngsi-ld:Park:1", 'isParked=="urn:ngsi-ld:Park:2"',
    "isParked!=urn:ngsi-ld:Park:1", 'isParked~="Park"', "isParked.observedAt",
    "isParked.observedAt<2024-01-01T00:00:00Z",
    'name=="Silom Road"', 'name[en]=="red"', 'name[fr]!="rouge"', 'name[th]=="ถนนสีลม"',
    'name[*]=="chat"', 'name!="red"', 'name~="Road$"', 'name!~="Road"',
    "gender==Male", 'gender=="Male"', "gender!=Male", "gender==Female,Other", 'gender~="Fem"',
    "readings==2", "readings>2", 'readings=="a"', "readings!=2", "readings==1..1",
    "members==urn:p:2", "members!=urn:p:2", "members==urn:p:9", 'members>"a"',
    'parkingTickets[value]=="Overstay 60"', 'parkingTickets[id]~="^85"',
    "sensor.rawdata[airquality.particulate]==40", "sensor.rawdata[airquality.PM20]>80",
    "sensor.rawdata", "sensor.nothing",
    "temperature.accuracy<1", "temperature.accuracy", 'temperature.unitCode=="CEL"',
    "temperature.observedAt>=2024-03-01T12:00:00+07:00",
    "temperature.observedAt==2024-03-02T10:00:00Z",
    'temperature.datasetId=="urn:ds:b"', "temperature.datasetId", "!temperature.datasetId",
    "flag==false", "flag==true", "flag!=false",
    'weird=="q\\"uo\\\\te"', "weird", "อุณหภูมิ>30", "อุณหภูมิ==31.5",
    "date==2024-05-01", "date>2024-04-30", "date==2024-01-01..2024-12-31", "time==12:30:00Z",
    "big>1e19", "big==100000000000000000000", "tiny==0.1", "tiny<0.10000001",
    'pattern~="abc\\\\|def"', "pattern~=c|d", 'pattern=="abc|def"',
    "empty", "empty[a]", "nested==1", "nested!=1", "nested[a]==1",
    "temperature|brandName|address", "!temperature;!speed", "speed==true|flag==true",
]

TYPE_QUERIES = ["Room", "Room,Office", "Room|Vehicle", "(Room;Office)", "(Vehicle;Taxi)|Car",
                "Nothing", "(Room;Vehicle)", f"{X}Full/Type", "Taxi,(Room;Office),Person"]
SCOPE_QUERIES = ["/Bangkok", "/Bangkok/#", "/Bangkok/+", "/Bangkok/+/Siam", "/#", "/a/+/c",
                 "(/Bangkok;/Phuket)", "(/Bangkok;/Phuket)|/ChiangMai", "/Phuket/#,/z",
                 "/Bangkok/Bangrak", "/a/#", "/+/+/+"]
# fmt: on


Compiler = Callable[[Dialect, list[Any]], str]
Case = tuple[str, Callable[[Entity], bool], Compiler]


def q_case(text: str) -> Case:
    expr = parse_q(text, expand)

    def compile_(dialect: Dialect, params: list[Any]) -> str:
        return compile_q(expr, dialect, params)

    return f"q={text}", lambda e: match_q(expr, e), compile_


def type_case(text: str) -> Case:
    expr = parse_type_selection(text, expand)

    def compile_(dialect: Dialect, params: list[Any]) -> str:
        return compile_types(expr, dialect, params)

    return f"type={text}", lambda e: match_types(expr, e.types), compile_


def scope_case(text: str) -> Case:
    expr = parse_scope_q(text)

    def compile_(dialect: Dialect, params: list[Any]) -> str:
        return compile_scope(expr, dialect, params)

    return f"scopeQ={text}", lambda e: match_scope(expr, e.scope), compile_


CASES = [
    *map(q_case, Q_QUERIES),
    *map(type_case, TYPE_QUERIES),
    *map(scope_case, SCOPE_QUERIES),
]


def sqlite_db(entities: list[Entity]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.create_function("regexp", 2, sqlite_regexp, deterministic=True)
    conn.execute(
        "CREATE TABLE entities (id TEXT PRIMARY KEY, types TEXT, scopes TEXT, "
        "doc TEXT, created_at TEXT, modified_at TEXT)"
    )
    rows = []
    for n, e in enumerate(entities):
        ascii_only = n % 2 == 0  # both escaped and raw UTF-8 JSON must work
        rows.append(
            (
                e.id,
                json.dumps(e.types, ensure_ascii=ascii_only),
                None if e.scope is None else json.dumps(e.scope, ensure_ascii=ascii_only),
                json.dumps(e.doc(), ensure_ascii=ascii_only),
                e.created_at,
                e.modified_at,
            )
        )
    conn.executemany("INSERT INTO entities VALUES (?, ?, ?, ?, ?, ?)", rows)
    return conn


def sqlite_ids(conn: sqlite3.Connection, compile_: Compiler) -> set[str]:
    params: list[Any] = []
    sql = compile_("sqlite", params)
    return {r[0] for r in conn.execute(f"SELECT e.id FROM entities AS e WHERE {sql}", params)}


@pytest.fixture(scope="module")
def lite() -> Iterator[sqlite3.Connection]:
    conn = sqlite_db(ENTITIES)
    yield conn
    conn.close()


def test_fixture_is_varied() -> None:
    assert len(ENTITIES) >= 30
    hits = [sum(match(e) for e in ENTITIES) for _, match, _ in CASES]
    assert sum(1 for h in hits if h) > len(CASES) * 0.7  # most queries select something


@pytest.mark.parametrize(("name", "match", "compile_"), CASES, ids=[c[0] for c in CASES])
def test_sqlite_agrees_with_python(
    lite: sqlite3.Connection,
    name: str,
    match: Callable[[Entity], bool],
    compile_: Compiler,
) -> None:
    expected = {e.id for e in ENTITIES if match(e)}
    assert sqlite_ids(lite, compile_) == expected, name


# -- PostgreSQL -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg() -> Iterator[Callable[[Compiler], set[str]]]:
    asyncpg = pytest.importorskip("asyncpg")
    loop = asyncio.new_event_loop()
    try:
        conn = loop.run_until_complete(asyncpg.connect(PG_URL, timeout=5))
    except Exception as exc:  # pragma: no cover - depends on the machine
        loop.close()
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    loop.run_until_complete(
        conn.execute(
            "CREATE TEMP TABLE entities (id text PRIMARY KEY, types text[], scopes text[], "
            "doc jsonb, created_at text, modified_at text)"
        )
    )
    loop.run_until_complete(
        conn.executemany(
            "INSERT INTO entities VALUES ($1, $2, $3, $4::jsonb, $5, $6)",
            [
                (e.id, e.types, e.scope, json.dumps(e.doc()), e.created_at, e.modified_at)
                for e in ENTITIES
            ],
        )
    )

    def run(compile_: Compiler) -> set[str]:
        params: list[Any] = []
        sql = compile_("postgres", params)
        rows = loop.run_until_complete(
            conn.fetch(f"SELECT e.id FROM entities AS e WHERE {sql}", *params)
        )
        return {r["id"] for r in rows}

    yield run
    loop.run_until_complete(conn.close())
    loop.close()


@pytest.mark.postgres
@pytest.mark.parametrize(("name", "match", "compile_"), CASES, ids=[c[0] for c in CASES])
def test_postgres_agrees_with_python(
    pg: Callable[[Compiler], set[str]],
    name: str,
    match: Callable[[Entity], bool],
    compile_: Compiler,
) -> None:
    expected = {e.id for e in ENTITIES if match(e)}
    assert pg(compile_) == expected, name

"""The storage contract (nakhon.storage.base), run against every engine.

Each test gets an empty store: a fresh SQLite file, or a fresh schema in this session's own
PostgreSQL database. The mutations here are deliberately tiny; the broker's real ones live in
nakhon.broker and are tested there.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from shapely.geometry import Point, mapping

from nakhon.broker.model import LOCATION, Entity
from nakhon.core.errors import AlreadyExists, BadRequestData, NgsiError, ResourceNotFound
from nakhon.storage.base import EntityQuery, Mutation, Outcome, Storage, WriteOp

# --- tiny mutations --------------------------------------------------------------------------


def prop(value: Any, **meta: Any) -> list[dict[str, Any]]:
    return [{"type": "Property", "value": value, **meta}]


def geo(geometry: Any) -> list[dict[str, Any]]:
    return [{"type": "GeoProperty", "value": mapping(geometry)}]


def ent(eid: str, *types: str, **attrs: list[dict[str, Any]]) -> Entity:
    return Entity(eid, list(types) or ["T"], dict(attrs))


def located(eid: str, geometry: Any, **attrs: list[dict[str, Any]]) -> Entity:
    """An entity whose ``location`` (core IRI) is ``geometry``."""
    e = ent(eid, **attrs)
    e.attrs[LOCATION] = geo(geometry)
    return e


def create(entity: Entity) -> Mutation:
    def mutate(current: Entity | None, now: str) -> Outcome:
        if current is not None:
            raise AlreadyExists(f"{entity.id} exists")
        new = entity.copy()
        new.created_at = new.modified_at = now
        changed = [(a, i) for a, insts in new.attrs.items() for i in insts]
        return Outcome(new, created=True, changed=changed)

    return mutate


def set_attr(name: str, instances: list[dict[str, Any]]) -> Mutation:
    def mutate(current: Entity | None, now: str) -> Outcome:
        if current is None:
            raise ResourceNotFound("no such entity")
        new = current.copy()
        new.attrs[name] = instances
        new.modified_at = now
        return Outcome(new, changed=[(name, i) for i in instances], previous=current)

    return mutate


def increment(name: str) -> Mutation:
    def mutate(current: Entity | None, now: str) -> Outcome:
        if current is None:
            raise ResourceNotFound("no such entity")
        new = current.copy()
        new.attrs[name] = prop(new.attrs[name][0]["value"] + 1)
        new.modified_at = now
        return Outcome(new, changed=[(name, new.attrs[name][0])], previous=current)

    return mutate


def delete(current: Entity | None, now: str) -> Outcome:
    if current is None:
        raise ResourceNotFound("no such entity")
    return Outcome(None, deleted=True, previous=current)


def failing(current: Entity | None, now: str) -> Outcome:
    raise BadRequestData("refused on purpose")


def unchanged(current: Entity | None, now: str) -> Outcome:
    return Outcome(current, unchanged=True)


async def put_all(store: Storage, entities: list[Entity], tenant: str = "") -> None:
    results = await store.write([WriteOp(tenant, e.id, create(e)) for e in entities])
    assert all(isinstance(r, Outcome) for r in results), results


async def all_ids(store: Storage, query: EntityQuery, tenant: str = "") -> list[str]:
    query.limit, query.offset = 1000, 0
    return [e.id for e in (await store.query(tenant, query)).entities]


# --- create / read / update / delete ---------------------------------------------------------


async def test_crud(storage: Storage) -> None:
    e = ent(
        "urn:ngsi-ld:Sensor:1",
        "Sensor",
        temp=prop(30.5, unitCode="CEL"),
        name=prop('สถานีวัดอากาศ "กรุงเทพฯ" [1]'),
    )
    (out,) = await storage.write([WriteOp("", e.id, create(e))])
    assert isinstance(out, Outcome) and out.created
    got = await storage.get("", e.id)
    assert got is not None
    assert got.types == ["Sensor"] and got.attrs == e.attrs and got.scope is None
    assert got.created_at and got.created_at == got.modified_at and got.created_at.endswith("Z")

    (again,) = await storage.write([WriteOp("", e.id, create(e))])
    assert isinstance(again, AlreadyExists)

    await asyncio.sleep(0.002)
    (upd,) = await storage.write([WriteOp("", e.id, set_attr("temp", prop(31)))])
    assert isinstance(upd, Outcome)
    got2 = await storage.get("", e.id)
    assert got2 is not None and got2.attrs["temp"] == prop(31)
    assert got2.attrs["name"] == e.attrs["name"]
    assert got2.created_at == got.created_at and got2.modified_at > got.modified_at

    (gone,) = await storage.write([WriteOp("", e.id, delete)])
    assert isinstance(gone, Outcome) and gone.deleted
    assert await storage.get("", e.id) is None
    (missing,) = await storage.write([WriteOp("", e.id, delete)])
    assert isinstance(missing, ResourceNotFound)


async def test_scope_and_multiple_types_round_trip(storage: Storage) -> None:
    e = Entity(
        "urn:x:1",
        ["A", "B"],
        {"p": prop({"nested": [1, 2.5, None, "ไทย"]})},
        scope=["/Bangkok/Pathum_Wan", "/Thailand"],
    )
    await put_all(storage, [e])
    got = await storage.get("", "urn:x:1")
    assert got is not None
    assert got.types == ["A", "B"] and got.scope == e.scope and got.attrs == e.attrs


async def test_empty_write(storage: Storage) -> None:
    assert await storage.write([]) == []


async def test_error_in_one_op_does_not_affect_others(storage: Storage) -> None:
    await put_all(storage, [ent("urn:e:1", n=prop(0))])
    results = await storage.write(
        [
            WriteOp("", "urn:e:1", increment("n")),
            WriteOp("", "urn:e:1", failing),
            WriteOp("", "urn:e:2", create(ent("urn:e:2"))),
            WriteOp("", "urn:e:missing", increment("n")),
            WriteOp("", "urn:e:1", increment("n")),
        ]
    )
    kinds = [type(r) for r in results]
    assert kinds == [Outcome, BadRequestData, Outcome, ResourceNotFound, Outcome]
    one = await storage.get("", "urn:e:1")
    assert one is not None and one.attrs["n"] == prop(2)
    assert await storage.get("", "urn:e:2") is not None
    assert await storage.get("", "urn:e:missing") is None


async def test_later_ops_see_earlier_results_in_one_write(storage: Storage) -> None:
    e = ent("urn:s:1", n=prop(0))
    results = await storage.write(
        [
            WriteOp("", e.id, create(e)),
            WriteOp("", e.id, increment("n")),
            WriteOp("", e.id, delete),
            WriteOp("", e.id, create(ent(e.id, "Other", n=prop(10)))),
            WriteOp("", e.id, increment("n")),
            WriteOp("", e.id, unchanged),
        ]
    )
    assert all(isinstance(r, Outcome) for r in results), results
    got = await storage.get("", e.id)
    assert got is not None and got.types == ["Other"] and got.attrs["n"] == prop(11)


async def test_create_then_delete_in_one_write_leaves_nothing(storage: Storage) -> None:
    results = await storage.write(
        [WriteOp("", "urn:t:1", create(ent("urn:t:1"))), WriteOp("", "urn:t:1", delete)]
    )
    assert all(isinstance(r, Outcome) for r in results)
    assert await storage.get("", "urn:t:1") is None
    assert (await storage.query("", EntityQuery(count=True))).count == 0


async def test_unchanged_writes_nothing(storage: Storage) -> None:
    await put_all(storage, [ent("urn:u:1", n=prop(1))])
    before = await storage.get("", "urn:u:1")
    await asyncio.sleep(0.002)
    (out,) = await storage.write([WriteOp("", "urn:u:1", unchanged)])
    assert isinstance(out, Outcome)
    assert await storage.get("", "urn:u:1") == before


async def test_concurrent_increments_lose_no_update(storage: Storage) -> None:
    await put_all(storage, [ent("urn:c:1", n=prop(0))])

    async def bump() -> None:
        (r,) = await storage.write([WriteOp("", "urn:c:1", increment("n"))])
        assert isinstance(r, Outcome)

    await asyncio.gather(*(bump() for _ in range(200)))
    got = await storage.get("", "urn:c:1")
    assert got is not None and got.attrs["n"] == prop(200)


async def test_concurrent_writers_many_entities(storage: Storage) -> None:
    ids = [f"urn:m:{i:03d}" for i in range(50)]
    await put_all(storage, [ent(i, n=prop(0)) for i in ids])
    rng = random.Random(7)
    plan = [rng.choice(ids) for _ in range(300)]

    async def bump(eid: str) -> None:
        (r,) = await storage.write([WriteOp("", eid, increment("n"))])
        assert isinstance(r, Outcome)

    await asyncio.gather(*(bump(eid) for eid in plan))
    page = await storage.query("", EntityQuery(limit=100))
    assert {e.id: e.attrs["n"][0]["value"] for e in page.entities} == {
        i: plan.count(i) for i in ids
    }


# --- queries -------------------------------------------------------------------------------


async def test_order_paging_and_count(storage: Storage) -> None:
    # Code-point order, not locale order: upper case before lower case, Thai after Latin.
    ids = [f"urn:p:{i:03d}" for i in range(57)] + ["urn:p:Z", "urn:p:a", "urn:p:ก", "urn:P:x"]
    shuffled = ids[:]
    random.Random(1).shuffle(shuffled)
    await put_all(storage, [ent(i) for i in shuffled])
    seen: list[str] = []
    for offset in range(0, 70, 10):
        page = await storage.query("", EntityQuery(limit=10, offset=offset, count=True))
        assert page.count == len(ids)
        seen += [e.id for e in page.entities]
    assert seen == sorted(ids)
    no_count = await storage.query("", EntityQuery(limit=5))
    assert no_count.count is None and len(no_count.entities) == 5
    only_count = await storage.query("", EntityQuery(limit=0, count=True))
    assert only_count.entities == [] and only_count.count == len(ids)
    past_end = await storage.query("", EntityQuery(limit=10, offset=1000, count=True))
    assert past_end.entities == [] and past_end.count == len(ids)


async def test_ids_and_id_pattern(storage: Storage) -> None:
    ids = ["urn:ngsi-ld:Road:1", "urn:ngsi-ld:Road:2", "urn:ngsi-ld:Lamp:1", "urn:x:Road:9"]
    await put_all(storage, [ent(i) for i in ids])
    got = await all_ids(storage, EntityQuery(ids=[ids[2], ids[0], "urn:none"]))
    assert got == sorted([ids[0], ids[2]])
    assert await all_ids(storage, EntityQuery(ids=[])) == []
    assert await all_ids(storage, EntityQuery(id_pattern=r"^urn:ngsi-ld:Road:\d+$")) == ids[:2]
    # A pattern matches anywhere in the id unless anchored.
    assert await all_ids(storage, EntityQuery(id_pattern="Road")) == sorted(
        [ids[0], ids[1], ids[3]]
    )
    both = EntityQuery(ids=ids[1:], id_pattern="Road", count=True)
    assert await all_ids(storage, both) == sorted([ids[1], ids[3]])


async def test_attrs_filter(storage: Storage) -> None:
    await put_all(
        storage,
        [
            ent("urn:a:1", a=prop(1)),
            ent("urn:a:2", b=prop(1)),
            ent("urn:a:3", a=prop(1), c=prop(2)),
            ent("urn:a:4"),
        ],
    )
    assert await all_ids(storage, EntityQuery(attrs=["a"])) == ["urn:a:1", "urn:a:3"]
    assert await all_ids(storage, EntityQuery(attrs=["b", "c"])) == ["urn:a:2", "urn:a:3"]
    assert await all_ids(storage, EntityQuery(attrs=["zzz"])) == []


async def test_tenants_are_isolated(storage: Storage) -> None:
    assert await storage.tenant_exists("")
    assert not await storage.tenant_exists("bangkok")
    await put_all(storage, [ent("urn:t:1", n=prop("bkk"))], tenant="bangkok")
    await put_all(storage, [ent("urn:t:1", n=prop("cnx"))], tenant="chiangmai")
    assert await storage.tenant_exists("bangkok") and await storage.tenant_exists("chiangmai")
    assert not await storage.tenant_exists("phuket")
    bkk = await storage.get("bangkok", "urn:t:1")
    cnx = await storage.get("chiangmai", "urn:t:1")
    assert bkk is not None and bkk.attrs["n"] == prop("bkk")
    assert cnx is not None and cnx.attrs["n"] == prop("cnx")
    assert await storage.get("", "urn:t:1") is None
    assert (await storage.query("", EntityQuery(count=True))).count == 0
    assert (await storage.query("bangkok", EntityQuery(count=True))).count == 1
    assert [t.type for t in await storage.list_types("chiangmai")] == ["T"]
    assert await storage.list_types("") == []
    assert await storage.list_attributes("") == []


async def test_list_types_and_attributes(storage: Storage) -> None:
    await put_all(
        storage,
        [
            ent("urn:l:1", "Road", name=prop("x"), location=geo(Point(100.5, 13.7))),
            ent(
                "urn:l:2",
                "Road",
                "Asset",
                name=prop("y"),
                owner=[{"type": "Relationship", "object": "urn:o:1"}],
            ),
            ent(
                "urn:l:3",
                "Lamp",
                name=[
                    {"type": "LanguageProperty", "languageMap": {"th": "โคม"}},
                    {"type": "Property", "value": "lamp", "datasetId": "urn:ds:1"},
                ],
            ),
        ],
    )
    types = {t.type: (t.attributes, t.count) for t in await storage.list_types("")}
    assert types == {
        "Asset": (["name", "owner"], 1),
        "Lamp": (["name"], 1),
        "Road": (["location", "name", "owner"], 2),
    }
    attrs = {a.name: a for a in await storage.list_attributes("")}
    assert sorted(attrs) == ["location", "name", "owner"]
    assert attrs["name"].types == ["Asset", "Lamp", "Road"]
    assert attrs["name"].attribute_types == ["LanguageProperty", "Property"]
    assert attrs["name"].count == 3  # entities having the attribute
    assert attrs["owner"].types == ["Asset", "Road"] and attrs["owner"].count == 1
    assert attrs["location"].attribute_types == ["GeoProperty"]


# --- type, q and scopeQ (ASTs from nakhon.broker.query, compiled per engine) ---------------


def _parser(module: str, name: str) -> Any:
    """A parser of nakhon.broker.query, or skip the test while it is not there yet."""
    import importlib

    import nakhon.broker.query as bq

    fn = getattr(bq, name, None)
    if fn is None:
        try:
            fn = getattr(importlib.import_module(f"nakhon.broker.query.{module}"), name, None)
        except ImportError:
            fn = None
    if fn is None:
        pytest.skip(f"nakhon.broker.query has no {name} yet")
    return fn


def _same(name: str) -> str:
    return name  # the test entities use their attribute names as IRIs


async def _filters_world(store: Storage) -> None:
    await put_all(
        store,
        [
            ent("urn:q:1", temp=prop(30), name=prop("Bangkok"), status=prop("ok")),
            ent("urn:q:2", temp=prop(25.5), name=prop("Chiang Mai")),
            ent(
                "urn:q:3",
                "U",
                temp=prop("hot"),
                owner=[{"type": "Relationship", "object": "urn:o:1"}],
            ),
            ent(
                "urn:q:4",
                "U",
                name=prop("Phuket"),
                address=prop({"city": "Phuket", "zip": "83000"}),
            ),
            Entity("urn:q:5", ["T", "U"], {"temp": prop(40)}),
        ],
    )
    scopes = {"urn:q:1": ["/TH/BKK"], "urn:q:2": ["/TH/CNX"], "urn:q:5": ["/TH"]}

    def scoped(scope: list[str]) -> Mutation:
        def mutate(current: Entity | None, now: str) -> Outcome:
            assert current is not None
            new = current.copy()
            new.scope = scope
            return Outcome(new)

        return mutate

    await store.write([WriteOp("", i, scoped(sc)) for i, sc in scopes.items()])


def _q_ids(*numbers: int) -> list[str]:
    return [f"urn:q:{n}" for n in numbers]


async def test_type_selection(storage: Storage) -> None:
    parse = _parser("typesel", "parse_type_selection")
    await _filters_world(storage)
    cases = {"T": [1, 2, 5], "U": [3, 4, 5], "T,U": [1, 2, 3, 4, 5], "(T;U)": [5], "X": []}
    for text, expected in cases.items():
        q = EntityQuery(type_expr=parse(text, _same), count=True)
        assert await all_ids(storage, q) == _q_ids(*expected), text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("temp>28", [1, 5]),
        ("temp==25.5", [2]),
        ("temp==30..40", [1, 5]),
        ('name=="Bangkok"', [1]),
        ('name>"C"', [2, 4]),
        ('name~="^Ch"', [2]),
        ("temp", [1, 2, 3, 5]),
        ("!temp", [4]),
        ("temp>28;name", [1]),
        ('temp<26|name=="Phuket"', [2, 4]),
        ('address[city]=="Phuket"', [4]),
        ('owner=="urn:o:1"', [3]),
    ],
)
async def test_q(storage: Storage, text: str, expected: list[int]) -> None:
    parse = _parser("q", "parse_q")
    await _filters_world(storage)
    expr = parse(text, _same)
    assert await all_ids(storage, EntityQuery(q=expr)) == _q_ids(*expected)


async def test_scope_q_and_combined_filters(storage: Storage) -> None:
    parse = _parser("scope", "parse_scope_q")
    await _filters_world(storage)
    cases = {"/TH/#": [1, 2, 5], "/TH": [5], "/TH/+": [1, 2], "/JP": []}
    for text, expected in cases.items():
        q = EntityQuery(scope_q=parse(text))
        assert await all_ids(storage, q) == _q_ids(*expected), text
    q = EntityQuery(
        scope_q=parse("/TH/#"),
        type_expr=_parser("typesel", "parse_type_selection")("U", _same),
        count=True,
    )
    page = await storage.query("", q)
    assert [e.id for e in page.entities] == _q_ids(5) and page.count == 1


# --- small documents -----------------------------------------------------------------------


async def test_kv(storage: Storage) -> None:
    assert await storage.kv_get("contexts", "a") is None
    await storage.kv_put("contexts", "a", {"@context": {"x": "urn:x"}, "th": "ไทย"})
    await storage.kv_put("contexts", "b", [1, 2, 3])
    await storage.kv_put("other", "a", "text")
    assert await storage.kv_get("contexts", "a") == {"@context": {"x": "urn:x"}, "th": "ไทย"}
    await storage.kv_put("contexts", "b", {"replaced": True})
    assert await storage.kv_list("contexts") == {
        "a": {"@context": {"x": "urn:x"}, "th": "ไทย"},
        "b": {"replaced": True},
    }
    assert await storage.kv_delete("contexts", "a") is True
    assert await storage.kv_delete("contexts", "a") is False
    assert await storage.kv_list("contexts") == {"b": {"replaced": True}}
    assert await storage.kv_get("other", "a") == "text"
    assert await storage.kv_list("nothing") == {}


def test_errors_are_ngsi_errors() -> None:
    # The contract relies on these being NgsiError subclasses (returned, not raised).
    assert issubclass(AlreadyExists, NgsiError) and issubclass(ResourceNotFound, NgsiError)

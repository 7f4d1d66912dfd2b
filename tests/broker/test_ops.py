"""Unit tests of the entity-operation mutations (nakhon.broker.ops); no storage involved."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nakhon.broker import ops
from nakhon.broker.model import Entity, Instance
from nakhon.core.errors import AlreadyExists, BadRequestData, ResourceNotFound
from nakhon.storage.base import Mutation, Outcome

EX = "https://example.org/"
SPEED, NAME, PARKED, SOURCE, BY = (EX + n for n in ("speed", "name", "isParked", "source", "by"))
T0, T1, T2 = "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"
NULL = "urn:ngsi-ld:null"
DS = "urn:ngsi-ld:Dataset:gps"


def prop(value: Any, **extra: Any) -> Instance:
    return {"type": "Property", "value": value, **extra}


def rel(obj: str, **extra: Any) -> Instance:
    return {"type": "Relationship", "object": obj, **extra}


def vehicle() -> Entity:
    """A stored vehicle, created at T0: speed has a default and a 'gps' instance."""
    new = Entity(
        "urn:ngsi-ld:Vehicle:1",
        [EX + "Vehicle"],
        {
            NAME: [prop("รถเมล์ สาย 8")],
            SPEED: [prop(55, **{SOURCE: prop("meter")}), prop(54.5, datasetId=DS)],
            PARKED: [rel("urn:ngsi-ld:Parking:1", observedAt=T0, **{BY: rel("urn:p:bob")})],
        },
        scope=["/Bangkok"],
    )
    return apply(ops.create_entity(new), None, T0).entity  # type: ignore[return-value]


def apply(mutation: Mutation, current: Entity | None, now: str = T1) -> Outcome:
    """Apply and check the mutation left ``current`` exactly as it was."""
    before = copy.deepcopy(current)
    outcome = mutation(current, now)
    assert current == before
    return outcome


def attrs_of(outcome: Outcome) -> dict[str, list[Instance]]:
    assert outcome.entity is not None
    return outcome.entity.attrs


# --- create ---------------------------------------------------------------------------------


def test_create_sets_system_times_and_lists_every_instance() -> None:
    e = vehicle()
    assert e.created_at == e.modified_at == T0
    for instances in e.attrs.values():
        for inst in instances:
            assert inst["createdAt"] == inst["modifiedAt"] == T0
    # Sub-attributes carry no system times.
    assert "createdAt" not in e.attrs[SPEED][0][SOURCE]
    out = ops.create_entity(Entity("urn:x", [EX + "T"], {SPEED: [prop(1), prop(2, datasetId=DS)]}))(
        None, T0)
    assert out.created and out.previous is None
    assert [(i, x["value"]) for i, x in out.changed] == [(SPEED, 1), (SPEED, 2)]


def test_create_ignores_client_system_times() -> None:
    new = Entity("urn:x", [EX + "T"], {NAME: [prop("a", createdAt="1999-01-01T00:00:00Z")]})
    out = apply(ops.create_entity(new), None)
    assert attrs_of(out)[NAME][0]["createdAt"] == T1
    assert new.attrs[NAME][0]["createdAt"] == "1999-01-01T00:00:00Z"  # argument untouched


def test_create_existing_is_already_exists() -> None:
    with pytest.raises(AlreadyExists):
        apply(ops.create_entity(Entity("urn:ngsi-ld:Vehicle:1", [EX + "T"])), vehicle())


def test_create_with_null_is_bad_request() -> None:
    with pytest.raises(BadRequestData):
        apply(ops.create_entity(Entity("urn:x", [EX + "T"], {NAME: [prop(NULL)]})), None)


# --- replace entity -------------------------------------------------------------------------


def test_replace_entity_replaces_everything_but_created_at() -> None:
    cur = vehicle()
    new = Entity(cur.id, [EX + "Car"], {SPEED: [prop(99)], EX + "colour": [prop("red")]})
    out = apply(ops.replace_entity(new), cur, T2)
    e = out.entity
    assert e is not None
    assert e.types == [EX + "Car"] and e.scope is None
    assert set(e.attrs) == {SPEED, EX + "colour"}
    assert e.attrs[SPEED] == [prop(99, createdAt=T0, modifiedAt=T2)]  # instance createdAt kept
    assert e.attrs[EX + "colour"][0]["createdAt"] == T2
    assert (e.created_at, e.modified_at) == (T0, T2)
    assert set(out.removed) == {NAME, SPEED, PARKED}  # SPEED lost its gps instance
    assert out.previous is cur and not out.created


def test_replace_entity_missing() -> None:
    with pytest.raises(ResourceNotFound):
        apply(ops.replace_entity(Entity("urn:x", [EX + "T"])), None)


# --- merge entity ---------------------------------------------------------------------------


def test_merge_merges_members_and_keeps_the_rest() -> None:
    cur = vehicle()
    patch = Entity(cur.id, [EX + "Bus"], {
        PARKED: [{"type": "Relationship", "object": "urn:ngsi-ld:Parking:2",
                  BY: {"object": "urn:p:alice"}}],
        EX + "new": [prop(1)],
    })
    out = apply(ops.merge_entity(patch), cur, T2)
    parked = attrs_of(out)[PARKED][0]
    assert parked["object"] == "urn:ngsi-ld:Parking:2"
    assert parked["observedAt"] == T0  # not in the patch: kept
    assert parked[BY] == rel("urn:p:alice")  # sub-attribute merged member-wise
    assert (parked["createdAt"], parked["modifiedAt"]) == (T0, T2)
    assert attrs_of(out)[EX + "new"][0]["createdAt"] == T2
    assert attrs_of(out)[NAME] is cur.attrs[NAME]  # untouched attributes are shared, not copied
    assert out.entity is not None and out.entity.types == [EX + "Vehicle", EX + "Bus"]
    assert out.entity.scope == ["/Bangkok"]
    assert [i for i, _ in out.changed] == [PARKED, EX + "new"]


def test_merge_observed_at_parameter_and_partial_value() -> None:
    cur = vehicle()
    patch = Entity(cur.id, [], {PARKED: [{"object": "urn:ngsi-ld:Parking:3"}]})
    out = apply(ops.merge_entity(patch, observed_at=T2), cur)
    assert attrs_of(out)[PARKED][0]["observedAt"] == T2
    assert attrs_of(out)[PARKED][0]["type"] == "Relationship"


@pytest.mark.parametrize("null", [prop(NULL), prop(None), prop([NULL]),
                                  {"type": "LanguageProperty", "languageMap": {"@none": NULL}}])
def test_merge_null_deletes_the_default_instance_only(null: Instance) -> None:
    cur = vehicle()
    out = apply(ops.merge_entity(Entity(cur.id, [], {SPEED: [null]})), cur)
    assert attrs_of(out)[SPEED] == [cur.attrs[SPEED][1]]  # the gps instance stays
    assert out.removed == [SPEED] and out.changed == []


def test_merge_null_instance_and_sub_attribute() -> None:
    cur = vehicle()
    patch = Entity(cur.id, [], {
        SPEED: [prop(NULL, datasetId=DS)],
        PARKED: [{BY: rel(NULL)}],
        NAME: [{"type": "Property", SOURCE: None}],
    })
    out = apply(ops.merge_entity(patch), cur)
    assert [i.get("datasetId") for i in attrs_of(out)[SPEED]] == [None]
    assert BY not in attrs_of(out)[PARKED][0]
    assert attrs_of(out)[NAME][0]["value"] == "รถเมล์ สาย 8"


def test_merge_deleting_the_last_instance_removes_the_attribute() -> None:
    cur = vehicle()
    out = apply(ops.merge_entity(Entity(cur.id, [], {NAME: [prop(NULL)]})), cur)
    assert NAME not in attrs_of(out)


def test_merge_type_change_drops_old_value_member() -> None:
    cur = vehicle()
    patch = Entity(cur.id, [], {PARKED: [{"type": "Property", "value": True}]})
    parked = attrs_of(apply(ops.merge_entity(patch), cur))[PARKED][0]
    assert "object" not in parked and parked["value"] is True


def test_merge_incomplete_new_attribute_is_bad_request() -> None:
    cur = vehicle()
    with pytest.raises(BadRequestData):
        apply(ops.merge_entity(Entity(cur.id, [], {EX + "x": [{"unitCode": "KMH"}]})), cur)


def test_merge_scope_replaced_and_nulled() -> None:
    cur = vehicle()
    out = apply(ops.merge_entity(Entity(cur.id, [], scope=["/Khon Kaen"])), cur)
    assert out.entity is not None and out.entity.scope == ["/Khon Kaen"]
    out = apply(ops.merge_entity(Entity(cur.id, [], scope=[NULL])), cur)
    assert out.entity is not None and out.entity.scope is None


def test_merge_empty_is_unchanged_and_missing_is_not_found() -> None:
    cur = vehicle()
    out = apply(ops.merge_entity(Entity(cur.id, [EX + "Vehicle"])), cur)
    assert out.unchanged and out.entity is cur
    with pytest.raises(ResourceNotFound):
        apply(ops.batch_merge_entity(Entity(cur.id, [])), None)


# --- append ---------------------------------------------------------------------------------


def test_append_adds_and_overwrites_by_dataset_id() -> None:
    cur = vehicle()
    out = apply(ops.append_attrs({SPEED: [prop(70, datasetId=DS)], EX + "fuel": [prop(0.5)]},
                                 no_overwrite=False, types=[EX + "Bus"]), cur, T2)
    speed = attrs_of(out)[SPEED]
    assert speed[0] is cur.attrs[SPEED][0]  # default instance untouched
    assert speed[1] == prop(70, datasetId=DS, createdAt=T0, modifiedAt=T2)
    assert out.result == {"updated": [SPEED, EX + "fuel"], "notUpdated": []}
    assert out.entity is not None and out.entity.types[-1] == EX + "Bus"
    assert out.entity.modified_at == T2


def test_append_new_default_instance_goes_first() -> None:
    cur = vehicle()
    cur2 = apply(ops.delete_attr(SPEED, dataset_id=None, delete_all=False), cur).entity
    out = apply(ops.append_attrs({SPEED: [prop(1)]}, no_overwrite=True), cur2)
    assert [i.get("datasetId") for i in attrs_of(out)[SPEED]] == [None, DS]


def test_append_no_overwrite_reports_not_updated() -> None:
    cur = vehicle()
    out = apply(ops.append_attrs({NAME: [prop("x")], SPEED: [prop(1, datasetId="urn:d:new")]},
                                 no_overwrite=True), cur)
    assert attrs_of(out)[NAME] == cur.attrs[NAME]
    assert out.result["updated"] == [SPEED]
    assert [n["attributeName"] for n in out.result["notUpdated"]] == [NAME]


def test_append_all_not_updated_is_unchanged() -> None:
    cur = vehicle()
    out = apply(ops.append_attrs({NAME: [prop("x")]}, no_overwrite=True), cur)
    assert out.unchanged and out.entity is cur and out.result["updated"] == []


def test_append_scope_replaced_or_added() -> None:
    cur = vehicle()
    out = apply(ops.append_attrs({}, no_overwrite=False, scope=["/Phuket"]), cur)
    assert out.entity is not None and out.entity.scope == ["/Phuket"]
    out = apply(ops.append_attrs({}, no_overwrite=True, scope=["/Phuket"]), cur)
    assert out.entity is not None and out.entity.scope == ["/Bangkok", "/Phuket"]


def test_append_null_deletes_when_overwriting() -> None:
    cur = vehicle()
    out = apply(ops.append_attrs({NAME: [prop(NULL)], EX + "nope": [prop(NULL)]},
                                 no_overwrite=False), cur)
    assert NAME not in attrs_of(out)
    assert out.result["updated"] == [NAME] and len(out.result["notUpdated"]) == 1


def test_append_missing_entity() -> None:
    with pytest.raises(ResourceNotFound):
        apply(ops.append_attrs({NAME: [prop(1)]}, no_overwrite=False), None)


# --- update ---------------------------------------------------------------------------------


def test_update_replaces_existing_only() -> None:
    cur = vehicle()
    out = apply(ops.update_attrs({SPEED: [prop(60, datasetId=DS)], EX + "x": [prop(1)],
                                  PARKED: [rel("urn:ngsi-ld:P:9", datasetId="urn:d:none")]}),
                cur, T2)
    assert attrs_of(out)[SPEED][1] == prop(60, datasetId=DS, createdAt=T0, modifiedAt=T2)
    assert EX + "x" not in attrs_of(out)
    assert out.result["updated"] == [SPEED]
    assert [n["attributeName"] for n in out.result["notUpdated"]] == [EX + "x", PARKED]


def test_update_null_deletes_instance() -> None:
    cur = vehicle()
    out = apply(ops.update_attrs({SPEED: [prop(NULL, datasetId=DS)]}), cur)
    assert len(attrs_of(out)[SPEED]) == 1 and out.removed == [SPEED]


def test_update_types_added_scope_only_replaced() -> None:
    cur = vehicle()
    out = apply(ops.update_attrs({}, types=[EX + "Vehicle", EX + "Car"], scope=["/Nan"]), cur)
    assert out.entity is not None
    assert out.entity.types == [EX + "Vehicle", EX + "Car"] and out.entity.scope == ["/Nan"]
    cur.scope = None
    out = apply(ops.update_attrs({}, scope=["/Nan"]), cur)
    assert out.unchanged and out.result["notUpdated"][0]["attributeName"].endswith("/scope")


def test_update_nothing_matches_is_unchanged_and_missing_is_not_found() -> None:
    cur = vehicle()
    assert apply(ops.update_attrs({EX + "x": [prop(1)]}), cur).unchanged
    with pytest.raises(ResourceNotFound):
        apply(ops.update_attrs({NAME: [prop(1)]}), None)


# --- partial attribute update ---------------------------------------------------------------


def test_partial_update_merges_sub_attribute_only() -> None:
    cur = vehicle()
    out = apply(ops.partial_update_attr(PARKED, [{BY: rel("urn:p:john")}]), cur, T2)
    parked = attrs_of(out)[PARKED][0]
    assert parked[BY] == rel("urn:p:john")
    assert parked["object"] == "urn:ngsi-ld:Parking:1" and parked["observedAt"] == T0
    assert (parked["createdAt"], parked["modifiedAt"]) == (T0, T2)


def test_partial_update_by_dataset_id_and_sub_attribute_deletion() -> None:
    cur = vehicle()
    out = apply(ops.partial_update_attr(SPEED, [{"value": 80, "datasetId": DS}]), cur)
    assert [i["value"] for i in attrs_of(out)[SPEED]] == [55, 80]
    out = apply(ops.partial_update_attr(SPEED, [{SOURCE: prop(NULL)}]), cur)
    assert SOURCE not in attrs_of(out)[SPEED][0]


def test_partial_update_null_deletes_instance() -> None:
    cur = vehicle()
    out = apply(ops.partial_update_attr(NAME, [prop(NULL)]), cur)
    assert NAME not in attrs_of(out) and out.removed == [NAME]


@pytest.mark.parametrize(("attr", "frag", "exists"), [
    (SPEED, {"value": 1}, False),                       # entity missing
    (EX + "x", {"value": 1}, True),                     # attribute missing
    (SPEED, {"value": 1, "datasetId": "urn:d:x"}, True),  # no such datasetId
])
def test_partial_update_not_found(attr: str, frag: Instance, exists: bool) -> None:
    with pytest.raises(ResourceNotFound):
        apply(ops.partial_update_attr(attr, [frag]), vehicle() if exists else None)


def test_partial_update_without_default_instance_is_not_found() -> None:
    cur = vehicle()
    cur.attrs[SPEED] = cur.attrs[SPEED][1:]
    with pytest.raises(ResourceNotFound):
        apply(ops.partial_update_attr(SPEED, [{"value": 1}]), cur)


def test_partial_update_type_without_value_is_bad_request() -> None:
    with pytest.raises(BadRequestData):
        apply(ops.partial_update_attr(PARKED, [{"type": "Property"}]), vehicle())


# --- replace attribute ----------------------------------------------------------------------


def test_replace_attr_keeps_created_at_and_allows_new_type() -> None:
    cur = vehicle()
    out = apply(ops.replace_attr(PARKED, [prop(True)]), cur, T2)
    assert attrs_of(out)[PARKED] == [prop(True, createdAt=T0, modifiedAt=T2)]
    out = apply(ops.replace_attr(SPEED, [prop(1, datasetId=DS)]), cur, T2)
    assert attrs_of(out)[SPEED][0] is cur.attrs[SPEED][0]
    assert attrs_of(out)[SPEED][1]["value"] == 1


@pytest.mark.parametrize(("attr", "inst", "exists"), [
    (NAME, prop(1), False),
    (EX + "x", prop(1), True),
    (NAME, prop(1, datasetId="urn:d:x"), True),
])
def test_replace_attr_not_found(attr: str, inst: Instance, exists: bool) -> None:
    with pytest.raises(ResourceNotFound):
        apply(ops.replace_attr(attr, [inst]), vehicle() if exists else None)


# --- delete attribute / entity --------------------------------------------------------------


def test_delete_attr_default_dataset_and_all() -> None:
    cur = vehicle()
    out = apply(ops.delete_attr(SPEED, dataset_id=None, delete_all=False), cur, T2)
    assert [i.get("datasetId") for i in attrs_of(out)[SPEED]] == [DS]
    assert out.removed == [SPEED] and out.entity is not None and out.entity.modified_at == T2
    out = apply(ops.delete_attr(SPEED, dataset_id=DS, delete_all=False), cur)
    assert [i.get("datasetId") for i in attrs_of(out)[SPEED]] == [None]
    out = apply(ops.delete_attr(SPEED, dataset_id=None, delete_all=True), cur)
    assert SPEED not in attrs_of(out)


@pytest.mark.parametrize(("attr", "ds", "exists"), [
    (NAME, None, False), (EX + "x", None, True), (NAME, DS, True),
])
def test_delete_attr_not_found(attr: str, ds: str | None, exists: bool) -> None:
    with pytest.raises(ResourceNotFound):
        apply(ops.delete_attr(attr, dataset_id=ds, delete_all=False), vehicle() if exists else None)


def test_delete_entity() -> None:
    cur = vehicle()
    out = apply(ops.delete_entity(), cur)
    assert out.deleted and out.entity is None and out.previous is cur
    assert set(out.removed) == {NAME, SPEED, PARKED}
    with pytest.raises(ResourceNotFound):
        apply(ops.delete_entity(), None)


# --- batch ----------------------------------------------------------------------------------


def test_upsert_creates_when_missing() -> None:
    new = Entity("urn:x", [EX + "T"], {NAME: [prop("a")]})
    for mode in ("replace", "update"):
        out = apply(ops.upsert_entity(new, mode=mode), None)
        assert out.created and out.entity is not None and out.entity.created_at == T1


def test_upsert_replace_and_update_modes() -> None:
    cur = vehicle()
    new = Entity(cur.id, [EX + "Car"], {NAME: [prop("b")]})
    out = apply(ops.upsert_entity(new, mode="replace"), cur, T2)
    assert out.entity is not None and set(out.entity.attrs) == {NAME}
    assert out.entity.types == [EX + "Car"] and not out.created
    out = apply(ops.upsert_entity(new, mode="update"), cur, T2)
    assert out.entity is not None and set(out.entity.attrs) == {NAME, SPEED, PARKED}
    assert out.entity.types == [EX + "Vehicle", EX + "Car"]
    assert attrs_of(out)[NAME][0] == prop("b", createdAt=T0, modifiedAt=T2)
    assert out.result == {"updated": [NAME], "notUpdated": []}


def test_batch_update() -> None:
    cur = vehicle()
    new = Entity(cur.id, [EX + "Vehicle"], {NAME: [prop("b")], EX + "y": [prop(2)]})
    out = apply(ops.batch_update_entity(new, no_overwrite=True), cur)
    assert out.result["updated"] == [EX + "y"] and attrs_of(out)[NAME] == cur.attrs[NAME]
    out = apply(ops.batch_update_entity(new, no_overwrite=False), cur)
    assert attrs_of(out)[NAME][0]["value"] == "b"
    with pytest.raises(ResourceNotFound):
        apply(ops.batch_update_entity(new, no_overwrite=False), None)


def test_mutation_can_be_applied_twice() -> None:
    cur = vehicle()
    mutation = ops.merge_entity(Entity(cur.id, [], {SPEED: [{"value": 1}]}))
    assert mutation(cur, T1).changed == mutation(cur, T1).changed


# --- property: no mutation ever changes the state it is given -------------------------------

_values = st.one_of(st.integers(), st.text(max_size=5), st.just(NULL), st.none())
_names = st.sampled_from([NAME, SPEED, PARKED, EX + "extra"])
_dsids = st.sampled_from([None, DS, "urn:d:other"])


@st.composite
def _instances(draw: st.DrawFn) -> Instance:
    inst: Instance = {}
    if draw(st.booleans()):
        inst["type"] = draw(st.sampled_from(["Property", "Relationship"]))
    if draw(st.booleans()):
        inst["value" if inst.get("type") != "Relationship" else "object"] = draw(_values)
    ds = draw(_dsids)
    if ds is not None:
        inst["datasetId"] = ds
    if draw(st.booleans()):
        inst[SOURCE] = draw(st.one_of(st.none(), st.builds(prop, _values)))
    return inst


_attr_maps = st.dictionaries(_names, st.lists(_instances(), min_size=1, max_size=2), max_size=3)
_types = st.lists(st.sampled_from([EX + "Vehicle", EX + "Bus"]), max_size=2, unique=True)


@st.composite
def _mutations(draw: st.DrawFn) -> Mutation:
    attrs, types = draw(_attr_maps), draw(_types)
    scope = draw(st.one_of(st.none(), st.just(["/X"])))
    entity = Entity("urn:ngsi-ld:Vehicle:1", types, attrs, scope)
    attr, frag = draw(_names), draw(st.lists(_instances(), min_size=1, max_size=2))
    return draw(st.sampled_from([
        ops.create_entity(entity), ops.replace_entity(entity), ops.merge_entity(entity),
        ops.append_attrs(attrs, no_overwrite=draw(st.booleans()), types=types, scope=scope),
        ops.update_attrs(attrs, types=types, scope=scope), ops.partial_update_attr(attr, frag),
        ops.replace_attr(attr, frag), ops.delete_entity(),
        ops.delete_attr(attr, dataset_id=draw(_dsids), delete_all=draw(st.booleans())),
        ops.upsert_entity(entity, mode=draw(st.sampled_from(["replace", "update"]))),
        ops.batch_update_entity(entity, no_overwrite=draw(st.booleans())),
        ops.batch_merge_entity(entity),
    ]))


@settings(max_examples=300, deadline=None)
@given(mutation=_mutations(), exists=st.booleans())
def test_property_current_is_never_changed(mutation: Mutation, exists: bool) -> None:
    current = vehicle() if exists else None
    before = copy.deepcopy(current)
    try:
        outcome = mutation(current, T2)
    except (AlreadyExists, BadRequestData, ResourceNotFound):
        outcome = None
    assert current == before
    if outcome is not None and outcome.entity is not None and not outcome.unchanged:
        # Normal form holds: default instance first, at most one per datasetId, no empty lists.
        for instances in outcome.entity.attrs.values():
            keys = [i.get("datasetId") for i in instances]
            assert instances and len(keys) == len(set(keys))
            assert None not in keys[1:]
        assert outcome.entity.modified_at == T2

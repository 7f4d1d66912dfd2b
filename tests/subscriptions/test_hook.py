"""The write hook's outbox rows, alone (no database): which subscriptions each change of a
batch fires, what its document keeps, and that the shortcuts taken per batch (a group's
precomputed list shared by the changes it fires, the trigger decision kept per change, the
previous values decided once per list of subscriptions) change nothing in them."""

from __future__ import annotations

from typing import Any

import orjson

from nakhon.broker import ops
from nakhon.broker.jsonld import CORE_TERM_MAP
from nakhon.broker.model import NGSI_LD, Entity
from nakhon.broker.ops_attrs import update_attrs
from nakhon.subscriptions.matcher import Active, OutboxHook, Registry
from nakhon.subscriptions.model import parse_subscription

VOCAB = NGSI_LD + "default-context/"
TEMP, HUM = VOCAB + "temperature", VOCAB + "humidity"
NOW = "2026-11-01T00:00:00.000Z"


def _registry(*docs: dict[str, Any]) -> Registry:
    registry = Registry()
    entries = []
    for pk, extra in enumerate(docs, 1):
        doc: dict[str, Any] = {"id": f"urn:ngsi-ld:Subscription:{pk}", "type": "Subscription",
                               "entities": [{"type": "Sensor"}],
                               "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}}
        doc.update(extra)
        entries.append(Active(pk, "t", parse_subscription(doc, CORE_TERM_MAP, None,
                                                          creating=True), NOW, NOW))
    registry.replace(entries)
    return registry


def _entity(i: int, value: int) -> Entity:
    created = ops.create_entity(Entity(f"urn:s:{i}", [VOCAB + "Sensor"], {
        TEMP: [{"type": "Property", "value": 0}],
        HUM: [{"type": "Property", "value": 0}]}))(None, NOW).entity
    assert created is not None
    return created


def _update(i: int, value: int) -> tuple[str, str, Any]:
    current = _entity(i, value)
    return ("t", current.id, update_attrs({TEMP: [{"type": "Property", "value": value}]})(
        current, NOW))


def _rows(hook: OutboxHook, changes: list[Any]) -> tuple[str, list[Any]]:
    blocks = hook.rows(changes, NOW)
    if not blocks:
        return "", []
    subs, payload, _ = blocks[0].rows[0]
    return subs, orjson.loads(payload)["changes"]


def test_changes_of_a_batch_fire_their_own_lists_and_the_groups_stay_intact() -> None:
    registry = _registry({"q": "temperature>0"}, {"q": "temperature>0"},
                         {"q": "temperature>5"}, {"q": "temperature>5", "throttling": 0.001})
    hook = OutboxHook(registry, lambda pks: None)
    groups = registry.index["t"].groups([VOCAB + "Sensor"], [])
    plains = [list(g.plain) for g in groups]
    subs, changes = _rows(hook, [_update(1, 1), _update(2, 9), _update(3, 2), _update(4, -1)])
    assert [sorted(pks) for pks, _ in changes] == [[1, 2], [1, 2, 3, 4], [1, 2]]
    assert [doc["id"] for _, doc in changes] == ["urn:s:1", "urn:s:2", "urn:s:3"]
    assert subs == ",1,2,3,4,"
    assert [g.plain for g in groups] == plains  # nothing appended to a group's own list

    alone = _registry({}, {})  # one group, all plain: every change shares its list
    subs, changes = _rows(OutboxHook(alone, lambda pks: None), [_update(1, 1), _update(2, 2)])
    assert [pks for pks, _ in changes] == [[1, 2], [1, 2]] and subs == ",1,2,"
    assert alone.index["t"].groups([VOCAB + "Sensor"], [])[0].plain == [1, 2]


def test_previous_values_follow_each_changes_own_subscriptions() -> None:
    registry = _registry({"q": "temperature<5"},
                         {"q": "temperature>=5", "notification": {
                             "showChanges": True, "endpoint": {"uri": "http://127.0.0.1:9/n"}}})
    hook = OutboxHook(registry, lambda pks: None)
    _, changes = _rows(hook, [_update(1, 1), _update(2, 7), _update(3, 2), _update(4, 8)])
    assert [pks for pks, _ in changes] == [[1], [2], [1], [2]]
    assert ["previous" in doc for _, doc in changes] == [False, True, False, True]
    assert changes[1][1]["previous"] == {TEMP: [{"type": "Property", "value": 0,
                                                 "createdAt": NOW, "modifiedAt": NOW}]}


def test_triggers_are_decided_per_subscription_and_deletions_listed() -> None:
    registry = _registry({"notificationTrigger": ["attributeCreated"]},
                         {"notificationTrigger": ["attributeDeleted"]},
                         {"watchedAttributes": ["humidity"],
                          "notificationTrigger": ["attributeDeleted"]},
                         {"watchedAttributes": ["temperature"],
                          "notificationTrigger": ["attributeDeleted"]}, {})
    hook = OutboxHook(registry, lambda pks: None)
    _, changes = _rows(hook, [_update(1, 3)])
    assert [(pks, "deletedAttrs" in doc) for pks, doc in changes] == [([5], False)]

    current = _entity(2, 0)
    gone = ops.delete_attr(HUM, dataset_id=None, delete_all=False)(current, NOW)
    _, changes = _rows(hook, [("t", current.id, gone)])
    assert [sorted(pks) for pks, _ in changes] == [[2, 3]]
    assert changes[0][1]["deletedAttrs"] == [HUM]

"""The outbox as rows of write batches: every change of a batch reaches the subscriptions it
fires, in order, each with its own stable notification id; collecting delivered rows never
makes a later row invisible to a cursor."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, _app_client
from tests.subscriptions.conftest import sensor, subscription
from tests.subscriptions.receiver import Receiver

SUBS = "/ngsi-ld/v1/subscriptions"
ENTITIES = "/ngsi-ld/v1/entities"
UPSERT = "/ngsi-ld/v1/entityOperations/upsert"


async def _create(client: Any, headers: dict[str, str], body: dict[str, Any]) -> str:
    r = await client.post(SUBS, json=body, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.headers["location"].rsplit("/", 1)[1])


def _value(attr: Any) -> Any:
    return attr["value"] if isinstance(attr, dict) else attr


async def test_a_batch_notifies_each_change_per_subscription(
    api: Api, headers: dict[str, str], receiver: Receiver
) -> None:
    plain = await _create(api, headers, subscription(receiver.url, q="temperature>=2"))
    changes = await _create(api, headers, subscription(
        receiver.url, notification={"showChanges": True, "format": "concise"}))
    # One request, one transaction, one outbox row: five entities created...
    r = await api.post(UPSERT, json=[sensor(f"urn:b:{i}", i) for i in range(5)], headers=headers)
    assert r.status_code in (201, 204), r.text
    # ... and updated.
    r = await api.post(UPSERT + "?options=update",
                       json=[sensor(f"urn:b:{i}", 10 + i) for i in range(5)], headers=headers)
    assert r.status_code in (201, 204), r.text
    await receiver.wait_for_entities(3 + 5 + 5 + 5, seconds=15)
    await receiver.quiet()
    got = receiver.received
    assert len(receiver.entities()) == 18
    by_sub: dict[str, list[dict[str, Any]]] = {}
    for note in got:
        by_sub.setdefault(note.body["subscriptionId"], []).extend(note.body["data"])
    ids = [n.body["id"] for n in got]
    assert len(set(ids)) == len(ids)  # one id per notification
    first = [(e["id"], e["temperature"]["value"]) for e in by_sub[plain]]
    assert first == [(f"urn:b:{i}", i) for i in range(2, 5)] + [
        (f"urn:b:{i}", 10 + i) for i in range(5)]
    second = by_sub[changes]
    # concise: a bare value, or an object where showChanges adds the previous value
    assert [(e["id"], _value(e["temperature"])) for e in second] == [
        (f"urn:b:{i}", i) for i in range(5)] + [(f"urn:b:{i}", 10 + i) for i in range(5)]
    assert [e["temperature"].get("previousValue") for e in second[5:]] == list(range(5))
    assert all("previousValue" not in e["temperature"] for e in by_sub[plain])
    # A write batch is one row, read whole: its changes go out in one notification per
    # subscription (two rows, two subscriptions: at most 4 notifications for 18 entities).
    assert len(got) <= 4


async def test_collected_outbox_keeps_later_rows_visible(tmp_path: Path,
                                                         receiver: Receiver) -> None:
    """SQLite gives a new row max(seq) + 1: were every row deleted, seq would start again at 1,
    below the cursors. Collecting must leave the newest row in place."""
    gen = _app_client(f"sqlite:///{tmp_path / 'n.db'}", tmp_path, "off")
    client = await gen.__anext__()
    h = {"NGSILD-Tenant": "collect"}
    try:
        await _create(client, h, subscription(receiver.url))
        for n in range(3):
            r = await client.post(ENTITIES, json=sensor(f"urn:c:{n}", n), headers=h)
            assert r.status_code == 201
        await receiver.wait_for_entities(3)
        dispatcher = client.app.state.subscriptions.dispatcher  # type: ignore[attr-defined]
        for _ in range(100):
            if dispatcher.cursors and min(dispatcher.cursors.values()) >= 3:
                break
            await asyncio.sleep(0.05)
        await dispatcher.store.collect(min(dispatcher.cursors.values()) + 1)  # all delivered
        r = await client.post(ENTITIES, json=sensor("urn:c:late", 9), headers=h)
        assert r.status_code == 201
        await receiver.wait_for_entities(4, seconds=15)
        assert receiver.entities()[-1]["id"] == "urn:c:late"
    finally:
        await gen.aclose()


def test_notification_ids_are_name_based_uuids() -> None:
    """Stable across versions: a row resent after an upgrade keeps its notification id."""
    import uuid

    from nakhon.subscriptions.notify import NOTIFICATION_NS, notification_id

    for pk, seq, created, index in [(1, 2, "x", None), (13, 99, "2026-11-23T00:00:00.000Z", 5)]:
        at = seq if index is None else f"{seq}.{index}"
        name = f"{pk}:{at}:{created}"
        assert notification_id(pk, seq, created, index) == \
            f"urn:ngsi-ld:Notification:{uuid.uuid5(NOTIFICATION_NS, name)}"


def test_throttling_counts_only_committed_notifications() -> None:
    """A transaction retried after a failure (PostgreSQL retries deadlocks) must not find its
    own first attempt's notification in the throttling period."""
    import orjson

    from nakhon.broker import ops
    from nakhon.broker.jsonld import CORE_TERM_MAP
    from nakhon.broker.model import NGSI_LD, Entity
    from nakhon.subscriptions.matcher import Active, OutboxHook, Registry
    from nakhon.subscriptions.model import parse_subscription

    vocab, now = NGSI_LD + "default-context/", "2026-11-01T00:00:00.000Z"
    doc = {"id": "urn:ngsi-ld:Subscription:t", "type": "Subscription", "throttling": 60,
           "entities": [{"type": "Sensor"}],
           "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}}
    registry = Registry()
    registry.replace([Active(1, "t", parse_subscription(doc, CORE_TERM_MAP, None,
                                                        creating=True), now, now)])
    hook = OutboxHook(registry, lambda pks: None)

    def change(i: int) -> list[tuple[str, str, Any]]:
        entity = Entity(f"urn:s:{i}", [vocab + "Sensor"],
                        {vocab + "temperature": [{"type": "Property", "value": i}]})
        return [("t", entity.id, ops.create_entity(entity)(None, now))]

    def fired(i: int) -> int:
        blocks = hook.rows(change(i), now)
        return sum(len(orjson.loads(b.rows[0][1])["changes"]) for b in blocks)

    assert fired(1) == 1
    assert fired(1) == 1  # the first attempt failed (no commit): the retry notifies
    hook.committed()
    assert fired(2) == 0  # within the period after a committed notification


async def test_a_reload_never_drops_a_subscription_created_meanwhile(
    api: Api, headers: dict[str, str], tenant: str, receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry is reloaded from the database beside the API's own edits (on PostgreSQL on
    taking over delivery and whenever another process edits a subscription): a snapshot read
    before a create committed once dropped the new subscription until the next reload, and
    the changes written meanwhile were never notified."""
    svc = api.client.app.state.subscriptions  # type: ignore[attr-defined]
    parse = svc._parse_stored

    async def slow(stored: Any) -> Any:
        await asyncio.sleep(0.01)
        return await parse(stored)

    monkeypatch.setattr(svc, "_parse_stored", slow)
    old = await _create(api, headers, subscription(receiver.url, q="temperature==1"))
    reload = asyncio.create_task(svc._load())
    await asyncio.sleep(0.005)  # the reload has read its snapshot and is parsing it
    new = await _create(api, headers, subscription(receiver.url))
    r = await api.delete(f"{SUBS}/{old}", headers=headers)
    assert r.status_code == 204
    await reload
    assert svc.registry.find(tenant, new) is not None
    assert svc.registry.find(tenant, old) is None
    r = await api.post(ENTITIES, json=sensor("urn:r:1", 1), headers=headers)
    assert r.status_code == 201
    got = await receiver.wait_for_entities(1)
    await receiver.quiet()
    assert [n.body["subscriptionId"] for n in receiver.received] == [new]
    assert [e["id"] for e in got] == ["urn:r:1"]


async def test_a_dead_endpoint_holds_back_only_its_own_subscription(
    api: Api, headers: dict[str, str], receiver: Receiver
) -> None:
    from tests.subscriptions.receiver import free_port

    dead = await _create(api, headers, subscription(f"http://127.0.0.1:{free_port()}/gone"))
    await _create(api, headers, subscription(receiver.url))
    for i in range(5):
        r = await api.post(ENTITIES, json=sensor(f"urn:d:{i}", i), headers=headers)
        assert r.status_code == 201
    await receiver.wait_for_entities(5, seconds=20)
    assert [e["id"] for e in receiver.entities()] == [f"urn:d:{i}" for i in range(5)]
    doc = (await api.get(f"{SUBS}/{dead}", headers=headers)).json()
    assert doc["notification"]["timesFailed"] >= 1 and doc["notification"].get("timesSent", 0) == 0
    r = await api.delete(f"{SUBS}/{dead}", headers=headers)  # and it stops retrying
    assert r.status_code == 204


async def test_writes_first_never_delays_a_change_past_the_bound(
    api: Api, headers: dict[str, str], receiver: Receiver
) -> None:
    """While writes queue, delivery yields to them — but a change that has waited longer than
    ``max_delay`` goes out at full speed, so sustained load means a bounded lag, not an
    ever-growing one."""
    dispatcher = api.client.app.state.subscriptions.dispatcher  # type: ignore[attr-defined]
    pacer = dispatcher.pacer
    saved = (pacer.busy, pacer.window, pacer.burst, pacer.max_delay,
             dispatcher.batcher.max_entities)
    # The writer counts as busy all the time; paced, these 6 changes would take ≥ 5 s (one
    # entity per notification: batches would hide the pace).
    pacer.busy, pacer.window, pacer.burst, pacer.max_delay = (lambda: True), 1.0, 1, 0.2
    dispatcher.batcher.max_entities = 1
    try:
        await _create(api, headers, subscription(receiver.url))
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(6):
            r = await api.post(ENTITIES, json=sensor(f"urn:lag:{i}", i), headers=headers)
            assert r.status_code == 201, r.text
        got = await receiver.wait_for_entities(6, seconds=4.5)
        assert loop.time() - started < 4.5
        assert [e["id"] for e in got] == [f"urn:lag:{i}" for i in range(6)]
    finally:
        (pacer.busy, pacer.window, pacer.burst, pacer.max_delay,
         dispatcher.batcher.max_entities) = saved

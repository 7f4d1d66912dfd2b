"""Batched notifications (nakhon.subscriptions.batch), on both engines: what waits for a
subscription goes out in one notification of up to ``max_entities`` entities, in order; an idle
system still sends each change at once; a failed batch is resent whole; subscriptions that
share the render cache still get each their own correct body."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nakhon.app import create_app
from nakhon.config import load_settings
from tests.conftest import Api
from tests.subscriptions.conftest import sensor, subscription
from tests.subscriptions.receiver import Receiver, data_of

SUBS = "/ngsi-ld/v1/subscriptions"
ENTITIES = "/ngsi-ld/v1/entities"
UPSERT = "/ngsi-ld/v1/entityOperations/upsert"


async def _create(api: Api, headers: dict[str, str], body: dict[str, Any]) -> str:
    r = await api.post(SUBS, json=body, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.headers["location"].rsplit("/", 1)[1])


async def _upsert(api: Api, headers: dict[str, str], entities: list[dict[str, Any]],
                  update: bool = False) -> None:
    r = await api.post(UPSERT + ("?options=update" if update else ""), json=entities,
                       headers=headers)
    assert r.status_code in (201, 204), r.text


def _dispatcher(api: Api) -> Any:
    return api.client.app.state.subscriptions.dispatcher  # type: ignore[attr-defined]


@contextmanager
def _tuned(api: Api, **values: Any) -> Iterator[Any]:
    """Set dispatcher attributes (``max_entities`` is the batcher's) for one test."""
    dispatcher = _dispatcher(api)
    owners = {k: dispatcher.batcher if k == "max_entities" else dispatcher for k in values}
    saved = {k: getattr(owners[k], k) for k in values}
    for k, v in values.items():
        setattr(owners[k], k, v)
    try:
        yield dispatcher
    finally:
        for k, v in saved.items():
            setattr(owners[k], k, v)


def _temps(entities: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(e["id"], e["temperature"]["value"]) for e in entities]


async def test_a_backlog_goes_out_in_batches_in_order(
    api: Api, headers: dict[str, str], receiver: Receiver
) -> None:
    sid = await _create(api, headers, subscription(receiver.url))
    with _tuned(api, backoff_cap=0.3):
        await receiver.stop()
        expected: list[tuple[str, Any]] = []
        for block in range(4):  # 200 creations, 4 write batches (rows) of 50
            ents = [sensor(f"urn:bl:{n}", n) for n in range(block * 50, block * 50 + 50)]
            await _upsert(api, headers, ents)
            expected += _temps(ents)
        for v in range(1, 26):  # one entity changing 25 times: each change, in order
            r = await api.patch(f"{ENTITIES}/urn:bl:0/attrs",
                                json={"temperature": {"type": "Property", "value": 1000 + v}},
                                headers=headers)
            assert r.status_code == 204
            expected.append(("urn:bl:0", 1000 + v))
        ents = [sensor(f"urn:bl:{n}", 2000 + n) for n in range(25)]
        await _upsert(api, headers, ents, update=True)
        expected += _temps(ents)
        assert len(expected) == 250
        await receiver.start()
        await receiver.wait_for_entities(250, seconds=20)
        await receiver.quiet()
    assert _temps(receiver.entities()) == expected  # every change, exactly once, in order
    sizes = [len(n.body["data"]) for n in receiver.received]
    # The worker read the outbox at most twice (once before the receiver went down, then the
    # rest): 250 changes in at most 4 notifications of at most 100, one of them full.
    assert max(sizes) == 100 and len(sizes) <= 4, sizes
    ids = [n.body["id"] for n in receiver.received]
    assert len(set(ids)) == len(ids)
    doc = (await api.get(f"{SUBS}/{sid}", headers=headers)).json()
    assert doc["notification"]["timesSent"] == len(sizes)  # notifications, not entities


async def test_max_entities_1_sends_one_entity_per_notification(
    api: Api, headers: dict[str, str], receiver: Receiver
) -> None:
    with _tuned(api, max_entities=1):
        await _create(api, headers, subscription(receiver.url))
        await _upsert(api, headers, [sensor(f"urn:one:{n}", n) for n in range(5)])  # one row
        await receiver.wait_for_entities(5)
        await receiver.quiet()
    assert [len(n.body["data"]) for n in receiver.received] == [1] * 5
    assert _temps(receiver.entities()) == [(f"urn:one:{n}", n) for n in range(5)]
    assert len({n.body["id"] for n in receiver.received}) == 5


async def test_idle_changes_are_sent_at_once_alone(
    api: Api, headers: dict[str, str], receiver: Receiver
) -> None:
    await _create(api, headers, subscription(receiver.url))
    loop = asyncio.get_running_loop()
    for n in range(3):
        r = await api.post(ENTITIES, json=sensor(f"urn:idle:{n}", n), headers=headers)
        assert r.status_code == 201
        written = loop.time()
        await receiver.wait_for_entities(n + 1, seconds=5)
        assert loop.time() - written < 1.5  # no waiting for a batch to fill
        assert len(receiver.received) == n + 1
        assert receiver.received[-1].body["data"][0]["id"] == f"urn:idle:{n}"


async def test_a_failed_batch_is_resent_whole(
    api: Api, headers: dict[str, str], receiver: Receiver
) -> None:
    await _create(api, headers, subscription(receiver.url))
    with _tuned(api, backoff_base=0.05, backoff_cap=0.2):
        receiver.status = 503
        await _upsert(api, headers, [sensor(f"urn:f:{n}", n) for n in range(5)])  # one row
        await receiver.wait_refused(2)
        # A change written while the batch is being retried does not join it...
        r = await api.post(ENTITIES, json=sensor("urn:f:late", 9), headers=headers)
        assert r.status_code == 201
        await receiver.wait_refused(len(receiver.refused) + 2)
        receiver.status = 204
        got = await receiver.wait_for_entities(6)
        await receiver.quiet()
    refused = receiver.refused
    assert len(refused) >= 4
    first = receiver.received[0].body
    # ... every attempt is the same notification: same id, same five changes.
    for attempt in refused:
        assert attempt.body["id"] == first["id"]
        assert _temps(attempt.body["data"]) == [(f"urn:f:{n}", n) for n in range(5)]
    assert _temps(first["data"]) == [(f"urn:f:{n}", n) for n in range(5)]
    assert _temps(got) == [(f"urn:f:{n}", n) for n in range(5)] + [("urn:f:late", 9)]
    assert receiver.received[-1].body["id"] != first["id"]


async def test_a_receiver_refusing_large_bodies_gets_smaller_batches(
    api: Api, headers: dict[str, str], receiver: Receiver
) -> None:
    """413 (Content Too Large) to a notification of several entities is no refusal of the
    changes: the worker halves its batches until the receiver takes them; nothing is lost."""
    receiver.limit = 30
    await _create(api, headers, subscription(receiver.url))
    await _upsert(api, headers, [sensor(f"urn:big:{n}", n) for n in range(100)])  # one row
    got = await receiver.wait_for_entities(100, seconds=15)
    await receiver.quiet()
    assert _temps(got) == [(f"urn:big:{n}", n) for n in range(100)]
    assert [len(n.body["data"]) for n in receiver.refused] == [100, 50]
    assert all(len(n.body["data"]) <= 25 for n in receiver.received)


async def test_shared_rendering_gives_each_subscription_its_own_body(
    api: Api, headers: dict[str, str], receiver: Receiver
) -> None:
    url = receiver.url
    subs = {
        "temp": subscription(url, notification={"attributes": ["temperature"]}),
        "temp2": subscription(url, notification={"attributes": ["temperature"]}),
        # each differs from "temp" in one render option only
        "hum": subscription(url, notification={"attributes": ["humidity"]}),
        "changes": subscription(url, notification={"attributes": ["temperature"],
                                                   "showChanges": True}),
        "kv": subscription(url, notification={"format": "keyValues"}),
        "concise": subscription(url, notification={"format": "concise", "showChanges": True}),
        "geo": subscription(url, notification={
            "format": "keyValues", "attributes": ["humidity", "location"],
            "endpoint": {"uri": url, "accept": "application/geo+json"}}),
        "ld": subscription(url, notification={
            "sysAttrs": True, "attributes": ["humidity"],
            "endpoint": {"uri": url, "accept": "application/ld+json"}}),
    }
    ids = {name: await _create(api, headers, body) for name, body in subs.items()}
    batcher = _dispatcher(api).batcher
    hits = batcher.render_hits
    point = {"type": "Point", "coordinates": [100.5, 13.7]}
    ents = [sensor(f"urn:mx:{n}", 20 + n, humidity=40 + n) for n in range(3)]
    for e in ents:
        e["location"] = {"type": "GeoProperty", "value": point}
    await _upsert(api, headers, ents)
    await _upsert(api, headers, [sensor(f"urn:mx:{n}", 30 + n) for n in range(3)], update=True)
    await receiver.wait_for_entities(len(subs) * 6, seconds=15)
    await receiver.quiet()
    by_name: dict[str, list[dict[str, Any]]] = {name: [] for name in subs}
    notes: dict[str, list[dict[str, Any]]] = {name: [] for name in subs}
    name_of = {sid: name for name, sid in ids.items()}
    for note in receiver.received:
        name = name_of[note.body["subscriptionId"]]
        by_name[name].extend(data_of(note.body))
        notes[name].append(note.body)
    assert {k: len(v) for k, v in by_name.items()} == dict.fromkeys(subs, 6)
    order = [f"urn:mx:{n}" for n in range(3)] * 2
    for name in ("temp", "temp2"):
        assert by_name[name] == [
            {"id": f"urn:mx:{n}", "type": "Sensor",
             "temperature": {"type": "Property", "value": v}}
            for n, v in [(0, 20), (1, 21), (2, 22), (0, 30), (1, 31), (2, 32)]]
    assert by_name["hum"] == [
        {"id": f"urn:mx:{n}", "type": "Sensor", "humidity": {"type": "Property", "value": 40 + n}}
        for n in [0, 1, 2, 0, 1, 2]]
    assert by_name["changes"][3:] == [
        {"id": f"urn:mx:{n}", "type": "Sensor",
         "temperature": {"type": "Property", "value": 30 + n, "previousValue": 20 + n}}
        for n in range(3)]
    assert by_name["kv"][:3] == [
        {"id": f"urn:mx:{n}", "type": "Sensor", "temperature": 20 + n, "humidity": 40 + n,
         "location": point} for n in range(3)]
    assert [e["temperature"] for e in by_name["kv"][3:]] == [30, 31, 32]
    concise = by_name["concise"]
    assert [e["id"] for e in concise] == order
    assert [e["temperature"]["previousValue"] for e in concise[3:]] == [20, 21, 22]
    assert [e["temperature"]["value"] for e in concise[3:]] == [30, 31, 32]
    assert all("previousValue" not in str(e) for e in by_name["kv"] + by_name["temp"])
    geo = by_name["geo"]
    assert [f["id"] for f in geo] == order and all(f["type"] == "Feature" for f in geo)
    assert geo[0]["geometry"] == point and geo[0]["properties"]["humidity"] == 40
    assert "temperature" not in geo[0]["properties"]
    assert all(n["data"]["type"] == "FeatureCollection" and "@context" in n
               for n in notes["geo"])
    ld = by_name["ld"]
    assert [e["id"] for e in ld] == order
    assert set(ld[0]) == {"id", "type", "humidity", "createdAt", "modifiedAt"}
    assert "createdAt" in ld[0]["humidity"]
    assert all("@context" in n for n in notes["ld"])
    assert all("@context" not in n for n in notes["temp"] + notes["kv"])
    # "temp" and "temp2" share their render profile: one rendering served both.
    assert batcher.render_hits - hits >= 6


async def test_the_setting_reaches_the_dispatcher(tmp_path: Path) -> None:
    settings = load_settings(env={"NAKHON_NOTIFICATION_MAX_ENTITIES": "7"},
                             database_url=f"sqlite:///{tmp_path / 'n.db'}", data_dir=tmp_path,
                             auth="off")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert app.state.subscriptions.dispatcher.batcher.max_entities == 7


# --- the batcher alone (no engine) ------------------------------------------------------------

NOW = "2026-11-23T00:00:00.000Z"


def _rows(count: int, per_row: int, pks: list[int] | None = None) -> list[Any]:
    import orjson

    from nakhon.broker.model import NGSI_LD
    from nakhon.subscriptions.store import OutboxRow

    vocab = NGSI_LD + "default-context/"
    rows = []
    for seq in range(1, count + 1):
        changes = [[pks or [1], {"id": f"urn:u:{seq}:{i}", "types": [vocab + "Sensor"],
                                 "scope": None, "createdAt": NOW, "modifiedAt": NOW,
                                 "attrs": {vocab + "temperature": [
                                     {"type": "Property", "value": "x" * 100}]}}]
                   for i in range(per_row)]
        rows.append(OutboxRow(seq, orjson.dumps({"changes": changes}), NOW))
    return rows


def _entry() -> Any:
    from nakhon.broker.jsonld import CORE_TERM_MAP
    from nakhon.subscriptions.matcher import Active
    from nakhon.subscriptions.model import parse_subscription

    doc = {"id": "urn:ngsi-ld:Subscription:u", "type": "Subscription",
           "entities": [{"type": "Sensor"}],
           "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}}
    return Active(1, "t", parse_subscription(doc, CORE_TERM_MAP, None, creating=True), NOW, NOW)


def test_batches_respect_the_entity_cap_the_byte_bound_and_row_ends() -> None:
    from nakhon.subscriptions import notify
    from nakhon.subscriptions.batch import Batcher

    entry = _entry()
    batcher = Batcher(max_entities=4, max_bytes=10_000)
    opts, number = notify.options(entry.sub), batcher.profile_number(entry.sub)
    items = batcher.items(_rows(3, 3), 1)
    assert [(i.seq, i.index) for i in items] == [(s, i) for s in (1, 2, 3) for i in range(3)]
    cuts = []
    pos = 0
    while pos < len(items):
        batch, pos = batcher.take(1, items, pos, entry, opts, number)
        cuts.append((len(batch.parts), batch.done_seq))
    # 4 + 4 + 1; the first batch ends inside row 2, so its cursor stays on row 1.
    assert cuts == [(4, 1), (4, 2), (1, 3)]
    small = Batcher(max_entities=100, max_bytes=600)
    batch, end = small.take(1, items, 0, entry, opts, number)
    size = sum(len(p) + 1 for p in batch.parts)
    assert 1 < end < len(items) and size >= 600 and size - len(batch.parts[-1]) - 1 < 600
    # Only the changes that fire the subscription are its items.
    mixed = _rows(2, 2, pks=[2, 3])
    assert Batcher().items(mixed, 1) == []
    assert [(i.seq, i.index) for i in Batcher().items(mixed, 3)] == [
        (1, 0), (1, 1), (2, 0), (2, 1)]


def test_workers_share_decoded_rows_and_renderings_within_a_memory_bound() -> None:
    from nakhon.subscriptions import notify
    from nakhon.subscriptions.batch import Batcher, RowCache

    entry = _entry()
    batcher = Batcher()
    number = batcher.profile_number(entry.sub)
    rows = _rows(2, 4, pks=[1, 2])
    mine, theirs = batcher.items(rows, 1), batcher.items(rows, 2)
    assert batcher.rows.misses == 2 and batcher.rows.hits == 2  # decoded once for both
    assert all(a is b for a, b in zip(mine, theirs, strict=True))
    batcher.take(1, mine, 0, entry, notify.options(entry.sub), number)
    batcher.take(2, theirs, 0, entry, notify.options(entry.sub), number)
    assert batcher.render_misses == 8 and batcher.render_hits == 8  # rendered once for both

    small = Batcher()
    small.rows = RowCache(max_bytes=20_000)
    many = _rows(40, 4)
    items = small.items(many, 1)
    pos = 0
    while pos < len(items):
        _, pos = small.take(1, items, pos, entry, notify.options(entry.sub), number)
    assert 0 < small.rows.size <= 20_000 and len(small.rows._rows) < 40
    small.items(many[-1:], 1)  # the newest row is still there
    assert small.rows.hits == 1


async def test_writes_first_paces_by_what_a_notification_costs() -> None:
    """While writes queue, a window's budget (10 units) takes 10 one-entity notifications or
    2 of 100 entities (1 unit + 0.04 per further entity): not 10 of 100 (that would be 5 times
    the CPU the budget means), nor 1 entity per unit (batching would gain nothing)."""
    from nakhon.subscriptions.pacing import Pacer

    async def fits(pacer: Pacer, entities: int) -> bool:
        try:
            await asyncio.wait_for(pacer.pace("2999-01-01T00:00:00Z", entities), 0.2)
        except TimeoutError:
            return False
        return True

    for entities, per_window in ((1, 10), (100, 2), (30, 4)):
        pacer = Pacer()
        pacer.busy = lambda: True
        pacer.window = 1000.0  # one window for the whole test
        sent = 0
        while await fits(pacer, entities):
            sent += 1
        assert sent == per_window, (entities, sent)
    # Not busy, or overdue: no wait at all.
    pacer.busy = lambda: False
    assert await fits(pacer, 100)
    pacer.busy = lambda: True
    assert await fits(pacer, 100) is False
    assert await fits(pacer, 100) is False
    assert await asyncio.wait_for(pacer.pace("2000-01-01T00:00:00Z", 100), 0.2) is None


def test_rows_carry_previous_values_only_for_show_changes() -> None:
    """The outbox row of an update keeps the previous instances only when a subscription it
    fires has showChanges (they are about half of an update's payload)."""
    import orjson

    from nakhon.broker import ops
    from nakhon.broker.jsonld import CORE_TERM_MAP
    from nakhon.broker.model import NGSI_LD, Entity
    from nakhon.broker.ops_attrs import update_attrs
    from nakhon.subscriptions.matcher import Active, OutboxHook, Registry
    from nakhon.subscriptions.model import parse_subscription

    vocab = NGSI_LD + "default-context/"
    temp = vocab + "temperature"
    entity = Entity("urn:p:1", [vocab + "Sensor"], {temp: [{"type": "Property", "value": 1}]})
    current = ops.create_entity(entity)(None, NOW).entity

    def previous_in_row(*show: bool) -> list[bool]:
        registry = Registry()
        registry.replace([Active(pk, "t", parse_subscription(
            {"id": f"urn:ngsi-ld:Subscription:{pk}", "type": "Subscription",
             "entities": [{"type": "Sensor"}],
             "notification": {"showChanges": flag,
                              "endpoint": {"uri": "http://127.0.0.1:9/n"}}},
            CORE_TERM_MAP, None, creating=True), NOW, NOW)
            for pk, flag in enumerate(show, 1)])
        hook = OutboxHook(registry, lambda pks: None)
        outcome = update_attrs({temp: [{"type": "Property", "value": 2}]})(current, NOW)
        blocks = hook.rows([("t", entity.id, outcome)], NOW)
        changes = orjson.loads(blocks[0].rows[0][1])["changes"]
        return ["previous" in doc for _, doc in changes]

    assert previous_in_row(False, False) == [False]
    assert previous_in_row(False, True) == [True]

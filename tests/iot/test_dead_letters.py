"""Durable dead letters (nakhon.iot.dead_letters) on both engines, without the app around them.

Each test gets its own database: a SQLite file, or a fresh schema in the session's PostgreSQL
database. ``reopen`` opens another storage on the same database — a restart, or a second
process.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nakhon.iot.dead_letters import DeadLetterLog
from nakhon.iot.mqtt import parse_topic
from nakhon.iot.stats import BAD_PAYLOAD, UNKNOWN_APIKEY, IngestStats, mask_apikey
from nakhon.storage import storage_for
from nakhon.storage.base import Storage

Opener = Callable[[], Awaitable[Storage]]


@pytest.fixture
async def reopen(engine_url: str, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens a storage on this test's own database; all are closed at the end."""
    opened: list[Storage] = []
    schema = f"dl_{uuid.uuid4().hex[:10]}"

    async def open_store() -> Storage:
        store: Any
        if engine_url.startswith("sqlite"):
            store = storage_for(f"sqlite:///{tmp_path / 'letters.db'}")
        else:
            from nakhon.storage.postgres import PostgresStorage

            store = PostgresStorage(engine_url, schema=schema, pool_max=2)
        await store.open()
        opened.append(store)
        return store  # type: ignore[no-any-return]

    yield open_store
    for store in opened:
        await store.close()
    if not engine_url.startswith("sqlite"):
        from nakhon.storage.postgres.testing import drop_schema

        await drop_schema(engine_url, schema)


def reject(stats: IngestStats, n: int, *, tenant: str | None = "city", apikey: str = "k" * 16,
           reason: str = BAD_PAYLOAD) -> None:
    for i in range(n):
        stats.reject(reason, f"message {i}", transport="mqtt", payload=f"{i}".encode(),
                     tenant=tenant, apikey=apikey, device_id=f"d{i}",
                     topic=f"/{apikey}/d{i}/attrs")


async def test_kv_put_many_and_page(reopen: Opener) -> None:
    store = await reopen()
    rows = [(f"{i:04d}", {"tenant": "a" if i % 2 else "b", "n": i}) for i in range(10)]
    assert await store.kv_put_many("t.log", rows) == 0
    await store.kv_put("t.other", "0001", {"tenant": "a"})
    page = await store.kv_page("t.log", limit=3, offset=1, descending=True)
    assert [k for k, _ in page] == ["0008", "0007", "0006"]
    assert page[0][1] == {"tenant": "b", "n": 8}
    odd = await store.kv_page("t.log", limit=100, field="tenant", values=["a"])
    assert [v["n"] for _, v in odd] == [1, 3, 5, 7, 9]
    assert await store.kv_page("t.log", limit=5, field="tenant", values=[]) == []
    # keep: one transaction inserts and trims to the newest keys; replacing a key counts once.
    assert await store.kv_put_many("t.log", [("0010", {"n": 10}), ("0003", {"n": 3})],
                                   keep=4) == 7
    assert [k for k, _ in await store.kv_page("t.log", limit=100)] == [
        "0007", "0008", "0009", "0010"]
    assert await store.kv_list("t.other") == {"0001": {"tenant": "a"}}
    assert await store.kv_put_many("t.log", [], keep=4) == 0


async def test_letters_survive_a_restart_newest_first(reopen: Opener) -> None:
    stats = IngestStats(100, await reopen())
    stats.start()
    reject(stats, 5)
    await stats.stop()
    again = IngestStats(100, await reopen())
    letters = await again.letters(None, 10, 0)
    assert [d.detail for d in letters] == [f"message {i}" for i in (4, 3, 2, 1, 0)]
    first = letters[-1]
    assert first.reason == BAD_PAYLOAD and first.transport == "mqtt"
    assert first.tenant == "city" and first.device_id == "d0" and first.payload == "0"
    assert first.at.endswith("Z")
    assert [d.detail for d in await again.letters(None, 2, 3)] == ["message 1", "message 0"]


async def test_no_api_key_in_clear(reopen: Opener) -> None:
    stats = IngestStats(100, await reopen())
    key = "secret" + uuid.uuid4().hex
    stats.reject(UNKNOWN_APIKEY, f"no service group has apikey {key!r}", transport="mqtt",
                 apikey=key, device_id="d1", topic=f"/json/{key}/d1/attrs", payload=b"t|1")
    stats.reject(BAD_PAYLOAD, "internal error", transport="mqtt", topic=f"/{key}/d1/attrs")
    for letter in await stats.letters(None, 10, 0):
        assert key not in str(letter.to_doc())
    letter = (await stats.letters(None, 10, 0))[1]
    assert letter.apikey == mask_apikey(key) == "secr…"
    assert letter.topic == "/json/secr…/d1/attrs"
    assert letter.detail == "no service group has apikey 'secr…'"


async def test_bound_is_shared_oldest_first(reopen: Opener) -> None:
    """Two processes on one database: together they keep the newest ``max`` letters."""
    one = IngestStats(7, await reopen())
    two = IngestStats(7, await reopen())
    reject(one, 5, tenant="a")
    await one.dead_letters.flush()
    reject(two, 5, tenant="b")
    await two.dead_letters.flush()
    letters = await one.letters(None, 100, 0)
    assert [(d.tenant, d.detail) for d in letters] == (
        [("b", f"message {i}") for i in (4, 3, 2, 1, 0)] + [("a", "message 4"), ("a", "message 3")])
    assert one.dead_letters.evicted + two.dead_letters.evicted == 3
    assert [d.tenant for d in await one.letters(frozenset({"a"}), 100, 0)] == ["a", "a"]


async def test_tenant_scope(reopen: Opener) -> None:
    stats = IngestStats(100, await reopen())
    reject(stats, 2, tenant="a")
    reject(stats, 3, tenant="b")
    reject(stats, 1, tenant=None, reason=UNKNOWN_APIKEY)
    reject(stats, 1, tenant="")
    assert len(await stats.letters(None, 100, 0)) == 7
    assert {d.tenant for d in await stats.letters(frozenset({"a", ""}), 100, 0)} == {"a", ""}
    assert len(await stats.letters(frozenset({"b"}), 2, 0)) == 2
    assert await stats.letters(frozenset(), 100, 0) == []
    assert await stats.letters(frozenset({"zzz"}), 100, 0) == []


async def test_a_flood_is_one_write_per_flush_and_drops_are_counted(reopen: Opener) -> None:
    store = await reopen()
    writes: list[int] = []
    put_many = store.kv_put_many

    async def counting(namespace: str, items: Any, *, keep: int | None = None) -> int:
        writes.append(len(items))
        return await put_many(namespace, items, keep=keep)

    store.kv_put_many = counting  # type: ignore[method-assign]  # the real engine underneath
    log = DeadLetterLog(1000, store, buffer_max=300)
    stats = IngestStats(1000, store)
    stats.dead_letters = log
    reject(stats, 5000)  # in one go: the flusher cannot run in between
    assert log.pending == 300 and log.dropped == 4700
    await log.flush()
    assert writes == [300] and log.stored == 300 and log.pending == 0
    metrics = stats.snapshot()
    assert metrics["deadLettersDropped"] == 4700 and metrics["deadLettersStored"] == 300
    assert metrics["rejectedTotal"] == 5000
    letters = await stats.letters(None, 1000, 0)
    assert len(letters) == 300 and letters[0].detail == "message 4999"


async def test_the_flusher_batches_by_time_and_count(reopen: Opener) -> None:
    """The background flusher: a lone letter is written after ``flush_wait``; a burst is
    written in few writes, never two closer than ``min_gap``."""
    import asyncio

    store = await reopen()
    loop = asyncio.get_running_loop()
    starts: list[tuple[float, int]] = []
    put_many = store.kv_put_many

    async def timed(namespace: str, items: Any, *, keep: int | None = None) -> int:
        starts.append((loop.time(), len(items)))
        return await put_many(namespace, items, keep=keep)

    store.kv_put_many = timed  # type: ignore[method-assign]  # the real engine underneath
    stats = IngestStats(10_000)
    stats.dead_letters = log = DeadLetterLog(10_000, store, flush_items=100, flush_wait=0.05,
                                             min_gap=0.2)
    log.start()
    try:
        t0 = loop.time()
        reject(stats, 3)
        while log.stored < 3:  # noqa: ASYNC110 - polling the counter is the point
            await asyncio.sleep(0.01)
        assert starts[0][0] - t0 >= 0.05 and starts[0][1] == 3
        burst = loop.time()
        for _ in range(20):  # 20 × 50 letters in quick succession
            reject(stats, 50)
            await asyncio.sleep(0.01)
        burst = loop.time() - burst
        while log.stored < 1003:
            assert loop.time() - t0 < 30
            await asyncio.sleep(0.02)
    finally:
        await log.stop()
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(starts)]
    assert all(g >= 0.2 for g in gaps), gaps
    assert len(starts) <= burst / 0.2 + 3 and sum(n for _, n in starts) == 1003
    assert log.flushes == len(starts) and log.dropped == 0


async def test_a_failed_write_is_counted_and_recording_goes_on(reopen: Opener) -> None:
    store = await reopen()
    stats = IngestStats(100, store)
    reject(stats, 4)
    await store.close()  # the database goes away under the log
    if hasattr(store, "path"):  # SQLite opens a connection per write: make that one fail
        store.path = "/nonexistent/nakhon/letters.db"
    await stats.dead_letters.flush()
    assert stats.dead_letters.write_errors == 1 and stats.dead_letters.dropped == 4
    reject(stats, 2)
    assert stats.dead_letters.pending == 2


_text = st.text(max_size=2000)
_level = st.text(st.characters(exclude_characters="/"), min_size=1, max_size=300)
_inputs = st.fixed_dictionaries({
    "payload": st.one_of(st.binary(max_size=4000), _text),
    "detail": st.one_of(_text, st.just("no service group has apikey {k!r}")),
    "topic": st.one_of(st.none(), _text, st.sampled_from(["/{k}/{d}/attrs", "/json/{k}/{d}/attrs",
                                                          "/ul/{k}/{d}/attrs/{d}"])),
    "apikey": st.one_of(st.none(), _level),
    "device_id": st.one_of(st.none(), _level),
})


def _stored(text: str) -> str:
    """``text`` as a letter keeps it: NUL as U+FFFD, an unpaired surrogate (which the
    generated keys can hold) as '?', so that any engine can store it."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def _hostile(stats: IngestStats, case: dict[str, Any]) -> dict[str, Any]:
    key, topic = case["apikey"], case["topic"]
    built = topic is not None and "{k}" in topic and key is not None
    if topic is not None and "{k}" in topic:  # an IoT Agent topic carrying the key
        topic = topic.format(k=key or "", d=case["device_id"] or "d")
    detail = case["detail"]
    if detail.endswith("{k!r}"):
        detail = detail.format(k=key or "")
    letter = stats.reject(BAD_PAYLOAD, detail, transport="mqtt", payload=case["payload"],
                          tenant="t", apikey=key, device_id=case["device_id"], topic=topic)
    doc = letter.to_doc()
    assert all(len(v) <= 512 for v in doc.values() if isinstance(v, str))
    assert "\x00" not in str(doc)
    str(doc).encode("utf-8")  # no unpaired surrogate
    if key is not None:
        assert doc["apikey"] == _stored(mask_apikey(key))
        assert len(doc["apikey"]) <= 5
    if key is not None and len(key) >= 8 and key not in detail.replace(repr(key), ""):
        assert key not in doc["detail"]
    if built and len(key) >= 8 and key not in (case["device_id"] or "d"):
        assert key not in doc["topic"]
    sent = parse_topic(topic) if built and len(topic) <= 256 else None
    if sent is not None:  # the key's level, as ingest reads it, is masked
        kept = parse_topic(doc["topic"])
        assert kept is not None
        assert kept.apikey == _stored(mask_apikey(sent.apikey))
    return doc


async def test_any_input_is_kept_bounded_and_readable(reopen: Opener) -> None:
    """Whatever a device sends, reject() never raises, the letter is bounded and holds no
    key, and one batch of such letters is written and read back exactly on the engine."""
    cases: list[dict[str, Any]] = []
    memory = IngestStats(10)

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(_inputs)
    def collect(case: dict[str, Any]) -> None:
        _hostile(memory, case)
        cases.append(case)

    collect()
    stats = IngestStats(len(cases), await reopen())
    docs = [_hostile(stats, case) for case in cases]
    await stats.dead_letters.flush()
    assert stats.dead_letters.write_errors == 0 and stats.dead_letters.dropped == 0
    back = await stats.letters(None, 1000, 0)
    assert [d.to_doc() for d in reversed(back)] == docs

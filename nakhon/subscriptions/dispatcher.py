"""The dispatcher: delivers the outbox, per subscription, in order, at least once.

One worker task per subscription reads the outbox from its cursor in ``seq`` order, sends the
changes of the rows that list it — whatever is waiting goes out together, in notifications of
up to ``max_entities`` entities (``nakhon.subscriptions.batch``), and a single change at once
when nothing else waits — retrying transient failures with capped exponential backoff, and then
moves its cursor; rows all subscriptions have passed are deleted by the housekeeping tick. A
dead endpoint therefore only ever holds up its own worker: writes never wait for delivery (the
hook only inserts rows) and other subscriptions have their own workers. A semaphore bounds how
many sends are in flight at once.

Durability comes from the rows: they are committed with the change and a cursor passes them
only after a successful send, so after a crash or restart the workers resend whatever is
left — possibly a notification that had been sent just before the crash (hence *at least*
once; a notification's id comes from its first change, so a batch resent from the same change
keeps its id and a receiver can drop the duplicate).

Periodic subscriptions (``timeInterval``) do not use the outbox (``periodic``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nakhon.broker.render import RenderOptions
from nakhon.core.logs import get_logger
from nakhon.storage.rows import utc_now
from nakhon.subscriptions import notify
from nakhon.subscriptions.batch import Batch, Batcher
from nakhon.subscriptions.delivery import (
    DeliveryError,
    HttpConnection,
    MqttHub,
    classify,
    mqtt_message,
)
from nakhon.subscriptions.matcher import Active, Registry
from nakhon.subscriptions.pacing import Pacer
from nakhon.subscriptions.periodic import periodic_entities
from nakhon.subscriptions.store import OutboxRow, SharedFetch, Stats, SubStore, matching

log = get_logger("nakhon.subscriptions.dispatcher")

SCAN = 64  # outbox rows (write batches) read at a time by one subscription's worker
ACK_EVERY = 2000  # in a long backlog, the cursor is saved about every ACK_EVERY changes


@dataclass(slots=True)
class _Worker:
    event: asyncio.Event = field(default_factory=asyncio.Event)  # new rows, or a change
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # the subscription changed
    task: asyncio.Task[None] | None = None
    http: HttpConnection | None = None
    limit: int = 0  # most entities per notification the receiver took (0: no limit seen)


class Dispatcher:
    """Outbox delivery for every subscription of this process (see the module docstring)."""

    def __init__(self, store: SubStore, registry: Registry, storage: Any, *,
                 concurrency: int = 64, default_timeout: float = 10.0,
                 backoff_base: float = 0.25, backoff_cap: float = 10.0,
                 poll_interval: float = 2.0, max_entities: int = 100) -> None:
        self.store = store
        self.reads = SharedFetch(store)  # workers reading the same rows share the reads
        self.registry = registry
        self.storage = storage
        self.stats: dict[int, Stats] = {}
        self.cursors: dict[int, int] = {}  # per subscription: last outbox seq handled
        self.default_timeout = default_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.poll_interval = poll_interval
        self._gate = asyncio.Semaphore(concurrency)
        self._workers: dict[int, _Worker] = {}
        self._periodic: dict[int, asyncio.Task[None]] = {}
        self._mqtt = MqttHub()
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: asyncio.Task[None] | None = None
        self.refresh: Callable[[], Awaitable[None]] | None = None
        self.pacer = Pacer()  # writes first, for a bounded time (nakhon.subscriptions.pacing)
        self._prep: dict[int, tuple[Active, list[tuple[str, str]], RenderOptions, int]] = {}
        # Waiting changes go out together, up to this many per notification (and ~1 MB).
        self.batcher = Batcher(max_entities)
        self._wake_lock = threading.Lock()
        self._wake_pks: set[int] = set()
        self._wake_armed = False
        # Only one process per database delivers (at-least-once, in order): ``elect`` (set by
        # the service for PostgreSQL) waits for a database-wide lock and then sets ``leader``;
        # without it this process is the only one and leads at once.
        self.leader = asyncio.Event()
        self.elect: Callable[[], Coroutine[Any, Any, None]] | None = None
        self._election: asyncio.Task[None] | None = None

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.elect is None:
            self.leader.set()
        else:
            self._election = self._loop.create_task(self.elect(), name="nakhon-notify-leader")
        for entry in self.registry.by_pk.values():
            self._ensure(entry.pk).event.set()  # resend whatever a crash or stop left behind
            self.changed(entry.pk)
        self._background = self._loop.create_task(self._tick(), name="nakhon-notify-tick")

    async def stop(self) -> None:
        self._stopping.set()
        tasks = [w.task for w in self._workers.values() if w.task is not None]
        tasks += list(self._periodic.values())
        if self._background is not None:
            tasks.append(self._background)
        if self._election is not None:
            tasks.append(self._election)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for worker in self._workers.values():
            if worker.http is not None:
                worker.http.close()
        await self._mqtt.close()

    async def _tick(self) -> None:
        """Housekeeping: pick up other processes' subscription edits (PostgreSQL) and delete
        the outbox rows every subscription has passed."""
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                if self.refresh is not None:
                    await self.refresh()
                for pk in self.registry.by_pk:
                    self._ensure(pk)
                known = [self.cursors.get(pk, 0) for pk in self.registry.by_pk]
                await self.store.collect(min(known) + 1 if known else 2**62)
            except Exception:
                log.exception("dispatcher housekeeping failed")

    # --- wake-ups -----------------------------------------------------------------------------

    def wake(self, pks: set[int]) -> None:
        """Rows for ``pks`` committed (called from the writer's thread or task). Wake-ups are
        coalesced: while one is on its way to the loop, later ones only add to it."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._wake_lock:
            self._wake_pks |= pks
            if self._wake_armed:
                return
            self._wake_armed = True
        with contextlib.suppress(RuntimeError):  # loop shutting down: the rows stay durable
            loop.call_soon_threadsafe(self._wake_now)

    def _wake_now(self) -> None:
        with self._wake_lock:
            pks, self._wake_pks = self._wake_pks, set()
            self._wake_armed = False
        for pk in pks:
            self._ensure(pk).event.set()

    def changed(self, pk: int) -> None:
        """A subscription was created, updated or deleted: (re)start what it needs."""
        if self._loop is None:
            return
        entry = self.registry.by_pk.get(pk)
        periodic = self._periodic.get(pk)
        if entry is None or entry.sub.time_interval is None:
            if periodic is not None:
                periodic.cancel()
                del self._periodic[pk]
        elif periodic is None:
            self._periodic[pk] = self._loop.create_task(self._run_periodic(pk))
        self._prep.pop(pk, None)
        worker = self._workers.get(pk)
        if worker is not None:
            worker.event.set()  # re-read the subscription (deleted / resumed / new endpoint)
            worker.changed.set()
            worker.limit = 0
            if worker.http is not None:
                worker.http.close()
                worker.http = None

    def _ensure(self, pk: int) -> _Worker:
        worker = self._workers.get(pk)
        if worker is None or worker.task is None or worker.task.done():
            worker = worker or _Worker()
            self._workers[pk] = worker
            assert self._loop is not None
            worker.task = self._loop.create_task(self._run_worker(pk, worker),
                                                 name=f"nakhon-notify-{pk}")
        return worker

    # --- the per-subscription worker -------------------------------------------------------

    async def _run_worker(self, pk: int, worker: _Worker) -> None:
        try:
            while not self._stopping.is_set():
                await self.leader.wait()
                entry = self.registry.by_pk.get(pk)
                if entry is None:
                    return
                worker.event.clear()
                if not entry.sub.is_active:  # paused: keep the rows until it is resumed
                    await self._wait(worker.event, self.poll_interval)
                    continue
                cursor = self.cursors.get(pk, 0)
                rows = await self.reads.fetch(cursor, SCAN)
                if not rows:
                    # Without a wake-up, look again now and then: rows committed by another
                    # process, or wake-ups lost in a crash.
                    await self._wait(worker.event, self.poll_interval * 5)
                    continue
                new_cursor = await self._deliver_rows(pk, worker, cursor, matching(rows, pk),
                                                      rows[-1][0])
                if new_cursor > self.cursors.get(pk, 0) and pk in self.registry.by_pk:
                    await self.store.ack(pk, new_cursor, self._stats(pk))
                    self.cursors[pk] = new_cursor
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("notification worker failed; it restarts on the next wake-up",
                          subscription_pk=pk)
        finally:
            if worker.http is not None:
                worker.http.close()
                worker.http = None

    async def _deliver_rows(self, pk: int, worker: _Worker, cursor: int,
                            rows: list[OutboxRow], last_seq: int) -> int:
        """Send the rows' changes for ``pk`` in order, in batches (``nakhon.subscriptions.
        batch``); the new cursor (``last_seq`` when all were handled, else just before the row
        of the first change not sent)."""
        items = self.batcher.items(rows, pk)
        since_ack = pos = 0
        while pos < len(items):
            entry = self.registry.by_pk.get(pk)
            if entry is None:
                return items[pos].seq - 1
            cap = min(self.batcher.max_entities, worker.limit or len(items))
            await self.pacer.pace(items[pos].created_at, min(len(items) - pos, cap))
            _, opts, prof = self._prepared(entry)
            start = pos
            batch, pos = self.batcher.take(pk, items, pos, entry, opts, prof, worker.limit)
            sent = await self._deliver_batch(pk, worker, batch)
            if sent is None:  # too large for the receiver: again, in smaller batches
                pos = start
                continue
            if not sent:
                return batch.first.seq - 1  # resent from this row's start (at-least-once)
            since_ack += len(batch.items)
            if since_ack >= ACK_EVERY and pos < len(items):
                # Long backlogs: record progress now and then (fewer resends on crash).
                await self.store.ack(pk, batch.done_seq, self._stats(pk))
                self.cursors[pk] = max(self.cursors.get(pk, 0), batch.done_seq)
                since_ack = 0
        return max(last_seq, cursor)

    async def _deliver_batch(self, pk: int, worker: _Worker, batch: Batch) -> bool | None:
        """Send one batch until it succeeds or is refused; a retry resends it whole, with the
        same id. False: stop (deleted, stopping). None: the receiver answered 413 (Content
        Too Large) to several entities — the worker halves its batches and tries again."""
        attempt = 0
        while not self._stopping.is_set():
            entry = self.registry.by_pk.get(pk)
            if entry is None:
                return False
            _, opts, prof = self._prepared(entry)
            self.batcher.render(batch, entry, opts, prof)  # the subscription changed meanwhile
            if not batch.parts:
                return True  # nothing renderable (logged): never block the queue on it
            try:
                await self.send(entry, batch.parts, batch.nid, worker)
                return True
            except DeliveryError as exc:
                log.warning("notification failed", subscription=entry.sub.id,
                            endpoint=entry.sub.endpoint.uri, reason=str(exc), retry=exc.retry,
                            entities=len(batch.parts))
                if exc.status == 413 and len(batch.items) > 1:
                    worker.limit = max(1, len(batch.items) // 2)
                    return None
                if not exc.retry:
                    return True
                await self.store.ack(pk, self.cursors.get(pk, 0), self._stats(pk))
                delay = min(self.backoff_cap, self.backoff_base * (2 ** attempt))
                attempt += 1
                # Only a change of the subscription (new endpoint, deletion) cuts the backoff
                # short; new rows must not, or a busy tenant would hammer a dead endpoint.
                worker.changed.clear()
                await self._wait(worker.changed, delay)
        return False

    async def _wait(self, event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    def _stats(self, pk: int) -> Stats:
        return self.stats.setdefault(pk, Stats())

    # --- sending ---------------------------------------------------------------------------

    async def send(self, entry: Active, parts: list[bytes], nid: str,
                   worker: _Worker | None) -> None:
        """Send one notification of the encoded entities ``parts``; updates the statistics
        (one notification, however many entities); raises DeliveryError."""
        sub = entry.sub
        endpoint = sub.endpoint
        stats = self._stats(entry.pk)
        now = notify.notified_at()
        body = notify.body(sub, parts, nid, now)
        headers = self._prepared(entry)[0]
        timeout = (endpoint.timeout_ms / 1000.0) if endpoint.timeout_ms else self.default_timeout
        stats.last_notification = now
        try:
            async with self._gate:
                scheme = endpoint.uri.split(":", 1)[0].lower()
                if scheme in ("mqtt", "mqtts"):
                    qos = int(dict(endpoint.notifier_info).get("MQTT-QoS", "0"))
                    await self._mqtt.publish(endpoint.uri, qos, mqtt_message(headers, body),
                                             timeout)
                else:
                    conn = worker.http if worker is not None else None
                    if conn is None:
                        conn = HttpConnection(endpoint.uri)
                        if worker is not None:
                            worker.http = conn
                    try:
                        classify(await conn.post(headers, body, timeout))
                    finally:
                        if worker is None:
                            conn.close()
        except DeliveryError:
            stats.times_failed += 1
            stats.last_failure = now
            raise
        stats.times_sent += 1
        stats.last_success = now

    def _prepared(self, entry: Active) -> tuple[list[tuple[str, str]], RenderOptions, int]:
        """What every notification of ``entry`` shares: headers, render options and render
        profile number (kept while the registry holds this very entry; an update replaces
        it)."""
        found = self._prep.get(entry.pk)
        if found is None or found[0] is not entry:
            found = self._prep[entry.pk] = (entry, notify.headers(entry.sub, entry.tenant),
                                            notify.options(entry.sub),
                                            self.batcher.profile_number(entry.sub))
        return found[1], found[2], found[3]

    # --- periodic subscriptions ----------------------------------------------------------------

    async def _run_periodic(self, pk: int) -> None:
        while not self._stopping.is_set():
            await self.leader.wait()
            entry = self.registry.by_pk.get(pk)
            if entry is None or entry.sub.time_interval is None:
                return
            if entry.sub.live(utc_now()):
                try:
                    data = await periodic_entities(self.storage, entry)
                    if data:
                        nid = f"urn:ngsi-ld:Notification:{pk}-{datetime.now(UTC).timestamp()}"
                        await self.send(entry, notify.encode(entry.sub, data), nid, None)
                except DeliveryError as exc:
                    log.warning("periodic notification failed", subscription=entry.sub.id,
                                reason=str(exc))
                except Exception:
                    log.exception("periodic notification failed", subscription=entry.sub.id)
                await self.store.ack(pk, self.cursors.get(pk, 0), self._stats(pk))
            await asyncio.sleep(entry.sub.time_interval)

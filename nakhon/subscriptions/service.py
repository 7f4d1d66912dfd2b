"""Subscription use cases (5.8): create, query, retrieve, update, delete — and the machinery.

:class:`SubscriptionService` owns the registry (parsed subscriptions, indexed for the write
hook), the outbox hook it registers with the storage engine and the dispatcher. Every use case
checks authorisation itself (DESIGN.md rule 2). Subscriptions are configuration that can carry
a receiver's credentials (``receiverInfo``), so reading them needs a credential that covers the
tenant, as writing does; anonymous clients see none.
"""

from __future__ import annotations

import asyncio
from typing import Any

from nakhon.broker.jsonld import ContextResolver, TermMap
from nakhon.core.auth import Access, Principal
from nakhon.core.errors import BadRequestData, ResourceNotFound, TooManyResults
from nakhon.core.logs import get_logger
from nakhon.storage.rows import utc_now
from nakhon.subscriptions.dispatcher import Dispatcher
from nakhon.subscriptions.matcher import Active, OutboxHook, Registry
from nakhon.subscriptions.model import (
    merge_fragment,
    new_id,
    parse_subscription,
    stored_doc,
)
from nakhon.subscriptions.process import AckBuffer, WriterBusy, lock_for, watch_outbox
from nakhon.subscriptions.store import PgSubStore, Stats, StoredSub, SubStore, store_for

log = get_logger("nakhon.subscriptions")


ROLES = ("inline", "writer", "deliverer")


def _no_wake(pks: set[int]) -> None:
    """A writer's wake-up goes nowhere: the delivering process polls the outbox."""


class SubscriptionService:
    """Subscriptions over one storage engine (see the module docstring).

    ``role``: ``inline`` writes the outbox and delivers it in this process (if it holds the
    database's delivery lock); ``writer`` only writes the outbox (statistics are read from the
    database); ``deliverer`` only delivers — ``nakhon notify`` (``nakhon.subscriptions.
    process``). ``poll_interval``: how often a deliverer looks for new rows."""

    def __init__(self, storage: Any, access: Access, resolver: ContextResolver, *,
                 max_limit: int = 1000, max_delay: float = 2.0,
                 max_entities: int = 100, role: str = "inline",
                 poll_interval: float = 0.025, ack_interval: float = 0.2) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        self.role = role
        self.poll_interval = poll_interval
        self.ack_interval = ack_interval
        self._tasks: list[asyncio.Task[None]] = []
        self.storage = storage
        self.max_delay = max_delay
        self.max_entities = max_entities  # most entities in one notification
        self.access = access
        self.resolver = resolver
        self.max_limit = max_limit
        self.registry = Registry()
        self.store: SubStore | None = None
        self.dispatcher: Dispatcher | None = None
        self.hook: OutboxHook | None = None
        self._version = ""
        self._edits = 0  # local creates/updates/deletes committed (see _load)
        self._deleting: set[int] = set()
        self._lock: Any = None  # the delivery lock (nakhon.subscriptions.process)

    # --- life cycle (the app's lifespan) -----------------------------------------------------

    async def open(self, *, multi_process: bool | None = None) -> None:
        """Load subscriptions, hook into the writer, start delivering. Call after storage.open.

        ``multi_process``: poll for other processes' subscription edits (default: on for
        PostgreSQL, where several servers may share the database)."""
        self.store = store_for(self.storage)
        if multi_process is None:
            multi_process = isinstance(self.store, PgSubStore)
        loop = asyncio.get_running_loop()
        if self.role == "writer":  # the outbox only; a delivering process sends it
            await self._load()
            self.hook = OutboxHook(self.registry, _no_wake)
            self.storage.write_hooks.append(self.hook)
            if multi_process:  # other servers' subscription edits
                self._tasks.append(loop.create_task(self._poll_edits(2.0)))
            return
        if self.role == "deliverer":
            acks = AckBuffer(self.store, self.ack_interval)
            acks.start()
            self.store = acks
        self.dispatcher = Dispatcher(self.store, self.registry, self.storage,
                                     max_entities=self.max_entities)
        self.dispatcher.pacer.max_delay = self.max_delay
        await self._load()
        if self.role == "inline":
            self.hook = OutboxHook(self.registry, self.dispatcher.wake)
            self.dispatcher.pacer.busy = self.hook.busy
            self.storage.write_hooks.append(self.hook)
            if multi_process:
                self.dispatcher.refresh = self._refresh
        else:
            dispatcher = self.dispatcher
            busy = dispatcher.pacer.busy = WriterBusy()  # writes first, across processes
            self._tasks.append(loop.create_task(watch_outbox(
                self.store, dispatcher.leader, lambda: dispatcher.wake(set(self.registry.by_pk)),
                self._refresh, self.poll_interval, busy)))
        self._lock = lock_for(self.storage)
        if self._lock is not None:  # one delivering process per database
            self.dispatcher.elect = self._elect
        await self.dispatcher.start()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.hook is not None and self.hook in self.storage.write_hooks:
            self.storage.write_hooks.remove(self.hook)
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self.store is not None:
            await self.store.close()

    async def _load(self) -> None:
        """(Re)load every subscription from the store into the registry.

        Runs beside this process's own create/update/delete (at open, on taking over delivery,
        on another process's edit): a snapshot read before one of them committed must not undo
        it — a dropped subscription would miss the changes written until the next reload. So
        each local edit counts itself once its write is committed, and a snapshot during which
        the count moved is read again; a subscription being deleted is never put back."""
        assert self.store is not None
        while True:
            seen = self._edits
            version = await self.store.version()
            loaded = [(stored, await self._parse_stored(stored))
                      for stored in await self.store.load()]
            if seen == self._edits:
                break
        self._version = version
        entries = []
        for stored, entry in loaded:
            if entry is not None and stored.pk not in self._deleting:
                entries.append(entry)
                if self.dispatcher is not None:
                    self.dispatcher.stats.setdefault(stored.pk, stored.stats)
                    cursor = self.dispatcher.cursors.get(stored.pk, 0)
                    self.dispatcher.cursors[stored.pk] = max(cursor, stored.cursor)
        self.registry.replace(entries)

    async def _elect(self) -> None:
        """Become the one delivering process of this database.

        A lock held for as long as this process runs (``nakhon.subscriptions.process``: a
        session advisory lock on PostgreSQL, a file lock beside a SQLite file): when the
        leader dies the lock goes, and another process takes over from the cursors saved in
        the database (at-least-once: a notification sent but not yet acknowledged may be sent
        again, with the same notification id)."""
        assert self.dispatcher is not None and self._lock is not None
        while True:
            try:
                if await self._lock.try_acquire():
                    try:
                        await self._load()  # the freshest cursors, saved by a previous leader
                        self.dispatcher.leader.set()
                        log.info("delivering notifications for this database")
                        await asyncio.Event().wait()  # hold the lock until stopped
                    finally:
                        await self._lock.release()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notification leader election failed; retrying")
            await asyncio.sleep(self.dispatcher.poll_interval)

    async def _poll_edits(self, seconds: float) -> None:
        """(A writer) pick up other processes' subscription edits now and then."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await self._refresh()
            except Exception:
                log.exception("reloading subscriptions failed")

    async def _refresh(self) -> None:
        """Pick up subscriptions another process created, changed or deleted."""
        assert self.store is not None
        version = await self.store.version()
        if version != self._version:
            before = {pk: e.modified_at for pk, e in self.registry.by_pk.items()}
            await self._load()
            after = {pk: e.modified_at for pk, e in self.registry.by_pk.items()}
            # Only what changed: changed() restarts a worker's connection, and one cut in the
            # middle of a send costs a failed attempt and a backoff.
            for pk in before.keys() | after.keys():
                if before.get(pk) != after.get(pk) and self.dispatcher is not None:
                    self.dispatcher.changed(pk)

    async def _parse_stored(self, stored: StoredSub) -> Active | None:
        context = stored.doc.get("jsonldContext")
        try:
            terms = await self.resolver.resolve(context)
            sub = parse_subscription(stored.doc, terms, context, creating=False)
        except Exception as exc:  # e.g. its remote @context is unreachable right now
            log.error("subscription not loaded", subscription=stored.id, reason=str(exc))
            return None
        return Active(stored.pk, stored.tenant, sub, stored.created_at, stored.modified_at)

    # --- use cases -------------------------------------------------------------------------

    def _require(self) -> tuple[SubStore, Dispatcher | None]:
        if self.store is None or (self.dispatcher is None and self.role != "writer"):
            raise RuntimeError("SubscriptionService is not open")
        return self.store, self.dispatcher

    async def _stats_of(self, entries: list[Active]) -> list[Stats]:
        """Delivery statistics: this process's own, or (a writer) as the delivering process
        last saved them with its cursors."""
        store, dispatcher = self._require()
        if dispatcher is not None:
            return [dispatcher.stats.get(e.pk) or Stats() for e in entries]
        saved = await store.stats() if entries else {}
        return [saved.get(e.pk) or Stats() for e in entries]

    async def create(self, principal: Principal, tenant: str, body: Any, terms: TermMap,
                     context: Any) -> str:
        """Create Subscription (5.8.1); returns its id (generated when the body has none)."""
        self.access.require_write(principal, tenant)
        store, dispatcher = self._require()
        if not isinstance(body, dict):
            raise BadRequestData("The body must be a Subscription object.")
        doc = stored_doc(body, body.get("id") or new_id(), context)
        sub = parse_subscription(doc, terms, context, creating=True)
        now = utc_now()
        pk, cursor = await store.insert(tenant, sub.id, doc, now)
        self._edits += 1  # from here to the registry without an await (see _load)
        if dispatcher is not None:
            dispatcher.stats[pk] = Stats()
            dispatcher.cursors[pk] = cursor
        self.registry.put(Active(pk, tenant, sub, now, now))
        if dispatcher is not None:
            dispatcher.changed(pk)
        return sub.id

    async def query(self, principal: Principal, tenant: str, *, limit: int,
                    offset: int) -> tuple[list[tuple[Active, Stats]], int]:
        """Query Subscriptions (5.8.4): a page, ordered by id, and the total count."""
        self.access.require_write(principal, tenant)
        if limit > self.max_limit:
            raise TooManyResults(f"limit {limit} is above the maximum of {self.max_limit}.",
                                 maxLimit=self.max_limit)
        entries = self.registry.of_tenant(tenant)
        page = entries[offset:offset + limit]
        return list(zip(page, await self._stats_of(page), strict=True)), len(entries)

    async def retrieve(self, principal: Principal, tenant: str,
                       sub_id: str) -> tuple[Active, Stats]:
        """Retrieve Subscription (5.8.3)."""
        self.access.require_write(principal, tenant)
        entry = self._find(tenant, sub_id)
        return entry, (await self._stats_of([entry]))[0]

    async def update(self, principal: Principal, tenant: str, sub_id: str, fragment: Any,
                     terms: TermMap | None, context: Any) -> None:
        """Update Subscription (5.8.2): merge ``fragment``. ``terms``/``context``: the request's
        @context when it gave one (it then becomes the subscription's), else None."""
        self.access.require_write(principal, tenant)
        store, dispatcher = self._require()
        if not isinstance(fragment, dict) or not fragment:
            raise BadRequestData("The body must be a non-empty Subscription fragment.")
        if fragment.get("id") not in (None, sub_id):
            raise BadRequestData("The id in the body differs from the id in the path.")
        if "type" in fragment and fragment["type"] != "Subscription":
            raise BadRequestData('type must be "Subscription".')
        entry = self._find(tenant, sub_id)
        current = entry.sub.doc
        if terms is not None and context != current.get("jsonldContext"):
            # The fragment speaks the request's @context: restate the stored members in it.
            from nakhon.subscriptions.view import render_subscription

            current = render_subscription(entry, Stats(), terms.compact, utc_now())
            current.pop("status", None)
        else:
            terms, context = entry.sub.terms, entry.sub.context
        doc = stored_doc(merge_fragment(current, fragment), sub_id, context)
        sub = parse_subscription(doc, terms, context, creating=False)
        now = utc_now()
        await store.update(entry.pk, doc, now)
        self._edits += 1
        self.registry.put(Active(entry.pk, tenant, sub, entry.created_at, now))
        if dispatcher is not None:
            dispatcher.changed(entry.pk)

    async def delete(self, principal: Principal, tenant: str, sub_id: str) -> None:
        """Delete Subscription (5.8.5): undelivered notifications go with it."""
        self.access.require_write(principal, tenant)
        store, dispatcher = self._require()
        entry = self._find(tenant, sub_id)
        self._deleting.add(entry.pk)  # a reload meanwhile must not put it back
        self.registry.remove(entry.pk)
        if dispatcher is not None:
            dispatcher.changed(entry.pk)
        try:
            await store.delete(entry.pk)
        finally:
            self._edits += 1
            self._deleting.discard(entry.pk)
        if dispatcher is not None:
            dispatcher.stats.pop(entry.pk, None)
            dispatcher.cursors.pop(entry.pk, None)

    def _find(self, tenant: str, sub_id: str) -> Active:
        entry = self.registry.find(tenant, sub_id)
        if entry is None:
            raise ResourceNotFound(f"Subscription {sub_id} not found.")
        return entry

"""Which subscriptions a change fires, and the write hook that turns that into outbox rows.

The hook (:class:`OutboxHook`) runs inside every write transaction (``nakhon.storage.hooks``),
so its cost per change is what decides whether writes keep their speed with subscriptions on.
Hence: a tenant without subscriptions costs one dict lookup; otherwise candidates come from an
index by entity type and by watched attribute (:class:`TenantIndex`), the change is classified
once (:class:`~nakhon.subscriptions.change.ChangeInfo`) and only then are filters evaluated,
once per group of equal filters (``q`` prepared once per subscription), and the whole batch
becomes one outbox row, serialised once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from nakhon.broker.model import Entity
from nakhon.core.logs import get_logger
from nakhon.storage.base import Outcome
from nakhon.storage.hooks import Change, HookRows
from nakhon.subscriptions.change import ChangeInfo
from nakhon.subscriptions.model import Subscription
from nakhon.subscriptions.qfast import prepare_q

log = get_logger("nakhon.subscriptions")

OUTBOX_TABLE = "notification_outbox"
OUTBOX_COLUMNS = ("subs", "payload", "created_at")


@dataclass(slots=True)
class Active:
    """A stored subscription as the matcher and dispatcher know it."""

    pk: int
    tenant: str
    sub: Subscription
    created_at: str
    modified_at: str


@dataclass(slots=True)
class Group:
    """Candidates with equal filters: one evaluation of ``sub`` decides for all of them.

    ``plain`` lists the pks that fire whenever the filter matches (no throttling, no expiry
    before ``expiry``); the others are checked one by one."""

    sub: Subscription
    entries: list[Active]
    plain: list[int] = field(default_factory=list)
    checked: list[Active] = field(default_factory=list)
    expiry: str | None = None  # the earliest expiresAt among the plain ones
    by_type_only: bool = False
    q: Callable[[Entity], bool] | None = None  # sub.q, prepared (nakhon.subscriptions.qfast)
    # Only the triggers left to check: type selectors alone (the index matched them already),
    # no q, scopeQ or geoQ — the common dashboard subscription.
    triggers_only: bool = False

    def seal(self) -> None:
        sub = self.sub
        self.by_type_only = sub.by_type_only
        self.triggers_only = (sub.by_type_only and sub.q is None and sub.scope_q is None
                              and sub.geo is None)
        if self.sub.q is not None:
            self.q = prepare_q(self.sub.q)
        for entry in self.entries:
            sub = entry.sub
            if sub.throttling:
                self.checked.append(entry)
                continue
            self.plain.append(entry.pk)
            if sub.expires_at is not None and (self.expiry is None or sub.expires_at < self.expiry):
                self.expiry = sub.expires_at


@dataclass(slots=True)
class TenantIndex:
    """The on-change subscriptions of one tenant, indexed for candidate selection."""

    by_type: dict[str, list[Active]] = field(default_factory=dict)
    by_attr: dict[str, list[Active]] = field(default_factory=dict)
    other: list[Active] = field(default_factory=list)
    # Subscriptions whose filters are equal share a group: ChangeInfo.fires is evaluated once
    # per change and group (ten dashboards subscribing to the same type cost one evaluation).
    group: dict[int, int] = field(default_factory=dict)
    _filters: dict[Any, list[tuple[Any, int]]] = field(default_factory=dict)
    # Candidates by entity types, while no subscription is indexed by attribute (the answer
    # then depends on the types only), already grouped by filter. Filled by the writer; a new
    # index starts empty.
    _by_types: dict[tuple[str, ...], list[Group]] = field(default_factory=dict)

    def add(self, entry: Active) -> None:
        self.group[entry.pk] = self._group_of(entry.sub)
        self._add(entry)

    def _group_of(self, sub: Subscription) -> int:
        # Bucketed by the hashable parts, then compared with == (dataclass equality; objects
        # without it compare by identity, so unknown kinds simply never share a group).
        bucket = self._filters.setdefault((sub.triggers, sub.watched, sub.by_type_only), [])
        key = (tuple(sub.entities), sub.q, sub.scope_q, sub.geo)
        for other, gid in bucket:
            try:
                if other == key:
                    return gid
            except Exception:  # an uncomparable filter: its own group
                continue
        gid = len(self.group) + 1
        bucket.append((key, gid))
        return gid

    def _add(self, entry: Active) -> None:
        sub = entry.sub
        if sub.entities:
            iris: set[str] = set()
            for sel in sub.entities:
                if sel.type_iris is None:  # an AND / nested selection: checked one by one
                    self.other.append(entry)
                    return
                iris.update(sel.type_iris)
            for iri in iris:
                self.by_type.setdefault(iri, []).append(entry)
        elif sub.watched:
            for iri in sub.watched:
                self.by_attr.setdefault(iri, []).append(entry)
        else:
            self.other.append(entry)

    def candidates(self, types: list[str], attrs: Iterable[str]) -> list[Active]:
        return self._candidates(types, attrs)

    def groups(self, types: list[str], attrs: Iterable[str]) -> list[Group]:
        """The candidates, grouped by equal filters (each group is evaluated once)."""
        if self.by_attr:
            return self._grouped(self._candidates(types, attrs))
        key = tuple(types)
        found = self._by_types.get(key)
        if found is None:
            if len(self._by_types) >= 4096:  # bound it whatever the variety of types
                self._by_types.clear()
            found = self._by_types[key] = self._grouped(self._candidates(types, ()))
        return found

    def _grouped(self, candidates: list[Active]) -> list[Group]:
        by_gid: dict[int, Group] = {}
        for entry in candidates:
            gid = self.group.get(entry.pk, -entry.pk)
            found = by_gid.get(gid)
            if found is None:
                by_gid[gid] = Group(entry.sub, [entry])
            else:
                found.entries.append(entry)
        for found in by_gid.values():
            found.seal()
        return list(by_gid.values())

    def _candidates(self, types: Iterable[str], attrs: Iterable[str]) -> list[Active]:
        found: dict[int, Active] = {}
        for t in types:
            for entry in self.by_type.get(t, ()):
                found[entry.pk] = entry
        if self.by_attr:
            for a in attrs:
                for entry in self.by_attr.get(a, ()):
                    found[entry.pk] = entry
        for entry in self.other:
            found[entry.pk] = entry
        return list(found.values())


class Registry:
    """All stored subscriptions, by pk and by tenant; swapped whole, so the writer thread
    always reads a consistent snapshot without a lock."""

    def __init__(self) -> None:
        self.by_pk: dict[int, Active] = {}
        self.index: dict[str, TenantIndex] = {}
        self.show_changes: frozenset[int] = frozenset()  # pks that want previous values
        self._lock = threading.Lock()

    def replace(self, entries: Iterable[Active]) -> None:
        by_pk = {e.pk: e for e in entries}
        self._install(by_pk)

    def put(self, entry: Active) -> None:
        with self._lock:
            by_pk = dict(self.by_pk)
            by_pk[entry.pk] = entry
            self._install(by_pk)

    def remove(self, pk: int) -> None:
        with self._lock:
            by_pk = dict(self.by_pk)
            by_pk.pop(pk, None)
            self._install(by_pk)

    def _install(self, by_pk: dict[int, Active]) -> None:
        index: dict[str, TenantIndex] = {}
        for entry in by_pk.values():
            # Periodic ones ignore changes; paused ones generate nothing (their backlog is kept
            # by the dispatcher until they are resumed).
            if entry.sub.time_interval is None and entry.sub.is_active:
                index.setdefault(entry.tenant, TenantIndex()).add(entry)
        # Before the index: a subscription the writer can fire already has its flag.
        self.show_changes = frozenset(pk for pk, e in by_pk.items() if e.sub.show_changes)
        self.index, self.by_pk = index, by_pk  # readers see either the old or the new pair

    def of_tenant(self, tenant: str) -> list[Active]:
        return sorted((e for e in self.by_pk.values() if e.tenant == tenant),
                      key=lambda e: e.sub.id)

    def find(self, tenant: str, sub_id: str) -> Active | None:
        for entry in self.by_pk.values():
            if entry.tenant == tenant and entry.sub.id == sub_id:
                return entry
        return None


class OutboxHook:
    """The write hook: matching changes → ``notification_outbox`` rows, same transaction.

    One row per write *batch* (a group commit of up to hundreds of changes), not per change:
    ``subs`` lists every subscription fired by any change of the batch and ``payload`` is
    ``{"changes": [[[pk, ...], doc], ...]}`` — per change, the subscriptions it fires and what
    :meth:`ChangeInfo.payload` keeps. One insert and one serialisation per batch is what keeps
    the writer's cost per change low (see docs/subscriptions.md)."""

    def __init__(self, registry: Registry, wake: Callable[[set[int]], None]) -> None:
        self.registry = registry
        self._wake = wake
        self._pending: set[int] = set()
        self._last_fired: dict[int, float] = {}  # throttling, by subscription pk (committed)
        self._firing: dict[int, float] = {}  # ... and in the transaction being written
        self.busy_until = 0.0  # monotonic time until which the writer counts as busy

    def busy(self) -> bool:
        """Has the writer been committing large batches just now? (Delivery then yields.)"""
        return time.monotonic() < self.busy_until

    def rows(self, changes: Sequence[Change], now: str) -> Sequence[HookRows]:
        # Group commit is grouping: writes are queueing up. Once busy, any group keeps it busy
        # (hysteresis): delivery taking the CPU back from the callers would itself shrink the
        # groups, and then get still more of it.
        n = len(changes)
        if n >= 16 or (n >= 2 and self.busy()):
            self.busy_until = time.monotonic() + 0.25
        # A new transaction (or a retry of one that failed): its throttling marks start afresh.
        self._firing = {}
        index = self.registry.index
        if not index:
            return ()
        out: list[list[Any]] = []
        fired_all: set[int] = set()
        show = self.registry.show_changes
        match = self._match
        # Most changes of a batch fire the very same list (a group's precomputed ``plain``,
        # shared, never mutated): what depends on the pks alone is done once per list.
        last_pks: list[int] | None = None
        previous = False
        for tenant, _eid, outcome in changes:
            tindex = index.get(tenant)
            if tindex is None:
                continue
            fired = match(tindex, outcome, now)
            if fired:
                info, pks = fired
                if pks is not last_pks:
                    last_pks = pks
                    # Previous values only serve showChanges: without it the row is about half.
                    previous = not show.isdisjoint(pks)
                    fired_all.update(pks)
                out.append([pks, info.payload(now, previous=previous)])
        if not out:
            return ()
        self._pending |= fired_all
        subs = "," + ",".join(map(str, sorted(fired_all))) + ","
        # "busy" first (a delivering process of its own reads it from the payload's start:
        # writes first, nakhon.subscriptions.process).
        payload = orjson.dumps({"busy": 1, "changes": out} if self.busy() else {"changes": out})
        return (HookRows(OUTBOX_TABLE, OUTBOX_COLUMNS, [(subs, payload, now)]),)

    def _match(self, tindex: TenantIndex, outcome: Outcome,
               now: str) -> tuple[ChangeInfo, list[int]] | None:
        entity = outcome.entity or outcome.previous
        if entity is None:
            return None
        if tindex.by_attr:
            attrs: list[str] = [iri for iri, _ in outcome.changed] + outcome.removed
        else:
            attrs = []  # not consulted: candidates then depend on the types alone
        groups = tindex.groups(entity.types, attrs)
        if not groups:
            return None
        info = ChangeInfo(outcome)
        fired: list[int] = []
        for group in groups:
            try:
                if group.triggers_only:
                    if not info.triggered(group.sub):
                        continue
                elif not info.fires(group.sub, group):
                    continue
            except Exception:  # a filter that cannot evaluate this entity does not match it
                log.exception("subscription filter failed", subscription=group.sub.id)
                continue
            if group.plain:
                if group.expiry is None or now < group.expiry:
                    if not fired and not group.checked and len(groups) == 1:
                        # The only group, all plain: its list itself (shared by every change
                        # it fires and never mutated; ``rows`` relies on the identity).
                        return info, group.plain
                    fired.extend(group.plain)
                else:
                    fired.extend(e.pk for e in group.entries
                                 if not e.sub.throttling and e.sub.live(now))
            for entry in group.checked:
                sub = entry.sub
                if not sub.live(now):
                    continue
                clock = time.monotonic()
                last = self._firing.get(entry.pk) or self._last_fired.get(entry.pk)
                if last is not None and clock - last < sub.throttling:
                    continue  # 5.2.12: changes within the throttling period are not notified
                self._firing[entry.pk] = clock  # counts once the transaction commits
                fired.append(entry.pk)
        return (info, fired) if fired else None

    def committed(self) -> None:
        if self._firing:
            self._last_fired.update(self._firing)
            self._firing = {}
        if self._pending:
            pending, self._pending = self._pending, set()
            self._wake(pending)

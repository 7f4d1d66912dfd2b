"""Batched notifications: what a subscription's worker already has waiting goes out together.

A worker reads outbox rows ``SCAN`` at a time (:mod:`nakhon.subscriptions.dispatcher`). The
changes of those rows that fire its subscription become :class:`Item` s, in order, and are cut
into batches: one notification whose ``data`` array holds the changed entities in order, at
most ``max_entities`` of them (``NAKHON_NOTIFICATION_MAX_ENTITIES``) and no more than about
``max_bytes`` of encoded entities. A batch never waits to fill up: it holds what was already
there when the worker looked, so an idle system still sends each change at once, alone.

Work is done once, not once per subscription. :class:`RowCache` decodes an outbox row once
for every worker (by ``seq``) into :class:`Item` s, one per change, which the workers share;
an item keeps its change rendered and encoded per :func:`profile` — the render options that
decide the bytes (term map, format, attributes, sysAttrs, lang, showChanges, GeoJSON) — so
subscriptions sharing a profile share the bytes, and a notification body is a join of
pre-encoded entity documents (:func:`nakhon.subscriptions.notify.body`). The cache is bounded
by an estimate of the bytes it holds, renderings included; it is only a cache: a row dropped
from it is decoded and rendered again when a lagging worker reaches it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

from nakhon.broker.render import RenderOptions
from nakhon.core.logs import get_logger
from nakhon.subscriptions import notify
from nakhon.subscriptions.model import Subscription
from nakhon.subscriptions.store import OutboxRow

log = get_logger("nakhon.subscriptions.batch")

MAX_BYTES = 1 << 20  # stop adding entities once a body's data passes this (about 1 MB)
ROW_CACHE_BYTES = 32 << 20  # decoded rows (estimated) and their renderings kept for all workers
DECODED_FACTOR = 4  # a decoded row (dicts and items) takes about 3.2 times its JSON bytes

# What decides a change's rendered bytes (see ``profile``).
Profile = tuple[str, str, bool, tuple[str, ...] | None, str | None, bool, bool]


def profile(sub: Subscription) -> Profile:
    """The render options of ``sub`` that decide an entity's bytes in its notifications.

    Two subscriptions with equal profiles get byte-identical entity documents, so each change
    is rendered once for both. The term map enters by its ``key`` (a hash of the term
    definitions: equal contexts compact alike)."""
    attrs = tuple(sorted(sub.attributes)) if sub.attributes is not None else None
    return (sub.terms.key, sub.format, sub.sys_attrs, attrs, sub.lang, sub.show_changes,
            sub.endpoint.accept == "application/geo+json")


@dataclass(slots=True, eq=False)
class Item:
    """One change of an outbox row, shared by every subscription (and worker) it fires."""

    seq: int
    index: int | None  # its place in the row (None: a one-change row of an earlier version)
    created_at: str
    doc: dict[str, Any]
    rendered: dict[int, bytes] = field(default_factory=dict)  # by profile number


@dataclass(slots=True)
class Batch:
    """Changes sent in one notification, and what has to be known to resend it whole."""

    items: list[Item]
    nid: str  # one notification id, from the first change: stable when resent
    done_seq: int = 0  # the cursor once sent: its last row if the batch ends that row
    parts: list[bytes] = field(default_factory=list)  # encoded entities, in order
    rendered_for: Any = None  # the registry entry the parts were rendered for

    @property
    def first(self) -> Item:
        return self.items[0]


@dataclass(slots=True)
class _Row:
    created_at: str
    changes: list[tuple[list[int] | None, Item]]  # (pks it fires or None: all, change)
    everyone: frozenset[int]  # the pks every change of the row fires
    size: int  # bytes held (estimated): decoded payload and renderings


class RowCache:
    """Decoded outbox rows by ``seq`` with their renderings, shared by every worker; bounded
    by an estimate of the bytes they hold (oldest rows dropped first, never the newest)."""

    def __init__(self, max_bytes: int = ROW_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._rows: OrderedDict[int, _Row] = OrderedDict()
        self.size = 0
        self.hits = 0
        self.misses = 0

    def row(self, row: OutboxRow) -> _Row:
        found = self._rows.get(row.seq)
        if found is not None and found.created_at == row.created_at:
            self.hits += 1
            return found
        self.misses += 1
        payload = orjson.loads(row.payload)
        raw = payload.get("changes")
        changes: list[tuple[list[int] | None, Item]]
        if raw is None:
            changes = [(None, Item(row.seq, None, row.created_at, payload))]
        else:
            changes = [(pks, Item(row.seq, i, row.created_at, doc))
                       for i, (pks, doc) in enumerate(raw)]
        everyone = frozenset(changes[0][0] or ()) if changes else frozenset()
        for pks, _ in changes:
            if pks is not None and len(everyone) > 0:
                everyone = everyone.intersection(pks)
        decoded = _Row(row.created_at, changes, everyone, len(row.payload) * DECODED_FACTOR)
        if found is not None:
            self._drop(row.seq)
        self._rows[row.seq] = decoded
        self.grow(row.seq, decoded.size, counted=False)
        return decoded

    def grow(self, seq: int, nbytes: int, *, counted: bool = True) -> None:
        """Row ``seq`` holds ``nbytes`` more (a rendering); drop old rows while over budget."""
        entry = self._rows.get(seq)
        if entry is None:
            return  # dropped already: its memory goes with the last batch holding its items
        if counted:
            entry.size += nbytes
        self.size += nbytes
        while self.size > self.max_bytes and len(self._rows) > 1:
            self._drop(next(iter(self._rows)))

    def _drop(self, seq: int) -> None:
        self.size -= self._rows.pop(seq).size


class Batcher:
    """Cuts a worker's waiting changes into batches (see the module docstring)."""

    def __init__(self, max_entities: int = 100, max_bytes: int = MAX_BYTES) -> None:
        self.max_entities = max(1, max_entities)
        self.max_bytes = max_bytes
        self.rows = RowCache()
        self._profiles: dict[Profile, int] = {}  # one small number per distinct profile
        self.render_hits = 0
        self.render_misses = 0

    def profile_number(self, sub: Subscription) -> int:
        """The number under which renderings for ``sub``'s :func:`profile` are kept."""
        return self._profiles.setdefault(profile(sub), len(self._profiles))

    def items(self, rows: list[OutboxRow], pk: int) -> list[Item]:
        """The changes of ``rows`` that fire subscription ``pk``, in order."""
        out: list[Item] = []
        for row in rows:
            try:
                decoded = self.rows.row(row)
            except Exception:  # an unreadable row must never block the queue
                log.exception("outbox row could not be read; skipped", subscription_pk=pk,
                              seq=row.seq)
                continue
            if pk in decoded.everyone:
                out.extend([item for _, item in decoded.changes])
            else:
                out.extend([item for pks, item in decoded.changes if pks is None or pk in pks])
        return out

    def take(self, pk: int, items: list[Item], start: int, entry: Any, opts: RenderOptions,
             number: int, limit: int = 0) -> tuple[Batch, int]:
        """The next batch from ``items[start:]`` for the registry entry ``entry`` (render
        options ``opts``, profile ``number``; at most ``limit`` entities when the receiver
        wants fewer than ``max_entities``), rendered; and where the one after it starts. Its
        ``parts`` may be empty (nothing renderable)."""
        cap = min(self.max_entities, limit) if limit > 0 else self.max_entities
        first = items[start]
        batch = Batch([], notify.notification_id(pk, first.seq, first.created_at, first.index))
        size = 0
        end = start
        while end < len(items) and end - start < cap and size < self.max_bytes:
            item = items[end]
            end += 1
            part = self._encoded(entry.sub, item, opts, number)
            if part is not None:
                batch.parts.append(part)
                size += len(part) + 1
        batch.items = items[start:end]
        last = items[end - 1]
        ends_row = end == len(items) or items[end].seq != last.seq
        batch.done_seq = last.seq if ends_row else last.seq - 1
        batch.rendered_for = entry
        return batch, end

    def render(self, batch: Batch, entry: Any, opts: RenderOptions, number: int) -> None:
        """Render ``batch`` again for ``entry`` (the subscription changed since it was cut)."""
        if batch.rendered_for is entry:
            return
        parts = [self._encoded(entry.sub, item, opts, number) for item in batch.items]
        batch.parts = [p for p in parts if p is not None]
        batch.rendered_for = entry

    def _encoded(self, sub: Subscription, item: Item, opts: RenderOptions,
                 number: int) -> bytes | None:
        found = item.rendered.get(number)
        if found is not None:
            self.render_hits += 1
            return found
        self.render_misses += 1
        try:
            entity = notify.render_change(sub, item.doc, opts)
            if sub.endpoint.accept == "application/geo+json":
                entity = notify.feature(entity)  # each entity a Feature of the collection
            encoded = orjson.dumps(entity)
        except Exception:  # cannot render: never block the queue on it
            log.exception("notification could not be rendered; dropped", subscription=sub.id,
                          seq=item.seq, index=item.index)
            return None
        item.rendered[number] = encoded
        self.rows.grow(item.seq, len(encoded))
        return encoded

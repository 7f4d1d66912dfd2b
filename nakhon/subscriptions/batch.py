"""Batched notifications: what a subscription's worker already has waiting goes out together.

A worker reads outbox rows ``SCAN`` at a time (:mod:`nakhon.subscriptions.dispatcher`). The
changes of those rows that fire its subscription become :class:`Item` s, in order, and are cut
into batches: one notification whose ``data`` array holds the changed entities in order, at
most ``max_entities`` of them (``NAKHON_NOTIFICATION_MAX_ENTITIES``) and no more than about
``max_bytes`` of encoded entities. A batch never waits to fill up: it holds what was already
there when the worker looked, so an idle system still sends each change at once, alone.

Work is done once, not once per subscription:

* :class:`RowCache` decodes an outbox row once for every worker (by ``seq``; bounded by the
  number of changes it holds).
* :class:`RenderCache` keeps each change rendered and encoded per :func:`profile` — the render
  options that decide the bytes (term map, format, attributes, sysAttrs, lang, showChanges,
  GeoJSON). Subscriptions sharing a profile share the bytes, and a notification body is a join
  of pre-encoded entity documents (:func:`nakhon.subscriptions.notify.body`). Bounded by bytes.

Both caches are only caches: a miss decodes or renders again, so their bounds trade CPU for
memory and never correctness.
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
ROW_CACHE_CHANGES = 8192  # decoded changes kept for the other workers
RENDER_CACHE_BYTES = 16 << 20  # encoded entity documents kept for the other workers

# (change index or None, pks it fires or None for a one-change row of an earlier version, doc)
Decoded = list[tuple[int | None, list[int] | None, dict[str, Any]]]
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


@dataclass(slots=True)
class Item:
    """One change waiting for one subscription."""

    seq: int
    index: int | None  # its place in the row (None: a one-change row)
    created_at: str
    doc: dict[str, Any]
    last: bool  # the last change of its row for this subscription


@dataclass(slots=True)
class Batch:
    """Changes sent in one notification, and what has to be known to resend it whole."""

    items: list[Item]
    nid: str  # one notification id, from the first change: stable when resent
    parts: list[bytes] = field(default_factory=list)  # encoded entities, in order
    rendered_for: Any = None  # the registry entry the parts were rendered for

    @property
    def done_seq(self) -> int:
        """The cursor once this batch is sent: its last row, if the batch ends that row."""
        last = self.items[-1]
        return last.seq if last.last else last.seq - 1

    @property
    def first(self) -> Item:
        return self.items[0]


class RowCache:
    """Decoded outbox rows by ``seq``, shared by every worker (oldest dropped first)."""

    def __init__(self, max_changes: int = ROW_CACHE_CHANGES) -> None:
        self.max_changes = max_changes
        self._rows: OrderedDict[int, tuple[str, Decoded]] = OrderedDict()
        self._size = 0
        self.hits = 0
        self.misses = 0

    def decoded(self, row: OutboxRow) -> Decoded:
        found = self._rows.get(row.seq)
        if found is not None and found[0] == row.created_at:
            self.hits += 1
            return found[1]
        self.misses += 1
        payload = orjson.loads(row.payload)
        changes = payload.get("changes")
        decoded: Decoded
        if changes is None:
            decoded = [(None, None, payload)]
        else:
            decoded = [(i, pks, doc) for i, (pks, doc) in enumerate(changes)]
        if found is not None:
            self._drop(row.seq)
        self._rows[row.seq] = (row.created_at, decoded)
        self._size += len(decoded)
        while self._size > self.max_changes and len(self._rows) > 1:
            self._drop(next(iter(self._rows)))
        return decoded

    def _drop(self, seq: int) -> None:
        _, decoded = self._rows.pop(seq)
        self._size -= len(decoded)


class RenderCache:
    """Encoded entity documents by (change, profile), shared by every worker."""

    def __init__(self, max_bytes: int = RENDER_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._docs: OrderedDict[tuple[int, int | None, str, Profile], bytes] = OrderedDict()
        self._size = 0
        self.hits = 0
        self.misses = 0

    def encoded(self, item: Item, sub: Subscription, opts: RenderOptions,
                prof: Profile) -> bytes:
        """``item`` as ``sub`` wants it, encoded (raises if it cannot be rendered)."""
        key = (item.seq, item.index, item.created_at, prof)
        found = self._docs.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        entity = notify.render_change(sub, item.doc, opts)
        if prof[6]:  # GeoJSON: each entity is a Feature of the FeatureCollection
            entity = notify.feature(entity)
        encoded = orjson.dumps(entity)
        self._docs[key] = encoded
        self._size += len(encoded)
        while self._size > self.max_bytes and len(self._docs) > 1:
            _, old = self._docs.popitem(last=False)
            self._size -= len(old)
        return encoded


class Batcher:
    """Cuts a worker's waiting changes into batches (see the module docstring)."""

    def __init__(self, max_entities: int = 100, max_bytes: int = MAX_BYTES) -> None:
        self.max_entities = max(1, max_entities)
        self.max_bytes = max_bytes
        self.rows = RowCache()
        self.renders = RenderCache()

    def items(self, rows: list[OutboxRow], pk: int) -> list[Item]:
        """The changes of ``rows`` that fire subscription ``pk``, in order."""
        out: list[Item] = []
        for row in rows:
            try:
                decoded = self.rows.decoded(row)
            except Exception:  # an unreadable row must never block the queue
                log.exception("outbox row could not be read; skipped", subscription_pk=pk,
                              seq=row.seq)
                continue
            start = len(out)
            out.extend(Item(row.seq, index, row.created_at, doc, False)
                       for index, pks, doc in decoded if pks is None or pk in pks)
            if len(out) > start:
                out[-1].last = True
        return out

    def take(self, pk: int, items: list[Item], start: int, entry: Any, opts: RenderOptions,
             prof: Profile) -> tuple[Batch, int]:
        """The next batch from ``items[start:]`` for the registry entry ``entry``, rendered;
        and where the one after it starts. Its ``parts`` may be empty (nothing renderable)."""
        first = items[start]
        batch = Batch([], notify.notification_id(pk, first.seq, first.created_at, first.index))
        size = 0
        end = start
        while end < len(items) and len(batch.items) < self.max_entities and \
                size < self.max_bytes:
            item = items[end]
            end += 1
            batch.items.append(item)
            part = self._encoded(entry.sub, item, opts, prof)
            if part is not None:
                batch.parts.append(part)
                size += len(part) + 1
        batch.rendered_for = entry
        return batch, end

    def render(self, batch: Batch, entry: Any, opts: RenderOptions, prof: Profile) -> None:
        """Render ``batch`` again for ``entry`` (the subscription changed since it was cut)."""
        if batch.rendered_for is entry:
            return
        parts = [self._encoded(entry.sub, item, opts, prof) for item in batch.items]
        batch.parts = [p for p in parts if p is not None]
        batch.rendered_for = entry

    def _encoded(self, sub: Subscription, item: Item, opts: RenderOptions,
                 prof: Profile) -> bytes | None:
        try:
            return self.renders.encoded(item, sub, opts, prof)
        except Exception:  # cannot render: never block the queue on it
            log.exception("notification could not be rendered; dropped", subscription=sub.id,
                          seq=item.seq, index=item.index)
            return None

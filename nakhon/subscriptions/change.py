"""One change as the subscriptions see it: its entity event and attribute events, classified
once, and whether it fires a subscription (triggers, watched attributes, filters)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nakhon.broker import query as ql
from nakhon.broker.model import Entity, Instance
from nakhon.storage.base import Outcome
from nakhon.subscriptions.model import Subscription

if TYPE_CHECKING:
    from nakhon.subscriptions.matcher import Group

_SYSTEM = ("createdAt", "modifiedAt")


def _same(a: Instance, b: Instance) -> bool:
    """Equal apart from the system times (a rewrite with the same content is no update)."""
    # Member by member rather than comparing two filtered copies: no allocation per change.
    for k, v in a.items():
        if k not in _SYSTEM and (k not in b or not (b[k] is v or b[k] == v)):
            return False
    # A loop rather than all(genexpr): no generator per change.
    for k in b:  # noqa: SIM110
        if k not in a and k not in _SYSTEM:
            return False
    return True


class ChangeInfo:
    """One change, classified: entity event and per-attribute events (computed once)."""

    __slots__ = ("_gone", "_triggered", "_triggers", "_watched", "attr_events", "created",
                 "deleted", "entity", "outcome", "previous")

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.created = outcome.created
        self.deleted = outcome.deleted
        self.previous = outcome.previous
        self.entity: Entity = outcome.entity or outcome.previous  # type: ignore[assignment]
        events: dict[str, str] = {}
        self.attr_events = events
        self._gone = False  # any attributeDeleted among them (most changes have none)
        # The last (triggers, watched) decided and its answer: subscriptions mostly share
        # their triggers (the very same frozensets when parsed alike), so one slot serves
        # them without a dict per change; other ones are simply decided again.
        self._triggers: frozenset[str] | None = None
        self._watched: frozenset[str] | None = None
        self._triggered = False
        if self.deleted:
            return
        before = {} if self.created or self.previous is None else self.previous.attrs
        for iri, inst in outcome.changed:
            if iri in events:
                continue
            old = before.get(iri)
            if old is None:
                events[iri] = "attributeCreated"
                continue
            ds = inst.get("datasetId")
            prior = None
            for i in old:  # a loop, not next(genexpr): this runs for every change written
                if i.get("datasetId") == ds:
                    prior = i
                    break
            if prior is None:
                events[iri] = "attributeCreated"
            elif not _same(prior, inst):
                events[iri] = "attributeUpdated"
        if outcome.removed:
            now = outcome.entity.attrs if outcome.entity is not None else {}
            for iri in outcome.removed:
                if iri not in now:
                    events[iri] = "attributeDeleted"
                    self._gone = True
                elif iri not in events:
                    kept = {i.get("datasetId") for i in now[iri]}
                    if any(i.get("datasetId") not in kept for i in before.get(iri, ())):
                        events[iri] = "attributeDeleted"
                        self._gone = True

    def _trigger(self, triggers: frozenset[str], watched: frozenset[str] | None) -> bool:
        if self.deleted:
            return "entityDeleted" in triggers
        if self.created and "entityCreated" in triggers:
            return True
        for iri, event in self.attr_events.items():
            if event in triggers and (watched is None or iri in watched):
                return True
        return False

    def triggered(self, sub: Subscription) -> bool:
        """Does this change meet the subscription's triggers and watched attributes?"""
        triggers, watched = sub.triggers, sub.watched
        if triggers is self._triggers and watched is self._watched:
            return self._triggered
        self._triggers, self._watched = triggers, watched
        self._triggered = triggered = self._trigger(triggers, watched)
        return triggered

    def fires(self, sub: Subscription, group: Group | None = None) -> bool:
        """Does this change meet the subscription's triggers, watched attributes and filters?
        ``group``: the sealed group of ``sub``, with what is prepared once per subscription."""
        if not self.triggered(sub):
            return False
        entity = self.entity
        # Candidates come from the type index, so plain type selectors have matched already.
        by_type_only = sub.by_type_only if group is None else group.by_type_only
        if sub.entities and not by_type_only and \
                not any(s.matches(entity.id, entity.types) for s in sub.entities):
            return False
        if sub.q is not None:
            if group is not None and group.q is not None:
                if not group.q(entity):
                    return False
            elif not ql.match_q(sub.q, entity):
                return False
        if sub.scope_q is not None and not ql.match_scope(sub.scope_q, entity.scope):
            return False
        return sub.geo is None or ql.match_geo(sub.geo, entity)

    def payload(self, now: str, *, previous: bool = True) -> dict[str, Any]:
        """What the outbox keeps for this change: the entity in normal form, the previous
        instances of what changed (for showChanges; only when ``previous``, i.e. a fired
        subscription asks for them) and the deletions."""
        entity = self.entity
        doc: dict[str, Any] = {
            "id": entity.id,
            "types": entity.types,
            "scope": entity.scope,
            "createdAt": entity.created_at,
            "modifiedAt": entity.modified_at,
        }
        if self.deleted:
            doc["deletedAt"] = now
            return doc
        doc["attrs"] = entity.attrs
        if previous and self.previous is not None and self.attr_events:
            before = self.previous.attrs
            doc["previous"] = {iri: before[iri] for iri in self.attr_events if iri in before}
        if self._gone:
            doc["deletedAttrs"] = [iri for iri, ev in self.attr_events.items()
                                   if ev == "attributeDeleted"]
        return doc

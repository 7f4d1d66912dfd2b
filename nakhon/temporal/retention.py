"""Retention of attribute history: rules per tenant / entity type / attribute, and the prune job.

``NAKHON_TEMPORAL_RETENTION`` holds rules separated by ``;``. A rule is an ISO 8601 duration,
optionally preceded by selectors and ``=``: ``P2Y`` (the default for everything),
``tenant:bangkok=P1Y``, ``type:AirQualityObserved=P90D``, ``tenant:bangkok,attr:pm25=P30D``.
``type`` and ``attr`` take a full IRI or a short name (matched against the IRI's last segment).

Each instance follows the most specific rule that matches it (an attribute selector outranks a
type selector, which outranks a tenant selector; on a tie, the earlier rule wins). Instances no
rule matches are kept forever. Age is measured on the effective observation time (observedAt,
else the modification time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from nakhon.core.auth import Access, Principal
from nakhon.core.errors import BadRequestData
from nakhon.storage.history_base import HistoryStore, Selector
from nakhon.temporal.model import Period, parse_duration

_KEYS = {"tenant": "tenant", "type": "entity_type", "attr": "attr"}


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """Instances matching ``selector`` are kept for ``period``."""

    selector: Selector
    period: Period

    @property
    def rank(self) -> int:
        s = self.selector
        return (4 if s.attr else 0) + (2 if s.entity_type else 0) + (1 if s.tenant else 0)

    def cutoff(self, now: datetime) -> datetime:
        """Instances observed before this time are too old."""
        if self.period.months:
            total = now.year * 12 + now.month - 1 - self.period.months
            day = min(now.day, 28)  # a day every month has
            return now.replace(year=total // 12, month=total % 12 + 1, day=day)
        return now - timedelta(seconds=self.period.seconds)


def parse_rules(text: str) -> list[RetentionRule]:
    """Parse the retention setting (raises BadRequestData with the reason)."""
    rules: list[RetentionRule] = []
    for raw in text.split(";"):
        item = raw.strip()
        if not item:
            continue
        head, sep, duration = item.rpartition("=")
        if not sep:
            duration, head = item, ""
        period = parse_duration(duration.strip())
        if not period.months and not period.seconds:
            raise BadRequestData(f"Retention rule {item!r}: the duration must not be zero.")
        fields: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in head.split(","))):
            key, colon, value = part.partition(":")
            if not colon or key not in _KEYS or not value:
                raise BadRequestData(
                    f"Retention rule {item!r}: selectors are tenant:NAME, type:NAME, attr:NAME."
                )
            fields[_KEYS[key]] = value
        rules.append(RetentionRule(Selector(**fields), period))
    return rules


async def prune(
    store: HistoryStore, access: Access, principal: Principal, rules: list[RetentionRule],
    now: datetime,
) -> int:
    """Delete every instance older than its rule allows; returns how many went (admin only)."""
    access.require_admin(principal)
    ordered = sorted(enumerate(rules), key=lambda pair: (-pair[1].rank, pair[0]))
    deleted = 0
    done: list[Selector] = []
    for _, rule in ordered:
        # Rules ranked earlier own the instances they match: exclude those here.
        deleted += await store.history_prune(rule.selector, rule.cutoff(now), list(done))
        done.append(rule.selector)
    return deleted

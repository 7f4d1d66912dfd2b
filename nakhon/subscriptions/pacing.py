"""Writes first: while the writer is busy, delivery yields to it — for a bounded time.

Delivery shares the process (and its GIL) with the writer and the request handlers, and ten
subscriptions matching every write ask for ten times the write rate. So while writes queue
(``busy``, from the outbox hook) all workers together spend at most ``burst`` units per
``window`` seconds, and the outbox absorbs the rest until the load drops — but a change that
has waited longer than ``max_delay`` (``NAKHON_NOTIFICATION_MAX_DELAY``) is sent at full speed,
so under sustained load notifications lag by a bounded delay instead of falling ever further
behind (writes then share the CPU with delivery).

The units follow what a notification costs the process: about one round trip (and the
receiver's wake-up) whatever it holds, plus a little per entity (decoded and rendered once for
all subscriptions, then joined): 1 unit, plus ``entity_cost`` per entity after the first.
Counting notifications alone would let a batch of 100 take several times the CPU the budget
means; counting entities would pace a batch like 100 notifications and throw away what
batching saves. So delivery keeps about the CPU share it had with one entity per
notification, and sends some 20 times more changes with it. The sends of a window go
together, one per worker: each send wakes the receiver (on a shared machine it then takes the
CPU), and one wake-up per burst costs far less than one per notification.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime


class Pacer:
    """The writes-first budget shared by every worker of a dispatcher."""

    def __init__(self) -> None:
        self.busy: Callable[[], bool] = lambda: False  # are writes queueing? (the hook says)
        self.window = 0.05  # while busy: at most ``burst`` units per window, in all
        self.burst = 10.0  # (200/s): a notification costs 1 unit ...
        self.entity_cost = 0.04  # ... plus this per further entity (100 entities: ~5 units)
        self.max_delay = 2.0  # ... and only until a change has waited this long
        self._window = 0
        self._spent = 0.0

    def overdue(self, created_at: str) -> bool:
        """Has a change made at ``created_at`` waited past ``max_delay``? (Then writes first
        stops for it.)"""
        try:
            created = datetime.fromisoformat(created_at)
        except ValueError:
            return True
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return (datetime.now(UTC) - created).total_seconds() > self.max_delay

    async def pace(self, created_at: str, entities: int) -> None:
        """Wait, if writes queue, until a notification of ``entities`` entities whose first
        change was made at ``created_at`` may go."""
        if not self.busy() or self.overdue(created_at):
            return
        cost = 1.0 + (entities - 1) * self.entity_cost
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            window = int(now / self.window)
            if window != self._window:
                self._window, self._spent = window, 0.0
            if self._spent == 0.0 or self._spent + cost <= self.burst:
                self._spent += cost
                return
            await asyncio.sleep((window + 1) * self.window - now)

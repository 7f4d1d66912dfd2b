"""Fixtures for the subscription tests: a real HTTP receiver on a free local port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.subscriptions.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    await rec.start()
    try:
        yield rec
    finally:
        await rec.stop()


def subscription(url: str, **members: Any) -> dict[str, Any]:
    """A Subscription body delivering to ``url``; ``members`` override or add members."""
    body: dict[str, Any] = {
        "type": "Subscription",
        "entities": [{"type": "Sensor"}],
        "notification": {"endpoint": {"uri": url}},
    }
    notification = members.pop("notification", None)
    body.update(members)
    if notification:
        body["notification"] = {**body["notification"], **notification}
    return body


def sensor(eid: str, temperature: float, **attrs: Any) -> dict[str, Any]:
    entity = {"id": eid, "type": "Sensor",
              "temperature": {"type": "Property", "value": temperature}}
    for name, value in attrs.items():
        entity[name] = {"type": "Property", "value": value}
    return entity

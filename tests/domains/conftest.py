"""Fixtures of the domain tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import Api


@pytest.fixture
async def manual_alerts(api: Api) -> AsyncIterator[None]:
    """Tests that drive evaluate_alerts with their own clock pause the automatic feed."""
    feed = api.client.app.state.alert_feed  # type: ignore[attr-defined]
    await feed.stop()
    try:
        yield
    finally:
        feed.start()

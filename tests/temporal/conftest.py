"""Shared helpers of the temporal tests: a sensor whose history is written through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Api

E = "/ngsi-ld/v1/entities"
T = "/ngsi-ld/v1/temporal/entities"
START = datetime(2024, 1, 1, tzinfo=UTC)
SENSOR = "urn:ngsi-ld:Sensor:001"


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def series(n: int) -> list[tuple[datetime, float]]:
    """n hourly readings with a pattern that makes every aggregate distinct."""
    return [(START + timedelta(hours=i), round(20 + (i * 7 % 13) - 0.25 * (i % 4), 2))
            for i in range(n)]


async def write_series(api: Api, headers: dict[str, str], points: list[tuple[datetime, float]],
                       eid: str = SENSOR) -> None:
    """Create the entity with the first point, then one PATCH per further point."""
    first_t, first_v = points[0]
    body = {"id": eid, "type": "Sensor",
            "temperature": {"type": "Property", "value": first_v, "observedAt": iso(first_t)}}
    r = await api.post(E, json=body, headers=headers)
    assert r.status_code == 201, r.text
    for t, v in points[1:]:
        r = await api.patch(f"{E}/{eid}/attrs", headers=headers, json={
            "temperature": {"type": "Property", "value": v, "observedAt": iso(t)}})
        assert r.status_code == 204, r.text


async def get(api: Api, headers: dict[str, str], url: str, status: int = 200) -> Any:
    r = await api.get(url, headers=headers)
    assert r.status_code == status, (url, r.status_code, r.text)
    return r.json()


@pytest.fixture
async def hourly(api: Api, headers: dict[str, str]) -> list[tuple[datetime, float]]:
    """24 hourly readings written with one PATCH each."""
    points = series(24)
    await write_series(api, headers, points)
    return points

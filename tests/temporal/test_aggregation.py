"""aggregatedValues on both engines, every method checked against Python's own statistics."""

from __future__ import annotations

import math
import statistics
from datetime import datetime, timedelta
from typing import Any

from tests.conftest import Api
from tests.temporal.conftest import START, T, get, iso, series

EID = "urn:ngsi-ld:Sensor:agg"
METHODS = "totalCount,distinctCount,sum,avg,min,max,stddev,sumsq"


def expected(vals: list[float]) -> dict[str, Any]:
    return {
        "totalCount": len(vals),
        "distinctCount": len(set(vals)),
        "sum": sum(vals),
        "avg": statistics.fmean(vals),
        "min": min(vals),
        "max": max(vals),
        "stddev": statistics.stdev(vals) if len(vals) > 1 else None,
        "sumsq": sum(v * v for v in vals),
    }


def close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


async def provision(
    api: Api, headers: dict[str, str], points: list[tuple[datetime, float]]
) -> None:
    body = {"id": EID, "type": "Sensor", "temperature": [
        {"type": "Property", "value": v, "observedAt": iso(t)} for t, v in points]}
    r = await api.post(T, json=body, headers=headers)
    assert r.status_code == 201, r.text


async def test_every_method_per_six_hours(api: Api, headers: dict[str, str]) -> None:
    points = series(72)  # three days, hourly
    await provision(api, headers, points)
    body = await get(api, headers, f"{T}/{EID}?options=aggregatedValues&aggrMethods={METHODS}"
                                   "&aggrPeriodDuration=PT6H&timerel=after"
                                   f"&timeAt={iso(START)}")
    attr = body["temperature"]
    assert attr["type"] == "Property"
    for method in METHODS.split(","):
        got = attr[method]
        assert len(got) == 12, method
        for k, (value, start, end) in enumerate(got):
            lo = START + timedelta(hours=6 * k)
            assert (start, end) == (lo.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                                    (lo + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
            vals = [v for t, v in points if lo <= t < lo + timedelta(hours=6)]
            assert close(value, expected(vals)[method]), (method, k, value, expected(vals))


async def test_whole_range_day_buckets_and_windows(api: Api, headers: dict[str, str]) -> None:
    points = series(72)
    await provision(api, headers, points)
    # No aggrPeriodDuration: one bucket for the whole window (between).
    a, b = START + timedelta(hours=5), START + timedelta(hours=50)
    body = await get(api, headers, f"{T}/{EID}?options=aggregatedValues&aggrMethods=avg,max"
                                   f"&timerel=between&timeAt={iso(a)}&endTimeAt={iso(b)}")
    vals = [v for t, v in points if a <= t < b]
    [[avg, start, end]] = body["temperature"]["avg"]
    assert close(avg, statistics.fmean(vals))
    assert (start, end) == (iso(a).replace("Z", ".000Z"), iso(b).replace("Z", ".000Z"))
    assert body["temperature"]["max"][0][0] == max(vals)
    # P1D with timerel=before: buckets aligned on UTC midnight
    body = await get(api, headers, f"{T}/{EID}?options=aggregatedValues&aggrMethods=min,totalCount"
                                   "&aggrPeriodDuration=P1D&timerel=before"
                                   "&timeAt=2024-01-03T12:00:00Z")
    mins = body["temperature"]["min"]
    assert [m[1] for m in mins] == ["2024-01-01T00:00:00.000Z", "2024-01-02T00:00:00.000Z",
                                    "2024-01-03T00:00:00.000Z"]
    for (value, start, _), (count, _, _) in zip(mins, body["temperature"]["totalCount"],
                                                strict=True):
        day = datetime.fromisoformat(start.replace("Z", "+00:00"))
        cut = datetime.fromisoformat("2024-01-03T12:00:00+00:00")
        vals = [v for t, v in points if day <= t < min(day + timedelta(days=1), cut)]
        assert value == min(vals) and count == len(vals)
    # lastN keeps the newest buckets
    body = await get(api, headers, f"{T}/{EID}?options=aggregatedValues&aggrMethods=sum"
                                   "&aggrPeriodDuration=P1D&lastN=1")
    [[total, start, _]] = body["temperature"]["sum"]
    assert start == "2024-01-03T00:00:00.000Z"
    assert close(total, sum(v for t, v in points if t >= START + timedelta(days=2)))


async def test_month_buckets_and_non_numeric(api: Api, headers: dict[str, str]) -> None:
    body = {"id": EID, "type": "Sensor",
            "temperature": [{"type": "Property", "value": float(d), "observedAt":
                             f"2024-0{m}-{d:02d}T00:00:00Z"} for m in (1, 2, 3) for d in (1, 15)],
            "status": [{"type": "Property", "value": s, "observedAt": f"2024-01-0{i + 1}T00:00:00Z"}
                       for i, s in enumerate(["ok", "ok", "fault", "ok"])]}
    r = await api.post(T, json=body, headers=headers)
    assert r.status_code == 201, r.text
    got = await get(api, headers, f"{T}/{EID}?options=aggregatedValues&aggrMethods=sum"
                                  "&aggrPeriodDuration=P1M&attrs=temperature")
    assert [s[0] for s in got["temperature"]["sum"]] == [16.0, 16.0, 16.0]
    assert got["temperature"]["sum"][1][1:] == ["2024-02-01T00:00:00.000Z",
                                                "2024-03-01T00:00:00.000Z"]
    got = await get(api, headers, f"{T}/{EID}?options=aggregatedValues"
                                  "&aggrMethods=totalCount,distinctCount,avg&attrs=status")
    status = got["status"]
    assert status["totalCount"][0][0] == 4
    assert status["distinctCount"][0][0] == 2
    assert status["avg"][0][0] is None

"""What each kind of device reads at a given moment: pure functions of (seed, device, time).

Cumulative counters (energy meters, street-light energy) are closed forms of time — a fixed
daily profile integrated from the epoch — so they only ever grow and need no stored state.
Noise is keyed by a time bucket: readings of one bucket agree, whichever path (backfill or live)
asks for them.
"""

from __future__ import annotations

import math
from typing import Any

from nakhon.demo import patterns as pt
from nakhon.demo.model import DemoDevice

_EPOCH_2020 = 1577836800  # counters start here, so their values look like a few years' use
_DAY_2024 = 19723  # 2024-01-01 as a day number


def _n(seed: int, dev: DemoDevice, t: float, salt: int, bucket: int = 300) -> float:
    """Noise for one device, attribute (``salt``) and time bucket."""
    return pt.gauss(seed, dev.hid, salt, int(t // bucket))


def _u(seed: int, dev: DemoDevice, t: float, salt: int, bucket: int = 300) -> float:
    return pt.unit(seed, dev.hid, salt, int(t // bucket))


def air_quality(seed: int, dev: DemoDevice, t: float, period: float) -> dict[str, Any]:
    station = dev.params["station"]
    pm25 = pt.pm25(seed, t, station) * (1.0 + 0.08 * _n(seed, dev, t, 1))
    traffic = pt.traffic_factor(t)
    h = pt.local_hour(t)
    o3 = 12.0 + 30.0 * pt.bump(h, 14.5, 2.5) * (1.2 if pt.month(t) in (1, 2, 3, 4) else 0.8)
    return {
        "p25": round(max(1.0, pm25), 1),
        "p10": round(max(2.0, pm25 * 1.65 + 4.0 * _n(seed, dev, t, 2)), 1),
        "o3": round(max(1.0, o3 + 3.0 * _n(seed, dev, t, 3)), 1),
        "no2": round(max(1.0, 6.0 + 28.0 * traffic * station + 2.0 * _n(seed, dev, t, 4)), 1),
        "co": round(max(0.1, 0.25 + 1.1 * traffic * station + 0.05 * _n(seed, dev, t, 5)), 2),
        "t": round(pt.temperature(seed, t) + 0.4 * _n(seed, dev, t, 6), 1),
        "h": round(pt.humidity(seed, t), 2),
    }


def noise_level(seed: int, dev: DemoDevice, t: float, period: float) -> dict[str, Any]:
    laeq = 45.0 + 22.0 * pt.traffic_factor(t) * dev.params["site"] + 1.5 * _n(seed, dev, t, 1)
    return {"laeq": round(laeq, 1), "lamax": round(laeq + 12.0 + 4.0 * _u(seed, dev, t, 2), 1)}


def _level(seed: int, dev: DemoDevice, t: float) -> float:
    """River/canal level (m): a base, the monsoon, and the last days' rain draining off."""
    monsoon = 0.5 * math.sin((pt.month(t) - 5) / 12.0 * 2.0 * math.pi)
    wet = pt.wetness(seed, int(t // pt.HOUR))
    return dev.params["base"] + monsoon * dev.params["gain"] + 0.05 * dev.params["gain"] * wet


def water(seed: int, dev: DemoDevice, t: float, period: float) -> dict[str, Any]:
    level = _level(seed, dev, t) + 0.01 * _n(seed, dev, t, 1)
    return {"lvl": round(level, 3), "q": round(max(0.0, dev.params["flow"] * level**1.5), 2)}


def flood(seed: int, dev: DemoDevice, t: float, period: float) -> dict[str, Any]:
    level = max(0.0, _level(seed, dev, t) + 0.01 * _n(seed, dev, t, 1))
    alert, danger = dev.params["alert"], dev.params["danger"]
    status = "Danger" if level >= danger else ("Alert" if level >= alert else "Normal")
    return {
        "lvl": round(level, 3),
        "dist": round(max(0.0, dev.params["mount"] - level), 3),
        "status": status,
    }


def weather(seed: int, dev: DemoDevice, t: float, period: float) -> dict[str, Any]:
    h = pt.local_hour(t)
    # Sea breeze from the Gulf in the afternoon; calmer at night.
    wind = 1.2 + 2.8 * pt.bump(h, 15.0, 3.0) + 0.6 * _n(seed, dev, t, 1)
    return {
        "t": round(pt.temperature(seed, t) + 0.3 * _n(seed, dev, t, 2), 1),
        "h": round(pt.humidity(seed, t), 2),
        "rain": pt.rain_rate(seed, t),
        "ws": round(max(0.0, wind), 1),
        "wd": int(180 + 40 * _n(seed, dev, t, 3, 3600)) % 360,
        "p": round(1009.0 + 2.0 * math.cos((h - 10.0) / 12.0 * math.pi), 1),
    }


def waste(seed: int, dev: DemoDevice, t: float, period: float) -> dict[str, Any]:
    """Fills through the day, emptied at 06:00 every ``period`` days (a sawtooth)."""
    period = dev.params["period"]
    since = ((t + pt.BANGKOK_OFFSET - 6 * pt.HOUR) / pt.DAY + dev.params["phase"]) % period
    fill = min(1.0, since * dev.params["rate"])
    return {"f": round(fill, 2), "t": round(pt.temperature(seed, t) + 2.0, 1)}


def traffic(seed: int, dev: DemoDevice, t: float, period: float) -> dict[str, Any]:
    load = pt.traffic_factor(t) * (1.0 + 0.08 * _n(seed, dev, t, 1))
    free = dev.params["free"]
    speed = free * (1.0 - 0.6 * min(1.0, load) ** 2) + 2.5 * _n(seed, dev, t, 2)
    return {
        "i": int(dev.params["capacity"] * load),
        "v": round(max(5.0, speed), 1),
        "o": round(min(0.98, 0.9 * load**1.5), 2),
        "c": speed < 0.5 * free,
    }


def _occupancy(dev: DemoDevice, t: float) -> float:
    """Share of parking in use by the hour, by site: 0 office, 1 market, 2 hospital/mall."""
    h, weekend = pt.local_hour(t), pt.weekday(t) >= 5
    site = int(dev.params["site"])
    if site == 0:
        day = 0.85 * (pt.bump(h, 10.5, 2.0) + pt.bump(h, 14.0, 2.0)) / 1.3
        occ = 0.08 + (0.3 if weekend else 1.0) * day
    elif site == 1:
        occ = 0.1 + 0.8 * max(pt.bump(h, 7.0, 1.5), 0.8 * pt.bump(h, 18.5, 1.5))
    else:
        occ = 0.15 + 0.7 * max(pt.bump(h, 11.0, 2.5), pt.bump(h, 17.0, 2.5)) * (
            1.1 if weekend else 1.0
        )
    return min(0.98, occ)


def parking_spot(seed: int, dev: DemoDevice, t: float, period: float) -> dict[str, Any]:
    # A car stays a while: the coin is tossed per 20-minute bucket, not per reading.
    occupied = _u(seed, dev, t, 1, 1200) < _occupancy(dev, t)
    return {"s": "occupied" if occupied else "free"}


def off_street_parking(seed: int, dev: DemoDevice, t: float, period: float) -> dict[str, Any]:
    total = int(dev.params["total"])
    occ = min(1.0, max(0.0, _occupancy(dev, t) + 0.04 * _n(seed, dev, t, 1)))
    return {"free": total - round(total * occ), "occ": round(occ, 2)}


def ev_charging(seed: int, dev: DemoDevice, t: float, period: float) -> dict[str, Any]:
    sockets = int(dev.params["sockets"])
    h = pt.local_hour(t)
    use = 0.1 + 0.55 * max(pt.bump(h, 12.5, 2.0), pt.bump(h, 19.5, 2.0))
    busy = sum(1 for k in range(sockets) if _u(seed, dev, t, 10 + k, 1800) < use)
    return {
        "avail": sockets - busy,
        "st": "working" if _u(seed, dev, t, 3, 86400) > 0.03 else "outOfService",
    }


def _lamp_energy_wh(watts: float, t: float) -> float:
    """Energy (Wh) a lamp used from 2020 to ``t``: full power 18:30–24:00, half to 06:00."""

    def within_day(h: float) -> float:  # Wh used from local midnight to hour h
        return watts * (0.5 * min(h, 6.0) + max(0.0, h - 18.5))

    local = t + pt.BANGKOK_OFFSET - _EPOCH_2020
    days = local // pt.DAY
    return days * within_day(24.0) + within_day((local % pt.DAY) / pt.HOUR)


def streetlight(seed: int, dev: DemoDevice, t: float, period: float) -> dict[str, Any]:
    watts = dev.params["watts"]
    h = pt.local_hour(t)
    on = pt.is_dark(t)
    level = 0.0 if not on else (0.5 if h < 6.0 else 1.0)
    return {
        "on": "on" if on else "off",
        "lvl": level,
        "w": round(watts * level * (1.0 + 0.02 * _n(seed, dev, t, 1)), 1) if on else 0.0,
        "kwh": round(_lamp_energy_wh(watts, t) / 1000.0, 3),
    }


_HOURLY_LOAD = tuple(
    0.25 + 0.75 * (pt.bump(h + 0.5, 10.5, 2.5) + pt.bump(h + 0.5, 14.5, 2.0)) / 1.2
    for h in range(24)
)
"""A public building's load by hour (share of peak): offices and schools, 08:30–16:30."""
_DAY_LOAD = sum(_HOURLY_LOAD)


def _meter_kwh(peak_kw: float, t: float) -> float:
    local = t + pt.BANGKOK_OFFSET - _EPOCH_2020
    days, rest = divmod(local, pt.DAY)
    hours, frac = divmod(rest / pt.HOUR, 1.0)
    part = sum(_HOURLY_LOAD[: int(hours)]) + frac * _HOURLY_LOAD[int(hours)]
    return peak_kw * (days * _DAY_LOAD + part)


def energy_meter(seed: int, dev: DemoDevice, t: float, period: float) -> dict[str, Any]:
    peak = dev.params["peak"]
    load = _HOURLY_LOAD[int(pt.local_hour(t))]
    return {
        "p": round(peak * load * (1.0 + 0.05 * _n(seed, dev, t, 1)), 2),
        "e": round(_meter_kwh(peak, t), 1),
    }


def wifi(seed: int, dev: DemoDevice, t: float, period: float) -> dict[str, Any]:
    h = pt.local_hour(t)
    busy = 0.05 + max(pt.bump(h, 12.0, 3.0), 0.9 * pt.bump(h, 19.0, 2.0))
    users = dev.params["max"] * busy * (1.0 + 0.15 * _n(seed, dev, t, 1))
    up = _u(seed, dev, t, 2, 3600) > 0.01
    return {"n": max(0, round(users)) if up else 0, "st": "up" if up else "down"}


def cashless(seed: int, dev: DemoDevice, t: float, period: float) -> dict[str, Any]:
    """A market's payments in the ``period`` seconds up to ``t``: fresh markets at dawn, night
    markets in the evening; the cashless share (PromptPay QR, cards) creeps up day by day.

    Counts cover the reporting period, so they add up to the same daily totals whether the
    device reports hourly (backfill) or every few minutes (live, at any ``--speed``)."""
    night = dev.params["night"] > 0.5
    steps = max(1, math.ceil(period / 900))
    rate = 0.0  # transactions per hour, averaged over the period
    for k in range(steps):
        h = pt.local_hour(t - (k + 0.5) * period / steps)
        rate += (0.05 + (pt.bump(h, 19.0, 2.0) if night else pt.bump(h, 7.0, 2.0))) / steps
    rate *= dev.params["size"] * (1.0 + 0.1 * _n(seed, dev, t, 1))
    # Adoption grows and saturates: about +0.3 percentage points a month in 2026.
    trend = 0.3 * (1.0 - math.exp(-max(0, pt.local_day(t) - _DAY_2024) / 900.0))
    share = min(0.95, max(0.05, dev.params["share"] + trend + 0.03 * _n(seed, dev, t, 2)))
    count = max(0.0, rate * period / 3600.0)
    cashless = round(count * share)
    return {
        "cl": cashless,
        "cash": round(count) - cashless,
        "share": round(share, 3),
        "thb": round(cashless * dev.params["ticket"]),
    }


def indoor(seed: int, dev: DemoDevice, t: float, period: float) -> dict[str, Any]:
    h, weekend = pt.local_hour(t), pt.weekday(t) >= 5
    open_now = 8.0 <= h < 16.5 and not (weekend and dev.params["site"] < 1)
    people = dev.params["cap"] * (0.7 + 0.2 * _n(seed, dev, t, 1)) if open_now else 0.0
    return {
        "t": round(26.0 + (1.5 if open_now else 0.0) + 0.3 * _n(seed, dev, t, 2), 1),
        "h": round(0.55 + 0.05 * _n(seed, dev, t, 3), 2),
        "co2": round(420 + 9.0 * max(0.0, people)),
        "n": max(0, round(people)),
    }


def eservice(seed: int, dev: DemoDevice, t: float, period: float) -> dict[str, Any]:
    h, weekend = pt.local_hour(t), pt.weekday(t) >= 5
    office = 0.0 if weekend else pt.bump(h, 11.0, 2.5)
    evening = pt.bump(h, 20.5, 1.5)  # online requests continue after office hours
    rate = dev.params["size"] * (0.05 + office + 0.5 * evening)
    share = min(0.98, dev.params["online"] + 0.3 * evening / (0.05 + office + evening))
    return {
        "req": round(rate * (1.0 + 0.1 * _n(seed, dev, t, 1)), 1),
        "online": round(share, 3),
        "wait": round(max(1.0, 8.0 + 25.0 * office * (1.0 - share) + 2.0 * _n(seed, dev, t, 2)), 1),
    }

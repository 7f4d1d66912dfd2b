"""The demo city's geography: a province's districts and subdistricts, and where devices stand.

Codes and names are real (DOPA, see ``data/README.md``); positions are approximate. Each
district has a centre and a radius; its subdistricts sit on a sunflower spiral around the centre
(the first — by DOPA convention the district seat — in the middle), and devices are scattered a
few hundred metres around their subdistrict's point. Everything is a pure function of the data
and the seed, so two runs with the same seed place every device at the same spot.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from functools import cache
from importlib import resources

GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))
DEVICE_SCATTER = 0.006  # degrees (~650 m): devices of one subdistrict stay near each other


@dataclass(frozen=True, slots=True)
class District:
    code: int
    name_en: str
    name_th: str
    lat: float
    lon: float
    radius: float
    weight: float


@dataclass(frozen=True, slots=True)
class Subdistrict:
    code: int
    district: District
    name_en: str
    name_th: str
    postal_code: int
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Province:
    code: int
    key: str
    name_en: str
    name_th: str
    districts: tuple[District, ...]
    subdistricts: tuple[Subdistrict, ...]

    def place(self, rng: random.Random) -> tuple[Subdistrict, float, float]:
        """A subdistrict chosen by district weight, and a point near it (lat, lon)."""
        weights = [s.district.weight / self._count(s.district.code) for s in self.subdistricts]
        sub = rng.choices(self.subdistricts, weights=weights)[0]
        lat = sub.lat + rng.uniform(-DEVICE_SCATTER, DEVICE_SCATTER)
        lon = sub.lon + rng.uniform(-DEVICE_SCATTER, DEVICE_SCATTER)
        return sub, round(lat, 6), round(lon, 6)

    def _count(self, district_code: int) -> int:
        return sum(1 for s in self.subdistricts if s.district.code == district_code)


def available() -> list[str]:
    """Province keys the demo has data for (file names under ``data/``)."""
    files = resources.files("nakhon.demo").joinpath("data").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".json"))


def _key(name: str) -> str:
    return name.strip().lower().replace(" ", "-")


@cache
def load_province(name: str) -> Province:
    """A province by English name, Thai name or DOPA code; ValueError if the demo lacks it."""
    for key in available():
        raw = json.loads(
            resources.files("nakhon.demo").joinpath(f"data/{key}.json").read_text("utf-8")
        )
        head = raw["province"]
        if name.strip() in (str(head["code"]), head["nameTh"]) or _key(name) in (
            key,
            _key(head["nameEn"]),
        ):
            return _build(key, raw)
    raise ValueError(
        f"No demo data for province {name!r}; available: {', '.join(available())} "
        "(see nakhon/demo/data/README.md to add one)."
    )


def _build(key: str, raw: dict[str, object]) -> Province:
    head = raw["province"]
    assert isinstance(head, dict)
    districts = {
        d["code"]: District(
            d["code"], d["nameEn"], d["nameTh"], d["lat"], d["lon"], d["radius"], d["weight"]
        )
        for d in raw["districts"]  # type: ignore[attr-defined]
    }
    by_district: dict[int, list[dict[str, object]]] = {}
    for s in raw["subdistricts"]:  # type: ignore[attr-defined]
        by_district.setdefault(s["district"], []).append(s)
    subs: list[Subdistrict] = []
    for code, items in sorted(by_district.items()):
        d = districts[code]
        items.sort(key=lambda s: int(str(s["code"])))
        for i, s in enumerate(items):
            # Sunflower spiral: evenly spread points, the first at the centre.
            r = d.radius * math.sqrt(i / len(items))
            angle = i * GOLDEN_ANGLE
            lat = d.lat + r * math.sin(angle)
            # A degree of longitude is shorter than one of latitude (cos 13.7° ≈ 0.97).
            lon = d.lon + r * math.cos(angle) / math.cos(math.radians(d.lat))
            subs.append(
                Subdistrict(
                    int(str(s["code"])),
                    d,
                    str(s["nameEn"]),
                    str(s["nameTh"]),
                    int(str(s["postalCode"])),
                    round(lat, 5),
                    round(lon, 5),
                )
            )
    return Province(
        int(head["code"]),
        key,
        str(head["nameEn"]),
        str(head["nameTh"]),
        tuple(districts.values()),
        tuple(subs),
    )

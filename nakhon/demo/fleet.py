"""Plan the demo city's fleet: how many devices of each kind, where, with which parameters,
and the registry documents (service groups and devices) that provision them.

The plan is a pure function of (province, size, seed): the same command on the same data
directory plans the same devices, which is what makes provisioning a no-op the second time.
"""

from __future__ import annotations

import random
import zlib
from typing import Any

from nakhon.demo.geo import Province
from nakhon.demo.kinds import KINDS
from nakhon.demo.model import DemoDevice, Kind

PROVIDER = "Nakhon demo city (simulated data)"


def allocate(total: int, kinds: tuple[Kind, ...] = KINDS) -> dict[str, int]:
    """Devices per kind, proportional to the kinds' weights (largest remainder).

    When there are at least as many devices as kinds, every kind gets one, so even a tiny
    demo covers all seven domains."""
    if total <= 0:
        return {k.key: 0 for k in kinds}
    floor_one = total >= len(kinds)
    spare = total - (len(kinds) if floor_one else 0)
    weight = sum(k.weight for k in kinds)
    exact = {k.key: spare * k.weight / weight for k in kinds}
    counts = {key: int(v) + (1 if floor_one else 0) for key, v in exact.items()}
    left = total - sum(counts.values())
    for key in sorted(exact, key=lambda k: exact[k] - int(exact[k]), reverse=True)[:left]:
        counts[key] += 1
    return counts


def plan(province: Province, total: int, seed: int) -> list[DemoDevice]:
    """The fleet: device ids ``<kind>-<nnnn>``, each placed and parametrised by its own
    generator seeded with (seed, device id)."""
    devices: list[DemoDevice] = []
    counts = allocate(total)
    for kind in KINDS:
        for index in range(1, counts[kind.key] + 1):
            device_id = f"cco-{kind.key}-{index:04d}"
            rng = random.Random(f"{seed}:{device_id}")
            sub, lat, lon = province.place(rng)
            params = kind.params(rng, sub)
            hid = zlib.crc32(device_id.encode()) + (seed & 0xFFFF) * 2**32
            devices.append(DemoDevice(device_id, kind, index, sub, lat, lon, params, hid))
    return devices


def group_doc(kind: Kind) -> dict[str, Any]:
    """The service group of a kind: its API key, entity type and attribute mapping."""
    return {
        "apikey": kind.apikey,
        "entity_type": kind.entity_type,
        "resource": "/iot/d" if kind.fmt == "ul" else "/iot/json",
        "attributes": [a.mapping() for a in kind.attrs],
        "explicitAttrs": True,
        "description": f"Demo city: {kind.label_en} · {kind.label_th} ({kind.domain})",
    }


def device_doc(dev: DemoDevice, province: Province) -> dict[str, Any]:
    """The device as the IoT Agent provisioning API would receive it."""
    sub, district = dev.sub, dev.sub.district
    static: list[dict[str, Any]] = [
        {
            "name": "name",
            "type": "Text",
            "value": f"{dev.kind.label_en} {district.name_en} {dev.index:03d}",
        },
        {
            "name": "alternateName",
            "type": "Text",
            "value": f"{dev.kind.label_th} อ.{district.name_th} ต.{sub.name_th}",
        },
        {
            "name": "address",
            "value": {
                "addressCountry": "TH",
                "addressRegion": province.name_th,
                "addressLocality": district.name_th,
                "district": sub.name_th,
                "postalCode": str(sub.postal_code),
            },
        },
        {"name": "areaServed", "type": "Text", "value": f"{sub.name_en}, {district.name_en}"},
        {"name": "districtCode", "type": "Text", "value": str(district.code)},
        {"name": "subdistrictCode", "type": "Text", "value": str(sub.code)},
        {"name": "dataProvider", "type": "Text", "value": PROVIDER},
        *dev.kind.static(dev),
    ]
    return {
        "device_id": dev.device_id,
        "apikey": dev.kind.apikey,
        "entity_name": dev.entity_id,
        "entity_type": dev.kind.entity_type,
        "static_attributes": static,
        "location": {"type": "Point", "coordinates": [dev.lon, dev.lat]},
    }

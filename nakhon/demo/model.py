"""The demo's small model: device kinds and the simulated devices of a city."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from nakhon.demo.geo import Subdistrict

Sampler = Callable[[int, "DemoDevice", float, float], dict[str, Any]]
"""``sample(seed, device, t, period)`` → the device's reading at epoch second ``t``, by object
id; ``period`` is the seconds since its previous report (for counts over the period)."""
Params = Callable[[random.Random, Subdistrict], dict[str, float]]
"""A kind's fixed per-device parameters, drawn from the device's own seeded generator."""


@dataclass(frozen=True, slots=True)
class Attr:
    """One measured attribute: the device's short object id, the NGSI-LD name, the IoT Agent
    type and the UN/CEFACT unit code."""

    object_id: str
    name: str
    type: str = "Number"
    unit: str | None = None

    def mapping(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"object_id": self.object_id, "name": self.name, "type": self.type}
        if self.unit:
            doc["unitCode"] = self.unit
        return doc


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of device: what it is, which domain it serves, how it talks and how often."""

    key: str
    entity_type: str
    domain: str
    label_en: str
    label_th: str
    fmt: Literal["json", "ul"]
    interval: int
    """Seconds between live reports (at ``--speed 1``)."""
    weight: float
    """Share of the fleet (a city of 500 devices has about this many)."""
    attrs: tuple[Attr, ...]
    sample: Sampler
    params: Params = field(default=lambda rng, sub: {})
    static: Callable[[DemoDevice], list[dict[str, Any]]] = field(default=lambda dev: [])

    @property
    def apikey(self) -> str:
        """One service group per kind, as a city would give each vendor's fleet its key."""
        return f"demo-{self.key}"


@dataclass(slots=True)
class DemoDevice:
    """One simulated device, placed in a subdistrict, with its fixed parameters."""

    device_id: str
    kind: Kind
    index: int
    sub: Subdistrict
    lat: float
    lon: float
    params: dict[str, float]
    hid: int
    """A stable integer for the device, the noise key (``hash`` of text is salted per process)."""

    @property
    def entity_id(self) -> str:
        return f"urn:ngsi-ld:{self.kind.entity_type}:{self.device_id}"

    def reading(self, seed: int, t: float, period: float) -> dict[str, Any]:
        return self.kind.sample(seed, self, t, period)

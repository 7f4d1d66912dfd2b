"""The device registry service: service groups and devices, kept in storage kv, cached here.

Every function checks authorisation itself (DESIGN.md rule 2): managing a tenant's groups and
devices needs a credential that may write that tenant (admin or the tenant's writer). Provisioning
a device upserts its entity (static attributes and ``location``) through the Broker service, so
the entity exists — and is findable on the map — before the device first speaks.

The ingest hot path only reads the in-memory maps. A miss (a device provisioned by another
process, e.g. ``nakhon devices create`` while the server runs) falls back to one kv read, and a
miss there is remembered for :data:`NEGATIVE_TTL` seconds so a chatty unknown device costs no
storage round trip per message.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from nakhon.broker.model import Entity
from nakhon.broker.service import Broker
from nakhon.core.auth import SYSTEM, Access, Principal
from nakhon.core.errors import AlreadyExists, BadRequestData, ResourceNotFound, Unauthorized
from nakhon.iot import stats as reasons
from nakhon.iot.convert import Target, compile_target, expand, static_attrs
from nakhon.iot.model import (
    Device,
    ServiceGroup,
    default_entity_id,
    parse_device,
    parse_group,
    parse_location,
    parse_mappings,
    parse_static,
)
from nakhon.iot.payloads import PayloadError
from nakhon.storage.base import Storage

GROUPS = "iot-groups"
DEVICES = "iot-devices"
NEGATIVE_TTL = 5.0
MISSING_MAX = 10_000


class Rejected(Exception):
    """A message that cannot be ingested; ``reason`` is one of the stats reasons."""

    def __init__(self, reason: str, detail: str, tenant: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.tenant = tenant


def _device_key(tenant: str, device_id: str) -> str:
    # A JSON pair: unambiguous whatever characters tenant names hold.
    return orjson.dumps([tenant, device_id]).decode()


def _group_from(doc: dict[str, Any]) -> ServiceGroup:
    return ServiceGroup(
        apikey=doc["apikey"], entity_type=doc["entity_type"], tenant=doc.get("tenant", ""),
        resource=doc.get("resource", "/iot/d"), attributes=parse_mappings(doc.get("attributes")),
        static_attributes=parse_static(doc.get("static_attributes")),
        explicit_attrs=bool(doc.get("explicitAttrs")), autoprovision=bool(doc.get("autoprovision")),
        description=doc.get("description", ""),
    )


def _device_from(doc: dict[str, Any]) -> Device:
    return Device(
        device_id=doc["device_id"], apikey=doc["apikey"], entity_name=doc["entity_name"],
        entity_type=doc["entity_type"], tenant=doc.get("tenant", ""),
        attributes=parse_mappings(doc.get("attributes")),
        static_attributes=parse_static(doc.get("static_attributes")),
        location=parse_location(doc.get("location")), explicit_attrs=doc.get("explicitAttrs"),
    )


class Registry:
    """Service groups and devices of every tenant."""

    def __init__(self, storage: Storage, access: Access, broker: Broker) -> None:
        self.storage = storage
        self.access = access
        self.broker = broker
        self._groups: dict[str, ServiceGroup] = {}
        self._devices: dict[str, Device] = {}
        self._targets: dict[tuple[str, str], Target] = {}
        self._missing: dict[str, float] = {}

    async def load(self) -> None:
        """Read the whole registry into memory (at start)."""
        self._groups = {k: _group_from(v) for k, v in (await self.storage.kv_list(GROUPS)).items()}
        self._devices = {k: _device_from(v) for k, v in
                         (await self.storage.kv_list(DEVICES)).items()}
        self._targets.clear()
        self._missing.clear()

    def _require(self, principal: Principal, tenant: str) -> None:
        if principal.anonymous:
            raise Unauthorized("The device registry needs a credential.")
        self.access.require_write(principal, tenant)

    # --- service groups ------------------------------------------------------------------

    async def create_group(self, principal: Principal, doc: Any, tenant: str) -> ServiceGroup:
        group = parse_group(doc, tenant)
        self._require(principal, group.tenant)
        existing = self._groups.get(group.apikey) or await self._load_group(group.apikey)
        if existing is not None and existing.tenant != group.tenant:
            # API keys are global: the MQTT topic carries the key, not the tenant.
            raise AlreadyExists(f"apikey {group.apikey!r} is used by another tenant.")
        try:
            static_attrs(Device("-", group.apikey, "urn:x:-", group.entity_type), group)
        except PayloadError as exc:
            raise BadRequestData(str(exc)) from None
        await self.storage.kv_put(GROUPS, group.apikey, group.to_doc())
        self._groups[group.apikey] = group
        self._invalidate()
        return group

    async def list_groups(self, principal: Principal, tenant: str | None) -> list[ServiceGroup]:
        if principal.anonymous:
            raise Unauthorized("The device registry needs a credential.")
        groups = sorted(self._groups.values(), key=lambda g: (g.tenant, g.apikey))
        return [g for g in groups if principal.covers(g.tenant)
                and (tenant is None or g.tenant == tenant)]

    async def get_group(self, principal: Principal, apikey: str) -> ServiceGroup:
        group = self._groups.get(apikey) or await self._load_group(apikey)
        if group is None:
            raise ResourceNotFound(f"No service group with apikey {apikey!r}.")
        self._require(principal, group.tenant)
        return group

    async def delete_group(self, principal: Principal, apikey: str) -> None:
        group = await self.get_group(principal, apikey)
        await self.storage.kv_delete(GROUPS, group.apikey)
        self._groups.pop(group.apikey, None)
        self._invalidate()

    async def group_for_resource(self, apikey: str, resource: str) -> ServiceGroup | None:
        """The group with ``apikey`` if it serves HTTP ingest at ``resource``."""
        group = self._groups.get(apikey) or await self._load_group(apikey)
        return group if group is not None and group.resource == resource else None

    # --- devices -------------------------------------------------------------------------

    async def create_device(self, principal: Principal, doc: Any, tenant: str) -> Device:
        """Provision (or re-provision) a device and upsert its entity."""
        if not isinstance(doc, dict):
            raise BadRequestData("A device must be a JSON object.")
        apikey = doc.get("apikey")
        group = None
        if isinstance(apikey, str) and apikey:
            group = self._groups.get(apikey) or await self._load_group(apikey)
            if group is None:
                raise BadRequestData(f"No service group with apikey {apikey!r}; create it first.")
            tenant = group.tenant
        else:
            # As the IoT Agents do: without an apikey the device joins its tenant's group,
            # when that tenant has exactly one.
            mine = [g for g in self._groups.values() if g.tenant == tenant]
            group = mine[0] if len(mine) == 1 else None
        device = parse_device(doc, tenant, group)
        self._require(principal, device.tenant)
        await self._provision(principal, device, group)
        return device

    async def _provision(self, principal: Principal, device: Device,
                         group: ServiceGroup | None) -> None:
        try:
            attrs = static_attrs(device, group)
        except PayloadError as exc:
            raise BadRequestData(str(exc)) from None
        entity = Entity(device.entity_name, [expand(device.entity_type)], attrs)
        result = await self.broker.batch(principal, device.tenant, "upsert", [entity],
                                         upsert_mode="update")
        for _, error in result.errors:
            raise error
        key = _device_key(device.tenant, device.device_id)
        await self.storage.kv_put(DEVICES, key, device.to_doc())
        self._devices[key] = device
        self._missing.pop(key, None)
        self._invalidate()

    async def list_devices(self, principal: Principal, tenant: str, *, limit: int,
                           offset: int) -> tuple[list[Device], int]:
        """One page of a tenant's devices (by device id) and their total count."""
        self._require(principal, tenant)
        devices = sorted((d for d in self._devices.values() if d.tenant == tenant),
                         key=lambda d: d.device_id)
        return devices[offset:offset + limit], len(devices)

    async def get_device(self, principal: Principal, tenant: str, device_id: str) -> Device:
        self._require(principal, tenant)
        device = await self._find_device(tenant, device_id)
        if device is None:
            raise ResourceNotFound(f"No device {device_id!r} in tenant {tenant!r}.")
        return device

    async def delete_device(self, principal: Principal, tenant: str, device_id: str) -> None:
        """Forget a device. Its entity stays: it is the city's data, not the device's."""
        device = await self.get_device(principal, tenant, device_id)
        key = _device_key(device.tenant, device.device_id)
        await self.storage.kv_delete(DEVICES, key)
        self._devices.pop(key, None)
        self._invalidate()

    # --- the ingest path -----------------------------------------------------------------

    def cached(self, apikey: str, device_id: str) -> Target | None:
        """The compiled target, if cached (the synchronous fast path)."""
        return self._targets.get((apikey, device_id))

    async def resolve(self, apikey: str, device_id: str) -> Target:
        """Where a message from ``device_id`` with ``apikey`` goes; :class:`Rejected` if
        nowhere."""
        target = self._targets.get((apikey, device_id))
        if target is not None:
            return target
        group = self._groups.get(apikey) or await self._load_group(apikey)
        if group is None:
            raise Rejected(reasons.UNKNOWN_APIKEY, f"no service group has apikey {apikey!r}")
        device = await self._find_device(group.tenant, device_id)
        if device is None:
            if not group.autoprovision:
                raise Rejected(reasons.UNKNOWN_DEVICE,
                               f"device {device_id!r} is not provisioned in tenant "
                               f"{group.tenant!r}", group.tenant)
            device = Device(device_id, apikey, default_entity_id(group.entity_type, device_id),
                            group.entity_type, group.tenant)
            await self._provision(SYSTEM, device, group)
        if device.apikey != apikey:
            raise Rejected(reasons.WRONG_APIKEY,
                           f"device {device_id!r} belongs to another apikey", group.tenant)
        target = compile_target(device, group)
        self._targets[(apikey, device_id)] = target
        return target

    async def _load_group(self, apikey: str) -> ServiceGroup | None:
        gkey = "g" + apikey
        if self._missing.get(gkey, 0.0) > time.monotonic():
            return None
        doc = await self.storage.kv_get(GROUPS, apikey)
        if doc is None:
            self._remember_missing(gkey)
            return None
        group = _group_from(doc)
        self._groups[apikey] = group
        return group

    async def _find_device(self, tenant: str, device_id: str) -> Device | None:
        key = _device_key(tenant, device_id)
        device = self._devices.get(key)
        if device is not None:
            return device
        if self._missing.get(key, 0.0) > time.monotonic():
            return None
        doc = await self.storage.kv_get(DEVICES, key)
        if doc is None:
            self._remember_missing(key)
            return None
        device = _device_from(doc)
        self._devices[key] = device
        return device

    def _remember_missing(self, key: str) -> None:
        if len(self._missing) >= MISSING_MAX:
            # A flood of random ids must not grow memory without bound; forgetting only costs
            # one kv read per id.
            self._missing.clear()
        self._missing[key] = time.monotonic() + NEGATIVE_TTL

    def _invalidate(self) -> None:
        # Mappings are compiled per (apikey, device); any registry change recompiles lazily.
        self._targets.clear()
        self._missing.clear()

"""What the NGSI-LD routes share: settings, broker, access, @context resolver."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from nakhon.broker import validate
from nakhon.broker.api.http import Call, call_context
from nakhon.broker.jsonld import ContextResolver
from nakhon.broker.model import Instance
from nakhon.broker.service import Broker
from nakhon.config import Settings
from nakhon.core.auth import Access, Principal
from nakhon.core.errors import BadRequestData


@dataclass(slots=True)
class ApiState:
    settings: Settings
    broker: Broker
    access: Access
    resolver: ContextResolver

    async def call(
        self, request: Request, principal: Principal, body: Any = None, ctype: str | None = None
    ) -> Call:
        return await call_context(request, self.resolver, principal, body, ctype)


def state(request: Request) -> ApiState:
    st: ApiState = request.app.state.api
    return st


def parse_fragment(attr: str, body: Any, expand: Any) -> list[Instance]:
    """The body of a partial attribute update: members to change in one attribute instance.

    Unlike a full attribute it may lack ``type`` and its value member (e.g. only
    ``observedAt``); a ``datasetId`` picks the instance."""
    if not isinstance(body, dict):
        raise BadRequestData("The body must be a JSON object (an attribute fragment).")
    fragment = {k: v for k, v in body.items() if k != "@context"}
    if not fragment:
        raise BadRequestData("The attribute fragment is empty.")
    if "type" in fragment or any(
        k in fragment
        for k in ("value", "object", "languageMap", "vocab", "valueList", "objectList", "json")
    ):
        return validate.parse_attribute(attr, fragment, expand)
    # Only meta members / sub-attributes: validate them by parsing as a Property around them.
    probe = validate.parse_attribute(attr, {"type": "Property", "value": 0, **fragment}, expand)
    for inst in probe:
        inst.pop("type", None)
        inst.pop("value", None)
    return probe

"""Credentials and the authorisation checks every service function makes.

A credential is a random token shown once at creation; only its SHA-256 is stored (storage kv
namespace ``credentials``). Clients send it as ``Authorization: Bearer <token>`` or
``X-API-Key: <token>``. Roles are deliberately few for now — ``admin`` (everything) and
``writer`` (read and write the tenants listed, or all) — and every check goes through
:class:`Access`, the one seam where finer roles will plug in.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from nakhon.core.errors import Forbidden, Unauthorized

CREDENTIALS = "credentials"
TENANT_SETTINGS = "tenant-settings"


class KvStore(Protocol):
    async def kv_get(self, namespace: str, key: str) -> Any | None: ...
    async def kv_put(self, namespace: str, key: str, value: Any) -> None: ...
    async def kv_delete(self, namespace: str, key: str) -> bool: ...
    async def kv_list(self, namespace: str) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking. ``tenants`` None means every tenant."""

    name: str
    role: str = "anonymous"
    tenants: frozenset[str] | None = None

    @property
    def anonymous(self) -> bool:
        return self.role == "anonymous"

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def covers(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants


ANONYMOUS = Principal("anonymous")
SYSTEM = Principal("system", "admin")
"""The platform itself (CLI, demo, internal jobs)."""
OPEN = Principal("open-network", "admin")
"""Everybody, when NAKHON_AUTH=off."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Access:
    """Authentication of requests and the authorisation checks of the service layer."""

    def __init__(self, kv: KvStore, *, enabled: bool, anonymous_read: bool) -> None:
        self.kv = kv
        self.enabled = enabled
        self.anonymous_read = anonymous_read
        self._tenant_read_cache: dict[str, bool] = {}
        self._token_cache: dict[str, Principal | None] = {}

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """Who sent the request: a wrong credential is 401, no credential is anonymous."""
        if not self.enabled:
            return OPEN
        token = headers.get("x-api-key")
        auth = headers.get("authorization")
        if token is None and auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise Unauthorized("Use 'Authorization: Bearer <token>' or 'X-API-Key: <token>'.")
            token = value.strip()
        if token is None:
            return ANONYMOUS
        digest = _digest(token)
        if digest in self._token_cache:
            principal = self._token_cache[digest]
        else:
            doc = await self.kv.kv_get(CREDENTIALS, digest)
            principal = _principal(doc) if doc else None
            self._token_cache[digest] = principal
        if principal is None:
            raise Unauthorized("The credential is not valid (unknown or revoked).")
        return principal

    async def require_read(self, principal: Principal, tenant: str) -> None:
        """Reading ``tenant`` is allowed for its writers and, where the tenant allows, anyone."""
        if principal.anonymous:
            if await self.tenant_allows_anonymous_read(tenant):
                return
            raise Unauthorized("This tenant does not allow anonymous reads; send a credential.")
        if not principal.covers(tenant):
            raise Forbidden(f"The credential does not cover tenant {tenant!r}.")

    def require_write(self, principal: Principal, tenant: str) -> None:
        """Writes need a credential that covers the tenant."""
        if principal.anonymous:
            raise Unauthorized("Writes need a credential: 'Authorization: Bearer <token>'.")
        if not principal.covers(tenant):
            raise Forbidden(f"The credential does not cover tenant {tenant!r}.")

    def require_admin(self, principal: Principal) -> None:
        if principal.anonymous:
            raise Unauthorized("This needs an admin credential.")
        if not principal.admin:
            raise Forbidden("This needs an admin credential.")

    async def tenant_allows_anonymous_read(self, tenant: str) -> bool:
        if tenant not in self._tenant_read_cache:
            doc = await self.kv.kv_get(TENANT_SETTINGS, tenant)
            allowed = self.anonymous_read
            if isinstance(doc, dict) and isinstance(doc.get("anonymousRead"), bool):
                allowed = doc["anonymousRead"]
            self._tenant_read_cache[tenant] = allowed
        return self._tenant_read_cache[tenant]

    async def set_tenant_anonymous_read(
        self, principal: Principal, tenant: str, allow: bool
    ) -> None:
        """Allow or forbid anonymous reads of one tenant (admin only)."""
        self.require_admin(principal)
        await self.kv.kv_put(TENANT_SETTINGS, tenant, {"anonymousRead": allow})
        self._tenant_read_cache.pop(tenant, None)

    async def create_credential(
        self, principal: Principal, name: str, role: str, tenants: list[str] | None
    ) -> str:
        """Create a credential and return its token (shown once, never stored)."""
        self.require_admin(principal)
        if role not in ("admin", "writer"):
            raise ValueError("role must be 'admin' or 'writer'")
        token = "nk_" + secrets.token_urlsafe(32)
        doc = {
            "name": name,
            "role": role,
            "tenants": tenants,
            "createdAt": datetime.now(UTC).isoformat(),
        }
        await self.kv.kv_put(CREDENTIALS, _digest(token), doc)
        return token

    async def list_credentials(self, principal: Principal) -> list[dict[str, Any]]:
        self.require_admin(principal)
        docs = await self.kv.kv_list(CREDENTIALS)
        return [{"id": k[:16], **v} for k, v in sorted(docs.items())]

    async def revoke_credential(self, principal: Principal, credential_id: str) -> bool:
        """Revoke by the id :meth:`list_credentials` shows (a prefix of the digest)."""
        self.require_admin(principal)
        docs = await self.kv.kv_list(CREDENTIALS)
        for digest in docs:
            if digest.startswith(credential_id) and len(credential_id) >= 8:
                await self.kv.kv_delete(CREDENTIALS, digest)
                self._token_cache.clear()
                return True
        return False

    async def has_admin(self) -> bool:
        docs = await self.kv.kv_list(CREDENTIALS)
        return any(d.get("role") == "admin" for d in docs.values())


def _principal(doc: dict[str, Any]) -> Principal:
    tenants = doc.get("tenants")
    return Principal(
        str(doc.get("name", "?")),
        str(doc.get("role", "writer")),
        frozenset(tenants) if tenants is not None else None,
    )

"""NGSI-LD ProblemDetails errors (ETSI GS CIM 009, clause 5.5.2 / 6.3.2).

Every client mistake is raised as an :class:`NgsiError` subclass; the HTTP adapter renders it as
``application/json`` ProblemDetails with ``type``, ``title``, ``detail`` and the right status.
"""

from __future__ import annotations

from typing import Any, ClassVar

ERROR_BASE = "https://uri.etsi.org/ngsi-ld/errors/"


class NgsiError(Exception):
    """Base class: one NGSI-LD error type with its HTTP status."""

    status: ClassVar[int] = 400
    kind: ClassVar[str] = "BadRequestData"
    title: ClassVar[str] = "Bad request data"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def type_uri(self) -> str:
        return ERROR_BASE + self.kind

    def problem(self) -> dict[str, Any]:
        """The ProblemDetails body."""
        body: dict[str, Any] = {"type": self.type_uri, "title": self.title, "detail": self.detail}
        body.update(self.extra)
        return body


class InvalidRequest(NgsiError):
    status = 400
    kind = "InvalidRequest"
    title = "Invalid request"


class BadRequestData(NgsiError):
    status = 400
    kind = "BadRequestData"
    title = "Bad request data"


class AlreadyExists(NgsiError):
    status = 409
    kind = "AlreadyExists"
    title = "Already exists"


class OperationNotSupported(NgsiError):
    status = 422
    kind = "OperationNotSupported"
    title = "Operation not supported"


class ResourceNotFound(NgsiError):
    status = 404
    kind = "ResourceNotFound"
    title = "Resource not found"


class NonexistentTenant(NgsiError):
    status = 404
    kind = "NonexistentTenant"
    title = "Nonexistent tenant"


class InternalError(NgsiError):
    status = 500
    kind = "InternalError"
    title = "Internal error"


class TooComplexQuery(NgsiError):
    status = 403
    kind = "TooComplexQuery"
    title = "Too complex query"


class TooManyResults(NgsiError):
    status = 403
    kind = "TooManyResults"
    title = "Too many results"


class LdContextNotAvailable(NgsiError):
    status = 503
    kind = "LdContextNotAvailable"
    title = "@context not available"


class NotAcceptable(NgsiError):
    """406: no representation the client accepts (ProblemDetails type per clause 6.3.4)."""

    status = 406
    kind = "NotAcceptable"
    title = "Not acceptable"


class UnsupportedMediaType(NgsiError):
    status = 415
    kind = "UnsupportedMediaType"
    title = "Unsupported media type"


class PayloadTooLarge(NgsiError):
    status = 413
    kind = "BadRequestData"
    title = "Request body too large"


class Unauthorized(NgsiError):
    status = 401
    kind = "Unauthorized"
    title = "Credential required"


class Forbidden(NgsiError):
    status = 403
    kind = "Forbidden"
    title = "Not allowed"


class Conflict(NgsiError):
    status = 409
    kind = "Conflict"
    title = "Conflict"

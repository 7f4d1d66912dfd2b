"""Small SQL helpers shared by the compilers: dialects, bound parameters, the regexp function.

Every user-supplied value, attribute IRI and JSON key reaches SQL as a bound parameter; only
constants of this package (member names such as ``value``) are written into the SQL text.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

from nakhon.broker.query.regex import compile_portable

Dialect = Literal["sqlite", "postgres"]

# PostgreSQL casts per Python type, so asyncpg knows how to encode each parameter.
_PG_CASTS: dict[type, str] = {str: "text", int: "numeric", Decimal: "numeric", list: "text[]"}


class Binder:
    """Appends values to the caller's ``params`` and hands back their placeholders."""

    def __init__(self, dialect: Dialect, params: list[Any]) -> None:
        if dialect not in ("sqlite", "postgres"):
            raise ValueError(f"unknown SQL dialect {dialect!r}")
        self.dialect = dialect
        self.params = params

    @property
    def pg(self) -> bool:
        return self.dialect == "postgres"

    def __call__(self, value: Any) -> str:
        """Bind ``value``; returns ``?`` (sqlite) or ``$N::cast`` (postgres)."""
        if type(value) is int and not self.pg and not -(2**63) <= value < 2**63:
            # SQLite integers are 64-bit; JSON1 reads larger numbers as reals anyway.
            value = float(value)
        if isinstance(value, float):
            # asyncpg would send the float's exact binary expansion (0.1 →
            # 0.1000000000000000055…) and break equality with the JSON text 0.1.
            value = Decimal(repr(value)) if self.pg else value
        self.params.append(value)
        if not self.pg:
            return "?"
        cast = _PG_CASTS.get(type(value))
        number = len(self.params)
        return f"${number}::{cast}" if cast else f"${number}"


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return compile_portable(pattern)
    except re.error:
        return None


def sqlite_regexp(pattern: str, value: object) -> bool:
    """The ``regexp(pattern, value)`` SQL function the SQLite engine registers.

    SQLite rewrites ``value REGEXP pattern`` into ``regexp(pattern, value)``. It searches
    (unanchored) like Python's ``re.search``, which :func:`match_q` uses too; a non-text value
    or an invalid pattern never matches. Compiled patterns are cached.
    """
    if not isinstance(value, str) or not isinstance(pattern, str):
        return False
    compiled = _compiled(pattern)
    return compiled is not None and compiled.search(value) is not None


def regex_search(pattern: str, value: str) -> bool:
    """Python-side pattern test with the same cache and rules as :func:`sqlite_regexp`."""
    return sqlite_regexp(pattern, value)

"""The NGSI-LD query languages as a pure package: parse, evaluate in Python, compile to SQL.

* ``q`` (clause 4.9): :func:`parse_q`, :func:`match_q`, :func:`compile_q`, :func:`unparse_q`;
* entity type selection (4.17): :func:`parse_type_selection`, :func:`match_types`,
  :func:`compile_types`, :func:`unparse_types`;
* ``scopeQ`` (4.19): :func:`parse_scope_q`, :func:`match_scope`, :func:`compile_scope`,
  :func:`unparse_scope_q`;
* geo-queries (4.10): :func:`parse_geo` → :class:`GeoQuery`, :func:`match_geo`.

Entities are in the normal form of :mod:`nakhon.broker.model`. The ``compile_*`` functions
return a SQL boolean over the table alias ``e`` and append bound values to ``params``;
SQL and Python evaluation give the same answers (tests/broker/test_query_sql.py checks it on
SQLite and PostgreSQL). On SQLite register :func:`sqlite_regexp` as ``regexp`` (2 args).
"""

from nakhon.broker.query.geo import GeoQuery, match_geo, parse_geo
from nakhon.broker.query.nodes import And, Or
from nakhon.broker.query.q import Expand, Path, QExpr, QLiteral, Term, parse_q, unparse_q
from nakhon.broker.query.q_eval import match_q
from nakhon.broker.query.q_sql import compile_q
from nakhon.broker.query.scope import (
    ScopeExpr,
    ScopePattern,
    compile_scope,
    match_scope,
    parse_scope_q,
    unparse_scope_q,
)
from nakhon.broker.query.sql import Dialect, sqlite_regexp
from nakhon.broker.query.typesel import (
    TypeExpr,
    compile_types,
    match_types,
    parse_type_selection,
    unparse_types,
)

__all__ = [
    "And",
    "Dialect",
    "Expand",
    "GeoQuery",
    "Or",
    "Path",
    "QExpr",
    "QLiteral",
    "ScopeExpr",
    "ScopePattern",
    "Term",
    "TypeExpr",
    "compile_q",
    "compile_scope",
    "compile_types",
    "match_geo",
    "match_q",
    "match_scope",
    "match_types",
    "parse_geo",
    "parse_q",
    "parse_scope_q",
    "parse_type_selection",
    "sqlite_regexp",
    "unparse_q",
    "unparse_scope_q",
    "unparse_types",
]

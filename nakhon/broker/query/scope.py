"""Scope queries (clause 4.19): ``/a/b``, ``/a/#`` (a and below), ``/a/+/c`` (``+`` = one
level), ``/#`` (any scope); combined with ``;`` (and), ``|`` or ``,`` (or), parentheses.

An entity matches a pattern when one of its scopes does; an entity without scope matches
nothing. A leading ``/`` is optional on both sides (the Scope grammar makes it optional), so
scopes are compared in the canonical form with the slash.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nakhon.broker.query.nodes import BoolParser, Node, evaluate, to_sql, unparse_node
from nakhon.broker.query.sql import Binder, Dialect, regex_search

_LEVEL = re.compile(r"[^\s/,;|()#+]+")


@dataclass(frozen=True, slots=True)
class ScopePattern:
    """``levels`` (``"+"`` = any one level) and ``subtree`` (a trailing ``/#``)."""

    levels: tuple[str, ...]
    subtree: bool = False

    def text(self) -> str:
        """The pattern in the surface syntax."""
        body = "".join("/" + level for level in self.levels)
        return body + "/#" if self.subtree else body

    def regex(self) -> str:
        """An anchored regular expression over canonical scopes, valid in Python and in
        PostgreSQL (escapes only punctuation, which both read as literal)."""
        body = "".join("/" + ("[^/]+" if lv == "+" else re.escape(lv)) for lv in self.levels)
        return "^" + body + ("(/.*)?$" if self.subtree else "$")

    def exact(self) -> bool:
        return "+" not in self.levels


ScopeExpr = Node[ScopePattern]


class _ScopeParser(BoolParser[ScopePattern]):
    language = "scope query"
    or_chars = "|,"

    def leaf(self) -> ScopePattern:
        levels: list[str] = []
        first = True
        while True:
            has_slash = self.text.startswith("/", self.pos)
            if not has_slash and not first:
                break
            if has_slash:
                self.pos += 1
            if self.text.startswith("#", self.pos):
                self.pos += 1
                return ScopePattern(tuple(levels), True)
            if self.text.startswith("+", self.pos):
                self.pos += 1
                levels.append("+")
            else:
                match = _LEVEL.match(self.text, self.pos)
                if not match:
                    raise self.error("expected a scope level after '/'")
                self.pos = match.end()
                levels.append(match.group())
            first = False
        return ScopePattern(tuple(levels))


def parse_scope_q(text: str) -> ScopeExpr:
    """Parse a ``scopeQ`` parameter; raises BadRequestData on bad syntax."""
    return _ScopeParser(text).parse()


def unparse_scope_q(expr: ScopeExpr) -> str:
    """Print ``expr`` so that :func:`parse_scope_q` gives it back."""
    return unparse_node(expr, ScopePattern.text)


def _canonical(scope: str) -> str:
    return scope if scope.startswith("/") else "/" + scope


def _one(pattern: ScopePattern, scope: str) -> bool:
    return regex_search(pattern.regex(), _canonical(scope))


def match_scope(expr: ScopeExpr, scope: Sequence[str] | None) -> bool:
    """Does an entity with ``scope`` (None: no scope) satisfy ``expr``?"""
    if not scope:
        return False
    scopes = [s for s in scope if isinstance(s, str)]
    return evaluate(expr, lambda p: any(_one(p, s) for s in scopes))


def compile_scope(expr: ScopeExpr, dialect: Dialect, params: list[Any]) -> str:
    """SQL boolean over ``e.scopes`` (sqlite JSON array text or NULL, postgres text[] or NULL).

    Patterns without ``+`` use plain string tests; ``+`` patterns use ``REGEXP`` / ``~``.
    """
    bind = Binder(dialect, params)

    def leaf(p: ScopePattern) -> str:
        if bind.pg:
            value = "(CASE WHEN left(sc.v, 1) = '/' THEN sc.v ELSE '/' || sc.v END)"
            source = "unnest(e.scopes) AS sc(v)"
        else:
            value = (
                "(CASE WHEN substr(sc.value, 1, 1) = '/' THEN sc.value ELSE '/' || sc.value END)"
            )
            source = "json_each(e.scopes) AS sc"
        if not p.exact():
            op = "~" if bind.pg else "REGEXP"
            test = f"{value} {op} {bind(p.regex())}"
        else:
            base = "".join("/" + lv for lv in p.levels)
            test = f"{value} = {bind(base)}"
            if p.subtree:
                prefix = base + "/"
                length = "length" if not bind.pg else "char_length"
                start = f"substr({value}, 1, {length}({bind(prefix)}))"
                test = f"({test} OR {start} = {bind(prefix)})"
        return f"EXISTS (SELECT 1 FROM {source} WHERE {test})"

    return to_sql(expr, leaf)

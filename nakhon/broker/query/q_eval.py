"""Python evaluation of q (used by subscriptions; must agree with :mod:`q_sql`).

Typing rules: numbers compare with numbers (booleans are not numbers), strings with strings
(date, time, date-time and URI literals are strings, compared as ISO text by code point),
booleans only with ``==``/``!=``. A comparison across types is simply false. Over an array the
positive operators need one element to satisfy them; ``!=`` needs the target to exist and no
element to equal any value; ``!~=`` needs a string element and no string element to match.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from nakhon.broker.model import Entity
from nakhon.broker.query.nodes import evaluate
from nakhon.broker.query.q import VOCAB_KINDS, QExpr, QLiteral, Term
from nakhon.broker.query.sql import regex_search
from nakhon.broker.query.targets import MISSING, Source, elements, node_only, sources, target

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _same_type(x: object, lit: QLiteral) -> bool:
    if lit.kind == "number":
        return _is_number(x)
    if lit.kind == "bool":
        return isinstance(x, bool)
    return isinstance(x, str)


def _equals(x: object, lit: QLiteral) -> bool:
    return _same_type(x, lit) and x == lit.value


def _positive(term: Term, source: Source) -> Callable[[Any], bool]:
    """The element predicate of ``==``, ranges, order operators and ``~=``."""
    if term.pattern is not None:
        pattern = term.pattern
        return lambda x: isinstance(x, str) and regex_search(pattern, x)
    if term.range is not None:
        low, high = term.range
        return lambda x: _same_type(x, low) and bool(low.value <= x <= high.value)
    if term.op in _ORDER:
        compare, lit = _ORDER[term.op], term.values[0]
        return lambda x: _same_type(x, lit) and compare(x, lit.value)
    values = term.values
    if source.vocab:
        values = tuple(v for v in values if v.kind not in VOCAB_KINDS) + tuple(
            QLiteral(v, "uri") for v in term.vocab_values
        )
    return lambda x: any(_equals(x, lit) for lit in values)


def _source_matches(term: Term, source: Source, node: dict[str, Any]) -> bool:
    value = target(node, source)
    if value is MISSING:
        return False
    if term.op is None:
        return True
    if source.relationship and term.op not in ("==", "!="):
        return False
    items = elements(value, source.mode)
    if term.op == "!~=":
        pattern = term.pattern or ""
        texts = [x for x in items if isinstance(x, str)]
        return bool(texts) and not any(regex_search(pattern, x) for x in texts)
    predicate = _positive(term, source)
    hit = any(predicate(x) for x in items)
    return not hit if term.op == "!=" else hit


def _node(instance: Any, sub: tuple[str, ...]) -> dict[str, Any] | None:
    node = instance
    for key in sub:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, dict) else None


def _term_matches(term: Term, entity: Entity) -> bool:
    instances = entity.attrs.get(term.path.attr)
    found = False
    if isinstance(instances, list):
        srcs = sources(term.path)
        for instance in instances:
            node = _node(instance, term.path.sub)
            if node is None:
                continue
            if node_only(term) or any(_source_matches(term, s, node) for s in srcs):
                found = True
                break
    return not found if term.negated else found


def match_q(expr: QExpr, entity: Entity) -> bool:
    """Does ``entity`` (normal form) satisfy ``expr``?"""
    return evaluate(expr, lambda term: _term_matches(term, entity))

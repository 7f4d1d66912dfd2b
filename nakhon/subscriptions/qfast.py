"""``q`` for subscriptions, prepared once per subscription instead of once per change.

:func:`nakhon.broker.query.match_q` works out each term's sources and comparison closures on
every call (seven ``Source`` objects and a predicate per source and term): for the write hook,
which evaluates the same expression for every change, that preparation is most of the cost.
:func:`prepare_q` does it once and returns a function of the entity. It reuses the evaluator's
own helpers, so the meaning is the same (``tests/subscriptions/test_qfast.py`` checks it
against ``match_q``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nakhon.broker.model import Entity
from nakhon.broker.query.nodes import And, Or
from nakhon.broker.query.q import QExpr, Term
from nakhon.broker.query.q_eval import _node, _positive  # the evaluator's own pieces
from nakhon.broker.query.sql import regex_search
from nakhon.broker.query.targets import MISSING, Source, elements, node_only, sources, target

Check = Callable[[dict[str, Any]], bool]


def prepare_q(expr: QExpr) -> Callable[[Entity], bool]:
    """``expr`` as a function of the entity, equal to ``lambda e: match_q(expr, e)``."""
    if isinstance(expr, And):
        parts = [prepare_q(item) for item in expr.items]
        return lambda entity: all(part(entity) for part in parts)
    if isinstance(expr, Or):
        parts = [prepare_q(item) for item in expr.items]
        return lambda entity: any(part(entity) for part in parts)
    return _term(expr)


def _term(term: Term) -> Callable[[Entity], bool]:
    attr, sub, negated = term.path.attr, term.path.sub, term.negated
    check: Check | None = None
    if not node_only(term):
        checks = [_source(term, source) for source in sources(term.path)]

        def check(node: dict[str, Any]) -> bool:
            return any(c(node) for c in checks)

    def leaf(entity: Entity) -> bool:
        instances = entity.attrs.get(attr)
        found = False
        if isinstance(instances, list):
            for instance in instances:
                node = _node(instance, sub)
                if node is None:
                    continue
                if check is None or check(node):
                    found = True
                    break
        return not found if negated else found

    return leaf


def _source(term: Term, source: Source) -> Check:
    """``q_eval._source_matches`` for one term and source, its predicate made once."""
    op = term.op
    if op is None:
        return lambda node: target(node, source) is not MISSING
    if source.relationship and op not in ("==", "!="):
        return lambda node: False
    mode = source.mode
    if op == "!~=":
        pattern = term.pattern or ""

        def unmatched(node: dict[str, Any]) -> bool:
            value = target(node, source)
            if value is MISSING:
                return False
            texts = [x for x in elements(value, mode) if isinstance(x, str)]
            return bool(texts) and not any(regex_search(pattern, x) for x in texts)

        return unmatched
    predicate = _positive(term, source)
    negative = op == "!="

    def matches(node: dict[str, Any]) -> bool:
        value = target(node, source)
        if value is MISSING:
            return False
        hit = any(predicate(x) for x in elements(value, mode))
        return not hit if negative else hit

    return matches

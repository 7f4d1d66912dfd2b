"""Entity type selection (clause 4.17): ``A,B`` / ``A|B`` (or), ``(A;B)`` (and), parentheses.

An entity has a list of types; a name selects it when the name is among them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nakhon.broker.query.nodes import And, BoolParser, Node, Or, evaluate, unparse_node
from nakhon.broker.query.q import Expand
from nakhon.broker.query.sql import Binder, Dialect

TypeExpr = Node[str]

_STOP = ",;|()"


class _TypeParser(BoolParser[str]):
    language = "entity type selection"
    or_chars = "|,"

    def __init__(self, text: str, expand: Expand) -> None:
        super().__init__(text)
        self.expand = expand

    def leaf(self) -> str:
        start = self.pos
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in _STOP or char.isspace():
                break
            self.pos += 1
        name = self.text[start : self.pos]
        if not name:
            raise self.error("an entity type is missing")
        try:
            return self.expand(name)
        except Exception as exc:
            self.pos = start
            raise self.error(f"cannot expand type {name!r}: {exc}") from exc


def parse_type_selection(text: str, expand: Expand) -> TypeExpr:
    """Parse a ``type`` parameter; each name is expanded with ``expand``.

    Raises :class:`~nakhon.core.errors.BadRequestData` on bad syntax.
    """
    return _TypeParser(text, expand).parse()


def unparse_types(expr: TypeExpr, compact: Callable[[str], str] = str) -> str:
    """Print ``expr`` so that :func:`parse_type_selection` gives it back."""
    return unparse_node(expr, compact)


def match_types(expr: TypeExpr, types: Sequence[str]) -> bool:
    """Does an entity with ``types`` (expanded IRIs) satisfy ``expr``?"""
    present = set(types)
    return evaluate(expr, lambda name: name in present)


def _leaves(node: TypeExpr) -> list[str] | None:
    if isinstance(node, And | Or) and all(isinstance(i, str) for i in node.items):
        return [str(i) for i in node.items]
    return None


def compile_types(expr: TypeExpr, dialect: Dialect, params: list[Any]) -> str:
    """SQL boolean over ``e.types`` (sqlite JSON array text, postgres ``text[]``).

    A plain list of names becomes one array test (``&&`` / ``@>`` on postgres, which a GIN
    index on ``e.types`` serves; ``IN`` over ``json_each`` on sqlite).
    """
    bind = Binder(dialect, params)

    def one_of(names: list[str]) -> str:
        if bind.pg:
            return f"(e.types && {bind(names)})"
        marks = ", ".join(bind(n) for n in names)
        return f"EXISTS (SELECT 1 FROM json_each(e.types) AS t WHERE t.value IN ({marks}))"

    def go(node: TypeExpr) -> str:
        if isinstance(node, str):
            return one_of([node])
        leaves = _leaves(node)
        if leaves is not None and isinstance(node, Or):
            return one_of(leaves)
        if leaves is not None and bind.pg:
            return f"(e.types @> {bind(leaves)})"
        glue = " AND " if isinstance(node, And) else " OR "
        return "(" + glue.join(go(item) for item in node.items) + ")"

    return go(expr)

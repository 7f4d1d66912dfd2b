"""Boolean structure shared by the three selection languages (q, type selection, scopeQ).

Each language has its own leaf type; ``;`` (and) and ``|`` (or, also ``,`` for types and
scopes) combine leaves with parentheses, and-before-or as in clause 4.9. The parsers build
:class:`And` / :class:`Or` only when there are two or more operands, so a single leaf is the
whole expression and equal texts give equal trees (the round-trip tests rely on it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

from nakhon.core.errors import BadRequestData

L = TypeVar("L")

# Deep nesting is never needed by a real query and would exhaust the recursion limit.
MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class And(Generic[L]):
    """All operands hold."""

    items: tuple[Node[L], ...]


@dataclass(frozen=True, slots=True)
class Or(Generic[L]):
    """At least one operand holds."""

    items: tuple[Node[L], ...]


Node: TypeAlias = And[L] | Or[L] | L


def evaluate(node: Node[L], leaf: Callable[[L], bool]) -> bool:
    """Evaluate ``node`` with ``leaf`` deciding each leaf."""
    if isinstance(node, And):
        return all(evaluate(item, leaf) for item in node.items)
    if isinstance(node, Or):
        return any(evaluate(item, leaf) for item in node.items)
    return leaf(node)


def to_sql(node: Node[L], leaf: Callable[[L], str]) -> str:
    """Render ``node`` as a parenthesised SQL boolean expression."""
    if isinstance(node, And | Or):
        glue = " AND " if isinstance(node, And) else " OR "
        return "(" + glue.join(to_sql(item, leaf) for item in node.items) + ")"
    return leaf(node)


def unparse_node(node: Node[L], leaf: Callable[[L], str], or_op: str = "|") -> str:
    """Print ``node`` in the surface syntax; nested groups are parenthesised."""

    def go(n: Node[L], top: bool) -> str:
        if isinstance(n, And):
            text = ";".join(go(item, False) for item in n.items)
            return text if top else "(" + text + ")"
        if isinstance(n, Or):
            text = or_op.join(go(item, False) for item in n.items)
            return text if top else "(" + text + ")"
        return leaf(n)

    return go(node, True)


def combine(kind: type[And[L]] | type[Or[L]], items: list[Node[L]]) -> Node[L]:
    """``kind(items)`` flattened (``(a;b);c`` is ``a;b;c``); one operand stands alone."""
    flat: list[Node[L]] = []
    for item in items:
        if isinstance(item, kind):
            flat.extend(item.items)
        else:
            flat.append(item)
    if len(flat) == 1:
        return flat[0]
    return kind(tuple(flat))


class BoolParser(Generic[L]):
    """Recursive-descent parser of ``or``-of-``and`` expressions over some leaf syntax.

    Subclasses implement :meth:`leaf`, reading one leaf at ``self.pos``. ``or_chars`` are the
    characters accepted as *or* (``|`` always; ``,`` too for types and scopes).
    """

    language = "expression"
    or_chars = "|"

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    # -- helpers -----------------------------------------------------------------------
    def error(self, message: str) -> BadRequestData:
        """A BadRequestData pointing at the current position."""
        shown = self.text if len(self.text) <= 200 else self.text[:200] + "…"
        return BadRequestData(
            f"Invalid {self.language} at character {self.pos + 1}: {message} (in {shown!r})"
        )

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    # -- grammar -----------------------------------------------------------------------
    def parse(self) -> Node[L]:
        """Parse the whole text; anything left over is an error."""
        if not self.text.strip():
            raise BadRequestData(f"Invalid {self.language}: it is empty")
        node = self.parse_or()
        if self.peek():
            raise self.error(f"unexpected {self.peek()!r}")
        return node

    def parse_or(self) -> Node[L]:
        items = [self.parse_and()]
        while self.peek() and self.peek() in self.or_chars:
            self.pos += 1
            items.append(self.parse_and())
        return combine(Or, items)

    def parse_and(self) -> Node[L]:
        items = [self.parse_atom()]
        while self.peek() == ";":
            self.pos += 1
            items.append(self.parse_atom())
        return combine(And, items)

    def parse_atom(self) -> Node[L]:
        char = self.peek()
        if char == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"parentheses nested deeper than {MAX_DEPTH}")
            self.pos += 1
            node = self.parse_or()
            if self.peek() != ")":
                raise self.error("missing ')'")
            self.pos += 1
            self.depth -= 1
            return node
        if not char:
            raise self.error("unexpected end, a term is missing")
        if char in ");" or char in self.or_chars:
            raise self.error(f"unexpected {char!r}, a term is missing")
        return self.leaf()

    def leaf(self) -> L:  # pragma: no cover - abstract
        raise NotImplementedError

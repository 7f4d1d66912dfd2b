"""The NGSI-LD Query Language (``q``, clause 4.9): AST, parser and printer.

Supported: comparisons ``== != > >= < <=``, ranges ``a==1..5``, value lists ``a==1,2,"x"``,
patterns ``~=`` / ``!~=``, existence ``a`` and non-existence ``!a``, ``;`` (and, binds
tighter) and ``|`` (or) with parentheses; attribute paths ``attr``, ``attr.sub.sub``,
``attr.observedAt`` (also ``modifiedAt``, ``createdAt``, ``unitCode``, ``datasetId``) and a
trailing compound path ``attr[key.key]`` (``[en]`` picks a language of a LanguageProperty,
``[*]`` any language). Linked-entity paths ``attr{...}`` are rejected as not supported.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal as TLiteral

from nakhon.broker.query.nodes import BoolParser, Node, unparse_node
from nakhon.broker.query.regex import portable_pattern
from nakhon.core.errors import BadRequestData

Expand = Callable[[str], str]
Scalar = int | float | str | bool
Kind = TLiteral["number", "string", "bool", "datetime", "date", "time", "uri"]
Op = TLiteral["==", "!=", ">", ">=", "<", "<=", "~=", "!~="]

#: Members of an attribute instance addressable as the last element of a path.
SPECIAL_MEMBERS = frozenset({"observedAt", "modifiedAt", "createdAt", "unitCode", "datasetId"})
STRING_KINDS = frozenset({"string", "datetime", "date", "time", "uri"})
# Literals a VocabProperty compares in expanded form (dates and numbers are never terms).
VOCAB_KINDS = frozenset({"string", "uri"})
ORDER_OPS = frozenset({">", ">=", "<", "<="})

# A name is anything but the syntax characters; it may not start like a number, so that a
# trailing key can never be mistaken for an array index by a JSON path engine.
_NAME = re.compile(r"""[^\s.\[\]()=!<>~;|,"'{}\\\-0-9][^\s.\[\]()=!<>~;|,"'{}\\]*""")
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}:\d{2}(?:[.,]\d+)?Z?")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_OPS: tuple[Op, ...] = ("==", "!=", ">=", "<=", "!~=", "~=", ">", "<")
_VALUE_END = ";|),"


@dataclass(frozen=True, slots=True)
class QLiteral:
    """One literal of a query term; ``kind`` keeps how it was written (for printing)."""

    value: Scalar
    kind: Kind


@dataclass(frozen=True, slots=True)
class Path:
    """``attr.sub1.sub2.member[trail.keys]`` with attribute names expanded.

    ``member`` is one of :data:`SPECIAL_MEMBERS` or ``None``; ``trail`` is ``None`` when
    there are no brackets; its keys are JSON member names, kept as written.
    """

    attr: str
    sub: tuple[str, ...] = ()
    member: str | None = None
    trail: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Term:
    """One query term. ``op`` is ``None`` for an existence test (``negated``: ``!attr``).

    ``values`` holds the single value or the value list; ``range`` is ``(low, high)`` for
    ``==a..b`` / ``!=a..b``; ``pattern`` the regular expression of ``~=`` / ``!~=``;
    ``vocab_values`` the string values expanded like a VocabProperty's ``vocab``.
    """

    path: Path
    op: Op | None = None
    values: tuple[QLiteral, ...] = ()
    range: tuple[QLiteral, QLiteral] | None = None
    pattern: str | None = None
    negated: bool = False
    vocab_values: tuple[str, ...] = ()


QExpr = Node[Term]


class _QParser(BoolParser[Term]):
    language = "q query"

    def __init__(self, text: str, expand: Expand) -> None:
        super().__init__(text)
        self.expand = expand

    def name(self, what: str) -> str:
        match = _NAME.match(self.text, self.pos)
        if not match:
            found = self.text[self.pos : self.pos + 1] or "end of text"
            raise self.error(f"expected {what}, found {found!r}")
        self.pos = match.end()
        return match.group()

    def expand_name(self, name: str) -> str:
        try:
            return self.expand(name)
        except BadRequestData:
            raise
        except Exception as exc:  # the caller's expander knows why the term is bad
            raise self.error(f"cannot expand {name!r}: {exc}") from exc

    def path(self) -> Path:
        names = [self.name("an attribute name")]
        while self.text.startswith(".", self.pos):
            self.pos += 1
            names.append(self.name("an attribute name after '.'"))
        if self.text.startswith("{", self.pos):
            raise BadRequestData("q: linked-entity paths (attr{...}) are not supported")
        trail: tuple[str, ...] | None = None
        if self.text.startswith("[", self.pos):
            self.pos += 1
            if self.text.startswith("*]", self.pos):
                self.pos += 2
                trail = ("*",)
            else:
                keys = [self.name("a key inside [ ]")]
                while self.text.startswith(".", self.pos):
                    self.pos += 1
                    keys.append(self.name("a key after '.'"))
                if not self.text.startswith("]", self.pos):
                    raise self.error("missing ']'")
                self.pos += 1
                trail = tuple(keys)
        member = names.pop() if len(names) > 1 and names[-1] in SPECIAL_MEMBERS else None
        attr, *sub = (self.expand_name(n) for n in names)
        return Path(attr, tuple(sub), member, trail)

    def leaf(self) -> Term:
        negated = self.text.startswith("!", self.pos)
        if negated:
            self.pos += 1
        path = self.path()
        self.skip_ws()
        op = next((o for o in _OPS if self.text.startswith(o, self.pos)), None)
        if op is None or negated:
            if negated and op is not None:
                raise self.error("'!' only goes before a bare attribute path (non-existence)")
            return Term(path, negated=negated)
        self.pos += len(op)
        if op in ("~=", "!~="):
            return Term(path, op, pattern=self.pattern())
        first = self.value(allow_bare=op in ("==", "!="))
        if op in ORDER_OPS:
            if first.kind == "bool":
                raise self.error(f"{op} needs a number, string, date or time, not {first.value}")
            return Term(path, op, (first,))
        if self.text.startswith("..", self.pos):
            self.pos += 2
            second = self.value(allow_bare=False)
            kinds = {first.kind in STRING_KINDS, second.kind in STRING_KINDS}
            if "bool" in (first.kind, second.kind) or len(kinds) != 1:
                raise self.error("a range needs two numbers or two strings/dates/times")
            return Term(path, op, range=(first, second))
        values = [first]
        while self.peek() == ",":
            self.pos += 1
            self.skip_ws()
            values.append(self.value(allow_bare=True))
        vocab = tuple(self.expand_value(v) for v in values if v.kind in VOCAB_KINDS)
        return Term(path, op, tuple(values), vocab_values=vocab)

    def expand_value(self, lit: QLiteral) -> str:
        # A VocabProperty's vocab is stored expanded, so compare it with the expanded term.
        try:
            return self.expand(str(lit.value))
        except Exception:
            return str(lit.value)

    def pattern(self) -> str:
        if self.text.startswith('"', self.pos):
            text = self.quoted()
        else:
            # Unquoted: up to the next ; | or an unbalanced ')' outside the pattern's groups.
            start, depth = self.pos, 0
            while self.pos < len(self.text):
                char = self.text[self.pos]
                if char == "\\":
                    self.pos += 2
                    continue
                if char == "(":
                    depth += 1
                elif char == ")":
                    if depth == 0:
                        break
                    depth -= 1
                elif char in ";|" and depth == 0:
                    break
                self.pos += 1
            text = self.text[start : self.pos]
        if not text:
            raise self.error("the regular expression is empty")
        try:
            portable_pattern(text, "the q pattern")
        except BadRequestData as exc:
            raise self.error(exc.detail) from None
        return text

    def quoted(self) -> str:
        start = self.pos
        self.pos += 1
        while self.pos < len(self.text) and self.text[self.pos] != '"':
            self.pos += 2 if self.text[self.pos] == "\\" else 1
        if self.pos >= len(self.text):
            self.pos = start
            raise self.error("unterminated string")
        self.pos += 1
        try:
            value = json.loads(self.text[start : self.pos])
        except ValueError as exc:
            self.pos = start
            raise self.error(f"invalid string: {exc}") from exc
        assert isinstance(value, str)
        return value

    def at_value_end(self, end: int) -> bool:
        rest = self.text[end:]
        return not rest or rest[0] in _VALUE_END or rest[0].isspace() or rest.startswith("..")

    def value(self, allow_bare: bool) -> QLiteral:
        self.skip_ws()
        if self.text.startswith('"', self.pos):
            return QLiteral(self.quoted(), "string")
        for word, flag in (("true", True), ("false", False)):
            if self.text.startswith(word, self.pos) and self.at_value_end(self.pos + len(word)):
                self.pos += len(word)
                return QLiteral(flag, "bool")
        for regex, kind in ((_DATETIME, "datetime"), (_DATE, "date"), (_TIME, "time")):
            match = regex.match(self.text, self.pos)
            if match and self.at_value_end(match.end()):
                self.pos = match.end()
                text = _utc(match.group()) if kind == "datetime" else match.group()
                return QLiteral(text, kind)  # type: ignore[arg-type]
        match = _NUMBER.match(self.text, self.pos)
        if match and self.at_value_end(match.end()):
            self.pos = match.end()
            number: int | float = (
                int(match.group()) if match.group().lstrip("-").isdigit() else float(match.group())
            )
            if isinstance(number, float) and not math.isfinite(number):
                raise self.error(f"number {match.group()} is out of range")
            return QLiteral(number, "number")
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in _VALUE_END:
            if self.text[self.pos].isspace():
                break
            self.pos += 1
        bare = self.text[start : self.pos]
        if not bare:
            raise self.error("a value is missing")
        if not bare[0].isalpha():  # a URI starts with its scheme; anything else is a typo
            self.pos = start
            raise self.error(f'unexpected value {bare!r} (quote strings with "...")')
        if not allow_bare:
            self.pos = start
            raise self.error(f"expected a number, quoted string, date or time, found {bare!r}")
        return QLiteral(bare, "uri")


def _utc(text: str) -> str:
    """A date-time with an offset, in UTC with ``Z`` (how NGSI-LD stores times)."""
    if text.endswith("Z") or not re.search(r"[+-]\d{2}:?\d{2}$", text):
        return text
    try:
        parsed = datetime.fromisoformat(text.replace(",", "."))
    except ValueError:
        return text
    fraction = re.search(r"[.,](\d+)", text)
    body = parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        digits = len(fraction.group(1))
        micro = f"{parsed.astimezone(UTC).microsecond:06d}"
        body += "." + (micro + "0" * digits)[:digits]
    return body + "Z"


def parse_q(text: str, expand: Expand) -> QExpr:
    """Parse a ``q`` expression (already URL-decoded); names are expanded with ``expand``.

    Raises :class:`~nakhon.core.errors.BadRequestData` with the position of the problem.
    """
    return _QParser(text, expand).parse()


# -- printing ----------------------------------------------------------------------------
def _literal(lit: QLiteral) -> str:
    if lit.kind == "string":
        return json.dumps(lit.value, ensure_ascii=False)
    if lit.kind == "bool":
        return "true" if lit.value else "false"
    if lit.kind == "number":
        return repr(lit.value)
    return str(lit.value)


def unparse_term(term: Term, compact: Callable[[str], str] = str) -> str:
    """One term in the surface syntax (attribute IRIs compacted with ``compact``)."""
    path = term.path
    names = [compact(path.attr), *(compact(s) for s in path.sub)]
    text = ".".join(names) + (f".{path.member}" if path.member else "")
    if path.trail is not None:
        text += "[" + ".".join(path.trail) + "]"
    if term.op is None:
        return ("!" if term.negated else "") + text
    if term.pattern is not None:
        return text + term.op + json.dumps(term.pattern, ensure_ascii=False)
    if term.range is not None:
        return text + term.op + _literal(term.range[0]) + ".." + _literal(term.range[1])
    return text + term.op + ",".join(_literal(v) for v in term.values)


def unparse_q(expr: QExpr, compact: Callable[[str], str] = str) -> str:
    """Print ``expr`` so that :func:`parse_q` gives it back (with the matching expander)."""
    return unparse_node(expr, lambda term: unparse_term(term, compact))

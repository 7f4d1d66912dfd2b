"""Client regular expressions (``idPattern``, the q-language ``~=``) that mean the same everywhere.

A pattern is evaluated in three places: Python's ``re`` (subscription matching, the SQLite
``regexp`` function) and PostgreSQL's ``~`` (Advanced Regular Expressions). The two dialects
share POSIX extended syntax but differ at the edges: ``[[:alpha:]]`` is a character class in
PostgreSQL and a nested set in Python, ``\\b`` is a word boundary in Python and a backspace in
PostgreSQL, ``(?P<n>…)`` exists only in Python, ``a{`` is a literal in Python and an error in
PostgreSQL. So the same request would answer differently on the two storage engines, and a
subscription could disagree with the query it mirrors.

:func:`portable_pattern` accepts the common part — POSIX extended syntax (``. [] [^] () | * +
? {n,m} ^ $``), the escapes ``\\d \\D \\s \\S \\w \\W \\A \\Z \\n \\t \\r \\f \\v``, back-references
``\\1``–``\\9``, escaped punctuation, non-capturing groups and lookarounds (``(?:`` ``(?=``
``(?!`` ``(?<=`` ``(?<!``), lazy quantifiers, a leading ``(?i)`` (case-insensitive) — and
refuses the rest with a clear 400, naming the construct. The NGSI-LD specification asks for
POSIX extended regular expressions, which this is.
"""

from __future__ import annotations

import re

from nakhon.core.errors import BadRequestData

_ESCAPES = frozenset("dDsSwWAZntrfv123456789")
_GROUPS = ("(?:", "(?=", "(?!", "(?<=", "(?<!")
_COUNT_MAX = 255  # PostgreSQL's largest repetition count (DUPMAX)
_QUANTIFIER = re.compile(r"\{(\d+)(,(\d*))?\}")


class PortablePattern:
    """An accepted client pattern: its text as given, and Python's reading of it."""

    __slots__ = ("compiled", "pattern")

    def __init__(self, text: str) -> None:
        self.pattern = text  # as the client wrote it (shown back, and given to PostgreSQL)
        self.compiled = compile_portable(text)

    def search(self, value: str) -> bool:
        """Does the pattern occur in ``value`` (unanchored, like PostgreSQL's ``~``)?"""
        return self.compiled.search(value) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PortablePattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)


def portable_pattern(text: str, what: str) -> PortablePattern:
    """Compile a client's regular expression, refusing what the two engines read differently.

    ``what`` names the parameter in the error (``idPattern``, ``q``). Raises BadRequestData."""
    problem = _unportable(text)
    if problem is None:
        try:
            return PortablePattern(text)
        except re.error as exc:
            problem = str(exc)
    raise BadRequestData(f"{what} is not a supported regular expression ({text!r}): {problem}. "
                         "POSIX extended syntax is supported, with \\d \\s \\w and lookarounds.")


def compile_portable(text: str) -> re.Pattern[str]:
    """Python's reading of an accepted pattern, as PostgreSQL reads it: ``.`` matches a newline
    too, and ``$`` only the very end (Python's ``$`` also matches before a final newline)."""
    return re.compile(_dollar_at_end(text), re.DOTALL)


def _dollar_at_end(text: str) -> str:
    if "$" not in text:
        return text
    out: list[str] = []
    i, in_class = 0, False
    while i < len(text):
        char = text[i]
        if char == "\\":
            out.append(text[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = not (char == "]" and not _class_start(text, i))
        elif char == "[":
            in_class = True
        elif char == "$":
            char = "\\Z"
        out.append(char)
        i += 1
    return "".join(out)


def _unportable(text: str) -> str | None:
    """Why ``text`` is outside the common dialect, or None."""
    i, n = 0, len(text)
    in_class = False
    while i < n:
        char = text[i]
        if char == "\\":
            if i + 1 >= n:
                return "it ends with a lone backslash"
            nxt = text[i + 1]
            if nxt.isalnum() and nxt not in _ESCAPES:
                return f"the escape \\{nxt} is not supported"
            if in_class and nxt.isdigit():
                return f"the escape \\{nxt} is not supported inside [...]"
            i += 2
            continue
        if in_class:
            if char == "[":
                return "a [ inside [...] must be escaped as \\[ (POSIX [:class:] forms differ)"
            if text.startswith(("&&", "~~", "||", "--"), i):
                return f"{text[i:i + 2]} inside [...] is not supported"
            if char == "]" and not _class_start(text, i):
                in_class = False
            i += 1
            continue
        if char == "[":
            in_class = True
        elif char == "(" and text.startswith("(?", i):
            if i == 0 and text.startswith("(?i)"):  # case-insensitive: the one shared flag
                i += 4
                continue
            if not any(text.startswith(g, i) for g in _GROUPS):
                return f"the group {text[i:i + 4]!r}… is not supported (only (?: (?= (?! (?<= (?<!)"
        elif char == "{":
            problem = _count(text, i)
            if problem is not None:
                return problem
        elif char in "*+?}" and i + 1 < n and text[i + 1] == "+" and _quantifies(text, i):
            return "possessive quantifiers (*+ ++ ?+ {n}+) are not supported"
        i += 1
    return "a [ is never closed" if in_class else None


def _class_start(text: str, i: int) -> bool:
    """Is the ``]`` at ``i`` the first member of its bracket expression (a literal ``]``)?"""
    j = i - 1
    if j >= 0 and text[j] == "^":
        j -= 1
    return j >= 0 and text[j] == "[" and (j == 0 or text[j - 1] != "\\")


def _count(text: str, i: int) -> str | None:
    match = _QUANTIFIER.match(text, i)
    if match is None:
        return "a { must start a repetition count {n}, {n,} or {n,m}"
    low, high = int(match.group(1)), match.group(3)
    if low > _COUNT_MAX or (high and int(high) > _COUNT_MAX):
        return f"repetition counts above {_COUNT_MAX} are not supported"
    if high and int(high) < low:
        return "a repetition count {n,m} needs n ≤ m"
    return None


def _quantifies(text: str, i: int) -> bool:
    """Is the ``*``, ``+``, ``?`` or ``}`` at ``i`` a quantifier (not the end of ``(?``...)?"""
    return not (text[i] == "?" and i > 0 and text[i - 1] == "(")

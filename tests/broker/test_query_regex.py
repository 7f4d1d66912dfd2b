"""Portable regular expressions: what is refused, and that Python and PostgreSQL agree on the rest.

The agreement test asks the real PostgreSQL (``value ~ pattern``) and Python (the SQLite
``regexp`` function, subscription matching) the same questions for generated patterns and
strings, Thai letters included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nakhon.broker.query.regex import portable_pattern
from nakhon.broker.query.sql import sqlite_regexp
from nakhon.core.errors import BadRequestData


@pytest.mark.parametrize("pattern", [
    r"urn:ngsi-ld:Sensor:\d+$", r"^urn:.*:(a|b)[0-9]{2,4}$", r"[^:]+", r"(?:ab)+c?",
    r"x(?=y)", r"x(?!y)", r"(?<=a)b", r"(?<!a)b", r"\w+\s\W", r"a.*?b", r"\.\*\+", r"[]a]",
    r"[^]a]", r"(a)\1", r"(?i)toyota", r"[a\]]", "ถนน.*", r"\Aab\Z", r"a{0}", r"a{255}", r"a{2,}",
])
def test_portable_patterns_are_accepted(pattern: str) -> None:
    assert portable_pattern(pattern, "idPattern").pattern == pattern


@pytest.mark.parametrize(("pattern", "reason"), [
    (r"[[:alpha:]]+", "inside [...]"), (r"(?P<n>a)", "group"), (r"a(?i)bc", "group"),
    (r"(?s)a.b", "group"),
    (r"(?#note)a", "group"), (r"(?>a)", "group"), (r"\bword\b", r"\b"), (r"\x41", r"\x"),
    (r"\u0e01", r"\u"), (r"a{", "repetition count"), (r"a{1000}", "above 255"),
    (r"a{3,2}", "n ≤ m"), (r"a*+", "possessive"), (r"a++", "possessive"), ("[abc", "never closed"),
    ("abc\\", "lone backslash"), (r"\mword\M", r"\m"), (r"[a&&b]", "&&"), (r"[\1]", r"\1"),
    (r"(a", "missing"), (r"*a", "nothing to repeat"),
])
def test_unportable_patterns_are_refused(pattern: str, reason: str) -> None:
    with pytest.raises(BadRequestData) as err:
        portable_pattern(pattern, "idPattern")
    assert reason in err.value.detail and "idPattern" in err.value.detail


@pytest.fixture(scope="module")
def pg_conn(pg_database: str) -> Iterator[tuple[asyncio.AbstractEventLoop, asyncpg.Connection]]:
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(pg_database))
    try:
        yield loop, conn
    finally:
        loop.run_until_complete(conn.close())
        loop.close()


ATOMS = st.sampled_from([
    "a", "b", "ก", "ข", ".", r"\d", r"\w", r"\s", r"\W", "[ab]", "[^a]", "[a-c]", "[ก-ฮ]",
    r"\.", ":", "-", "1", "^", "$", r"\A", r"\Z", r"\n", "[]a]",
])
SUFFIXES = st.sampled_from(["", "", "*", "+", "?", "*?", "{2}", "{1,3}", "{0,}"])
PIECES = st.tuples(ATOMS, SUFFIXES).map("".join)
BRANCHES = st.lists(PIECES, min_size=1, max_size=4).map("".join)
GROUPED = BRANCHES | BRANCHES.map(lambda b: f"({b})") | BRANCHES.map(lambda b: f"(?:{b})+") \
    | st.tuples(BRANCHES, BRANCHES).map(lambda t: f"{t[0]}|{t[1]}") \
    | st.tuples(BRANCHES, BRANCHES).map(lambda t: f"{t[0]}(?={t[1]})") \
    | st.tuples(BRANCHES, BRANCHES).map(lambda t: f"{t[0]}(?!{t[1]})")
PATTERNS = st.tuples(st.sampled_from(["", "", "(?i)"]),
                     st.lists(GROUPED, min_size=1, max_size=3).map("".join)).map("".join)
SUBJECTS = st.text(alphabet="abcABกขฮ1:.-_ \n9", max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=PATTERNS, subjects=st.lists(SUBJECTS, min_size=1, max_size=6))
@example(pattern="a$", subjects=["a\n", "a", "ba"])  # Python's $ alone matches before a final \n
@example(pattern="a.b", subjects=["a\nb"])  # PostgreSQL's . matches a newline
@example(pattern="[$]|x$", subjects=["$", "x\n", "x"])
def test_python_and_postgresql_agree(pg_conn: tuple[asyncio.AbstractEventLoop, asyncpg.Connection],
                                     pattern: str, subjects: list[str]) -> None:
    try:
        portable_pattern(pattern, "idPattern")
    except BadRequestData:
        return  # refused patterns are never evaluated by either engine
    loop, conn = pg_conn
    rows = loop.run_until_complete(conn.fetch(
        "SELECT s ~ $2 FROM unnest($1::text[]) AS s", subjects, pattern))
    in_pg = [bool(r[0]) for r in rows]
    in_python = [sqlite_regexp(pattern, s) for s in subjects]
    assert in_python == in_pg, (pattern, subjects)

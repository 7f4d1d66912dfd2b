"""Compile q to a SQL boolean over ``e.doc`` (SQLite JSON1 or PostgreSQL jsonb).

The SQL walks exactly the steps of :mod:`targets` and applies the typing rules of
:mod:`q_eval`, so both give the same answer. JSON keys (attribute IRIs, sub-attributes,
trailing keys) are compared as bound values — SQLite through ``json_each(...).key``, because
its JSON path labels cannot express every key (quotes, escaped text); PostgreSQL through
``->`` with a bound text key. Strings order by code point as in Python: SQLite's BINARY
collation and PostgreSQL's ``COLLATE "C"`` both compare UTF-8 bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nakhon.broker.query.nodes import to_sql
from nakhon.broker.query.q import VOCAB_KINDS, QExpr, QLiteral, Term
from nakhon.broker.query.sql import Binder, Dialect
from nakhon.broker.query.targets import Source, node_only, sources

Pred = Callable[[str], str]  # row alias (sqlite) or jsonb expression (postgres) → SQL

_SQL_OPS = {">": ">", ">=": ">=", "<": "<", "<=": "<="}


class _Compiler:
    def __init__(self, dialect: Dialect, params: list[Any], fast: str | None = None) -> None:
        self.bind = Binder(dialect, params)
        self.pg = self.bind.pg
        self.counter = 0
        self.fast = None if self.pg else fast

    def alias(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    # -- element predicates --------------------------------------------------------------
    def typed(self, r: str, kind: str, compare: str) -> str:
        """``compare`` (with ``{v}`` for the value) guarded by a JSON type check."""
        if self.pg:
            if kind == "number":
                inner = compare.format(v=f"({r})::numeric")
                return f"(CASE WHEN jsonb_typeof({r}) = 'number' THEN {inner} ELSE false END)"
            text = compare.format(v=f"({r} #>> '{{}}')")
            return f"(jsonb_typeof({r}) = 'string' AND {text})"
        types = "('integer', 'real')" if kind == "number" else "('text')"
        return f"({r}.type IN {types} AND {compare.format(v=f'{r}.value')})"

    def lit_kind(self, lit: QLiteral) -> str:
        return "number" if lit.kind == "number" else "string"

    def equals(self, r: str, lit: QLiteral) -> str:
        if lit.kind == "bool":
            word = "true" if lit.value else "false"
            return f"({r} = '{word}'::jsonb)" if self.pg else f"{r}.type = '{word}'"
        return self.typed(r, self.lit_kind(lit), "{v} = " + self.bind(lit.value))

    def text_order(self, op: str, lit: QLiteral) -> str:
        collate = ' COLLATE "C"' if self.pg and lit.kind != "number" else ""
        return "{v}" + collate + f" {op} " + self.bind(lit.value)

    def positive(self, term: Term, source: Source) -> Pred:
        if term.pattern is not None:
            pattern = term.pattern

            def regex(r: str) -> str:
                op = "~" if self.pg else "REGEXP"
                return self.typed(r, "string", "{v} " + op + " " + self.bind(pattern))

            return regex
        if term.range is not None:
            low, high = term.range

            def in_range(r: str) -> str:
                lo, hi = self.text_order(">=", low), self.text_order("<=", high)
                return self.typed(r, self.lit_kind(low), f"{lo} AND {hi}")

            return in_range
        if term.op in _SQL_OPS:
            lit, op = term.values[0], _SQL_OPS[term.op]
            return lambda r: self.typed(r, self.lit_kind(lit), self.text_order(op, lit))
        values = list(term.values)
        if source.vocab:
            values = [v for v in values if v.kind not in VOCAB_KINDS]
            values += [QLiteral(v, "uri") for v in term.vocab_values]
        return lambda r: (
            "(" + " OR ".join(self.equals(r, v) for v in values) + ")" if values else "1 = 0"
        )

    # -- elements of a target ------------------------------------------------------------
    def any_element(self, f: str, mode: str, pred: Pred) -> str:
        """Some element of target ``f`` satisfies ``pred``."""
        if self.pg:
            if mode == "objlist":
                o = self.alias("o")
                member = pred(f"({o}.v -> 'object')")
                return (
                    f"EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof({f}) = "
                    f"'array' THEN {f} END) AS {o}(v) WHERE {member})"
                )
            src, x = f, self.alias("x")
            lateral = ""
            if mode == "langflat":
                m = self.alias("m")
                lateral = (
                    f"jsonb_each(CASE WHEN jsonb_typeof({f}) = 'object' THEN {f} END) "
                    f"AS {m}(k, v), "
                )
                src = f"{m}.v"
            return (
                f"EXISTS (SELECT 1 FROM {lateral}jsonb_array_elements(CASE WHEN "
                f"jsonb_typeof({src}) = 'array' THEN {src} ELSE jsonb_build_array({src}) END) "
                f"AS {x}(v) WHERE {pred(f'{x}.v')})"
            )
        if mode == "objlist":
            o, ob = self.alias("o"), self.alias("ob")
            return (
                f"EXISTS (SELECT 1 FROM json_each(CASE WHEN {f}.type = 'array' THEN {f}.value "
                f"END) AS {o}, json_each(CASE WHEN {o}.type = 'object' THEN {o}.value END) "
                f"AS {ob} WHERE {ob}.key = 'object' AND {pred(ob)})"
            )
        if mode == "langflat":
            m = self.alias("m")
            return (
                f"EXISTS (SELECT 1 FROM json_each(CASE WHEN {f}.type = 'object' THEN "
                f"{f}.value END) AS {m} WHERE {self.any_element(m, 'standard', pred)})"
            )
        x = self.alias("x")
        return (
            f"(({f}.type <> 'array' AND {pred(f)}) OR ({f}.type = 'array' AND EXISTS "
            f"(SELECT 1 FROM json_each({f}.value) AS {x} WHERE {pred(x)})))"
        )

    def condition(self, term: Term, source: Source, f: str) -> str | None:
        """The test on one source's target ``f`` (known to exist); None: never matches."""
        if term.op is None:
            return "1 = 1"
        if source.relationship and term.op not in ("==", "!="):
            return None
        if term.op == "!~=":

            def is_text(r: str) -> str:
                return f"jsonb_typeof({r}) = 'string'" if self.pg else f"{r}.type = 'text'"

            has_text = self.any_element(f, source.mode, is_text)
            pattern = Term(term.path, "~=", pattern=term.pattern)
            hit = self.any_element(f, source.mode, self.positive(pattern, source))
            return f"({has_text} AND NOT {hit})"
        hit = self.any_element(f, source.mode, self.positive(term, source))
        return f"(NOT {hit})" if term.op == "!=" else hit

    # -- the walk ------------------------------------------------------------------------
    def source_sql(self, term: Term, source: Source, node: str, members: list[str]) -> str | None:
        """The test of one source (or, on sqlite, of several ``members`` sharing its rules)."""
        if source.relationship and term.op not in (None, "==", "!="):
            return None  # decided before binding anything: unused parameters break the SQL
        if self.pg:
            f = node + "".join(f" -> {self.bind(k)}" for k in (source.member, *source.trail))
            cond = self.condition(term, source, f)
            return None if cond is None else f"({f} IS NOT NULL AND {cond})"
        first = self.alias("f")
        froms = [f"json_each(CASE WHEN {node}.type = 'object' THEN {node}.value END) AS {first}"]
        wheres = [f"{first}.key IN ({', '.join(self.bind(m) for m in members)})"]
        prev = first
        for key in source.trail:
            step = self.alias("f")
            froms.append(
                f"json_each(CASE WHEN {prev}.type = 'object' THEN {prev}.value END) AS {step}"
            )
            wheres.append(f"{step}.key = {self.bind(key)}")
            prev = step
        cond = self.condition(term, source, prev)
        assert cond is not None
        return f"EXISTS (SELECT 1 FROM {', '.join(froms)} WHERE {' AND '.join(wheres)} AND {cond})"

    def grouped(self, term: Term) -> list[tuple[Source, list[str]]]:
        """Sources with their member names; on sqlite, sources that test the same way share
        one scan of the instance (an instance has one value member, so this is the same OR)."""
        groups: dict[tuple[object, ...], tuple[Source, list[str]]] = {}
        vocab_differs = term.op in ("==", "!=") and bool(term.vocab_values)
        for src in sources(term.path):
            key: tuple[object, ...] = (src.trail, src.mode, src.relationship)
            key += (src.vocab and vocab_differs,) if not self.pg else (src.member,)
            if key in groups:
                groups[key][1].append(src.member)
            else:
                groups[key] = (src, [src.member])
        return list(groups.values())

    def term(self, term: Term) -> str:
        if self.pg and _fast_eligible(term):
            return self.pg_fast_term(term)
        if self.fast is not None and _fast_eligible(term):
            return self.fast_term(term, self.fast)
        return self.generic_term(term)

    def pg_fast_term(self, term: Term) -> str:
        """PostgreSQL: the common case — one Property instance with a number or string value —
        tested directly on ``attrs -> attr -> 0 -> 'value'``; everything else (several
        instances, other attribute types, structured values) takes the exact walk. A missing
        attribute is decided at once (no comparison matches it). Saves the set-returning
        jsonb_array_elements subqueries per row that dominate a q scan."""
        attr = f"(e.doc -> 'attrs' -> {self.bind(term.path.attr)})"
        value = f"({attr} -> 0 -> 'value')"
        hit = self.positive(term, Source("value", (), "standard"))(value)
        cond = f"(NOT {hit})" if term.op == "!=" else hit
        generic = self.generic_term(term)
        return (
            f"(CASE WHEN {attr} IS NULL THEN false "
            f"WHEN jsonb_typeof({attr}) = 'array' AND jsonb_array_length({attr}) = 1 "
            f"AND ({attr} -> 0 ->> 'type') = 'Property' "
            f"AND jsonb_typeof({value}) IN ('number', 'string') THEN {cond} "
            f"ELSE {generic} END)"
        )

    def fast_term(self, term: Term, column: str) -> str:
        """SQLite: test a simple ``attr op literal`` on the scalar projection column first.

        The projection (``storage.rows.query_values``) maps every attribute IRI to its value
        when the attribute is one Property instance with a number or string value, and to
        JSON null otherwise. Missing key: no attribute, no match. Null: the exact walk over
        the document decides. A scalar: the same typed test the walk would apply to it —
        one small JSON lookup instead of several nested json_each scans per row."""
        label = '$."' + term.path.attr + '"'
        q = self.alias("q")
        # Parameters bind in the order they appear in the SQL text.
        head = (
            f"EXISTS (SELECT 1 FROM (SELECT json_type({column}, {self.bind(label)}) AS type, "
            f"json_extract({column}, {self.bind(label)}) AS value) AS {q} "
            f"WHERE {q}.type IS NOT NULL AND CASE WHEN {q}.type = 'null' THEN "
        )
        generic = self.generic_term(term)
        # The projection holds scalars only, so the element test applies to the value itself
        # (no array branch: json_each over a plain SQL text would be malformed JSON).
        hit = self.positive(term, Source("value", (), "standard"))(q)
        cond = f"(NOT {hit})" if term.op == "!=" else hit
        return f"{head}{generic} ELSE {cond} END)"

    def generic_term(self, term: Term) -> str:
        path = term.path
        if self.pg:
            attr = f"(e.doc -> 'attrs' -> {self.bind(path.attr)})"
            i = self.alias("i")
            node = f"{i}.v" + "".join(f" -> {self.bind(k)}" for k in path.sub)
            froms = (
                f"jsonb_array_elements(CASE WHEN jsonb_typeof({attr}) = 'array' THEN {attr} END)"
                f" AS {i}(v)"
            )
            wheres = [f"jsonb_typeof({node}) = 'object'"]
        else:
            a, i = self.alias("a"), self.alias("i")
            froms = (
                f"json_each(e.doc, '$.attrs') AS {a}, "
                f"json_each(CASE WHEN {a}.type = 'array' THEN {a}.value END) AS {i}"
            )
            wheres = [f"{a}.key = {self.bind(path.attr)}"]
            node = i
            for key in path.sub:
                step = self.alias("s")
                froms += (
                    f", json_each(CASE WHEN {node}.type = 'object' THEN {node}.value END) AS {step}"
                )
                wheres.append(f"{step}.key = {self.bind(key)}")
                node = step
            wheres.append(f"{node}.type = 'object'")
        if not node_only(term):
            found = (self.source_sql(term, src, node, names) for src, names in self.grouped(term))
            parts = [part for part in found if part]
            wheres.append("(" + " OR ".join(parts) + ")" if parts else "1 = 0")
        sql = f"EXISTS (SELECT 1 FROM {froms} WHERE {' AND '.join(wheres)})"
        return f"(NOT {sql})" if term.negated else sql


def _fast_eligible(term: Term) -> bool:
    path = term.path
    return (
        term.op not in (None, "!~=")
        and not term.negated
        and not path.sub
        and path.member is None
        and not path.trail
        and not node_only(term)
        and '"' not in path.attr
        and "\\" not in path.attr
    )


def compile_q(
    expr: QExpr, dialect: Dialect, params: list[Any], *, fast_column: str | None = None
) -> str:
    """SQL boolean for ``expr`` over table alias ``e``; values are appended to ``params``.

    Placeholders are ``?`` (sqlite) or ``$N`` (postgres, N = position in ``params``). On
    SQLite the connection needs the ``regexp`` function (:func:`sqlite_regexp`).
    ``fast_column`` (SQLite only) names the scalar projection column of the entities table
    (``e.qv``), which lets simple comparisons skip the document walk.
    """
    compiler = _Compiler(dialect, params, fast_column)
    return to_sql(expr, compiler.term)

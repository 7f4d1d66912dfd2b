"""Transaction hooks: work that must be written in the same transaction as an entity write.

A storage engine is given a list of :class:`WriteHook` s (``storage.write_hooks``). After the
writer has applied a batch's mutations and before COMMIT, it hands each hook the batch's
changes — one ``(tenant, entity_id, Outcome)`` per applied, not-unchanged operation, in order,
with ``Outcome.previous`` always set to the state before that operation — and inserts the rows
the hook returns into the hook's own tables in the same transaction (``executemany`` on SQLite;
on PostgreSQL one ``INSERT ... SELECT FROM unnest(...)`` per block, a single round trip that
also takes the ordering lock below). So either the entity change and, say, its notification
outbox rows are both durable, or neither is. After COMMIT the writer calls
:meth:`WriteHook.committed`. A hook should return few rows per batch (the subscriptions hook
returns one per batch): rows cost the writer time.

Generated keys of hook rows (an ``INTEGER PRIMARY KEY`` / identity) follow commit order: SQLite
has one writer, and PostgreSQL writers take a transaction advisory lock before inserting hook
rows, so a reader may keep a cursor on such a key. (On SQLite a key is max + 1: a reader that
deletes rows must keep the newest one, or keys would start again below its cursor.)

Hooks run on the writer's thread (SQLite) or task (PostgreSQL) for every batch: they must be
fast, must not do I/O and should not raise (an exception fails the whole batch, nothing is
written and every caller of the batch gets the error).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nakhon.storage.base import Outcome

Change = tuple[str, str, Outcome]
"""(tenant, entity id, outcome) of one applied operation."""


@dataclass(frozen=True, slots=True)
class HookRows:
    """Rows for one table. Values must be plain ``int``/``str``/``bytes``/``None``."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


class WriteHook(Protocol):
    """Something that adds rows to a write transaction (see the module docstring)."""

    def rows(self, changes: Sequence[Change], now: str) -> Sequence[HookRows]:
        """Rows to insert for this batch's changes (empty when none)."""

    def committed(self) -> None:
        """The transaction whose rows were last asked for has committed."""


def insert_sql(block: HookRows) -> str:
    """The SQLite ``INSERT`` for one block (names come from code, never from requests)."""
    marks = ", ".join("?" * len(block.columns))
    return f"INSERT INTO {block.table} ({', '.join(block.columns)}) VALUES ({marks})"
